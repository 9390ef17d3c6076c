"""Polynomial de-ramping of disparity rasters (REFERENCE §6.1).

Orbit, attitude and orthorectification errors add smooth, large-scale
patterns ("ramps") to image offsets. They are modelled per component (dx and
dy separately) as a polynomial of total degree ``order`` in the scaled grid
column x, row y and, optionally, the scaled DEM elevation z, fitted by linear
least squares to *stable* ground and subtracted everywhere.

Predictors: x = column / (width - 1) and y = row / (height - 1), i.e. the
grid's columns and rows min-max scaled to [0, 1] over the full grid; z is the
DEM bilinearly resampled onto the grid and min-max scaled over its valid
cells. Offsets stay in reference pixels.

Files are processed in row blocks in two passes (collect fit points, then
write corrected blocks) so memory stays bounded for very large grids.
"""
from __future__ import annotations

import itertools
import json
import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio.features
import rasterio.transform
import rasterio.warp
from rasterio.windows import Window

from ..choices import Choices
from ..errors import UserInputError, check_canceled
from ..io import Grid, GridResampler, RasterWriter, open_raster, require_memory, resample_to_grid, row_blocks
from .disparity import (BASE_DESCRIPTIONS, DISPARITY_STYLE, describe_disparity, disparity_tags,
                        no_valid_offset_error, read_offsets, stable_ground_error)

#: Polynomial orders (values are the order as text).
ORDERS = Choices(("1", "1: plane (3 terms)"), ("2", "2: quadratic (6 terms)"), ("3", "3: cubic (10 terms)"))
TAG_POLYFIT_ORDER = "SM_POLYFIT_ORDER"
TAG_POLYFIT_DEM = "SM_POLYFIT_DEM"
TAG_POLYFIT_RMS_DX = "SM_POLYFIT_RMS_DX"
TAG_POLYFIT_RMS_DY = "SM_POLYFIT_RMS_DY"
#: The fitted ramp (JSON list of coefficients, constant first, see design_matrix; px) of dx and dy,
#: so that the ramp can be evaluated again (e.g. to remap the secondary for surfacemotion:timelapse).
TAG_POLYFIT_COEF_DX = "SM_POLYFIT_COEF_DX"
TAG_POLYFIT_COEF_DY = "SM_POLYFIT_COEF_DY"

#: Cells per row block (16 MB per float64 array); tests lower it to force many blocks.
_BLOCK_CELLS = 2_097_152
#: Points collected in pass 1 at most, as a multiple of ``max_fit_points``; a
#: regular lattice subsample keeps the percentile estimate unbiased and memory bounded.
_COLLECT_FACTOR = 2
#: Least-squares needs this many points per model term.
_POINTS_PER_TERM = 10
_NOTHING_LEFT_HINT = "The DEM has no elevation where the offsets are valid; use a DEM covering the area."


# --------------------------------------------------------------------------- model

def _exponents(order: int, n_vars: int) -> List[Tuple[int, ...]]:
    """Exponent tuples of all monomials of total degree <= order, by degree.

    For (x, y) this gives 1, x, y, x², xy, y², x³, x²y, xy², y³.
    """
    exponents = []
    for degree in range(order + 1):
        for combo in itertools.combinations_with_replacement(range(n_vars), degree):
            exponents.append(tuple(combo.count(var) for var in range(n_vars)))
    return exponents


def n_terms(order: int, with_dem: bool) -> int:
    """Number of monomials: 3/6/10 for orders 1/2/3 without DEM, 4/10/20 with DEM."""
    n_vars = 3 if with_dem else 2
    return math.comb(order + n_vars, n_vars)


def design_matrix(x: np.ndarray, y: np.ndarray, order: int, z: Optional[np.ndarray] = None) -> np.ndarray:
    """Columns = all monomials of total degree <= ``order`` in (x, y[, z]).

    Inputs are 1-D arrays of the same length, already scaled to [0, 1]; the
    column order is that of :func:`_exponents` (constant first).
    """
    variables = [np.asarray(x, np.float64), np.asarray(y, np.float64)]
    if z is not None:
        variables.append(np.asarray(z, np.float64))
    columns = []
    for exps in _exponents(order, len(variables)):
        column = np.ones(variables[0].shape, np.float64)
        for var, power in zip(variables, exps):
            if power:
                column = column * var ** power
        columns.append(column)
    return np.stack(columns, axis=-1)


def fit_ramp(values: np.ndarray, x: np.ndarray, y: np.ndarray, order: int,
             z: Optional[np.ndarray] = None) -> np.ndarray:
    """Least-squares polynomial coefficients (units of ``values``) of the ramp.

    Raises :class:`UserInputError` with fewer than 10 points per term.
    """
    needed = _POINTS_PER_TERM * n_terms(order, z is not None)
    if values.size < needed:
        raise UserInputError(
            f"too few stable valid pixels: {values.size} < {needed}; relax the percentile cut "
            "or the mask (or lower the polynomial order)."
        )
    matrix = design_matrix(x, y, order, z)
    coefficients, *_ = np.linalg.lstsq(matrix, np.asarray(values, np.float64), rcond=None)
    return coefficients


def evaluate_ramp(coefficients: np.ndarray, x: np.ndarray, y: np.ndarray, order: int,
                  z: Optional[np.ndarray] = None) -> np.ndarray:
    """Evaluate the polynomial on arrays of any (common) shape.

    Terms are accumulated one at a time so memory stays at a few arrays the
    size of ``x`` whatever the number of terms.
    """
    variables = [np.asarray(x, np.float64), np.asarray(y, np.float64)]
    if z is not None:
        variables.append(np.asarray(z, np.float64))
    total = np.zeros(variables[0].shape, np.float64)
    for coefficient, exps in zip(np.asarray(coefficients, np.float64), _exponents(order, len(variables))):
        term = np.full(total.shape, coefficient)
        for var, power in zip(variables, exps):
            if power:
                term *= var ** power
        total += term
    return total


# --------------------------------------------------------------------------- helpers

def lattice_stride(n_cells: int, max_cells: int) -> int:
    """Row/column stride of a regular lattice that keeps <= ``max_cells`` of ``n_cells``."""
    if n_cells <= max_cells:
        return 1
    return int(math.ceil(math.sqrt(n_cells / max(1, max_cells))))


def block_rows_for(width: int) -> int:
    """Rows per processing block: at most ``_BLOCK_CELLS`` cells, aligned with 256-row tiles.

    Whole multiples of 256 rows, or a power of two below that, so blocks never
    straddle a tile row of the tiled outputs (each tile is read/written once).
    """
    rows = max(1, _BLOCK_CELLS // max(1, width))
    return rows // 256 * 256 if rows >= 256 else 1 << (rows.bit_length() - 1)


def _scaled_axis(index: np.ndarray, size: int) -> np.ndarray:
    """Grid index 0..size-1 min-max scaled to [0, 1] (0 for a single cell)."""
    return index.astype(np.float64) / (size - 1) if size > 1 else np.zeros(index.shape, np.float64)


def _check_parameters(order: int, percentile_low: float, percentile_high: float, max_fit_points: int) -> None:
    if order not in (1, 2, 3):
        raise UserInputError(f"Polynomial order must be 1, 2 or 3 (got {order}).")
    if not (0.0 <= percentile_low < percentile_high <= 100.0):
        raise UserInputError(
            f"Percentiles must satisfy 0 <= low < high <= 100 (got low={percentile_low}, "
            f"high={percentile_high})."
        )
    if max_fit_points < 1:
        raise UserInputError(f"Maximum number of fit points must be positive (got {max_fit_points}).")


def check_grid_mask(mask: Optional[np.ndarray], height: int, width: int, what: str) -> Optional[np.ndarray]:
    """Return ``mask`` as a bool array, raising if it is not on the (height, width) grid."""
    if mask is None:
        return None
    mask = np.asarray(mask, bool)
    if mask.shape != (height, width):
        raise UserInputError(
            f"The {what} has shape {mask.shape} but the disparity grid is {(height, width)} "
            "(rows, columns); build it on the disparity grid."
        )
    return mask


# --------------------------------------------------------------------------- masks

def moving_mask_from_raster(mask_path: str, disp_path: str) -> np.ndarray:
    """Boolean moving-area mask on the disparity grid from a mask raster.

    The mask raster is resampled by nearest neighbour onto the disparity grid;
    nonzero cells are moving, zero, nodata and cells outside the mask raster
    are not moving.
    """
    info = describe_disparity(disp_path)
    with open_raster(mask_path) as src:
        if src.crs is None:
            raise UserInputError(
                f"The moving-area mask '{mask_path}' has no coordinate reference system; assign one."
            )
    _require_mask_memory(info)
    values = resample_to_grid(mask_path, _grid_of(info), resampling="nearest", dtype=np.float32)
    return np.isfinite(values) & (values != 0)


#: A moving-area mask on the disparity grid: float32 resampling plus the boolean result (bytes per cell).
_MASK_BYTES_PER_CELL = 6


def _require_mask_memory(info) -> None:
    require_memory(_MASK_BYTES_PER_CELL * info.width * info.height,
                   f"A moving-area mask on the {info.width} x {info.height} cells of '{os.path.basename(info.path)}'",
                   "Correlate with a larger STEP (a coarser disparity grid) or over a smaller area, or leave the "
                   "moving area empty.")


def _grid_of(info) -> Grid:
    return Grid(info.crs, info.transform, info.width, info.height)


def moving_mask_from_geometries(geojson_geometries: Sequence[dict], disp_path: str) -> np.ndarray:
    """Boolean moving-area mask on the disparity grid from GeoJSON geometries.

    Geometries must already be in the disparity CRS; every cell touched by a
    geometry is moving (``all_touched=True``).
    """
    info = describe_disparity(disp_path)
    shape = (info.height, info.width)
    _require_mask_memory(info)
    if not geojson_geometries:
        return np.zeros(shape, bool)
    try:
        burned = rasterio.features.rasterize(
            ((geometry, 1) for geometry in geojson_geometries), out_shape=shape,
            transform=info.transform, fill=0, all_touched=True, dtype="uint8",
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise UserInputError(f"Cannot rasterise the moving-area polygons: {exc}") from exc
    return burned.astype(bool)


# --------------------------------------------------------------------------- DEM

class _DemOnGrid:
    """Bilinear resampling of a DEM onto row blocks of the disparity grid."""

    def __init__(self, dem_path: str, info) -> None:
        self.path = dem_path
        self.info = info
        with open_raster(dem_path) as ds:
            self._check_overlap(ds)
        self.resampler = GridResampler(_grid_of(info), "bilinear")

    def _check_overlap(self, ds) -> None:
        if ds.crs is None:
            raise UserInputError(
                f"The DEM '{self.path}' has no coordinate reference system; assign one."
            )
        try:
            left, bottom, right, top = rasterio.warp.transform_bounds(ds.crs, self.info.crs, *ds.bounds)
        except Exception as exc:  # noqa: BLE001 - PROJ raises various types
            raise UserInputError(
                f"The DEM '{self.path}' is in a CRS ({ds.crs}) that cannot be reprojected to the "
                f"disparity CRS ({self.info.crs}): {exc}. Reproject the DEM first."
            ) from exc
        d_left, d_bottom, d_right, d_top = rasterio.transform.array_bounds(
            self.info.height, self.info.width, self.info.transform)
        if not all(math.isfinite(v) for v in (left, bottom, right, top)) or \
                left >= d_right or right <= d_left or bottom >= d_top or top <= d_bottom:
            raise UserInputError(
                f"The DEM '{self.path}' does not overlap the disparity raster; use a DEM that "
                "covers the area."
            )

    def block(self, row0: int, row1: int) -> np.ndarray:
        """Elevation (DEM units) on grid rows [row0, row1); NaN where the DEM has no data."""
        return self.resampler.read_rows(self.path, row0, row1).astype(np.float64)

    def close(self) -> None:
        self.resampler.close()


# --------------------------------------------------------------------------- pass 1

class _FitSamples:
    """Fit candidates gathered on a regular lattice during pass 1."""

    def __init__(self) -> None:
        self.rows: List[np.ndarray] = []
        self.cols: List[np.ndarray] = []
        self.dx: List[np.ndarray] = []
        self.dy: List[np.ndarray] = []
        self.z: List[np.ndarray] = []
        self.z_min = math.inf
        self.z_max = -math.inf

    def add(self, row0: int, stride: int, dx: np.ndarray, dy: np.ndarray,
            moving: Optional[np.ndarray], z: Optional[np.ndarray]) -> None:
        if z is not None:
            finite = z[np.isfinite(z)]
            if finite.size:
                self.z_min = min(self.z_min, float(finite.min()))
                self.z_max = max(self.z_max, float(finite.max()))
        first = (-row0) % stride
        take = (slice(first, None, stride), slice(0, None, stride))
        keep = np.isfinite(dx[take]) | np.isfinite(dy[take])
        if moving is not None:
            keep &= ~moving[take]
        if z is not None:
            keep &= np.isfinite(z[take])
        rows, cols = np.nonzero(keep)
        self.rows.append((rows * stride + first + row0).astype(np.int32))
        self.cols.append((cols * stride).astype(np.int32))
        self.dx.append(dx[take][keep].astype(np.float32))
        self.dy.append(dy[take][keep].astype(np.float32))
        if z is not None:
            self.z.append(z[take][keep].astype(np.float32))

    def arrays(self):
        cat = (lambda parts: np.concatenate(parts) if parts else np.empty(0))
        return (cat(self.rows), cat(self.cols), cat(self.dx).astype(np.float64),
                cat(self.dy).astype(np.float64), cat(self.z).astype(np.float64) if self.z else None)


def _scale_z(z: np.ndarray, z_min: float, z_max: float) -> np.ndarray:
    span = z_max - z_min
    return (z - z_min) / span if span > 0 else np.zeros_like(z)


def _fit_component(values: np.ndarray, x: np.ndarray, y: np.ndarray, z: Optional[np.ndarray],
                   order: int, percentile_low: float, percentile_high: float,
                   max_fit_points: int) -> Tuple[np.ndarray, int, float, float]:
    """Percentile cut, deterministic subsample, fit; returns (coefs, n, rms_before, rms_after)."""
    usable = np.isfinite(values)
    values, x, y = values[usable], x[usable], y[usable]
    z = z[usable] if z is not None else None
    if values.size:
        low, high = np.percentile(values, [percentile_low, percentile_high])
        inside = (values >= low) & (values <= high)
        values, x, y = values[inside], x[inside], y[inside]
        z = z[inside] if z is not None else None
    if values.size > max_fit_points:
        pick = np.linspace(0, values.size - 1, max_fit_points).round().astype(np.int64)
        values, x, y = values[pick], x[pick], y[pick]
        z = z[pick] if z is not None else None
    coefficients = fit_ramp(values, x, y, order, z)
    residual = values - evaluate_ramp(coefficients, x, y, order, z)
    return (coefficients, int(values.size), float(np.sqrt(np.mean(values ** 2))),
            float(np.sqrt(np.mean(residual ** 2))))


# --------------------------------------------------------------------------- file

def deramp_file(disp_path: str, out_path: str, order: int = 2, moving_mask: Optional[np.ndarray] = None,
                dem_path: Optional[str] = None, percentile_low: float = 5.0, percentile_high: float = 95.0,
                max_fit_points: int = 1_000_000, progress: Optional[Callable[[float], None]] = None,
                is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, object]:
    """Fit and remove a polynomial ramp from dx and dy of a disparity raster.

    ``disp_path`` is one of our disparity rasters or an ASP ``-F.tif``;
    ``moving_mask`` (bool, disparity grid, True = moving) excludes moving
    ground from the fit; ``dem_path`` adds elevation as a third predictor
    (DEM-nodata cells are excluded and become invalid in the output).
    The output keeps our format (ASP inputs become 4-band dx, dy, valid,
    PEAK = NaN with ``SM_STEP=1``). Offsets are in reference pixels.

    Returns n_fit_points_dx/dy, coefficients_dx/dy (constant term first, see
    :func:`design_matrix`), rms_before_dx/dy and rms_after_dx/dy (px, over
    the fit points).
    """
    _check_parameters(order, percentile_low, percentile_high, max_fit_points)
    info = describe_disparity(disp_path)
    moving_mask = check_grid_mask(moving_mask, info.height, info.width, "moving-area mask")
    dem = _DemOnGrid(dem_path, info) if dem_path else None
    try:
        with open_raster(disp_path) as src:
            samples = _collect_fit_samples(src, info, moving_mask, dem, max_fit_points, progress, is_canceled)
            result, fit_rms = _fit_both(samples, info, order, percentile_low, percentile_high, max_fit_points)
            tags = _output_tags(src, info, order, dem_path, fit_rms)
            tags[TAG_POLYFIT_COEF_DX] = json.dumps(result["coefficients_dx"])
            tags[TAG_POLYFIT_COEF_DY] = json.dumps(result["coefficients_dy"])
            _write_corrected(src, out_path, info, result, samples, order, dem, tags, progress, is_canceled)
    finally:
        if dem is not None:
            dem.close()
    return result


def _collect_fit_samples(src, info, moving_mask, dem, max_fit_points, progress, is_canceled) -> _FitSamples:
    stride = lattice_stride(info.width * info.height, _COLLECT_FACTOR * max_fit_points)
    samples = _FitSamples()
    n_valid = n_stable = 0
    for row0, row1 in row_blocks(info.height, block_rows_for(info.width)):
        check_canceled(is_canceled)
        window = Window(0, row0, info.width, row1 - row0)
        dx, dy, valid = read_offsets(src, window=window, is_asp=info.is_asp)
        moving = moving_mask[row0:row1] if moving_mask is not None else None
        n_valid += int(valid.sum())
        n_stable += int((valid & ~moving).sum()) if moving is not None else int(valid.sum())
        z = dem.block(row0, row1) if dem is not None else None
        samples.add(row0, stride, dx, dy, moving, z)
        if progress is not None:
            progress(50.0 * row1 / info.height)
    if n_valid == 0:
        raise no_valid_offset_error(info.path)
    if n_stable == 0:
        raise stable_ground_error(info.path, n_valid)
    if dem is not None and not math.isfinite(samples.z_min):
        raise UserInputError(
            f"The DEM '{dem.path}' has no valid elevation over the disparity raster; use a DEM "
            "that covers the area."
        )
    return samples


def _fit_both(samples: _FitSamples, info, order, percentile_low, percentile_high, max_fit_points):
    rows, cols, dx, dy, z = samples.arrays()
    x = _scaled_axis(cols, info.width)
    y = _scaled_axis(rows, info.height)
    zs = _scale_z(z, samples.z_min, samples.z_max) if z is not None else None
    result: Dict[str, object] = {}
    fit_rms = {}
    for name, values in (("dx", dx), ("dy", dy)):
        coefficients, n, rms_before, rms_after = _fit_component(
            values, x, y, zs, order, percentile_low, percentile_high, max_fit_points)
        result[f"n_fit_points_{name}"] = n
        result[f"coefficients_{name}"] = [float(c) for c in coefficients]
        result[f"rms_before_{name}"] = rms_before
        result[f"rms_after_{name}"] = rms_after
        fit_rms[name] = rms_after
    return result, fit_rms


def _output_tags(src, info, order, dem_path, fit_rms) -> Dict[str, str]:
    tags = dict(src.tags())
    if info.is_asp:
        tags.update(disparity_tags(step=1))
    tags[TAG_POLYFIT_ORDER] = str(order)
    tags[TAG_POLYFIT_DEM] = os.path.basename(dem_path) if dem_path else "none"
    tags[TAG_POLYFIT_RMS_DX] = f"{fit_rms['dx']:.6g}"
    tags[TAG_POLYFIT_RMS_DY] = f"{fit_rms['dy']:.6g}"
    return tags


def _write_corrected(src, out_path, info, result, samples, order, dem, tags, progress, is_canceled) -> None:
    count = 4 if info.is_asp else src.count
    descriptions = BASE_DESCRIPTIONS if info.is_asp else info.descriptions
    coef_dx = np.asarray(result["coefficients_dx"])
    coef_dy = np.asarray(result["coefficients_dy"])
    x_row = _scaled_axis(np.arange(info.width), info.width)
    with RasterWriter(out_path, _grid_of(info), descriptions, tags=tags, style=DISPARITY_STYLE,
                      require_valid=_NOTHING_LEFT_HINT) as dst:
        for row0, row1 in row_blocks(info.height, block_rows_for(info.width)):
            check_canceled(is_canceled)
            window = Window(0, row0, info.width, row1 - row0)
            dx, dy, valid = read_offsets(src, window=window, is_asp=info.is_asp)
            y_col = _scaled_axis(np.arange(row0, row1), info.height)
            x_grid, y_grid = np.meshgrid(x_row, y_col)
            z = None
            if dem is not None:
                z_raw = dem.block(row0, row1)
                valid &= np.isfinite(z_raw)
                z = _scale_z(np.where(np.isfinite(z_raw), z_raw, samples.z_min), samples.z_min, samples.z_max)
            dx = np.where(valid, dx - evaluate_ramp(coef_dx, x_grid, y_grid, order, z), np.nan)
            dy = np.where(valid, dy - evaluate_ramp(coef_dy, x_grid, y_grid, order, z), np.nan)
            dst.write(dx.astype(np.float32), 1, window=window)
            dst.write(dy.astype(np.float32), 2, window=window)
            dst.write(valid.astype(np.float32), 3, window=window)
            if info.is_asp:
                dst.write(np.full(dx.shape, np.nan, np.float32), 4, window=window)
            else:
                for band in range(4, count + 1):
                    dst.write(src.read(band, window=window).astype(np.float32), band, window=window)
            if progress is not None:
                progress(50.0 + 50.0 * row1 / info.height)
