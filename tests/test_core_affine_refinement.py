"""The affine sub-pixel refinement (subpixel="affine", core.offsets.engine.affine) on real texture.

Secondaries are band-limited Fourier shifts (translations) or quintic-spline
warps of the Sentinel-2 land texture (sec(x) = ref(x - D(x))), so the truth is
known exactly: at a chip centre c the offset d solves d = D(c + d), and for an
affine D(x) = p0 + G (x - x0) the offset field's gradient is (I - G)^-1 G.
"""

import os

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from scipy import ndimage
from texture import fourier_shifted, land_texture

import core.offsets.engine.affine_kernel as affine_kernel
from core.errors import UserInputError
from core.offsets.correlate import correlate_arrays, correlate_files
from core.offsets.disparity import STRAIN_DESCRIPTIONS
from core.offsets.engine.affine import STRAIN_TERMS
from conftest import require_numba

MARGIN = 24
CHIP, SEARCH, STEP = 32, 8, 8
#: A uniform displacement gradient (px/px): [[d(Dx)/dx, d(Dx)/dy], [d(Dy)/dx, d(Dy)/dy]], 1-2 % strain.
GRADIENT = np.array([[0.02, -0.015], [0.01, -0.01]])
SHIFT = np.array([1.3, -0.6])


def _rmse(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values ** 2)))


def _interior(grid: np.ndarray) -> np.ndarray:
    return grid[1:-1, 1:-1]


def _translated(dx: float, dy: float):
    land = land_texture()
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    return land[inner], fourier_shifted(land, dx=dx, dy=dy)[inner]


def _affine_pair():
    """(ref, sec, truth dx, truth dy, truth gradient (2, 2)) of the uniform affine warp."""
    land = land_texture()
    height, width = land.shape
    origin = np.array([width / 2.0, height / 2.0])
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    centre_x, centre_y = cols + 0.5 - origin[0], rows + 0.5 - origin[1]
    warp_x = SHIFT[0] + GRADIENT[0, 0] * centre_x + GRADIENT[0, 1] * centre_y
    warp_y = SHIFT[1] + GRADIENT[1, 0] * centre_x + GRADIENT[1, 1] * centre_y
    sec = ndimage.map_coordinates(land, [rows - warp_y, cols - warp_x], order=5, mode="mirror")
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    ref, sec = land[inner], sec[inner]
    n_rows = (ref.shape[0] - CHIP) // STEP + 1
    n_cols = (ref.shape[1] - CHIP) // STEP + 1
    centre_rows, centre_cols = np.meshgrid(np.arange(n_rows) * STEP + CHIP / 2.0 + MARGIN - origin[1],
                                           np.arange(n_cols) * STEP + CHIP / 2.0 + MARGIN - origin[0],
                                           indexing="ij")
    at_centres = np.stack([SHIFT[0] + GRADIENT[0, 0] * centre_cols + GRADIENT[0, 1] * centre_rows,
                           SHIFT[1] + GRADIENT[1, 0] * centre_cols + GRADIENT[1, 1] * centre_rows], axis=-1)
    inverse = np.linalg.inv(np.eye(2) - GRADIENT)
    truth = at_centres @ inverse.T  # d = D(c + d)  <=>  (I - G) d = D(c)
    return ref, sec, truth[..., 0], truth[..., 1], inverse @ GRADIENT


def _noisy(ref: np.ndarray, sec: np.ndarray, seed: int = 7):
    rng = np.random.default_rng(seed)
    return (ref + rng.normal(0.0, 10.0, ref.shape),  # texture std is about 200 DN
            1.2 * sec + 150.0 + rng.normal(0.0, 10.0, sec.shape))


# --------------------------------------------------------------------------- translations: no regression


@pytest.mark.parametrize("dy, dx", [(0.25, -0.4), (1.5, 2.3), (-3.7, 0.6)])
def test_translations_as_accurate_as_lucas_kanade(dy, dx):
    ref, sec = _translated(dx, dy)
    affine = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine")
    lk = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="lk")
    valid = _interior(affine.valid)
    assert valid.mean() >= 0.9 and np.array_equal(affine.valid, lk.valid)
    err_x, err_y = _interior(affine.dx)[valid] - dx, _interior(affine.dy)[valid] - dy
    lk_x, lk_y = _interior(lk.dx)[valid] - dx, _interior(lk.dy)[valid] - dy
    assert _rmse(err_x) < 0.01 and _rmse(err_y) < 0.01  # measured 0.0005-0.001 px
    assert _rmse(err_x) <= _rmse(lk_x) + 1e-4 and _rmse(err_y) <= _rmse(lk_y) + 1e-4
    # chips without significant strain keep the Lucas-Kanade offset exactly
    same = np.isclose(affine.dx, lk.dx, rtol=0, atol=1e-5) & np.isclose(affine.dy, lk.dy, rtol=0, atol=1e-5)
    assert same[affine.valid].mean() > 0.95


@pytest.mark.parametrize("dy, dx", [(0.25, -0.4), (1.5, 2.3), (-3.7, 0.6)])
def test_noise_and_brightness_no_worse_than_lucas_kanade(dy, dx):
    ref, sec = _noisy(*_translated(dx, dy))
    affine = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine")
    lk = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="lk")
    valid = _interior(affine.valid)
    assert valid.mean() >= 0.9
    err_x, err_y = _interior(affine.dx)[valid] - dx, _interior(affine.dy)[valid] - dy
    lk_x, lk_y = _interior(lk.dx)[valid] - dx, _interior(lk.dy)[valid] - dy
    assert _rmse(err_x) < 0.05 and _rmse(err_y) < 0.05  # measured 0.012-0.019 px, as lk
    assert _rmse(err_x) <= _rmse(lk_x) * 1.01 and _rmse(err_y) <= _rmse(lk_y) * 1.01
    assert abs(err_x.mean()) < 0.02 and abs(err_y.mean()) < 0.02


# --------------------------------------------------------------------------- deformation inside the chip


def test_affine_warp_is_measured_at_the_chip_centre():
    ref, sec, dx, dy, _ = _affine_pair()
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine")
    lk = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="lk")
    valid = _interior(result.valid)
    assert valid.mean() >= 0.95
    err = np.hypot(_interior(result.dx - dx)[valid], _interior(result.dy - dy)[valid])
    lk_err = np.hypot(_interior(lk.dx - dx)[valid], _interior(lk.dy - dy)[valid])
    # measured: affine RMSE 0.0074 / 0.0043 px (median 0.001 px), Lucas-Kanade 0.117 / 0.078 px
    assert np.median(err) < 0.005 and _rmse(err) < 0.02
    assert _rmse(err) < 0.25 * _rmse(lk_err)


def test_affine_warp_with_noise_and_brightness():
    ref, sec, dx, dy, _ = _affine_pair()
    ref, sec = _noisy(ref, sec, seed=3)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine")
    valid = _interior(result.valid)
    assert valid.mean() >= 0.9
    # measured 0.022 / 0.019 px (Lucas-Kanade 0.119 / 0.081 px)
    assert _rmse(_interior(result.dx - dx)[valid]) < 0.04
    assert _rmse(_interior(result.dy - dy)[valid]) < 0.04


@pytest.mark.parametrize("noise", [False, True])
def test_strain_bands_match_the_analytic_gradient(noise):
    ref, sec, _, _, gradient = _affine_pair()
    if noise:
        ref, sec = _noisy(ref, sec, seed=3)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine", strain_bands=True)
    valid = _interior(result.valid)
    for k, name in enumerate(STRAIN_TERMS):
        fitted = _interior(getattr(result, name))[valid]
        truth = gradient[k // 2, k % 2]
        # measured RMSE 0.0001-0.0003 (noise-free) and 0.0017-0.0020 (20 dB noise) px/px
        assert abs(np.median(fitted) - truth) < 0.001, name
        assert _rmse(fitted - truth) < (0.005 if noise else 0.002), name
        assert np.all(np.isnan(getattr(result, name)[~result.valid]))


def test_chips_with_nodata_keep_the_affine_accuracy_and_strain_bands():
    """2 % random nodata in both images: every chip holds nodata, so all take the weighted path
    (weighted translation Lucas-Kanade, weighted strain test, re-weighted affine stage)."""
    ref, sec, truth_dx, truth_dy, gradient = _noisy(*_affine_pair()[:2], seed=3) + _affine_pair()[2:]
    clean = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, strain_bands=True)
    rng = np.random.default_rng(5)
    ref_valid, sec_valid = rng.random(ref.shape) >= 0.02, rng.random(ref.shape) >= 0.02
    masked = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, ref_valid=ref_valid, sec_valid=sec_valid,
                              strain_bands=True)
    lk = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, ref_valid=ref_valid, sec_valid=sec_valid, subpixel="lk")

    def rmse(result):
        valid = _interior(result.valid)
        return max(_rmse(_interior(result.dx)[valid] - _interior(truth_dx)[valid]),
                   _rmse(_interior(result.dy)[valid] - _interior(truth_dy)[valid]))

    # measured: valid 0.955 (clean 0.948, the rest low texture); RMSE 0.022 px (clean 0.020, lk 0.119)
    assert _interior(masked.valid).mean() >= _interior(clean.valid).mean() - 0.01
    assert rmse(masked) <= 1.2 * rmse(clean)
    assert rmse(masked) < 0.3 * rmse(lk)  # the translation-only refinement is biased by the strain
    valid = _interior(masked.valid)
    for k, name in enumerate(STRAIN_TERMS):
        fitted = _interior(getattr(masked, name))[valid]
        assert abs(np.median(fitted) - gradient[k // 2, k % 2]) < 0.001, name


def test_weighted_strain_test_with_unit_weights_is_the_unweighted_one():
    from core.offsets.engine.affine import _strain_test, weighted_strain_test
    from core.offsets.engine.subpixel import _lk_basis
    rng = np.random.default_rng(0)
    count, n = 6, CHIP * CHIP
    templates, gx, gy = (rng.normal(size=(count, CHIP, CHIP)).astype(np.float32) for _ in range(3))
    samples = (1.3 * templates + 0.2 + 0.1 * gx - 0.05 * gy + 0.01 * rng.normal(size=templates.shape)).reshape(count, n)
    basis = _lk_basis(templates, gx, gy)
    plain = _strain_test(basis, templates.reshape(count, n), gx.reshape(count, n), gy.reshape(count, n), samples,
                         CHIP, 1.0)
    weighted = weighted_strain_test(templates.reshape(count, n), gx.reshape(count, n), gy.reshape(count, n),
                                    samples, np.ones((count, n)), CHIP, 1.0)
    np.testing.assert_allclose(weighted[0], plain[0], rtol=0.01)  # chi-square
    np.testing.assert_allclose(weighted[1], plain[1], atol=1e-5)  # dp, px
    np.testing.assert_allclose(weighted[1], np.tile([0.1 / 1.3, -0.05 / 1.3], (count, 1)), atol=1e-3)
    np.testing.assert_allclose(weighted[2], plain[2], atol=1e-5)  # dA, px/px


def test_strain_bands_are_near_zero_on_translations():
    ref, sec = _translated(-1.3, 0.6)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine", strain_bands=True)
    for name in STRAIN_TERMS:
        values = getattr(result, name)[result.valid]
        assert np.abs(np.median(values)) < 1e-4 and np.percentile(np.abs(values), 95) < 2e-3, name


def test_strain_bands_need_the_affine_refinement():
    ref, sec = _translated(0.5, 0.5)
    with pytest.raises(UserInputError, match="affine"):
        correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="lk", strain_bands=True)
    plain = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine")
    assert all(getattr(plain, name) is None for name in STRAIN_TERMS)


def test_strain_bands_with_a_cell_mask_and_forward_backward():
    ref, sec, _, _, gradient = _affine_pair()
    shape = ((ref.shape[0] - CHIP) // STEP + 1, (ref.shape[1] - CHIP) // STEP + 1)
    mask = np.zeros(shape, bool)
    mask[:, : shape[1] // 2] = True
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine", strain_bands=True,
                              cell_mask=mask, forward_backward=0.1)
    assert not result.valid[~mask].any() and result.valid[mask].mean() > 0.8
    assert np.nanmedian(result.ddx_dx) == pytest.approx(gradient[0, 0], abs=0.001)


def test_file_output_has_the_strain_bands_last(tmp_path):
    ref, sec, _, _, gradient = _affine_pair()
    paths = []
    for name, image in (("ref", ref), ("sec", sec)):
        path = str(tmp_path / f"{name}.tif")
        with rasterio.open(path, "w", driver="GTiff", width=image.shape[1], height=image.shape[0], count=1,
                           dtype="float32", crs=CRS.from_epsg(32618), transform=from_origin(500000, 4e6, 3, 3)) as ds:
            ds.write(image.astype(np.float32), 1)
        paths.append(path)
    out = correlate_files(*paths, str(tmp_path / "disp.tif"), CHIP, SEARCH, STEP, subpixel="affine",
                          strain_bands=True).path
    with rasterio.open(out) as ds:
        assert ds.descriptions[-4:] == STRAIN_DESCRIPTIONS and ds.count == 13  # 7 quality + reason + chip size + 4 strain
        assert ds.tags()["SM_STRAIN_BANDS"] == "true"
        d_dx_dy = ds.read(ds.count - 2)
        valid = ds.read(3) == 1
    assert np.all(np.isnan(d_dx_dy[~valid]))
    assert np.nanmedian(d_dx_dy) == pytest.approx(gradient[0, 1], abs=0.001)


# --------------------------------------------------------------------------- compiled kernel


def test_numba_kernel_and_numpy_give_the_same_numbers(monkeypatch):
    require_numba()  # the numpy path alone is exercised by every other test without numba
    ref, sec, _, _, _ = _affine_pair()
    ref, sec = _noisy(ref, sec, seed=11)
    results = {}
    for use_numba in (False, True):
        monkeypatch.setattr(affine_kernel, "USE_NUMBA", use_numba)
        results[use_numba] = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine", strain_bands=True)
    numpy_result, numba_result = results[False], results[True]
    assert np.array_equal(numpy_result.valid, numba_result.valid)
    valid = numpy_result.valid
    for name in ("dx", "dy", "peak") + STRAIN_TERMS:
        difference = np.abs(getattr(numpy_result, name) - getattr(numba_result, name))[valid]
        assert np.percentile(difference, 99) < 1e-5 and difference.max() < 1e-3, name  # measured < 1e-5


@pytest.mark.parametrize("use_numba", [True, False])
def test_affine_stage_kernel_equals_the_numpy_stage(monkeypatch, use_numba):
    """affine_kernel.affine_stage (per-chip weights; compiled, or its numpy fallback) with the
    Gaussian window as weights, plus the footprint test, reproduces affine._affine_stage."""
    if use_numba:
        require_numba()
    from core.offsets.engine import affine as affine_module
    calls = []
    stage = affine_module._affine_stage

    def recorded(*args):
        calls.append((args, stage(*args)))
        return calls[-1][1]

    monkeypatch.setattr(affine_module, "_affine_stage", recorded)
    ref, sec, _, _, _ = _affine_pair()
    correlate_arrays(*_noisy(ref, sec, seed=5), CHIP, SEARCH, STEP, subpixel="affine")
    assert sum(len(args[2]) for args, _ in calls) >= 50
    monkeypatch.setattr(affine_kernel, "USE_NUMBA", use_numba)
    for args, (done, shift, strain, zncc) in calls:
        coefficients, invalid_table, templates, gx, gy, top, left, start, start_strain, peak, chip = args
        weights = np.broadcast_to(affine_module._window(chip), (len(templates), chip * chip))
        k_done, k_shift, k_strain, k_zncc = affine_kernel.affine_stage(
            coefficients, templates, gx, gy, weights, top, left, start, start_strain, peak, chip,
            affine_module._AFFINE_MAX_ITERATIONS, affine_module._AFFINE_TOLERANCE_PX,
            affine_kernel._LK_NOT_CONVERGED_PX, affine_module.MAX_STRAIN)
        k_done &= affine_module._support_valid(invalid_table, *affine_module.warped_positions(
            top, left, k_shift, k_strain, chip))
        np.testing.assert_array_equal(k_done, done)
        assert np.abs(k_shift - shift)[done].max() < 1e-9 and np.abs(k_strain - strain)[done].max() < 1e-10
        np.testing.assert_allclose(k_zncc, zncc, atol=1e-12)


def test_numpy_fallback_without_numba(monkeypatch):
    monkeypatch.setattr(affine_kernel, "numba_available", lambda: False)
    monkeypatch.setattr(affine_kernel, "_compiled", None)
    ref, sec = _translated(-0.4, 0.25)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="affine")
    valid = _interior(result.valid)
    assert valid.mean() >= 0.9
    assert _rmse(_interior(result.dx)[valid] + 0.4) < 0.01 and _rmse(_interior(result.dy)[valid] - 0.25) < 0.01


def test_runs_where_numba_cannot_be_imported():
    """A fresh interpreter in which importing numba fails: the affine refinement runs in numpy
    and never imports numba."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('numba', 'llvmlite'):
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, Block())
sys.path[:0] = [{repo!r}, {os.path.join(repo, 'tests')!r}]
import os

import numpy as np
from texture import fourier_shifted, land_texture
from core.offsets.correlate import correlate_arrays
land = land_texture()[:160, :160]
result = correlate_arrays(land, fourier_shifted(land, dx=0.3, dy=-0.6), 32, 8, 8, subpixel="affine",
                          strain_bands=True)
inner = result.valid[1:-1, 1:-1]
print(float(np.sqrt(np.mean((result.dx[1:-1, 1:-1][inner] - 0.3) ** 2))), 'numba' in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rmse, imported = done.stdout.split()
    assert float(rmse) < 0.01 and imported == "False"
