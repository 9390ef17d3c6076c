"""The two DEMs of a co-registration: checked, and put on one fit grid (the DEM's grid, coarsened
for very large DEMs so that memory stays bounded).

The DEM to align keeps its grid; the reference is resampled onto it with the project's resampler
(:class:`core.io.GridResampler`), so the reference may have any CRS (degrees included) and
resolution. The DEM itself must be in a projected CRS in metres (slopes need metres). Both must
share a vertical datum: when both CRSs declare a vertical part (a compound CRS such as
EPSG:32633+5773, or a 3-D geographic CRS = ellipsoidal heights) and they differ, the run is refused.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import rasterio.features
from affine import Affine
from rasterio.warp import transform_bounds

from ..errors import UserInputError
from ..io import Grid, GridResampler, open_raster, require_memory

#: The fit works on at most this many cells (2048 x 2048); a larger DEM is averaged onto a coarser grid.
MAX_FIT_CELLS = 1 << 22
#: Bytes per fit-grid cell while fitting (DEM, reference, slope, aspect, gradients, masks; float64):
#: measured 760 MB peak for a 3000 x 3000 DEM fitted on 1500 x 1500 cells, GDAL's block cache included.
FIT_BYTES_PER_CELL = 160


@dataclass(frozen=True)
class DemPair:
    """The checked inputs: the DEM's grid, its vertical unit and band description, the fit grid and
    its coarsening ``factor`` (1 = the DEM grid), and the vertical CRS names (None = not declared)."""

    dem_path: str
    reference_path: str
    grid: Grid
    fit_grid: Grid
    factor: int
    unit: str
    description: str
    dem_vertical: Optional[str]
    reference_vertical: Optional[str]

    @property
    def pixel_size(self) -> float:
        """The DEM's pixel size in metres (the mean of the two axes)."""
        t = self.grid.transform
        return 0.5 * (math.hypot(t.a, t.d) + math.hypot(t.b, t.e))


def vertical_crs_name(crs) -> Optional[str]:
    """The vertical part a CRS declares ('EGM96 height', 'ellipsoidal height (WGS_1984)'), or None."""
    from osgeo import osr

    if crs is None:
        return None
    srs = osr.SpatialReference()
    if srs.ImportFromWkt(crs.to_wkt()) != 0:
        return None
    if srs.IsCompound():
        return srs.GetAttrValue("COMPD_CS|VERT_CS") or "a vertical CRS"
    if srs.IsVertical():
        return srs.GetAttrValue("VERT_CS") or "a vertical CRS"
    if srs.IsGeographic() and srs.GetAxesCount() == 3:
        return f"ellipsoidal height ({srs.GetAttrValue('DATUM')})"
    return None


def _name(path: str) -> str:
    return os.path.basename(path)


def check_vertical_datums(dem_path: str, dem_crs, reference_path: str, reference_crs):
    """(DEM vertical, reference vertical) names; raise when both are declared and differ."""
    dem_vertical, reference_vertical = vertical_crs_name(dem_crs), vertical_crs_name(reference_crs)
    if dem_vertical and reference_vertical and dem_vertical != reference_vertical:
        raise UserInputError(
            f"The DEM '{_name(dem_path)}' has heights in '{dem_vertical}' but the reference DEM "
            f"'{_name(reference_path)}' in '{reference_vertical}': co-registration needs one vertical datum, "
            "else the geoid undulation (tens of metres) is fitted as a shift. Convert one of them first (e.g. "
            "with gdalwarp -t_srs to the other's compound CRS, which needs the geoid grid in PROJ's search "
            "path) and run again.")
    return dem_vertical, reference_vertical


def _check_dem_crs(ds, path: str) -> None:
    if ds.crs is None:
        raise UserInputError(f"The DEM '{_name(path)}' has no coordinate reference system. Assign its CRS "
                             "(e.g. with 'Assign projection' in QGIS) first.")
    if ds.crs.is_geographic:
        raise UserInputError(
            f"The DEM to align '{_name(path)}' is in a geographic CRS ({ds.crs.to_string()}): slopes and shifts "
            "need metres. Reproject it to a projected CRS in metres such as its UTM zone (the reference DEM may "
            "stay in degrees; it is resampled onto the DEM's grid).")
    unit, factor = ds.crs.linear_units_factor
    if abs(factor - 1.0) > 1e-9:
        raise UserInputError(
            f"The DEM to align '{_name(path)}' has its coordinates in {unit}, not metres. Reproject it to a "
            "projected CRS in metres such as its UTM zone.")


#: Height units accepted (GDAL band unit types); an empty unit is taken as metres.
METRE_UNITS = ("", "m", "metre", "meter", "metres", "meters")


def _check_band(ds, path: str, what: str) -> None:
    """One band of heights in metres."""
    if ds.count != 1:
        raise UserInputError(f"The {what} '{_name(path)}' has {ds.count} bands; a DEM has one band of heights. "
                             "Extract the elevation band first (e.g. 'Translate' with one band).")
    unit = (ds.units[0] or "") if ds.units else ""
    if unit.strip().lower() not in METRE_UNITS:
        raise UserInputError(f"The {what} '{_name(path)}' declares its heights in '{unit}'; the co-registration "
                             "works in metres. Convert the heights to metres first (Raster calculator).")


def _check_overlap(dem, reference, dem_path: str, reference_path: str) -> None:
    try:
        left, bottom, right, top = transform_bounds(reference.crs, dem.crs, *reference.bounds, densify_pts=21)
    except Exception as exc:  # noqa: BLE001 - PROJ errors of any kind mean the same to the user
        raise UserInputError(f"The extent of the reference DEM '{_name(reference_path)}' cannot be transformed "
                             f"into the CRS of the DEM ({exc}).") from exc
    d = dem.bounds
    if not (left < d.right and right > d.left and bottom < d.top and top > d.bottom) or \
            not all(np.isfinite([left, bottom, right, top])):
        raise UserInputError(
            f"The DEM '{_name(dem_path)}' and the reference DEM '{_name(reference_path)}' do not overlap (DEM "
            f"x {d.left:.0f}…{d.right:.0f}, y {d.bottom:.0f}…{d.top:.0f}; reference x {left:.0f}…{right:.0f}, "
            f"y {bottom:.0f}…{top:.0f} in {dem.crs.to_string()}). Choose a reference covering the DEM.")


def open_pair(dem_path: str, reference_path: str) -> DemPair:
    """Check the two DEMs and return their :class:`DemPair`."""
    with open_raster(dem_path) as dem, open_raster(reference_path) as reference:
        _check_dem_crs(dem, dem_path)
        _check_band(dem, dem_path, "DEM to align")
        _check_band(reference, reference_path, "reference DEM")
        if reference.crs is None:
            raise UserInputError(f"The reference DEM '{_name(reference_path)}' has no coordinate reference system. "
                                 "Assign its CRS first.")
        dem_vertical, reference_vertical = check_vertical_datums(dem_path, dem.crs, reference_path, reference.crs)
        _check_overlap(dem, reference, dem_path, reference_path)
        grid = Grid.of(dem)
        unit = (dem.units[0] if dem.units and dem.units[0] else "m")
        description = dem.descriptions[0] or "elevation"
    cells = grid.width * grid.height
    factor = max(1, math.ceil(math.sqrt(cells / MAX_FIT_CELLS)))
    fit_grid = grid if factor == 1 else Grid(grid.crs, grid.transform * Affine.scale(factor),
                                             -(-grid.width // factor), -(-grid.height // factor))
    require_memory(fit_grid.width * fit_grid.height * FIT_BYTES_PER_CELL, "Co-registering the DEMs",
                   "Close other programs or use a smaller DEM.")
    return DemPair(dem_path, reference_path, grid, fit_grid, factor, unit, description, dem_vertical,
                   reference_vertical)


def read_fit_arrays(pair: DemPair):
    """(DEM, reference) on the fit grid as float64 (NaN = no data): the DEM exactly on its own grid, the
    reference resampled with cubic convolution (both averaged when the fit grid is coarsened)."""
    coarse = pair.factor > 1
    with GridResampler(pair.fit_grid) as resampler:
        dem = resampler.read(pair.dem_path, 1, resampling="average" if coarse else "nearest", dtype=np.float64)
        reference = resampler.read(pair.reference_path, 1, resampling="average" if coarse else "cubic",
                                   dtype=np.float64)
    return dem, reference


def unstable_mask(grid: Grid, geometries: Optional[Sequence[dict]]) -> np.ndarray:
    """Cells of ``grid`` touched by the unstable-area polygons (GeoJSON geometries in the grid's CRS)."""
    shape = (grid.height, grid.width)
    if not geometries:
        return np.zeros(shape, bool)
    try:
        burned = rasterio.features.rasterize(((geometry, 1) for geometry in geometries), out_shape=shape,
                                             transform=grid.transform, fill=0, all_touched=True, dtype="uint8")
    except (ValueError, TypeError, KeyError) as exc:
        raise UserInputError(f"Cannot rasterise the unstable-area polygons: {exc}") from exc
    return burned.astype(bool)
