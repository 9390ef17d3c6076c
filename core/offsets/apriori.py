"""Large motions: a-priori offset fields, the expected offsets each chip's search is centred on.

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
* a grid of offsets (:class:`GridOffsetField`), e.g. the median-filtered offsets of a
  coarser pyramid level (``core.offsets.engine.pyramid``).

Offsets are returned as (dx, dy) everywhere: :meth:`OffsetField.sample` and the
block callables of :func:`block_apriori`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import os
from typing import Callable, Optional, Tuple

import numpy as np
from affine import Affine
from rasterio.windows import Window

from ..choices import Choices
from ..dates import DAYS_PER_YEAR
from ..errors import UserInputError
from ..io import open_raster, valid_mask_from_nodata

#: Units of an a-priori raster (value, label).
APRIORI_UNITS = Choices(("pixels", "Reference pixels (dx + right, dy + down)"),
                        ("m/yr", "Metres per year (vx, vy along the CRS axes, y up)"))


class OffsetField(ABC):
    """Expected offsets (reference px) at map coordinates of the reference CRS."""

    @abstractmethod
    def sample(self, xs: np.ndarray, ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(dx, dy) in reference pixels at the points, NaN where unknown."""

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
        APRIORI_UNITS.check(units, "a-priori units")
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


def block_apriori(field: OffsetField, transform: Affine
                  ) -> Callable[[slice, slice], Tuple[np.ndarray, np.ndarray]]:
    """Callable (rows, cols) -> (dx, dy) expected offsets (px) of a block of output cells,
    sampled at the chip centres (``transform`` = the disparity grid's)."""

    def expected(rows: slice, cols: slice) -> Tuple[np.ndarray, np.ndarray]:
        jj, ii = np.meshgrid(np.arange(cols.start, cols.stop) + 0.5, np.arange(rows.start, rows.stop) + 0.5)
        xs, ys = transform * (jj, ii)
        return field.sample(np.asarray(xs), np.asarray(ys))

    return expected
