"""Faults of surfacemotion:orthorectify (issue 13): a truncated raw scene or DEM gives a clear error naming
the file and leaves no output; a full disk under the output folder fails with the disk's message and
leaves nothing (the temporary ellipsoidal DEM and VRTs included)."""
import os
import re

import pytest

from conftest import PLUGIN_PARENT
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, error_log, leftovers, run_on_full_disk, truncated_copy
from ortho_scenes import analytic_rpc, rpc_text, write_dem, write_scene


def _truncated_scene(tmp_path):
    source = write_scene(str(tmp_path / "full.tif"))
    cut = truncated_copy(source, str(tmp_path / "cut_scene.tif"), keep=0.4)
    with open(tmp_path / "cut_scene_RPC.TXT", "w", encoding="utf-8") as handle:  # the copy has no RPC domain
        handle.write(rpc_text(analytic_rpc()))
    return cut


@pytest.mark.parametrize("broken", ["scene", "dem"])
def test_truncated_input_gives_a_clear_error_and_no_output(broken, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    if broken == "scene":
        scene, dem = _truncated_scene(tmp_path), write_dem(str(tmp_path / "dem.tif"))
        name = "cut_scene.tif"
    else:
        scene = write_scene(str(tmp_path / "scene.tif"))
        dem = truncated_copy(write_dem(str(tmp_path / "full_dem.tif"), size=(400, 400), step=0.0001),
                             str(tmp_path / "cut_dem.tif"), keep=0.3)
        name = "cut_dem.tif"
    out = tmp_path / "out"
    feedback = error_log()
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm("surfacemotion:orthorectify", {"INPUT": [scene], "DEM": dem, "VERTICAL_DATUM": 1,
                                                     "OUTPUT_FOLDER": str(out)}, feedback=feedback)
    message = "\n".join([str(raised.value), *feedback.errors])
    assert re.search(TRUNCATED_MESSAGE.format(name=re.escape(name)), message), message
    assert "Traceback" not in message
    assert not out.exists() or leftovers(str(out)) == []


def test_full_disk_gives_a_clear_error_and_leaves_nothing(run_algorithm, tmp_path):
    scene = write_scene(str(tmp_path / "scene.tif"))
    dem = write_dem(str(tmp_path / "dem.tif"))
    message = run_on_full_disk(
        run_algorithm, "surfacemotion:orthorectify",
        lambda out: {"INPUT": [scene], "DEM": dem, "VERTICAL_DATUM": 1, "OUTPUT_FOLDER": os.path.join(out, "o")},
        12_000, tmp_path, PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "Traceback" not in message
