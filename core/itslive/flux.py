"""Flux divergence ∇·(H v) (REFERENCE §8.6), in m/yr (ice-equivalent thickness change rate).

∇·(H v) = ∂(f·H·vx)/∂x + ∂(f·H·vy)/∂y with x east, y north, centred differences over ±r
pixels on the velocity grid and the north-up sign of ∂/∂y. Positive = divergence = dynamic
thinning (∂H/∂t = ḃ − ∇·(H v)). f converts surface to column-mean speed (default 1.0, typically
0.8-1.0). The thickness is resampled bilinearly onto the velocity grid (its nodata honoured,
never zero-filled); cells outside the glacier outline are NaN.
"""
from __future__ import annotations

import csv
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from affine import Affine

from ..errors import UserInputError, check_canceled
from ..io import resample_to_grid, write_raster
from .grids import centred_derivatives, read_velocity, stencil_radius

FLUX_BANDS = (("flux_divergence", "m/yr"), ("thickness", "m"), ("qx", "m2/yr"), ("qy", "m2/yr"))
#: The sidecar style of the output (flux divergence, band 1).
FLUX_STYLE = "flux_divergence"


def flux_divergence(thickness: np.ndarray, vx: np.ndarray, vy: np.ndarray, transform: Affine, r: int = 1,
                    column_factor: float = 1.0) -> Dict[str, np.ndarray]:
    """∇·(H v) (m/yr) and the fluxes qx, qy (m²/yr) on the velocity grid."""
    qx = column_factor * thickness * vx
    qy = column_factor * thickness * vy
    dqx_dx, _ = centred_derivatives(qx, transform, r)
    _, dqy_dy = centred_derivatives(qy, transform, r)
    return {"flux_divergence": dqx_dx + dqy_dy, "thickness": thickness, "qx": qx, "qy": qy}


def outline_polygons_from_csv(path: str) -> List[dict]:
    """GeoJSON polygons from a CSV of outline vertices (the notebooks' format).

    Columns named x and y (any case) are used, otherwise the last two columns; a ``fid`` column,
    when present, separates several polygons. Coordinates must be in the velocity CRS.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise UserInputError(f"Cannot read the outline CSV '{path}': {exc.strerror or exc}.") from exc
    if not rows or not rows[0]:
        raise UserInputError(f"The outline CSV '{path}' is empty.")
    header = [name.strip().lower() for name in rows[0]]
    has_header = not _is_number(rows[0][-1])
    body = rows[1:] if has_header else rows
    if has_header and "x" in header and "y" in header:
        ix, iy = header.index("x"), header.index("y")
    else:
        ix, iy = len(rows[0]) - 2, len(rows[0]) - 1
    ifid = header.index("fid") if has_header and "fid" in header else None
    rings: Dict[str, list] = {}
    for line_number, row in enumerate(body, start=2 if has_header else 1):
        if not row:
            continue
        try:
            vertex = (float(row[ix]), float(row[iy]))
        except (ValueError, IndexError) as exc:
            raise UserInputError(f"Outline CSV '{path}' line {line_number}: x, y are not numbers ({row}).") from exc
        rings.setdefault(row[ifid] if ifid is not None else "1", []).append(vertex)
    polygons = []
    for ring in rings.values():
        if len(ring) < 3:
            raise UserInputError(f"An outline in '{path}' has fewer than 3 vertices.")
        if ring[0] != ring[-1]:
            ring.append(ring[0])
        polygons.append({"type": "Polygon", "coordinates": [ring]})
    return polygons


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def outline_mask(polygons: Sequence[dict], shape, transform: Affine) -> np.ndarray:
    """True for cells whose centre lies inside any polygon."""
    from rasterio.features import rasterize

    if not polygons:
        raise UserInputError("The glacier outline is empty; give a polygon layer or a CSV of vertices.")
    return rasterize([(p, 1) for p in polygons], out_shape=shape, transform=transform, fill=0,
                     dtype="uint8").astype(bool)


def flux_divergence_file(thickness_path: str, vx_path: str, vy_path: str, output_path: str,
                         outline_polygons: Optional[Sequence[dict]] = None, outline_csv: Optional[str] = None,
                         band: int = 1, length_scale_m: float = 0.0, column_factor: float = 1.0,
                         progress: Optional[Callable[[float], None]] = None,
                         is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, object]:
    """Write a float32 GeoTIFF on the velocity grid: band 1 ∇·(H v) (m/yr), 2 thickness (m),
    3 qx, 4 qy (m²/yr). Negative thickness cells (after resampling) are nodata; their count is
    returned as ``n_negative_thickness``. Outline polygons (GeoJSON, velocity CRS) or a CSV of vertices limit the
    output to the glacier (optional: without them the whole grid is kept)."""
    grid = read_velocity(vx_path, vy_path, [band])
    shape = grid.shape
    check_canceled(is_canceled)
    # bilinear onto the velocity grid, the thickness's nodata (and everything outside it) NaN, never 0
    thickness = resample_to_grid(thickness_path, grid.output_grid(), 1, "bilinear")
    if not np.isfinite(thickness).any():
        raise UserInputError(
            f"The thickness raster '{thickness_path}' does not overlap the velocity grid (or is all nodata).")
    with np.errstate(invalid="ignore"):
        negative = thickness < 0
    n_negative = int(negative.sum())
    thickness[negative] = np.nan  # a negative ice thickness is an error of the thickness product
    if not np.isfinite(thickness).any():
        raise UserInputError(
            f"The thickness raster '{thickness_path}' has no cell with a thickness of 0 m or more on the velocity "
            f"grid ({n_negative} negative cells): ice thickness cannot be negative. Check the product and its "
            "units (metres of ice).")
    if progress:
        progress(30.0)
    polygons = list(outline_polygons or [])
    if outline_csv:
        polygons += outline_polygons_from_csv(outline_csv)
    r = stencil_radius(length_scale_m, grid.transform)
    result = flux_divergence(thickness, grid.vx[0], grid.vy[0], grid.transform, r, column_factor)
    inside = outline_mask(polygons, shape, grid.transform) if polygons else np.ones(shape, bool)
    if polygons and not inside.any():
        raise UserInputError("The glacier outline does not overlap the velocity grid; check its CRS "
                             "(the CSV must be in the velocity raster's CRS).")
    check_canceled(is_canceled)
    bands = [np.where(inside, result[name], np.nan) for name, _ in FLUX_BANDS]
    hint = (f"No cell {'inside the outline ' if polygons else ''}has a thickness and valid vx, vy at ±{r} "
            f"cell(s) around it in band {band}; check that the thickness, the velocity band and the outline "
            "cover the same glacier, or use a smaller length scale.")
    write_raster(output_path, grid.output_grid(), bands, [f"{name} ({unit})" for name, unit in FLUX_BANDS],
                 tags={"SM_COLUMN_FACTOR": column_factor, "SM_LENGTH_SCALE_PX": r,
                       "SM_SIGN": "flux divergence positive = dynamic thinning (m/yr)"},
                 style=FLUX_STYLE, require_valid=hint)
    if progress:
        progress(100.0)
    finite = bands[0][np.isfinite(bands[0])]
    return {"path": output_path, "radius_px": r, "n_cells": int(finite.size), "n_negative_thickness": n_negative,
            "median_m_per_yr": float(np.median(finite)) if finite.size else float("nan")}
