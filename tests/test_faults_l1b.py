"""Faults of surfacemotion:aligndemtopair and of the L1B model planetscopel1bvelocity: a truncated raw
scene or DEM is named and nothing is written; a full disk gives a clear message and leaves nothing."""
import os
import re

import pytest

import l1b_synthetic as synthetic
from conftest import PLUGIN_PARENT
from core.ortho.rpc import read_rpc
from core.ortho.rpc_fit import rpc_txt
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, leftovers, run_on_full_disk, truncated_copy

ALIGN = "surfacemotion:aligndemtopair"
MODEL = "surfacemotion:planetscopel1bvelocity"


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("l1b_faults"))
    scenes = [synthetic.make_scene(folder, 1, name="20200301_101010_1001_1B_AnalyticMS").path,
              synthetic.make_scene(folder, -1, name="20200311_101010_1001_1B_AnalyticMS").path]
    return {"folder": folder, "scenes": scenes, "dem": synthetic.write_dem(os.path.join(folder, "dem.tif"))}


def truncated_scene(scene: str, folder) -> str:
    """A cut copy of ``scene`` with its RPCs in a sidecar (the copy keeps no RPC domain)."""
    cut = truncated_copy(scene, str(folder / "cut_1B_AnalyticMS.tif"), keep=0.4)
    with open(str(folder / "cut_1B_AnalyticMS_RPC.TXT"), "w", encoding="utf-8") as handle:
        handle.write(rpc_txt(read_rpc(scene)))
    return cut


def align_parameters(job, out, **changes):
    out = str(out)
    return {"DEM": job["dem"], "VERTICAL_DATUM": 1, "REFERENCE_SCENE": job["scenes"][0],
            "SECONDARY_SCENE": job["scenes"][1], "STEP": 16, "OUTPUT": os.path.join(out, "aligned.tif"),
            "REPORT": os.path.join(out, "report.csv"), **changes}


def model_parameters(job, out, **changes):
    out = str(out)
    return {"SCENES": job["scenes"], "DEM": job["dem"], "BAND": 1, "VERTICAL_DATUM": 1, "DT_MIN": 0, "STEP": 16,
            "ortho:ORTHO_FOLDER": os.path.join(out, "ortho"), "velocity:VELOCITY_FOLDER": os.path.join(out, "velocity"),
            **changes}


@pytest.mark.parametrize("broken", ["scene", "dem"])
def test_aligndemtopair_names_a_truncated_input_and_writes_nothing(job, run_algorithm, tmp_path, broken):
    from qgis.core import QgsProcessingException

    if broken == "scene":
        bad = truncated_scene(job["scenes"][1], tmp_path)
        changes = {"SECONDARY_SCENE": bad}
    else:
        bad = truncated_copy(job["dem"], str(tmp_path / "cut_dem.tif"), keep=0.4)
        changes = {"DEM": bad}
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match=TRUNCATED_MESSAGE.format(name=re.escape(os.path.basename(bad)))):
        run_algorithm(ALIGN, align_parameters(job, out, **changes))
    assert not out.exists() or leftovers(str(out)) == []


def test_the_l1b_model_names_a_truncated_scene_and_writes_nothing(job, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    bad = truncated_scene(job["scenes"][1], tmp_path)
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException):
        run_algorithm(MODEL, model_parameters(job, out, SCENES=[job["scenes"][0], bad]))
    assert not out.exists() or leftovers(str(out)) == []


@pytest.mark.parametrize("algorithm, free_bytes", [(ALIGN, 200_000), (MODEL, 400_000)])
def test_full_disk_gives_a_clear_error_and_leaves_nothing(job, run_algorithm, tmp_path, algorithm, free_bytes):
    make = align_parameters if algorithm == ALIGN else model_parameters
    message = run_on_full_disk(run_algorithm, algorithm, lambda out: make(job, out), free_bytes, tmp_path,
                               PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "Traceback" not in message
