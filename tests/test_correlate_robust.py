"""Partial nodata, rejection reasons, the fallback chip ladder and the coherence test (issue 10, points 4-5).

Cases are small and built from the embedded Sentinel-2 crop: a smooth warp
resampled with quintic B-splines (not the engine's own sampler), band-limited
Fourier shifts, and images built to trigger each rejection reason.
"""
import functools
import os
import sys

import numpy as np
import pytest
from scipy import ndimage
from texture import fourier_shifted, land_texture

from core.offsets import sweep as sweep_module
from core.offsets.correlate import correlate_arrays
from core.offsets.disparity import (REASON, REASONS, REASON_COHERENCE_TEST, REASON_FEW_VALID, REASON_FORWARD_BACKWARD,
                                    REASON_LOW_PEAK_RATIO, REASON_LOW_TEXTURE, REASON_MASKED, REASON_MEDIAN_TEST,
                                    REASON_NO_DATA, REASON_REFINEMENT, REASON_SEARCH_EDGE, REASON_VALID)
from core.offsets.engine import search as search_module
from core.offsets.engine.params import check_parameters
from core.offsets.engine.quality import displacement_coherence_test, normalised_median_test
from core.offsets.sweep import box_sums

CHIP, SEARCH, STEP = 32, 10, 8
#: The 2 x 2 px-cell context of these tests: no outlier tests unless a test asks for them.
PLAIN = dict(median_test=0.0, coherence=0.0, chip_ladder=0)


def _field(rows, cols):
    """A smooth tongue-shaped displacement field (dx, dy) px, at most ~6 px."""
    across = np.exp(-((rows - 160.0) / 90.0) ** 2)
    dx = 6.0 * across * (0.55 + 0.45 * np.sin(np.pi * cols / 384.0))
    dy = 1.5 * across * np.cos(np.pi * cols / 384.0)
    return dx, dy


@functools.lru_cache(maxsize=None)
def _warp():
    """Reference (the land crop, 320 x 384 px) and its quintic-spline warp by ``_field``."""
    ref = land_texture()[:320, :384]
    rows, cols = np.mgrid[0:ref.shape[0], 0:ref.shape[1]].astype(np.float64)
    src_rows, src_cols = rows.copy(), cols.copy()
    for _ in range(30):  # sec(p) = ref(x) where p = x + d(x)
        dx, dy = _field(src_rows, src_cols)
        src_rows, src_cols = rows - dy, cols - dx
    return ref, ndimage.map_coordinates(ref, [src_rows, src_cols], order=5, mode="mirror")


@functools.lru_cache(maxsize=None)
def _noisy_warp():
    """``_warp`` with 30 dB noise on both images (noise std 3 % of the image std): the realistic
    case for accuracy ratios, where the error is noise, not the few 1e-3 px of model error."""
    ref, sec = _warp()
    rng = np.random.default_rng(11)
    sigma = 0.03 * ref.std()
    return ref + rng.normal(0.0, sigma, ref.shape), sec + rng.normal(0.0, sigma, sec.shape)


def _warp_errors(result):
    """Valid fraction and RMSE (dx, dy) px against the field at the chip centres, border cells left out."""
    centres = lambda n: np.arange(n) * STEP + CHIP / 2.0 - 0.5  # noqa: E731
    rows, cols = np.meshgrid(centres(result.dx.shape[0]), centres(result.dx.shape[1]), indexing="ij")
    true_dx, true_dy = _field(rows, cols)
    inner = (slice(1, -1), slice(1, -1))
    valid = result.valid[inner]
    rmse = [float(np.sqrt(np.mean((band[inner][valid] - truth[inner][valid]) ** 2)))
            for band, truth in ((result.dx, true_dx), (result.dy, true_dy))]
    return float(valid.mean()), rmse


# --------------------------------------------------------------------------- partial nodata


#: (nodata fraction in each image, share of the clean case's valid cells kept, RMSE bound / clean RMSE),
#: on the benchmark's realistic warp (bench/warp_case.py: ITS_LIVE-shaped field up to 6 px, 20 dB noise,
#: brightness gradient). Measured with the defaults: 1 % costs +2 / +2 % RMSE dx / dy, 5 % +10 / +12 %
#: (without masked correlation 1 % leaves no valid cell; a translation-only refinement of the chips with
#: nodata gave +290 %, smoothing normalised over the valid pixels instead of filling first +23 %): at 5 %
#: every chip holds nodata and each nodata pixel's filled value leaks into its neighbours through the
#: smoothing. The issue's 10 % is met at 1 %, just missed at 5 %.
NODATA_CASES = [(0.01, 0.95, 1.10), (0.05, 0.85, 1.15)]


@functools.lru_cache(maxsize=None)
def _bench_warp():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
    from correlation import SPECS, build_case
    return build_case("warp")[0], SPECS["warp"]


def _bench_warp_errors(result, pair):
    valid = result.valid
    rmse = [float(np.sqrt(np.mean((band[valid] - truth[valid]) ** 2)))
            for band, truth in ((result.dx, pair["dx"]), (result.dy, pair["dy"]))]
    return int(valid.sum()), rmse


@pytest.mark.parametrize("fraction, keep, bound", NODATA_CASES)
def test_random_nodata_keeps_the_cells_and_the_accuracy(fraction, keep, bound):
    pair, spec = _bench_warp()
    ref, sec = pair["ref"], pair["sec"]
    clean_cells, clean_rmse = _bench_warp_errors(correlate_arrays(ref, sec, spec.chip, spec.search, spec.step),
                                                 pair)
    rng = np.random.default_rng(3)
    ref_valid, sec_valid = rng.random(ref.shape) >= fraction, rng.random(ref.shape) >= fraction
    result = correlate_arrays(ref, sec, spec.chip, spec.search, spec.step, ref_valid=ref_valid, sec_valid=sec_valid)
    cells, rmse = _bench_warp_errors(result, pair)
    assert clean_rmse[0] < 0.055 and clean_rmse[1] < 0.055
    assert cells >= keep * clean_cells
    assert rmse[0] <= bound * clean_rmse[0] and rmse[1] <= bound * clean_rmse[1], (rmse, clean_rmse)
    # without masked correlation almost every chip touches nodata
    strict = correlate_arrays(ref, sec, spec.chip, spec.search, spec.step, ref_valid=ref_valid, sec_valid=sec_valid,
                              min_valid_fraction=1.0)
    assert strict.valid.sum() < 0.05 * clean_cells


def test_nodata_voids_cost_only_the_chips_they_empty():
    ref, sec = _noisy_warp()
    ref_valid = np.ones(ref.shape, bool)
    sec_valid = np.ones(ref.shape, bool)
    rows, cols = np.ogrid[:ref.shape[0], :ref.shape[1]]
    for r, c, radius in ((80, 100, 10), (200, 260, 12), (150, 40, 8)):
        ref_valid &= (rows - r) ** 2 + (cols - c) ** 2 > radius ** 2
        sec_valid &= (rows - r - 30) ** 2 + (cols - c + 40) ** 2 > radius ** 2
    clean_valid, clean_rmse = _warp_errors(correlate_arrays(ref, sec, CHIP, SEARCH, STEP, **PLAIN))
    valid, rmse = _warp_errors(correlate_arrays(ref, sec, CHIP, SEARCH, STEP, ref_valid=ref_valid,
                                                sec_valid=sec_valid, **PLAIN))
    assert valid > clean_valid - 0.02
    assert rmse[0] <= 1.1 * clean_rmse[0] and rmse[1] <= 1.1 * clean_rmse[1]


@pytest.mark.parametrize("engine", ["sweep", "fft"])
@pytest.mark.parametrize("subpixel", ["lk", "gaussian"])
def test_clean_data_takes_the_plain_path(monkeypatch, engine, subpixel):
    """Without nodata inside the images the masked path never runs: the numbers are those of
    min_valid_fraction=1 (the engine before masked correlation), bit for bit."""
    monkeypatch.setattr(sweep_module, "ENGINE", engine)
    ref, sec = _warp()
    results = [correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel=subpixel, min_valid_fraction=fraction,
                                **PLAIN) for fraction in (0.7, 1.0)]
    for name in ("dx", "dy", "peak", "valid", "snr", "peak_ratio", "sigma", "reason"):
        np.testing.assert_array_equal(getattr(results[0], name), getattr(results[1], name))


def _masked_block(fraction=0.01, seed=5):
    """One block of chips (reference with the spline margin, secondary with the search halo) with nodata."""
    ref, sec = _warp()
    p = check_parameters(CHIP, SEARCH, STEP, "lk", min_valid_fraction=0.7)
    g, h = 16, p.halo
    n_rows, n_cols = 12, 15
    r0, c0 = 40, 40
    r1, c1 = r0 + (n_rows - 1) * STEP + CHIP, c0 + (n_cols - 1) * STEP + CHIP
    rng = np.random.default_rng(seed)
    ref_valid = rng.random(ref.shape) >= fraction
    sec_valid = rng.random(ref.shape) >= fraction
    block_ref = ref[r0 - g:r1 + g, c0 - g:c1 + g][g:-g, g:-g]
    block_ref_valid = ref_valid[r0 - g:r1 + g, c0 - g:c1 + g][g:-g, g:-g]
    block_sec_valid = sec_valid[r0 - h:r1 + h, c0 - h:c1 + h]
    block_sec = search_module.demeaned(sec[r0 - h:r1 + h, c0 - h:c1 + h], block_sec_valid)
    nodata = search_module.Nodata(~block_ref_valid, ~block_sec_valid, int(np.ceil(0.7 * CHIP * CHIP)))
    args = (block_ref, block_ref_valid, block_sec, block_sec_valid, box_sums(~block_sec_valid, CHIP), p, n_rows,
            n_cols, np.arange(n_rows * n_cols))
    return args, nodata


def test_masked_sweep_equals_masked_fft_and_the_direct_sums(monkeypatch):
    args, nodata = _masked_block()
    block_ref, ref_valid, sec, sec_valid, _, p, n_rows, n_cols, chips = args
    dirty = np.ones(len(chips), bool)
    monkeypatch.setattr(search_module, "MASKED_SWEEP_SHARE", 0.0)
    by_sweep, textured_sweep, excluded_sweep = search_module.integer_zncc(*args, True, None, nodata, dirty)
    by_fft, textured_fft, excluded_fft = search_module.integer_zncc(*args, False, None, nodata, dirty)
    usable = by_sweep > -2
    assert usable.mean() > 0.9
    np.testing.assert_array_equal(usable, by_fft > -2)
    assert np.abs(by_sweep - by_fft)[usable].max() < 1e-6
    np.testing.assert_array_equal(textured_sweep, textured_fft)
    np.testing.assert_array_equal(excluded_sweep, excluded_fft)
    # one chip at one offset, from the definition: ZNCC over the pixels valid in both
    b, v, u = 37, 4, 13
    i, j = divmod(b, n_cols)
    template = block_ref[i * STEP:i * STEP + CHIP, j * STEP:j * STEP + CHIP]
    first = p.halo - p.search
    footprint = (slice(first + i * STEP + v, first + i * STEP + v + CHIP),
                 slice(first + j * STEP + u, first + j * STEP + u + CHIP))
    both = ref_valid[i * STEP:i * STEP + CHIP, j * STEP:j * STEP + CHIP] & sec_valid[footprint]
    direct = np.corrcoef(template[both], sec[footprint][both])[0, 1]
    assert abs(by_sweep[v, u, b] - direct) < 1e-6 and abs(by_fft[v, u, b] - direct) < 1e-6


def test_masked_sweep_and_fft_give_the_same_offsets(monkeypatch):
    ref, sec = _warp()
    rng = np.random.default_rng(11)
    ref_valid, sec_valid = rng.random(ref.shape) >= 0.02, rng.random(ref.shape) >= 0.02
    results = []
    for engine in ("sweep", "fft"):
        monkeypatch.setattr(sweep_module, "ENGINE", engine)
        results.append(correlate_arrays(ref, sec, CHIP, SEARCH, STEP, ref_valid=ref_valid, sec_valid=sec_valid,
                                        **PLAIN))
    both = results[0].valid & results[1].valid
    assert both[1:-1, 1:-1].mean() > 0.85
    assert np.abs(results[0].dx - results[1].dx)[both].max() < 1e-3
    assert np.abs(results[0].dy - results[1].dy)[both].max() < 1e-3


# --------------------------------------------------------------------------- rejection reasons


def _shifted(dx=1.3, dy=-0.7, rows=slice(0, 256), cols=slice(0, 320)):
    land = land_texture()
    return land[rows, cols].copy(), fourier_shifted(land, dx=dx, dy=dy)[rows, cols].copy()


def test_the_reason_band_describes_every_code():
    codes = [code for code, _ in REASONS]
    assert codes == list(range(len(codes))) and codes[0] == REASON_VALID == 0
    for code, meaning in REASONS:
        assert f"{code} {meaning}" in REASON


def test_reason_no_data_few_valid_and_masked():
    ref, sec = _shifted()
    ref_valid = np.ones(ref.shape, bool)
    ref_valid[:, 100:200] = False  # chips inside: no data; chips 40-60 % on it: too few valid pixels
    cell_mask = np.ones(((ref.shape[0] - CHIP) // STEP + 1, (ref.shape[1] - CHIP) // STEP + 1), bool)
    cell_mask[:4] = False
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, ref_valid=ref_valid, cell_mask=cell_mask, **PLAIN)
    first_cols = np.arange(result.dx.shape[1]) * STEP
    invalid_share = (np.clip(first_cols + CHIP, 100, 200) - np.clip(first_cols, 100, 200)) / CHIP
    assert (result.reason[:4] == REASON_MASKED).all()
    rows = slice(5, -1)
    assert (result.reason[rows][:, invalid_share == 1] == REASON_NO_DATA).all()
    assert (result.reason[rows][:, (invalid_share > 0.3) & (invalid_share < 1)] == REASON_FEW_VALID).all()
    assert result.valid[rows][:, invalid_share < 0.25].mean() > 0.85
    assert (result.reason[result.valid] == REASON_VALID).all() and (result.reason[~result.valid] > 0).all()


def test_reason_low_texture_and_search_edge():
    ref, sec = _shifted()
    ref[100:220, 100:220] = 900.0
    sec[100:220, 100:220] = 900.0
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, **PLAIN)
    assert (result.reason[14:22, 14:22] == REASON_LOW_TEXTURE).all()  # chips starting at 112..168
    ref, sec = _shifted(dx=7.0, dy=0.0)
    result = correlate_arrays(ref, sec, CHIP, 4, STEP, **PLAIN)  # 7 px away with a +-4 px search
    assert (result.reason[1:-1, 1:-1] == REASON_SEARCH_EDGE).mean() > 0.8


def test_reason_low_peak_ratio():
    rows, cols = np.mgrid[0:256, 0:320].astype(np.float64)
    rng = np.random.default_rng(0)
    periodic = 100.0 * np.sin(2 * np.pi * cols / 6.0) * np.sin(2 * np.pi * rows / 6.0) + 1000.0
    ref = periodic + rng.normal(0, 2.0, periodic.shape)
    sec = np.roll(periodic, 1, axis=1) + rng.normal(0, 2.0, periodic.shape)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, min_peak_ratio=1.5, **PLAIN)
    assert (result.reason[1:-1, 1:-1] == REASON_LOW_PEAK_RATIO).mean() > 0.8


def test_reason_refinement_where_the_peak_fit_meets_an_excluded_position():
    ref, sec = _shifted(dx=0.0, dy=0.0)
    sec_valid = np.ones(sec.shape, bool)
    sec_valid[10 * STEP + CHIP] = False  # just below the zero-offset footprints of chip row 10
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, sec_valid=sec_valid, subpixel="gaussian",
                              min_valid_fraction=1.0, **PLAIN)
    assert (result.reason[10, 1:-1] == REASON_REFINEMENT).all()


def test_reason_forward_backward():
    ref, sec = _shifted()
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, forward_backward=1e-5, **PLAIN)
    assert (result.reason[1:-1, 1:-1] == REASON_FORWARD_BACKWARD).mean() > 0.8


def _with_moved_patch(size, dx=4.0, dy=-3.0):
    """A shift of (1.3, -0.7) px whose secondary has a ``size`` px square, centred at (128, 160), moved by
    (dx, dy) more: the cells there measure a consistent but different offset (an outlier cluster)."""
    ref, sec = _shifted()
    other = fourier_shifted(land_texture(), dx=1.3 + dx, dy=-0.7 + dy)[:256, :320]
    half = size // 2
    sec[128 - half:128 + half, 160 - half:160 + half] = other[128 - half:128 + half, 160 - half:160 + half]
    return ref, sec


def test_reason_median_test_on_an_isolated_outlier():
    ref, sec = _with_moved_patch(32)
    wrong = lambda r: r.valid & (np.hypot(r.dx - 1.3, r.dy + 0.7) > 1.0)  # noqa: E731
    without = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, **PLAIN)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, median_test=3.0, coherence=0.0, chip_ladder=0)
    assert (result.reason[wrong(without)] == REASON_MEDIAN_TEST).sum() >= 1
    assert wrong(result).sum() < wrong(without).sum()


def test_coherence_test_removes_a_clustered_outlier_the_median_test_keeps():
    ref, sec = _with_moved_patch(56)  # a cluster of about 5 x 5 cells, smaller than 15 % of the window
    off = dict(median_test=3.0, chip_ladder=0)
    median_only = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, coherence=0.0, **off)
    wrong = median_only.valid & (np.hypot(median_only.dx - 1.3, median_only.dy + 0.7) > 2.0)
    assert wrong.sum() >= 9  # a cluster the 8-neighbour median test does not remove
    both = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, coherence=2.0, **off)
    # at most a chip straddling the patch's edge, whose affine fit lies between the two motions
    assert (both.valid & (np.hypot(both.dx - 1.3, both.dy + 0.7) > 2.0)).sum() <= 0.05 * wrong.sum()
    assert (both.reason[wrong] == REASON_COHERENCE_TEST).mean() > 0.8
    # and coverage stays: the good cells are kept
    good = median_only.valid & ~wrong
    assert both.valid[good].mean() > 0.97


def test_coherence_test_keeps_edges_and_smooth_gradients():
    rows, cols = np.mgrid[0:40, 0:50].astype(np.float64)
    dx, dy = 0.02 * cols, 0.01 * rows  # smooth strain
    dx[:, :10] = np.nan  # the edge of the valid data
    dy[:, :10] = np.nan
    dx[20:23, 30:33] += 5.0  # a 3 x 3 cluster
    outliers = displacement_coherence_test(dx, dy, 1.0, spacing=2, reach=4)
    assert outliers[20:23, 30:33].all() and outliers.sum() == 9
    assert not normalised_median_test(dx, dy, 3.0)[21, 31]  # the median test misses the centre


# --------------------------------------------------------------------------- chip ladder


def _sparse_features(dx=1.3, dy=-0.7):
    """Blobs every ~64 px on a flat, slightly noisy background: many 32 px chips hold no feature."""
    rng = np.random.default_rng(2)
    height, width = 320, 384
    image = np.zeros((height, width))
    for r in range(24, height, 64):
        for c in range(24, width, 64):
            image[r + rng.integers(-6, 7), c + rng.integers(-6, 7)] = 1.0
    image = 3000.0 * ndimage.gaussian_filter(image, 3.0) * 2 * np.pi * 9 + 1000.0
    sec = fourier_shifted(image, dx=dx, dy=dy)
    return image + rng.normal(0, 1.0, image.shape), sec + rng.normal(0, 1.0, image.shape)


def test_chip_ladder_recovers_a_low_texture_area_the_base_chip_loses():
    ref, sec = _sparse_features()
    inner = (slice(2, -2), slice(2, -2))
    alone = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, **PLAIN)
    assert alone.valid[inner].mean() < 0.6
    assert (alone.reason[inner][~alone.valid[inner]] == REASON_LOW_TEXTURE).mean() > 0.9
    ladder = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, median_test=0.0, coherence=0.0, chip_ladder=2)
    valid = ladder.valid[inner]
    assert valid.mean() > 0.95
    assert np.sqrt(np.mean((ladder.dx[inner][valid] - 1.3) ** 2)) < 0.1
    assert np.sqrt(np.mean((ladder.dy[inner][valid] + 0.7) ** 2)) < 0.1
    chips = ladder.chip_size[inner][valid]
    assert set(np.unique(chips)) <= {32.0, 64.0, 128.0} and (chips > 32).sum() > 0.3 * valid.size
    # cells the base chip got are untouched
    kept = alone.valid
    np.testing.assert_array_equal(ladder.dx[kept], alone.dx[kept])
    assert (ladder.chip_size[kept] == CHIP).all()
    assert np.isnan(ladder.chip_size[~ladder.valid]).all()
