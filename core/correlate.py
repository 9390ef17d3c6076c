"""Offset tracking: FFT zero-normalised cross-correlation with sub-pixel refinement.

Geometry (REFERENCE §5.1): the chip of output cell (i, j) covers reference
pixels ``[row0 + i*step, row0 + i*step + chip) x [col0 + j*step, col0 + j*step + chip)``
and is centred at pixel-corner coordinates ``(col0 + j*step + chip/2, row0 + i*step + chip/2)``.

Sign convention: ``dx`` is the column offset (+ right) and ``dy`` the row
offset (+ down), in reference pixels: the feature at reference (col, row) is
found at (col + dx, row + dy) in the secondary.

Engine, per block of chips:

0. Preparation: an anti-aliasing Gaussian (``smoothing``, default sigma 0.8 px)
   and an optional pre-filter (core.prefilters: Wallis, Gaussian high-pass,
   Laplacian of Gaussian) on both images; chips whose raw reference standard
   deviation is below ``min_texture`` x the image noise (Immerkaer estimate,
   once per image) are not matched: water and featureless areas come out invalid.
1. Integer search (Lewis 1995): the zero-mean, unit-norm template is
   cross-correlated with the search window (chip + 2 * search_range) by batched
   real FFTs, or, when chips overlap enough for it to be cheaper, by the
   displacement sweep of core.sweep (one product image per integer offset,
   box-summed for all chips at once; same values); the denominator comes from
   float64 summed-area tables of the secondary and its square. The result is a
   float32 ZNCC volume with the chips on its last axis, reduced by core.peaks.
   Positions whose footprint touches an invalid
   secondary pixel are excluded; a peak on the border of the search range is
   rejected (the true offset may lie beyond it). Quality: SNR (peak / mean
   |ZNCC|), peak ratio (best / second-best peak) and a 1-sigma uncertainty from
   the peak value and curvature.
2. Sub-pixel: a 3x3 Gaussian (log-quadratic) peak fit, then, for
   ``subpixel="lk"``, inverse-compositional Lucas-Kanade translation refinement
   with a gain and bias term (so brightness changes do not bias the offset),
   sampling a quintic-spline model of the secondary (``ndimage.spline_filter``
   once per block; each iteration evaluates the spline for all chips of the
   block at once, with the separable form of ``map_coordinates(order=5,
   prefilter=False)`` that a single shift per chip allows).
3. Outliers: optional forward-backward check (secondary -> reference on the
   same cells), then the normalised median test on full-width strips of cells
   with one row of context above and below.

Images are processed in blocks of output cells (reference rows/columns plus a
margin, secondary plus the search halo), two blocks at a time in threads (numpy,
scipy and OpenCV release the GIL), Lucas-Kanade ``_LK_CHUNK`` chips at a time, so
memory stays bounded (a few hundred MB whatever the image size); the block
layout changes only the float32 rounding of the correlation products (< 1e-4 px).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
import scipy.fft
from affine import Affine
from rasterio.windows import Window
from scipy import ndimage

from .disparity import (BASE_DESCRIPTIONS, FB_RESIDUAL, PEAK_RATIO, SNR, UNCERTAINTY, disparity_tags,
                        grid_transform)
from .errors import UserInputError, check_canceled
from .prefilters import apply_prefilter, check_prefilter, gaussian_smoothed, prefilter_margin
from .raster_io import (FLOAT_GTIFF_PROFILE, atomic_output, open_raster, require_crs,
                        require_single_band, set_band_descriptions, valid_mask_from_nodata)
from .peaks import EXCLUDED, volume_peaks
from .sweep import FLAT_RELATIVE_VARIANCE, box_sums, integer_engine, single_threaded_opencv, sweep_volume

SUBPIXEL_METHODS = ("lk", "gaussian")

#: Working-memory budget of one block of chips (bytes); the block size follows from it.
_BLOCK_MEMORY_BYTES = 120_000_000
#: Extra rows/columns read around a block (reference) and its search windows (secondary)
#: so the quintic-spline prefilter's boundary effect (decaying as 0.431**distance) is
#: negligible where sampled: results do not depend on the block layout.
_SPLINE_MARGIN = 16
#: Order of the B-spline that models the secondary (quintic: its interpolation bias, which
#: depends on the fractional shift and causes pixel-locking, is far below the cubic's).
_SPLINE_ORDER = 5
#: Blocks computed at once (numpy/scipy release the GIL), and FFT threads per block.
_THREADS = max(1, min(2, os.cpu_count() or 1))
_FFT_WORKERS = max(1, (os.cpu_count() or 1) // _THREADS)
_LK_MAX_ITERATIONS = 6
#: Chips refined together by Lucas-Kanade (its per-chip stacks take ~120 x chip^2 bytes).
_LK_CHUNK = 512
#: Iterations stop once the update is below this (px); against 1e-3 the bench RMSE moves < 1e-4 px
#: with 18 % fewer resamplings.
_LK_TOLERANCE_PX = 3e-3
#: A refinement still moving by more than this after the last iteration has not converged.
_LK_NOT_CONVERGED_PX = 0.05
_LK_MAX_DEPARTURE_PX = 1.5
#: Smallest eigenvalue ratio of the LK translation Hessian before it counts as singular.
_SINGULAR_EIGEN_RATIO = 1e-6
#: Default anti-aliasing Gaussian sigma (px) applied to both images before matching.
DEFAULT_SMOOTHING = 0.8
#: Default minimum template texture: standard deviation / image noise (see ``estimate_noise``).
DEFAULT_MIN_TEXTURE = 3.0
#: Default normalised median test threshold (Westerweel & Scarano 2005) and its epsilon (px).
DEFAULT_MEDIAN_TEST = 3.0
_MEDIAN_EPSILON_PX = 0.1
#: Quality bands after the four base bands (forward-backward only when requested).
QUALITY_DESCRIPTIONS = (SNR, PEAK_RATIO, UNCERTAINTY)


@dataclass
class CorrelationResult:
    """Offsets on the chip grid: float32 arrays, NaN where ``valid`` is False.

    dx: column offset in reference pixels (+ right); dy: row offset (+ down);
    peak: ZNCC at the matched position (-1..1); valid: bool.
    Quality (NaN where invalid): snr = peak / mean |ZNCC| over the search
    surface; peak_ratio = best / second-best ZNCC peak (more than 2 px away,
    capped at 100); sigma = 1-sigma uncertainty of the offset vector in px,
    sqrt(sx^2 + sy^2) with s^2 = 2 (1 - peak) / (n * curvature) per axis
    (n chip pixels, curvature of the ZNCC peak per px^2); fb_residual =
    |forward + backward offset| in px (None unless forward-backward is on).
    """

    dx: np.ndarray
    dy: np.ndarray
    peak: np.ndarray
    valid: np.ndarray
    snr: Optional[np.ndarray] = None
    peak_ratio: Optional[np.ndarray] = None
    sigma: Optional[np.ndarray] = None
    fb_residual: Optional[np.ndarray] = None

    def arrays(self) -> dict:
        """The fields that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class _Params:
    chip: int
    search: int
    step: int
    subpixel: str
    prefilter: str = "none"
    prefilter_size: float = 0.0
    min_texture: float = 0.0
    median_test: float = 0.0
    forward_backward: float = 0.0
    noise: float = 0.0
    smoothing: float = 0.0
    #: Largest |a-priori search centre| (px) of a block: widens the secondary halo.
    apriori_halo: int = 0

    @property
    def filter_margin(self) -> int:
        smoothing = int(np.ceil(4.0 * self.smoothing)) + 1 if self.smoothing > 0 else 0
        return prefilter_margin(self.prefilter, self.prefilter_size) + smoothing

    @property
    def window(self) -> int:
        """Side of the search window in pixels."""
        return self.chip + 2 * self.search

    @property
    def halo(self) -> int:
        """Secondary pixels read on each side of a block's reference pixels."""
        return self.search + self.apriori_halo + _SPLINE_MARGIN


# --------------------------------------------------------------------------- public API


_OPTIONS_DOC = """
    Options (defaults suit PlanetScope landslides): ``prefilter`` one of
    ``core.prefilters.PREFILTERS`` with ``prefilter_size`` (0 = the filter's
    default); ``min_texture``: chips whose reference template has a standard
    deviation below ``min_texture`` x the image noise (estimated once from the
    reference, see :func:`estimate_noise`) are invalid (0 = off): water and
    featureless areas; ``median_test``: normalised median test threshold on
    the 8 neighbouring cells (0 = off); ``forward_backward``: when > 0 also
    correlates secondary -> reference and invalidates cells whose residual
    |forward + backward| exceeds it (px); ``smoothing``: Gaussian sigma (px)
    applied to both images before matching (0 = off): it removes the
    near-Nyquist detail that no interpolator reproduces at fractional shifts,
    the source of pixel-locking.
"""


def correlate_arrays(ref: np.ndarray, sec: np.ndarray, chip_size: int, search_range: int, step: int,
                     ref_valid: Optional[np.ndarray] = None, sec_valid: Optional[np.ndarray] = None,
                     subpixel: str = "lk", progress=None, is_canceled=None, prefilter: str = "none",
                     prefilter_size: float = 0.0, min_texture: float = DEFAULT_MIN_TEXTURE,
                     median_test: float = DEFAULT_MEDIAN_TEST, forward_backward: float = 0.0,
                     cell_mask: Optional[np.ndarray] = None,
                     smoothing: float = DEFAULT_SMOOTHING,
                     apriori_offsets: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> CorrelationResult:
    """Correlate two co-registered 2-D images (same shape, same pixel grid).

    Cell (i, j) covers ``ref[i*step : i*step+chip, j*step : j*step+chip]``;
    ``n_rows = (H - chip)//step + 1`` and likewise for columns. ``ref_valid`` and
    ``sec_valid`` (bool, same shape) flag usable pixels; non-finite values are
    always invalid. ``cell_mask`` (bool, grid shape) limits the cells computed.
    ``apriori_offsets`` = (dy, dx) arrays of the grid shape (px, NaN = unknown)
    centre each cell's search on the expected offset (large motions); the
    returned offsets are totals. Offsets are in pixels, dx + right, dy + down
    (see the module docstring).
    """
    params = _check_parameters(chip_size, search_range, step, subpixel, prefilter, prefilter_size,
                               min_texture, median_test, forward_backward, smoothing)
    ref = np.asarray(ref)
    sec = np.asarray(sec)
    if ref.ndim != 2 or ref.shape != sec.shape:
        raise UserInputError(
            f"The reference and secondary arrays must be 2-D with the same shape; got {ref.shape} "
            f"and {sec.shape}. Resample both onto one pixel grid first.")
    n_rows, n_cols = _grid_shape(ref.shape[0], ref.shape[1], params)
    ref_source = _ArraySource(ref, ref_valid)
    sec_source = _ArraySource(sec, sec_valid)
    params = _with_noise(params, ref_source, ref.shape[0], ref.shape[1])
    result = _empty_result((n_rows, n_cols), params)

    def store(rows: slice, cols: slice, block: CorrelationResult) -> None:
        for name, values in block.arrays().items():
            getattr(result, name)[rows, cols] = values

    mask = None
    if cell_mask is not None:
        cell_mask = np.asarray(cell_mask, bool)
        if cell_mask.shape != (n_rows, n_cols):
            raise UserInputError(f"The cell mask must have the grid shape {(n_rows, n_cols)}; "
                                 f"got {cell_mask.shape}.")
        mask = lambda rows, cols: cell_mask[rows, cols]  # noqa: E731
    apriori = None
    if apriori_offsets is not None:
        expected_dy, expected_dx = (np.asarray(values, np.float64) for values in apriori_offsets)
        if expected_dy.shape != (n_rows, n_cols) or expected_dx.shape != (n_rows, n_cols):
            raise UserInputError(f"The a-priori offsets must have the grid shape {(n_rows, n_cols)}; "
                                 f"got {expected_dy.shape} and {expected_dx.shape}.")
        apriori = lambda rows, cols: (expected_dy[rows, cols], expected_dx[rows, cols])  # noqa: E731
    _run_blocks(ref_source, sec_source, n_rows, n_cols, params, store, progress, is_canceled, mask, apriori)
    return result


correlate_arrays.__doc__ += _OPTIONS_DOC


def correlate_files(ref_path: str, sec_path: str, out_path: str, chip_size: int = 32, search_range: int = 8,
                    step: int = 4, subpixel: str = "lk", tags: Optional[dict] = None,
                    progress=None, is_canceled=None, prefilter: str = "none", prefilter_size: float = 0.0,
                    min_texture: float = DEFAULT_MIN_TEXTURE, median_test: float = DEFAULT_MEDIAN_TEST,
                    forward_backward: float = 0.0, mask_geometries: Optional[Sequence[dict]] = None,
                    smoothing: float = DEFAULT_SMOOTHING, apriori=None, apriori_units: str = "pixels",
                    apriori_dt_days: Optional[float] = None, pyramid_levels: int = 0) -> str:
    """Correlate two single-band rasters on a common pixel grid into a disparity GeoTIFF.

    The rasters must share CRS and pixel size and be aligned to whole pixels;
    with different extents their overlap is used. The output (REFERENCE §5.1)
    has bands dx, dy (reference px, + right / + down), valid (1/0) and peak
    ZNCC, then the quality bands SNR, peak ratio, uncertainty (px) and, with
    ``forward_backward``, the forward-backward residual (px); NaN where
    invalid; on ``grid_transform(ref.transform, col0, row0, chip_size,
    step)`` where (col0, row0) is the overlap's first reference pixel.
    ``mask_geometries`` (GeoJSON geometries in the reference CRS) limits the
    output to cells whose chip centre lies inside them; blocks without any
    such cell are skipped. ``tags`` are written as given after the standard
    disparity tags. Returns ``out_path``.

    Large motions (``core.apriori``): ``apriori`` (a two-band raster path or
    an ``OffsetField``) centres each chip's search on the expected offset:
    ``apriori_units`` "pixels" (dx, dy in reference px) or "m/yr" (vx, vy
    along the raster CRS axes, y up, over ``apriori_dt_days``, default the
    dt tag); NaN = search around 0. ``pyramid_levels`` > 0 searches
    +-``search_range`` px at 1/2**levels resolution, then refines level by
    level. The output dx, dy are total offsets (a-priori + measured).
    """
    params = _check_parameters(chip_size, search_range, step, subpixel, prefilter, prefilter_size,
                               min_texture, median_test, forward_backward, smoothing)
    if pyramid_levels or (apriori is not None and not hasattr(apriori, "sample")):
        from .apriori import apriori_field, correlate_pyramid
        with open_raster(ref_path) as ref_ds:
            dt_days = apriori_dt_days if apriori_dt_days else _tag_dt_days(tags)
            field = apriori_field(apriori, apriori_units, ref_ds.crs, ref_ds.transform, dt_days)
        settings = dict(chip_size=chip_size, step=step, subpixel=subpixel, tags=tags, prefilter=prefilter,
                        prefilter_size=prefilter_size, min_texture=min_texture, median_test=median_test,
                        forward_backward=forward_backward, mask_geometries=mask_geometries,
                        smoothing=smoothing)
        if apriori is not None and field is not None and not hasattr(apriori, "sample"):
            settings["tags"] = dict(tags or {}, SM_APRIORI=os.path.basename(str(apriori)),
                                    SM_APRIORI_UNITS=apriori_units)
        if pyramid_levels:
            settings["tags"] = dict(settings["tags"] or {}, SM_PYRAMID_LEVELS=str(pyramid_levels),
                                    SM_PYRAMID_TOP_SEARCH_RANGE=str(search_range))
        return correlate_pyramid(ref_path, sec_path, out_path, pyramid_levels, search_range, correlate_files,
                                 progress, is_canceled, field, **settings)
    with open_raster(ref_path) as ref_ds, open_raster(sec_path) as sec_ds:
        for ds, what in ((ref_ds, "reference image"), (sec_ds, "secondary image")):
            require_crs(ds, what)
            require_single_band(ds, what)
        _require_common_grid(ref_ds, sec_ds)
        col_off, row_off = _secondary_offset(ref_ds, sec_ds)
        col0, row0, width, height = _overlap(ref_ds, sec_ds, col_off, row_off, params)
        n_rows, n_cols = _grid_shape(height, width, params)
        ref_source = _RasterSource(ref_ds, row0, col0)
        sec_source = _RasterSource(sec_ds, row0 - row_off, col0 - col_off)
        params = _with_noise(params, ref_source, height, width)
        descriptions = _descriptions(params)
        transform = grid_transform(ref_ds.transform, col0, row0, params.chip, params.step)
        profile = dict(FLOAT_GTIFF_PROFILE, count=len(descriptions), width=n_cols, height=n_rows,
                       crs=ref_ds.crs, transform=transform)
        out_tags = disparity_tags(params.step, chip_size=params.chip, search_range=params.search,
                                  subpixel=params.subpixel, prefilter=params.prefilter,
                                  prefilter_size=params.prefilter_size, min_texture=params.min_texture,
                                  median_test=params.median_test, forward_backward=params.forward_backward,
                                  smoothing=params.smoothing,
                                  noise_dn=f"{params.noise:.6g}")
        out_tags.update({str(key): str(value) for key, value in (tags or {}).items() if value is not None})
        mask = _geometry_cell_mask(mask_geometries, transform) if mask_geometries is not None else None
        if apriori is not None:
            from .apriori import block_apriori
            apriori = block_apriori(apriori, transform)
        with atomic_output(out_path) as tmp, rasterio.open(tmp, "w", **profile) as out:
            set_band_descriptions(out, descriptions)
            out.update_tags(**out_tags)

            def write(rows: slice, cols: slice, block: CorrelationResult) -> None:
                window = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
                for index, band in enumerate(_output_bands(block, params), start=1):
                    out.write(band, index, window=window)

            _run_blocks(ref_source, sec_source, n_rows, n_cols, params, write, progress, is_canceled, mask,
                        apriori)
    return out_path


def _tag_dt_days(tags: Optional[dict]) -> Optional[float]:
    """The pair's time separation (days) from its disparity tags, None when absent."""
    from .disparity import TAG_DT_DAYS
    try:
        return float((tags or {})[TAG_DT_DAYS])
    except (KeyError, TypeError, ValueError):
        return None


correlate_files.__doc__ += _OPTIONS_DOC


def _descriptions(params: "_Params") -> Tuple[str, ...]:
    extra = (FB_RESIDUAL,) if params.forward_backward > 0 else ()
    return BASE_DESCRIPTIONS + QUALITY_DESCRIPTIONS + extra


def _output_bands(block: CorrelationResult, params: "_Params") -> List[np.ndarray]:
    bands = [block.dx, block.dy, block.valid.astype(np.float32), block.peak, block.snr, block.peak_ratio,
             block.sigma]
    if params.forward_backward > 0:
        bands.append(block.fb_residual)
    return bands


def _empty_result(shape: Tuple[int, int], params: "_Params") -> CorrelationResult:
    def nan() -> np.ndarray:
        return np.full(shape, np.nan, np.float32)

    return CorrelationResult(nan(), nan(), nan(), np.zeros(shape, bool), nan(), nan(), nan(),
                             nan() if params.forward_backward > 0 else None)


def _geometry_cell_mask(geometries: Sequence[dict], transform) -> Callable[[slice, slice], np.ndarray]:
    """Cells (output grid) whose centre lies inside any of ``geometries``."""
    from rasterio.features import geometry_mask

    geometries = list(geometries)

    def mask(rows: slice, cols: slice) -> np.ndarray:
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        if not geometries:
            return np.zeros(shape, bool)
        window_transform = transform * Affine.translation(cols.start, rows.start)
        return geometry_mask(geometries, out_shape=shape, transform=window_transform, invert=True)

    return mask


def estimate_noise(source, height: int, width: int, windows_per_side: int = 6, window: int = 128,
                   box: int = 32) -> float:
    """Noise standard deviation of an image (its units), from up to 36 sample windows.

    Immerkaer (1996): sigma = sqrt(pi/2) / 6 * mean |I * N| with N the 3x3
    Laplacian-difference kernel, on ``box`` x ``box`` boxes of valid pixels;
    the 10th percentile of the box estimates is returned, so textured areas
    (whose fine detail inflates the estimate) do not count as noise. The
    windows are fixed by the image size, so the value does not depend on the
    block layout. Returns 0 when nothing valid is found.
    """
    kernel = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    size = min(window, height, width)
    # no more windows per side than it takes to cover the image (small images: no overlap)
    rows = np.unique(np.linspace(0, height - size, min(windows_per_side, -(-height // size))).astype(int))
    cols = np.unique(np.linspace(0, width - size, min(windows_per_side, -(-width // size))).astype(int))
    estimates = []
    for r in rows:
        for c in cols:
            values, valid = source.read(r, r + size, c, c + size)
            response = np.abs(_filtered_nearest(values, kernel))
            usable = _eroded(valid)
            n = size // box if size >= box else 1
            step = size // n
            cells = (n, step, n, step)
            counts = usable[:n * step, :n * step].reshape(cells).sum(axis=(1, 3))
            totals = np.where(usable, response, 0.0)[:n * step, :n * step].reshape(cells).sum(axis=(1, 3))
            enough = counts > 0.9 * step * step
            box_means = totals[enough] / counts[enough]
            estimates.extend(box_means[box_means > 0])  # exactly flat (saturated, filled) areas: no noise
    if not estimates:
        return 0.0
    return float(np.sqrt(np.pi / 2.0) / 6.0 * np.percentile(estimates, 10))


def _filtered_nearest(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation with a small kernel, edges extended ("nearest"); OpenCV's SIMD filter
    when available (same values as ``ndimage.correlate(..., mode="nearest")``)."""
    try:
        import cv2
    except ImportError:
        return ndimage.correlate(values, kernel, mode="nearest")
    return cv2.filter2D(np.asarray(values, np.float64), -1, kernel, borderType=cv2.BORDER_REPLICATE)


def _eroded(valid: np.ndarray) -> np.ndarray:
    """Binary erosion by a 3 x 3 square, outside = False (``ndimage.binary_erosion``'s result)."""
    padded = np.pad(valid, 1, constant_values=False)
    height, width = valid.shape
    out = padded[1:1 + height, 1:1 + width].copy()
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            out &= padded[dr:dr + height, dc:dc + width]
    return out


def _with_noise(params: "_Params", ref_source, height: int, width: int) -> "_Params":
    if params.min_texture <= 0:
        return params
    from dataclasses import replace
    return replace(params, noise=estimate_noise(ref_source, height, width))


# --------------------------------------------------------------------------- checks


def _check_parameters(chip_size: int, search_range: int, step: int, subpixel: str, prefilter: str = "none",
                      prefilter_size: float = 0.0, min_texture: float = 0.0, median_test: float = 0.0,
                      forward_backward: float = 0.0, smoothing: float = 0.0) -> _Params:
    if int(chip_size) != chip_size or chip_size < 8:
        raise UserInputError(f"Chip size must be a whole number of pixels >= 8; got {chip_size}.")
    if int(search_range) != search_range or search_range < 1:
        raise UserInputError(f"Search range must be a whole number of pixels >= 1; got {search_range}.")
    if int(step) != step or step < 1:
        raise UserInputError(f"Step must be a whole number of pixels >= 1; got {step}.")
    if subpixel not in SUBPIXEL_METHODS:
        raise UserInputError(
            f"Unknown sub-pixel method '{subpixel}'; use one of {', '.join(SUBPIXEL_METHODS)}.")
    size = check_prefilter(prefilter, prefilter_size)
    for name, value in (("minimum texture", min_texture), ("median test threshold", median_test),
                        ("forward-backward threshold", forward_backward), ("smoothing sigma", smoothing)):
        if value is None or not np.isfinite(value) or value < 0:
            raise UserInputError(f"The {name} must be >= 0 (0 = off); got {value}.")
    return _Params(int(chip_size), int(search_range), int(step), subpixel, prefilter, size,
                   float(min_texture), float(median_test), float(forward_backward), 0.0, float(smoothing))


def _grid_shape(height: int, width: int, params: _Params) -> Tuple[int, int]:
    if height < params.chip or width < params.chip:
        raise UserInputError(
            f"The image area ({width} x {height} px) is smaller than one chip ({params.chip} px). "
            "Use a smaller chip size or larger images.")
    return (height - params.chip) // params.step + 1, (width - params.chip) // params.step + 1


def _require_common_grid(ref_ds, sec_ds) -> None:
    if ref_ds.crs != sec_ds.crs:
        raise UserInputError(
            f"The reference is in {ref_ds.crs.to_string()} but the secondary is in "
            f"{sec_ds.crs.to_string()}. Reproject the secondary onto the reference grid, "
            "e.g. with gdalwarp -t_srs <reference CRS> -tr <reference pixel size> -tap.")
    ref_terms = np.array([ref_ds.transform.a, ref_ds.transform.b, ref_ds.transform.d, ref_ds.transform.e])
    sec_terms = np.array([sec_ds.transform.a, sec_ds.transform.b, sec_ds.transform.d, sec_ds.transform.e])
    if not np.allclose(ref_terms, sec_terms, rtol=0.0, atol=1e-6 * np.abs(ref_terms).max()):
        raise UserInputError(
            f"The reference pixel size is {_pixel_size_text(ref_ds)} but the secondary's is "
            f"{_pixel_size_text(sec_ds)}. Resample the secondary onto the reference grid, e.g. with "
            "gdalwarp -tr <reference pixel size> -tap.")


def _pixel_size_text(ds) -> str:
    t = ds.transform
    text = f"{abs(t.a):g} x {abs(t.e):g}"
    if t.b or t.d:
        text += f" (rotated grid, terms {t.a:g}, {t.b:g}, {t.d:g}, {t.e:g})"
    return text


def _secondary_offset(ref_ds, sec_ds) -> Tuple[int, int]:
    """Position (col, row) of the secondary's first pixel in reference pixels; must be whole."""
    col, row = ~ref_ds.transform * (sec_ds.transform.c, sec_ds.transform.f)
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        raise UserInputError(
            f"The secondary grid is shifted by ({col - round(col):+.3f}, {row - round(row):+.3f}) px "
            "from the reference grid: the pixels are not aligned. Resample the secondary onto the "
            "reference grid, e.g. with gdalwarp -tr <reference pixel size> -tap.")
    return int(round(col)), int(round(row))


def _overlap(ref_ds, sec_ds, col_off: int, row_off: int, params: _Params) -> Tuple[int, int, int, int]:
    """(col0, row0, width, height) of the overlap in reference pixels."""
    col0, col1 = max(0, col_off), min(ref_ds.width, col_off + sec_ds.width)
    row0, row1 = max(0, row_off), min(ref_ds.height, row_off + sec_ds.height)
    if col1 <= col0 or row1 <= row0:
        raise UserInputError(
            f"The reference '{ref_ds.name}' and secondary '{sec_ds.name}' do not overlap. "
            "Choose two images of the same area.")
    needed = params.window
    if col1 - col0 < needed or row1 - row0 < needed:
        raise UserInputError(
            f"The images overlap by only {col1 - col0} x {row1 - row0} px; at least chip size + "
            f"2 x search range = {needed} px is needed in each direction. Use images that overlap "
            "more, or a smaller chip size or search range.")
    return col0, row0, col1 - col0, row1 - row0


# --------------------------------------------------------------------------- pixel sources


class _ArraySource:
    """Reads windows of an in-memory image; pixels outside it come back invalid."""

    def __init__(self, values: np.ndarray, valid: Optional[np.ndarray]):
        self.values = values
        self.valid = np.ones(values.shape, bool) if valid is None else np.asarray(valid, bool)
        if np.issubdtype(values.dtype, np.floating):
            self.valid = self.valid & np.isfinite(values)

    def read(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        height, width = self.values.shape
        r0, r1, c0, c1 = max(row0, 0), min(row1, height), max(col0, 0), min(col1, width)
        return _pad_to_window(self.values[r0:r1, c0:c1], self.valid[r0:r1, c0:c1],
                              row0, row1, col0, col1, r0, c0)


class _RasterSource:
    """Reads windows of band 1 of an open raster in a shifted pixel frame."""

    def __init__(self, ds, row_origin: int, col_origin: int):
        self.ds = ds
        self.row_origin = row_origin
        self.col_origin = col_origin
        self.use_mask = any(flag.name == "per_dataset" for flag in ds.mask_flag_enums[0])

    def read(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        """Pixels [row0, row1) x [col0, col1) of the frame; outside the raster = invalid."""
        ds = self.ds
        a0, a1 = row0 + self.row_origin, row1 + self.row_origin
        b0, b1 = col0 + self.col_origin, col1 + self.col_origin
        r0, r1, c0, c1 = max(a0, 0), min(a1, ds.height), max(b0, 0), min(b1, ds.width)
        if r1 <= r0 or c1 <= c0:
            values = np.zeros((0, 0))
            valid = np.zeros((0, 0), bool)
            r0, c0 = a0, b0
        else:
            window = Window(c0, r0, c1 - c0, r1 - r0)
            values = ds.read(1, window=window)
            valid = valid_mask_from_nodata(values, ds.nodata)
            if self.use_mask:
                valid &= ds.read_masks(1, window=window) != 0
        return _pad_to_window(values, valid, a0, a1, b0, b1, r0, c0)


def _pad_to_window(values: np.ndarray, valid: np.ndarray, row0: int, row1: int, col0: int, col1: int,
                   read_row0: int, read_col0: int) -> Tuple[np.ndarray, np.ndarray]:
    """Place a read at (read_row0, read_col0) into the window [row0, row1) x [col0, col1).

    Invalid pixels (nodata, NaN, outside the image) get the value of the
    nearest valid pixel: they are excluded from matching anyway, and
    continuous values keep them from ringing into valid pixels through the
    spline prefilter, whatever the block layout.
    """
    shape = (row1 - row0, col1 - col0)
    if values.size == 0 or not valid.any():
        return np.zeros(shape), np.zeros(shape, bool)
    values = values.astype(np.float64)
    if not valid.all():
        nearest = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
        values = values[tuple(nearest)]
    top, left = read_row0 - row0, read_col0 - col0
    pad = ((top, shape[0] - top - values.shape[0]), (left, shape[1] - left - values.shape[1]))
    if not any(pad[0] + pad[1]):
        return values, valid.copy()
    return np.pad(values, pad, mode="edge"), np.pad(valid, pad, mode="constant", constant_values=False)


# --------------------------------------------------------------------------- block driver


def _chips_per_block(params: _Params, sweep: bool = False) -> int:
    """Chips per block so the working memory stays near ``_BLOCK_MEMORY_BYTES``.

    Per chip: the float32 ZNCC volume and its reductions; the per-chip FFT
    windows, spectra and templates (FFT engine) or the sweep's product rows
    (step^2 pixels per chip). Lucas-Kanade works on ``_LK_CHUNK`` chips at a
    time (about 120 x chip^2 bytes each) whatever the block size.
    """
    span = 2 * params.search + 1
    bytes_per_chip = 6 * span ** 2 + 64 * span + 80 * params.step ** 2
    if sweep:
        bytes_per_chip += 12 * span * params.step ** 2
    else:
        bytes_per_chip += 40 * params.window ** 2 + 4 * params.chip ** 2
    return max(1, int(_BLOCK_MEMORY_BYTES // bytes_per_chip))


def _blocks(n_rows: int, n_cols: int, chips: int, min_rows: int = 1) -> Iterator[Tuple[slice, slice]]:
    """Blocks of about ``chips`` cells, full-width strips unless that leaves fewer than
    ``min_rows`` rows (the displacement sweep wants compact blocks: less halo)."""
    block_cols = min(n_cols, max(1, chips // max(1, min(min_rows, n_rows))))
    block_rows = max(1, chips // block_cols)
    for i0 in range(0, n_rows, block_rows):
        for j0 in range(0, n_cols, block_cols):
            yield slice(i0, min(n_rows, i0 + block_rows)), slice(j0, min(n_cols, j0 + block_cols))


def _run_blocks(ref_source, sec_source, n_rows: int, n_cols: int, params: _Params,
                sink: Callable[[slice, slice, CorrelationResult], None], progress, is_canceled,
                cell_mask: Optional[Callable[[slice, slice], np.ndarray]] = None,
                apriori: Optional[Callable[[slice, slice], Tuple[np.ndarray, np.ndarray]]] = None) -> None:
    """Read, correlate and hand over every block; ``_THREADS`` blocks are computed at once.

    ``apriori(rows, cols)`` gives the expected (dy, dx) offsets (px, NaN =
    unknown) of a block's cells: the search windows are centred on their
    rounded values and the secondary is read with a halo covering them.

    Reading and the ``sink`` stay in the calling thread (rasterio datasets
    are not shared between threads); results reach the sink in block order,
    assembled into full-width strips (see ``_StripAssembler``).
    """
    # the displacement sweep shares work between overlapping chips: with small steps it wants
    # larger, compact blocks (less halo per chip); with steps of a quarter chip or more,
    # full-width strips of the FFT engine's size serve it well
    sweep = apriori is None and integer_engine(params.chip, params.search, params.step) == "sweep"
    dense = sweep and 4 * params.step < params.chip
    # every thread gets a block, even on small images
    chips = min(_chips_per_block(params, sweep), max(64, -(-n_rows * n_cols // _THREADS)))
    min_rows = min(params.chip // params.step, int(np.sqrt(chips))) if dense else 1
    blocks = list(_blocks(n_rows, n_cols, chips, min_rows))
    strips = _StripAssembler(n_rows, n_cols, params.median_test, sink)
    pending: deque = deque()
    done = 0
    with ThreadPoolExecutor(_THREADS) as pool:
        try:
            for index, (rows, cols) in enumerate(blocks):
                check_canceled(is_canceled)
                mask = None if cell_mask is None else np.asarray(cell_mask(rows, cols), bool)
                if mask is not None and not mask.any():
                    pending.append((rows, cols, None))
                else:
                    centres, block_params = _block_centres(apriori, rows, cols, params)
                    data = _read_block(ref_source, sec_source, rows, cols, block_params)
                    pending.append((rows, cols, pool.submit(_compute_block, *data, block_params, mask, centres)))
                while pending and (len(pending) >= _THREADS or index == len(blocks) - 1):
                    rows_done, cols_done, future = pending.popleft()
                    shape = (rows_done.stop - rows_done.start, cols_done.stop - cols_done.start)
                    strips.add(rows_done, cols_done,
                               _empty_result(shape, params) if future is None else future.result())
                    done += 1
                    if progress is not None:
                        progress(100.0 * done / len(blocks))
        finally:
            for _, _, future in pending:
                if future is not None:
                    future.cancel()
    strips.finish()


def _block_centres(apriori, rows: slice, cols: slice, params: _Params
                   ) -> Tuple[Optional[np.ndarray], _Params]:
    """Integer search centres (B, 2) as (dy, dx) of a block's chips (NaN a-priori -> 0) and
    the block's parameters with the secondary halo widened to cover them."""
    if apriori is None:
        return None, params
    from dataclasses import replace
    dy, dx = apriori(rows, cols)
    expected = np.stack([np.ravel(dy), np.ravel(dx)], axis=1)
    centres = np.where(np.isfinite(expected), np.round(expected), 0.0).astype(np.intp)
    reach = int(np.abs(centres).max()) if centres.size else 0
    return centres, replace(params, apriori_halo=reach)


def _read_block(ref_source, sec_source, rows: slice, cols: slice, params: _Params):
    """Reference with ``_SPLINE_MARGIN`` (the search halo with forward-backward) and the
    secondary with the search halo, plus the pre-filter margin, around a block of cells."""
    row0, col0 = rows.start * params.step, cols.start * params.step
    row1 = (rows.stop - 1) * params.step + params.chip
    col1 = (cols.stop - 1) * params.step + params.chip
    m = params.filter_margin
    g = (params.halo if params.forward_backward > 0 else _SPLINE_MARGIN) + m
    h = params.halo + m
    ref, ref_valid = ref_source.read(row0 - g, row1 + g, col0 - g, col1 + g)
    sec, sec_valid = sec_source.read(row0 - h, row1 + h, col0 - h, col1 + h)
    return ref, ref_valid, sec, sec_valid


def _crop(array: np.ndarray, margin: int) -> np.ndarray:
    return array[margin:array.shape[0] - margin, margin:array.shape[1] - margin] if margin else array


@single_threaded_opencv()
def _compute_block(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                   params: _Params, mask: Optional[np.ndarray],
                   centres: Optional[np.ndarray] = None) -> CorrelationResult:
    """Pre-filter, texture test, forward (and backward) correlation of one block
    (``centres``: per-chip integer search centres, (dy, dx) px). OpenCV runs single-threaded
    meanwhile: blocks already run in parallel, and its pool only adds overhead on them."""
    p = params
    m = p.filter_margin
    ref_f = _crop(_filtered(ref, p), m)
    sec_f = _crop(_filtered(sec, p), m)
    ref, ref_valid, sec_valid = _crop(ref, m), _crop(ref_valid, m), _crop(sec_valid, m)
    extra = p.halo - _SPLINE_MARGIN if p.forward_backward > 0 else 0  # ref read with the search halo
    ref_inner = (slice(extra, ref.shape[0] - extra), slice(extra, ref.shape[1] - extra))
    chip_ok = _textured(_crop(ref, extra + _SPLINE_MARGIN), p)
    if mask is not None:
        chip_ok &= mask.ravel()
    forward = _correlate_block(ref_f[ref_inner], ref_valid[ref_inner], sec_f, sec_valid, p, chip_ok, centres)
    if p.forward_backward > 0:
        inset = p.halo - _SPLINE_MARGIN
        sec_inner = (slice(inset, sec_f.shape[0] - inset), slice(inset, sec_f.shape[1] - inset))
        backward = _correlate_block(sec_f[sec_inner], sec_valid[sec_inner], ref_f, ref_valid, p,
                                    forward.valid.ravel(), None if centres is None else -centres)
        residual = np.hypot(forward.dx + backward.dx, forward.dy + backward.dy)
        forward.valid &= np.isfinite(residual) & (residual <= p.forward_backward)
        forward.fb_residual = residual.astype(np.float32)
        _blank_invalid(forward)
    return forward


def _filtered(image: np.ndarray, p: _Params) -> np.ndarray:
    """Anti-aliasing smoothing, then the pre-filter."""
    if p.smoothing > 0:
        image = gaussian_smoothed(image, p.smoothing)
    return apply_prefilter(image, p.prefilter, p.prefilter_size)


def _textured(ref: np.ndarray, p: _Params) -> np.ndarray:
    """Chips whose raw reference standard deviation is at least ``min_texture`` x the noise."""
    n_rows = (ref.shape[0] - p.chip) // p.step + 1
    n_cols = (ref.shape[1] - p.chip) // p.step + 1
    if p.min_texture <= 0 or p.noise <= 0:
        return np.ones(n_rows * n_cols, bool)
    centred = ref - ref.mean()  # conditions the float64 sums; any constant would do
    n = p.chip * p.chip
    sums = box_sums(centred, p.chip)[::p.step, ::p.step][:n_rows, :n_cols]
    squares = box_sums(centred * centred, p.chip)[::p.step, ::p.step][:n_rows, :n_cols]
    variance = np.maximum(squares - sums * sums / n, 0.0) / n
    return (np.sqrt(variance) >= p.min_texture * p.noise).ravel()


def _blank_invalid(result: CorrelationResult) -> None:
    """Set every float band to NaN where ``valid`` is False."""
    for name, values in result.arrays().items():
        if name != "valid":
            values[~result.valid] = np.nan


class _StripAssembler:
    """Joins blocks into full-width strips of cells, applies the normalised median
    test with one row of context from the strips above and below, and hands
    each strip to ``sink`` one strip late (the test needs the next strip's first row)."""

    def __init__(self, n_rows: int, n_cols: int, threshold: float,
                 sink: Callable[[slice, slice, CorrelationResult], None]):
        self.n_cols = n_cols
        self.threshold = threshold
        self.sink = sink
        self.parts: List[CorrelationResult] = []
        self.width = 0
        self.held: Optional[Tuple[slice, CorrelationResult]] = None
        self.row_above: Optional[CorrelationResult] = None

    def add(self, rows: slice, cols: slice, block: CorrelationResult) -> None:
        self.parts.append(block)
        self.width += cols.stop - cols.start
        if self.width < self.n_cols:
            return
        strip = _concatenate(self.parts)
        self.parts, self.width = [], 0
        if self.threshold <= 0:
            self.sink(rows, slice(0, self.n_cols), strip)
            return
        if self.held is not None:
            self._release(_row(strip, 0))
        self.held = (rows, strip)

    def finish(self) -> None:
        if self.held is not None:
            self._release(None)
            self.held = None

    def _release(self, row_below: Optional[CorrelationResult]) -> None:
        rows, strip = self.held
        last_row = _row(strip, strip.dx.shape[0] - 1)
        context = [r for r in (self.row_above, strip, row_below) if r is not None]
        dx = np.concatenate([c.dx for c in context])
        dy = np.concatenate([c.dy for c in context])
        first = 1 if self.row_above is not None else 0
        outliers = normalised_median_test(dx, dy, self.threshold)[first:first + strip.dx.shape[0]]
        self.row_above = last_row  # before filtering: every cell is tested against raw neighbours
        strip.valid &= ~outliers
        _blank_invalid(strip)
        self.sink(rows, slice(0, self.n_cols), strip)


def _row(result: CorrelationResult, index: int) -> CorrelationResult:
    return CorrelationResult(**{name: values[index:index + 1].copy() for name, values in result.arrays().items()})


def _concatenate(parts: Sequence[CorrelationResult]) -> CorrelationResult:
    if len(parts) == 1:
        return parts[0]
    return CorrelationResult(**{name: np.concatenate([getattr(part, name) for part in parts], axis=1)
                                for name in parts[0].arrays()})


def normalised_median_test(dx: np.ndarray, dy: np.ndarray, threshold: float = DEFAULT_MEDIAN_TEST,
                           epsilon: float = _MEDIAN_EPSILON_PX) -> np.ndarray:
    """Outliers of an offset field by the normalised median test (Westerweel & Scarano 2005).

    For each finite cell with at least two finite cells among its 8
    neighbours: r = |u - median(u_nb)| / (median(|u_nb - median(u_nb)|) +
    epsilon) per component (px); the cell is an outlier when r > threshold
    for dx or dy. NaN cells are ignored. Returns a bool array.
    """
    outliers = np.zeros(dx.shape, bool)
    counts = None
    for component in (dx, dy):
        padded = np.pad(component.astype(np.float64), 1, constant_values=np.nan)
        height, width = component.shape
        neighbours = np.stack([padded[1 + a:1 + a + height, 1 + b:1 + b + width]
                               for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)])
        if counts is None:
            counts = np.isfinite(neighbours).sum(axis=0)
        enough = (counts >= 2) & np.isfinite(component)
        if not enough.any():
            return outliers
        nb = neighbours[:, enough]
        n = counts[enough]
        median = _finite_median(nb, n)
        spread = _finite_median(np.abs(nb - median), n)
        residual = np.abs(component[enough] - median) / (spread + epsilon)
        outliers[enough] |= residual > threshold
    return outliers


def _finite_median(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the finite values (``counts`` per column, >= 1; NaN elsewhere).

    ``np.nanmedian`` on few values per column goes through masked arrays; a
    sort (NaN last) and two picks is many times faster.
    """
    ordered = np.sort(values, axis=0)
    columns = np.arange(values.shape[1])
    return 0.5 * (ordered[(counts - 1) // 2, columns] + ordered[counts // 2, columns])


# --------------------------------------------------------------------------- block engine


def _correlate_block(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                     params: _Params, chip_ok: Optional[np.ndarray] = None,
                     centres: Optional[np.ndarray] = None) -> CorrelationResult:
    """Correlate every chip of one block (already pre-filtered).

    ``ref`` holds the block's reference pixels plus ``_SPLINE_MARGIN`` pixels
    on every side (its first chip starts at (_SPLINE_MARGIN, _SPLINE_MARGIN));
    ``sec`` the same area with ``params.halo`` pixels on every side.
    ``chip_ok`` (flat, per chip) marks chips to compute; ``centres`` (B, 2)
    the integer (dy, dx) each chip's search is centred on (None = 0; the
    block's ``apriori_halo`` covers them). Offsets are totals.
    """
    p = params
    g = _SPLINE_MARGIN
    inner = (slice(g, ref.shape[0] - g), slice(g, ref.shape[1] - g))
    n_rows = (ref.shape[0] - 2 * g - p.chip) // p.step + 1
    n_cols = (ref.shape[1] - 2 * g - p.chip) // p.step + 1
    ref_ok = box_sums(~ref_valid[inner], p.chip)[::p.step, ::p.step][:n_rows, :n_cols].ravel() == 0
    if chip_ok is not None:
        ref_ok &= chip_ok

    sec_centred = _demeaned(sec, sec_valid)
    sec_invalid_sums = box_sums(~sec_valid, p.chip)
    sweep = centres is None and integer_engine(p.chip, p.search, p.step) == "sweep"
    templates = None if sweep else _chip_stack(ref[inner].astype(np.float32), p.chip, p.step, n_rows, n_cols)
    volume, template_ok, n_excluded = _integer_zncc(templates, sec_centred, sec_invalid_sums, p, n_rows, n_cols,
                                                    ref[inner] if sweep else None, centres)
    peaks = volume_peaks(volume, n_excluded)
    del volume
    peak_value, snr, ratio = peaks.value, peaks.snr, peaks.ratio
    ok = ref_ok & template_ok & peaks.inside
    fit, curvature, ok = _fit_peaks(peaks.patch, ok)
    integer_offset = peaks.index - p.search + (0 if centres is None else centres)
    offset = integer_offset + fit  # (B, 2): (dy, dx)

    if p.subpixel == "lk":
        del templates
        offset, peak_value, ok = _refine_lucas_kanade(
            ref, ref_valid, sec_centred, sec_invalid_sums, offset, integer_offset, ok, p, n_rows, n_cols)
    # smoothing correlates the noise over about 4 pi sigma^2 pixels: fewer independent samples
    sigma = _uncertainty(peak_value, curvature, p.chip * p.chip / (1.0 + 4.0 * np.pi * p.smoothing ** 2))

    shape = (n_rows, n_cols)

    def band(values: np.ndarray) -> np.ndarray:
        return np.where(ok, values, np.nan).astype(np.float32).reshape(shape)

    return CorrelationResult(band(offset[:, 1]), band(offset[:, 0]), band(peak_value), ok.reshape(shape),
                             band(snr), band(ratio), band(sigma))


def _uncertainty(peak: np.ndarray, curvature: np.ndarray, n: float) -> np.ndarray:
    """1-sigma offset uncertainty (px) from the peak ZNCC and its curvature (per px^2).

    For two images s + noise with ZNCC rho, the least-squares shift variance
    is 2 sigma_n^2 / sum(grad s)^2 per axis; with sigma_n^2 / sigma_s^2 =
    (1 - rho) / rho and curvature = rho * sum(grad s)^2 / sum(s^2) this is
    2 (1 - rho) / (n * curvature), n = independent samples in the chip. The curvature is measured on the integer
    grid (3-point differences), which under-estimates sharp peaks, so the
    value errs on the large side.
    """
    rho = np.clip(np.nan_to_num(peak, nan=0.0), 0.0, 1.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(curvature > 0, 2.0 * (1.0 - rho) / (n * curvature), np.inf)
    return np.sqrt(variance.sum(axis=1))


def _chip_stack(image: np.ndarray, size: int, step: int, n_rows: int, n_cols: int) -> np.ndarray:
    """Windows of ``size`` starting every ``step`` pixels, as a contiguous (B, size, size) stack."""
    view = np.lib.stride_tricks.sliding_window_view(image, (size, size))[::step, ::step][:n_rows, :n_cols]
    return np.ascontiguousarray(view).reshape(n_rows * n_cols, size, size)


def _search_stack(image: np.ndarray, offset: int, size: int, step: int, n_rows: int, n_cols: int,
                  centres: Optional[np.ndarray]) -> np.ndarray:
    """``_chip_stack`` of ``image[offset:, offset:]``, each window moved by its chip's integer
    search centre (dy, dx); ``offset`` >= |centre| (the block's ``apriori_halo``)."""
    if centres is None:
        return _chip_stack(image[offset:, offset:], size, step, n_rows, n_cols)
    chips = np.arange(n_rows * n_cols)
    return _windows_at(image, size, offset + (chips // n_cols) * step + centres[:, 0],
                       offset + (chips % n_cols) * step + centres[:, 1])


def _demeaned(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``image`` minus the mean of its valid pixels (float64), which keeps the
    float64 summed-area tables precise; gain/bias-invariant matching ignores it."""
    return image - (image[valid].mean() if valid.any() else 0.0)


def _integer_zncc(templates: Optional[np.ndarray], sec: np.ndarray, sec_invalid_sums: np.ndarray, p: _Params,
                  n_rows: int, n_cols: int, ref: Optional[np.ndarray] = None,
                  centres: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZNCC over all integer offsets as a core.peaks volume (2S+1, 2S+1, B).

    Index (v, u) is the offset (dy, dx) = (v - S, u - S) (plus the chip's
    ``centres``). With ``ref`` (the block's reference) the displacement sweep
    computes it, otherwise the per-chip FFT from ``templates``. Also returns
    which templates have texture and the number of excluded positions per chip.
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
    spectrum = scipy.fft.rfft2(windows, s=shape, workers=_FFT_WORKERS)
    spectrum *= np.conj(scipy.fft.rfft2(unit, s=shape, workers=_FFT_WORKERS))
    zncc = scipy.fft.irfft2(spectrum, s=shape, workers=_FFT_WORKERS)[:, :span, :span]
    del spectrum, windows
    zncc *= _search_stack(inverse_deviation.astype(np.float32), offset, span, p.step, n_rows, n_cols, centres)
    excluded = _search_stack(excluded, offset, span, p.step, n_rows, n_cols, centres)
    zncc[excluded] = EXCLUDED
    volume = np.ascontiguousarray(zncc.transpose(1, 2, 0), dtype=np.float32)
    return volume, textured, excluded.sum(axis=(1, 2))


_QUADRATIC_FIT = np.linalg.pinv(np.array(
    [[1.0, x, y, x * x, y * y, x * y] for y in (-1, 0, 1) for x in (-1, 0, 1)]))


def _fit_peaks(patch: np.ndarray, ok: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel (dy, dx) correction of each integer peak from its 3x3 ZNCC neighbourhood ``patch``.

    A 2-D quadratic is fitted to log(ZNCC) (a Gaussian peak) where all nine
    values are positive, to ZNCC itself otherwise; a fit without a maximum
    inside the 3x3 neighbourhood (ridge-like peaks) falls back to separable
    3-point parabolas. Chips whose 3x3 neighbourhood has an excluded position
    (non-finite) become invalid. Also returns the peak curvature (B, 2), minus the 3-point
    second differences of ZNCC along rows and columns (per px^2).
    """
    ok = ok & np.all(np.isfinite(patch), axis=(1, 2))
    patch = np.where(np.isfinite(patch), patch, 0.0)
    curvature = np.stack([2 * patch[:, 1, 1] - patch[:, 0, 1] - patch[:, 2, 1],
                          2 * patch[:, 1, 1] - patch[:, 1, 0] - patch[:, 1, 2]], axis=1)
    positive = np.all(patch > 1e-6, axis=(1, 2))
    values = np.where(positive[:, None, None], np.log(np.where(positive[:, None, None], patch, 1.0)), patch)

    c = values.reshape(len(values), 9) @ _QUADRATIC_FIT.T  # a, bx, by, cxx, cyy, cxy
    hxx, hyy, hxy = 2 * c[:, 3], 2 * c[:, 4], c[:, 5]
    det = hxx * hyy - hxy * hxy
    maximum = (hxx < 0) & (det > 1e-12)
    safe = np.where(maximum, det, 1.0)
    fx = (-hyy * c[:, 1] + hxy * c[:, 2]) / safe
    fy = (hxy * c[:, 1] - hxx * c[:, 2]) / safe
    maximum &= (np.abs(fx) <= 1.0) & (np.abs(fy) <= 1.0)
    fx = np.where(maximum, fx, _parabola_vertex(values[:, 1, 0], values[:, 1, 1], values[:, 1, 2]))
    fy = np.where(maximum, fy, _parabola_vertex(values[:, 0, 1], values[:, 1, 1], values[:, 2, 1]))
    return np.clip(np.stack([fy, fx], axis=1), -1.0, 1.0), curvature, ok


def _parabola_vertex(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    curvature = left - 2 * centre + right
    vertex = 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0)
    return np.where(curvature < 0, np.clip(vertex, -0.5, 0.5), 0.0)


def _refine_lucas_kanade(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray,
                         sec_invalid_sums: np.ndarray, start: np.ndarray, integer_peak: np.ndarray,
                         ok: np.ndarray, p: _Params, n_rows: int, n_cols: int
                         ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-compositional Lucas-Kanade translation with gain and bias.

    Model: ``sec(x + offset) = gain * ref(x) + bias``. Linearising the
    template, ``sec_w = gain*T0 + grad(T).q + bias`` with ``q = gain*delta`` is
    linear in (q, gain, bias) with a design matrix fixed per chip, so its
    least-squares operator is computed once; each iteration samples the
    secondary's quintic spline at the current offsets for all active chips at
    once and updates ``offset -= q / gain``. Offsets are (dy, dx) in pixels.
    ``ref`` is the block's reference with its ``_SPLINE_MARGIN``, ``sec`` the
    demeaned secondary block. A chip becomes invalid when the gain is not
    positive, the Hessian is singular, the offset departs more than
    ``_LK_MAX_DEPARTURE_PX`` from the integer peak, it does not converge, or
    the spline support of its final footprint touches invalid pixels.
    Chips are refined ``_LK_CHUNK`` at a time (bounded memory whatever the block size).
    Returns the offsets, the ZNCC at the last sampled position and validity.
    """
    offset = start.astype(np.float64).copy()
    peak = np.full(len(offset), np.nan)
    candidates = np.flatnonzero(ok)
    if candidates.size == 0:
        return offset, peak, ok
    ok = ok.copy()
    g = _SPLINE_MARGIN
    reference = ref[g:ref.shape[0] - g, g:ref.shape[1] - g].astype(np.float32)
    gradients = _lk_gradients(ref, ref_valid)
    coefficients = ndimage.spline_filter(sec, order=_SPLINE_ORDER, mode="mirror", output=np.float64).astype(np.float32)
    for first in range(0, candidates.size, _LK_CHUNK):
        chips = candidates[first:first + _LK_CHUNK]
        first_row = (chips // n_cols) * p.step
        first_col = (chips % n_cols) * p.step
        templates = _windows_at(reference, p.chip, first_row, first_col)
        gradient_windows = [_windows_at(image, p.chip, first_row, first_col) for image in gradients]
        operator, coupling, template_norm, well_posed = _lk_operators(templates, *gradient_windows)
        ok[chips[~well_posed]] = False
        chips = chips[well_posed]
        state = (operator[well_posed], coupling[well_posed], template_norm[well_posed])
        _iterate_lucas_kanade(coefficients, sec_invalid_sums, chips, state, offset, peak, integer_peak, ok,
                              p, n_cols)
    return offset, peak, ok


def _iterate_lucas_kanade(coefficients: np.ndarray, sec_invalid_sums: np.ndarray, chips: np.ndarray,
                          state: Tuple[np.ndarray, np.ndarray, np.ndarray], offset: np.ndarray,
                          peak: np.ndarray, integer_peak: np.ndarray, ok: np.ndarray, p: _Params,
                          n_cols: int) -> None:
    """The Lucas-Kanade iterations of ``chips`` (their operators in ``state``); updates
    ``offset``, ``peak`` and ``ok`` in place (see ``_refine_lucas_kanade``)."""
    top = (chips // n_cols) * p.step + p.halo
    left = (chips % n_cols) * p.step + p.halo
    n = p.chip * p.chip
    active = np.arange(len(chips))  # positions in ``chips`` still iterating
    last_update = np.zeros(len(chips))
    for _ in range(_LK_MAX_ITERATIONS):
        if active.size == 0:
            break
        b = chips[active]
        sampled = _sample_translated(coefficients, top[active], left[active], offset[b], p.chip)
        sampled = sampled.reshape(len(active), n)
        op, coup, norm_t = state
        products = np.einsum("bkn,bn->bk", op, sampled).astype(np.float64)  # q_dy, q_dx, t.s
        q = products[:, :2]
        total = sampled.sum(axis=1, dtype=np.float64)
        energy = np.einsum("bn,bn->b", sampled, sampled).astype(np.float64) - total * total / n
        peak[b] = products[:, 2] / np.sqrt(np.where(energy > 0, energy, np.inf))
        gain = products[:, 2] / norm_t - np.einsum("bk,bk->b", coup, q)
        good = (gain > 0) & np.all(np.isfinite(q), axis=1)
        update = q / np.where(good, gain, 1.0)[:, None]
        offset[b] -= np.where(good[:, None], update, 0.0)
        last_update[active] = np.where(good, np.hypot(update[:, 0], update[:, 1]), np.inf)
        departed = np.any(np.abs(offset[b] - integer_peak[b]) > _LK_MAX_DEPARTURE_PX, axis=1)
        ok[b[~good | departed]] = False
        going = good & ~departed & (last_update[active] >= _LK_TOLERANCE_PX)
        if not going.all():
            active = active[going]
            state = tuple(array[going] for array in state)
    ok[chips[last_update > _LK_NOT_CONVERGED_PX]] = False
    ok[chips] &= _spline_support_valid(sec_invalid_sums, top, left, offset[chips], p.chip)


def _lk_gradients(ref: np.ndarray, ref_valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Row and column derivatives (float32) of the reference's quintic-spline interpolant at
    the pixels of the block inside its ``_SPLINE_MARGIN`` (so block edges do not distort them)."""
    centred = _demeaned(ref, ref_valid)
    coefficients = ndimage.spline_filter(centred, order=_SPLINE_ORDER, mode="mirror", output=np.float64)
    # derivative of the quintic B-spline interpolant at the knots:
    # (50 (c[k+1] - c[k-1]) + 5 (c[k+2] - c[k-2])) / 120
    g = _SPLINE_MARGIN
    height, width = coefficients.shape
    inner_rows, inner_cols = slice(g, height - g), slice(g, width - g)

    def rows_at(k: int) -> np.ndarray:
        return coefficients[g + k:height - g + k, inner_cols]

    def cols_at(k: int) -> np.ndarray:
        return coefficients[inner_rows, g + k:width - g + k]

    grad_rows = ((50 * (rows_at(1) - rows_at(-1)) + 5 * (rows_at(2) - rows_at(-2))) / 120).astype(np.float32)
    grad_cols = ((50 * (cols_at(1) - cols_at(-1)) + 5 * (cols_at(2) - cols_at(-2))) / 120).astype(np.float32)
    return grad_rows, grad_cols


def _lk_operators(templates: np.ndarray, grad_rows: np.ndarray, grad_cols: np.ndarray
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-chip least-squares operators of the LK model, from the (B, chip, chip) templates
    and their row/column gradient windows.

    Returns ``operator`` (B, 3, n) float32 whose rows applied to the sampled
    secondary s give (q_dy, q_dx, t.s) with t the zero-mean unit-norm
    template; ``coupling`` (B, 2) and ``template_norm`` (B,) such that
    gain = t.s / template_norm - coupling.q; and the chips whose translation
    Hessian is well conditioned. The gradient columns are made orthogonal to
    the template and the constant (Frisch-Waugh-Lovell), which separates the
    translation from gain and bias. Gradients are the exact derivatives of the
    reference's quintic-spline interpolant at the pixels.
    """
    count = len(templates)
    n = templates.shape[1] * templates.shape[2]
    g_rows = grad_rows.reshape(count, n)
    g_cols = grad_cols.reshape(count, n)

    t0 = templates.reshape(len(templates), n)
    t0 = t0 - t0.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    template_norm = np.sqrt(np.einsum("bn,bn->b", t0, t0, dtype=np.float64))
    unit = t0 / template_norm[:, None].astype(np.float32)
    # remove the constant and the template from the gradient columns
    along_rows = np.einsum("bn,bn->b", g_rows, unit)
    along_cols = np.einsum("bn,bn->b", g_cols, unit)
    o_rows = g_rows - g_rows.mean(axis=1, keepdims=True) - along_rows[:, None] * unit
    o_cols = g_cols - g_cols.mean(axis=1, keepdims=True) - along_cols[:, None] * unit
    h_rr = np.einsum("bn,bn->b", o_rows, o_rows, dtype=np.float64)
    h_cc = np.einsum("bn,bn->b", o_cols, o_cols, dtype=np.float64)
    h_rc = np.einsum("bn,bn->b", o_rows, o_cols, dtype=np.float64)
    det = h_rr * h_cc - h_rc ** 2
    trace = h_rr + h_cc
    well_posed = np.isfinite(det) & (det > _SINGULAR_EIGEN_RATIO * trace * trace)
    safe = np.where(well_posed, det, 1.0)
    operator = np.empty((len(templates), 3, n), np.float32)
    operator[:, 0] = (h_cc / safe).astype(np.float32)[:, None] * o_rows
    operator[:, 0] -= (h_rc / safe).astype(np.float32)[:, None] * o_cols
    operator[:, 1] = (h_rr / safe).astype(np.float32)[:, None] * o_cols
    operator[:, 1] -= (h_rc / safe).astype(np.float32)[:, None] * o_rows
    operator[:, 2] = unit
    coupling = np.stack([along_rows, along_cols], axis=1).astype(np.float64) / template_norm[:, None]
    return operator, coupling, template_norm, well_posed


def _windows_at(image: np.ndarray, size: int, first_row: np.ndarray, first_col: np.ndarray) -> np.ndarray:
    """Copies of the size x size windows of ``image`` starting at the given pixels: (B, size, size)."""
    return np.lib.stride_tricks.sliding_window_view(image, (size, size))[first_row, first_col]


def _spline_support_valid(sec_invalid_sums: np.ndarray, top: np.ndarray, left: np.ndarray,
                          offset: np.ndarray, chip: int) -> np.ndarray:
    """True where the spline support of the matched footprint holds only valid pixels.

    The support of samples at rows top + offset + [0, chip) spans
    floor(top + offset) - 2 .. floor(top + offset) + chip + 2, covered by the
    union of the 6 x 6 chip-sized footprints starting at floor - 2 .. floor + 3.
    """
    first_row = np.floor(top + offset[:, 0]).astype(int) - 2
    first_col = np.floor(left + offset[:, 1]).astype(int) - 2
    height, width = sec_invalid_sums.shape
    clean = np.ones(len(top), bool)
    for dr in range(6):
        for dc in range(6):
            r = first_row + dr
            c = first_col + dc
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            counts = sec_invalid_sums[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]
            clean &= inside & (counts == 0)
    return clean


def _bspline_weights(fraction: np.ndarray) -> np.ndarray:
    """Quintic B-spline weights (..., 6) of the coefficients at floor-2 .. floor+3."""
    t = fraction[..., None]
    t2, t3, t4, t5 = t * t, t ** 3, t ** 4, t ** 5
    return np.concatenate([
        (1 - t) ** 5,
        26 - 50 * t + 20 * t2 + 20 * t3 - 20 * t4 + 5 * t5,
        66 - 60 * t2 + 30 * t4 - 10 * t5,
        26 + 50 * t + 20 * t2 - 20 * t3 - 20 * t4 + 10 * t5,
        1 + 5 * t + 10 * t2 + 10 * t3 + 5 * t4 - 5 * t5,
        t5], axis=-1) / 120.0


def _sample_translated(coefficients: np.ndarray, top: np.ndarray, left: np.ndarray, shift: np.ndarray,
                       chip: int) -> np.ndarray:
    """Quintic-spline values at rows top + shift_y + [0, chip) and cols left + shift_x + [0, chip).

    Equivalent to ``ndimage.map_coordinates(coefficients, ..., order=5,
    prefilter=False)`` at those points (within the array), but exploits that
    every chip has one fractional shift: the 6 x 6 tap weights are shared by
    the chip's pixels, so the evaluation is two separable 6-tap passes over
    (chip + 5)^2 coefficient patches, vectorised over all chips. Returns (B, chip, chip).
    """
    rows = top + shift[:, 0]
    cols = left + shift[:, 1]
    base_rows = np.floor(rows)
    base_cols = np.floor(cols)
    w_rows = _bspline_weights(rows - base_rows)
    w_cols = _bspline_weights(cols - base_cols)
    taps = w_rows.shape[1]
    span = chip + taps - 1
    first_row = np.clip(base_rows.astype(np.intp) - 2, 0, coefficients.shape[0] - span)
    first_col = np.clip(base_cols.astype(np.intp) - 2, 0, coefficients.shape[1] - span)
    patch = _windows_at(coefficients, span, first_row, first_col)
    w_rows = w_rows.astype(coefficients.dtype)[:, :, None, None]
    w_cols = w_cols.astype(coefficients.dtype)[:, :, None, None]
    along_rows = w_rows[:, 0] * patch[:, :chip, :]
    for k in range(1, taps):
        along_rows += w_rows[:, k] * patch[:, k:k + chip, :]
    values = w_cols[:, 0] * along_rows[:, :, :chip]
    for k in range(1, taps):
        values += w_cols[:, k] * along_rows[:, :, k:k + chip]
    return values
