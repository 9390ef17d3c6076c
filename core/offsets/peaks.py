"""Integer peak of a ZNCC volume and its quality bands, shared by both integer-search engines.

Volume layout: ``volume[v, u, b]`` (float32, shape (2S+1, 2S+1, B)) is the
zero-normalised cross-correlation of chip ``b`` at the integer offset
dx = u - S, dy = v - S px (+ right, + down): the search surface is indexed
[row, column], so indices are (v, u) while offsets are passed as (dx, dy).
Chips are the last, contiguous axis, so every reduction below runs over long
contiguous rows of chips.
Positions whose secondary footprint is unusable (nodata, flat) hold
``EXCLUDED`` (-4, below any ZNCC), never NaN/inf: maxima skip them and the
SNR corrects its sums with the number of excluded positions per chip.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .peaks_kernel import volume_peaks_compiled

#: Value of an excluded position in a ZNCC volume (any ZNCC is >= -1).
EXCLUDED = -4.0
#: Positions below this are excluded ones.
_EXCLUDED_BELOW = -2.0
#: Positions within this many px of the best peak are skipped when looking for the second peak.
SECOND_PEAK_EXCLUSION = 2
#: Cap of the peak ratio (a surface without a second positive peak).
MAX_PEAK_RATIO = 100.0


@dataclass
class IntegerPeaks:
    """Per chip: best integer position ``index`` (B, 2) as (v, u) = (row, column) volume indices
    (offset dx = u - S, dy = v - S);
    its ZNCC ``value`` (-inf when excluded); the 3 x 3 ZNCC ``patch`` (B, 3, 3)
    around it (rows v-1..v+1, columns u-1..u+1, clipped into the volume; -inf at
    excluded positions); ``snr`` = value / mean |ZNCC| over the usable positions;
    ``ratio`` = value / best ZNCC more than ``SECOND_PEAK_EXCLUSION`` px away
    (capped at ``MAX_PEAK_RATIO``); ``inside``: the peak is usable and not on
    the border of the search range (where the true offset may lie beyond it)."""

    index: np.ndarray
    value: np.ndarray
    patch: np.ndarray
    snr: np.ndarray
    ratio: np.ndarray
    inside: np.ndarray


def volume_peaks(volume: np.ndarray, n_excluded: np.ndarray) -> IntegerPeaks:
    """Peaks and quality of a (2S+1, 2S+1, B) ZNCC volume; ``n_excluded`` (B,) counts
    each chip's excluded positions. The volume may be overwritten (by its absolute values).
    Compiled when numba is installed (:mod:`.peaks_kernel`), else numpy; the same numbers."""
    span, _, count = volume.shape
    compiled = volume_peaks_compiled(volume, _EXCLUDED_BELOW, EXCLUDED, SECOND_PEAK_EXCLUSION)
    if compiled is not None:
        index, value, patch, second, magnitude = compiled
        return _peaks_of(index, value, patch, second, magnitude, n_excluded, span)
    chips = np.arange(count)
    row_max = volume.max(axis=1)  # (v, b)
    best_row = row_max.argmax(axis=0)
    value = row_max[best_row, chips].astype(np.float64)
    best_col = volume[best_row, :, chips].argmax(axis=1)
    index = np.stack([best_row, best_col], axis=1)

    near = np.arange(-1, 2)
    rows = np.clip(best_row, 1, span - 2)[:, None, None] + near[None, :, None]
    cols = np.clip(best_col, 1, span - 2)[:, None, None] + near[None, None, :]
    patch = volume[rows, cols, chips[:, None, None]].astype(np.float64)
    patch[patch < _EXCLUDED_BELOW] = -np.inf

    second = _second_peak(volume, row_max, best_row, best_col)
    np.abs(volume, out=volume)
    return _peaks_of(index, value, patch, second, volume.sum(axis=(0, 1), dtype=np.float64), n_excluded, span)


def _peaks_of(index: np.ndarray, value: np.ndarray, patch: np.ndarray, second: np.ndarray, magnitude: np.ndarray,
              n_excluded: np.ndarray, span: int) -> IntegerPeaks:
    """:class:`IntegerPeaks` from the best (row, column) ``index`` (B, 2), its ``value``, the 3 x 3
    ``patch``, the ``second`` peak and the sum of |ZNCC| over the volume (excluded positions
    counted as |EXCLUDED|) per chip."""
    usable = value > _EXCLUDED_BELOW
    inside = usable & np.all((index > 0) & (index < span - 1), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.clip(np.where(second > 0, value / second, MAX_PEAK_RATIO), 0.0, MAX_PEAK_RATIO)
    mean_abs = (magnitude + EXCLUDED * n_excluded) / np.maximum(span * span - n_excluded, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = value / np.where(mean_abs > 0, mean_abs, np.nan)
    value = np.where(usable, value, -np.inf)
    return IntegerPeaks(index, value, patch, snr, ratio, inside)


def _second_peak(volume: np.ndarray, row_max: np.ndarray, best_row: np.ndarray,
                 best_col: np.ndarray) -> np.ndarray:
    """Best ZNCC more than ``SECOND_PEAK_EXCLUSION`` px (in rows or columns) from the peak."""
    span, _, count = volume.shape
    chips = np.arange(count)
    reach = SECOND_PEAK_EXCLUSION
    far_rows = np.abs(np.arange(span)[:, None] - best_row[None, :]) > reach
    second = np.where(far_rows, row_max, EXCLUDED).max(axis=0)
    far_cols = np.abs(np.arange(span)[None, :] - best_col[:, None]) > reach  # (B, u)
    for shift in range(-reach, reach + 1):
        row = best_row + shift
        present = (row >= 0) & (row < span)
        values = volume[np.clip(row, 0, span - 1), :, chips]  # (B, u)
        candidates = np.where(far_cols & present[:, None], values, EXCLUDED).max(axis=1)
        np.maximum(second, candidates, out=second)
    return second
