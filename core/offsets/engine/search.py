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

Masked ZNCC (Padfield 2012, "Masked object registration in the Fourier domain"):
chips whose template or search window holds nodata (invalid pixels inside the
image, :class:`Nodata`) are correlated on the pixels valid in both the template
and the shifted secondary footprint: six FFT correlations of the masks, the
masked images and their squares give, per offset, the overlap count N and the
sums of t, t^2, s, s^2 and t s over the overlap, and

    ZNCC = (sum ts - sum t sum s / N) / sqrt((sum t^2 - (sum t)^2 / N) (sum s^2 - (sum s)^2 / N)),

positions with N below ``Nodata.min_count`` (or touching pixels outside the
image) are excluded. Chips without nodata keep the plain engines, so their
values are those of images without nodata.

Search centres are (B, 2) integer arrays of (dx, dy) px.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import scipy.fft

from ..peaks import EXCLUDED
from ..sweep import FLAT_RELATIVE_VARIANCE, box_sums, masked_sweep_volume, sweep_volume
from .params import FFT_WORKERS, Params

#: Share of a sweep block's chips with nodata above which the masked sweep computes the whole block;
#: below it the plain sweep does and the chips with nodata are redone by masked per-chip FFT.
MASKED_SWEEP_SHARE = 0.5
#: Working memory (bytes) of one batch of masked per-chip FFTs (12 spectra per chip).
_MASKED_BATCH_BYTES = 64_000_000
#: Working memory (bytes) of one batch of plain per-chip FFTs (ladder chips can be large).
_FFT_BATCH_BYTES = 120_000_000


@dataclass(frozen=True)
class Nodata:
    """Nodata of a block for masked ZNCC: ``ref`` (the chips' area, chip (i, j) at
    ``[i*step:, j*step:]``) and ``sec`` (the secondary block) flag invalid pixels *inside* the
    images (bool); ``min_count`` is the smallest number of pixels valid in both a template and a
    secondary footprint for that position to count."""

    ref: np.ndarray
    sec: np.ndarray
    min_count: int


def integer_zncc(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                 sec_invalid_sums: np.ndarray, p: Params, n_rows: int, n_cols: int, chips: np.ndarray,
                 sweep: bool, centres: Optional[np.ndarray] = None, nodata: Optional[Nodata] = None,
                 dirty: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZNCC over all integer offsets as a core.offsets.peaks volume (2S+1, 2S+1, len(chips)).

    ``ref``: the chips' area of the reference block (chip (i, j) at ``[i*step:, j*step:]``);
    ``sec``: the demeaned secondary block with the ``halo`` of ``p``; ``chips``: flat indices of
    the chips to compute (all of them with ``sweep``, the displacement sweep; otherwise the
    per-chip FFT, each search window moved by its chip's ``centres`` (dx, dy)). ``dirty``
    (bool, per entry of ``chips``) marks chips correlated by masked ZNCC over ``nodata``. Also
    returns which templates have texture and the number of excluded positions per chip.
    """
    n = p.chip * p.chip
    offset = p.halo - p.search  # first search-window pixel of chip 0 in the secondary block
    sums = box_sums(sec, p.chip)
    energy_sec = box_sums(sec * sec, p.chip)
    variance_n = energy_sec - sums * sums / n
    excluded = (sec_invalid_sums > 0) | (variance_n <= FLAT_RELATIVE_VARIANCE * energy_sec)
    inverse_deviation = 1.0 / np.sqrt(np.where(excluded, 1.0, variance_n))
    if sweep:
        if dirty is not None and dirty.mean() > MASKED_SWEEP_SHARE:
            hard = box_sums(~(sec_valid | nodata.sec), p.chip) > 0
            return masked_sweep_volume(ref, ~nodata.ref & ref_valid, sec, sec_valid, hard, offset, p.chip,
                                       p.search, p.step, n_rows, n_cols, nodata.min_count)
        volume, textured, n_excluded = sweep_volume(ref, sec, offset, p.chip, p.search, p.step, n_rows, n_cols,
                                                    sums, inverse_deviation, excluded)
        if dirty is not None and dirty.any():  # the few chips with nodata: masked per-chip FFT
            _masked_chips(volume, textured, n_excluded, np.flatnonzero(dirty), ref, ref_valid, sec, sec_valid, p,
                          n_cols, chips, centres, offset, nodata)
        return volume, textured, n_excluded

    span = 2 * p.search + 1
    volume = np.empty((span, span, len(chips)), np.float32)
    textured = np.zeros(len(chips), bool)
    n_excluded = np.zeros(len(chips), np.int64)
    plain = np.arange(len(chips)) if dirty is None else np.flatnonzero(~dirty)
    batch = max(1, _FFT_BATCH_BYTES // (40 * p.window ** 2))
    for first in range(0, plain.size, batch):
        part = plain[first:first + batch]
        volume[:, :, part], textured[part], n_excluded[part] = _fft_zncc(
            ref, sec, inverse_deviation, excluded, p, n_cols, chips[part], centres, offset)
    if dirty is not None and dirty.any():
        _masked_chips(volume, textured, n_excluded, np.flatnonzero(dirty), ref, ref_valid, sec, sec_valid, p,
                      n_cols, chips, centres, offset, nodata)
    return volume, textured, n_excluded


def _masked_chips(volume: np.ndarray, textured: np.ndarray, n_excluded: np.ndarray, masked: np.ndarray,
                  ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray, p: Params,
                  n_cols: int, chips: np.ndarray, centres: Optional[np.ndarray], offset: int, nodata: Nodata) -> None:
    """Masked per-chip FFT ZNCC of the entries ``masked`` of ``chips``, in batches, into
    ``volume`` (its last axis indexed like ``chips``), ``textured`` and ``n_excluded``."""
    hard = box_sums(~(sec_valid | nodata.sec), p.chip) > 0
    size = scipy.fft.next_fast_len(p.window, real=True)
    batch = max(1, _MASKED_BATCH_BYTES // (12 * 16 * size * (size // 2 + 1)))
    for first in range(0, masked.size, batch):
        part = masked[first:first + batch]
        volume[:, :, part], textured[part], n_excluded[part] = _masked_fft_zncc(
            ref, ref_valid & ~nodata.ref, sec, sec_valid, hard, p, n_cols, chips[part], centres, offset,
            nodata.min_count)


def _fft_zncc(ref: np.ndarray, sec: np.ndarray, inverse_deviation: np.ndarray, excluded: np.ndarray, p: Params,
              n_cols: int, chips: np.ndarray, centres: Optional[np.ndarray], offset: int
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain per-chip FFT ZNCC (Lewis 1995) of ``chips``: volume (2S+1, 2S+1, len(chips)), texture, excluded."""
    span = 2 * p.search + 1
    rows, cols = (chips // n_cols) * p.step, (chips % n_cols) * p.step
    templates = windows_at(ref.astype(np.float32), p.chip, rows, cols)
    centred = templates - templates.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
    energy = np.einsum("bij,bij->b", centred, centred, dtype=np.float64)
    scale = np.einsum("bij,bij->b", templates, templates, dtype=np.float64)
    textured = energy > FLAT_RELATIVE_VARIANCE * scale
    unit = centred / np.sqrt(np.where(textured, energy, 1.0)).astype(np.float32)[:, None, None]
    first_row, first_col = _window_origins(offset, rows, cols, chips, centres)
    windows = windows_at(sec.astype(np.float32), p.window, first_row, first_col)
    windows -= windows.mean(axis=(1, 2), keepdims=True)
    size = scipy.fft.next_fast_len(p.window, real=True)
    shape = (size, size)
    spectrum = scipy.fft.rfft2(windows, s=shape, workers=FFT_WORKERS)
    spectrum *= np.conj(scipy.fft.rfft2(unit, s=shape, workers=FFT_WORKERS))
    zncc = scipy.fft.irfft2(spectrum, s=shape, workers=FFT_WORKERS)[:, :span, :span]
    del spectrum, windows
    zncc *= windows_at(inverse_deviation.astype(np.float32), span, first_row, first_col)
    excluded = windows_at(excluded, span, first_row, first_col)
    zncc[excluded] = EXCLUDED
    volume = np.ascontiguousarray(zncc.transpose(1, 2, 0), dtype=np.float32)
    return volume, textured, excluded.sum(axis=(1, 2))


def _masked_fft_zncc(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                     hard: np.ndarray, p: Params, n_cols: int, chips: np.ndarray, centres: Optional[np.ndarray],
                     offset: int, min_count: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masked per-chip FFT ZNCC (Padfield 2012, float64) of ``chips`` over the pixels valid in both
    the template and each shifted footprint; ``hard`` flags footprints touching pixels outside the
    image (excluded). Returns the volume, texture and excluded counts like :func:`_fft_zncc`."""
    span = 2 * p.search + 1
    rows, cols = (chips // n_cols) * p.step, (chips % n_cols) * p.step
    first_row, first_col = _window_origins(offset, rows, cols, chips, centres)
    t_mask = windows_at(ref_valid, p.chip, rows, cols).astype(np.float64)
    t = windows_at(ref, p.chip, rows, cols).astype(np.float64)
    count = t_mask.sum(axis=(1, 2))
    raw_energy = np.einsum("bij,bij->b", t * t_mask, t)
    t = (t - ((t * t_mask).sum(axis=(1, 2)) / np.maximum(count, 1))[:, None, None]) * t_mask
    s_mask = windows_at(sec_valid, p.window, first_row, first_col).astype(np.float64)
    s = windows_at(sec, p.window, first_row, first_col).astype(np.float64)
    s_count = s_mask.sum(axis=(1, 2))
    s = (s - ((s * s_mask).sum(axis=(1, 2)) / np.maximum(s_count, 1))[:, None, None]) * s_mask
    size = scipy.fft.next_fast_len(p.window, real=True)
    shape = (size, size)

    def spectra(*images: np.ndarray):
        return [scipy.fft.rfft2(image, s=shape, workers=FFT_WORKERS) for image in images]

    f_tm, f_t, f_tt = spectra(t_mask, t, t * t)
    f_sm, f_s, f_ss = spectra(s_mask, s, s * s)

    def correlation(window_spectrum: np.ndarray, template_spectrum: np.ndarray) -> np.ndarray:
        product = window_spectrum * np.conj(template_spectrum)
        return scipy.fft.irfft2(product, s=shape, workers=FFT_WORKERS)[:, :span, :span]

    overlap = np.round(correlation(f_sm, f_tm))
    sum_t, sum_tt = correlation(f_sm, f_t), correlation(f_sm, f_tt)
    sum_s, sum_ss = correlation(f_s, f_tm), correlation(f_ss, f_tm)
    sum_ts = correlation(f_s, f_t)
    del f_tm, f_t, f_tt, f_sm, f_s, f_ss
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.maximum(overlap, 1.0)
        var_t = sum_tt - sum_t * sum_t / safe
        var_s = sum_ss - sum_s * sum_s / safe
        zncc = (sum_ts - sum_t * sum_s / safe) / np.sqrt(var_t * var_s)
    excluded = (windows_at(hard, span, first_row, first_col) | (overlap < min_count)
                | ~(var_t > FLAT_RELATIVE_VARIANCE * sum_tt) | ~(var_s > FLAT_RELATIVE_VARIANCE * sum_ss))
    zncc = np.where(excluded, EXCLUDED, np.clip(zncc, -1.0, 1.0))
    textured = (count > 0) & (np.einsum("bij,bij->b", t, t) > FLAT_RELATIVE_VARIANCE * raw_energy)
    volume = np.ascontiguousarray(zncc.transpose(1, 2, 0), dtype=np.float32)
    return volume, textured, excluded.sum(axis=(1, 2))


def _window_origins(offset: int, rows: np.ndarray, cols: np.ndarray, chips: np.ndarray,
                    centres: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """First (row, column) of each chip's search window in the secondary block, moved by its
    integer search centre (dx, dy); ``offset`` >= |centre| (the block's ``apriori_halo``)."""
    if centres is None:
        return offset + rows, offset + cols
    return offset + rows + centres[chips, 1], offset + cols + centres[chips, 0]


def windows_at(image: np.ndarray, size: int, first_row: np.ndarray, first_col: np.ndarray) -> np.ndarray:
    """Copies of the size x size windows of ``image`` starting at the given pixels (row, column
    index arrays): (B, size, size)."""
    return np.lib.stride_tricks.sliding_window_view(image, (size, size))[first_row, first_col]


def demeaned(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``image`` minus the mean of its valid pixels (float64), which keeps the
    float64 summed-area tables precise; gain/bias-invariant matching ignores it."""
    return image - (image[valid].mean() if valid.any() else 0.0)
