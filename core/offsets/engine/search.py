"""Integer search: the ZNCC of every chip at every integer offset of its search range.

Lewis (1995): the zero-mean, unit-norm template is cross-correlated with the
search window (chip + 2 * search_range) by batched real FFTs; the denominator
comes from float64 summed-area tables of the secondary and its square. When
chips overlap enough for it to be cheaper, the displacement sweep of
:mod:`core.offsets.sweep` computes the same values. Either way the result is
the float32 volume of :mod:`core.offsets.peaks`: ``volume[v, u, b]`` is chip b
at the offset dx = u - S, dy = v - S px (+ right, + down; plus the chip's
search centre), positions whose footprint touches an invalid secondary pixel
or is flat hold ``EXCLUDED``.

Search centres are (B, 2) integer arrays of (dx, dy) px.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import scipy.fft

from ..peaks import EXCLUDED
from ..sweep import FLAT_RELATIVE_VARIANCE, box_sums, sweep_volume
from .params import FFT_WORKERS, Params


def integer_zncc(templates: Optional[np.ndarray], sec: np.ndarray, sec_invalid_sums: np.ndarray, p: Params,
                 n_rows: int, n_cols: int, ref: Optional[np.ndarray] = None,
                 centres: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZNCC over all integer offsets as a core.offsets.peaks volume (2S+1, 2S+1, B).

    With ``ref`` (the block's reference) the displacement sweep computes it,
    otherwise the per-chip FFT from ``templates`` (B, chip, chip), each search
    window moved by its chip's ``centres`` (dx, dy). ``sec`` is the demeaned
    secondary block with the ``halo`` of ``p``. Also returns which templates
    have texture and the number of excluded positions per chip.
    """
    n = p.chip * p.chip
    span = 2 * p.search + 1
    offset = p.halo - p.search  # first search-window pixel of chip 0 in the secondary block
    sums = box_sums(sec, p.chip)
    energy_sec = box_sums(sec * sec, p.chip)
    variance_n = energy_sec - sums * sums / n
    excluded = (sec_invalid_sums > 0) | (variance_n <= FLAT_RELATIVE_VARIANCE * energy_sec)
    inverse_deviation = 1.0 / np.sqrt(np.where(excluded, 1.0, variance_n))
    if ref is not None:
        return sweep_volume(ref, sec, offset, p.chip, p.search, p.step, n_rows, n_cols, sums,
                            inverse_deviation, excluded)

    centred = templates - templates.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
    energy = np.einsum("bij,bij->b", centred, centred, dtype=np.float64)
    scale = np.einsum("bij,bij->b", templates, templates, dtype=np.float64)
    textured = energy > FLAT_RELATIVE_VARIANCE * scale
    unit = centred / np.sqrt(np.where(textured, energy, 1.0)).astype(np.float32)[:, None, None]
    windows = _search_stack(sec.astype(np.float32), offset, p.window, p.step, n_rows, n_cols, centres)
    windows -= windows.mean(axis=(1, 2), keepdims=True)
    size = scipy.fft.next_fast_len(p.window, real=True)
    shape = (size, size)
    spectrum = scipy.fft.rfft2(windows, s=shape, workers=FFT_WORKERS)
    spectrum *= np.conj(scipy.fft.rfft2(unit, s=shape, workers=FFT_WORKERS))
    zncc = scipy.fft.irfft2(spectrum, s=shape, workers=FFT_WORKERS)[:, :span, :span]
    del spectrum, windows
    zncc *= _search_stack(inverse_deviation.astype(np.float32), offset, span, p.step, n_rows, n_cols, centres)
    excluded = _search_stack(excluded, offset, span, p.step, n_rows, n_cols, centres)
    zncc[excluded] = EXCLUDED
    volume = np.ascontiguousarray(zncc.transpose(1, 2, 0), dtype=np.float32)
    return volume, textured, excluded.sum(axis=(1, 2))


def chip_stack(image: np.ndarray, size: int, step: int, n_rows: int, n_cols: int) -> np.ndarray:
    """Windows of ``size`` starting every ``step`` pixels, as a contiguous (B, size, size) stack."""
    view = np.lib.stride_tricks.sliding_window_view(image, (size, size))[::step, ::step][:n_rows, :n_cols]
    return np.ascontiguousarray(view).reshape(n_rows * n_cols, size, size)


def _search_stack(image: np.ndarray, offset: int, size: int, step: int, n_rows: int, n_cols: int,
                  centres: Optional[np.ndarray]) -> np.ndarray:
    """``chip_stack`` of ``image[offset:, offset:]``, each window moved by its chip's integer
    search centre (dx, dy); ``offset`` >= |centre| (the block's ``apriori_halo``)."""
    if centres is None:
        return chip_stack(image[offset:, offset:], size, step, n_rows, n_cols)
    chips = np.arange(n_rows * n_cols)
    return windows_at(image, size, offset + (chips // n_cols) * step + centres[:, 1],
                      offset + (chips % n_cols) * step + centres[:, 0])


def windows_at(image: np.ndarray, size: int, first_row: np.ndarray, first_col: np.ndarray) -> np.ndarray:
    """Copies of the size x size windows of ``image`` starting at the given pixels (row, column
    index arrays): (B, size, size)."""
    return np.lib.stride_tricks.sliding_window_view(image, (size, size))[first_row, first_col]


def demeaned(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``image`` minus the mean of its valid pixels (float64), which keeps the
    float64 summed-area tables precise; gain/bias-invariant matching ignores it."""
    return image - (image[valid].mean() if valid.any() else 0.0)
