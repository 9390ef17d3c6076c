"""surfacemotion:s1inventory: STAC (Copernicus Data Space) and ASF searches against the loopback
catalogue of tests/stac_server.py (paging, filters, faults), the offline folder mode on the real
product of tests/data/s1, and OST's refine checked against an independent geodesic area."""
import datetime as dt
import os
import shutil
import zipfile

import pytest
from stac_server import AOI, AOI_BOX, StacServer

from core.errors import UserInputError
from core.sentinel1.http import HttpError, Session
from core.sentinel1.inventory import (InventoryRequest, coverage_report, folder_inventory, local_product_record,
                                      parse_relative_orbits, refine, relative_orbit_of)
from core.sentinel1.stac import multihash_checksum, search_asf, search_stac

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "s1")
SAFE = os.path.join(DATA, "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
JUNE = (dt.datetime(2021, 6, 1), dt.datetime(2021, 7, 1))


@pytest.fixture
def server():
    instance = StacServer().start()
    yield instance
    instance.stop()


def request(**changes) -> InventoryRequest:
    values = dict(aoi=AOI, start=JUNE[0], end=JUNE[1], polarisation="any")
    values.update(changes)
    return InventoryRequest(**values)


def fast_session(**kwargs) -> Session:
    return Session(None, kwargs.pop("timeout", 5.0), sleep=lambda s: None, **kwargs)


def geodesic_share(part_box, whole_box=AOI_BOX) -> float:
    """100 × geodesic area(part ∩ AOI) / area(AOI) for lon/lat boxes (pyproj.Geod, not the projection
    the code uses); edges densified every 0.001° so they follow the parallels as GeoJSON's do."""
    import numpy as np
    from pyproj import Geod

    def area(box):
        west, south, east, north = box
        lons = np.concatenate([np.linspace(west, east, 400), np.full(300, east), np.linspace(east, west, 400),
                               np.full(300, west)])
        lats = np.concatenate([np.full(400, south), np.linspace(south, north, 300), np.full(400, north),
                               np.linspace(north, south, 300)])
        return abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0])

    inter = (max(part_box[0], whole_box[0]), max(part_box[1], whole_box[1]), min(part_box[2], whole_box[2]),
             min(part_box[3], whole_box[3]))
    return 100.0 * area(inter) / area(whole_box)


# --------------------------------------------------------------------------- STAC search


def test_every_page_is_read_and_every_field_comes_from_the_item(server):
    lines = []
    result = search_stac(fast_session(), server.stac_url, request(), log=lines.append)
    in_june = [p for p in server.products if JUNE[0] <= p["start"] < JUNE[1]]
    in_aoi = [p for p in in_june if p["truth"]["footprint"][0] < AOI_BOX[2]]  # one product lies east of the AOI
    assert result.returned == len(in_aoi) == 11 and result.pages == 3 and len(lines) == 3
    searches = server.requests_to("/v1/search")
    assert [e["method"] for e in searches] == ["POST"] * 3
    assert '"token": "next:s0:4"' in searches[1]["body"] and '"intersects"' in searches[1]["body"]  # merged body
    assert [r["id"] for r in result.records] == sorted((p["name"] for p in in_aoi),
                                                       key=lambda n: n.split("_")[4])
    for record in result.records:
        product = server.by_name[record["id"]]
        truth = product["truth"]
        assert record["relative_orbit"] == truth["relative_orbit"]
        assert record["absolute_orbit"] == truth["absolute_orbit"]
        assert record["orbit_direction"] == truth["orbit_direction"]
        assert record["polarisations"] == truth["polarisations"] and record["platform"] == truth["platform"]
        assert record["start_time"] == product["start"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert record["product_type"] == "GRD" and record["mode"] == "IW" and record["slice_number"] is None
        assert record["checksum"] == "md5:" + product["md5"] and record["size_bytes"] == len(product["archive"])
        assert record["download_url"] == f"{server.url}/download/{record['id']}.zip"
        assert record["key"] == f"{truth['orbit_direction']}_{''.join(truth['polarisations'].split())}"


def test_get_next_links_are_followed_too(server):
    server.get_paging = True
    result = search_stac(fast_session(), server.stac_url, request())
    assert result.pages == 3 and len(result.records) == 11
    assert [e["method"] for e in server.requests_to("/v1/search")] == ["POST", "GET", "GET"]


def test_filters_keep_exactly_the_matching_products(server):
    def ids(**changes):
        return {r["id"] for r in search_stac(fast_session(), server.stac_url, request(**changes)).records}

    every = ids()
    truth = {p["name"]: p["truth"] for p in server.products}
    assert ids(orbit_direction="DESCENDING") == {i for i in every if truth[i]["orbit_direction"] == "DESCENDING"}
    assert ids(relative_orbits=[95, 168]) == {i for i in every if truth[i]["relative_orbit"] in (95, 168)}
    dual = ids(polarisation="VV VH")
    assert dual == {i for i in every if truth[i]["polarisations"] == "VV VH"} and len(dual) == 9
    assert ids(polarisation="VV") == {i for i in every if "VV" in truth[i]["polarisations"]}
    assert ids(polarisation="HH HV") == {i for i in every if truth[i]["polarisations"] == "HH HV"}
    late = ids(start=dt.datetime(2021, 6, 15), end=dt.datetime(2021, 6, 16))  # end excluded, start included
    assert late == {i for i in every if i.split("_")[4].startswith("20210615")} and len(late) == 2


def test_asf_search_gives_the_same_records(server):
    stac = search_stac(fast_session(), server.stac_url, request()).records
    asf = search_asf(fast_session(), server.url + "/asf", request()).records
    keys = ("id", "start_time", "stop_time", "relative_orbit", "absolute_orbit", "orbit_direction", "polarisations",
            "product_type", "mode", "checksum", "size_bytes", "download_url", "key")
    assert [{k: r[k] for k in keys} for r in asf] == [{k: r[k] for k in keys} for r in stac]
    query = server.requests_to("/asf")[-1]["query"]
    assert "processingLevel=GRD_HD" in query and "output=geojson" in query and "intersectsWith=POLYGON" in query


def test_a_full_asf_answer_is_reported(server):
    result = search_asf(fast_session(), server.url + "/asf", request(), max_results=5)
    assert len(result.records) == 5 and any("maximum of 5 products" in m for m in result.messages)


def test_500_then_success_retries_and_persistent_500_names_the_status(server):
    server.inject("/v1/search", 500, count=1)
    session = fast_session()
    assert len(search_stac(session, server.stac_url, request()).records) == 11 and session.waits == [1.0]
    server.inject("/v1/search", 503, count=10)
    with pytest.raises(HttpError, match=r"HTTP 503 to the search \(page 1\) \(still after 2 retries\)") as error:
        search_stac(fast_session(retries=2), server.stac_url, request())
    assert error.value.status == 503


def test_a_stalled_server_times_out_with_a_clear_message(server):
    server.stall("/v1/search", 2.0, count=3)
    with pytest.raises(HttpError, match=r"did not answer the search \(page 1\) within 0.3 s \(after 1 retries\)"):
        search_stac(fast_session(timeout=0.3, retries=1), server.stac_url, request())


def test_a_401_says_credentials_are_missing(server):
    server.require_auth_search = True
    with pytest.raises(HttpError, match="HTTP 401.*no credentials were given") as error:
        search_stac(fast_session(), server.stac_url, request())
    assert error.value.status == 401 and len(server.requests_to("/v1/search")) == 1  # never retried


def test_a_url_that_is_not_a_stac_api_is_named(server):
    with pytest.raises(UserInputError, match="HTTP 404 to the search.*the URL setting"):
        search_stac(fast_session(), server.url + "/elsewhere", request())  # 404 JSON, then no features
    server.inject("/v1/search", 200, count=1)  # JSON without features
    with pytest.raises(UserInputError, match="answered without 'features'"):
        search_stac(fast_session(), server.stac_url, request())


def test_cancel_stops_before_the_next_page(server):
    calls = []

    def is_canceled():
        calls.append(1)
        return len(server.requests_to("/v1/search")) >= 1

    from core.errors import Cancelled

    with pytest.raises(Cancelled):
        search_stac(fast_session(is_canceled=is_canceled), server.stac_url, request(), is_canceled=is_canceled)
    assert len(server.requests_to("/v1/search")) == 1


@pytest.mark.parametrize("changes, message", [
    (dict(end=JUNE[0]), "must be after the start date"),
    (dict(relative_orbits=[0, 176]), "Relative orbits are 1 to 175"),
    (dict(min_coverage=0.0), "minimum coverage"),
    (dict(aoi={"type": "Polygon", "coordinates": [[[11, 45], [11, 45], [11, 45], [11, 45]]]}), "area of interest"),
    (dict(polarisation="VH"), "Unknown polarisation"),
])
def test_bad_requests_are_refused_before_any_request(server, changes, message):
    with pytest.raises(UserInputError, match=message):
        search_stac(fast_session(), server.stac_url, request(**changes))
    assert server.log == []


def test_relative_orbit_text():
    assert parse_relative_orbits("22, 95;117 95") == [22, 95, 117] and parse_relative_orbits("") == []
    with pytest.raises(UserInputError, match="whole numbers"):
        parse_relative_orbits("22, ninety")


def test_multihash_checksums():
    assert multihash_checksum("d50110" + "ab" * 16) == "md5:" + "ab" * 16
    assert multihash_checksum("1220" + "cd" * 32) == "sha256:" + "cd" * 32
    assert multihash_checksum("") == "" and multihash_checksum("zz12") == ""


# --------------------------------------------------------------------------- refine


def test_refine_groups_by_key_track_and_day_with_geodesic_coverages(server):
    records = search_stac(fast_session(), server.stac_url, request()).records
    refined = refine(records, AOI)
    assert refined.complete_by_key == {"ASCENDING_VVVH": 3, "DESCENDING_VVVH": 2, "DESCENDING_HHHV": 1,
                                       "ASCENDING_VV": 0}
    assert refined.selected_key == "ASCENDING_VVVH"
    for record in refined.records:
        footprint = server.by_name[record["id"]]["truth"]["footprint"]
        assert record["aoi_coverage_pct"] == pytest.approx(geodesic_share(footprint), abs=0.02)
    mosaics = {(m.key, m.relative_orbit, m.acquisition): m for m in refined.mosaics}
    assert len(mosaics) == 8
    partial = mosaics[("ASCENDING_VVVH", 117, "2021-06-27")]
    assert not partial.complete and partial.coverage_pct == pytest.approx(geodesic_share((10.6, 45.15, 11.9, 45.6)),
                                                                          abs=0.02)
    assert mosaics[("ASCENDING_VV", 168, "2021-06-08")].coverage_pct == pytest.approx(
        geodesic_share((11.2, 44.6, 12.5, 45.7)), abs=0.02)
    two_slices = mosaics[("ASCENDING_VVVH", 117, "2021-06-03")]
    assert len(two_slices.records) == 2 and two_slices.complete and two_slices.coverage_pct == pytest.approx(100.0)
    selected = sorted(r["id"] for r in refined.records if r["selected"])
    assert len(selected) == 6 and all(r["relative_orbit"] == 117 for r in refined.records if r["selected"])
    assert all(not r["selected"] for r in refined.records if r["acquisition"] == "2021-06-27")
    report = coverage_report(refined)
    assert "ASCENDING_VVVH track 117: 3 of 4 day(s) cover the AOI" in report[1]
    assert report[-3] == "ASCENDING_VVVH: 3 complete mosaic(s) ← preselected"


def test_a_lower_minimum_coverage_completes_more_mosaics(server):
    records = search_stac(fast_session(), server.stac_url, request()).records
    loose = refine(records, AOI, min_coverage=45.0)
    assert loose.complete_by_key["ASCENDING_VVVH"] == 4 and loose.complete_by_key["ASCENDING_VV"] == 1


def test_nothing_is_preselected_when_no_mosaic_is_complete(server):
    records = search_stac(fast_session(), server.stac_url, request(polarisation="VV VH",
                                                                    start=dt.datetime(2021, 6, 27))).records
    refined = refine(records, AOI)
    assert len(refined.records) == 1 and refined.selected_key is None
    assert not any(r["selected"] for r in refined.records)


# --------------------------------------------------------------------------- folder mode


REAL = dict(id="S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371", platform="S1B",
            start_time="2021-12-23T05:11:22.594441Z", stop_time="2021-12-23T05:11:47.593146Z", relative_orbit=22,
            absolute_orbit=30148, orbit_direction="DESCENDING", slice_number=9, polarisations="VV VH",
            product_type="GRD", mode="IW", key="DESCENDING_VVVH", acquisition="2021-12-23")
ROME = {"type": "Polygon", "coordinates": [[[12.4, 41.8], [12.6, 41.8], [12.6, 42.0], [12.4, 42.0], [12.4, 41.8]]]}


def test_the_real_safe_gives_its_manifest_values():
    record = local_product_record(SAFE)
    assert {k: record[k] for k in REAL} == REAL
    assert record["geometry"]["coordinates"][0][:4] == [[14.925448, 40.876698], [11.865704, 41.281048],
                                                        [12.189661, 42.780445], [15.321935, 42.376778]]
    assert relative_orbit_of("S1B", 30148) == 22  # ESA's formula agrees with the manifest


def test_folder_mode_reads_safe_folders_and_zips_offline(tmp_path):
    shutil.copytree(SAFE, tmp_path / "a" / os.path.basename(SAFE),
                    ignore=shutil.ignore_patterns("measurement"))
    archive = tmp_path / "b" / (REAL["id"] + ".zip")
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(os.path.join(SAFE, "manifest.safe"), os.path.basename(SAFE) + "/manifest.safe")
    (tmp_path / "b" / "S1A_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_ABCD.zip").write_bytes(b"half")
    lines = []
    req = request(aoi=ROME, start=dt.datetime(2021, 12, 1), end=dt.datetime(2022, 1, 1), polarisation="VV VH")
    records = folder_inventory(str(tmp_path), req, lines.append)
    assert len(records) == 1 and {k: records[0][k] for k in REAL} == REAL  # listed once, as the .SAFE
    assert records[0]["path"].endswith(".SAFE")
    assert any("not a readable zip file" in line for line in lines)
    from_zip = local_product_record(str(archive))
    assert {k: from_zip[k] for k in REAL} == REAL and from_zip["size_bytes"] == archive.stat().st_size
    refined = refine(records, ROME)
    assert refined.records[0]["aoi_coverage_pct"] == pytest.approx(100.0) and refined.selected_key == "DESCENDING_VVVH"
    assert folder_inventory(str(tmp_path), request(aoi=ROME, start=dt.datetime(2022, 1, 1),
                                                   end=dt.datetime(2022, 2, 1))) == []


def test_folder_mode_bad_inputs(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        folder_inventory(str(tmp_path / "missing"), request())
    with pytest.raises(UserInputError, match="No .zip or .SAFE product"):
        folder_inventory(str(tmp_path), request())
    odd = tmp_path / "S1A_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_0000.SAFE"
    odd.mkdir()
    with pytest.raises(UserInputError, match="no manifest.safe"):
        local_product_record(str(odd))
    with pytest.raises(UserInputError, match="not named as a Sentinel-1 GRD product"):
        local_product_record(str(tmp_path / "holiday.zip"))


# --------------------------------------------------------------------------- the algorithm


@pytest.fixture
def s1_settings(provider, server):
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.setSettingValue("SURFACEMOTION_S1_STAC_URL", server.stac_url)
    ProcessingConfig.setSettingValue("SURFACEMOTION_S1_ASF_URL", server.url + "/asf")
    yield server
    from surface_motion.algorithms.settings import DEFAULTS

    for key in ("SURFACEMOTION_S1_STAC_URL", "SURFACEMOTION_S1_ASF_URL"):
        ProcessingConfig.setSettingValue(key, DEFAULTS[key])


def parameters(tmp_path, **changes):
    values = {"AOI_EXTENT": "11.0,11.4,45.0,45.3 [EPSG:4326]", "START_DATE": "2021-06-01", "END_DATE": "2021-07-01",
              "POLARISATION": 4, "OUTPUT": str(tmp_path / "products.gpkg"), "MOSAICS": str(tmp_path / "mosaics.gpkg")}
    values.update(changes)
    return values


def test_s1inventory_writes_products_and_mosaics(s1_settings, run_algorithm, tmp_path):
    from qgis.core import QgsVectorLayer

    results, _, _ = run_algorithm("surfacemotion:s1inventory", parameters(tmp_path))
    assert results["N_PRODUCTS"] == 11 and results["SELECTED_KEY"] == "ASCENDING_VVVH"
    layer = QgsVectorLayer(str(tmp_path / "products.gpkg"), "p", "ogr")
    assert layer.isValid() and layer.featureCount() == 11 and layer.crs().authid() == "EPSG:4326"
    features = {f["id"]: f for f in layer.getFeatures()}
    assert sum(bool(f["selected"]) for f in features.values()) == 6
    some = features[s1_settings.products[7]["name"]]
    assert some["relative_orbit"] == 95 and some["orbit_direction"] == "DESCENDING" and some["polarisations"] == "VV VH"
    assert some["checksum"] == "md5:" + s1_settings.products[7]["md5"] and some["aoi_coverage_pct"] == pytest.approx(100)
    mosaics = QgsVectorLayer(str(tmp_path / "mosaics.gpkg"), "m", "ogr")
    assert mosaics.featureCount() == 8 and sum(bool(f["complete"]) for f in mosaics.getFeatures()) == 6


def test_s1inventory_asf_and_folder_modes(s1_settings, run_algorithm, tmp_path):
    results, _, _ = run_algorithm("surfacemotion:s1inventory", parameters(tmp_path, SOURCE=1, ORBIT_DIRECTION=2))
    assert results["N_PRODUCTS"] == 3 and results["SELECTED_KEY"] == "DESCENDING_VVVH"
    shutil.copytree(SAFE, tmp_path / "products" / os.path.basename(SAFE), ignore=shutil.ignore_patterns("measurement"))
    results, _, _ = run_algorithm("surfacemotion:s1inventory", parameters(
        tmp_path, SOURCE=2, FOLDER=str(tmp_path / "products"), AOI_EXTENT="12.4,12.6,41.8,42.0 [EPSG:4326]",
        START_DATE="2021-12-01", END_DATE="2022-01-01", OUTPUT=str(tmp_path / "local.gpkg"),
        MOSAICS=str(tmp_path / "local_mosaics.gpkg")))
    assert results["N_PRODUCTS"] == 1 and results["SELECTED_KEY"] == "DESCENDING_VVVH"
    assert len(s1_settings.log) == 1  # the ASF request only: the folder mode is offline


def test_s1inventory_errors_are_clear(s1_settings, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="needs the 'Folder of downloaded products"):
        run_algorithm("surfacemotion:s1inventory", parameters(tmp_path, SOURCE=2))
    with pytest.raises(QgsProcessingException, match="whole numbers"):
        run_algorithm("surfacemotion:s1inventory", parameters(tmp_path, RELATIVE_ORBITS="22, x"))
    s1_settings.require_auth_search = True
    with pytest.raises(QgsProcessingException, match="HTTP 401"):
        run_algorithm("surfacemotion:s1inventory", parameters(tmp_path))
    assert not (tmp_path / "products.gpkg").exists()
