"""Offset tracking: FFT zero-normalised cross-correlation with sub-pixel refinement (public API).

Geometry (REFERENCE §5.1): the chip of output cell (i, j) covers reference
pixels ``[row0 + i*step, row0 + i*step + chip) x [col0 + j*step, col0 + j*step + chip)``
and is centred at pixel-corner coordinates ``(col0 + j*step + chip/2, row0 + i*step + chip/2)``.

Sign convention: ``dx`` is the column offset (+ right) and ``dy`` the row
offset (+ down), in reference pixels: the feature at reference (col, row) is
found at (col + dx, row + dy) in the secondary. Offsets are passed as (dx, dy).

This module is the way in: :func:`correlate_arrays` (two co-registered
arrays -> :class:`CorrelationResult`) and :func:`correlate_files` (two
rasters -> a disparity GeoTIFF written by core.io.RasterWriter, after the
optional coarse-to-fine pyramid). The engine behind them lives in
:mod:`core.offsets.engine` (one role per module: parameters, pixel sources,
pair frames, pyramid, block scheduling, per-block pipeline, integer search,
sub-pixel refinement, quality): smoothing and pre-filters, the texture test,
the integer ZNCC search (per-chip FFT or the displacement sweep of
:mod:`core.offsets.sweep`), the 3x3 Gaussian peak fit and Lucas-Kanade
refinement, the forward-backward check and the normalised median test.
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import replace
from typing import Optional, Sequence, Tuple

import numpy as np
from affine import Affine
from rasterio.windows import Window

from ..errors import UserInputError
from ..io import RasterWriter, open_raster, require_content, require_crs, require_single_band
from .apriori import OffsetField, apriori_field, block_apriori
from .disparity import (BASE_DESCRIPTIONS, CHIP_SIZE, DISPARITY_STYLE, FB_RESIDUAL, NO_MATCH_HINT, PEAK_RATIO,
                        REASON, RejectionTally, SNR, STRAIN_DESCRIPTIONS, TAG_DT_DAYS, UNCERTAINTY, disparity_tags,
                        reference_pixel_transform)
from .engine.affine import STRAIN_TERMS
from .engine.blocks import correlate_into_result, run_blocks
from .engine.frame import PairFrame, geometry_cell_mask, pair_frame, require_mask_overlap
from .engine.params import (DEFAULT_CHIP_LADDER, DEFAULT_COHERENCE, DEFAULT_MEDIAN_TEST, DEFAULT_MIN_PEAK_RATIO,
                            DEFAULT_MIN_TEXTURE, DEFAULT_MIN_VALID_FRACTION, DEFAULT_PREFILTER, DEFAULT_SMOOTHING,
                            DEFAULT_SUBPIXEL, SUBPIXEL_METHODS,
                            CorrelationResult, Params, check_parameters, check_pyramid_levels, grid_shape)
from .engine.pyramid import COARSE_PROGRESS_SHARE, PYRAMID_REFINE_SEARCH, coarse_to_fine, progress_range
from .engine.quality import estimate_noise, normalised_median_test, with_noise
from .engine.sources import ArraySource, PixelSource, RasterSource
from .summary import CorrelationSummary, SummaryCollector

__all__ = ["correlate_arrays", "correlate_files", "CorrelationResult", "QUALITY_DESCRIPTIONS", "SUBPIXEL_METHODS",
           "DEFAULT_SUBPIXEL", "DEFAULT_PREFILTER",
           "DEFAULT_SMOOTHING", "DEFAULT_MIN_TEXTURE", "DEFAULT_MEDIAN_TEST", "DEFAULT_MIN_VALID_FRACTION",
           "DEFAULT_CHIP_LADDER", "DEFAULT_COHERENCE", "DEFAULT_MIN_PEAK_RATIO", "estimate_noise",
           "normalised_median_test", "CorrelationSummary"]

#: Quality bands after the four base bands (forward-backward only when requested).
QUALITY_DESCRIPTIONS = (SNR, PEAK_RATIO, UNCERTAINTY)
#: Bands after the quality bands (and the forward-backward band): why a cell is invalid, the chip used.
DIAGNOSTIC_DESCRIPTIONS = (REASON, CHIP_SIZE)

_OPTIONS_DOC = """
    Options (defaults suit PlanetScope landslides): ``prefilter`` one of
    ``core.offsets.prefilters.PREFILTERS`` with ``prefilter_size`` (0 = the filter's
    default); ``min_texture``: chips whose reference template has a standard
    deviation below ``min_texture`` x the image noise (estimated once from the
    reference, see :func:`estimate_noise`) are invalid (0 = off): water and
    featureless areas; ``median_test``: normalised median test threshold on
    the 8 neighbouring cells (0 = off); ``forward_backward``: when > 0 also
    correlates secondary -> reference and invalidates cells whose residual
    |forward + backward| exceeds it (px); ``smoothing``: Gaussian sigma (px)
    applied to both images before matching (0 = off): it removes the
    near-Nyquist detail that no interpolator reproduces at fractional shifts,
    the source of pixel-locking; ``min_valid_fraction`` (0-1]: chips with nodata
    (invalid pixels inside the images) are correlated on their valid pixels
    (masked ZNCC, weighted refinement) when at least this fraction of the chip,
    and of its overlap with each secondary footprint, is valid (1 = chips
    touching nodata are invalid); ``chip_ladder``: where a chip fails a per-chip
    test it is retried with 2x, ... 2**chip_ladder x larger chips on the same
    centre (0 = off); ``coherence``: displacement coherence test tolerance (px,
    0 = off): cells agreeing (|d dx|, |d dy| <= it) with fewer than 15 % of their
    valid neighbours within about two chips are invalid (clustered outliers);
    ``min_peak_ratio``: cells whose best / second-best ZNCC peak ratio is below
    it are invalid (0 = off). ``result.reason`` records why each invalid cell
    was rejected (``core.offsets.disparity.REASONS``). ``strain_bands``
    (``subpixel="affine"`` only): also return / write the deformation terms
    fitted inside each chip, d(dx)/dx, d(dx)/dy, d(dy)/dx, d(dy)/dy in px/px
    (x + right, y + down; see :mod:`core.offsets.engine.affine`).
"""


def correlate_arrays(ref: np.ndarray, sec: np.ndarray, chip_size: int, search_range: int, step: int,
                     ref_valid: Optional[np.ndarray] = None, sec_valid: Optional[np.ndarray] = None,
                     subpixel: str = DEFAULT_SUBPIXEL, progress=None, is_canceled=None,
                     prefilter: str = DEFAULT_PREFILTER,
                     prefilter_size: float = 0.0, min_texture: float = DEFAULT_MIN_TEXTURE,
                     median_test: float = DEFAULT_MEDIAN_TEST, forward_backward: float = 0.0,
                     cell_mask: Optional[np.ndarray] = None,
                     smoothing: float = DEFAULT_SMOOTHING,
                     apriori_offsets: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                     min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
                     chip_ladder: int = DEFAULT_CHIP_LADDER, coherence: float = DEFAULT_COHERENCE,
                     min_peak_ratio: float = DEFAULT_MIN_PEAK_RATIO, strain_bands: bool = False) -> CorrelationResult:
    """Correlate two co-registered 2-D images (same shape, same pixel grid).

    Cell (i, j) covers ``ref[i*step : i*step+chip, j*step : j*step+chip]``;
    ``n_rows = (H - chip)//step + 1`` and likewise for columns. ``ref_valid`` and
    ``sec_valid`` (bool, same shape) flag usable pixels; non-finite values are
    always invalid. ``cell_mask`` (bool, grid shape) limits the cells computed.
    ``apriori_offsets`` = (dx, dy) arrays of the grid shape (px, NaN = unknown)
    centre each cell's search on the expected offset (large motions); the
    returned offsets are totals. Offsets are in pixels, dx + right, dy + down
    (see the module docstring).
    """
    params = check_parameters(chip_size, search_range, step, subpixel, prefilter, prefilter_size,
                              min_texture, median_test, forward_backward, smoothing, min_valid_fraction,
                              chip_ladder, coherence, min_peak_ratio, strain_bands)
    ref = np.asarray(ref)
    sec = np.asarray(sec)
    if ref.ndim != 2 or ref.shape != sec.shape:
        raise UserInputError(
            f"The reference and secondary arrays must be 2-D with the same shape; got {ref.shape} "
            f"and {sec.shape}. Resample both onto one pixel grid first.")
    shape = grid_shape(ref.shape[0], ref.shape[1], params)
    ref_source = ArraySource(ref, ref_valid)
    sec_source = ArraySource(sec, sec_valid)
    params = with_noise(params, ref_source, ref.shape[0], ref.shape[1])
    mask = None
    if cell_mask is not None:
        cell_mask = np.asarray(cell_mask, bool)
        if cell_mask.shape != shape:
            raise UserInputError(f"The cell mask must have the grid shape {shape}; got {cell_mask.shape}.")
        mask = lambda rows, cols: cell_mask[rows, cols]  # noqa: E731
    apriori = None
    if apriori_offsets is not None:
        expected_dx, expected_dy = (np.asarray(values, np.float64) for values in apriori_offsets)
        if expected_dx.shape != shape or expected_dy.shape != shape:
            raise UserInputError(f"The a-priori offsets must have the grid shape {shape}; "
                                 f"got {expected_dx.shape} and {expected_dy.shape}.")
        apriori = lambda rows, cols: (expected_dx[rows, cols], expected_dy[rows, cols])  # noqa: E731
    return correlate_into_result(ref_source, sec_source, shape, params, progress, is_canceled, mask, apriori)


correlate_arrays.__doc__ += _OPTIONS_DOC


def correlate_files(ref_path: str, sec_path: str, out_path: str, chip_size: int = 32, search_range: int = 8,
                    step: int = 4, subpixel: str = DEFAULT_SUBPIXEL, tags: Optional[dict] = None,
                    progress=None, is_canceled=None, prefilter: str = DEFAULT_PREFILTER, prefilter_size: float = 0.0,
                    min_texture: float = DEFAULT_MIN_TEXTURE, median_test: float = DEFAULT_MEDIAN_TEST,
                    forward_backward: float = 0.0, mask_geometries: Optional[Sequence[dict]] = None,
                    smoothing: float = DEFAULT_SMOOTHING, apriori=None, apriori_units: str = "pixels",
                    apriori_dt_days: Optional[float] = None, pyramid_levels: int = 0,
                    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION, chip_ladder: int = DEFAULT_CHIP_LADDER,
                    coherence: float = DEFAULT_COHERENCE, min_peak_ratio: float = DEFAULT_MIN_PEAK_RATIO,
                    strain_bands: bool = False) -> CorrelationSummary:
    """Correlate two single-band rasters on a common pixel grid into a disparity GeoTIFF.

    The rasters must share CRS and pixel size and be aligned to whole pixels;
    with different extents their overlap is used. The output (REFERENCE §5.1)
    has bands dx, dy (reference px, + right / + down), valid (1/0) and peak
    ZNCC, then the quality bands SNR, peak ratio, uncertainty (px) and, with
    ``forward_backward``, the forward-backward residual (px), NaN where
    invalid; then the rejection reason (code, 0 = valid, see
    ``core.offsets.disparity.REASONS``) and the chip size used (px, NaN where
    invalid), and with ``strain_bands`` the four deformation bands (px/px); on
    ``grid_transform(ref.transform, col0, row0, chip_size,
    step)`` where (col0, row0) is the overlap's first reference pixel.
    ``mask_geometries`` (GeoJSON geometries in the reference CRS) limits the
    output to cells whose chip centre lies inside them; blocks without any
    such cell are skipped. ``tags`` are written as given after the standard
    disparity tags. Returns a :class:`CorrelationSummary` of the written file (its ``path``, the
    cells, the valid share, the median offsets in px and CRS units, the run time; its
    ``describe()`` is the run's log line); on any failure nothing is written.

    Large motions (``core.offsets.apriori``): ``apriori`` (a two-band raster path or
    an ``OffsetField``) centres each chip's search on the expected offset:
    ``apriori_units`` "pixels" (dx, dy in reference px) or "m/yr" (vx, vy
    along the raster CRS axes, y up, over ``apriori_dt_days``, default the
    dt tag); NaN = search around 0. ``pyramid_levels`` > 0 searches
    +-``search_range`` px at 1/2**levels resolution, then refines level by
    level (``core.offsets.engine.pyramid``; the full resolution searches
    +-``PYRAMID_REFINE_SEARCH`` px). The output dx, dy are total offsets
    (a-priori + measured).
    """
    started = time.perf_counter()
    params = check_parameters(chip_size, search_range, step, subpixel, prefilter, prefilter_size,
                              min_texture, median_test, forward_backward, smoothing, min_valid_fraction,
                              chip_ladder, coherence, min_peak_ratio, strain_bands)
    levels = check_pyramid_levels(pyramid_levels)
    full = replace(params, search=PYRAMID_REFINE_SEARCH) if levels else params
    out_tags = dict(tags or {})
    with open_raster(ref_path) as ref_ds, open_raster(sec_path) as sec_ds:
        for ds, what in ((ref_ds, "reference image"), (sec_ds, "secondary image")):
            require_crs(ds, what)
            require_single_band(ds, what)
        ref, sec = RasterSource(ref_ds), RasterSource(sec_ds)
        frame = pair_frame(ref, sec, full)
        for ds, what in ((ref_ds, "reference image"), (sec_ds, "secondary image")):
            require_content(ds, what)
        if mask_geometries is not None:
            require_mask_overlap(mask_geometries, frame.grid)
        if levels:
            _require_coarse_overlap(frame, levels, params)
        field = apriori
        if apriori is not None and not hasattr(apriori, "sample"):
            dt_days = apriori_dt_days if apriori_dt_days else _tag_dt_days(tags)
            field = apriori_field(apriori, apriori_units, ref_ds.crs, ref_ds.transform, dt_days)
            out_tags.update(SM_APRIORI=os.path.basename(str(apriori)), SM_APRIORI_UNITS=apriori_units)
        level_progress = progress
        if levels:
            out_tags.update(SM_PYRAMID_LEVELS=str(levels), SM_PYRAMID_TOP_SEARCH_RANGE=str(search_range))
            coarse = replace(params, subpixel="gaussian", forward_backward=0.0, chip_ladder=0, strain_bands=False)
            solve = functools.partial(_solve_level, params=coarse, mask_geometries=mask_geometries)
            field = coarse_to_fine(ref, sec, solve, levels, search_range, field,
                                   os.path.dirname(os.path.abspath(out_path)), progress, is_canceled)
            done = 100.0 * COARSE_PROGRESS_SHARE
            level_progress = progress_range(progress, done, 100.0 - done)
        collector = SummaryCollector(frame.shape[0] * frame.shape[1],
                                     reference_pixel_transform(frame.grid.transform, full.step), ref_ds.crs)
        _write_disparity(frame, full, out_path, out_tags, level_progress, is_canceled, mask_geometries, field,
                         collector)
    return collector.summary(out_path, time.perf_counter() - started)


correlate_files.__doc__ += _OPTIONS_DOC


def _require_coarse_overlap(frame: PairFrame, levels: int, params: Params) -> None:
    """Refuse a pyramid whose coarsest level cannot hold one chip and its search window; the message
    quotes the full-resolution overlap the user knows."""
    factor = 2 ** levels
    if min(frame.width, frame.height) // factor >= params.window:
        return
    raise UserInputError(
        f"The images overlap by only {frame.width} x {frame.height} px; with {levels} pyramid level(s) the "
        f"coarsest level (1/{factor} resolution) holds {frame.width // factor} x {frame.height // factor} px, "
        f"but chip size + 2 x search range = {params.window} px is needed there in each direction. Use fewer "
        "pyramid levels, images that overlap more, or a smaller chip size or search range.")


def _tag_dt_days(tags: Optional[dict]) -> Optional[float]:
    """The pair's time separation (days) from its disparity tags, None when absent."""
    try:
        return float((tags or {})[TAG_DT_DAYS])
    except (KeyError, TypeError, ValueError):
        return None


def _level_inputs(frame: PairFrame, params: Params, mask_geometries: Optional[Sequence[dict]],
                  apriori: Optional[OffsetField]):
    """A level's parameters with the reference noise, its cell mask and block a-priori callables."""
    params = with_noise(params, frame.ref, frame.height, frame.width)
    transform = frame.grid.transform
    mask = geometry_cell_mask(mask_geometries, transform) if mask_geometries is not None else None
    expected = block_apriori(apriori, transform) if apriori is not None else None
    return params, mask, expected


def _solve_level(ref: PixelSource, sec: PixelSource, search_range: int, apriori: Optional[OffsetField],
                 progress, is_canceled, *, params: Params, mask_geometries: Optional[Sequence[dict]]
                 ) -> Tuple[CorrelationResult, Affine]:
    """One pyramid level in memory (the pyramid driver's solver): result and output grid transform."""
    level = replace(params, search=int(search_range))
    frame = pair_frame(ref, sec, level)
    level, mask, expected = _level_inputs(frame, level, mask_geometries, apriori)
    result = correlate_into_result(frame.ref, frame.sec, frame.shape, level, progress, is_canceled, mask,
                                   expected)
    return result, frame.grid.transform


def _write_disparity(frame: PairFrame, params: Params, out_path: str, tags: dict, progress, is_canceled,
                     mask_geometries: Optional[Sequence[dict]], apriori: Optional[OffsetField],
                     collector: SummaryCollector) -> None:
    """The full-resolution level, correlated block by block into the disparity GeoTIFF; the
    written offsets go to ``collector`` too."""
    params, mask, expected = _level_inputs(frame, params, mask_geometries, apriori)
    out_tags = disparity_tags(params.step, chip_size=params.chip, search_range=params.search,
                              subpixel=params.subpixel, prefilter=params.prefilter,
                              prefilter_size=params.prefilter_size, min_texture=params.min_texture,
                              median_test=params.median_test, forward_backward=params.forward_backward,
                              smoothing=params.smoothing, noise_dn=f"{params.noise:.6g}",
                              min_valid_fraction=params.min_valid_fraction, chip_ladder=params.chip_ladder,
                              coherence=params.coherence, min_peak_ratio=params.min_peak_ratio,
                              strain_bands=str(params.strain_bands).lower() if params.strain_bands else None)
    out_tags.update({str(key): str(value) for key, value in tags.items() if value is not None})
    rejections = RejectionTally()
    with RasterWriter(out_path, frame.grid, _descriptions(params), tags=out_tags, style=DISPARITY_STYLE,
                      require_valid=NO_MATCH_HINT) as out:

        def write(rows: slice, cols: slice, block: CorrelationResult) -> None:
            window = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
            for index, band in enumerate(_output_bands(block, params), start=1):
                out.write(band, index, window=window)
            collector.add(block.dx, block.dy, block.valid)
            rejections.add(block.reason)

        run_blocks(frame.ref, frame.sec, frame.grid.height, frame.grid.width, params, write, progress,
                   is_canceled, mask, expected)
        out.require_valid = rejections.hint()  # an empty output says why every chip failed


def _descriptions(params: Params) -> Tuple[str, ...]:
    extra = (FB_RESIDUAL,) if params.forward_backward > 0 else ()
    strain = STRAIN_DESCRIPTIONS if params.strain_bands else ()
    return BASE_DESCRIPTIONS + QUALITY_DESCRIPTIONS + extra + DIAGNOSTIC_DESCRIPTIONS + strain


def _output_bands(block: CorrelationResult, params: Params):
    bands = [block.dx, block.dy, block.valid.astype(np.float32), block.peak, block.snr, block.peak_ratio,
             block.sigma]
    if params.forward_backward > 0:
        bands.append(block.fb_residual)
    bands += [block.reason.astype(np.float32), block.chip_size]
    if params.strain_bands:
        bands.extend(getattr(block, name) for name in STRAIN_TERMS)
    return bands
