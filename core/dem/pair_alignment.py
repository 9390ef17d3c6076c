"""Align a DEM to an L1B scene pair: orthorectify, correlate, fit the DEM shift, repeat (REFERENCE §7.2).

The driver around :func:`core.dem.disparity_alignment.fit_dem_shift`: every iteration orthorectifies
both scenes onto the current DEM on one grid (:mod:`core.ortho.orthorectify`), correlates the orthos
(:func:`core.offsets.correlate.correlate_files`), samples the DEM's slope and both scenes' parallax
sensitivities (:func:`core.ortho.parallax.parallax_sensitivity`) at the disparity cells, fits the
horizontal shift and moves the DEM by minus it (its geotransform only: heights are not resampled).
It stops when a step is below ``tolerance`` metres or after ``iterations``. The output is the input
DEM with the total shift applied to its geotransform (the same heights, CRS, nodata).
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
from affine import Affine

from ..errors import UserInputError, check_canceled
from ..io import Grid, OutputSet, RasterWriter, open_raster, temporary_folder
from ..io.read import gdal_call
from ..io.verify import csv_rows
from ..io.grid import row_blocks
from ..offsets.correlate import correlate_files
from ..offsets.disparity import read_offsets
from ..ortho.aoi import LONLAT, horizontal_wkt, reproject_geometry, transformer
from ..ortho.orthorectify import DemSampler, job_grid, orthorectify_scene
from ..ortho.parallax import parallax_sensitivity
from ..ortho.rpc import RpcModel, read_rpc
from ..ortho.vdatum import ellipsoidal_shift, resolve_datum
from .coregister import check_outputs
from .disparity_alignment import ShiftFit, fit_dem_shift

#: Metres per degree of latitude (spherical; the shifts are metres, a 0.3 % error is irrelevant).
METRES_PER_DEGREE = math.pi / 180.0 * 6371008.8
#: Fewest valid stable disparity cells a fit accepts (8 unknowns, 10 cells each).
MIN_CELLS = 80
#: Slope is the central difference over this many metres.
SLOPE_BASE = 30.0
#: Tags written into the aligned DEM.
TAG_SHIFT_EAST, TAG_SHIFT_NORTH = "SM_DEM_SHIFT_EAST_M", "SM_DEM_SHIFT_NORTH_M"
#: Columns of the report: per iteration its step and the cumulative shift applied to the DEM (m, east x,
#: north y: the output is the input DEM moved by shift_x_m, shift_y_m, as coregisterdem's report), the
#: standard errors of the step, the disparity NMAD (m) before and after the fitted model, the cells used.
REPORT_COLUMNS = ("iteration", "step_x_m", "step_y_m", "shift_x_m", "shift_y_m", "sigma_x_m", "sigma_y_m",
                  "disparity_nmad_before_m", "disparity_nmad_after_m", "stable_cells", "converged")


@dataclass
class PairAlignment:
    """Result: ``shift_east`` / ``shift_north`` applied to the DEM (m; the output DEM = input moved by
    these), the fits of every iteration, whether the steps converged, and the output ``path``."""

    path: str
    shift_east: float = 0.0
    shift_north: float = 0.0
    fits: List[ShiftFit] = field(default_factory=list)
    converged: bool = False

    def report_rows(self) -> List[dict]:
        """One row per iteration (see :data:`REPORT_COLUMNS`); ``converged`` on the last row."""
        rows, east, north = [], 0.0, 0.0
        for index, fit in enumerate(self.fits, start=1):
            east, north = east - fit.shift_east, north - fit.shift_north
            rows.append({"iteration": index, "step_x_m": f"{-fit.shift_east:.4f}",
                         "step_y_m": f"{-fit.shift_north:.4f}", "shift_x_m": f"{east:.4f}",
                         "shift_y_m": f"{north:.4f}", "sigma_x_m": f"{fit.sigma_east:.4f}",
                         "sigma_y_m": f"{fit.sigma_north:.4f}", "disparity_nmad_before_m": f"{fit.nmad_before:.4f}",
                         "disparity_nmad_after_m": f"{fit.nmad_after:.4f}", "stable_cells": fit.cells,
                         "converged": ("yes" if self.converged else "no") if index == len(self.fits) else ""})
        return rows

    def report_text(self) -> str:
        """The report as CSV text."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, REPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.report_rows())
        return buffer.getvalue()


def shifted_transform(transform: Affine, crs, east: float, north: float) -> Affine:
    """``transform`` moved ``east`` / ``north`` metres (degrees at the grid's latitude for a geographic CRS)."""
    from rasterio.crs import CRS

    crs = CRS.from_user_input(horizontal_wkt(crs.to_wkt() if hasattr(crs, "to_wkt") else crs))
    if crs.is_geographic:
        latitude = transform.f  # the top edge; the scale change over a DEM tile is negligible here
        return Affine.translation(east / (METRES_PER_DEGREE * math.cos(math.radians(latitude))),
                                  north / METRES_PER_DEGREE) * transform
    return Affine.translation(east, north) * transform


def _shifted_dem_vrt(dem: str, east: float, north: float, folder: str, index: int) -> str:
    """A VRT of ``dem`` with its geotransform moved (for the next iteration's orthos)."""
    from osgeo import gdal

    with open_raster(dem) as ds:
        transform = shifted_transform(ds.transform, ds.crs, east, north)
    path = os.path.join(folder, f"dem_shifted_{index}.vrt")
    vrt = gdal_call(gdal.Translate, path, dem, format="VRT")
    if vrt is None:
        raise UserInputError(f"GDAL could not read the DEM '{dem}'.")
    vrt.SetGeoTransform(transform.to_gdal())
    vrt = None
    return path


def _cell_points(disparity: str, unstable_mask: Optional[Callable]):
    """Valid stable cells of a disparity raster: (d_east, d_north) m, cell centres x, y, and the grid."""
    with open_raster(disparity) as ds:
        dx, dy, valid = read_offsets(ds)
        grid = Grid.of(ds)
    rows, cols = np.nonzero(valid)
    x, y = grid.transform * (cols + 0.5, rows + 0.5)
    x, y = np.asarray(x), np.asarray(y)
    keep = np.ones(x.size, dtype=bool) if unstable_mask is None else ~unstable_mask(x, y)
    return dx[rows, cols][keep], dy[rows, cols][keep], x[keep], y[keep], grid


def _inside_function(lonlat_wkt: str, crs_wkt: str) -> Callable:
    """``inside(x, y) -> bool array`` of map points of ``crs_wkt`` in the lon/lat polygons ``lonlat_wkt``."""
    import shapely
    from shapely import wkt

    polygons = reproject_geometry(wkt.loads(lonlat_wkt), LONLAT, crs_wkt)
    if hasattr(shapely, "contains_xy"):  # shapely 2
        return lambda x, y: shapely.contains_xy(polygons, np.asarray(x), np.asarray(y))
    from shapely import vectorized  # shapely 1.8 (Debian bookworm)

    return lambda x, y: vectorized.contains(polygons, np.asarray(x), np.asarray(y))


def fit_once(reference: str, secondary: str, models, dem: str, grid: Grid, folder: str, index: int, *, datum: str,
             height_offset: float, geoid_folder, aoi_wkt, aoi_crs, chip_size: int, search_range: int, step: int,
             unstable_mask: Optional[Callable], cancelled: Optional[Callable]) -> ShiftFit:
    """Orthorectify both scenes on ``dem``, correlate them and fit the DEM's shift (m); ``models`` are
    the scenes' :class:`RpcModel` (read once per run)."""
    orthos = []
    for name, scene in (("reference", reference), ("secondary", secondary)):
        check_canceled(cancelled)
        orthos.append(orthorectify_scene(scene, dem, os.path.join(folder, f"{name}_{index}.tif"), grid=grid,
                                         aoi_wkt=aoi_wkt, aoi_crs=aoi_crs, vertical_datum=datum,
                                         height_offset=height_offset, geoid_folder=geoid_folder,
                                         cancelled=cancelled))
    disparity = os.path.join(folder, f"disparity_{index}.tif")
    correlate_files(orthos[0], orthos[1], disparity, chip_size=chip_size, search_range=search_range, step=step,
                    is_canceled=cancelled)
    dx, dy, x, y, _ = _cell_points(disparity, unstable_mask)
    if dx.size < MIN_CELLS:
        raise UserInputError(f"Only {dx.size} stable cells of the disparity between the orthos are valid (outside "
                             f"the unstable areas); at least {MIN_CELLS} are needed. Check that the scenes overlap "
                             "and correlate, use a larger area of interest, a smaller cell spacing or fewer "
                             "unstable areas.")
    pixel_x, pixel_y = abs(grid.transform.a), abs(grid.transform.e)
    to_lonlat, from_lonlat = transformer(grid.crs.to_wkt(), LONLAT), transformer(LONLAT, grid.crs.to_wkt())
    lon, lat = to_lonlat(x, y)
    sampler = DemSampler(dem, ellipsoidal_shift(datum, geoid_folder, height_offset),
                         (float(np.min(lon)) - 0.01, float(np.min(lat)) - 0.01,
                          float(np.max(lon)) + 0.01, float(np.max(lat)) + 0.01))

    def height(px, py):
        return sampler(*to_lonlat(px, py))

    h = height(x, y)
    half = SLOPE_BASE / 2.0
    grad_east = (height(x + half, y) - height(x - half, y)) / SLOPE_BASE
    grad_north = (height(x, y + half) - height(x, y - half)) / SLOPE_BASE
    t_ref, t_sec = (parallax_sensitivity(model, x, y, h, to_lonlat, from_lonlat) for model in models)
    return fit_dem_shift(dx * pixel_x, -dy * pixel_y, t_sec[0] - t_ref[0], t_sec[1] - t_ref[1],
                         grad_east, grad_north, x, y)


def write_shifted_dem(dem: str, out_path: str, east: float, north: float, tags: dict,
                      outputs: Optional[OutputSet] = None) -> str:
    """Copy ``dem`` block by block into ``out_path`` with its geotransform moved ``east`` / ``north`` m."""
    with open_raster(dem) as ds:
        grid = Grid(ds.crs, shifted_transform(ds.transform, ds.crs, east, north), ds.width, ds.height)
        nodata = ds.nodata
        description = ds.descriptions[0] or "height (m)"
        dtype = ds.dtypes[0]
        with RasterWriter(out_path, grid, [description], dtype=dtype,
                          nodata=nodata if nodata is not None else (float("nan") if "float" in dtype else 0),
                          tags=dict(ds.tags(), **tags), units=[ds.units[0] or "m"], output_set=outputs) as out:
            for start, stop in row_blocks(ds.height, max(1, 4_194_304 // max(ds.width, 1))):
                window = grid.rows(start, stop)
                out.write(ds.read(1, window=window)[None], window=window)
    return out_path


def align_dem_to_pair(dem: str, reference: str, secondary: str, out_path: str, report_path: Optional[str] = None,
                      *, aoi_wkt: Optional[str] = None,
                      aoi_crs=None, vertical_datum: str = "crs", height_offset: float = 0.0,
                      resolution: float = 3.0, iterations: int = 3, tolerance: float = 0.1,
                      chip_size: int = 32, search_range: int = 8, step: int = 8,
                      unstable_wkt: Optional[str] = None, geoid_folder: Optional[str] = None,
                      progress: Optional[Callable[[float], None]] = None, is_canceled: Optional[Callable] = None,
                      log: Optional[Callable[[str], None]] = None) -> PairAlignment:
    """Shift ``dem`` horizontally so the orthos of the L1B scenes ``reference`` and ``secondary`` agree.

    ``aoi_wkt`` (in ``aoi_crs``) limits the orthos; ``unstable_wkt`` (polygons, lon/lat WGS 84) marks
    ground left out of the fit. ``tolerance``: stop when a step is smaller (m). Returns a :class:`PairAlignment`; the
    aligned DEM is written to ``out_path`` and the report (:data:`REPORT_COLUMNS`) to ``report_path``,
    both or neither.
    """
    check_outputs([dem, reference, secondary], [out_path, report_path])
    if os.path.realpath(reference) == os.path.realpath(secondary):
        raise UserInputError("The two scenes are the same file; choose two scenes of the area seen from different "
                             "directions (e.g. opposite look directions).")
    with open_raster(dem) as ds:
        if ds.crs is None:
            raise UserInputError(f"The DEM '{dem}' has no coordinate reference system; assign its CRS first.")
        datum, note = resolve_datum(vertical_datum, ds.crs.to_wkt())
    if log:
        log(f"DEM heights: {note}.")
    grid = job_grid([reference, secondary], dem, aoi_wkt=aoi_wkt, aoi_crs=aoi_crs, resolution=resolution,
                    vertical_datum=datum, height_offset=height_offset, geoid_folder=geoid_folder)
    unstable_mask = None if not unstable_wkt else _inside_function(unstable_wkt, grid.crs.to_wkt())
    models = [RpcModel(read_rpc(scene)) for scene in (reference, secondary)]
    result = PairAlignment(out_path)
    with temporary_folder(os.path.dirname(os.path.abspath(out_path)), "dem_alignment") as folder:
        current = dem
        for index in range(1, max(1, int(iterations)) + 1):
            fit = fit_once(reference, secondary, models, current, grid, folder, index, datum=datum,
                           height_offset=height_offset, geoid_folder=geoid_folder, aoi_wkt=aoi_wkt,
                           aoi_crs=aoi_crs, chip_size=chip_size, search_range=search_range, step=step,
                           unstable_mask=unstable_mask, cancelled=is_canceled)
            result.fits.append(fit)
            result.shift_east -= fit.shift_east
            result.shift_north -= fit.shift_north
            if log:
                log(f"Iteration {index}: DEM moved by {-fit.shift_east:+.2f} m east, {-fit.shift_north:+.2f} m "
                    f"north (total {result.shift_east:+.2f}, {result.shift_north:+.2f} m); disparity NMAD "
                    f"{fit.nmad_before:.3f} -> {fit.nmad_after:.3f} m.")
            if progress:
                progress(100.0 * index / (int(iterations) + 1))
            if math.hypot(fit.shift_east, fit.shift_north) < tolerance:
                result.converged = True
                break
            current = _shifted_dem_vrt(dem, result.shift_east, result.shift_north, folder, index)
        tags = {TAG_SHIFT_EAST: f"{result.shift_east:.4f}", TAG_SHIFT_NORTH: f"{result.shift_north:.4f}"}
        with OutputSet() as outputs:
            write_shifted_dem(dem, out_path, result.shift_east, result.shift_north, tags, outputs)
            if report_path:
                outputs.text(report_path, result.report_text(), verify=csv_rows(len(result.fits), REPORT_COLUMNS))
    if progress:
        progress(100.0)
    return result
