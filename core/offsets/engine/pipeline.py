"""The per-block pipeline: filters, texture test, integer search, sub-pixel, forward-backward.

A block is a rectangle of output cells with the pixels it needs: the
reference with ``SPLINE_MARGIN`` (the search halo with forward-backward) and
the secondary with the search halo, both plus the filter margin (see
``blocks.read_block``). Per block:

0. anti-aliasing Gaussian (``smoothing``) and the optional pre-filter
   (:mod:`core.offsets.prefilters`) on both images; chips whose raw reference
   standard deviation is below ``min_texture`` x the image noise are not matched;
1. integer search (:mod:`.search`), peak and quality bands (:mod:`core.offsets.peaks`);
   a peak on the border of the search range is rejected;
2. sub-pixel: the 3x3 Gaussian fit, then Lucas-Kanade for ``subpixel="lk"`` (:mod:`.subpixel`)
   or the affine refinement for ``subpixel="affine"`` (:mod:`.affine`, with the deformation bands);
3. with ``forward_backward``, the same cells secondary -> reference: cells
   whose |forward + backward| exceeds it are invalid.

Offsets are totals (a-priori search centre + measured), (dx, dy) px, dx + right, dy + down.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..peaks import volume_peaks
from ..prefilters import apply_prefilter, gaussian_smoothed
from ..sweep import box_sums, integer_engine, single_threaded_opencv
from .affine import refine_affine, strain_bands
from .params import SPLINE_MARGIN, CorrelationResult, Params
from .quality import textured, uncertainty
from .search import chip_stack, demeaned, integer_zncc
from .subpixel import fit_peaks, refine_lucas_kanade


@single_threaded_opencv()
def compute_block(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                  params: Params, mask: Optional[np.ndarray],
                  centres: Optional[np.ndarray] = None) -> CorrelationResult:
    """Pre-filter, texture test, forward (and backward) correlation of one block
    (``centres``: per-chip integer search centres (B, 2), (dx, dy) px). OpenCV runs single-threaded
    meanwhile: blocks already run in parallel, and its pool only adds overhead on them."""
    p = params
    m = p.filter_margin
    ref_f = _crop(_filtered(ref, p), m)
    sec_f = _crop(_filtered(sec, p), m)
    ref, ref_valid, sec_valid = _crop(ref, m), _crop(ref_valid, m), _crop(sec_valid, m)
    extra = p.halo - SPLINE_MARGIN if p.forward_backward > 0 else 0  # ref read with the search halo
    ref_inner = (slice(extra, ref.shape[0] - extra), slice(extra, ref.shape[1] - extra))
    chip_ok = textured(_crop(ref, extra + SPLINE_MARGIN), p)
    if mask is not None:
        chip_ok &= mask.ravel()
    forward = correlate_block(ref_f[ref_inner], ref_valid[ref_inner], sec_f, sec_valid, p, chip_ok, centres)
    if p.forward_backward > 0:
        inset = p.halo - SPLINE_MARGIN
        sec_inner = (slice(inset, sec_f.shape[0] - inset), slice(inset, sec_f.shape[1] - inset))
        backward = correlate_block(sec_f[sec_inner], sec_valid[sec_inner], ref_f, ref_valid, p,
                                   forward.valid.ravel(), None if centres is None else -centres)
        residual = np.hypot(forward.dx + backward.dx, forward.dy + backward.dy)
        forward.valid &= np.isfinite(residual) & (residual <= p.forward_backward)
        forward.fb_residual = residual.astype(np.float32)
        forward.blank_invalid()
    return forward


def _filtered(image: np.ndarray, p: Params) -> np.ndarray:
    """Anti-aliasing smoothing, then the pre-filter."""
    if p.smoothing > 0:
        image = gaussian_smoothed(image, p.smoothing)
    return apply_prefilter(image, p.prefilter, p.prefilter_size)


def _crop(array: np.ndarray, margin: int) -> np.ndarray:
    return array[margin:array.shape[0] - margin, margin:array.shape[1] - margin] if margin else array


def correlate_block(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                    params: Params, chip_ok: Optional[np.ndarray] = None,
                    centres: Optional[np.ndarray] = None) -> CorrelationResult:
    """Correlate every chip of one block (already pre-filtered).

    ``ref`` holds the block's reference pixels plus ``SPLINE_MARGIN`` pixels
    on every side (its first chip starts at (SPLINE_MARGIN, SPLINE_MARGIN));
    ``sec`` the same area with ``params.halo`` pixels on every side.
    ``chip_ok`` (flat, per chip) marks chips to compute; ``centres`` (B, 2)
    the integer (dx, dy) each chip's search is centred on (None = 0; the
    block's ``apriori_halo`` covers them). Offsets are totals.
    """
    p = params
    g = SPLINE_MARGIN
    inner = (slice(g, ref.shape[0] - g), slice(g, ref.shape[1] - g))
    n_rows = (ref.shape[0] - 2 * g - p.chip) // p.step + 1
    n_cols = (ref.shape[1] - 2 * g - p.chip) // p.step + 1
    ref_ok = box_sums(~ref_valid[inner], p.chip)[::p.step, ::p.step][:n_rows, :n_cols].ravel() == 0
    if chip_ok is not None:
        ref_ok &= chip_ok

    sec_centred = demeaned(sec, sec_valid)
    sec_invalid_sums = box_sums(~sec_valid, p.chip)
    sweep = centres is None and integer_engine(p.chip, p.search, p.step) == "sweep"
    templates = None if sweep else chip_stack(ref[inner].astype(np.float32), p.chip, p.step, n_rows, n_cols)
    volume, template_ok, n_excluded = integer_zncc(templates, sec_centred, sec_invalid_sums, p, n_rows, n_cols,
                                                   ref[inner] if sweep else None, centres)
    peaks = volume_peaks(volume, n_excluded)
    del volume
    peak_value, snr, ratio = peaks.value, peaks.snr, peaks.ratio
    ok = ref_ok & template_ok & peaks.inside
    fit, curvature, ok = fit_peaks(peaks.patch, ok)
    # peaks.index is a (row, column) = (v, u) index into the volume: reversed, it is (dx, dy) + S
    integer_offset = peaks.index[:, ::-1] - p.search + (0 if centres is None else centres)
    offset = integer_offset + fit  # (B, 2): (dx, dy)

    strain = None
    if p.subpixel == "lk":
        del templates
        offset, peak_value, ok = refine_lucas_kanade(
            ref, ref_valid, sec_centred, sec_invalid_sums, offset, integer_offset, ok, p, n_rows, n_cols)
    elif p.subpixel == "affine":
        del templates
        offset, peak_value, ok, strain = refine_affine(
            ref, ref_valid, sec_centred, sec_invalid_sums, sec_valid, offset, integer_offset, ok, p, n_rows,
            n_cols)
    # smoothing correlates the noise over about 4 pi sigma^2 pixels: fewer independent samples
    sigma = uncertainty(peak_value, curvature, p.chip * p.chip / (1.0 + 4.0 * np.pi * p.smoothing ** 2))

    shape = (n_rows, n_cols)

    def band(values: np.ndarray) -> np.ndarray:
        return np.where(ok, values, np.nan).astype(np.float32).reshape(shape)

    result = CorrelationResult(band(offset[:, 0]), band(offset[:, 1]), band(peak_value), ok.reshape(shape),
                               band(snr), band(ratio), band(sigma))
    if p.strain_bands and strain is not None:
        for name, values in strain_bands(strain, ok, shape).items():
            setattr(result, name, values)
    return result
