"""Bad inputs of ``surfacemotion:planetorder`` (issue 12, point 5), against the loopback Planet server
(tests/planet_orders_server.py; the key in PL_API_KEY). Every row fails with a clear message and leaves
nothing in the output folder (a case that puts an order file there lists it as allowed), and no order is
placed by any of them."""
import json
import os

import pytest

from bad_inputs import Case, case_ids, check_case
from planet_orders_server import API_KEY, PlanetOrdersServer
from test_planet_order import AOI

#: The loopback server of the running test (set by the ``server`` fixture).
SERVER = {}


def ids(count=1):
    return ",".join(item["id"] for item in SERVER["server"].items[:count])


def geojson(ws, name, geometry, properties=None, crs=None):
    path = ws.input(name)
    collection = {"type": "FeatureCollection",
                  "features": [{"type": "Feature", "properties": properties or {"name": "x"}, "geometry": geometry}]}
    if crs:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    with open(path, "w") as handle:
        json.dump(collection, handle)
    return path


def aoi(ws):
    return geojson(ws, "aoi.geojson", AOI)


def base(ws, **changes):
    parameters = {"IDS": ids(), "BUNDLE": 0, "AOI": aoi(ws), "CONFIRM": True, "OUTPUT_FOLDER": ws.output("order")}
    parameters.update(changes)
    return parameters


def other_order(ws):
    folder = ws.output("order")
    os.makedirs(folder)
    with open(os.path.join(folder, "planet_order.json"), "w") as handle:
        json.dump({"order_id": "5c1f0e1a-1111-4222-8333-944455556666", "ids": ["20200101_101010_1234"],
                   "bundle": "analytic_sr_udm2"}, handle)
    return base(ws)


def broken_order_file(ws):
    folder = ws.output("order")
    os.makedirs(folder)
    with open(os.path.join(folder, "planet_order.json"), "w") as handle:
        handle.write("{not json")
    return base(ws)


ORDER_FILE_LEFT = ("order", "order/planet_order.json")
CASES = [
    Case("planetorder-no-ids", "planetorder", lambda ws: base(ws, IDS=""), r"No scene to order"),
    Case("planetorder-bad-id", "planetorder", lambda ws: base(ws, IDS="20210718_151502_62_2455,LC08_L1TP_0420"),
         r"Not PlanetScope item ids: LC08_L1TP_0420"),
    Case("planetorder-l3b-without-aoi", "planetorder", lambda ws: base(ws, AOI=None),
         r"clipped to the area of interest: give an 'Area of interest'"),
    Case("planetorder-aoi-points", "planetorder",
         lambda ws: base(ws, AOI=geojson(ws, "points.geojson", {"type": "Point", "coordinates": [-147.4, 63.3]})),
         r"point layer; a polygon layer is needed"),
    Case("planetorder-footprints-without-id", "planetorder",
         lambda ws: base(ws, IDS="", FOOTPRINTS=geojson(ws, "fp.geojson", AOI, {"name": "no id"})),
         r"has no field 'id'"),
    Case("planetorder-other-order-in-folder", "planetorder", other_order, r"already holds Planet order 5c1f0e1a",
         allowed_leftovers=ORDER_FILE_LEFT),
    Case("planetorder-broken-order-file", "planetorder", broken_order_file,
         r"is not an order file of this plugin", allowed_leftovers=ORDER_FILE_LEFT),
    Case("planetorder-unknown-scene", "planetorder", lambda ws: base(ws, IDS="20000101_000000_0000"),
         r"Scene 20000101_000000_0000 is not in the Planet catalogue"),
    Case("planetorder-bundle-index", "planetorder", lambda ws: base(ws, BUNDLE=7),
         r"Incorrect parameter value for BUNDLE"),
]


@pytest.fixture
def server(monkeypatch, provider):
    from processing.core.ProcessingConfig import ProcessingConfig

    from surface_motion.core.planet.client import preset_bundle_spec

    instance = PlanetOrdersServer().start()
    SERVER["server"] = instance
    preset_bundle_spec()
    monkeypatch.setenv("PL_API_KEY", API_KEY)
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_URL", instance.url)
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_API_KEY", "")
    yield instance
    ProcessingConfig.setSettingValue("SURFACEMOTION_PLANET_URL", "https://api.planet.com")
    instance.stop()


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, server, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)
    assert server.order_posts() == []


def test_no_api_key_anywhere_is_a_clear_error(server, run_algorithm, tmp_path, monkeypatch):
    monkeypatch.delenv("PL_API_KEY")
    case = Case("planetorder-no-key", "planetorder", base, r"No Planet API key")
    check_case(case, run_algorithm, tmp_path)
    assert server.log == []
