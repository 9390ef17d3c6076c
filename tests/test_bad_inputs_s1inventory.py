"""Bad inputs of surfacemotion:s1inventory and surfacemotion:s1download (issue 15): dates, orbits,
coverage, the local folder, the credentials, the input layer and failing servers. Every row runs
against the loopback catalogue of tests/stac_server.py, gives the expected message fragment and
checks that nothing was left in the output folder; no message may contain the password."""
from __future__ import annotations

import pytest

from bad_inputs import Case, case_ids, check_case
from stac_server import PASSWORD

#: The running server, the auth configuration id and the inventory layer (set by the fixture).
STATE = {}
EXTENT = "11.0,11.4,45.0,45.3 [EPSG:4326]"


def inventory(ws, **extra) -> dict:
    return dict({"AOI_EXTENT": EXTENT, "START_DATE": "2021-06-01", "END_DATE": "2021-07-01",
                 "OUTPUT": ws.output("products.gpkg"), "MOSAICS": ws.output("mosaics.gpkg")}, **extra)


def download(ws, **extra) -> dict:
    return dict({"INPUT": STATE["layer"], "CREDENTIALS": STATE["auth"], "OUTPUT_FOLDER": ws.output("archives")},
                **extra)


def failing(path: str, status: int, parameters: dict) -> dict:
    STATE["server"].inject(path, status, 50)
    return parameters


def searches_need_auth(parameters: dict) -> dict:
    STATE["server"].require_auth_search = True
    return parameters


CASES = [
    Case("s1inventory-end-before-start", "s1inventory", lambda ws: inventory(ws, END_DATE="2021-05-01"),
         "must be after the start date"),
    Case("s1inventory-bad-orbit-text", "s1inventory", lambda ws: inventory(ws, RELATIVE_ORBITS="22, abc"),
         "whole numbers separated by commas"),
    Case("s1inventory-orbit-out-of-range", "s1inventory", lambda ws: inventory(ws, RELATIVE_ORBITS="0, 200"),
         "Relative orbits are 1 to 175"),
    Case("s1inventory-no-aoi", "s1inventory", lambda ws: inventory(ws, AOI_EXTENT=None), "area of interest"),
    Case("s1inventory-folder-mode-without-folder", "s1inventory", lambda ws: inventory(ws, SOURCE=2),
         "needs the 'Folder of downloaded products"),
    Case("s1inventory-folder-without-products", "s1inventory",
         lambda ws: inventory(ws, SOURCE=2, FOLDER=ws.inputs), r"No \.zip or \.SAFE product"),
    Case("s1inventory-search-refused", "s1inventory", lambda ws: searches_need_auth(inventory(ws)),
         "HTTP 401.*no credentials were given"),
    Case("s1inventory-asf-failing", "s1inventory", lambda ws: failing("/asf", 400, inventory(ws, SOURCE=1)),
         "HTTP 400 to the ASF search"),
    Case("s1download-no-credentials", "s1download", lambda ws: download(ws, CREDENTIALS=None),
         "refused the download .*no credentials were given"),
    Case("s1download-unknown-auth-config", "s1download", lambda ws: download(ws, CREDENTIALS="zzzz999"),
         "cannot be read"),
    Case("s1download-not-an-inventory-layer", "s1download",
         lambda ws: download(ws, INPUT=STATE["mosaics"]), "lacks the field"),
    Case("s1download-token-endpoint-down", "s1download", lambda ws: failing("/token", 404, download(ws)),
         "HTTP 404 to the token request"),
    Case("s1download-basic-refused", "s1download", lambda ws: download(ws, AUTH_METHOD=1),
         r"refused the download .*HTTP 401.*credentials were refused"),
]


@pytest.fixture
def s1_case(provider, run_algorithm, tmp_path_factory):
    from processing.core.ProcessingConfig import ProcessingConfig
    from stac_server import StacServer
    from test_s1_download import basic_auth_config

    from surface_motion.algorithms.settings import DEFAULTS

    server = StacServer().start()
    keys = ("SURFACEMOTION_S1_STAC_URL", "SURFACEMOTION_S1_ASF_URL", "SURFACEMOTION_S1_TOKEN_URL")
    for key, value in zip(keys, (server.stac_url, server.url + "/asf", server.url + "/token")):
        ProcessingConfig.setSettingValue(key, value)
    folder = tmp_path_factory.mktemp("inventory")
    run_algorithm("surfacemotion:s1inventory", {"AOI_EXTENT": EXTENT, "START_DATE": "2021-06-01",
                                               "END_DATE": "2021-07-01", "OUTPUT": str(folder / "p.gpkg"),
                                               "MOSAICS": str(folder / "m.gpkg")})
    with basic_auth_config("S1 bad-input account", "not-" + PASSWORD) as config_id:
        server.log.clear()
        STATE.update(server=server, auth=config_id, layer=str(folder / "p.gpkg"), mosaics=str(folder / "m.gpkg"))
        yield server
    for key in keys:
        ProcessingConfig.setSettingValue(key, DEFAULTS[key])
    server.stop()


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, s1_case, run_algorithm, tmp_path):
    text = check_case(case, run_algorithm, tmp_path)
    assert PASSWORD not in text
