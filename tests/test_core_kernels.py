"""Compiled kernels of the correlator (numba) against the numpy/scipy code they replace.

Every kernel has a pure-numpy (or scipy) fallback used without numba; both must give the
same numbers to float rounding.
"""

import numpy as np
import pytest
from scipy import ndimage
from texture import land_texture

import core.offsets.engine.spline_kernel as spline_kernel
from conftest import require_numba


@pytest.mark.parametrize("shape", [(5, 7), (40, 33), (150, 212)])
def test_spline_coefficients_equal_scipy(monkeypatch, shape):
    require_numba()
    image = land_texture()[:shape[0], :shape[1]].astype(np.float64)
    image -= image.mean()
    expected = ndimage.spline_filter(image, order=5, mode="mirror", output=np.float64)
    compiled = spline_kernel.spline_coefficients(image)
    assert compiled.dtype == np.float64 and compiled.shape == image.shape
    assert np.abs(compiled - expected).max() <= 1e-12 * np.abs(expected).max()
    monkeypatch.setattr(spline_kernel, "USE_NUMBA", False)
    assert np.array_equal(spline_kernel.spline_coefficients(image), expected)


def test_compiled_volume_peaks_equal_numpy(monkeypatch):
    require_numba()
    import core.offsets.peaks_kernel as peaks_kernel
    from core.offsets.peaks import EXCLUDED, volume_peaks
    rng = np.random.default_rng(3)
    span, count = 9, 500
    volume = rng.uniform(-0.5, 0.9, (span, span, count)).astype(np.float32)
    volume[:, :, :50] = np.round(volume[:, :, :50], 1)  # ties: the first position wins
    volume[0, :, 60:80] = EXCLUDED
    volume[:, :, 90] = EXCLUDED  # nothing usable
    n_excluded = (volume == EXCLUDED).sum(axis=(0, 1))
    compiled = volume_peaks(volume.copy(), n_excluded)
    monkeypatch.setattr(peaks_kernel, "USE_NUMBA", False)
    expected = volume_peaks(volume.copy(), n_excluded)
    for name in ("index", "value", "patch", "ratio", "inside"):
        np.testing.assert_array_equal(getattr(compiled, name), getattr(expected, name), err_msg=name)
    np.testing.assert_allclose(compiled.snr, expected.snr, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_outlier_tests_equal_numpy(monkeypatch, seed):
    require_numba()
    import core.offsets.engine.outlier_kernel as outlier_kernel
    from core.offsets.engine.quality import displacement_coherence_test, normalised_median_test
    rng = np.random.default_rng(seed)
    shape = (37, 41)
    dx = (np.sin(np.arange(shape[1]) / 6.0)[None, :] + rng.normal(0, 0.05, shape)).astype(np.float32)
    dy = (np.cos(np.arange(shape[0]) / 5.0)[:, None] + rng.normal(0, 0.05, shape)).astype(np.float32)
    dx[rng.random(shape) < 0.05] += 3.0  # outliers
    dx[9:14, 20:26] += 2.0  # a cluster of them
    holes = rng.random(shape) < 0.15
    dx[holes], dy[holes] = np.nan, np.nan
    dy[rng.random(shape) < 0.03] = np.nan  # dy alone missing
    dx[0, :] = 0.0  # ties
    runs = {}
    for use_numba in (True, False):
        monkeypatch.setattr(outlier_kernel, "USE_NUMBA", use_numba)
        runs[use_numba] = [normalised_median_test(dx, dy, 2.0), displacement_coherence_test(dx, dy, 0.5, 2, 3),
                           displacement_coherence_test(dx, dy, 0.3)]
    for compiled, expected in zip(runs[True], runs[False]):
        assert compiled.any()
        np.testing.assert_array_equal(compiled, expected)
    empty = np.full((4, 5), np.nan, np.float32)
    for use_numba in (True, False):
        monkeypatch.setattr(outlier_kernel, "USE_NUMBA", use_numba)
        assert not normalised_median_test(empty, empty).any()
