"""The plugin through the command line: `qgis_process.bin --json run`, as scripts and servers use it."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from conftest import REPO, SAMPLE_DIR

sys.path.insert(0, os.path.join(REPO, "tools"))
import demo  # noqa: E402  (the demo's model run and evaluation are what we test)


def qgis_process(env, *arguments, check=True):
    done = subprocess.run(["qgis_process.bin", *arguments], env=env, capture_output=True, text=True,
                          timeout=1800)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def run_json(env, algorithm_id, parameters):
    arguments = ["--json", "run", algorithm_id, "--"]
    for key, value in parameters.items():
        values = value if isinstance(value, list) else [value]
        arguments += [f"{key}={item}" for item in values]
    return json.loads(qgis_process(env, *arguments).stdout)["results"]


def test_list_shows_every_algorithm_id(qgis_process_env):
    listing = qgis_process(qgis_process_env, "list").stdout
    for algorithm_id in ("extractband", "buildpairs", "correlatepair", "correlatepairs", "polyfit",
                         "velocity", "planetscopel3bvelocity"):
        assert f"surfacemotion:{algorithm_id}\t" in listing


def test_every_algorithm_runs_from_the_command_line(qgis_process_env, tmp_path):
    scenes = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))[:3:2]
    env = qgis_process_env
    bands = run_json(env, "surfacemotion:extractband", {
        "INPUT": scenes, "BAND": 2, "OUTPUT_FOLDER": str(tmp_path / "bands")})["OUTPUT_LAYERS"]
    assert sorted(os.path.basename(p) for p in bands) == [
        os.path.basename(s).replace(".tif", "_b2.tif") for s in scenes]

    pairs = run_json(env, "surfacemotion:buildpairs", {
        "FOLDER": str(tmp_path / "bands"), "PATTERN": "*_b2.tif", "DT_MIN": 100,
        "OUTPUT": str(tmp_path / "pairs.gpkg"), "OUTPUT_CSV": str(tmp_path / "pairs.csv")})
    assert pairs["N_PAIRS"] == 1
    assert open(tmp_path / "pairs.csv").read().splitlines()[0] == "ref,sec,ref_id,sec_id,ref_date,sec_date,dt_days"

    single = run_json(env, "surfacemotion:correlatepair", {
        "REFERENCE": sorted(bands)[0], "SECONDARY": sorted(bands)[1], "CHIP_SIZE": 32, "SEARCH_RANGE": 8,
        "STEP": 16, "OUTPUT": str(tmp_path / "single_disp.tif")})["OUTPUT"]
    batch = run_json(env, "surfacemotion:correlatepairs", {
        "PAIRS": str(tmp_path / "pairs.csv"), "CHIP_SIZE": 32, "SEARCH_RANGE": 8, "STEP": 16,
        "OUTPUT_FOLDER": str(tmp_path / "disp")})
    assert batch["N_FAILED"] == 0 and len(batch["OUTPUT_LAYERS"]) == 1
    with rasterio.open(single) as a, rasterio.open(batch["OUTPUT_LAYERS"][0]) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))  # same engine, same grid, same numbers
        assert a.descriptions[:4] == ("dx (reference px, + right)", "dy (reference px, + down)",
                                      "valid (1 = valid, 0 = invalid)", "peak ZNCC")
    assert os.path.exists(os.path.splitext(single)[0] + ".qml")

    deramped = run_json(env, "surfacemotion:polyfit", {
        "INPUT": batch["OUTPUT_LAYERS"], "ORDER": 0,
        "MASK": os.path.join(SAMPLE_DIR, "landslide_outline.geojson"),
        "OUTPUT_FOLDER": str(tmp_path / "deramped")})["OUTPUT_LAYERS"]
    velocity = run_json(env, "surfacemotion:velocity", {
        "INPUT": deramped, "MEDIAN_SHIFT": True, "MASK": os.path.join(SAMPLE_DIR, "landslide_outline.geojson"),
        "OUTPUT_FOLDER": str(tmp_path / "velocity")})["OUTPUT_LAYERS"]
    result = demo.evaluate_velocity(velocity[0])
    truth = json.load(open(os.path.join(SAMPLE_DIR, "truth.json")))["landslide"]
    assert result["core_speed"] == pytest.approx(truth["speed_m_per_yr"], rel=0.10)
    assert abs(result["core_azimuth"] - truth["azimuth_deg"]) < 5.0


def test_bad_input_fails_with_a_clear_message_and_exit_code(qgis_process_env, tmp_path):
    scene = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))[0]
    done = qgis_process(qgis_process_env, "--json", "run", "surfacemotion:correlatepair", "--",
                        f"REFERENCE={scene}", f"SECONDARY={scene}", f"OUTPUT={tmp_path / 'out.tif'}", check=False)
    assert done.returncode == 1
    assert "has 4 bands; a single-band image is needed" in done.stdout + done.stderr
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def model_run(qgis_process_env, tmp_path_factory):
    """The shipped model run once on the embedded sample, exactly as `make demo` runs it."""
    out_dir = str(tmp_path_factory.mktemp("model"))
    results = demo.run_model(out_dir, qgis_process_env)["results"]
    return out_dir, results


def test_shipped_model_recovers_the_landslide_speed(model_run):
    out_dir, results = model_run
    velocity_folder = results["velocity:VELOCITY_FOLDER"]
    assert velocity_folder == os.path.join(out_dir, "velocity")
    truth = json.load(open(os.path.join(SAMPLE_DIR, "truth.json")))["landslide"]
    rasters = sorted(glob.glob(os.path.join(velocity_folder, "*_velocity.tif")))
    assert len(rasters) == 10  # 5 scenes, all pairs >= 150 days apart
    for path in rasters:
        result = demo.evaluate_velocity(path)
        assert result["core_speed"] == pytest.approx(truth["speed_m_per_yr"], rel=0.10), result
        assert abs(result["core_azimuth"] - truth["azimuth_deg"]) < 3.0, result
        assert result["core_valid"] > 0.9, result
        assert result["stable_speed"] < 0.05 * truth["speed_m_per_yr"], result
        with rasterio.open(path) as ds:
            assert ds.count == 4 and ds.crs.to_epsg() == 32618
            assert ds.descriptions == ("speed (m/yr)", "flow azimuth (deg clockwise from grid north)",
                                       "east velocity (m/yr, grid x)", "north velocity (m/yr, grid y)")
            assert np.isnan(ds.nodata)
            assert ds.transform.a == pytest.approx(12.0) and ds.transform.e == pytest.approx(-12.0)


def test_invertpairs_and_aoitimeline_numbers_from_the_command_line(qgis_process_env, tmp_path):
    """The series steps through qgis_process.bin on the synthetic disparity network: the inverted velocity per
    step equals the synthetic truth; the AOI timeline equals numpy on the AOI pixels (tests/test_model_series.py)."""
    from test_model_series import check_inversion, check_timeline_csv, write_aoi
    from test_series_inversion import write_network

    paths = write_network(str(tmp_path))
    aoi = write_aoi(tmp_path)
    layers = run_json(qgis_process_env, "surfacemotion:invertpairs", {
        "INPUT": paths, "STEP_DAYS": 0, "REGULARISATION": 0, "ROBUST": "true", "MIN_PAIRS": 3, "PREFIX": "cli",
        "OUTPUT_FOLDER": str(tmp_path / "inv")})["OUTPUT_LAYERS"]
    assert os.path.basename(layers[0]) == "cli_speed.tif"
    check_inversion(str(tmp_path / "inv"), prefix="cli")
    results = run_json(qgis_process_env, "surfacemotion:aoitimeline", {
        "INPUT": paths, "AOI": aoi, "OUTPUT": str(tmp_path / "timeline.gpkg"),
        "OUTPUT_CSV": str(tmp_path / "timeline.csv")})
    assert results["N_ROWS"] == len(paths)
    check_timeline_csv(results["OUTPUT_CSV"], paths)
