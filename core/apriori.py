"""Large motions: a-priori offset fields and the coarse-to-fine pyramid.

An *offset field* gives the expected offset, in reference pixels (dx + right,
dy + down, the disparity convention), at map coordinates of the reference
CRS; the correlator centres each chip's search window on the rounded
expected offset and reports total offsets (a-priori + measured). Unknown
(NaN) expectations fall back to a search centred on 0.

Sources:

* a raster with two bands (any CRS and grid, sampled bilinearly, NaN-aware):
  ``units="pixels"``: dx, dy in reference pixels; ``units="m/yr"``: vx, vy
  velocities in metres per year along the raster CRS's x and y axes (y up,
  north on north-up grids; e.g. ITS_LIVE), turned into a displacement over
  ``dt_days`` (365.25-day year), carried to the reference CRS and divided by
  the reference geotransform (its inverse 2x2 linear part, so on a north-up
  grid dx = vx * dt / pixel width and dy = -vy * dt / |pixel height|);
* the median-filtered offsets of a coarser pyramid level (:func:`correlate_pyramid`).
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Tuple

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from scipy import ndimage

from .errors import UserInputError, check_canceled
from .raster_io import FLOAT_GTIFF_PROFILE, atomic_output, open_raster, row_blocks, valid_mask_from_nodata

APRIORI_UNITS = ("pixels", "m/yr")
DAYS_PER_YEAR = 365.25
#: Search radius (px) at the pyramid levels below the top, around the upsampled coarser offsets.
PYRAMID_REFINE_SEARCH = 4
#: Gaussian sigma (px of the finer level) applied before keeping every second pixel.
_PYRAMID_SIGMA = 1.0
#: Fraction of valid weight a coarse pixel needs to count as valid.
_PYRAMID_MIN_WEIGHT = 0.9
#: Side (cells) of the NaN-aware median filter applied to a coarse offset field.
_MEDIAN_SIZE = 5
#: Share of the progress bar given to the coarse levels.
_COARSE_PROGRESS_SHARE = 0.3


class OffsetField:
    """Expected offsets (reference px) at map coordinates of the reference CRS."""

    def sample(self, xs: np.ndarray, ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(dx, dy) in reference pixels at the points, NaN where unknown."""
        raise NotImplementedError

    def scaled(self, factor: float) -> "OffsetField":
        """The same field expressed in pixels ``factor`` times smaller (offsets x factor)."""
        return _ScaledField(self, factor)


class _ScaledField(OffsetField):
    def __init__(self, field: OffsetField, factor: float):
        self.field = field
        self.factor = factor

    def sample(self, xs, ys):
        dx, dy = self.field.sample(xs, ys)
        return dx * self.factor, dy * self.factor


class GridOffsetField(OffsetField):
    """Offsets held on a grid in the reference CRS (``transform`` maps (col, row) to map x, y);
    points beyond the grid take the value at its nearest edge."""

    def __init__(self, dx: np.ndarray, dy: np.ndarray, transform: Affine):
        self.dx = np.asarray(dx, np.float64)
        self.dy = np.asarray(dy, np.float64)
        self.inverse = ~transform

    def sample(self, xs, ys):
        cols, rows = self.inverse * (np.asarray(xs, np.float64), np.asarray(ys, np.float64))
        return bilinear_nan(self.dx, cols, rows, clamp=True), bilinear_nan(self.dy, cols, rows, clamp=True)


class RasterOffsetField(OffsetField):
    """A two-band raster of offsets (``units="pixels"``) or velocities (``units="m/yr"``).

    Only the window around the requested points is read at each call, so
    memory follows the block being correlated, not the raster size.
    """

    def __init__(self, path: str, units: str, ref_crs, ref_transform: Affine,
                 dt_days: Optional[float] = None):
        if units not in APRIORI_UNITS:
            raise UserInputError(f"Unknown a-priori units '{units}'; use one of {', '.join(APRIORI_UNITS)}.")
        with open_raster(path) as ds:
            if ds.count < 2:
                raise UserInputError(
                    f"The a-priori raster '{path}' has {ds.count} band; it needs two: dx, dy in reference "
                    "pixels or vx, vy in m/yr.")
            if ds.crs is None and units == "m/yr":
                raise UserInputError(f"The a-priori velocity raster '{path}' has no CRS; assign one first.")
            self.crs = ds.crs if ds.crs is not None else ref_crs
        if units == "m/yr":
            if dt_days is None or not np.isfinite(dt_days) or dt_days <= 0:
                raise UserInputError(
                    "An a-priori velocity (m/yr) needs the time between the images: give the pair's dt in "
                    "days (the dates are not in the file names).")
        self.path = path
        self.units = units
        self.ref_crs = ref_crs
        self.ref_inverse_linear = _linear_inverse(ref_transform)
        self.years = (dt_days or 0.0) / DAYS_PER_YEAR

    def sample(self, xs, ys):
        xs = np.asarray(xs, np.float64)
        ys = np.asarray(ys, np.float64)
        px, py = self._to_raster_crs(xs, ys)
        with open_raster(self.path) as ds:
            cols, rows = ~ds.transform * (px, py)
            a, b = _read_bilinear(ds, cols, rows)
        if self.units == "pixels":
            return a, b
        end_x, end_y = self._from_raster_crs(px + a * self.years, py + b * self.years)
        ex, ey = end_x - xs, end_y - ys
        m = self.ref_inverse_linear
        return m[0, 0] * ex + m[0, 1] * ey, m[1, 0] * ex + m[1, 1] * ey

    def _to_raster_crs(self, xs, ys):
        if self.crs == self.ref_crs or xs.size == 0:
            return xs, ys
        from rasterio.warp import transform
        x, y = transform(self.ref_crs, self.crs, xs.ravel(), ys.ravel())
        return np.reshape(x, xs.shape), np.reshape(y, ys.shape)

    def _from_raster_crs(self, xs, ys):
        if self.crs == self.ref_crs or xs.size == 0:
            return xs, ys
        from rasterio.warp import transform
        finite = np.isfinite(xs) & np.isfinite(ys)
        out_x = np.full(xs.shape, np.nan)
        out_y = np.full(ys.shape, np.nan)
        if finite.any():
            x, y = transform(self.crs, self.ref_crs, xs[finite], ys[finite])
            out_x[finite], out_y[finite] = x, y
        return out_x, out_y


def _linear_inverse(transform: Affine) -> np.ndarray:
    """Inverse of the 2x2 linear part (map metres -> pixels) of a geotransform."""
    return np.linalg.inv(np.array([[transform.a, transform.b], [transform.d, transform.e]], np.float64))


def _read_bilinear(ds, cols: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Bands 1 and 2 of ``ds`` sampled bilinearly (NaN-aware) at fractional pixel-corner positions."""
    nan = np.full(cols.shape, np.nan)
    finite = np.isfinite(cols) & np.isfinite(rows)
    if not finite.any():
        return nan, nan.copy()
    c0 = int(max(np.floor(cols[finite].min() - 0.5), 0))
    r0 = int(max(np.floor(rows[finite].min() - 0.5), 0))
    c1 = int(min(np.floor(cols[finite].max() - 0.5) + 2, ds.width))
    r1 = int(min(np.floor(rows[finite].max() - 0.5) + 2, ds.height))
    if c1 <= c0 or r1 <= r0:
        return nan, nan.copy()
    window = Window(c0, r0, c1 - c0, r1 - r0)
    bands = []
    for band in (1, 2):
        values = ds.read(band, window=window).astype(np.float64)
        values[~valid_mask_from_nodata(values, ds.nodata)] = np.nan
        bands.append(bilinear_nan(values, cols - c0, rows - r0))
    return bands[0], bands[1]


def bilinear_nan(grid: np.ndarray, cols: np.ndarray, rows: np.ndarray, clamp: bool = False) -> np.ndarray:
    """Bilinear interpolation of ``grid`` at pixel-corner coordinates (pixel (i, j) is
    centred at (j + 0.5, i + 0.5)); NaN neighbours are left out and the weights of
    the others renormalised; NaN where all neighbours are NaN and outside the grid
    (unless ``clamp``: then points outside take the value at the nearest edge)."""
    x = np.asarray(cols, np.float64) - 0.5
    y = np.asarray(rows, np.float64) - 0.5
    height, width = grid.shape
    out = np.full(x.shape, np.nan)
    inside = np.isfinite(x) & np.isfinite(y)
    if not clamp:
        inside &= (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    if not inside.any() or grid.size == 0:
        return out
    x, y = np.clip(x[inside], 0, width - 1), np.clip(y[inside], 0, height - 1)
    j0 = np.clip(np.floor(x).astype(int), 0, max(width - 2, 0))
    i0 = np.clip(np.floor(y).astype(int), 0, max(height - 2, 0))
    j1, i1 = np.minimum(j0 + 1, width - 1), np.minimum(i0 + 1, height - 1)
    fx, fy = x - j0, y - i0
    total = np.zeros(x.shape)
    weight = np.zeros(x.shape)
    for i, j, w in ((i0, j0, (1 - fy) * (1 - fx)), (i0, j1, (1 - fy) * fx),
                    (i1, j0, fy * (1 - fx)), (i1, j1, fy * fx)):
        values = grid[i, j]
        good = np.isfinite(values) & (w > 0)
        total += np.where(good, values * w, 0.0)
        weight += np.where(good, w, 0.0)
    out[inside] = np.where(weight > 1e-9, total / np.where(weight > 1e-9, weight, 1.0), np.nan)
    return out


def apriori_field(apriori, units: str, ref_crs, ref_transform: Affine, dt_days: Optional[float]
                  ) -> Optional[OffsetField]:
    """An :class:`OffsetField` from a raster path (or the field itself, or None)."""
    if apriori is None or isinstance(apriori, OffsetField):
        return apriori
    if not os.path.isfile(str(apriori)):
        raise UserInputError(f"The a-priori raster '{apriori}' does not exist.")
    return RasterOffsetField(str(apriori), units, ref_crs, ref_transform, dt_days)


def block_apriori(field: OffsetField, transform: Affine):
    """Callable (rows, cols) -> (dy, dx) expected offsets (px) of a block of output cells,
    sampled at the chip centres (``transform`` = the disparity grid's)."""

    def expected(rows: slice, cols: slice) -> Tuple[np.ndarray, np.ndarray]:
        jj, ii = np.meshgrid(np.arange(cols.start, cols.stop) + 0.5, np.arange(rows.start, rows.stop) + 0.5)
        xs, ys = transform * (jj, ii)
        dx, dy = field.sample(np.asarray(xs), np.asarray(ys))
        return dy, dx

    return expected


# --------------------------------------------------------------------------- pyramid


def downsample_pair(ref_path: str, sec_path: str, ref_out: str, sec_out: str, is_canceled=None
                    ) -> Tuple[str, str]:
    """Both images at half resolution on a common coarse grid (Gaussian, then every second pixel).

    The secondary keeps the pixels whose reference-frame index is even, like
    the reference, so the coarse grids stay aligned to whole pixels.
    """
    with open_raster(ref_path) as ref_ds, open_raster(sec_path) as sec_ds:
        col_off, row_off = ~ref_ds.transform * (sec_ds.transform.c, sec_ds.transform.f)
    _downsample_file(ref_path, ref_out, 0, 0, is_canceled)
    _downsample_file(sec_path, sec_out, int(round(row_off)) % 2, int(round(col_off)) % 2, is_canceled)
    return ref_out, sec_out


def _downsample_file(path: str, out_path: str, row_phase: int, col_phase: int, is_canceled=None) -> str:
    """Band 1 smoothed (sigma ``_PYRAMID_SIGMA``, nodata-aware) and decimated by 2 into a
    float32 GeoTIFF (NaN nodata); pixel k of the output is pixel 2k + phase of the input."""
    margin = int(np.ceil(4 * _PYRAMID_SIGMA)) + 1
    with open_raster(path) as ds:
        height = (ds.height - row_phase + 1) // 2
        width = (ds.width - col_phase + 1) // 2
        transform = ds.transform * Affine.translation(col_phase - 0.5, row_phase - 0.5) * Affine.scale(2)
        profile = dict(FLOAT_GTIFF_PROFILE, count=1, width=width, height=height, crs=ds.crs,
                       transform=transform)
        with atomic_output(out_path) as tmp, rasterio.open(tmp, "w", **profile) as out:
            for start, stop in row_blocks(height, max(1, 2_000_000 // max(ds.width, 1))):
                check_canceled(is_canceled)
                first = 2 * start + row_phase
                last = 2 * (stop - 1) + row_phase + 1
                r0, r1 = max(first - margin, 0), min(last + margin, ds.height)
                values = ds.read(1, window=Window(0, r0, ds.width, r1 - r0)).astype(np.float64)
                valid = valid_mask_from_nodata(values, ds.nodata)
                weight = ndimage.gaussian_filter(valid.astype(np.float64), _PYRAMID_SIGMA, mode="nearest")
                total = ndimage.gaussian_filter(np.where(valid, values, 0.0), _PYRAMID_SIGMA, mode="nearest")
                keep = (slice(first - r0, last - r0, 2), slice(col_phase, None, 2))
                weight, total = weight[keep], total[keep]
                coarse = np.where(weight >= _PYRAMID_MIN_WEIGHT, total / np.maximum(weight, 1e-12), np.nan)
                out.write(coarse.astype(np.float32), 1, window=Window(0, start, width, stop - start))
    return out_path


def coarse_offset_field(disparity_path: str, factor: float = 2.0) -> GridOffsetField:
    """The offsets of a coarse disparity map, median-filtered (NaN-aware, 5 x 5 cells), holes
    filled from the nearest valid cell, scaled by ``factor`` (coarse -> fine pixels)."""
    with open_raster(disparity_path) as ds:
        dx = ds.read(1).astype(np.float64)
        dy = ds.read(2).astype(np.float64)
        valid = ds.read(3) == 1
        transform = ds.transform
    dx[~valid] = np.nan
    dy[~valid] = np.nan
    dx, dy = (_fill_nearest(_nan_median(component)) * factor for component in (dx, dy))
    return GridOffsetField(dx, dy, transform)


def _nan_median(values: np.ndarray, size: int = _MEDIAN_SIZE) -> np.ndarray:
    """Median of the finite values in the size x size neighbourhood of every cell (NaN if none),
    computed row by row so memory stays at size^2 x one row of cells."""
    half = size // 2
    padded = np.pad(values, half, constant_values=np.nan)
    out = np.full(values.shape, np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    for i in range(values.shape[0]):
        row = windows[i].reshape(values.shape[1], -1)
        counts = np.isfinite(row).sum(axis=1)
        if counts.any():
            with np.errstate(all="ignore"):
                out[i, counts > 0] = np.nanmedian(row[counts > 0], axis=1)
    return out


def _fill_nearest(values: np.ndarray) -> np.ndarray:
    missing = ~np.isfinite(values)
    if not missing.any() or missing.all():
        return values
    index = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
    return values[tuple(index)]


def correlate_pyramid(ref_path: str, sec_path: str, out_path: str, levels: int, search_range: int,
                      correlate, progress=None, is_canceled=None, apriori: Optional[OffsetField] = None,
                      **settings) -> str:
    """Coarse-to-fine correlation over ``levels`` x2 pyramid levels.

    The top level (1 / 2**levels resolution) searches +-``search_range`` of
    its pixels around ``apriori`` (scaled), i.e. motions up to 2**levels x
    ``search_range`` full-resolution pixels; each finer level searches
    +-``PYRAMID_REFINE_SEARCH`` px around the coarser level's offsets
    (median-filtered, holes filled, x2). ``correlate`` is
    :func:`core.correlate.correlate_files`; ``settings`` go to it (the coarse
    levels use the Gaussian peak fit and no forward-backward check). Output
    offsets are totals at full resolution.
    """
    if int(levels) != levels or levels < 0:
        raise UserInputError(f"The number of pyramid levels must be a whole number >= 0; got {levels}.")
    levels = int(levels)

    def sub_progress(start: float, share: float):
        return None if progress is None else (lambda percent: progress(start + share * percent))

    folder = os.path.dirname(os.path.abspath(out_path))
    with tempfile.TemporaryDirectory(prefix=".pyramid_", dir=folder) as tmp:
        paths = [(ref_path, sec_path)]
        for level in range(1, levels + 1):
            check_canceled(is_canceled)
            paths.append(downsample_pair(*paths[-1], os.path.join(tmp, f"ref_{level}.tif"),
                                         os.path.join(tmp, f"sec_{level}.tif"), is_canceled))
        field = apriori.scaled(1.0 / 2 ** levels) if apriori is not None else None
        coarse_settings = dict(settings, subpixel="gaussian", forward_backward=0.0, tags=None)
        share = 100.0 * _COARSE_PROGRESS_SHARE / max(levels, 1)
        for position, level in enumerate(range(levels, 0, -1)):
            check_canceled(is_canceled)
            coarse_out = os.path.join(tmp, f"disparity_{level}.tif")
            search = search_range if level == levels else PYRAMID_REFINE_SEARCH
            correlate(*paths[level], coarse_out, search_range=search, apriori=field,
                      progress=sub_progress(position * share, share / 100.0), is_canceled=is_canceled,
                      **coarse_settings)
            field = coarse_offset_field(coarse_out, 2.0)
        done = 100.0 * _COARSE_PROGRESS_SHARE if levels else 0.0
        search = PYRAMID_REFINE_SEARCH if levels else search_range
        return correlate(ref_path, sec_path, out_path, search_range=search, apriori=field,
                         progress=sub_progress(done, (100.0 - done) / 100.0), is_canceled=is_canceled,
                         **settings)
