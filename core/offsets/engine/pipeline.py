"""The per-block pipeline: filters, texture test, integer search, sub-pixel, forward-backward.

A block is a rectangle of output cells with the pixels it needs: the
reference with ``SPLINE_MARGIN`` (the search halo with forward-backward) and
the secondary with the search halo, both plus the filter margin (see
``blocks.read_block``). Per block:

0. anti-aliasing Gaussian (``smoothing``, nodata-aware where the block has nodata)
   and the optional pre-filter (:mod:`core.offsets.prefilters`) on both images;
   chips whose raw reference standard deviation is below ``min_texture`` x the
   image noise are not matched;
1. integer search (:mod:`.search`), peak and quality bands (:mod:`core.offsets.peaks`);
   a peak on the border of the search range is rejected, and so is a peak ratio
   below ``min_peak_ratio``;
2. sub-pixel: the 3x3 Gaussian fit, then Lucas-Kanade for ``subpixel="lk"`` (:mod:`.subpixel`)
   or the affine refinement for ``subpixel="affine"`` (:mod:`.affine`, with the deformation
   bands; chips with nodata get the weighted translation Lucas-Kanade, then the weighted affine stage);
3. with ``forward_backward``, the same cells secondary -> reference: cells
   whose |forward + backward| exceeds it are invalid.

Nodata (invalid pixels inside the images, as opposed to outside them): with
``min_valid_fraction`` < 1 a chip is correlated on its valid pixels when at least
that fraction of its pixels is valid (masked ZNCC, :mod:`.search`), and its
Lucas-Kanade refinement gives zero weight to nodata template pixels and to
secondary samples whose nearest pixel is nodata (scattered nodata is filled before the smoothing). Chips whose
template and search window (plus the spline support) hold no nodata take the
plain path: their numbers are those of a block without nodata.

Each rejection records its code (``core.offsets.disparity.REASONS``) in the
result's ``reason`` band: the first test a cell fails.

Offsets are totals (a-priori search centre + measured), (dx, dy) px, dx + right, dy + down.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..disparity import (REASON_FEW_VALID, REASON_FORWARD_BACKWARD, REASON_LOW_PEAK_RATIO, REASON_LOW_TEXTURE,
                         REASON_MASKED, REASON_NO_DATA, REASON_REFINEMENT, REASON_SEARCH_EDGE, REASON_VALID)
from ..peaks import volume_peaks
from ..prefilters import apply_prefilter, gaussian_smoothed
from ..sweep import box_sums, integer_engine, single_threaded_opencv
from .affine import PixelValidity, refine_affine, refine_affine_weighted, strain_bands
from .params import SPLINE_MARGIN, CorrelationResult, Params
from .quality import textured, uncertainty
from .search import Nodata, demeaned, integer_zncc
from .subpixel import fit_peaks, lk_block_inputs, refine_lucas_kanade

#: Pixels around a search window whose nodata makes a chip take the masked path: the full quintic
#: support checked by the plain refinement (floor - 2 .. floor + 3).
_SUPPORT_REACH = 3
#: Kernel mass of valid pixels around a nodata pixel from which it counts as scattered nodata, filled
#: before the smoothing (an isolated pixel has about 0.75, one inside a 3 x 3 hole about 0.25).
_SCATTERED_VALID_MASS = 0.5
#: Smallest share of a chip's pixels that keep a non-zero Lucas-Kanade weight (masked chips).
_MIN_WEIGHTED_SHARE = 0.25


@single_threaded_opencv()
def compute_block(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                  params: Params, mask: Optional[np.ndarray], centres: Optional[np.ndarray] = None,
                  ref_nodata: Optional[np.ndarray] = None, sec_nodata: Optional[np.ndarray] = None,
                  sparse: bool = False) -> CorrelationResult:
    """Pre-filter, texture test, forward (and backward) correlation of one block
    (``centres``: per-chip integer search centres (B, 2), (dx, dy) px; ``ref_nodata`` /
    ``sec_nodata``: invalid pixels inside the images, bool like ``ref_valid`` / ``sec_valid``, or
    None; ``sparse``: few cells of ``mask`` are wanted, so the per-chip FFT computes only those).
    OpenCV runs single-threaded meanwhile: blocks already run in parallel, and its pool only adds
    overhead on them."""
    p = params
    m = p.filter_margin
    if p.min_valid_fraction >= 1 or not (_any(ref_nodata) or _any(sec_nodata)):
        ref_nodata = sec_nodata = None
    ref_f = _crop(_filtered(ref, p, ref_nodata), m)
    sec_f = _crop(_filtered(sec, p, sec_nodata), m)
    ref, ref_valid, sec_valid = _crop(ref, m), _crop(ref_valid, m), _crop(sec_valid, m)
    if ref_nodata is not None:
        ref_nodata, sec_nodata = _crop(ref_nodata, m), _crop(sec_nodata, m)
    extra = p.halo - SPLINE_MARGIN if p.forward_backward > 0 else 0  # ref read with the search halo
    ref_inner = (slice(extra, ref.shape[0] - extra), slice(extra, ref.shape[1] - extra))
    core = extra + SPLINE_MARGIN
    reason = np.zeros(_grid_size(ref.shape, core, p), np.uint8)
    if mask is not None:
        reason[~mask.ravel()] = REASON_MASKED
    chips_valid = _crop(ref_valid, core)
    _mark_templates(reason, chips_valid, None if ref_nodata is None else _crop(ref_nodata, core), p)
    _mark(reason, ~textured(_crop(ref, core), p, None if ref_nodata is None else chips_valid), REASON_LOW_TEXTURE)
    forward = correlate_block(ref_f[ref_inner], ref_valid[ref_inner], sec_f, sec_valid, p, reason, centres,
                              None if ref_nodata is None else ref_nodata[ref_inner], sec_nodata, sparse)
    if p.forward_backward > 0:
        inset = p.halo - SPLINE_MARGIN
        sec_inner = (slice(inset, sec_f.shape[0] - inset), slice(inset, sec_f.shape[1] - inset))
        backward_reason = np.where(forward.valid.ravel(), REASON_VALID, REASON_MASKED).astype(np.uint8)
        backward = correlate_block(sec_f[sec_inner], sec_valid[sec_inner], ref_f, ref_valid, p, backward_reason,
                                   None if centres is None else -centres,
                                   None if sec_nodata is None else sec_nodata[sec_inner], ref_nodata, sparse)
        residual = np.hypot(forward.dx + backward.dx, forward.dy + backward.dy)
        forward.reject(~(np.isfinite(residual) & (residual <= p.forward_backward)), REASON_FORWARD_BACKWARD)
        forward.fb_residual = residual.astype(np.float32)
        forward.blank_invalid()
    return forward


def _any(values: Optional[np.ndarray]) -> bool:
    return values is not None and bool(values.any())


def _grid_size(shape: Tuple[int, int], margin: int, p: Params) -> int:
    """Number of chips of a block whose reference (``shape``) holds them plus ``margin`` px per side."""
    return ((shape[0] - 2 * margin - p.chip) // p.step + 1) * ((shape[1] - 2 * margin - p.chip) // p.step + 1)


def _mark(reason: np.ndarray, failed: np.ndarray, code: int) -> None:
    """Record ``code`` for the cells that fail a test (bool, flat) and have not failed an earlier one."""
    reason[(reason == REASON_VALID) & failed] = code


def _mark_templates(reason: np.ndarray, valid: np.ndarray, nodata: Optional[np.ndarray], p: Params) -> np.ndarray:
    """Record which chips have no data or too few valid pixels (``valid`` / ``nodata``: the
    block's chip area, chip (i, j) at ``[i*step:, j*step:]``; ``nodata`` None = no masking: any
    invalid pixel is too many). Returns the number of invalid pixels per chip (flat)."""
    n = p.chip * p.chip

    invalid = _chip_sums(~valid, p)
    if nodata is None:
        _mark(reason, invalid == n, REASON_NO_DATA)
        _mark(reason, invalid > 0, REASON_FEW_VALID)
    else:
        _mark(reason, (invalid == n) | (_chip_sums(~(valid | nodata), p) > 0), REASON_NO_DATA)
        _mark(reason, n - invalid < p.min_valid_fraction * n, REASON_FEW_VALID)
    return invalid


def _chip_sums(image: np.ndarray, p: Params) -> np.ndarray:
    """Sums of ``image`` over each chip of a block's chip area (flat, row-major)."""
    n_rows = (image.shape[0] - p.chip) // p.step + 1
    n_cols = (image.shape[1] - p.chip) // p.step + 1
    return box_sums(image, p.chip)[::p.step, ::p.step][:n_rows, :n_cols].ravel()


def _filtered(image: np.ndarray, p: Params, nodata: Optional[np.ndarray] = None) -> np.ndarray:
    """Anti-aliasing smoothing (nodata-aware where ``nodata`` is given, :func:`_smoothed_with_nodata`),
    then the pre-filter, in float32 (the images' precision after filtering: a 16-bit DN is kept
    to 1/256)."""
    image = np.asarray(image, np.float32)
    if p.smoothing > 0:
        image = (gaussian_smoothed(image, p.smoothing) if nodata is None
                 else _smoothed_with_nodata(image, nodata, p.smoothing))
    return apply_prefilter(image, p.prefilter, p.prefilter_size)


def _smoothed_with_nodata(image: np.ndarray, nodata: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (``sigma`` px) of an image with ``nodata`` pixels, which it also fills.

    Scattered nodata (a pixel whose neighbourhood is mostly valid, kernel mass of valid pixels
    >= ``_SCATTERED_VALID_MASS``) is first filled with the Gaussian-weighted mean of its valid
    neighbours, then the image is smoothed as usual, so every valid pixel gets the same kernel in
    both images. Next to larger voids the smoothing is normalised over the valid pixels instead
    (void values are unknown, they must not leak in). Measured on the benchmark's ITS_LIVE-shaped
    6 px warp (20 dB noise) with 5 % random nodata in both images: RMSE dx / dy +10 / +12 % over the
    clean case, against +23 / +23 % with the normalised smoothing everywhere; on voids of 8-12 px
    radius both give the normalised numbers."""
    valid_mass = gaussian_smoothed((~nodata).astype(np.float64), sigma)
    total = gaussian_smoothed(np.where(nodata, 0.0, image), sigma)
    normalised = np.where(valid_mass > 1e-3, total / np.maximum(valid_mass, 1e-3), image)
    smoothed = gaussian_smoothed(np.where(nodata, normalised, image), sigma)
    void = nodata & (valid_mass < _SCATTERED_VALID_MASS)
    near_void = gaussian_smoothed(void.astype(np.float64), sigma) > 1e-3
    return np.where(near_void, normalised, smoothed)


def _crop(array: np.ndarray, margin: int) -> np.ndarray:
    return array[margin:array.shape[0] - margin, margin:array.shape[1] - margin] if margin else array


def correlate_block(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                    params: Params, reason: Optional[np.ndarray] = None, centres: Optional[np.ndarray] = None,
                    ref_nodata: Optional[np.ndarray] = None, sec_nodata: Optional[np.ndarray] = None,
                    sparse: bool = False) -> CorrelationResult:
    """Correlate every chip of one block (already pre-filtered).

    ``ref`` holds the block's reference pixels plus ``SPLINE_MARGIN`` pixels
    on every side (its first chip starts at (SPLINE_MARGIN, SPLINE_MARGIN));
    ``sec`` the same area with ``params.halo`` pixels on every side.
    ``reason`` (flat uint8 per chip) holds the codes of chips already rejected (0 = to
    compute); ``centres`` (B, 2) the integer (dx, dy) each chip's search is centred on
    (None = 0; the block's ``apriori_halo`` covers them); ``ref_nodata`` / ``sec_nodata``
    (bool, None = no masking) the invalid pixels inside the images. Offsets are totals.
    """
    p = params
    g = SPLINE_MARGIN
    inner = (slice(g, ref.shape[0] - g), slice(g, ref.shape[1] - g))
    n_rows = (ref.shape[0] - 2 * g - p.chip) // p.step + 1
    n_cols = (ref.shape[1] - 2 * g - p.chip) // p.step + 1
    count = n_rows * n_cols
    n = p.chip * p.chip
    reason = np.zeros(count, np.uint8) if reason is None else reason.copy()

    invalid = _mark_templates(reason, ref_valid[inner], None if ref_nodata is None else ref_nodata[inner], p)

    sec_centred = demeaned(sec, sec_valid)
    sec_invalid_sums = box_sums(~sec_valid, p.chip)
    sweep = centres is None and not sparse and integer_engine(p.chip, p.search, p.step) == "sweep"
    chips = np.arange(count) if sweep else np.flatnonzero(reason == REASON_VALID)
    nodata = dirty = None
    if ref_nodata is not None:
        nodata = Nodata(ref_nodata[inner], sec_nodata, int(np.ceil(p.min_valid_fraction * n - 1e-9)))
        dirty = ((invalid > 0) | _window_has_nodata(sec_nodata, p, n_rows, n_cols, centres)) & (reason == 0)
    volume, template_ok, n_excluded = integer_zncc(
        ref[inner], ref_valid[inner], sec_centred, sec_valid, sec_invalid_sums, p, n_rows, n_cols, chips, sweep,
        centres, nodata, None if dirty is None else dirty[chips])
    peaks = volume_peaks(volume, n_excluded)
    del volume
    index, peak_value, patch, snr, ratio = _scattered(peaks, chips, count)
    computed = np.zeros(count, bool)
    computed[chips] = True
    _mark(reason, computed & ~_scattered_flags(template_ok, chips, count), REASON_LOW_TEXTURE)
    _mark(reason, computed & ~np.isfinite(peak_value), REASON_NO_DATA)
    _mark(reason, computed & ~_scattered_flags(peaks.inside, chips, count), REASON_SEARCH_EDGE)
    if p.min_peak_ratio > 0:
        _mark(reason, computed & ~(ratio >= p.min_peak_ratio), REASON_LOW_PEAK_RATIO)
    ok = reason == REASON_VALID
    fit, curvature, fitted = fit_peaks(patch, ok)
    _mark(reason, ok & ~fitted, REASON_REFINEMENT)
    ok = fitted
    # peaks.index is a (row, column) = (v, u) index into the volume: reversed, it is (dx, dy) + S
    integer_offset = index[:, ::-1] - p.search + (0 if centres is None else centres)
    offset = integer_offset + fit  # (B, 2): (dx, dy)

    strain = None
    # the reference pixels, gradients and secondary spline coefficients every refinement samples: once per block
    inputs = lk_block_inputs(ref, ref_valid, sec_centred) if p.subpixel in ("lk", "affine") and ok.any() else None
    if p.subpixel == "lk":
        offset, peak_value, refined, few = _refine(ref, ref_valid, sec_centred, sec_valid, sec_invalid_sums, offset,
                                                   integer_offset, ok, p, n_rows, n_cols, dirty, inputs)
        _mark(reason, ok & few, REASON_FEW_VALID)
        _mark(reason, ok & ~refined, REASON_REFINEMENT)
        ok = refined
    elif p.subpixel == "affine":
        offset, peak_value, refined, strain = _refine_affine(ref, ref_valid, sec_centred, sec_valid, sec_invalid_sums,
                                                             offset, integer_offset, ok, p, n_rows, n_cols, dirty,
                                                             reason, inputs)
        _mark(reason, ok & ~refined, REASON_REFINEMENT)
        ok = refined
    # smoothing correlates the noise over about 4 pi sigma^2 pixels: fewer independent samples
    sigma = uncertainty(peak_value, curvature, p.chip * p.chip / (1.0 + 4.0 * np.pi * p.smoothing ** 2))

    shape = (n_rows, n_cols)

    def band(values: np.ndarray) -> np.ndarray:
        return np.where(ok, values, np.nan).astype(np.float32).reshape(shape)

    result = CorrelationResult(band(offset[:, 0]), band(offset[:, 1]), band(peak_value), ok.reshape(shape),
                               band(snr), band(ratio), band(sigma), reason=reason.reshape(shape),
                               chip_size=band(np.full(count, float(p.chip))))
    if p.strain_bands and strain is not None:
        for name, values in strain_bands(strain, ok, shape).items():
            setattr(result, name, values)
    return result


def _refine_affine(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                   sec_invalid_sums: np.ndarray, start: np.ndarray, integer_offset: np.ndarray, ok: np.ndarray,
                   p: Params, n_rows: int, n_cols: int, dirty: Optional[np.ndarray], reason: np.ndarray,
                   inputs: tuple) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The affine refinement of the chips ``ok`` without nodata; the ``dirty`` ones (nodata in their
    search window) get the weighted translation Lucas-Kanade of :func:`_refine`, then the weighted
    strain test and affine stage (:func:`.affine.refine_affine_weighted`) on the same pixel weights.
    Chips with too few weighted pixels are marked in ``reason``; ``inputs``: the block's
    ``lk_block_inputs``. Returns offsets, peak ZNCC, validity and the deformation terms (B, 4) px/px."""
    clean = ok if dirty is None else ok & ~dirty
    offset, peak, valid, strain = refine_affine(ref, ref_valid, sec, sec_invalid_sums, sec_valid, start,
                                                integer_offset, clean, p, n_rows, n_cols, inputs)
    if dirty is None or not (ok & dirty).any():
        return offset, peak, valid, strain
    masked = ok & dirty
    w_offset, w_peak, w_valid, few = _refine(ref, ref_valid, sec, sec_valid, sec_invalid_sums, start, integer_offset,
                                             masked, p, n_rows, n_cols, dirty, inputs)
    _mark(reason, masked & few, REASON_FEW_VALID)
    offset[masked], peak[masked], valid[masked] = w_offset[masked], w_peak[masked], w_valid[masked]
    masked &= valid
    a_offset, a_peak, fitted, a_strain = refine_affine_weighted(offset, integer_offset, masked, p, n_cols,
                                                                _validity(ref_valid, sec_valid, p, n_cols), inputs)
    offset[fitted], peak[fitted] = a_offset[fitted], a_peak[fitted]
    strain[ok & dirty] = a_strain[ok & dirty]
    return offset, peak, valid, strain


def _scattered(peaks, chips: np.ndarray, count: int):
    """The integer peaks of the computed ``chips`` placed into arrays of all ``count`` chips
    (index 0, value -inf, patch -inf, SNR and ratio NaN for the others)."""
    if len(chips) == count:
        return peaks.index, peaks.value, peaks.patch, peaks.snr, peaks.ratio
    index = np.zeros((count, 2), peaks.index.dtype)
    value = np.full(count, -np.inf)
    patch = np.full((count, 3, 3), -np.inf)
    snr = np.full(count, np.nan)
    ratio = np.full(count, np.nan)
    index[chips], value[chips], patch[chips], snr[chips], ratio[chips] = (
        peaks.index, peaks.value, peaks.patch, peaks.snr, peaks.ratio)
    return index, value, patch, snr, ratio


def _scattered_flags(flags: np.ndarray, chips: np.ndarray, count: int) -> np.ndarray:
    if len(chips) == count:
        return flags
    out = np.zeros(count, bool)
    out[chips] = flags
    return out


def _window_has_nodata(sec_nodata: np.ndarray, p: Params, n_rows: int, n_cols: int,
                       centres: Optional[np.ndarray]) -> np.ndarray:
    """Chips (flat) whose search window, widened by the spline support, holds secondary nodata."""
    reach = _SUPPORT_REACH
    sums = box_sums(sec_nodata, p.window + 2 * reach)
    first = p.halo - p.search - reach
    chips = np.arange(n_rows * n_cols)
    rows = first + (chips // n_cols) * p.step
    cols = first + (chips % n_cols) * p.step
    if centres is not None:
        rows, cols = rows + centres[:, 1], cols + centres[:, 0]
    return sums[rows, cols] > 0


def _refine(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
            sec_invalid_sums: np.ndarray, start: np.ndarray, integer_offset: np.ndarray, ok: np.ndarray, p: Params,
            n_rows: int, n_cols: int, dirty: Optional[np.ndarray], inputs: tuple
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lucas-Kanade of the chips ``ok``: plain for chips without nodata, weighted for ``dirty`` ones
    (``inputs``: the block's ``lk_block_inputs``).

    A weighted chip is refined with the weights (:func:`_validity`) at its starting offset; when the
    refinement ends nearest to another secondary pixel it is refined once more from there with
    the weights valid at both, and rejected if it ends at a third. Returns the offsets (B, 2),
    peak ZNCC, which chips are valid, and which had too few weighted pixels (< ``_MIN_WEIGHTED_SHARE``).
    """
    few = np.zeros(len(ok), bool)
    plain = ok if dirty is None else ok & ~dirty
    offset, peak, valid = _lucas_kanade(ref, ref_valid, sec, sec_invalid_sums, start, integer_offset, plain, p,
                                        n_rows, n_cols, inputs)
    if dirty is None or not (ok & dirty).any():
        return offset, peak, valid, few
    validity = _validity(ref_valid, sec_valid, p, n_cols)

    def weights(chips: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return validity.at_offsets(chips, offsets, p.halo)

    masked = ok & dirty
    chips = np.flatnonzero(masked)
    few[chips] = weights(chips, start[chips]).sum(axis=(1, 2)) < _MIN_WEIGHTED_SHARE * p.chip * p.chip
    masked &= ~few
    first_offset, first_peak, first_ok = _lucas_kanade(ref, ref_valid, sec, sec_invalid_sums, start, integer_offset,
                                                       masked, p, n_rows, n_cols, inputs, weights)
    moved = first_ok & np.any(_nearest(first_offset) != _nearest(start), axis=1)
    if moved.any():
        def both(chips: np.ndarray, offsets: np.ndarray) -> np.ndarray:
            return weights(chips, offsets) * weights(chips, start[chips])

        again, again_peak, again_ok = _lucas_kanade(ref, ref_valid, sec, sec_invalid_sums, first_offset,
                                                    integer_offset, moved, p, n_rows, n_cols, inputs, both)
        pixel = _nearest(again)
        again_ok &= np.all((pixel == _nearest(start)) | (pixel == _nearest(first_offset)), axis=1)
        first_offset[moved], first_peak[moved], first_ok[moved] = again[moved], again_peak[moved], again_ok[moved]
    offset[masked], peak[masked], valid[masked] = first_offset[masked], first_peak[masked], first_ok[masked]
    return offset, peak, valid, few


def _nearest(offsets: np.ndarray) -> np.ndarray:
    """The integer offsets (B, 2) nearest to ``offsets``: which secondary pixel a sample is nearest to."""
    return np.floor(offsets + 0.5)


def _validity(ref_valid: np.ndarray, sec_valid: np.ndarray, p: Params, n_cols: int) -> PixelValidity:
    """The pixel weights of a block's chips with nodata (valid template pixel, valid nearest secondary
    pixel; scattered nodata holds values filled from its neighbours, see :func:`_smoothed_with_nodata`,
    so the samples next to it stay usable)."""
    g = SPLINE_MARGIN
    return PixelValidity(ref_valid[g:-g, g:-g], sec_valid, p.step, p.chip, n_cols, _MIN_WEIGHTED_SHARE)


def _lucas_kanade(ref, ref_valid, sec, sec_invalid_sums, start, integer_offset, ok, p, n_rows, n_cols, inputs,
                  weights=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``refine_lucas_kanade`` of the chips ``ok`` (with ``weights``, the weighted form)."""
    return refine_lucas_kanade(ref, ref_valid, sec, sec_invalid_sums, start, integer_offset, ok, p, n_rows, n_cols,
                               pixel_weights=weights, inputs=inputs)
