"""surfacemotion:invertpairs in-process and with qgis_process.bin (issue 14, point 3)."""
import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from core.io import open_raster
from test_series_inversion import DATES, PAIRS, _displacement, write_network


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("invertpairs")
    paths = write_network(str(folder))
    table = folder / "pairs.csv"
    pd.DataFrame({"path": [os.path.basename(p) for p in paths]}).to_csv(table, index=False)
    return paths, str(table)


def _east_px_per_step(path):
    with open_raster(path) as ds:
        east = ds.read().astype(float)
    return east * np.diff(DATES)[:, None, None] / 365.25 / 2.0  # pixel 2 m


def test_invertpairs_runs_and_loads_one_group_speed_first(network, run_algorithm, tmp_path):
    paths, _ = network
    results, context, feedback = run_algorithm("surfacemotion:invertpairs", {
        "INPUT": paths, "STEP_DAYS": 0, "REGULARISATION": 0, "ROBUST": True, "MIN_PAIRS": 3, "PREFIX": "pm",
        "OUTPUT_FOLDER": str(tmp_path / "out")})
    layers = results["OUTPUT_LAYERS"]
    assert [os.path.basename(p) for p in layers] == [
        "pm_speed.tif", "pm_velocity_east.tif", "pm_velocity_north.tif", "pm_displacement_east.tif",
        "pm_displacement_north.tif", "pm_quality.tif"]
    loading = context.layersToLoadOnCompletion()
    assert set(loading) == set(layers)
    assert loading[layers[0]].name == "pm speed"
    assert f"{len(PAIRS)} pairs, 2020-01-01 … 2020-08-03" in feedback.textLog()
    assert "generalised cross-validation" in feedback.textLog()
    truth = np.array([_displacement(lo, hi) for lo, hi in zip(DATES[:-1], DATES[1:])])
    recovered = _east_px_per_step(layers[1])
    assert np.sqrt(np.nanmean((recovered - truth[:, None, None]) ** 2)) < 0.1
    assert os.path.isfile(layers[0][:-4] + ".qml")


def test_invertpairs_regular_step_and_fixed_lambda(network, run_algorithm, tmp_path):
    _, table = network
    results, _, feedback = run_algorithm("surfacemotion:invertpairs", {
        "PAIRS": table, "STEP_DAYS": 30, "REGULARISATION": 0.1, "ROBUST": False, "MIN_PAIRS": 3,
        "PREFIX": "m", "OUTPUT_FOLDER": str(tmp_path / "out")})
    with open_raster(results["OUTPUT_LAYERS"][0]) as ds:
        assert ds.count == 8 and ds.descriptions[0] == "2020-01-16 (m/yr)"
        assert ds.tags()["SM_SERIES_LAMBDA"] == "0.1"
        speed = ds.read(1).astype(float)
    # first step 0-30 days at 0.05 px/day east and 0.025 north: speed = hypot · 2 m · 365.25
    np.testing.assert_allclose(np.nanmedian(speed), np.hypot(0.05, 0.025) * 2 * 365.25, rtol=0.05)
    assert "generalised" not in feedback.textLog()


def test_invertpairs_uncertainty_weights_and_dask_give_the_core_numbers(run_algorithm, tmp_path):
    """WEIGHTS = uncertainty band and DASK_SCHEDULER through Processing: the rasters equal the core's."""
    distributed = pytest.importorskip("distributed")
    from core.series.driver import invert_network
    from core.series.network import read_network
    from test_series_driver_modes import _heteroscedastic_network

    paths = _heteroscedastic_network(str(tmp_path))[0]
    core = invert_network(read_network(paths), str(tmp_path / "core"), prefix="c", lam=0.3, robust=True,
                          min_pairs=3, weights="uncertainty")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        results, _, feedback = run_algorithm("surfacemotion:invertpairs", {
            "INPUT": paths, "REGULARISATION": 0.3, "ROBUST": True, "MIN_PAIRS": 3, "WEIGHTS": 1,
            "DASK_SCHEDULER": cluster.scheduler_address, "PREFIX": "c", "OUTPUT_FOLDER": str(tmp_path / "qgis")})
    assert "Uncertainty weights: w = (σ_ref/σ)²" in feedback.textLog()
    for path in results["OUTPUT_LAYERS"]:
        kind = os.path.basename(path)[2:-4]
        with open_raster(path) as ds, open_raster(core[kind]) as expected:
            assert ds.tags()["SM_SERIES_WEIGHTS"] == "uncertainty"
            np.testing.assert_array_equal(ds.read(), expected.read(), err_msg=kind)


def test_invertpairs_runs_from_the_command_line(network, tmp_path, qgis_process_env):
    _, table = network
    arguments = ["--json", "run", "surfacemotion:invertpairs", "--", f"PAIRS={table}", "STEP_DAYS=0",
                 "REGULARISATION=0", "ROBUST=true", "MIN_PAIRS=3", "PREFIX=cli",
                 f"OUTPUT_FOLDER={tmp_path / 'cli'}"]
    done = subprocess.run(["qgis_process.bin", *arguments], env=qgis_process_env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout)["results"]
    speed = results["OUTPUT_LAYERS"][0]
    assert os.path.basename(speed) == "cli_speed.tif"
    with open_raster(speed) as ds:
        assert ds.tags()["SM_SERIES_KIND"] == "speed" and ds.count == len(DATES) - 1


def test_invertpairs_of_an_itslive_download_as_layer_or_table(run_algorithm, tmp_path):
    """An ITS_LIVE download (its _vx.tif) in INPUT or in the pair table is one pair per band; with the
    uncertainty weights (its _vx_error / _vy_error) a steady flow comes back in every step."""
    from test_series_cube_input import LAYERS, _fields, write_download

    steady = _fields()
    steady["vx"][:] = 120.0
    steady["vy"][:] = -45.0
    paths = write_download(tmp_path / "download", data=steady)
    table = tmp_path / "pairs.csv"
    pd.DataFrame({"path": [paths["vx"]]}).to_csv(table, index=False)
    for name, given in (("layer", {"INPUT": [paths["vy"]]}), ("table", {"PAIRS": str(table)})):
        results, _, feedback = run_algorithm("surfacemotion:invertpairs", dict(
            given, REGULARISATION=0.1, ROBUST=False, MIN_PAIRS=1, WEIGHTS=1, PREFIX="c",
            OUTPUT_FOLDER=str(tmp_path / name)))
        assert f"{len(LAYERS)} pairs, " in feedback.textLog(), name
        with open_raster(results["OUTPUT_LAYERS"][1]) as ds:  # velocity east
            assert ds.tags()["SM_SERIES_WEIGHTS"] == "uncertainty"
            sources = json.loads(ds.tags()["SM_SERIES_SOURCES"])
            east = ds.read().astype(float)
        assert sorted(s["band"] for s in sources) == [1, 2, 3]
        np.testing.assert_allclose(east, 120.0, rtol=1e-5)
