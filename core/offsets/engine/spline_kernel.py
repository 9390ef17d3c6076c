"""Quintic B-spline coefficients of an image (the spline prefilter), compiled with numba when installed.

:func:`spline_coefficients` gives ``ndimage.spline_filter(image, order=5,
mode="mirror", output=np.float64)`` (the same numbers to float64 rounding,
~1e-14 relative): per axis the gain, then for each of the two poles of the
quintic B-spline the causal recursion started with scipy's exact mirror
initialisation and the anti-causal recursion. The compiled version filters
along the rows axis for strips of columns at once (each step of the recursion
is a contiguous, vectorised row operation), then along the columns axis for a
few rows at once (their recursions interleaved); without numba (or with
``USE_NUMBA = False``) scipy does it.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..jit import LazyKernel
from .params import SPLINE_ORDER

#: Use the compiled filter when numba is installed (tests switch it off to compare).
USE_NUMBA = True
#: The poles of the quintic B-spline's inverse filter.
POLES = (np.sqrt(135.0 / 2.0 - np.sqrt(17745.0 / 4.0)) + np.sqrt(105.0 / 4.0) - 13.0 / 2.0,
         np.sqrt(135.0 / 2.0 + np.sqrt(17745.0 / 4.0)) - np.sqrt(105.0 / 4.0) - 13.0 / 2.0)
#: Rows filtered together along the columns axis (interleaved recursions).
_LINES = 8
#: Powers of a pole below this end the causal initialisation sum (their terms are ~1e-30 of the
#: coefficients: nothing at float64 precision; scipy's full sum reaches denormals, which are slow).
_NEGLIGIBLE = 1e-30
#: Columns filtered together (a strip of the image stays in cache through the passes).
_STRIP = 64

def spline_coefficients(image: np.ndarray) -> np.ndarray:
    """The quintic-spline coefficients (float64, same shape) of a 2-D ``image``, mirror boundary."""
    kernel = _kernel() if USE_NUMBA and SPLINE_ORDER == 5 and min(np.shape(image)) >= 4 else None
    if kernel is None:
        return ndimage.spline_filter(image, order=SPLINE_ORDER, mode="mirror", output=np.float64)
    coefficients = np.array(image, dtype=np.float64, order="C", copy=True)
    return kernel(coefficients, np.array(POLES))


def _filter_2d(c, poles):  # pragma: no cover (compiled)
    """Both axes of ``c`` (float64), in place: along the rows axis (every column a line), then
    along the columns axis (every row a line); returns ``c``."""
    _filter_columns(c, poles)
    _filter_lines(c, poles)
    return c


def _filter_lines(c, poles):  # pragma: no cover (compiled)
    """The 1-D prefilter along axis 1 (every row a line), in place: ``_LINES`` rows at a time, the
    recursions of the rows interleaved (independent chains)."""
    n, m = c.shape
    gain = 1.0
    for z in poles:
        gain *= (1.0 - z) * (1.0 - 1.0 / z)
    first = np.empty(_LINES)
    for r0 in range(0, n, _LINES):
        r1 = min(n, r0 + _LINES)
        for r in range(r0, r1):
            row = c[r]
            for j in range(m):
                row[j] *= gain
        for z in poles:
            z_last = z ** (m - 1)
            for r in range(r0, r1):
                first[r - r0] = c[r, 0] + z_last * c[r, m - 1]
            z_i = z
            for j in range(1, m - 1):
                if abs(z_i) < _NEGLIGIBLE:
                    break
                for r in range(r0, r1):
                    first[r - r0] += z_i * (c[r, j] + z_last * c[r, m - 1 - j])
                z_i *= z
            scale = 1.0 - z_last * z_last
            for r in range(r0, r1):
                c[r, 0] = first[r - r0] / scale
            for j in range(1, m):
                for r in range(r0, r1):
                    c[r, j] += z * c[r, j - 1]
            factor = z / (z * z - 1.0)
            for r in range(r0, r1):
                c[r, m - 1] = factor * (z * c[r, m - 2] + c[r, m - 1])
            for j in range(m - 2, -1, -1):
                for r in range(r0, r1):
                    c[r, j] = z * (c[r, j + 1] - c[r, j])


def _filter_columns(c, poles):  # pragma: no cover (compiled)
    """The 1-D quintic prefilter along axis 0 of ``c`` (every column a line), in place, with
    the arithmetic of scipy's ``spline_filter1d`` (mirror mode) on each line; strips of
    ``_STRIP`` columns at a time, so each strip stays in cache through all the passes."""
    m = c.shape[1]
    first = np.empty(_STRIP)
    for j0 in range(0, m, _STRIP):
        _filter_strip(c, poles, j0, min(m, j0 + _STRIP), first)


def _filter_strip(c, poles, j0, j1, first):  # pragma: no cover (compiled)
    """:func:`_filter_columns` of the columns j0 .. j1 - 1 (``first``: a scratch row)."""
    n = c.shape[0]
    gain = 1.0
    for z in poles:
        gain *= (1.0 - z) * (1.0 - 1.0 / z)
    for i in range(n):
        row = c[i]
        for j in range(j0, j1):
            row[j] *= gain
    for z in poles:
        z_last = z ** (n - 1)
        # causal initialisation: c[0] = (c[0] + z^(n-1) c[n-1] + sum z^i (c[i] + z^(n-1) c[n-1-i])) / (1 - z^(2n-2))
        for j in range(j0, j1):
            first[j - j0] = c[0, j] + z_last * c[n - 1, j]
        z_i = z
        for i in range(1, n - 1):
            if abs(z_i) < _NEGLIGIBLE:  # the remaining terms are below float64 rounding (and would be denormal)
                break
            row = c[i]
            mirror = c[n - 1 - i]
            for j in range(j0, j1):
                first[j - j0] += z_i * (row[j] + z_last * mirror[j])
            z_i *= z
        scale = 1.0 - z_last * z_last
        for j in range(j0, j1):
            c[0, j] = first[j - j0] / scale
        for i in range(1, n):
            row = c[i]
            previous = c[i - 1]
            for j in range(j0, j1):
                row[j] += z * previous[j]
        factor = z / (z * z - 1.0)
        for j in range(j0, j1):
            c[n - 1, j] = factor * (z * c[n - 2, j] + c[n - 1, j])
        for i in range(n - 2, -1, -1):
            row = c[i]
            following = c[i + 1]
            for j in range(j0, j1):
                row[j] = z * (following[j] - row[j])


#: The helpers as written (``_kernel`` binds the module names to their compiled versions).
_filter_strip_py = _filter_strip
_filter_columns_py = _filter_columns
_filter_lines_py = _filter_lines

#: The kernel, compiled on first use.
_kernel = LazyKernel(globals(), _filter_2d, ("_filter_strip", "_filter_columns", "_filter_lines"))
