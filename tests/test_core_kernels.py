"""Compiled kernels of the correlator (numba) against the numpy/scipy code they replace.

Every kernel has a pure-numpy (or scipy) fallback used without numba; both must give the
same numbers to float rounding.
"""

import numpy as np
import pytest
from scipy import ndimage
from texture import land_texture

import core.offsets.engine.spline_kernel as spline_kernel


@pytest.mark.parametrize("shape", [(5, 7), (40, 33), (150, 212)])
def test_spline_coefficients_equal_scipy(monkeypatch, shape):
    pytest.importorskip("numba")
    image = land_texture()[:shape[0], :shape[1]].astype(np.float64)
    image -= image.mean()
    expected = ndimage.spline_filter(image, order=5, mode="mirror", output=np.float64)
    compiled = spline_kernel.spline_coefficients(image)
    assert compiled.dtype == np.float64 and compiled.shape == image.shape
    assert np.abs(compiled - expected).max() <= 1e-12 * np.abs(expected).max()
    monkeypatch.setattr(spline_kernel, "USE_NUMBA", False)
    assert np.array_equal(spline_kernel.spline_coefficients(image), expected)
