"""core.series.inversion / driver: a synthetic redundant pair network (issue 14, point 7).

12 dates over 215 days, every pair of 8-200 days (64 pairs), a piecewise-linear velocity history with an
acceleration step (0.05 px/day, then a 30-day ramp to 0.15 px/day from day 100), noise 0.1 px, 10 % outlier
pairs (a whole pair shifted by 3 px: a bad co-registration), gaps by a cloud mask (10 % of pixel-dates).
"""
import json
import os

import numpy as np
import pytest
from affine import Affine

from core.errors import UserInputError
from core.io import Grid, open_raster, write_raster
from core.offsets.disparity import BASE_DESCRIPTIONS, disparity_tags
from core.series import inversion as inv
from core.series.driver import invert_network, series_dates
from core.series.network import read_network

DATES = np.array([0, 10, 20, 35, 50, 70, 90, 110, 130, 160, 190, 215.0])
PAIRS = [(i, j) for i in range(12) for j in range(i + 1, 12) if 8 <= DATES[j] - DATES[i] <= 200]


def _velocity(t):
    return np.where(t < 100, 0.05, 0.05 + 0.1 * np.clip((t - 100) / 30.0, 0, 1))


def _displacement(t0, t1):
    """∫ v dt (px) from t0 to t1 (exact for the piecewise-linear history: fine trapezoids)."""
    t = np.linspace(t0, t1, 4001)
    return float(np.trapz(_velocity(t), t))


def _network(n_pix=300, seed=1, outliers=True, clouds=True):
    rng = np.random.default_rng(seed)
    t1 = DATES[[i for i, _ in PAIRS]]
    t2 = DATES[[j for _, j in PAIRS]]
    truth = np.array([_displacement(a, b) for a, b in zip(t1, t2)])
    y = truth[:, None] + rng.normal(0.0, 0.1, (len(PAIRS), n_pix))
    bad = np.zeros(len(PAIRS), bool)
    if outliers:
        bad[rng.choice(len(PAIRS), round(0.1 * len(PAIRS)), replace=False)] = True
        y[bad] += rng.choice([-1.0, 1.0], (bad.sum(), 1)) * 3.0
    if clouds:
        cloud = rng.random((len(DATES), n_pix)) < 0.1
        for j, (a, b) in enumerate(PAIRS):
            y[j, cloud[a] | cloud[b]] = np.nan
    return t1, t2, y, bad


def _setup(step_days=0.0):
    t1, t2, y, bad = _network()
    edges = inv.time_edges(t1, t2, step_days)
    a = inv.design_matrix(t1, t2, edges)
    d = inv.difference_operator(edges)
    truth = np.array([_displacement(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])])
    return a, d, edges, y / (t2 - t1)[:, None], truth


def _rms_px(v, edges, truth):
    """RMS (px per interval) of the recovered displacement per step against the truth."""
    return float(np.sqrt(np.nanmean((v * np.diff(edges)[:, None] - truth[:, None]) ** 2)))


def test_network_shape():
    assert len(PAIRS) == 64 and len(DATES) == 12
    lengths = [DATES[j] - DATES[i] for i, j in PAIRS]
    assert min(lengths) >= 8 and max(lengths) <= 200


def test_design_rows_sum_to_one():
    a, _, edges, _, _ = _setup(step_days=7.0)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert edges[0] == 0.0 and edges[-1] >= 215.0 and np.allclose(np.diff(edges), 7.0)


def test_recovers_history_and_downweights_outliers():
    a, d, edges, y, truth = _setup()
    robust = inv.invert(a, y, d, robust=True)
    plain = inv.invert(a, y, d, lam=robust_lambda(a, y, d), robust=False)
    rms_robust, rms_plain = _rms_px(robust.v, edges, truth), _rms_px(plain.v, edges, truth)
    assert rms_robust < 0.1
    assert rms_robust < 0.5 * rms_plain
    # the outlier pairs end with smaller robust weights: fewer pairs used than observed
    assert robust.n_used.mean() < np.isfinite(y).sum(axis=0).mean()


def test_recovery_over_many_networks_is_near_the_outlier_free_floor():
    """Eight random networks (seeds 1-8): with 10 % outlier pairs the robust inversion stays within 30 % of
    the plain inversion of the same network without outliers (the noise floor: 0.076-0.115 px), below
    0.1 px per interval on average, and under half the non-robust error on average."""
    robust, plain, floor = [], [], []
    for seed in range(1, 9):
        t1, t2, y, _ = _network(seed=seed)
        _, _, y_clean, _ = _network(seed=seed, outliers=False)
        edges = inv.time_edges(t1, t2)
        a, d = inv.design_matrix(t1, t2, edges), inv.difference_operator(edges)
        truth = np.array([_displacement(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])])
        y, y_clean = y / (t2 - t1)[:, None], y_clean / (t2 - t1)[:, None]
        robust.append(_rms_px(inv.invert(a, y, d, robust=True).v, edges, truth))
        plain.append(_rms_px(inv.invert(a, y, d, lam=robust_lambda(a, y, d), robust=False).v, edges, truth))
        floor.append(_rms_px(inv.invert(a, y_clean, d, robust=False).v, edges, truth))
    print("robust", np.round(robust, 3), "plain", np.round(plain, 3), "floor", np.round(floor, 3))
    assert all(r <= 1.3 * f for r, f in zip(robust, floor))
    assert np.mean(robust) < 0.1
    assert np.mean(np.array(robust) / np.array(plain)) < 0.5


def robust_lambda(a, y, d):
    w = inv.weights_from_sigmas(inv.pair_sigmas(a, y, inv.solve_grouped(a, y, np.ones(len(y)), 1.0, d)))
    return inv.gcv_lambda(a, y, w, d)[0]


def test_grouping_equals_per_pixel_solve():
    a, d, _, y, _ = _setup()
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    grouped = inv.solve_grouped(a, y, w, 0.3, d, min_pairs=5)
    single = inv.solve_per_column(a, y, w, 0.3, d, min_pairs=5)
    assert np.isfinite(grouped).all()
    np.testing.assert_allclose(grouped, single, rtol=1e-9, atol=1e-12)
    patterns, labels = inv.mask_groups(np.isfinite(y))
    assert 1 < len(patterns) <= inv.MAX_GROUPS  # the grouped path, not its batched fallback
    # the batched per-column-weights solve agrees as well
    weighted = inv.solve_weighted(a, np.nan_to_num(y), np.isfinite(y) * w[:, None], 0.3, d)
    np.testing.assert_allclose(weighted, single, rtol=1e-6, atol=1e-9)


def test_gcv_lambda_is_near_the_best_of_a_sweep():
    a, d, edges, y, truth = _setup()
    t1, t2, y_clean, _ = _network(outliers=False)
    y = y_clean / (t2 - t1)[:, None]
    w = inv.weights_from_sigmas(inv.pair_sigmas(a, y, inv.solve_grouped(a, y, np.ones(len(y)), 1.0, d)))
    lam, scores = inv.gcv_lambda(a, y, w, d)
    errors = [_rms_px(inv.solve_grouped(a, y, w, value, d), edges, truth) for value in inv.GCV_LAMBDAS]
    assert inv.GCV_LAMBDAS[0] < lam < inv.GCV_LAMBDAS[-1]
    best = min(errors)
    assert _rms_px(inv.solve_grouped(a, y, w, lam, d), edges, truth) < 1.5 * best
    # far too much regularisation flattens the acceleration
    assert errors[-1] > 3 * best


def test_uncovered_steps_are_flagged():
    starts, ends = np.array([0.0, 0.0, 30.0]), np.array([10.0, 20.0, 40.0])
    edges = inv.time_edges(starts, ends, 5.0)
    a = inv.design_matrix(starts, ends, edges)
    assert list(inv.step_coverage(a)) == [2, 2, 1, 1, 0, 0, 1, 1]
    valid = np.array([[True, False], [True, False], [True, True]])
    assert list(inv.uncovered_steps(a, valid)) == [2, 6]


# --------------------------------------------------------------------------- the driver on files

GRID = Grid("EPSG:32719", Affine(2.0, 0, 400000.0, 0, -2.0, 4500000.0), 20, 15)
REF0 = np.datetime64("2020-01-01T00:00")


def _day(t):
    return str(REF0 + np.timedelta64(int(round(t * 24 * 60)), "m")) + "Z"


def write_network(folder, n_pairs=None, grid=GRID):
    """Disparity rasters (east flow in x, northward flow: dy = -north) of the synthetic network."""
    n_pix = grid.width * grid.height
    t1, t2, y, _ = _network(n_pix=n_pix)
    paths = []
    for j in range(n_pairs or len(PAIRS)):
        dx = y[j].reshape(grid.height, grid.width)
        dy = -0.5 * dx
        valid = np.isfinite(dx).astype(np.float32)
        tags = disparity_tags(1, ref_date=_day(t1[j]), sec_date=_day(t2[j]))
        path = os.path.join(folder, f"pair_{j:02d}_disp.tif")
        write_raster(path, grid, [dx, dy, valid, np.full_like(dx, 0.9)], BASE_DESCRIPTIONS, tags=tags)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("network")
    write_network(str(folder))
    return folder


def test_driver_outputs_format_and_numbers(network_dir, tmp_path):
    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    progress = []
    out = invert_network(pairs, str(tmp_path / "out"), prefix="pm", block_rows=6, progress=progress.append)
    assert progress[-1] == 100.0 and len(progress) == 3
    assert sorted(os.path.basename(p) for p in out.values()) == [
        "pm_displacement_east.tif", "pm_displacement_north.tif", "pm_quality.tif", "pm_speed.tif",
        "pm_velocity_east.tif", "pm_velocity_north.tif"]
    dates = series_dates(out["velocity_east"])
    assert dates[0] == "2020-01-06" and len(dates) == 11
    with open_raster(out["velocity_east"]) as ds:
        assert ds.descriptions[0] == "2020-01-06 (m/yr)"
        tags = ds.tags()
        assert tags["SM_SERIES_KIND"] == "velocity_east" and tags["SM_SERIES_UNIT"] == "m/yr"
        sources = json.loads(tags["SM_SERIES_SOURCES"])
        assert len(sources) == 64 and set(sources[0]) == {"path", "ref_date", "sec_date"}
        east = ds.read().astype(float)
    with open_raster(out["velocity_north"]) as ds:
        north = ds.read().astype(float)
    with open_raster(out["displacement_east"]) as ds:
        assert ds.descriptions[-1] == "2020-08-03 (m)" and ds.tags()["SM_SERIES_UNIT"] == "m"
        disp = ds.read().astype(float)
    with open_raster(out["quality"]) as ds:
        rms, used, gaps = ds.read().astype(float)
    edges = np.r_[DATES]
    truth = np.array([_displacement(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])])
    # px per interval: pixel 2 m, v in m/yr
    recovered = east * np.diff(edges)[:, None, None] / 365.25 / 2.0
    assert np.sqrt(np.nanmean((recovered - truth[:, None, None]) ** 2)) < 0.1
    # north = -dy with dy = -0.5 dx: north velocity is half the east velocity
    np.testing.assert_allclose(north, 0.5 * east, rtol=1e-4, atol=1e-3)
    # cumulative displacement at the last date: the sum of the steps (px), within the noise
    assert np.sqrt(np.nanmean((disp[-1] / 2.0 - truth.sum()) ** 2)) < 0.1
    np.testing.assert_allclose(disp[0], east[0] * 10 / 365.25, rtol=1e-5)
    assert np.nanmax(used) <= 64 and np.nanmin(used) >= 2 and np.isfinite(rms).all()
    assert np.nanmin(gaps) == 0


def test_driver_refuses_one_pair(network_dir, tmp_path):
    pairs = read_network([str(sorted(network_dir.glob("*_disp.tif"))[0])])
    with pytest.raises(UserInputError, match="at least two"):
        invert_network(pairs, str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_nan_median_rows_equals_numpy():
    x = np.random.default_rng(5).normal(size=(7, 9))
    x[x > 1.0] = np.nan
    x[3] = np.nan
    expected = np.array([np.nan if np.isnan(row).all() else np.nanmedian(row) for row in x])
    np.testing.assert_array_equal(inv.nan_median_rows(x), expected)


def test_driver_bounds_gdal_block_cache_and_restores_it(network_dir, tmp_path, monkeypatch):
    """GDAL's block cache stays at GDAL_CACHE_BYTES while blocks are inverted (not GDAL's 5 % of the RAM,
    which would grow with the number of pair files), and is back to its size afterwards."""
    from osgeo import gdal

    from core.series import driver

    before = gdal.GetCacheMax()
    seen = []
    original = driver._read_block

    def recording(*args, **kwargs):
        seen.append(gdal.GetCacheMax())
        return original(*args, **kwargs)

    monkeypatch.setattr(driver, "_read_block", recording)
    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    invert_network(pairs, str(tmp_path / "out"), prefix="cache", block_rows=6, lam=0.3)
    assert seen and set(seen) == {driver.GDAL_CACHE_BYTES}
    assert gdal.GetCacheMax() == before


@pytest.mark.parametrize("step_days", [0.0, 7.0])
def test_compiled_robust_loop_equals_numpy_loop(monkeypatch, step_days):
    from core.series import robust_kernel

    a, d, _, y, _ = _setup(step_days)
    results = {}
    for use_numba in (True, False):
        monkeypatch.setattr(robust_kernel, "USE_NUMBA", use_numba)
        results[use_numba] = inv.invert(a, y, d, lam=0.5, robust=True, min_pairs=3, tolerance=1e-5)
    compiled, numpy_loop = results[True], results[False]
    assert compiled.iterations >= 2  # the outliers need several reweightings
    np.testing.assert_allclose(compiled.v, numpy_loop.v, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(compiled.n_used, numpy_loop.n_used)
    np.testing.assert_allclose(compiled.residual_rms, numpy_loop.residual_rms, rtol=1e-9)


@pytest.mark.parametrize("use_numba", [True, False])
def test_robust_result_of_a_column_does_not_depend_on_its_neighbours(monkeypatch, use_numba):
    """Convergence is per pixel column (as TICOI's per-pixel loop): a pixel inverted alone or in a block
    gives the same series."""
    from core.series import robust_kernel

    monkeypatch.setattr(robust_kernel, "USE_NUMBA", use_numba)
    a, d, _, y, _ = _setup()
    sigmas = np.full(len(y), 0.01)  # pair weights from the residual spread would depend on the block
    block = inv.invert(a, y, d, lam=0.5, sigmas=sigmas, robust=True, min_pairs=3, tolerance=1e-5)
    for col in (0, 17, 123):
        alone = inv.invert(a, y[:, col:col + 1], d, lam=0.5, sigmas=sigmas, robust=True, min_pairs=3,
                           tolerance=1e-5)
        np.testing.assert_allclose(alone.v[:, 0], block.v[:, col], rtol=1e-10, atol=1e-13)
        assert alone.n_used[0] == block.n_used[col]


def test_spans_of_design_rows():
    from core.series.robust_kernel import spans

    a = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.2, 0.3, 0.5], [0.0, 0.0, 0.0, 0.0]])
    first, last = spans(a)
    assert first.tolist() == [0, 3, 1, 0] and last.tolist() == [2, 4, 4, 0]


def test_series_do_not_depend_on_the_column_chunks(network_dir, tmp_path, monkeypatch):
    """Pair weights come from the whole block and the robust loop converges per pixel, so chunking the
    block's columns (memory) does not change the numbers."""
    from core.series import driver

    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    whole = invert_network(pairs, str(tmp_path / "whole"), prefix="w", lam=0.3)
    monkeypatch.setattr(driver, "chunk_columns_for", lambda n_pairs: 37)
    chunked = invert_network(pairs, str(tmp_path / "chunked"), prefix="w", lam=0.3)
    for kind in whole:
        with open_raster(whole[kind]) as a, open_raster(chunked[kind]) as b:
            np.testing.assert_allclose(b.read(), a.read(), rtol=1e-5, atol=1e-6, err_msg=kind)


def test_uncovered_steps_in_column_chunks_equal_one_product():
    rng = np.random.default_rng(2)
    a, _, _, y, _ = _setup()
    valid = np.isfinite(y) & (rng.random(y.shape) > 0.3)
    expected = ((valid.T.astype(np.float64) @ (a > 0)) == 0).sum(axis=1)
    np.testing.assert_array_equal(inv.uncovered_steps(a, valid, columns=7), expected)
    assert expected.max() > 0
