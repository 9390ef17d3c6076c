"""surfacemotion:timelapse through Processing: synthetic pairs, the sample scenes, qgis_process.bin."""
import glob
import json
import os
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
    # ffmpeg comes with the test requirements (imageio-ffmpeg); without it see test_series_timelapse
    assert os.path.getsize(results["OUTPUT_MP4"]) > 0
    assert sorted(os.listdir(tmp_path / "out")) == ["lapse.gif", "lapse.mp4"]


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


def test_sample_chain_correlate_polyfit_timelapse(run_algorithm, tmp_path):
    """extractband → correlatepair (oldest scene with each other) → polyfit (order 1, landslide left out) →
    timelapse: the ramp the timelapse applies is the truth's ramp difference of the pair, R_sec − R_ref."""
    from core.io import Grid, open_raster
    from core.series.timelapse import polyfit_model

    with open(os.path.join(REPO, "sample", "truth.json"), encoding="utf-8") as handle:
        truth = json.load(handle)
    bands = run_algorithm("surfacemotion:extractband", {"INPUT": SAMPLE, "BAND": 2, "USE_UDM2": True,
                                                       "OUTPUT_FOLDER": str(tmp_path / "bands")})[0]["OUTPUT_LAYERS"]
    bands = sorted(bands)
    pairs = []
    for secondary in bands[1:]:
        out = str(tmp_path / "disp" / f"{os.path.basename(bands[0])[:23]}_{os.path.basename(secondary)[:23]}.tif")
        run_algorithm("surfacemotion:correlatepair", {"REFERENCE": bands[0], "SECONDARY": secondary,
                                                      "CHIP_SIZE": 32, "SEARCH_RANGE": 10, "STEP": 8, "OUTPUT": out})
        pairs.append(out)
    fitted = run_algorithm("surfacemotion:polyfit", {
        "INPUT": pairs, "ORDER": 0, "MASK": os.path.join(REPO, "sample", "landslide_outline.geojson"),
        "OUTPUT_FOLDER": str(tmp_path / "polyfit")})[0]["OUTPUT_LAYERS"]
    with open_raster(bands[0]) as ds:
        grid = Grid.of(ds)
    rows, cols = np.mgrid[0:grid.height:16, 0:grid.width:16].astype(float)

    def ramp(scene, name):
        coefficients = scene["ramp_px"][name]
        return coefficients["const"] + coefficients["per_col"] * (cols + 0.5) + coefficients["per_row"] * (rows + 0.5)

    errors = []
    for path in sorted(fitted):
        k = next(i for i, scene in enumerate(truth["scenes"]) if scene["id"] in os.path.basename(path)[24:])
        dx, dy = polyfit_model(path).offsets(cols, rows, grid)
        errors.append(max(np.abs(dx - (ramp(truth["scenes"][k], "dx") - ramp(truth["scenes"][0], "dx"))).max(),
                          np.abs(dy - (ramp(truth["scenes"][k], "dy") - ramp(truth["scenes"][0], "dy"))).max()))
    print("largest ramp error per pair (px):", [f"{e:.3f}" for e in errors])
    assert len(errors) == 4 and max(errors) < 0.03  # measured 0.005-0.010 px
    gif = str(tmp_path / "sample_polyfit.gif")
    results, _, feedback = run_algorithm("surfacemotion:timelapse", {
        "INPUT": bands, "CORRECTION": 1, "PAIRS": fitted, "WRITE_MP4": False, "OUTPUT": gif})
    frames, _ = ts.gif_frames(gif)
    assert frames.shape == (5, 512, 640, 3)
    assert f"5 frames of 640×512 pixels ({SAMPLE_DAYS[0]} … {SAMPLE_DAYS[-1]})" in feedback.textLog()


def test_timelapse_chains_after_polyfit_in_a_model(series, tmp_path, provider):
    """In the Model Designer: polyfit's de-ramped pairs (OUTPUT_LAYERS) feed the timelapse's PAIRS."""
    import processing
    from qgis.core import (QgsProcessing, QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm,
                           QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource,
                           QgsProcessingModelParameter, QgsProcessingParameterMultipleLayers, QgsProject)

    def static(value):
        return [QgsProcessingModelChildParameterSource.fromStaticValue(value)]

    scenes, _ = series
    disparities = ts.write_pairs(str(tmp_path / "raw"))
    model = QgsProcessingModelAlgorithm("timelapse after polyfit", "test")
    for name in ("scenes", "pairs"):
        model.addModelParameter(QgsProcessingParameterMultipleLayers(name, name, QgsProcessing.TypeRaster),
                                QgsProcessingModelParameter(name))
    fit = QgsProcessingModelChildAlgorithm("surfacemotion:polyfit")
    fit.setChildId("fit")
    fit.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("pairs")])
    for name, value in {"ORDER": 0, "PERCENTILE_LOW": 0.0, "PERCENTILE_HIGH": 100.0,
                        "OUTPUT_FOLDER": str(tmp_path / "fit")}.items():
        fit.addParameterSources(name, static(value))
    lapse = QgsProcessingModelChildAlgorithm("surfacemotion:timelapse")
    lapse.setChildId("lapse")
    lapse.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("scenes")])
    lapse.addParameterSources("PAIRS", [QgsProcessingModelChildParameterSource.fromChildOutput("fit",
                                                                                               "OUTPUT_LAYERS")])
    gif = str(tmp_path / "model" / "lapse.gif")
    for name, value in {"BAND": 1, "CORRECTION": 1, "VELOCITY_MAX": 0.0, "OPACITY": 0.5, "MAX_SIZE": 1600,
                        "FRAME_MS": 700, "SHOW_DATES": True, "WRITE_MP4": False, "OUTPUT": gif}.items():
        lapse.addParameterSources(name, static(value))
    model.addChildAlgorithm(fit)
    model.addChildAlgorithm(lapse)
    valid, issues = model.validate()
    assert valid, issues
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    processing.run(model, {"scenes": scenes, "pairs": disparities}, context=context, feedback=QgsProcessingFeedback())
    grey = ts.gif_frames(gif)[0][..., 0].astype(float)
    body = (slice(24, -6), slice(6, -6))
    assert grey.shape[0] == 6
    assert max(np.sqrt(np.mean((grey[k][body] - grey[0][body]) ** 2)) for k in range(1, 6)) < 3.0
    QgsProject.instance().removeAllMapLayers()
