"""Faults of surfacemotion:s1download and surfacemotion:s1inventory: a disk too small for the
archives, transfers that keep breaking off (kept hidden, resumed by the next run), and a truncated
archive in the local folder of the inventory."""
import os
import shutil

import pytest
from faults import leftovers
from stac_server import StacServer
from test_s1_download import basic_auth_config
from test_s1_inventory import SAFE

from test_bad_inputs_s1inventory import EXTENT


@pytest.fixture
def server(provider):
    from processing.core.ProcessingConfig import ProcessingConfig

    from surface_motion.algorithms.settings import DEFAULTS

    instance = StacServer().start()
    ProcessingConfig.setSettingValue("SURFACEMOTION_S1_STAC_URL", instance.stac_url)
    ProcessingConfig.setSettingValue("SURFACEMOTION_S1_TOKEN_URL", instance.url + "/token")
    yield instance
    for key in ("SURFACEMOTION_S1_STAC_URL", "SURFACEMOTION_S1_TOKEN_URL"):
        ProcessingConfig.setSettingValue(key, DEFAULTS[key])
    instance.stop()


@pytest.fixture
def layer_and_account(server, run_algorithm, tmp_path):
    run_algorithm("surfacemotion:s1inventory", {"AOI_EXTENT": EXTENT, "START_DATE": "2021-06-01",
                                               "END_DATE": "2021-07-01", "OUTPUT": str(tmp_path / "p.gpkg"),
                                               "MOSAICS": str(tmp_path / "m.gpkg")})
    with basic_auth_config("S1 fault account") as config_id:
        yield str(tmp_path / "p.gpkg"), config_id


def test_s1download_on_a_full_disk_writes_nothing(layer_and_account, run_algorithm, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingException

    import surface_motion.core.io.files as files

    layer, auth = layer_and_account
    monkeypatch.setattr(files, "free_bytes", lambda folder: 50_000)  # less than one archive (≈ 300 kB)
    out = tmp_path / "archives"
    with pytest.raises(QgsProcessingException, match=r"No space left on .*nothing was written"):
        run_algorithm("surfacemotion:s1download", {"INPUT": layer, "CREDENTIALS": auth, "OUTPUT_FOLDER": str(out)})
    assert not out.exists()


def test_s1download_transfers_that_keep_breaking_are_resumed_by_the_next_run(layer_and_account, server,
                                                                            run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    layer, auth = layer_and_account
    server.truncate("/download/", 40_000, count=6)
    out = tmp_path / "archives"
    parameters = {"INPUT": layer, "CREDENTIALS": auth, "PRESELECTED_ONLY": True, "OUTPUT_FOLDER": str(out)}
    with pytest.raises(QgsProcessingException, match=r"broke off 6 times .*Run again to resume"):
        run_algorithm("surfacemotion:s1download", parameters)
    left = leftovers(str(out))
    assert len(left) == 2 and left[0] == ".s1download_partial" and left[1].endswith(".zip.part")  # hidden only
    assert os.path.getsize(out / left[1]) == 6 * 40_000
    results, _, _ = run_algorithm("surfacemotion:s1download", parameters)
    archives = sorted(os.listdir(out))
    assert results["N_DOWNLOADED"] == 6 and len(archives) == 6 and all(a.endswith(".zip") for a in archives)
    assert not (out / ".s1download_partial").exists()
    ranges = [e["range"] for e in server.requests_to("/download/")]
    assert f"bytes={6 * 40_000}-" in ranges


def test_s1inventory_skips_a_truncated_archive_of_the_local_folder(server, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingFeedback

    folder = tmp_path / "products"
    shutil.copytree(SAFE, folder / os.path.basename(SAFE), ignore=shutil.ignore_patterns("measurement"))
    archive = server.products[0]["archive"]
    (folder / (server.products[0]["name"] + ".zip")).write_bytes(archive[: len(archive) // 2])
    lines = []

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802
            lines.append(info)

    results, _, _ = run_algorithm("surfacemotion:s1inventory", {
        "SOURCE": 2, "FOLDER": str(folder), "AOI_EXTENT": "12.4,12.6,41.8,42.0 [EPSG:4326]",
        "START_DATE": "2021-01-01", "END_DATE": "2022-01-01", "POLARISATION": 4,
        "OUTPUT": str(tmp_path / "p.gpkg"), "MOSAICS": str(tmp_path / "m.gpkg")}, Feedback())
    assert results["N_PRODUCTS"] == 1
    assert any("not a readable zip file (incomplete download?)" in line for line in lines)
