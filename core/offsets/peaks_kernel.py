"""Compiled integer-peak search of a ZNCC volume (:func:`core.offsets.peaks.volume_peaks`), numba when installed.

Without numba (or with ``USE_NUMBA = False``) :func:`volume_peaks_compiled`
returns None and :mod:`core.offsets.peaks` runs its numpy implementation; both
give the same peaks, patches and ratios, and the SNR to float64 rounding (the
kernel sums the absolute values in another order). The volume (2S+1, 2S+1, B)
float32 is read position by position over the contiguous chips axis: one pass
for the row maxima and the sum of |ZNCC|, then short passes at each chip's
best row (whose neighbouring chips mostly share it, so the reads stay local)
for the best column, the 3 x 3 patch and the second peak. The volume holds no
NaN (unusable positions hold ``EXCLUDED``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .jit import LazyKernel

#: Use the compiled kernel when numba is installed (tests switch it off to compare).
USE_NUMBA = True


def volume_peaks_compiled(volume: np.ndarray, excluded_below: float, excluded: float, reach: int
                          ) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per chip of ``volume`` (2S+1, 2S+1, B): best (row, column) index (B, 2) intp, its value
    (B,) float64, the 3 x 3 patch around it (B, 3, 3) float64 (clipped into the volume, -inf
    below ``excluded_below``), the second peak (B,) (best value more than ``reach`` rows or
    columns away, ``excluded`` when none) and the sum of |ZNCC| (B,) float64. None without numba."""
    kernel = _kernel() if USE_NUMBA else None
    if kernel is None:
        return None
    volume = np.ascontiguousarray(volume, np.float32)
    count = volume.shape[2]
    index = np.empty((count, 2), np.intp)
    value = np.empty(count)
    patch = np.empty((count, 3, 3))
    second = np.empty(count)
    magnitude = np.empty(count)
    kernel(volume, float(excluded_below), float(excluded), int(reach), index, value, patch, second, magnitude)
    return index, value, patch, second, magnitude


def _peaks(volume, excluded_below, excluded, reach, index, value, patch, second,
           magnitude):  # pragma: no cover (compiled)
    """Numba body of :func:`volume_peaks_compiled` (results written into the last five arrays);
    ties go to the first position in (row, column) order, as numpy's argmax. Every loop runs
    over the chips innermost, with selects instead of branches (vectorised)."""
    span = volume.shape[0]
    count = volume.shape[2]
    best = np.empty(count, np.float32)
    top = np.zeros(count, np.intp)
    row_max = np.empty((span, count), np.float32)
    magnitude[:] = 0.0
    for v in range(span):
        line_max = row_max[v]
        line_max[:] = volume[v, 0]
        for u in range(span):
            line = volume[v, u]
            for b in range(count):
                x = line[b]
                line_max[b] = max(line_max[b], x)
                magnitude[b] += abs(x)
        for b in range(count):
            better = v == 0 or line_max[b] > best[b]
            best[b] = line_max[b] if better else best[b]
            top[b] = v if better else top[b]
    second[:] = excluded
    for v in range(span):
        line_max = row_max[v]
        for b in range(count):
            if abs(v - top[b]) > reach:
                second[b] = max(second[b], line_max[b])
    column = np.zeros(count, np.intp)
    found = np.empty(count, np.float32)
    for u in range(span):
        for b in range(count):
            x = volume[top[b], u, b]
            better = u == 0 or x > found[b]
            found[b] = x if better else found[b]
            column[b] = u if better else column[b]
    for shift in range(-reach, reach + 1):
        for u in range(span):
            for b in range(count):
                row = top[b] + shift
                if 0 <= row < span and abs(u - column[b]) > reach:
                    second[b] = max(second[b], np.float64(volume[row, u, b]))
    for b in range(count):
        index[b, 0] = top[b]
        index[b, 1] = column[b]
        value[b] = best[b]
        r0 = min(max(top[b], 1), span - 2) - 1
        c0 = min(max(column[b], 1), span - 2) - 1
        for i in range(3):
            for j in range(3):
                x = np.float64(volume[r0 + i, c0 + j, b])
                patch[b, i, j] = -np.inf if x < excluded_below else x


#: The kernel, compiled on first use.
_kernel = LazyKernel(globals(), _peaks, ())
