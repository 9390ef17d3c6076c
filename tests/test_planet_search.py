"""surfacemotion:planetsearch and the Planet client against the loopback fake Data API (tests/planet_server.py).

Known answers come from the fake server's items: the filters are re-evaluated here from the item
properties, the AOI coverage is recomputed with shapely in another equal-area CRS (EPSG:6933, the
global cylindrical equal-area grid), and the request log shows pages, waits and that the key only
travels in the Authorization header to 127.0.0.1.
"""
from __future__ import annotations

import configparser
import contextlib
import datetime as dt
import glob
import json
import os
import subprocess
import time

import numpy as np
import pytest

from core.errors import Cancelled, UserInputError
from core.planet.client import open_planet, redact, retry_wait
from core.planet.schema import FIELD_NAMES
from core.planet.search import SearchRequest, coverage_percent, search_footprints
from core.planet.view_angle import true_view_angle
from planet_server import API_KEY, CENTRE, PlanetServer

#: AOI: a 20 km x 12 km box around the scenes' centre (lon/lat).
AOI_HALF = (0.20, 0.055)


def aoi_polygon(half=AOI_HALF) -> dict:
    lon, lat = CENTRE
    x0, x1, y0, y1 = lon - half[0], lon + half[0], lat - half[1], lat + half[1]
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def request(**changes) -> SearchRequest:
    base = dict(aoi=aoi_polygon(), start=dt.datetime(2021, 7, 1), end=dt.datetime(2021, 9, 1),
                max_cloud_cover=100.0, view_angle_range=(0.0, 30.0), quality_categories=())
    base.update(changes)
    return SearchRequest(**base)


@pytest.fixture
def server():
    instance = PlanetServer().start()
    yield instance
    instance.stop()


def independent_coverage(aoi: dict, footprint: dict) -> float:
    """AOI coverage (%) with shapely in EPSG:6933 (cylindrical equal area), independent of the code's LAEA."""
    import pyproj
    from shapely.geometry import Polygon
    from shapely.ops import transform

    def dense(geometry):  # GeoJSON edges are straight in lon/lat: 200 vertices per edge keep them so
        ring = np.asarray(geometry["coordinates"][0], dtype=float)
        points = [a + (b - a) * t for a, b in zip(ring[:-1], ring[1:]) for t in np.linspace(0, 1, 200, endpoint=False)]
        return Polygon(points)

    forward = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True).transform
    area = transform(forward, dense(aoi))
    return 100.0 * area.intersection(transform(forward, dense(footprint))).area / area.area


def search(server, req, **kwargs):
    with open_planet(API_KEY, server.url, timeout=10.0) as client:
        return search_footprints(client, req, **kwargs)


# --------------------------------------------------------------------------- core: search, fields, coverage

def test_every_page_is_read_and_every_field_comes_from_the_item(server):
    result = search(server, request())
    assert len(server.items) == 17 and result.pages == 4 and result.returned == 17  # 5 + 5 + 5 + 2
    assert [e["path"] for e in server.log][:1] == ["/data/v1/quick-search"]
    assert len(server.requests_to("/data/v1/searches/")) == 3
    by_id = {item["id"]: item for item in server.items}
    intersecting = [i for i in server.items if independent_coverage(aoi_polygon(), i["geometry"]) > 0]
    assert sorted(r["id"] for r in result.records) == sorted(i["id"] for i in intersecting)
    for record in result.records:
        assert tuple(k for k in record if k != "geometry") == FIELD_NAMES
        p = by_id[record["id"]]["properties"]
        for name in ("acquired", "instrument", "satellite_id", "view_angle", "satellite_azimuth", "sun_azimuth",
                     "sun_elevation", "cloud_cover", "clear_percent", "gsd", "ground_control", "quality_category",
                     "publishing_stage"):
            assert record[name] == p[name], name
        assert record["true_view_angle"] == float(true_view_angle(p["view_angle"], p["satellite_azimuth"]))
        assert record["orbit"] == "descending"  # ~20 UTC at 147° W = ~10 h local solar time
    assert [r["acquired"] for r in result.records] == sorted(r["acquired"] for r in result.records)
    assert {r["instrument"] for r in result.records} == {"PS2", "PS2.SD", "PSB.SD"}


def test_aoi_coverage_matches_shapely_in_another_equal_area_crs(server):
    result = search(server, request())
    by_id = {item["id"]: item for item in server.items}
    values = []
    for record in result.records:
        expected = independent_coverage(aoi_polygon(), by_id[record["id"]]["geometry"])
        assert record["aoi_coverage_pct"] == pytest.approx(expected, abs=0.05), record["id"]
        values.append(expected)
    assert min(values) < 60.0 < max(values) <= 100.0  # the shifted scenes cover different shares
    # the whole AOI inside one footprint: 100 %; a footprint beside it: 0 %
    footprint = server.items[0]["geometry"]
    from shapely.geometry import mapping, shape

    inside = mapping(shape(footprint).centroid.buffer(0.01))
    assert coverage_percent(inside, [footprint])[0] == pytest.approx(100.0)
    far = json.loads(json.dumps(footprint).replace("-147.", "-149."))
    assert coverage_percent(inside, [far])[0] == 0.0


def test_filters_keep_exactly_the_matching_items(server):
    req = request(instruments=("PSB.SD", "PS2.SD"), max_cloud_cover=30.0, min_clear_percent=70.0,
                  view_angle_range=(1.0, 4.0), ground_control=True, quality_categories=("standard",),
                  publishing_stages=("finalized", "standard"), min_aoi_coverage=40.0,
                  start=dt.datetime(2021, 7, 5), end=dt.datetime(2021, 8, 20))
    result = search(server, req)
    expected = []
    for item in server.items:
        p = item["properties"]
        acquired = dt.datetime.strptime(p["acquired"], "%Y-%m-%dT%H:%M:%S.%fZ")
        if (dt.datetime(2021, 7, 5) <= acquired < dt.datetime(2021, 8, 20) and p["instrument"] in ("PSB.SD", "PS2.SD")
                and p["cloud_cover"] <= 0.30 and p["clear_percent"] >= 70.0 and 1.0 <= p["view_angle"] <= 4.0
                and p["ground_control"] and p["quality_category"] == "standard"
                and p["publishing_stage"] in ("finalized", "standard")
                and independent_coverage(aoi_polygon(), item["geometry"]) >= 40.0):
            expected.append(item["id"])
    assert 2 <= len(expected) < 17
    assert sorted(r["id"] for r in result.records) == sorted(expected)
    sent = json.loads(server.requests_to("/data/v1/quick-search")[0]["body"])
    kinds = {f.get("field_name", f["type"]) for f in sent["filter"]["config"]}
    assert {"acquired", "instrument", "cloud_cover", "view_angle", "clear_percent", "quality_category",
            "publishing_stage", "geometry", "PermissionFilter"} <= kinds


def test_progress_and_a_log_line_per_page(server):
    progress, lines = [], []
    result = search(server, request(), progress=progress.append, log=lines.append)
    assert lines == [f"result page {k} received" for k in (1, 2, 3, 4)] and result.returned == 17
    assert progress == pytest.approx([95 * (1 - 0.5 ** k) for k in range(1, result.pages + 1)] + [100.0])


def test_cancel_between_pages_stops_before_the_next_page(server):
    pages_seen = []

    def is_canceled():
        return len(pages_seen) >= 1

    with pytest.raises(Cancelled):
        with open_planet(API_KEY, server.url, is_canceled=is_canceled) as client:
            search_footprints(client, request(), log=pages_seen.append, is_canceled=is_canceled)
    assert pages_seen == ["result page 1 received"]
    assert len(server.requests_to("/data/v1/searches/")) == 0


# --------------------------------------------------------------------------- client: retries, errors, key

def test_429_waits_for_retry_after(server):
    server.inject("/data/v1/searches/", 429, 1, {"Retry-After": "2"})
    started = time.monotonic()
    result = search(server, request())
    assert result.returned == 17
    pages = server.requests_to("/data/v1/searches/")
    assert len(pages) == 4  # the refused page asked again
    assert pages[1]["time"] - pages[0]["time"] >= 2.0
    assert time.monotonic() - started >= 2.0
    assert retry_wait(429, "7", 1) == 7.0 and retry_wait(500, None, 3) == 4.0 and retry_wait(429, None, 1) == 1.0


def test_500_then_success_backs_off_and_retries(server):
    server.inject("/data/v1/quick-search", 500, 2)
    result = search(server, request())
    posts = server.requests_to("/data/v1/quick-search")
    assert len(posts) == 3 and result.returned == 17
    assert posts[1]["time"] - posts[0]["time"] >= 1.0 and posts[2]["time"] - posts[1]["time"] >= 2.0


def test_persistent_500_gives_up_with_the_status(server):
    server.inject("/data/v1/quick-search", 500, 10)
    with pytest.raises(UserInputError, match=r"HTTP 500.*after 1 retries"):
        with open_planet(API_KEY, server.url, retries=1) as client:
            search_footprints(client, request())


def test_a_rate_limit_that_does_not_end_is_reported(server):
    server.inject("/data/v1/quick-search", 429, 5, {"Retry-After": "0.2"})
    with pytest.raises(UserInputError, match=r"rate limit was reached \(HTTP 429, still after 2 retries; the "
                                             r"server asks to wait 0.2 s\)"):
        with open_planet(API_KEY, server.url, retries=2) as client:
            search_footprints(client, request())
    posts = server.requests_to("/data/v1/quick-search")
    assert len(posts) == 3 and all(b["time"] - a["time"] >= 0.2 for a, b in zip(posts, posts[1:]))


def test_a_wrong_key_is_refused_naming_its_source_not_the_key(server):
    wrong = "PLAKwrongwrongwrong42"
    with pytest.raises(UserInputError) as caught:
        with open_planet(wrong, server.url, key_source="the PL_API_KEY environment variable") as client:
            search_footprints(client, request())
    text = str(caught.value)
    assert "The Planet API key was refused (HTTP 401" in text and "PL_API_KEY environment variable" in text
    assert wrong not in text and wrong not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is not None  # raised `from None`
    assert server.log[-1]["headers"]["Authorization"] == f"api-key {wrong}"


def test_a_stalled_server_times_out_with_a_clear_message(server):
    server.stall("/data/v1/quick-search", 3.0, 5)
    started = time.monotonic()
    with pytest.raises(UserInputError, match=r"did not answer within 0.5 s \(after 1 retries\)"):
        with open_planet(API_KEY, server.url, timeout=0.5, retries=1) as client:
            search_footprints(client, request())
    assert time.monotonic() - started < 3.0


def test_redact_hides_every_form_of_the_key():
    assert redact("a PLAK/x+y b PLAK%2Fx%2By c", "PLAK/x+y") == "a *** b *** c"
    assert redact("nothing", "") == "nothing"
    assert redact("key K, proxy p@ss and p%40ss", "K", "p@ss") == "key ***, proxy *** and ***"


def test_requests_go_through_the_proxy(server):
    """A proxy given to the client carries every request (the fake server doubles as an HTTP proxy on
    loopback: the target is then the absolute URL of the API host, which is never resolved)."""
    api = "http://planet-api.invalid"
    with open_planet(API_KEY, api, proxy=f"http://me:secret@{server.url.split('//')[1]}") as client:
        result = search_footprints(client, request())
    assert result.returned == 17
    assert {entry["host"] for entry in server.log} == {"planet-api.invalid"}
    assert all(entry["target"].startswith(api + "/data/v1/") for entry in server.log)
    assert server.log[0]["headers"]["Proxy-Authorization"] == "Basic bWU6c2VjcmV0"  # me:secret


def test_loopback_servers_are_never_reached_through_a_proxy(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would fail if used
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    assert search(server, request()).returned == 17


def test_the_bundle_spec_is_never_fetched_from_planet(server):
    from planet import specs

    search(server, request())
    assert "PSScene" in specs.PRODUCT_BUNDLES["item_types"]  # preset, no request to api.planet.com
    assert {entry["host"] for entry in server.log} == {server.url.split("//")[1]}


# --------------------------------------------------------------------------- the algorithm

@pytest.fixture
def planet_settings(provider, server, monkeypatch):
    """The provider pointed at the fake server; key in PL_API_KEY (the last fallback)."""
    from processing.core.ProcessingConfig import ProcessingConfig

    monkeypatch.setenv("PL_API_KEY", API_KEY)
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_URL", server.url)
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_API_KEY", "")
    yield server
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_URL", "https://api.planet.com")
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_API_KEY", "")


def aoi_extent() -> str:
    lon, lat = CENTRE
    return f"{lon - AOI_HALF[0]},{lon + AOI_HALF[0]},{lat - AOI_HALF[1]},{lat + AOI_HALF[1]} [EPSG:4326]"


def algorithm_parameters(out, **changes):
    parameters = {"AOI_EXTENT": aoi_extent(), "START_DATE": "2021-07-01", "END_DATE": "2021-09-01",
                  "MAX_CLOUD_COVER": 100, "QUALITY": 1, "OUTPUT": str(out)}
    parameters.update(changes)
    return parameters


def recording_feedback():
    from qgis.core import QgsProcessingFeedback

    class Recording(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines, self.progress = [], []
            self.progressChanged.connect(self.progress.append)

        def pushInfo(self, info):  # noqa: N802
            self.lines.append(info)
            super().pushInfo(info)

        def reportError(self, error, fatal=False):  # noqa: N802
            self.lines.append(error)
            super().reportError(error, fatal)

    return Recording()


def test_planetsearch_writes_the_footprints_layer_and_loads_it_styled(planet_settings, run_algorithm, tmp_path):
    from qgis.core import QgsProject, QgsVectorLayer
    from shapely.geometry import shape

    feedback = recording_feedback()
    results, context, _ = run_algorithm("surfacemotion:planetsearch",
                                        algorithm_parameters(tmp_path / "fp.gpkg", MIN_AOI_COVERAGE=50),
                                        feedback=feedback)
    layer = QgsVectorLayer(results["OUTPUT"], "fp", "ogr")
    assert layer.crs().authid() == "EPSG:4326"
    assert [f.name() for f in layer.fields() if f.name() != "fid"] == list(FIELD_NAMES)
    expected = [i for i in planet_settings.items if independent_coverage(aoi_polygon(), i["geometry"]) >= 50.0]
    assert results["N_SCENES"] == layer.featureCount() == len(expected) >= 3
    features = {f["id"]: f for f in layer.getFeatures()}
    assert set(features) == {i["id"] for i in expected}
    for item in expected:
        feature = features[item["id"]]
        assert feature["aoi_coverage_pct"] == pytest.approx(independent_coverage(aoi_polygon(), item["geometry"]),
                                                            abs=0.05)
        assert feature["ground_control"] == item["properties"]["ground_control"]
        assert feature.geometry().area() == pytest.approx(shape(item["geometry"]).area, rel=1e-6)
    assert any("result page 4 received" == line for line in feedback.lines)
    assert "the PL_API_KEY environment variable" in " ".join(feedback.lines)
    # loaded on completion (as from the Toolbox): styled from ui/styles/planet_footprints.qml, labelled by date
    import processing

    project = QgsProject.instance()
    before = set(project.mapLayers())
    processing.runAndLoadResults("surfacemotion:planetsearch",
                                 algorithm_parameters(tmp_path / "loaded.gpkg", MIN_AOI_COVERAGE=50))
    added = [project.mapLayer(i) for i in set(project.mapLayers()) - before]
    assert [lyr.name() for lyr in added] == [f"Planet footprints 2021-07-01 → 2021-09-01 ({len(expected)} scenes)"]
    loaded = added[0]
    assert loaded.labelsEnabled() and loaded.labeling().settings().fieldName == 'left("acquired", 10)'
    assert loaded.renderer().symbol().symbolLayer(0).strokeColor().name() == "#e6550d"
    project.removeMapLayer(loaded.id())
    key_never_written(tmp_path, feedback.lines)


def key_never_written(folder, lines=()) -> None:
    """The API key appears in no file below ``folder`` and in no log line."""
    for path in glob.glob(os.path.join(str(folder), "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                assert API_KEY.encode() not in handle.read(), path
    assert all(API_KEY not in line for line in lines)


def test_the_key_from_the_provider_setting_and_a_refused_one(planet_settings, run_algorithm, tmp_path, monkeypatch):
    from processing.core.ProcessingConfig import ProcessingConfig
    from qgis.core import QgsProcessingException

    monkeypatch.delenv("PL_API_KEY")
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_API_KEY", "PLAKnotthekey0000")
    feedback = recording_feedback()
    with pytest.raises(QgsProcessingException) as caught:
        run_algorithm("surfacemotion:planetsearch", algorithm_parameters(tmp_path / "out" / "fp.gpkg"), feedback)
    assert "The Planet API key was refused" in str(caught.value) and "provider setting" in str(caught.value)
    assert "PLAKnotthekey0000" not in str(caught.value) + " ".join(feedback.lines)
    assert not os.path.exists(tmp_path / "out" / "fp.gpkg")
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_API_KEY", API_KEY)
    results, _, _ = run_algorithm("surfacemotion:planetsearch", algorithm_parameters(tmp_path / "ok.gpkg"))
    assert results["N_SCENES"] > 0


def test_the_key_from_a_qgis_authentication_configuration(planet_settings, run_algorithm, tmp_path, monkeypatch):
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    monkeypatch.delenv("PL_API_KEY")
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("master-for-tests", True)
    config = QgsAuthMethodConfig("Basic")
    config.setName("Planet test key")
    config.setConfig("username", "planet")
    config.setConfig("password", API_KEY)
    stored = manager.storeAuthenticationConfig(config)
    assert stored[0] if isinstance(stored, tuple) else stored
    try:
        feedback = recording_feedback()
        results, _, _ = run_algorithm("surfacemotion:planetsearch",
                                      algorithm_parameters(tmp_path / "fp.gpkg", API_KEY=config.id()), feedback)
        assert results["N_SCENES"] > 0
        assert f"the QGIS authentication configuration '{config.id()}'" in " ".join(feedback.lines)
        assert planet_settings.log[-1]["headers"]["Authorization"] == f"api-key {API_KEY}"
        key_never_written(tmp_path, feedback.lines)
    finally:
        manager.removeAuthenticationConfig(config.id())


def test_without_the_sdk_the_error_names_the_package_and_the_installer(planet_settings, run_algorithm, tmp_path,
                                                                        monkeypatch):
    import sys

    from qgis.core import QgsProcessingException

    from core.dependencies import INSTALL_ACTION, missing_notice

    for name in [m for m in sys.modules if m == "planet" or m.startswith("planet.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "planet", None)  # import planet -> ModuleNotFoundError
    with pytest.raises(QgsProcessingException) as caught:
        run_algorithm("surfacemotion:planetsearch", algorithm_parameters(tmp_path / "out" / "fp.gpkg"))
    assert "needs the Python package 'planet'" in str(caught.value) and INSTALL_ACTION in str(caught.value)
    assert not os.path.exists(tmp_path / "out")
    assert missing_notice(["planet"]) == ("The Planet catalogue search and orders need planet, not installed (until "
                                          "then they stop with an install hint).")


def test_qgis_proxy_reads_the_network_settings(provider):
    from qgis.core import QgsSettings

    from surface_motion.algorithms.planet import qgis_proxy

    settings = QgsSettings()
    keys = {"proxy/proxyEnabled": True, "proxy/proxyType": "HttpProxy", "proxy/proxyHost": "127.0.0.1",
            "proxy/proxyPort": "3128", "proxy/proxyUser": "me", "proxy/proxyPassword": "p@ss",
            "proxy/proxyExcludedUrls": "http://127.0.0.9"}
    old = {key: settings.value(key) for key in keys}
    try:
        for key, value in keys.items():
            settings.setValue(key, value)
        assert qgis_proxy("https://api.planet.com") == "http://me:p%40ss@127.0.0.1:3128"
        assert qgis_proxy("http://127.0.0.9:8000") is None
        settings.setValue("proxy/proxyEnabled", False)
        assert qgis_proxy("https://api.planet.com") is None
    finally:
        for key, value in old.items():
            settings.remove(key) if value is None else settings.setValue(key, value)


@contextlib.contextmanager
def planet_url_in_profile(env: dict, url: str):
    """``with planet_url_in_profile(qgis_process_env, server.url):`` qgis_process.bin runs with the provider
    setting 'Planet API base URL' = ``url`` (written into the profile's QGIS3.ini, restored afterwards: the
    profile is shared by the session's command-line tests)."""
    ini = glob.glob(os.path.join(env["QGIS_CUSTOM_CONFIG_PATH"], "profiles", "default", "QGIS", "QGIS3.ini"))
    assert ini, "the qgis_process profile was not created"
    original = open(ini[0], encoding="utf-8").read()
    parser = configparser.RawConfigParser()
    parser.optionxform = str
    parser.read_string(original)
    if not parser.has_section("Processing"):
        parser.add_section("Processing")
    parser.set("Processing", "Configuration\\SURFACEMOTION_PLANET_URL", url)
    with open(ini[0], "w", encoding="utf-8") as handle:
        parser.write(handle, space_around_delimiters=False)
    try:
        yield
    finally:
        with open(ini[0], "w", encoding="utf-8") as handle:
            handle.write(original)


def test_planetsearch_runs_with_qgis_process(qgis_process_env, server, tmp_path):
    env = dict(qgis_process_env, PL_API_KEY=API_KEY)
    out = tmp_path / "fp.gpkg"
    arguments = ["qgis_process.bin", "--json", "run", "surfacemotion:planetsearch", "--",
                 f"AOI_EXTENT={aoi_extent()}", "START_DATE=2021-07-01", "END_DATE=2021-09-01", "MAX_CLOUD_COVER=100",
                 "QUALITY=1", "MIN_AOI_COVERAGE=50", f"OUTPUT={out}"]
    with planet_url_in_profile(env, server.url):
        done = subprocess.run(arguments, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout)["results"]
    expected = [i for i in server.items if independent_coverage(aoi_polygon(), i["geometry"]) >= 50.0]
    assert results["N_SCENES"] == len(expected) >= 3
    assert API_KEY not in done.stdout + done.stderr
    key_never_written(tmp_path)
    assert {entry["host"] for entry in server.log} == {server.url.split("//")[1]}


def test_planetsearch_runs_in_a_model_with_the_key_as_a_model_input(planet_settings, tmp_path, monkeypatch):
    """Model Builder: the search as a child step, its authentication-configuration input exposed as a model
    parameter (left empty: PL_API_KEY); the saved model file holds no key."""
    import processing
    from qgis.core import (QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm,
                           QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource,
                           QgsProcessingModelParameter, QgsProcessingParameterAuthConfig, QgsProject, QgsVectorLayer)

    model = QgsProcessingModelAlgorithm("planet search", "test")
    model.addModelParameter(QgsProcessingParameterAuthConfig("key", "Planet API key", optional=True),
                            QgsProcessingModelParameter("key"))
    child = QgsProcessingModelChildAlgorithm("surfacemotion:planetsearch")
    child.setChildId("search")
    sources = {"AOI_EXTENT": aoi_extent(), "START_DATE": "2021-07-01", "END_DATE": "2021-09-01",
               "MAX_CLOUD_COVER": 100, "QUALITY": 1, "MIN_AOI_COVERAGE": 50, "OUTPUT": str(tmp_path / "fp.gpkg")}
    for name, value in sources.items():
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    child.addParameterSources("API_KEY", [QgsProcessingModelChildParameterSource.fromModelParameter("key")])
    model.addChildAlgorithm(child)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    processing.run(model, {"key": ""}, context=context, feedback=QgsProcessingFeedback())
    expected = [i for i in planet_settings.items if independent_coverage(aoi_polygon(), i["geometry"]) >= 50.0]
    assert QgsVectorLayer(str(tmp_path / "fp.gpkg"), "fp", "ogr").featureCount() == len(expected)
    assert model.toFile(str(tmp_path / "search.model3"))
    key_never_written(tmp_path)
