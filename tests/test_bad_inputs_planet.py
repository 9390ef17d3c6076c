"""Bad inputs of surfacemotion:planetsearch (issue 12): the API key (none, refused, unreadable
authentication configuration), the area of interest, dates, ranges and the server (unreachable,
failing). Every row runs against the loopback fake Planet Data API (tests/planet_server.py), gives the
expected message fragment and checks that nothing was left in the output folder; no message may
contain the API key.
"""
from __future__ import annotations

import pytest

from bad_inputs import Case, Workspace, case_ids, check_case
from planet_server import API_KEY, CENTRE
from test_bad_inputs_offsets import geojson
from test_planet_search import aoi_extent


#: The running fake server and the settings to restore (set by the ``planet_case`` fixture).
STATE = {}
WRONG_KEY = "PLAKwrongkey0000000"


def search(ws, **extra) -> dict:
    return dict({"AOI_EXTENT": aoi_extent(), "START_DATE": "2021-07-01", "END_DATE": "2021-09-01",
                 "MAX_CLOUD_COVER": 100, "OUTPUT": ws.output("footprints.gpkg")}, **extra)


def with_setting(key: str, value: str, parameters: dict) -> dict:
    """``parameters``, after setting the provider setting ``key`` (restored by the fixture)."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.setSettingValue(key, value)
    return parameters


def without_key(parameters: dict) -> dict:
    STATE["monkeypatch"].delenv("PL_API_KEY", raising=False)
    return parameters


def failing_server(parameters: dict) -> dict:
    STATE["server"].inject("/data/v1/quick-search", 500, 20)
    return parameters


def polygons(ws, name, geometries, crs="EPSG:4326") -> str:
    return geojson(ws, name, geometries, crs)


def point_layer(ws) -> str:
    return geojson(ws, "points.geojson", [{"type": "Point", "coordinates": list(CENTRE)}], "EPSG:4326")


def empty_layer(ws) -> str:
    return geojson(ws, "empty.geojson", [], "EPSG:4326")


RANGE = r"must be (between|at least|at most)"

CASES = [
    # ---- the API key
    Case("planetsearch-no-key", "planetsearch", lambda ws: without_key(search(ws)),
         r"No Planet API key.*authentication configuration.*PL_API_KEY"),
    Case("planetsearch-refused-setting-key", "planetsearch",
         lambda ws: with_setting("SURFACEMOTION_PLANET_API_KEY", WRONG_KEY, search(ws)),
         r"Planet API key was refused \(HTTP 401.*key from the provider setting"),
    Case("planetsearch-refused-environment-key", "planetsearch",
         lambda ws: (STATE["monkeypatch"].setenv("PL_API_KEY", WRONG_KEY), search(ws))[1],
         r"Planet API key was refused.*PL_API_KEY environment variable"),
    Case("planetsearch-unknown-auth-config", "planetsearch", lambda ws: search(ws, API_KEY="zz99zz9"),
         r"authentication configuration 'zz99zz9' cannot be read"),
    # ---- the area of interest
    Case("planetsearch-no-aoi", "planetsearch", lambda ws: dict(search(ws), AOI_EXTENT=None),
         r"area of interest is empty"),
    Case("planetsearch-flat-extent", "planetsearch",
         lambda ws: search(ws, AOI_EXTENT="-147.5,-147.3,63.3,63.3 [EPSG:4326]"), r"extent has no area"),
    Case("planetsearch-point-layer", "planetsearch", lambda ws: dict(search(ws), AOI_EXTENT=None,
                                                                    AOI_LAYER=point_layer(ws)),
         r"is a point layer; a polygon layer is needed"),
    Case("planetsearch-empty-layer", "planetsearch", lambda ws: dict(search(ws), AOI_EXTENT=None,
                                                                    AOI_LAYER=empty_layer(ws)),
         r"has no features|area of interest is empty"),
    Case("planetsearch-missing-layer", "planetsearch",
         lambda ws: dict(search(ws), AOI_EXTENT=None, AOI_LAYER=ws.input("nothing.geojson")),
         r"nothing\.geojson|Could not load source layer"),
    # ---- dates
    Case("planetsearch-end-before-start", "planetsearch",
         lambda ws: search(ws, START_DATE="2021-09-01", END_DATE="2021-07-01"),
         r"end date \(2021-07-01\) must be after the start date \(2021-09-01\)"),
    Case("planetsearch-end-equals-start", "planetsearch",
         lambda ws: search(ws, START_DATE="2021-07-01", END_DATE="2021-07-01"), r"must be after the start date"),
    Case("planetsearch-bad-date", "planetsearch", lambda ws: search(ws, START_DATE="2021-13-45"),
         r"Start date.*must be a date \(YYYY-MM-DD\)"),
    # ---- ranges and choices
    Case("planetsearch-cloud-101", "planetsearch", lambda ws: search(ws, MAX_CLOUD_COVER=101),
         r"Maximum cloud cover.*" + RANGE + r".*got 101"),
    Case("planetsearch-clear-negative", "planetsearch", lambda ws: search(ws, MIN_CLEAR_PERCENT=-1),
         r"Minimum clear percent.*" + RANGE),
    Case("planetsearch-view-angle-31", "planetsearch", lambda ws: search(ws, MAX_VIEW_ANGLE=31),
         r"Maximum view angle.*between 0 and 30"),
    Case("planetsearch-view-angles-swapped", "planetsearch",
         lambda ws: search(ws, MIN_VIEW_ANGLE=5, MAX_VIEW_ANGLE=2),
         r"minimum view angle \(5°\) is larger than the maximum \(2°\)"),
    Case("planetsearch-coverage-150", "planetsearch", lambda ws: search(ws, MIN_AOI_COVERAGE=150),
         r"Minimum coverage of the area of interest.*" + RANGE),
    Case("planetsearch-no-instrument", "planetsearch", lambda ws: search(ws, INSTRUMENTS=[]),
         r"Instruments is required: choose at least one"),
    Case("planetsearch-scan-line-95", "planetsearch", lambda ws: search(ws, SCAN_LINE_AZIMUTH=95),
         r"Scan-line azimuth.*between 0 and 90"),
    Case("planetsearch-timeout-0", "planetsearch", lambda ws: search(ws, TIMEOUT=0), r"HTTP timeout.*" + RANGE),
    Case("planetsearch-quality-9", "planetsearch", lambda ws: search(ws, QUALITY=9), r"Quality category|QUALITY"),
    # ---- the server
    Case("planetsearch-unreachable", "planetsearch",
         lambda ws: with_setting("SURFACEMOTION_PLANET_URL", "http://127.0.0.1:9", search(ws, TIMEOUT=2)),
         r"Planet API at 127\.0\.0\.1:9 cannot be reached"),
    Case("planetsearch-server-500", "planetsearch", lambda ws: failing_server(search(ws)),
         r"Planet API answered HTTP 500.*after 4 retries"),
]


@pytest.fixture
def planet_case(provider, monkeypatch):
    from processing.core.ProcessingConfig import ProcessingConfig
    from planet_server import PlanetServer

    import core.planet.client as client

    server = PlanetServer().start()
    monkeypatch.setenv("PL_API_KEY", API_KEY)
    monkeypatch.setattr(client, "MAX_BACKOFF", 0.05)  # the 500 row retries without waiting seconds
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_URL", server.url)
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_API_KEY", "")
    STATE.update(server=server, monkeypatch=monkeypatch)
    yield server
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_URL", "https://api.planet.com")
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_API_KEY", "")
    server.stop()


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, planet_case, run_algorithm, tmp_path):
    text = check_case(case, run_algorithm, tmp_path)
    assert API_KEY not in text and WRONG_KEY not in text


def test_polygons_in_another_crs_give_the_same_search(planet_case, run_algorithm, tmp_path):
    """Not a bad input: the AOI as polygons in UTM 6N finds what the lon/lat extent finds."""
    import pyproj
    from shapely.geometry import mapping, shape
    from shapely.ops import transform

    from test_planet_search import aoi_polygon

    forward = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32606", always_xy=True).transform
    utm = mapping(transform(forward, shape(aoi_polygon())))
    ws = Workspace(str(tmp_path))
    layer = polygons(ws, "aoi_utm.geojson", [utm], "EPSG:32606")
    by_extent, _, _ = run_algorithm("surfacemotion:planetsearch", search(ws, OUTPUT=ws.output("a.gpkg")))
    by_layer, _, _ = run_algorithm("surfacemotion:planetsearch", dict(search(ws, OUTPUT=ws.output("b.gpkg")),
                                                                      AOI_EXTENT=None, AOI_LAYER=layer))
    assert by_layer["N_SCENES"] == by_extent["N_SCENES"] > 0
