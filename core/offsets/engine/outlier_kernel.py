"""Compiled outlier tests of an offset field (:mod:`.quality`), numba when installed.

:func:`median_test_compiled` and :func:`coherence_test_compiled` give exactly the
results of :func:`.quality.normalised_median_test` and
:func:`.quality.displacement_coherence_test` (the same comparisons, the same
float64 arithmetic on the same values), one cell at a time instead of
stacking shifted copies of the field; without numba (or with ``USE_NUMBA =
False``) they return None and the numpy versions run. Offsets (dx, dy) px.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..jit import LazyKernel

#: Use the compiled tests when numba is installed (tests switch it off to compare).
USE_NUMBA = True


def median_test_compiled(dx: np.ndarray, dy: np.ndarray, threshold: float, epsilon: float) -> Optional[np.ndarray]:
    """The normalised median test's outliers (bool, like ``dx``), None without numba."""
    kernel = _median_kernel() if USE_NUMBA else None
    if kernel is None:
        return None
    outliers = np.zeros(dx.shape, np.bool_)
    kernel(np.ascontiguousarray(dx, np.float64), np.ascontiguousarray(dy, np.float64), float(threshold),
           float(epsilon), outliers)
    return outliers


def coherence_test_compiled(dx: np.ndarray, dy: np.ndarray, tolerance: float, spacing: int, reach: int,
                            min_share: float) -> Optional[np.ndarray]:
    """The displacement coherence test's outliers (bool, like ``dx``), None without numba."""
    kernel = _coherence_kernel() if USE_NUMBA else None
    if kernel is None:
        return None
    outliers = np.zeros(dx.shape, np.bool_)
    kernel(np.ascontiguousarray(dx, np.float64), np.ascontiguousarray(dy, np.float64), float(tolerance),
           int(spacing), int(reach), float(min_share), outliers)
    return outliers


def _median(dx, dy, threshold, epsilon, outliers):  # pragma: no cover (compiled)
    """Numba body of :func:`median_test_compiled`: per cell its 8 neighbours (NaN outside), the
    count of finite dx neighbours, then for dx and dy the median of the neighbours sorted NaN
    last (as ``quality._finite_median``), their spread and the residual test; like the numpy
    version, nothing is tested when no cell has a finite dx and two finite dx neighbours."""
    height, width = dx.shape
    counts = np.zeros((height, width), np.int64)
    for r in range(height):
        for c in range(width):
            for a in range(-1, 2):
                for b in range(-1, 2):
                    if (a != 0 or b != 0) and 0 <= r + a < height and 0 <= c + b < width:
                        if np.isfinite(dx[r + a, c + b]):
                            counts[r, c] += 1
    values = np.empty(8)
    spread = np.empty(8)
    for component in range(2):
        field = dx if component == 0 else dy
        tested = False
        for r in range(height):
            for c in range(width):
                count = counts[r, c]
                centre = field[r, c]
                if count < 2 or not np.isfinite(centre):
                    continue
                tested = True
                k = 0
                for a in range(-1, 2):
                    for b in range(-1, 2):
                        if a == 0 and b == 0:
                            continue
                        inside = 0 <= r + a < height and 0 <= c + b < width
                        values[k] = field[r + a, c + b] if inside else np.nan
                        k += 1
                _sort_nan_last(values)
                median = 0.5 * (values[(count - 1) // 2] + values[count // 2])
                for k in range(8):
                    spread[k] = abs(values[k] - median)
                _sort_nan_last(spread)
                deviation = 0.5 * (spread[(count - 1) // 2] + spread[count // 2])
                if abs(centre - median) / (deviation + epsilon) > threshold:
                    outliers[r, c] = True
        if not tested:
            return


def _sort_nan_last(values):  # pragma: no cover (compiled)
    """Insertion sort in place, NaN after every number (``np.sort``'s order)."""
    for i in range(1, values.shape[0]):
        x = values[i]
        j = i - 1
        while j >= 0 and _after(values[j], x):
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = x


def _after(a, b):  # pragma: no cover (compiled)
    """True when ``a`` sorts after ``b`` (NaN last)."""
    if a != a:
        return b == b
    return b == b and a > b


def _coherence(dx, dy, tolerance, spacing, reach, min_share, outliers):  # pragma: no cover (compiled)
    """Numba body of :func:`coherence_test_compiled`: per finite cell the valid neighbours at
    (a, b) x ``spacing`` cells, |a|, |b| <= ``reach``, and those within ``tolerance`` in dx and dy."""
    height, width = dx.shape
    for r in range(height):
        for c in range(width):
            x = dx[r, c]
            y = dy[r, c]
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            valid = 0
            agree = 0
            for a in range(-reach, reach + 1):
                rr = r + a * spacing
                if rr < 0 or rr >= height:
                    continue
                for b in range(-reach, reach + 1):
                    cc = c + b * spacing
                    if (a == 0 and b == 0) or cc < 0 or cc >= width:
                        continue
                    nb_x = dx[rr, cc]
                    nb_y = dy[rr, cc]
                    if np.isfinite(nb_x) and np.isfinite(nb_y):
                        valid += 1
                        if abs(nb_x - x) <= tolerance and abs(nb_y - y) <= tolerance:
                            agree += 1
            outliers[r, c] = valid > 0 and agree < min_share * valid


#: The helpers as written (the kernels bind the module names to their compiled versions).
_sort_nan_last_py = _sort_nan_last
_after_py = _after

#: The kernels, compiled on first use (IEEE NaN semantics: no fastmath).
_median_kernel = LazyKernel(globals(), _median, ("_after", "_sort_nan_last"))
_coherence_kernel = LazyKernel(globals(), _coherence)
