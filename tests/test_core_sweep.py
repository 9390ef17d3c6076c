"""Displacement-sweep integer search (core.offsets.sweep) against the per-chip FFT engine.

Both engines must give the same ZNCC volume, so the integer peaks, validity
(edges, nodata, texture) and sub-pixel offsets must agree, on real texture
(the embedded Sentinel-2 crop) moved by band-limited Fourier shifts.
"""

import numpy as np
from texture import fourier_shifted, land_texture as _land
import pytest

import core.offsets.engine.blocks as blocks_module
import core.offsets.sweep as sweep_module
from core.offsets.correlate import correlate_arrays
from core.offsets.peaks import EXCLUDED
from core.offsets.sweep import integer_engine, sweep_is_cheaper, sweep_volume
from conftest import require_numba



def _pair(dy: float, dx: float, rows=slice(24, 152), cols=slice(24, 232)):
    land = _land()
    shifted = fourier_shifted(land, dx=dx, dy=dy)
    return land[rows, cols], shifted[rows, cols]


def _both_engines(monkeypatch, *args, **kwargs):
    results = {}
    for engine in ("fft", "sweep"):
        monkeypatch.setattr(sweep_module, "ENGINE", engine)
        results[engine] = correlate_arrays(*args, **kwargs)
    return results["fft"], results["sweep"]


@pytest.mark.parametrize("step", [4, 1])
def test_sweep_volume_equals_direct_zncc(step):
    rng = np.random.default_rng(5)
    chip, search, n_rows, n_cols, first = 12, 3, 3, 4, 5
    ref = rng.normal(size=((n_rows - 1) * step + chip, (n_cols - 1) * step + chip)) + 100
    sec = rng.normal(size=(ref.shape[0] + 2 * first, ref.shape[1] + 2 * first)) - 40
    excluded = np.zeros((sec.shape[0] - chip + 1, sec.shape[1] - chip + 1), bool)
    excluded[first, first + 2] = True  # one unusable footprint: chip 0 at offset (v, u) = (3, 5)
    sums = _box(sec, chip)
    deviation = np.sqrt(_box(sec * sec, chip) - sums * sums / chip ** 2)
    volume, textured, n_excluded = sweep_volume(ref, sec, first - search, chip, search, step, n_rows, n_cols,
                                                sums, 1.0 / deviation, excluded)
    assert volume.shape == (2 * search + 1, 2 * search + 1, n_rows * n_cols) and textured.all()
    assert n_excluded[0] == 1 and volume[3, 5, 0] == EXCLUDED
    for b in (0, 5, 11):
        i, j = divmod(b, n_cols)
        template = ref[i * step:i * step + chip, j * step:j * step + chip]
        for v in range(2 * search + 1):
            for u in range(2 * search + 1):
                r, c = first - search + i * step + v, first - search + j * step + u
                if excluded[r, c]:
                    assert volume[v, u, b] == EXCLUDED
                    continue
                expected = np.corrcoef(template.ravel(), sec[r:r + chip, c:c + chip].ravel())[0, 1]
                assert volume[v, u, b] == pytest.approx(expected, abs=1e-5)


def _box(image, size):
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
    return windows.sum(axis=(2, 3))


@pytest.mark.parametrize("step, subpixel", [(8, "gaussian"), (8, "lk"), (3, "gaussian"), (1, "gaussian")])
def test_sweep_matches_fft_on_real_texture(monkeypatch, step, subpixel):
    ref, sec = _pair(2.3, -3.6)
    rows = slice(0, 72) if step == 1 else slice(None)
    fft, sweep = _both_engines(monkeypatch, ref[rows], sec[rows], 32, 8, step, subpixel=subpixel)
    assert fft.valid.sum() > 0.5 * fft.valid.size
    np.testing.assert_array_equal(sweep.valid, fft.valid)
    ok = fft.valid
    # same integer peak: the offsets agree far better than half a pixel, and to 0.01 px overall
    assert np.abs(sweep.dx[ok] - fft.dx[ok]).max() < 0.01
    assert np.abs(sweep.dy[ok] - fft.dy[ok]).max() < 0.01
    assert np.abs(sweep.peak[ok] - fft.peak[ok]).max() < 1e-4
    np.testing.assert_allclose(sweep.snr[ok], fft.snr[ok], rtol=1e-4)
    np.testing.assert_allclose(sweep.peak_ratio[ok], fft.peak_ratio[ok], rtol=1e-3)
    assert abs(np.median(sweep.dx[ok]) + 3.6) < 0.05 and abs(np.median(sweep.dy[ok]) - 2.3) < 0.05


def test_sweep_excludes_nodata_and_edges_like_fft(monkeypatch):
    ref, sec = _pair(-1.4, 4.2)
    sec_valid = np.ones(sec.shape, bool)
    sec_valid[40:70, 90:130] = False  # a nodata hole in the secondary
    ref_valid = np.ones(ref.shape, bool)
    ref_valid[100:110, 10:40] = False
    fft, sweep = _both_engines(monkeypatch, ref, sec, 32, 8, 8, ref_valid=ref_valid, sec_valid=sec_valid,
                               subpixel="gaussian")
    np.testing.assert_array_equal(sweep.valid, fft.valid)
    assert not fft.valid[0].any()  # dy = -1.4: the matched footprint of the top row leaves the image
    assert (~fft.valid[1:-1, 1:-1]).sum() >= 8  # the holes invalidate interior cells
    ok = fft.valid
    assert np.abs(sweep.dx[ok] - fft.dx[ok]).max() < 0.01
    assert np.abs(sweep.dy[ok] - fft.dy[ok]).max() < 0.01


def test_sweep_result_does_not_depend_on_the_block_layout(monkeypatch):
    monkeypatch.setattr(sweep_module, "ENGINE", "sweep")
    ref, sec = _pair(0.7, 1.2)
    whole = correlate_arrays(ref, sec, 32, 8, 4, subpixel="gaussian")
    monkeypatch.setattr(blocks_module, "_BLOCK_MEMORY_BYTES", 1_000_000)  # ~9 blocks instead of 2
    blocked = correlate_arrays(ref, sec, 32, 8, 4, subpixel="gaussian")
    np.testing.assert_array_equal(blocked.valid, whole.valid)
    # float32 products: the layout only changes their rounding, far below the accuracy targets
    np.testing.assert_allclose(blocked.dx, whole.dx, atol=1e-4)
    np.testing.assert_allclose(blocked.dy, whole.dy, atol=1e-4)


def test_engine_choice():
    assert sweep_is_cheaper(32, 8, 8) and sweep_is_cheaper(32, 16, 1)
    assert not sweep_is_cheaper(32, 8, 32)  # chips do not overlap: nothing to share
    assert integer_engine(32, 8, 32) == "fft" and integer_engine(32, 8, 8) == "sweep"
    assert integer_engine(32, 8, 8, "fft") == "fft"
    with pytest.raises(ValueError):
        integer_engine(32, 8, 8, "gpu")


@pytest.mark.parametrize("step", [8, 3, 1])
def test_compiled_sweep_equals_the_opencv_sweep(monkeypatch, step):
    """The numba kernel (cells of ``step`` px when the step divides the chip, else single pixels)
    gives the volume of the OpenCV path to float32 rounding, with the same exclusions."""
    require_numba()
    import core.offsets.sweep_kernel as kernel_module
    rng = np.random.default_rng(7)
    chip, search, n_rows, n_cols, first = 24, 4, 5, 6, 6
    ref = rng.normal(size=((n_rows - 1) * step + chip, (n_cols - 1) * step + chip)) * 30 + 500
    sec = rng.normal(size=(ref.shape[0] + 2 * first, ref.shape[1] + 2 * first)) * 30
    excluded = np.zeros((sec.shape[0] - chip + 1, sec.shape[1] - chip + 1), bool)
    excluded[first + 1, first + 3] = True
    sums = _box(sec, chip)
    deviation = np.sqrt(_box(sec * sec, chip) - sums * sums / chip ** 2)
    results = {}
    for use_numba in (False, True):
        monkeypatch.setattr(kernel_module, "USE_NUMBA", use_numba)
        results[use_numba] = sweep_volume(ref, sec, first - search, chip, search, step, n_rows, n_cols, sums,
                                          1.0 / deviation, excluded)
    (volume, textured, n_excluded), (compiled, compiled_textured, compiled_excluded) = results[False], results[True]
    np.testing.assert_array_equal(compiled_textured, textured)
    np.testing.assert_array_equal(compiled_excluded, n_excluded)
    np.testing.assert_array_equal(compiled == EXCLUDED, volume == EXCLUDED)
    assert np.abs(compiled - volume).max() < 1e-5
