"""Faults in the offset-tracking chain (issue 9, point 7): truncated inputs, a full disk, a run killed
mid-pair and a truncated existing output. They fail on the code before the shared I/O: a truncated
GeoTIFF gave a raw RasterioIOError traceback, a full disk left unreadable files under their final
names, and correlatepairs skipped any existing file and left `.partial` files of a killed run forever.
"""
import glob
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio

from conftest import ALGORITHM_COUNT, PLUGIN_PARENT, REPO, SAMPLE_DIR
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, error_log, leftovers, run_on_full_disk, truncated_copy

sys.path.insert(0, os.path.join(REPO, "tools"))
import demo  # noqa: E402

SCENES = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))
OUTLINE = os.path.join(SAMPLE_DIR, "landslide_outline.geojson")
FAST = {"CHIP_SIZE": 32, "SEARCH_RANGE": 8, "STEP": 16}


@pytest.fixture(scope="module")
def chain(tmp_path_factory, provider):
    """Green bands of three sample scenes, a pair CSV, one disparity map, a DEM and a mask raster."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    root = tmp_path_factory.mktemp("chain")

    def run(algorithm_id, parameters):
        return processing.run(algorithm_id, parameters, context=QgsProcessingContext(),
                              feedback=QgsProcessingFeedback())

    bands = sorted(run("surfacemotion:extractband", {
        "INPUT": SCENES[::2], "BAND": 2, "OUTPUT_FOLDER": str(root / "bands")})["OUTPUT_LAYERS"])
    run("surfacemotion:buildpairs", {"INPUTS": bands, "DT_MIN": 100, "OUTPUT": "memory:",
                                     "OUTPUT_CSV": str(root / "pairs.csv")})
    disparity = run("surfacemotion:correlatepair", {"REFERENCE": bands[0], "SECONDARY": bands[2], **FAST,
                                                    "OUTPUT": str(root / "disp.tif")})["OUTPUT"]
    with rasterio.open(bands[0]) as ds:
        profile = dict(driver="GTiff", width=ds.width, height=ds.height, count=1, crs=ds.crs,
                       transform=ds.transform, dtype="float32")
    rows, cols = np.mgrid[0:profile["height"], 0:profile["width"]]
    for name, values in (("dem.tif", 1000.0 + 0.5 * rows + 0.2 * cols),
                         ("moving.tif", ((rows - 260) ** 2 + (cols - 250) ** 2 < 80 ** 2).astype(float))):
        with rasterio.open(str(root / name), "w", **profile) as dst:
            dst.write(values.astype(np.float32), 1)
    return {"root": root, "bands": bands, "pairs": str(root / "pairs.csv"), "disparity": disparity,
            "dem": str(root / "dem.tif"), "mask": str(root / "moving.tif")}


# --------------------------------------------------------------------------- truncated inputs


def _truncated(chain, name, source):
    return truncated_copy(source, str(chain["root"] / f"cut_{name}.tif"))


def _pair_table(folder, ref, sec):
    path = os.path.join(str(folder), "pairs_cut.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"ref,sec\n{ref},{sec}\n")
    return path


TRUNCATED_CASES = {
    "extractband INPUT": ("surfacemotion:extractband", "scene", lambda c, bad, out: {
        "INPUT": [bad], "BAND": 2, "OUTPUT_FOLDER": out}),
    "correlatepair REFERENCE": ("surfacemotion:correlatepair", "band", lambda c, bad, out: {
        "REFERENCE": bad, "SECONDARY": c["bands"][2], **FAST, "OUTPUT": os.path.join(out, "d.tif")}),
    "correlatepair SECONDARY": ("surfacemotion:correlatepair", "band", lambda c, bad, out: {
        "REFERENCE": c["bands"][0], "SECONDARY": bad, **FAST, "OUTPUT": os.path.join(out, "d.tif")}),
    "correlatepairs PAIRS ref": ("surfacemotion:correlatepairs", "band", lambda c, bad, out: {
        "PAIRS": _pair_table(c["root"], bad, c["bands"][2]), **FAST, "OUTPUT_FOLDER": out}),
    "polyfit INPUT": ("surfacemotion:polyfit", "disparity", lambda c, bad, out: {
        "INPUT": [bad], "ORDER": 0, "OUTPUT_FOLDER": out}),
    "polyfit DEM": ("surfacemotion:polyfit", "dem", lambda c, bad, out: {
        "INPUT": [c["disparity"]], "DEM": bad, "ORDER": 0, "OUTPUT_FOLDER": out}),
    "polyfit MASK_RASTER": ("surfacemotion:polyfit", "mask", lambda c, bad, out: {
        "INPUT": [c["disparity"]], "MASK_RASTER": bad, "ORDER": 0, "OUTPUT_FOLDER": out}),
    "velocity INPUT": ("surfacemotion:velocity", "disparity", lambda c, bad, out: {
        "INPUT": [bad], "OUTPUT_FOLDER": out}),
    "velocity MASK_RASTER": ("surfacemotion:velocity", "mask", lambda c, bad, out: {
        "INPUT": [c["disparity"]], "MASK_RASTER": bad, "OUTPUT_FOLDER": out}),
    "planetscopel3bvelocity SCENES": ("surfacemotion:planetscopel3bvelocity", "scene", lambda c, bad, out: {
        "SCENES": [bad, *SCENES[2::2]], "DT_MIN": 100, **FAST, "ORDER": 0,
        **{name: os.path.join(out, path) for name, path in demo.MODEL_OUTPUTS.items()}}),
}


@pytest.mark.parametrize("case", sorted(TRUNCATED_CASES))
def test_truncated_input_gives_a_clear_error_and_no_output(case, chain, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    algorithm, kind, parameters = TRUNCATED_CASES[case]
    source = {"scene": SCENES[0], "band": chain["bands"][0], "disparity": chain["disparity"],
              "dem": chain["dem"], "mask": chain["mask"]}[kind]
    bad = _truncated(chain, case.replace(" ", "_"), source)
    out = str(tmp_path / "out")
    feedback = error_log()
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(algorithm, parameters(chain, bad, out), feedback=feedback)
    message = str(raised.value) + "\n" + "\n".join(feedback.errors)  # a model names the failing step
    assert re.search(TRUNCATED_MESSAGE.format(name=re.escape(os.path.basename(bad))), message), message
    assert "Traceback" not in message
    assert not os.path.exists(out) or leftovers(out) == []


# --------------------------------------------------------------------------- full disk


FULL_DISK_CASES = {
    "extractband": ("surfacemotion:extractband", 20_000, lambda c, out: {
        "INPUT": SCENES[:2], "BAND": 2, "OUTPUT_FOLDER": out}),
    "buildpairs": ("surfacemotion:buildpairs", 8_000, lambda c, out: {
        "INPUTS": c["bands"], "DT_MIN": 100, "OUTPUT": os.path.join(out, "pairs.gpkg"),
        "OUTPUT_CSV": os.path.join(out, "pairs.csv")}),
    "correlatepair": ("surfacemotion:correlatepair", 4_000, lambda c, out: {
        "REFERENCE": c["bands"][0], "SECONDARY": c["bands"][2], **FAST, "OUTPUT": os.path.join(out, "d.tif")}),
    "correlatepairs": ("surfacemotion:correlatepairs", 4_000, lambda c, out: {
        "PAIRS": c["pairs"], **FAST, "OUTPUT_FOLDER": out}),
    "polyfit": ("surfacemotion:polyfit", 4_000, lambda c, out: {
        "INPUT": [c["disparity"]], "DEM": c["dem"], "ORDER": 0, "OUTPUT_FOLDER": out}),
    "velocity": ("surfacemotion:velocity", 4_000, lambda c, out: {
        "INPUT": [c["disparity"]], "OUTPUT_FOLDER": out}),
    "planetscopel3bvelocity": ("surfacemotion:planetscopel3bvelocity", 30_000, lambda c, out: {
        "SCENES": SCENES[::2], "DT_MIN": 100, **FAST, "ORDER": 0, "MOVING_AREA": OUTLINE,
        **{name: os.path.join(out, path) for name, path in demo.MODEL_OUTPUTS.items()}}),
}


@pytest.mark.parametrize("case", sorted(FULL_DISK_CASES))
def test_full_disk_gives_a_clear_error_and_leaves_nothing(case, chain, run_algorithm, tmp_path):
    algorithm, free_bytes, parameters = FULL_DISK_CASES[case]
    message = run_on_full_disk(run_algorithm, algorithm, lambda out: parameters(chain, out), free_bytes,
                               tmp_path, PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "Traceback" not in message


# --------------------------------------------------------------------------- outputs without a valid cell


def _cloudy_copy(scene, folder):
    """A copy of a sample scene with its UDM2 flagging every pixel as cloud (clear = snow = 0)."""
    import shutil

    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, os.path.basename(scene))
    shutil.copyfile(scene, target)
    udm2 = scene.replace("_AnalyticMS_SR_clip.tif", "_udm2_clip.tif")
    with rasterio.open(udm2) as src:
        profile, data = src.profile, src.read()
    data[:] = 0
    data[5] = 1  # band 6 = cloud
    with rasterio.open(os.path.join(folder, os.path.basename(udm2)), "w", **profile) as dst:
        dst.write(data)
    return target


def test_fully_clouded_scene_is_skipped_and_an_all_cloud_batch_fails(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    cloudy = _cloudy_copy(SCENES[0], str(tmp_path / "in"))
    good = SCENES[1]
    feedback = error_log()
    results, _, _ = run_algorithm("surfacemotion:extractband", {
        "INPUT": [cloudy, good], "BAND": 2, "USE_UDM2": True, "OUTPUT_FOLDER": str(tmp_path / "a")},
        feedback=feedback)
    assert [os.path.basename(p) for p in results["OUTPUT_LAYERS"]] == [
        os.path.basename(good).replace(".tif", "_b2.tif")]
    assert any("Skipped " + os.path.basename(cloudy) in error and "no valid cell" in error
               for error in feedback.errors), feedback.errors
    assert sorted(os.listdir(tmp_path / "a")) == [os.path.basename(good).replace(".tif", "_b2.tif")]
    with pytest.raises(QgsProcessingException, match="No scene has a usable pixel"):
        run_algorithm("surfacemotion:extractband", {"INPUT": [cloudy], "BAND": 2, "USE_UDM2": True,
                                                    "OUTPUT_FOLDER": str(tmp_path / "b")})
    assert not (tmp_path / "b").exists()


def test_a_pair_that_matches_nothing_and_a_disparity_without_offsets_are_errors(chain, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    with rasterio.open(chain["bands"][0]) as ds:
        profile = ds.profile
    flat = str(tmp_path / "flat.tif")
    with rasterio.open(flat, "w", **profile) as dst:
        dst.write(np.full((profile["height"], profile["width"]), 1000, np.uint16), 1)
    with pytest.raises(QgsProcessingException, match="'flat.tif' is constant.*no texture to match"):
        run_algorithm("surfacemotion:correlatepair", {"REFERENCE": flat, "SECONDARY": chain["bands"][2], **FAST,
                                                      "OUTPUT": str(tmp_path / "out" / "d.tif")})
    assert not (tmp_path / "out").exists()
    with rasterio.open(chain["disparity"]) as src:
        profile, data = src.profile, src.read()
        descriptions, tags = src.descriptions, src.tags()
    data[0:2] = np.nan
    data[2] = 0
    empty = str(tmp_path / "20200715_151233_62_2414_20210718_151502_45_241e_disp.tif")
    with rasterio.open(empty, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = descriptions
        dst.update_tags(**tags)
    with pytest.raises(QgsProcessingException, match="no valid cell.*has no valid offset"):
        run_algorithm("surfacemotion:velocity", {"INPUT": [empty], "MEDIAN_SHIFT": False,
                                                 "OUTPUT_FOLDER": str(tmp_path / "velocity")})
    assert not (tmp_path / "velocity").exists()


# --------------------------------------------------------------------------- resume


def _correlatepairs_command(pairs, folder):
    """correlatepairs of every pair of the five sample green bands (10 pairs, a few seconds each at STEP 2)."""
    return ["qgis_process.bin", "--json", "run", "surfacemotion:correlatepairs", "--", f"PAIRS={pairs}",
            "CHIP_SIZE=32", "SEARCH_RANGE=8", "STEP=2", f"OUTPUT_FOLDER={folder}"]


@pytest.fixture(scope="module")
def five_bands(tmp_path_factory, provider):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    folder = str(tmp_path_factory.mktemp("five"))
    bands = processing.run("surfacemotion:extractband", {"INPUT": SCENES, "BAND": 2, "OUTPUT_FOLDER": folder},
                           context=QgsProcessingContext(), feedback=QgsProcessingFeedback())["OUTPUT_LAYERS"]
    pairs = os.path.join(folder, "pairs.csv")
    processing.run("surfacemotion:buildpairs", {"INPUTS": bands, "OUTPUT": "memory:", "OUTPUT_CSV": pairs},
                   context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    return pairs


def _partials(folder):
    return [name for name in os.listdir(folder) if ".partial" in name]


def _disparities(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith("_disp.tif"))


def test_killed_batch_resumes_with_complete_outputs_and_no_partial_left(five_bands, qgis_process_env, tmp_path):
    from core.io import is_complete_raster

    folder = str(tmp_path / "disp")
    process = subprocess.Popen(_correlatepairs_command(five_bands, folder),
                               env=qgis_process_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 600
    try:
        while time.time() < deadline:  # kill it while a pair is being written, after at least one is done
            if os.path.isdir(folder) and _disparities(folder) and _partials(folder):
                break
            if process.poll() is not None:
                raise AssertionError("the batch finished before it could be killed; make the pairs slower")
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    done_before = _disparities(folder)
    left_behind = _partials(folder)
    assert done_before and left_behind, (done_before, left_behind)
    assert len(done_before) < 10

    resumed = subprocess.run(_correlatepairs_command(five_bands, folder), env=qgis_process_env,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    log = resumed.stdout + resumed.stderr
    assert "left in" in log and "by an interrupted run" in log  # the killed run's partial was recognised
    assert log.count("skipped, complete output exists") == len(done_before)
    assert _partials(folder) == []
    outputs = _disparities(folder)
    assert len(outputs) == 10
    for name in outputs:
        path = os.path.join(folder, name)
        assert is_complete_raster(path) is None
        with rasterio.open(path) as ds:
            dx = ds.read(1)
        assert np.isfinite(dx).mean() > 0.3  # a real measurement, not an empty file


def test_truncated_existing_output_is_redone_not_skipped(chain, run_algorithm, tmp_path):
    from core.io import is_complete_raster

    folder = str(tmp_path / "disp")
    first, _, _ = run_algorithm("surfacemotion:correlatepairs", {"PAIRS": chain["pairs"], **FAST,
                                                                 "OUTPUT_FOLDER": folder})
    outputs = sorted(first["OUTPUT_LAYERS"])
    assert len(outputs) == 3
    with rasterio.open(outputs[0]) as ds:
        expected = ds.read()
    victim = outputs[0]
    size = os.path.getsize(victim)
    with open(victim, "r+b") as handle:
        handle.truncate(size // 2)
    untouched = {path: os.path.getmtime(path) for path in outputs[1:]}
    second, _, feedback = run_algorithm("surfacemotion:correlatepairs", {"PAIRS": chain["pairs"], **FAST,
                                                                         "OUTPUT_FOLDER": folder})
    assert is_complete_raster(victim) is None
    with rasterio.open(victim) as ds:
        np.testing.assert_array_equal(ds.read(), expected)
    assert all(os.path.getmtime(path) == mtime for path, mtime in untouched.items())  # complete ones skipped
    assert sorted(second["OUTPUT_LAYERS"]) == outputs and second["N_FAILED"] == 0
    # an output written by an older version (no completion mark) is redone as well
    with rasterio.open(outputs[1], "r+") as ds:
        ds.update_tags(SM_COMPLETE="")
    third, _, _ = run_algorithm("surfacemotion:correlatepairs", {"PAIRS": chain["pairs"], **FAST,
                                                                 "OUTPUT_FOLDER": folder})
    assert is_complete_raster(outputs[1]) is None and os.path.getmtime(outputs[1]) != untouched[outputs[1]]


# --------------------------------------------------------------------------- coverage of the matrix


def _fault_test_sources():
    return {os.path.basename(path): open(path, encoding="utf-8").read()
            for path in glob.glob(os.path.join(REPO, "tests", "test_faults_*.py"))}


def test_every_algorithm_is_in_the_fault_matrix(provider):
    """Every raster-reading algorithm has a truncated-input case and every writing one a full-disk case."""
    sources = "\n".join(_fault_test_sources().values())
    names = {algorithm.name() for algorithm in provider.algorithms()}
    missing = sorted(name for name in names
                     if not re.search(rf"[\"'](surfacemotion:)?{name}[\"' ]", sources))
    assert missing == [], f"no fault case for {missing}"
    assert len(names) == ALGORITHM_COUNT
