"""surfacemotion:planetorder and core/planet/orders.py against the loopback Planet server
(tests/planet_orders_server.py): quota, confirmation, lifecycle, verified and resumable downloads,
failed / partial / cancelled orders, HTTP faults, and the API key kept out of every output and log."""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import pytest

from faults import leftovers
from planet_orders_server import API_KEY, ORDERS, PlanetOrdersServer

#: An AOI (lon/lat) over the middle of the test scenes (tests/planet_server.py CENTRE -147.40, 63.30).
AOI = {"type": "Polygon", "coordinates": [[[-147.52, 63.27], [-147.30, 63.27], [-147.30, 63.34],
                                           [-147.52, 63.34], [-147.52, 63.27]]]}


@pytest.fixture(scope="module")
def orders_server():
    server = PlanetOrdersServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(orders_server, monkeypatch, provider):
    """The loopback server, reset, as the plugin's Planet URL; the key in PL_API_KEY; fast polls."""
    from processing.core.ProcessingConfig import ProcessingConfig

    from surface_motion.core.planet.client import preset_bundle_spec

    server = orders_server
    server.lifecycle = "success"
    server.zip_delivery = False
    server.faults.clear()
    server.stalls.clear()
    server.corrupted.clear()
    server.truncations.clear()
    del server.log[:]
    preset_bundle_spec()
    monkeypatch.setenv("PL_API_KEY", API_KEY)
    monkeypatch.setenv("SURFACEMOTION_PLANET_POLL_SECONDS", "0.05")
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_URL", server.url)
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_API_KEY", "")
    yield server
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_URL", "https://api.planet.com")


def ids_of(server, count=2, start=0):
    return [item["id"] for item in server.items[start:start + count]]


def aoi_file(tmp_path, geometry=AOI) -> str:
    path = str(tmp_path / "aoi.geojson")
    with open(path, "w") as handle:
        json.dump({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "aoi"},
                                                              "geometry": geometry}]}, handle)
    return path


class Recorder:
    """A Processing feedback keeping every line it is given (and cancellable from a timer)."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class Recording(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.lines = []

            def pushInfo(self, text):  # noqa: N802
                self.lines.append(text)
                super().pushInfo(text)

            def reportError(self, text, fatalError=False):  # noqa: N802,N803
                self.lines.append(text)
                super().reportError(text, fatalError)

        return Recording()


def order_parameters(tmp_path, ids, out, confirm=True, bundle=0, aoi=True):
    return {"IDS": ",".join(ids), "BUNDLE": bundle, "AOI": aoi_file(tmp_path) if aoi else None,
            "CONFIRM": confirm, "OUTPUT_FOLDER": out}


def manifest_md5(folder):
    with open(os.path.join(folder, "manifest.json")) as handle:
        return {os.path.basename(entry["path"]): entry["digests"]["md5"] for entry in json.load(handle)["files"]}


def md5(path):
    with open(path, "rb") as handle:
        return hashlib.md5(handle.read()).hexdigest()


def assert_no_key_anywhere(folder, lines):
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                assert API_KEY.encode() not in handle.read(), name
    assert not [line for line in lines if API_KEY in line]


# --------------------------------------------------------------------------- core: request and quota


def test_quota_is_the_equal_area_intersection_computed_independently(server):
    from pyproj import Transformer
    from shapely.geometry import shape
    from shapely.ops import transform

    from surface_motion.core.planet.orders import quota_km2

    footprints = {item["id"]: item["geometry"] for item in server.items[:4]}
    total, areas = quota_km2(footprints, AOI, clipped=True)
    to_cea = Transformer.from_crs(4326, 6933, always_xy=True)  # WGS 84 / NSIDC EASE-Grid 2.0 Global (equal-area)

    def projected(geometry):  # edges straight in lon/lat: 400 vertices each before projecting
        ring = geometry["coordinates"][0]
        points = [(x0 + (x1 - x0) * k / 400, y0 + (y1 - y0) * k / 400)
                  for (x0, y0), (x1, y1) in zip(ring[:-1], ring[1:]) for k in range(400)]
        return transform(to_cea.transform, shape({"type": "Polygon", "coordinates": [points + [points[0]]]}))

    aoi = projected(AOI)
    expected = {item: projected(geometry).intersection(aoi).area / 1e6 for item, geometry in footprints.items()}
    for item in footprints:
        assert areas[item] == pytest.approx(expected[item], rel=1e-4)
    assert total == pytest.approx(sum(expected.values()), rel=1e-4)
    assert 0 < min(areas.values()) < max(areas.values()) < aoi.area / 1e6  # partly covering scenes
    full, _ = quota_km2(footprints, AOI, clipped=False)
    whole = sum(projected(g).area / 1e6 for g in footprints.values())
    assert full == pytest.approx(whole, rel=1e-4)
    assert whole / len(footprints) == pytest.approx(24.0 * 8.0, rel=0.02)  # the 24 km x 8 km test scenes


def test_the_request_clips_l3b_to_the_aoi_and_orders_full_l1b_scenes(server):
    from surface_motion.core.errors import UserInputError
    from surface_motion.core.planet.orders import order_request

    ids = ids_of(server)
    l3b = order_request(ids, "analytic_8b_sr_udm2", AOI, "t")
    assert l3b["products"] == [{"item_ids": ids, "item_type": "PSScene", "product_bundle": "analytic_8b_sr_udm2"}]
    assert l3b["tools"] == [{"clip": {"aoi": AOI}}]
    l1b = order_request(ids, "basic_analytic_udm2", AOI, "t")
    assert l1b["products"][0]["product_bundle"] == "basic_analytic_udm2" and "tools" not in l1b
    with pytest.raises(UserInputError, match="clipped to the area of interest"):
        order_request(ids, "analytic_sr_udm2", None, "t")


# --------------------------------------------------------------------------- the algorithm


def test_without_confirmation_only_the_estimate_is_reported(server, run_algorithm, tmp_path):
    from surface_motion.core.planet.orders import quota_km2

    out = str(tmp_path / "order")
    feedback = Recorder()
    results, _, _ = run_algorithm("surfacemotion:planetorder",
                                  order_parameters(tmp_path, ids_of(server, 3), out, confirm=False), feedback)
    expected, _ = quota_km2({item["id"]: item["geometry"] for item in server.items[:3]}, AOI, True)
    assert results["QUOTA_KM2"] == pytest.approx(expected, rel=1e-9)
    assert results["ORDER_ID"] == "" and results["SCENES"] == []
    assert not os.path.exists(out) and server.order_posts() == []
    assert any(f"{expected:,.2f} km²" in line and "Nothing ordered" in line for line in feedback.lines)


def test_a_confirmed_order_is_polled_downloaded_verified_and_laid_out_for_extractband(server, run_algorithm,
                                                                                     tmp_path):
    from surface_motion.core.offsets.bands import find_udm2_for

    out = str(tmp_path / "order")
    ids = ids_of(server, 2)
    feedback = Recorder()
    results, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out), feedback)
    order_id = results["ORDER_ID"]
    assert len(server.order_posts()) == 1 and order_id in server.orders
    assert [line.split(": ")[-1] for line in feedback.lines if line.startswith(f"Order {order_id}")] == \
        ["queued", "running", "success"]
    names = sorted(os.listdir(out))
    assert names == sorted([f"{i}{suffix}" for i in ids for suffix in (
        "_3B_AnalyticMS_SR_clip.tif", "_3B_udm2_clip.tif", "_3B_AnalyticMS_metadata_clip.xml", "_metadata.json")]
        + ["manifest.json", "planet_order.json"])
    digests = manifest_md5(out)
    assert len(digests) == 8 and all(md5(os.path.join(out, name)) == value for name, value in digests.items())
    assert sorted(results["SCENES"]) == sorted(os.path.join(out, f"{i}_3B_AnalyticMS_SR_clip.tif") for i in ids)
    assert all(find_udm2_for(scene) == scene.replace("_AnalyticMS_SR_clip", "_udm2_clip")
               for scene in results["SCENES"])
    with open(os.path.join(out, "planet_order.json")) as handle:
        record = json.load(handle)
    assert record["order_id"] == order_id and record["ids"] == ids and record["bundle"] == "analytic_sr_udm2"
    assert_no_key_anywhere(out, feedback.lines)
    # the scenes feed the chain: Extract band reads them with their UDM2
    band, _, _ = run_algorithm("surfacemotion:extractband", {"INPUT": results["SCENES"], "BAND": 2, "USE_UDM2": True,
                                                            "OUTPUT_FOLDER": str(tmp_path / "bands")})
    assert len(os.listdir(str(tmp_path / "bands"))) >= 2


def test_l1b_keeps_rpc_and_xml_metadata_next_to_full_scenes(server, run_algorithm, tmp_path):
    out = str(tmp_path / "l1b")
    results, _, _ = run_algorithm("surfacemotion:planetorder",
                                  order_parameters(tmp_path, ids_of(server, 1), out, bundle=2, aoi=False))
    item = ids_of(server, 1)[0]
    assert results["SCENES"] == [os.path.join(out, f"{item}_1B_AnalyticMS.tif")]
    for suffix in ("_1B_AnalyticMS_RPC.TXT", "_1B_AnalyticMS_metadata.xml", "_1B_udm2.tif"):
        assert os.path.isfile(os.path.join(out, item + suffix))
    posted = json.loads(server.order_posts()[0]["body"])
    assert "tools" not in posted and posted["products"][0]["product_bundle"] == "basic_analytic_udm2"


def test_a_rerun_resumes_the_recorded_order_and_fetches_exactly_the_files_that_do_not_match(server, run_algorithm,
                                                                                          tmp_path):
    out = str(tmp_path / "order")
    ids = ids_of(server, 2)
    first, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    damaged = f"{ids[0]}_3B_AnalyticMS_SR_clip.tif"
    missing = f"{ids[1]}_3B_udm2_clip.tif"
    with open(os.path.join(out, damaged), "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\xff\x00")
    os.remove(os.path.join(out, missing))
    del server.log[:]
    second, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out, confirm=False))
    assert server.order_posts() == [] and second["ORDER_ID"] == first["ORDER_ID"]
    fetched = sorted(os.path.basename(entry["path"]) for entry in server.downloads())
    assert fetched == sorted([damaged, missing, "manifest.json"])
    assert all(md5(os.path.join(out, name)) == value for name, value in manifest_md5(out).items())


def test_zip_deliveries_are_verified_unpacked_next_to_each_other_and_skipped_on_resume(server, run_algorithm,
                                                                                      tmp_path):
    server.zip_delivery = True
    out = str(tmp_path / "order")
    ids = ids_of(server, 2)
    results, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    assert sorted(results["SCENES"]) == sorted(os.path.join(out, f"{i}_3B_AnalyticMS_SR_clip.tif") for i in ids)
    order_id = results["ORDER_ID"]
    for item in ids:  # the members are the bytes Planet put in the zip
        for suffix in ("_3B_AnalyticMS_SR_clip.tif", "_3B_udm2_clip.tif"):
            with open(os.path.join(out, item + suffix), "rb") as handle:
                assert handle.read() == server.files[(order_id, f"PSScene/{item}{suffix}")]
    assert sorted(manifest_md5(out)) == sorted(f"{i}_psscene_analytic_sr_udm2.zip" for i in ids)
    os.remove(os.path.join(out, f"{ids[0]}_3B_udm2_clip.tif"))
    del server.log[:]
    run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    assert [os.path.basename(entry["path"]) for entry in server.downloads()] == ["manifest.json"]
    assert os.path.isfile(os.path.join(out, f"{ids[0]}_3B_udm2_clip.tif"))  # unpacked again from the kept zip


def test_a_folder_holding_another_order_is_refused(server, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    out = str(tmp_path / "order")
    run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids_of(server, 1), out))
    with pytest.raises(QgsProcessingException, match="already holds Planet order"):
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids_of(server, 2), out))
    assert len(server.order_posts()) == 1


def test_a_wrong_md5_is_an_error_and_leaves_no_file_then_a_rerun_completes(server, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    out = str(tmp_path / "order")
    ids = ids_of(server, 2)
    victim = f"{ids[0]}_3B_udm2_clip.tif"
    server.corrupt(victim)
    with pytest.raises(QgsProcessingException, match=f"{victim} does not match its MD5"):
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    assert not os.path.exists(os.path.join(out, victim))
    assert [name for name in leftovers(out) if name.startswith(".")] == []
    assert "planet_order.json" in os.listdir(out)
    server.corrupted.clear()
    results, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    assert md5(os.path.join(out, victim)) == manifest_md5(out)[victim] and len(server.order_posts()) == 1
    assert len(results["SCENES"]) == 2


def test_a_truncated_download_leaves_no_partial_file_and_the_rerun_resumes(server, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    out = str(tmp_path / "order")
    ids = ids_of(server, 2)
    victim = f"{ids[1]}_3B_AnalyticMS_SR_clip.tif"
    server.truncate(victim, count=1)
    with pytest.raises(QgsProcessingException, match=f"Downloading {victim} failed"):
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    assert not os.path.exists(os.path.join(out, victim))
    assert [name for name in leftovers(out) if name.startswith(".")] == []
    done_before = {name for name in os.listdir(out) if name.startswith(ids[0])}
    assert len(done_before) == 4  # the first scene's files are complete and kept
    del server.log[:]
    results, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    fetched = {os.path.basename(entry["path"]) for entry in server.downloads()}
    assert not fetched & done_before and victim in fetched and server.order_posts() == []
    assert md5(os.path.join(out, victim)) == manifest_md5(out)[victim] and len(results["SCENES"]) == 2


def test_a_failed_order_lists_its_items_and_planets_hint(server, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    server.lifecycle = "failed"
    ids = ids_of(server, 2)
    with pytest.raises(QgsProcessingException) as error:
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, str(tmp_path / "order")))
    text = str(error.value)
    assert "failed: no scene was delivered" in text and all(item in text for item in ids)
    assert "could not be clipped" in text and "planet_order.json" in text


def test_a_partial_order_downloads_what_was_delivered_and_lists_the_rest(server, run_algorithm, tmp_path):
    server.lifecycle = "partial"
    ids = ids_of(server, 3)
    feedback = Recorder()
    out = str(tmp_path / "order")
    results, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out), feedback)
    assert results["FAILED_IDS"] == ids[0]
    assert sorted(results["SCENES"]) == sorted(os.path.join(out, f"{i}_3B_AnalyticMS_SR_clip.tif") for i in ids[1:])
    assert any("1 scene(s) were not delivered: " + ids[0] in line for line in feedback.lines)


def test_cancel_during_polling_ends_within_two_seconds_cancels_the_queued_order_and_leaves_nothing(
        server, run_algorithm, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingException

    server.lifecycle = "stall"
    monkeypatch.setenv("SURFACEMOTION_PLANET_POLL_SECONDS", "5")
    out = str(tmp_path / "order")
    feedback = Recorder()
    moment = {}

    def cancel():
        moment["cancel"] = time.monotonic()
        feedback.cancel()

    threading.Timer(1.0, cancel).start()
    with pytest.raises(QgsProcessingException, match="was cancelled, nothing was written"):
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids_of(server, 2), out), feedback)
    assert time.monotonic() - moment["cancel"] < 2.0
    assert not os.path.exists(out)
    order_id = next(iter(o for o in server.orders if server.orders[o]["states"] == ("cancelled",)))
    assert [entry["method"] for entry in server.requests_to(f"{ORDERS}/{order_id}")][-1] == "PUT"


def test_a_refused_key_is_named_by_its_source_never_shown(server, run_algorithm, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingException

    wrong = "PLAKwrongkey0000000000000000"
    monkeypatch.setenv("PL_API_KEY", wrong)
    feedback = Recorder()
    with pytest.raises(QgsProcessingException) as error:
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids_of(server, 1),
                                                                    str(tmp_path / "o")), feedback)
    assert "API key was refused" in str(error.value) and "PL_API_KEY" in str(error.value)
    assert wrong not in str(error.value) and not [line for line in feedback.lines if wrong in line]
    assert not os.path.exists(str(tmp_path / "o"))


def test_429_with_retry_after_and_a_500_are_retried_and_the_order_completes(server, run_algorithm, tmp_path):
    ids = ids_of(server, 1)
    server.inject(ORDERS, 429, 1, {"Retry-After": "1"})
    server.inject("/download/", 500, 1)
    out = str(tmp_path / "order")
    results, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    posts = server.order_posts()
    assert len(posts) == 2 and posts[1]["time"] - posts[0]["time"] >= 1.0  # Retry-After honoured
    assert len(server.orders) >= 1 and len(results["SCENES"]) == 1
    assert all(md5(os.path.join(out, name)) == value for name, value in manifest_md5(out).items())


def test_a_server_that_does_not_answer_times_out_with_a_clear_message(server):
    from surface_motion.core.errors import UserInputError
    from surface_motion.core.planet.client import open_planet
    from surface_motion.core.planet.orders import wait_for_order

    server.stall(ORDERS, 3.0, 5)
    started = time.monotonic()
    with pytest.raises(UserInputError, match="did not answer within 0.5 s|timed out|ReadTimeout"):
        with open_planet(API_KEY, server.url, timeout=0.5, retries=0) as client:
            wait_for_order(client, "1c2d3e4f-0000-4000-8000-000000000000", 0.05)
    assert time.monotonic() - started < 3.0


def test_planetorder_runs_with_qgis_process(qgis_process_env, server, tmp_path):
    """Headless: estimate without confirmation, then the confirmed order, through qgis_process.bin."""
    import subprocess

    from test_planet_search import planet_url_in_profile

    env = dict(qgis_process_env, PL_API_KEY=API_KEY, SURFACEMOTION_PLANET_POLL_SECONDS="0.05")
    out = str(tmp_path / "order")
    ids = ",".join(ids_of(server, 2))

    def run(confirm):
        arguments = ["qgis_process.bin", "--json", "run", "surfacemotion:planetorder", "--", f"IDS={ids}",
                     "BUNDLE=0", f"AOI={aoi_file(tmp_path)}", f"CONFIRM={confirm}", f"OUTPUT_FOLDER={out}"]
        done = subprocess.run(arguments, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert API_KEY not in done.stdout + done.stderr
        return json.loads(done.stdout)["results"]

    with planet_url_in_profile(env, server.url):
        estimate = run("false")
        assert server.order_posts() == [] and not os.path.exists(out)
        ordered = run("true")
    assert estimate["ORDER_ID"] == "" and estimate["QUOTA_KM2"] > 0
    assert ordered["QUOTA_KM2"] == pytest.approx(estimate["QUOTA_KM2"], rel=1e-9)
    assert ordered["ORDER_ID"] in server.orders and len(ordered["SCENES"]) == 2
    assert_no_key_anywhere(out, [])
    assert {entry["host"] for entry in server.log} == {server.url.split("//")[1]}


def test_the_selected_footprints_are_ordered_with_their_own_geometry(server, run_algorithm, tmp_path):
    from qgis.core import (QgsFeature, QgsField, QgsFields, QgsGeometry, QgsProcessingFeatureSourceDefinition,
                           QgsProject, QgsVectorLayer)
    from qgis.PyQt.QtCore import QVariant

    from surface_motion.core.planet.orders import quota_km2

    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "footprints", "memory")
    fields = QgsFields()
    for name in ("id", "acquired"):
        fields.append(QgsField(name, QVariant.String))
    layer.dataProvider().addAttributes(fields)
    layer.updateFields()
    features = []
    for item in server.items[:4]:
        feature = QgsFeature(layer.fields())
        feature.setAttributes([item["id"], item["properties"]["acquired"]])
        feature.setGeometry(QgsGeometry.fromWkt(polygon_wkt(item["geometry"])))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    try:
        chosen = [f.id() for f in layer.getFeatures()][1:3]
        layer.selectByIds(chosen)
        parameters = order_parameters(tmp_path, [], str(tmp_path / "order"), confirm=False)
        parameters["IDS"] = ""
        parameters["FOOTPRINTS"] = QgsProcessingFeatureSourceDefinition(layer.id(), True)
        results, _, _ = run_algorithm("surfacemotion:planetorder", parameters)
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    expected, _ = quota_km2({item["id"]: item["geometry"] for item in server.items[1:3]}, AOI, True)
    assert results["QUOTA_KM2"] == pytest.approx(expected, rel=1e-6)
    assert server.requests_to("/data/v1/item-types/") == []  # the layer's footprints, no look-up


def polygon_wkt(geometry):
    ring = geometry["coordinates"][0]
    return "POLYGON((" + ", ".join(f"{x} {y}" for x, y in ring) + "))"


def test_an_order_cancelled_at_planet_is_a_clear_error(server, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    server.lifecycle = "cancelled"
    ids = ids_of(server, 2)
    with pytest.raises(QgsProcessingException) as error:
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, str(tmp_path / "order")))
    assert " cancelled: no scene was delivered (" + ", ".join(ids) + ")" in str(error.value)


def test_cancel_while_planet_processes_keeps_the_order_file_for_a_later_run(server, run_algorithm, tmp_path,
                                                                            monkeypatch):
    from qgis.core import QgsProcessingException

    server.lifecycle = "running"
    monkeypatch.setenv("SURFACEMOTION_PLANET_POLL_SECONDS", "0.3")
    out = str(tmp_path / "order")
    feedback = Recorder()
    threading.Timer(1.0, feedback.cancel).start()
    with pytest.raises(QgsProcessingException, match="Planet no longer cancels it and charges its quota"):
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids_of(server, 2), out), feedback)
    assert os.listdir(out) == ["planet_order.json"]
    server.orders[json.load(open(os.path.join(out, "planet_order.json")))["order_id"]]["states"] = ("success",)
    results, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids_of(server, 2), out,
                                                                                confirm=False))
    assert len(server.order_posts()) == 1 and len(results["SCENES"]) == 2


def test_an_order_into_the_temporary_folder_warns_that_it_cannot_be_resumed(server, run_algorithm, tmp_path):
    from qgis.core import QgsProcessing

    feedback = Recorder()
    parameters = order_parameters(tmp_path, ids_of(server, 1), QgsProcessing.TEMPORARY_OUTPUT)
    results, _, _ = run_algorithm("surfacemotion:planetorder", parameters, feedback)
    assert any("temporary folder" in line and "resume" in line for line in feedback.lines)
    assert len(results["SCENES"]) == 1 and os.path.isfile(results["SCENES"][0])


def test_search_groups_and_order_chain_in_a_model(server, tmp_path):
    """Model Builder: planetsearch → planetgroups → planetorder as child steps of one model (the
    footprints flow from step to step); it validates, places one order for every grouped scene and
    downloads it; the saved model file holds no key."""
    import processing
    from qgis.core import (QgsProcessingContext, QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource as Source, QgsProcessingModelOutput,
                           QgsProject, QgsVectorLayer)
    from test_planet_search import aoi_extent

    model = QgsProcessingModelAlgorithm("planet search to order", "test")
    steps = {
        "search": ("surfacemotion:planetsearch", {
            "AOI_EXTENT": aoi_extent(), "START_DATE": "2021-07-01", "END_DATE": "2021-09-01",
            "MAX_CLOUD_COVER": 100, "QUALITY": 1, "MIN_AOI_COVERAGE": 50}),
        "groups": ("surfacemotion:planetgroups", {"TOLERANCE": 30.0, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 0}),
        "order": ("surfacemotion:planetorder", {"BUNDLE": 0, "AOI": aoi_file(tmp_path), "CONFIRM": True}),
    }
    for child_id, (algorithm_id, values) in steps.items():
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        for definition in child.algorithm().parameterDefinitions():  # the designer's defaults
            if definition.isDestination() or definition.name() in ("INPUT", "FOOTPRINTS"):
                continue
            value = values.get(definition.name(), definition.defaultValue())
            if value is not None:
                child.addParameterSources(definition.name(), [Source.fromStaticValue(value)])
        model.addChildAlgorithm(child)
    model.childAlgorithm("groups").addParameterSources("INPUT", [Source.fromChildOutput("search", "OUTPUT")])
    model.childAlgorithm("order").addParameterSources("FOOTPRINTS", [Source.fromChildOutput("groups", "OUTPUT")])
    grouped = QgsProcessingModelOutput("grouped", "Grouped footprints")
    grouped.setChildId("groups")
    grouped.setChildOutputName("OUTPUT")
    model.childAlgorithm("groups").setModelOutputs({"grouped": grouped})
    downloaded = QgsProcessingModelOutput("downloaded", "Downloaded scenes")
    downloaded.setChildId("order")
    downloaded.setChildOutputName("OUTPUT_FOLDER")
    model.childAlgorithm("order").setModelOutputs({"downloaded": downloaded})
    model.updateDestinationParameters()
    valid, errors = model.validate()
    assert valid and errors == [], errors

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = Recorder()
    results = processing.run(model, {"groups:grouped": str(tmp_path / "grouped.gpkg"),
                                     "order:downloaded": str(tmp_path / "order")}, context=context, feedback=feedback)
    footprints = QgsVectorLayer(str(tmp_path / "grouped.gpkg"), "grouped", "ogr")
    ids = sorted(feature["id"] for feature in footprints.getFeatures())
    assert len(ids) >= 3 and footprints.fields().indexOf("group_id") >= 0
    assert len(server.order_posts()) == 1
    scenes = sorted(os.listdir(str(tmp_path / "order")))
    assert sorted(name[:-len("_3B_AnalyticMS_SR_clip.tif")] for name in scenes
                  if name.endswith("_3B_AnalyticMS_SR_clip.tif")) == ids
    assert results["groups:grouped"] == str(tmp_path / "grouped.gpkg")
    assert model.toFile(str(tmp_path / "chain.model3"))
    assert_no_key_anywhere(str(tmp_path), feedback.lines)
