"""surfacemotion:timelapse through Processing: synthetic pairs, the sample scenes, qgis_process.bin."""
import glob
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import timelapse_scenes as ts
from conftest import REPO

SAMPLE = sorted(glob.glob(os.path.join(REPO, "sample", "*_3B_AnalyticMS_SR_clip.tif")))
SAMPLE_DAYS = ["2020-07-15", "2021-01-12", "2021-07-18", "2022-01-09", "2022-07-16"]


@pytest.fixture()
def series(tmp_path):
    scenes = ts.write_scenes(str(tmp_path / "scenes"))
    return scenes, ts.polyfit_pairs(str(tmp_path / "polyfit"), ts.write_pairs(str(tmp_path / "pairs")))


def test_timelapse_with_polyfit_pairs(run_algorithm, series, tmp_path):
    scenes, pairs = series
    gif = str(tmp_path / "out" / "lapse.gif")
    results, _, feedback = run_algorithm("surfacemotion:timelapse", {
        "INPUT": scenes, "CORRECTION": 1, "PAIRS": pairs, "FRAME_MS": 300, "OUTPUT": gif})
    assert results["OUTPUT"] == gif
    frames, durations = ts.gif_frames(gif)
    assert frames.shape == (6,) + ts.SHAPE + (3,) and durations == [300] * 6
    log = feedback.textLog()
    assert "6 frames of 128×96 pixels (2021-03-01 … 2021-09-02)" in log
    grey = frames[..., 0].astype(float)
    body = (slice(24, -6), slice(6, -6))  # below the date label, inside the shifted edges
    assert max(np.sqrt(np.mean((grey[k][body] - grey[0][body]) ** 2)) for k in range(1, 6)) < 3.0
    if shutil.which("ffmpeg"):
        assert os.path.getsize(results["OUTPUT_MP4"]) > 0
    else:
        assert results["OUTPUT_MP4"] == ""
        assert "ffmpeg is not on PATH: no MP4 was written" in log
        assert os.listdir(tmp_path / "out") == ["lapse.gif"]


def test_timelapse_of_the_sample_scenes(run_algorithm, tmp_path):
    """The five sample scenes (band 3, red): five frames in date order, each with its date."""
    assert len(SAMPLE) == 5
    gif = str(tmp_path / "sample.gif")
    results, _, feedback = run_algorithm("surfacemotion:timelapse", {
        "INPUT": list(reversed(SAMPLE)), "BAND": 3, "MAX_SIZE": 320, "WRITE_MP4": False, "OUTPUT": gif})
    frames, durations = ts.gif_frames(gif)
    assert frames.shape == (5, 256, 320, 3) and durations == [700] * 5
    assert f"5 frames of 320×256 pixels ({SAMPLE_DAYS[0]} … {SAMPLE_DAYS[-1]})" in feedback.textLog()
    labels = frames[:, 2:19, 2:68, 0]
    assert all((labels[k] != labels[k + 1]).any() for k in range(4))  # a different date on each frame
    picture = frames[:, 40:, :, 0]
    assert 60 < picture.mean() < 200 and picture.std() > 20  # a stretched picture, not black or saturated


def test_timelapse_runs_from_the_command_line(series, tmp_path, qgis_process_env):
    scenes, pairs = series
    gif = str(tmp_path / "cli" / "lapse.gif")
    arguments = ["--json", "run", "surfacemotion:timelapse", "--", *[f"INPUT={path}" for path in scenes],
                 "CORRECTION=2", *[f"PAIRS={path}" for path in pairs], "FRAME_MS=250", "WRITE_MP4=false",
                 f"OUTPUT={gif}"]
    done = subprocess.run(["qgis_process.bin", *arguments], env=qgis_process_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout)["results"]["OUTPUT"] == gif
    frames, durations = ts.gif_frames(gif)
    assert frames.shape[0] == 6 and durations == [250] * 6
