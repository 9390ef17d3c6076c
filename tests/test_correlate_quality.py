"""Accuracy targets, pre-filters, quality bands, outlier filters, low texture and parallel
pair batches of the offset-tracking engine (issue 3), on small cases of real texture.

Secondaries are band-limited Fourier shifts of the embedded Sentinel-2 crop
(not the engine's cubic spline), so the engine cannot invert its own resampling.
"""
import functools
import json
import os

import numpy as np
from texture import fourier_shifted as _fourier_shifted, land_texture as _land
import pandas as pd
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

from core.offsets.correlate import correlate_arrays, correlate_files, estimate_noise, normalised_median_test
from core.offsets.engine.sources import ArraySource
from core.offsets.disparity import CHIP_SIZE, FB_RESIDUAL, PEAK_RATIO, REASON, SNR, UNCERTAINTY
from core.offsets.prefilters import apply_prefilter, check_prefilter, prefilter_margin
from core.errors import UserInputError
from core.offsets.batch import correlate_pair_table

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "s2_b03_crop.tif")
SAMPLE = os.path.join(os.path.dirname(HERE), "sample")
CHIP, SEARCH, STEP = 32, 8, 8


def _pair(dy, dx, rows=slice(24, 232), cols=slice(24, 360)):
    land = _land()
    return land[rows, cols], _fourier_shifted(land, dx=dx, dy=dy)[rows, cols]


def _noisy(ref, sec, seed):
    """20 dB SNR noise on both images and a brightness change of the secondary."""
    rng = np.random.default_rng(seed)
    sigma = ref.std() / 10.0
    return ref + rng.normal(0, sigma, ref.shape), 1.3 * sec + 250.0 + rng.normal(0, 1.3 * sigma, sec.shape)


def _inner(grid):
    return grid[1:-1, 1:-1]


def _errors(result, dy, dx):
    valid = _inner(result.valid)
    return _inner(result.dx)[valid] - dx, _inner(result.dy)[valid] - dy, valid.mean()


def _rmse(values):
    return float(np.sqrt(np.mean(np.square(values))))


# --------------------------------------------------------------------------- accuracy targets

FRACTIONS = (0.0, 0.2, 0.4, 0.5, 0.7, 0.9)


@functools.lru_cache(maxsize=None)
def _translation_errors(noisy: bool, subpixel: str = "lk"):
    """Errors (dx, dy) per fractional shift for shifts (2 + f, -3 + f)."""
    out = {}
    for k, fraction in enumerate(FRACTIONS):
        dy, dx = 2.0 + fraction, -3.0 + fraction
        ref, sec = _pair(dy, dx)
        if noisy:
            ref, sec = _noisy(ref, sec, seed=k)
        err_x, err_y, valid = _errors(correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel=subpixel), dy, dx)
        assert valid > (0.8 if noisy else 0.9)  # at 20 dB the smoothest chips fail the texture test
        out[fraction] = (err_x, err_y)
    return out


def test_noise_free_translations_rmse_within_0_02_px():
    errors = _translation_errors(False)
    rmse = _rmse(np.concatenate([np.concatenate(e) for e in errors.values()]))
    assert rmse <= 0.02  # measured 0.0004 px


def test_noise_and_brightness_change_rmse_within_0_05_px():
    errors = _translation_errors(True)
    rmse = _rmse(np.concatenate([np.concatenate(e) for e in errors.values()]))
    assert rmse <= 0.05  # measured 0.024 px


@pytest.mark.parametrize("noisy, tolerance", [(False, 0.01), (True, 0.015)])
def test_no_pixel_locking(noisy, tolerance):
    """The mean error does not depend on the fractional part of the shift: within 0.01 px
    without noise (measured 0.001 px); with 20 dB noise the per-shift means scatter by
    about 0.005 px (spatially correlated errors of ~900 overlapping chips), measured 0.010."""
    errors = _translation_errors(noisy)
    mean_x = [e[0].mean() for e in errors.values()]
    mean_y = [e[1].mean() for e in errors.values()]
    assert np.ptp(mean_x) <= tolerance and np.ptp(mean_y) <= tolerance
    # the 3x3 Gaussian fit does lock onto whole pixels: its mean error swings with the fraction
    gauss = _translation_errors(noisy, "gaussian")
    assert np.ptp([e[0].mean() for e in gauss.values()]) > 2 * np.ptp(mean_x)


def test_more_accurate_than_opencv_match_template_with_a_peak_fit():
    import cv2
    dy, dx = 1.3, -2.6
    ref, sec = _noisy(*_pair(dy, dx), seed=5)
    ours = correlate_arrays(ref, sec, CHIP, SEARCH, STEP)
    ref32, sec32 = ref.astype(np.float32), sec.astype(np.float32)
    errors = []
    for i in range(1, ours.dx.shape[0] - 1):
        for j in range(1, ours.dx.shape[1] - 1):
            r, c = i * STEP, j * STEP
            surface = cv2.matchTemplate(sec32[r - SEARCH:r + CHIP + SEARCH, c - SEARCH:c + CHIP + SEARCH],
                                        ref32[r:r + CHIP, c:c + CHIP], cv2.TM_CCOEFF_NORMED)
            _, _, _, (u, v) = cv2.minMaxLoc(surface)
            left, centre, right = np.log(surface[v, u - 1:u + 2])
            errors.append(u - SEARCH + 0.5 * (left - right) / (left - 2 * centre + right) - dx)
    err_x, _, _ = _errors(ours, dy, dx)
    assert _rmse(err_x) < 0.5 * _rmse(errors)  # measured 0.02 vs 0.07 px


# --------------------------------------------------------------------------- pre-filters


def test_prefilters_remove_a_linear_ramp_and_work_blockwise():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:120, 0:140].astype(float)
    ramp = 3.0 * cols - 2.0 * rows + 50.0
    texture = rng.normal(0, 1, ramp.shape)
    for method in ("highpass", "log"):
        size = check_prefilter(method, 0)
        m = prefilter_margin(method, size)
        filtered_ramp = apply_prefilter(ramp, method, size)[m:-m, m:-m]
        assert np.abs(filtered_ramp).max() < 1e-3 * np.abs(ramp).max()
    wallis = apply_prefilter(ramp + 10 * texture, "wallis", 5)
    local_mean = ndimage.uniform_filter(wallis.astype(float), 5)[10:-10, 10:-10]
    assert np.abs(local_mean).mean() < 0.1 and 0.7 < wallis[10:-10, 10:-10].std() < 1.3
    image = ramp + texture
    for method in ("wallis", "highpass", "log"):
        size = check_prefilter(method, 0)
        m = prefilter_margin(method, size)
        whole = apply_prefilter(image, method, size)
        window = apply_prefilter(image[30 - m:90 + m, 40 - m:100 + m], method, size)[m:-m, m:-m]
        np.testing.assert_allclose(window, whole[30:90, 40:100], atol=1e-4)
    with pytest.raises(UserInputError, match="pre-filter"):
        check_prefilter("sobel")


@functools.lru_cache(maxsize=None)
def _illumination_case():
    """Content moved by (0.6, -1.3) px plus a strong additive illumination field (shadows/haze)
    in the secondary, varying over a few chips: not modelled by a per-chip gain and bias."""
    dy, dx = 0.6, -1.3
    ref, sec = _pair(dy, dx)
    rows, cols = np.mgrid[0:sec.shape[0], 0:sec.shape[1]].astype(float)
    shading = 2.5 * ref.std() * np.sin(2 * np.pi * cols / 70.0) * np.cos(2 * np.pi * rows / 90.0)
    return ref, sec + shading, dy, dx


@pytest.mark.parametrize("prefilter", ["wallis", "highpass", "log"])
def test_prefilters_remove_the_bias_of_an_illumination_change(prefilter):
    ref, sec, dy, dx = _illumination_case()
    plain_x, plain_y, _ = _errors(correlate_arrays(ref, sec, CHIP, SEARCH, STEP, prefilter="none", median_test=0),
                                   dy, dx)
    err_x, err_y, valid = _errors(correlate_arrays(ref, sec, CHIP, SEARCH, STEP, prefilter=prefilter,
                                                   median_test=0), dy, dx)
    plain = _rmse(np.concatenate([plain_x, plain_y]))
    filtered = _rmse(np.concatenate([err_x, err_y]))
    assert valid > 0.9
    assert filtered < 0.5 * plain  # measured: none 0.10 px; wallis/highpass/log 0.02-0.04 px


# --------------------------------------------------------------------------- quality bands


def test_peak_ratio_flags_an_ambiguous_periodic_texture():
    rng = np.random.default_rng(2)
    stripes = 100 * np.sin(2 * np.pi * np.arange(200) / 7.0)[None, :] * np.ones((200, 1))
    ref = stripes + rng.normal(0, 5, stripes.shape) + np.arange(200)[:, None] * 0.0
    ref[:, :100] = _land()[:200, :100]  # left half real texture, right half stripes
    sec = np.roll(ref, (1, 2), axis=(0, 1)) + rng.normal(0, 5, ref.shape)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, min_texture=0, median_test=0)
    land_cells = result.peak_ratio[2:-2, 1:7]  # chips entirely in the real texture
    stripe_cells = result.peak_ratio[2:-2, 15:-2]
    assert np.nanmedian(land_cells) > 1.3
    assert np.nanmedian(stripe_cells) < 1.1  # the stripes repeat every 7 px: two equal peaks
    assert np.nanmedian(result.snr[2:-2, 1:7]) > 2.0


def test_uncertainty_tracks_the_actual_error():
    clean = correlate_arrays(*_pair(1.2, 0.7), CHIP, SEARCH, STEP)
    noisy_pair = _noisy(*_pair(1.2, 0.7), seed=11)
    rng = np.random.default_rng(12)
    very_noisy_pair = (noisy_pair[0] + rng.normal(0, 3 * noisy_pair[0].std() / 10, noisy_pair[0].shape),
                       noisy_pair[1] + rng.normal(0, 3 * noisy_pair[0].std() / 10, noisy_pair[0].shape))
    sigmas, rmses = [], []
    for ref, sec in ((None, None), noisy_pair, very_noisy_pair):
        result = clean if ref is None else correlate_arrays(ref, sec, CHIP, SEARCH, STEP)
        err_x, err_y, _ = _errors(result, 1.2, 0.7)
        sigmas.append(np.nanmedian(_inner(result.sigma)))
        rmses.append(np.hypot(_rmse(err_x), _rmse(err_y)))
    assert sigmas[0] < sigmas[1] < sigmas[2]
    for sigma, rmse in zip(sigmas[1:], rmses[1:]):
        assert rmse / 3 < sigma < 3 * rmse  # predicted 1-sigma vector error within a factor 3


def test_sample_water_is_invalid_and_the_landslide_core_valid():
    def green(name):
        with rasterio.open(os.path.join(SAMPLE, name)) as ds:
            return ds.read(2).astype(np.float64)

    ref = green("20200715_151233_62_2414_3B_AnalyticMS_SR_clip.tif")
    sec = green("20220716_151117_19_24a3_3B_AnalyticMS_SR_clip.tif")
    truth = json.load(open(os.path.join(SAMPLE, "truth.json")))["landslide"]
    result = correlate_arrays(ref, sec, 32, 10, 8)
    loose = correlate_arrays(ref, sec, 32, 10, 8, min_texture=0)
    rows, cols = np.meshgrid(16 + 8 * np.arange(result.dx.shape[0]), 16 + 8 * np.arange(result.dx.shape[1]),
                             indexing="ij")
    core = ((cols - truth["centre_col_px"]) / truth["semi_axis_col_px"]) ** 2 + \
           ((rows - truth["centre_row_px"]) / truth["semi_axis_row_px"]) ** 2 < 0.6 ** 2
    bay = (rows > 250) & (rows < 400) & (cols > 560)  # open water of the bay (lower right)
    assert bay.sum() > 20 and core.sum() > 50
    assert result.valid[core].mean() > 0.9
    assert result.valid[bay].mean() < 0.05
    assert loose.valid[bay].mean() > 0.8  # without the texture test the water "matches" at 0 m/yr


def test_noise_estimate_of_white_noise():
    rng = np.random.default_rng(4)
    image = 1000 + rng.normal(0, 7.0, (300, 300))
    assert estimate_noise(ArraySource(image), 300, 300) == pytest.approx(7.0, rel=0.15)


# --------------------------------------------------------------------------- outlier filters


def test_normalised_median_test_finds_spikes_in_a_sheared_field():
    rows, cols = np.mgrid[0:30, 0:40].astype(float)
    dx = 0.05 * cols + 0.02 * rows
    dy = -0.03 * cols
    dx[10, 10] += 1.0
    dy[20, 30] -= 0.8
    dx[5, 5] = np.nan
    outliers = normalised_median_test(dx, dy, 3.0)
    assert outliers[10, 10] and outliers[20, 30]
    assert outliers.sum() == 2


def test_median_test_removes_mismatched_chips_but_keeps_good_ones():
    dy, dx = 0.4, 1.1
    ref, sec = _pair(dy, dx)
    sec = sec.copy()
    rng = np.random.default_rng(9)
    land = _land()
    for r, c in rng.integers(40, 160, size=(6, 2)):  # paste unrelated texture: false matches
        sec[r:r + 20, c:c + 20] = land[300 + r % 50:320 + r % 50, 200 + c % 80:220 + c % 80]
    off = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, median_test=0, min_texture=0)
    on = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, min_texture=0)
    bad_off = off.valid & (np.hypot(off.dx - dx, off.dy - dy) > 0.5)
    bad_on = on.valid & (np.hypot(on.dx - dx, on.dy - dy) > 0.5)
    # pasted patches spoil groups of neighbouring chips alike; the test removes the isolated ones
    assert bad_off.sum() >= 3 and bad_on.sum() < bad_off.sum()
    good_off = off.valid & ~bad_off
    assert on.valid[good_off].mean() > 0.95


def test_forward_backward_check_rejects_inconsistent_matches(tmp_path):
    dy, dx = 0.5, -0.8
    ref, sec = _pair(dy, dx)
    both = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, forward_backward=0.5, median_test=0)
    err_x, err_y, valid = _errors(both, dy, dx)
    assert valid > 0.9 and _rmse(err_x) < 0.05
    assert np.nanmax(_inner(both.fb_residual)) < 0.2  # consistent everywhere on a clean shift
    # a block of the secondary moved 4 px further: chips straddling its edge match partly
    sec2 = sec.copy()
    sec2[60:150, 100:220] = _fourier_shifted(_land(), dx=dx + 4.0, dy=dy)[24:232, 24:360][60:150, 100:220]
    plain = correlate_arrays(ref, sec2, CHIP, SEARCH, STEP, median_test=0)
    checked = correlate_arrays(ref, sec2, CHIP, SEARCH, STEP, forward_backward=0.5, median_test=0)
    wrong = lambda r: r.valid & (np.abs(r.dx - dx) > 0.3) & (np.abs(r.dx - dx - 4) > 0.3)  # noqa: E731
    assert wrong(plain).sum() >= 3
    assert wrong(checked).sum() < 0.8 * wrong(plain).sum()
    assert np.all(checked.fb_residual[checked.valid] <= 0.5)


# --------------------------------------------------------------------------- files: mask, bands


def _write(path, array, transform):
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                       dtype="float32", crs=CRS.from_epsg(32618), transform=transform) as ds:
        ds.write(array.astype("float32"), 1)
    return str(path)


def test_polygon_mask_and_quality_bands_in_the_file(tmp_path):
    ref, sec = _pair(0.3, 0.9)
    transform = Affine(10, 0, 500000, 0, -10, 4000000)
    ref_path, sec_path = _write(tmp_path / "r.tif", ref, transform), _write(tmp_path / "s.tif", sec, transform)
    # polygon over reference columns 100..250, rows 50..150
    x0, y0 = transform * (100, 50)
    x1, y1 = transform * (250, 150)
    square = {"type": "Polygon", "coordinates": [[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]}
    out = correlate_files(ref_path, sec_path, str(tmp_path / "d.tif"), CHIP, SEARCH, STEP,
                          forward_backward=1.0, mask_geometries=[square]).path
    with rasterio.open(out) as ds:
        assert ds.descriptions[4:] == (SNR, PEAK_RATIO, UNCERTAINTY, FB_RESIDUAL, REASON, CHIP_SIZE)
        valid = ds.read(3) == 1
        sigma = ds.read(7)
    centre_cols = 16 + STEP * np.arange(valid.shape[1])
    centre_rows = 16 + STEP * np.arange(valid.shape[0])
    inside = ((centre_rows[:, None] > 50) & (centre_rows[:, None] < 150)
              & (centre_cols[None, :] > 100) & (centre_cols[None, :] < 250))
    assert inside.sum() > 100
    assert valid[inside].mean() > 0.95 and not valid[~inside].any()
    assert np.nanmedian(sigma) < 0.05


# --------------------------------------------------------------------------- beyond one machine


@pytest.fixture
def pair_table(tmp_path):
    transform = Affine(10, 0, 500000, 0, -10, 4000000)
    rows = []
    for k, (dy, dx) in enumerate([(0.5, 1.5), (-1.2, 0.3), (2.1, -0.7)]):
        ref, sec = _pair(dy, dx, rows=slice(24, 152), cols=slice(24, 184))
        rows.append({"ref": _write(tmp_path / f"ref{k}.tif", ref, transform),
                     "sec": _write(tmp_path / f"sec{k}.tif", sec, transform), "dy": dy, "dx": dx})
    return pd.DataFrame(rows)


def _medians(outcomes):
    values = []
    for outcome in outcomes:
        with rasterio.open(outcome.output) as ds:
            values.append((float(np.nanmedian(ds.read(1))), float(np.nanmedian(ds.read(2)))))
    return values


def test_pairs_in_parallel_threads_and_on_a_dask_cluster(pair_table, tmp_path):
    import distributed
    serial = correlate_pair_table(pair_table, str(tmp_path / "serial"), CHIP, SEARCH, STEP)
    threaded = correlate_pair_table(pair_table, str(tmp_path / "threads"), CHIP, SEARCH, STEP, workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        on_dask = correlate_pair_table(pair_table, str(tmp_path / "dask"), CHIP, SEARCH, STEP,
                                       scheduler=cluster.scheduler_address)
    for outcomes in (serial, threaded, on_dask):
        assert [o.status for o in outcomes] == ["done"] * 3
        assert [o.ref for o in outcomes] == list(pair_table["ref"])  # table order
        for (mx, my), dx, dy in zip(_medians(outcomes), pair_table["dx"], pair_table["dy"]):
            assert mx == pytest.approx(dx, abs=0.02) and my == pytest.approx(dy, abs=0.02)
    for a, b in zip(serial, on_dask):
        with rasterio.open(a.output) as x, rasterio.open(b.output) as y:
            np.testing.assert_array_equal(x.read(), y.read())


def test_unreachable_dask_scheduler_is_a_clear_error(pair_table, tmp_path):
    with pytest.raises(UserInputError, match="Dask scheduler"):
        correlate_pair_table(pair_table, str(tmp_path / "out"), CHIP, SEARCH, STEP,
                             scheduler="tcp://127.0.0.1:1")
