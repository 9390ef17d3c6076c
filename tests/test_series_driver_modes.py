"""invertpairs' driver: blocks on a Dask cluster (the same numbers as in process) and weights from the pairs'
uncertainty bands (issue 14, point 3).

The uncertainty case: every observation has its own noise σ (0.02-0.6 px, log-uniform per pair and pixel)
and the pair rasters carry that σ in their 'uncertainty (px, 1 sigma)' band. Weighting by it must beat the
residual-spread weights (which only know each pair's typical noise), and the driver's numbers must equal an
independent per-pixel weighted least squares (numpy lstsq on the stacked, √w-scaled system).
"""
import os

import numpy as np
import pytest
from affine import Affine

from core.errors import UserInputError
from core.io import Grid, open_raster, write_raster
from core.offsets.disparity import BASE_DESCRIPTIONS, UNCERTAINTY, disparity_tags
from core.series import inversion as inv
from core.series.driver import invert_network
from core.series.network import read_network
from test_series_inversion import DATES, PAIRS, _day, _displacement, network_dir, write_network  # noqa: F401

GRID = Grid("EPSG:32719", Affine(2.0, 0, 400000.0, 0, -2.0, 4500000.0), 24, 20)
LAMBDA = 0.3


def _read(path):
    with open_raster(path) as ds:
        return ds.read().astype(float)


# --------------------------------------------------------------------------- Dask

def test_blocks_on_a_dask_cluster_give_the_in_process_numbers(network_dir, tmp_path):  # noqa: F811
    distributed = pytest.importorskip("distributed")
    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    here = invert_network(pairs, str(tmp_path / "here"), prefix="s", block_rows=4, lam=LAMBDA)
    progress = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        there = invert_network(pairs, str(tmp_path / "dask"), prefix="s", block_rows=4, lam=LAMBDA,
                               scheduler=cluster.scheduler_address, progress=progress.append)
    assert progress[-1] == 100.0 and len(progress) == 4  # 15 rows in blocks of 4
    for kind in here:
        np.testing.assert_array_equal(_read(there[kind]), _read(here[kind]), err_msg=kind)


def test_unreachable_scheduler_is_a_clear_error_and_writes_nothing(network_dir, tmp_path):  # noqa: F811
    pytest.importorskip("distributed")
    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    with pytest.raises(UserInputError, match="Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        invert_network(pairs, str(tmp_path / "out"), lam=LAMBDA, scheduler="tcp://127.0.0.1:9")
    assert not os.path.exists(tmp_path / "out")  # refused before anything is read or written


def test_cancel_on_dask_leaves_no_output(network_dir, tmp_path):  # noqa: F811
    distributed = pytest.importorskip("distributed")
    from core.errors import Cancelled

    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    calls = []

    def cancel_after_first_block(percent):
        calls.append(percent)

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with pytest.raises(Cancelled):
            invert_network(pairs, str(tmp_path / "out"), lam=LAMBDA, block_rows=2, progress=cancel_after_first_block,
                           is_canceled=lambda: len(calls) >= 1, scheduler=cluster.scheduler_address)
    assert calls and calls[-1] < 100.0
    out = tmp_path / "out"
    assert not out.exists() or not [name for name in os.listdir(out) if not name.startswith(".")]
# --------------------------------------------------------------------------- uncertainty weights

def _heteroscedastic_network(folder, seed=5):
    """Disparity rasters whose noise σ differs per pair and pixel, with σ in their uncertainty band."""
    rng = np.random.default_rng(seed)
    n_pix = GRID.width * GRID.height
    t1 = DATES[[i for i, _ in PAIRS]]
    t2 = DATES[[j for _, j in PAIRS]]
    truth = np.array([_displacement(a, b) for a, b in zip(t1, t2)])
    sigma = np.exp(rng.uniform(np.log(0.02), np.log(0.6), (len(PAIRS), n_pix)))
    dx = truth[:, None] + sigma * rng.standard_normal((len(PAIRS), n_pix))
    paths = []
    for j in range(len(PAIRS)):
        band = dx[j].reshape(GRID.height, GRID.width)
        bands = [band, -0.5 * band, np.ones_like(band), np.full_like(band, 0.9),
                 sigma[j].reshape(GRID.height, GRID.width)]
        path = os.path.join(folder, f"pair_{j:02d}_disp.tif")
        write_raster(path, GRID, bands, BASE_DESCRIPTIONS + (UNCERTAINTY,),
                     tags=disparity_tags(1, ref_date=_day(t1[j]), sec_date=_day(t2[j])))
        paths.append(path)
    return paths, t1, t2, dx, sigma


def _truth_steps():
    edges = np.r_[DATES]
    return edges, np.array([_displacement(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])])


def test_uncertainty_weights_beat_residual_weights_and_equal_an_independent_solve(tmp_path):
    paths, t1, t2, dx, sigma = _heteroscedastic_network(str(tmp_path))
    pairs = read_network(paths)
    by_sigma = invert_network(pairs, str(tmp_path / "sigma"), prefix="s", lam=LAMBDA, robust=False,
                              weights="uncertainty")
    by_spread = invert_network(pairs, str(tmp_path / "spread"), prefix="s", lam=LAMBDA, robust=False)
    edges, truth = _truth_steps()
    to_px = np.diff(edges)[:, None, None] / 365.25 / 2.0       # m/yr over a step -> px (2 m pixels)

    def rms(paths_out):
        east = _read(paths_out["velocity_east"]) * to_px
        return float(np.sqrt(np.mean((east - truth[:, None, None]) ** 2)))

    rms_sigma, rms_spread = rms(by_sigma), rms(by_spread)
    print(f"RMS px per step: uncertainty weights {rms_sigma:.4f}, residual-spread weights {rms_spread:.4f}")
    assert rms_sigma < 0.6 * rms_spread, (rms_sigma, rms_spread)
    with open_raster(by_sigma["speed"]) as ds:
        assert ds.tags()["SM_SERIES_WEIGHTS"] == "uncertainty"

    # independent: per pixel, weights (σ_ref/σ)² with σ in m/yr, σ_ref the median over the centre window
    # (here the whole 24 × 20 grid), λ rows appended, numpy lstsq
    dt_yr = (t2 - t1) / 365.25
    y = dx * 2.0 / dt_yr[:, None]                              # east velocity, m/yr
    sig = sigma * 2.0 / np.abs(dt_yr)[:, None]
    sigma_ref = np.median(sig)                                # one σ (px) for dx and dy: east = north σ
    a = inv.design_matrix(t1, t2, edges)
    d = inv.difference_operator(edges)
    east = _read(by_sigma["velocity_east"]).reshape(a.shape[1], -1)
    for pixel in (0, 77, 301, 479):
        w = (sigma_ref / np.maximum(sig[:, pixel], 0.1 * sigma_ref)) ** 2
        system = np.vstack([a * np.sqrt(w)[:, None], LAMBDA * d])
        rhs = np.concatenate([y[:, pixel] * np.sqrt(w), np.zeros(len(d))])
        expected = np.linalg.lstsq(system, rhs, rcond=None)[0]
        np.testing.assert_allclose(east[:, pixel], expected, rtol=2e-5, atol=1e-3)


def test_uncertainty_weights_refused_without_an_uncertainty_band(network_dir, tmp_path):  # noqa: F811
    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    with pytest.raises(UserInputError, match="none of the pair rasters has an uncertainty band"):
        invert_network(pairs, str(tmp_path / "out"), lam=LAMBDA, weights="uncertainty")


def test_unknown_weighting_is_refused(network_dir, tmp_path):  # noqa: F811
    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    with pytest.raises(UserInputError, match="Unknown weighting 'snr'"):
        invert_network(pairs, str(tmp_path / "out"), lam=LAMBDA, weights="snr")
