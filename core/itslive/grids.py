"""Velocity grids for the ITS_LIVE analyses: reading vx/vy rasters, grid geometry and
finite differences with the correct sign on north-up rasters (REFERENCE §8.5).

Conventions: x = grid east (columns), y = grid north. A pixel at (row, col) has
map coordinates x = c + a·(col + ½), y = f + e·(row + ½) for the geotransform
Affine(a, 0, c, 0, e, f); on a north-up raster e < 0, so ∂/∂y = (1/e)·∂/∂row
= −∂/∂row / |Δy|. Velocities are m/yr, strain rates 1/yr.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from affine import Affine

from ..errors import UserInputError
from ..io import Grid, open_raster, require_crs, require_memory

_DATE_PATTERN = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?")


@dataclass
class VelocityGrid:
    """vx, vy (m/yr, shape (n_layers, rows, cols), NaN = no data) on one north-up grid.

    ``dates`` holds one datetime per layer (the start of the period the layer
    represents) or None when the layers carry no dates.
    """

    vx: np.ndarray
    vy: np.ndarray
    transform: Affine
    crs_wkt: str
    dates: Optional[List[_dt.datetime]] = None

    @property
    def shape(self) -> Tuple[int, int]:
        return self.vx.shape[-2:]

    def output_grid(self, transform: Optional[Affine] = None, shape: Optional[Tuple[int, int]] = None) -> Grid:
        """The output :class:`core.io.Grid` in this CRS: this grid, or ``transform``/``shape`` (e.g. decimated)."""
        height, width = shape or self.shape
        return Grid(self.crs_wkt, transform or self.transform, width, height)


def parse_date(text: str) -> Optional[_dt.datetime]:
    """The first ISO date (optionally with time) in ``text``, or None."""
    match = _DATE_PATTERN.search(text or "")
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    return _dt.datetime(year, month, day, hour, minute, second)


def check_north_up(transform: Affine, name: str) -> None:
    """Refuse rotated grids: the derivatives here assume rows along y and columns along x."""
    if transform.b != 0 or transform.d != 0:
        raise UserInputError(
            f"'{name}' has a rotated geotransform; warp it to a north-up grid first "
            "(Raster → Projections → Warp).")


#: Grids of float64 an analysis holds per velocity layer read (vx, vy, derivatives, outputs).
WORK_GRIDS_PER_LAYER = 16
MEMORY_HINT = ("Use a coarser grid (resample vx and vy, e.g. with gdalwarp -tr) or a smaller area (clip them to the "
               "glacier), or fewer bands.")


def read_band_stack(path: str, bands: Optional[List[int]] = None) -> Tuple[np.ndarray, object, List[str]]:
    """Bands of a raster as float64 with nodata → NaN; returns (stack, dataset profile, descriptions).
    The memory the analysis will need is estimated before anything is read; bands that are all
    nodata are refused."""
    with open_raster(path) as ds:
        require_crs(ds, "velocity raster")
        check_north_up(ds.transform, path)
        bands = bands or list(range(1, ds.count + 1))
        for band in bands:
            if not 1 <= band <= ds.count:
                raise UserInputError(
                    f"'{path}' has {ds.count} band(s); band {band} does not exist. Choose a band "
                    f"(time step) between 1 and {ds.count}.")
        require_memory(8.0 * WORK_GRIDS_PER_LAYER * len(bands) * ds.height * ds.width,
                       f"The velocity raster '{os.path.basename(path)}' ({ds.width} x {ds.height} cells, "
                       f"{len(bands)} band(s))", MEMORY_HINT)
        stack = np.stack([ds.read_float(band) for band in bands])
        if not np.isfinite(stack).any():
            raise UserInputError(
                f"The velocity raster '{os.path.basename(path)}' is all nodata in band(s) "
                f"{', '.join(str(b) for b in bands)}: there is no velocity to use. Choose another band (time "
                "step) or file.")
        descriptions = [ds.descriptions[b - 1] or "" for b in bands]
        return stack, {"transform": ds.transform, "crs": ds.crs, "shape": (ds.height, ds.width),
                       "path": path}, descriptions


def read_velocity(vx_path: str, vy_path: str, bands: Optional[List[int]] = None) -> VelocityGrid:
    """vx and vy rasters (same grid) as a :class:`VelocityGrid`; dates from band descriptions."""
    vx, vx_info, descriptions = read_band_stack(vx_path, bands)
    vy, vy_info, _ = read_band_stack(vy_path, bands)
    if vx_info["shape"] != vy_info["shape"] or not vx_info["transform"].almost_equals(vy_info["transform"]):
        raise UserInputError(
            f"vx '{vx_path}' and vy '{vy_path}' are not on the same grid ({_grid_difference(vx_info, vy_info)}); "
            "use the two components of one product.")
    if vx.shape[0] != vy.shape[0]:
        raise UserInputError(
            f"vx has {vx.shape[0]} band(s) but vy has {vy.shape[0]}; give matching stacks.")
    if vx_info["crs"] != vy_info["crs"]:
        raise UserInputError(f"vx and vy are in different CRSs ({vx_info['crs']} vs {vy_info['crs']}).")
    dates = [parse_date(text) for text in descriptions]
    return VelocityGrid(vx, vy, vx_info["transform"], vx_info["crs"].to_wkt(),
                        dates if all(d is not None for d in dates) else None)


def _grid_difference(a: dict, b: dict) -> str:
    """What differs between two grids, in words ("2 x 2 vs 240 x 240 cells", "origin ...", "pixel size ...")."""
    if a["shape"] != b["shape"]:
        return f"{a['shape'][1]} x {a['shape'][0]} vs {b['shape'][1]} x {b['shape'][0]} cells"
    ta, tb = a["transform"], b["transform"]
    if (ta.a, ta.e) != (tb.a, tb.e):
        return f"pixel size {abs(ta.a):g} x {abs(ta.e):g} vs {abs(tb.a):g} x {abs(tb.e):g}"
    return f"same size, but the origins differ: ({ta.c:.3f}, {ta.f:.3f}) vs ({tb.c:.3f}, {tb.f:.3f})"


def stencil_radius(length_scale_m: float, transform: Affine) -> int:
    """Half-baseline r in pixels: max(1, round(L / Δ)), Δ = the smaller pixel size."""
    pixel = min(abs(transform.a), abs(transform.e))
    return max(1, int(round(float(length_scale_m or 0.0) / pixel)))


def centred_derivatives(field: np.ndarray, transform: Affine, r: int) -> Tuple[np.ndarray, np.ndarray]:
    """(∂f/∂x, ∂f/∂y) by centred differences over ±r pixels; NaN within r of the edges.

    ∂/∂x = Δcol / (2 r a) and ∂/∂y = Δrow / (2 r e): on a north-up grid (e < 0)
    increasing row means decreasing y, hence the sign.
    """
    d_dx = np.full(field.shape, np.nan)
    d_dy = np.full(field.shape, np.nan)
    if field.shape[1] > 2 * r:
        d_dx[:, r:-r] = (field[:, 2 * r:] - field[:, :-2 * r]) / (2 * r * transform.a)
    if field.shape[0] > 2 * r:
        d_dy[r:-r, :] = (field[2 * r:, :] - field[:-2 * r, :]) / (2 * r * transform.e)
    return d_dx, d_dy


def decimate(grid_array: np.ndarray, transform: Affine, factor: int) -> Tuple[np.ndarray, Affine]:
    """``array[::u, ::u]`` (the notebooks' "upscale", no averaging) and the coarse grid whose
    pixel centres sit on the kept samples."""
    factor = int(factor)
    if factor <= 1:
        return grid_array, transform
    coarse = grid_array[..., ::factor, ::factor]
    a, e = transform.a, transform.e
    origin_x = transform.c + a / 2.0 - a * factor / 2.0
    origin_y = transform.f + e / 2.0 - e * factor / 2.0
    return coarse, Affine(a * factor, 0.0, origin_x, 0.0, e * factor, origin_y)


def bilinear(field: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Bilinear interpolation at fractional pixel-centre coordinates (col, row).

    Pixel (i, j) has its centre at (col, row) = (j, i). NaN outside the grid or when any
    of the four corners is NaN.
    """
    cols = np.asarray(cols, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    height, width = field.shape
    inside = (cols >= 0) & (cols <= width - 1) & (rows >= 0) & (rows <= height - 1)
    c = np.where(inside, cols, 0.0)
    r = np.where(inside, rows, 0.0)
    j0 = np.clip(np.floor(c).astype(np.int64), 0, max(width - 2, 0))
    i0 = np.clip(np.floor(r).astype(np.int64), 0, max(height - 2, 0))
    j1 = np.minimum(j0 + 1, width - 1)
    i1 = np.minimum(i0 + 1, height - 1)
    fc = c - j0
    fr = r - i0
    value = (field[i0, j0] * (1 - fc) * (1 - fr) + field[i0, j1] * fc * (1 - fr)
             + field[i1, j0] * (1 - fc) * fr + field[i1, j1] * fc * fr)
    return np.where(inside, value, np.nan)


def map_to_pixel(transform: Affine, x, y) -> Tuple[np.ndarray, np.ndarray]:
    """Fractional pixel-centre coordinates (col, row) of map x, y."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return (x - transform.c) / transform.a - 0.5, (y - transform.f) / transform.e - 0.5
