"""Faults of surfacemotion:timelapse through Processing: truncated inputs and a full disk (issue 14, point 4).

A truncated scene or pair fails with an error naming the file and writes nothing; on a full disk the run
fails with a clear error and leaves nothing; with enough space the same parameters give the GIF.
"""
import os
import re

import pytest

import timelapse_scenes as ts
from conftest import PLUGIN_PARENT
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, run_on_full_disk, truncated_copy

#: Below the size of the 6-frame GIF (about 60 KB).
SMALL = 8 << 10


def truncate_in_place(path):
    cut = path + ".cut.tif"
    truncated_copy(path, cut)
    os.replace(cut, path)
    return os.path.basename(path)


def assert_fails_naming(run_algorithm, parameters, name):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm("surfacemotion:timelapse", parameters)
    message = str(raised.value)
    assert re.search(TRUNCATED_MESSAGE.format(name=re.escape(name)), message), message


def test_timelapse_truncated_scene(run_algorithm, tmp_path):
    scenes = ts.write_scenes(str(tmp_path / "scenes"))
    name = truncate_in_place(scenes[2])
    out = tmp_path / "out"
    assert_fails_naming(run_algorithm, {"INPUT": scenes, "WRITE_MP4": False, "OUTPUT": str(out / "lapse.gif")}, name)
    assert not out.exists()


def test_timelapse_truncated_pair(run_algorithm, tmp_path):
    scenes = ts.write_scenes(str(tmp_path / "scenes"))
    pairs = ts.write_pairs(str(tmp_path / "pairs"))
    name = truncate_in_place(pairs[3])
    out = tmp_path / "out"
    assert_fails_naming(run_algorithm, {"INPUT": scenes, "CORRECTION": 2, "PAIRS": pairs, "WRITE_MP4": False,
                                        "OUTPUT": str(out / "lapse.gif")}, name)
    assert not out.exists()


def test_timelapse_full_disk(run_algorithm, tmp_path):
    scenes = ts.write_scenes(str(tmp_path / "scenes"))
    pairs = ts.polyfit_pairs(str(tmp_path / "polyfit"), ts.write_pairs(str(tmp_path / "pairs")))

    def parameters(folder):
        return {"INPUT": scenes, "CORRECTION": 1, "PAIRS": pairs, "OUTPUT": os.path.join(folder, "lapse.gif")}

    message = run_on_full_disk(run_algorithm, "surfacemotion:timelapse", parameters, SMALL, tmp_path,
                               PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "nothing was written" in message
    results, _, _ = run_algorithm("surfacemotion:timelapse", parameters(str(tmp_path / "ok")))
    frames, durations = ts.gif_frames(results["OUTPUT"])
    assert frames.shape[0] == 6 and durations == [700] * 6
