"""RPC orthorectification of raw (L1B) scenes onto a DEM, on one grid shared by a job.

:func:`job_grid` gives the one aligned grid (target CRS, default the UTM zone of the AOI or scene
centre; ``resolution`` metres; bounds on multiples of the resolution, as ``gdalwarp -tap``) that
every scene of a job is warped onto, so correlators see equal, aligned pixels.
:func:`orthorectify_scene` does one scene:

1. RPCs (:func:`.rpc.read_rpc`), the DEM's vertical datum (:mod:`.vdatum`; a missing geoid grid is an
   error before anything is written);
2. the raw source window: every AOI vertex and interior sample inverted through the RPC at its
   DEM height, plus ``margin`` raw pixels, clamped (without AOI: the whole scene);
3. the DEM, cut to the region and converted to ellipsoidal heights (DEM + undulation + offset),
   written to a temporary GeoTIFF and given to GDAL's RPC transformer as ``RPC_DEM`` with
   ``RPC_DEM_APPLY_VDATUM_SHIFT=FALSE``: what is applied is explicit. The DEM must cover the
   area (AOI ∩ footprint): refused otherwise;
4. ``gdal.Warp`` (RPC transformer, exact with ``error_threshold`` 0 px, ``resampling``) into a
   VRT, copied block by block through :class:`core.io.RasterWriter` (verified, atomic rename),
   NaN outside the footprint and outside the AOI. Progress per block; cancel between blocks.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from affine import Affine

from ..choices import Choices
from ..errors import UserInputError, check_canceled
from ..io import Grid, RasterWriter, open_raster, temporary_folder
from ..io.read import READ_ERRORS, read_failure
from .aoi import (LONLAT, aoi_lonlat, aoi_outside_message, crs_wkt, footprint, horizontal_wkt,
                  possible_footprint, reproject_geometry, sample_points, source_window, transformer, utm_crs_of)
from .rpc import RpcModel, read_rpc
from .vdatum import ellipsoidal_shift, find_geoid_grid, resolve_datum

#: Resampling of the raw image (gdalwarp -r).
ORTHO_RESAMPLING = Choices(("cubic", "Cubic"), ("bilinear", "Bilinear"), ("nearest", "Nearest neighbour"),
                           ("lanczos", "Lanczos"), ("cubicspline", "Cubic spline"))
#: Rows per block copied from the warped VRT.
BLOCK_ROWS = 256
#: Nodata of the temporary ellipsoidal DEM handed to GDAL.
DEM_NODATA = -32767.0
#: Largest side (cells) of the DEM window read to sample heights for the AOI clip and footprint.
SAMPLER_MAX_CELLS = 2048
#: Output tag namespace-free keys.
TAG_PREFIX = "ORTHO_"

Log = Optional[Callable[[str], None]]


# --------------------------------------------------------------------------- DEM heights


def _dem_window(ds, crs: str, bounds, pad: int):
    """The DEM window (rasterio Window) covering lon/lat ``bounds`` plus ``pad`` cells, clamped; None when
    the DEM misses them."""
    from rasterio.windows import Window

    x, y = transformer(LONLAT, crs)(*_bounds_ring(bounds))
    inverse = ~ds.transform
    cols, rows = inverse * (np.asarray(x), np.asarray(y))
    col0 = max(0, int(math.floor(np.nanmin(cols))) - pad)
    row0 = max(0, int(math.floor(np.nanmin(rows))) - pad)
    col1 = min(ds.width, int(math.ceil(np.nanmax(cols))) + pad)
    row1 = min(ds.height, int(math.ceil(np.nanmax(rows))) + pad)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


class DemSampler:
    """Ellipsoidal heights (m) at (lon, lat): the DEM bilinearly interpolated (pixel centres) plus
    ``shift(lon, lat)`` (undulation + offset). Reads once the DEM window covering ``bounds``
    (lon/lat), decimated to at most :data:`SAMPLER_MAX_CELLS` per side (bounded memory); NaN outside
    the DEM or at its nodata. Used for the AOI clip and the footprint, not for the warp itself."""

    def __init__(self, dem: str, shift: Callable, bounds: Tuple[float, float, float, float]):
        from rasterio.enums import Resampling

        self.shift = shift
        with open_raster(dem) as ds:
            self.crs = horizontal_wkt(ds.crs.to_wkt())
            self.to_dem = transformer(LONLAT, self.crs)
            self.dem_bounds = ds.bounds
            window = _dem_window(ds, self.crs, bounds, 2)
            if window is None:
                self.values, self.inverse = None, None
                return
            scale = max(1.0, max(window.width, window.height) / SAMPLER_MAX_CELLS)
            shape = (max(1, int(round(window.height / scale))), max(1, int(round(window.width / scale))))
            values = ds.read(1, window=window, out_shape=shape, resampling=Resampling.bilinear,
                             masked=True).astype(np.float64)
            self.values = values.filled(np.nan)
            self.values[~np.isfinite(self.values)] = np.nan
            transform = ds.window_transform(window) * Affine.scale(window.width / shape[1], window.height / shape[0])
            self.inverse = ~transform

    def __call__(self, lon, lat) -> np.ndarray:
        lon, lat = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        if self.values is None:
            return np.full(lon.shape, np.nan)
        x, y = self.to_dem(lon, lat)
        col, row = self.inverse * (x, y)
        heights = bilinear(self.values, np.asarray(col) - 0.5, np.asarray(row) - 0.5)
        finite = np.isfinite(heights)
        out = np.full(lon.shape, np.nan)
        if finite.any():
            out[finite] = heights[finite] + self.shift(lon[finite], lat[finite])
        return out

    def inside(self, lon, lat) -> np.ndarray:
        """Whether the points lie within the DEM's extent."""
        x, y = self.to_dem(lon, lat)
        b = self.dem_bounds
        return (x >= b.left) & (x <= b.right) & (y >= b.bottom) & (y <= b.top)


def bilinear(values: np.ndarray, col, row) -> np.ndarray:
    """Bilinear interpolation of ``values`` at fractional (col, row) indices of cell centres; NaN
    outside or where a neighbour is NaN."""
    rows, cols = values.shape
    col, row = np.asarray(col, dtype=np.float64), np.asarray(row, dtype=np.float64)
    out = np.full(col.shape, np.nan)
    ok = np.isfinite(col) & np.isfinite(row) & (col >= -0.5) & (row >= -0.5) & (col <= cols - 0.5) & \
        (row <= rows - 0.5)
    c = np.clip(col[ok], 0, max(cols - 1, 0))
    r = np.clip(row[ok], 0, max(rows - 1, 0))
    c0, r0 = np.minimum(np.floor(c).astype(int), max(cols - 2, 0)), np.minimum(np.floor(r).astype(int),
                                                                              max(rows - 2, 0))
    c1, r1 = np.minimum(c0 + 1, cols - 1), np.minimum(r0 + 1, rows - 1)
    fc, fr = c - c0, r - r0
    out[ok] = (values[r0, c0] * (1 - fc) * (1 - fr) + values[r0, c1] * fc * (1 - fr)
               + values[r1, c0] * (1 - fc) * fr + values[r1, c1] * fc * fr)
    return out


def _bounds_ring(bounds, points: int = 16) -> Tuple[np.ndarray, np.ndarray]:
    west, south, east, north = bounds
    t = np.linspace(0, 1, points)
    x = np.concatenate([west + t * (east - west), np.full(points, east), east - t * (east - west),
                        np.full(points, west)])
    y = np.concatenate([np.full(points, south), south + t * (north - south), np.full(points, north),
                        north - t * (north - south)])
    return x, y


def write_ellipsoidal_dem(dem: str, shift: Callable, bounds, folder: str, cancelled=None) -> str:
    """The DEM window covering ``bounds`` (lon/lat, plus 3 cells) with ellipsoidal heights
    (DEM + ``shift``), float32 with nodata :data:`DEM_NODATA`, in ``folder``; streamed in row blocks."""
    from rasterio.windows import Window

    path = os.path.join(folder, "dem_ellipsoidal.tif")
    with open_raster(dem) as ds:
        crs = horizontal_wkt(ds.crs.to_wkt())
        window = _dem_window(ds, crs, bounds, 3)
        if window is None:
            raise UserInputError(f"The DEM '{dem}' does not cover the area to orthorectify.")
        col0, row0 = int(window.col_off), int(window.row_off)
        grid = Grid(crs, ds.window_transform(window), int(window.width), int(window.height))
        to_lonlat = transformer(crs, LONLAT)
        with RasterWriter(path, grid, ["ellipsoidal height (m)"], nodata=DEM_NODATA,
                          require_valid="The DEM has no valid height in the area to orthorectify.") as out:
            for start in range(0, grid.height, BLOCK_ROWS):
                check_canceled(cancelled)
                stop = min(grid.height, start + BLOCK_ROWS)
                heights = ds.read_float(1, window=Window(col0, row0 + start, grid.width, stop - start))
                cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(start, stop) + 0.5)
                lon, lat = to_lonlat(*(grid.transform * (cols, rows)))
                finite = np.isfinite(heights)
                heights[finite] = heights[finite] + shift(lon[finite], lat[finite])
                out.write(np.where(finite, heights, DEM_NODATA).astype(np.float32),
                          window=((start, stop), (0, grid.width)))
    return path


# --------------------------------------------------------------------------- grids


def target_crs_wkt(target_crs, centre: Tuple[float, float]) -> str:
    """WKT of the target CRS (default: UTM zone of ``centre`` lon/lat); degrees are refused, the
    resolution being metres."""
    from osgeo import osr

    wkt = crs_wkt(target_crs if target_crs else utm_crs_of(*centre))
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    if srs.IsGeographic() or not srs.IsProjected():
        raise UserInputError(
            f"The target CRS '{srs.GetName()}' is in degrees, but the resolution is in metres. Choose a projected "
            f"CRS (e.g. the UTM zone {utm_crs_of(*centre)}) or leave the target CRS empty for the UTM zone of the "
            "area of interest.")
    return wkt


def aligned_grid(region_lonlat, crs_wkt_text: str, resolution: float) -> Grid:
    """The grid of ``resolution`` m covering ``region_lonlat`` in the target CRS, bounds on multiples of
    the resolution (``-tap``)."""
    if not (resolution > 0 and math.isfinite(resolution)):
        raise UserInputError(f"The resolution must be a positive number of metres (got {resolution}).")
    region = reproject_geometry(region_lonlat, LONLAT, crs_wkt_text)
    minx, miny, maxx, maxy = region.bounds
    x0, y1 = math.floor(minx / resolution) * resolution, math.ceil(maxy / resolution) * resolution
    x1, y0 = math.ceil(maxx / resolution) * resolution, math.floor(miny / resolution) * resolution
    width, height = int(round((x1 - x0) / resolution)), int(round((y1 - y0) / resolution))
    if width * height > 4e9:
        raise UserInputError(f"The output grid would have {width} x {height} pixels at {resolution} m; choose a "
                             "smaller area of interest or a coarser resolution.")
    return Grid(crs_wkt_text, Affine(resolution, 0, x0, 0, -resolution, y1), max(width, 1), max(height, 1))


def _scene_model(scene: str) -> Tuple[RpcModel, int, int]:
    model = RpcModel(read_rpc(scene))
    with open_raster(scene) as ds:
        return model, ds.width, ds.height


def _dem_shift(dem: str, vertical_datum: str, height_offset: float, geoid_folder, log: Log):
    with open_raster(dem) as ds:
        if ds.crs is None:
            raise UserInputError(f"The DEM '{dem}' has no coordinate reference system; assign its CRS first.")
        wkt = ds.crs.to_wkt()
    datum, note = resolve_datum(vertical_datum, wkt)
    if log is not None:
        log(f"DEM heights: {note}.")
    return datum, ellipsoidal_shift(datum, geoid_folder, height_offset)


def _scene_region(model: RpcModel, width: int, height: int, aoi, sampler_for: Callable):
    """(region lon/lat polygon to orthorectify, terrain footprint) of a scene: the footprint on the DEM,
    intersected with the AOI."""
    possible = possible_footprint(model, width, height)
    if aoi is not None and not aoi.intersects(possible):
        raise UserInputError(aoi_outside_message(aoi))
    sampler = sampler_for(possible.bounds)
    on_terrain = footprint(model, width, height, sampler)
    region = on_terrain if aoi is None else on_terrain.intersection(aoi)
    if region.is_empty:
        raise UserInputError(aoi_outside_message(aoi))
    return region, on_terrain


def job_grid(scenes: Sequence[str], dem: str, *, aoi_wkt: Optional[str] = None, aoi_crs=None,
             resolution: float = 3.0, target_crs=None, vertical_datum: str = "crs", height_offset: float = 0.0,
             geoid_folder: Optional[str] = None) -> Grid:
    """The one grid all ``scenes`` of a job are orthorectified onto: the AOI's bounds (without AOI:
    the union of the scenes' footprints on the DEM) in ``target_crs`` (default the UTM zone of the
    region's centre), ``resolution`` m pixels aligned on multiples of the resolution. Checks every
    scene (RPCs, AOI overlap, DEM coverage, geoid grid) so a job fails before anything is written."""
    if not scenes:
        raise UserInputError("No scene to orthorectify was given.")
    aoi = aoi_lonlat(aoi_wkt, aoi_crs)
    _, shift = _dem_shift(dem, vertical_datum, height_offset, geoid_folder, None)
    regions = []
    for scene in scenes:
        model, width, height = _scene_model(scene)
        region, _ = _scene_region(model, width, height, aoi, lambda b: DemSampler(dem, shift, b))
        check_dem_coverage(DemSampler(dem, shift, region.bounds), region, dem, None)
        regions.append(region)
    union = aoi if aoi is not None else regions[0]
    if aoi is None:
        for region in regions[1:]:
            union = union.union(region)
    centre = union.centroid
    return aligned_grid(union, target_crs_wkt(target_crs, (centre.x, centre.y)), float(resolution))


# --------------------------------------------------------------------------- one scene


def check_dem_coverage(sampler: DemSampler, region, dem: str, log: Log) -> None:
    """Refuse a DEM that does not cover ``region`` (lon/lat); warn about DEM holes inside it."""
    lon, lat = sample_points(region, 32)
    outside = ~sampler.inside(lon, lat)
    if outside.any():
        minx, miny, maxx, maxy = region.bounds
        raise UserInputError(
            f"The DEM '{dem}' does not cover the area to orthorectify (lon {minx:.4f}…{maxx:.4f}, lat "
            f"{miny:.4f}…{maxy:.4f}): {100.0 * outside.mean():.0f} % of its sample points lie outside the DEM. "
            "Give a DEM that covers the whole scene footprint (or the area of interest), with some margin.")
    heights = sampler(lon, lat)
    missing = ~np.isfinite(heights)
    if missing.all():
        raise UserInputError(f"The DEM '{dem}' has no valid height in the area to orthorectify (all nodata). "
                             "Give a DEM with heights there.")
    if missing.any() and log is not None:
        log(f"The DEM has no height (nodata) at {100.0 * missing.mean():.0f} % of the area to orthorectify; "
            "the ortho is NaN there. Fill the DEM's holes to orthorectify them.")


def band_descriptions(ds) -> List[str]:
    """Output band descriptions: the source band's description (or 'band N') and its unit, '(DN)'
    when it declares none."""
    out = []
    for index in range(1, ds.count + 1):
        name = (ds.descriptions[index - 1] or f"band {index}").strip()
        unit = (ds.units[index - 1] if ds.units else "") or "DN"
        out.append(f"{name} ({unit})")
    return out


def _source_vrt(scene: str, rpc: Dict[str, str], window: Tuple[int, int, int, int], folder: str) -> str:
    """A VRT of the raw window carrying the RPCs with their offsets shifted by the window."""
    from osgeo import gdal

    col0, row0, width, height = window
    path = os.path.join(folder, "source.vrt")
    ds = gdal.Translate(path, scene, format="VRT", srcWin=[col0, row0, width, height])
    if ds is None:
        raise _scratch_failure(path, f"Cannot read the scene '{scene}': {gdal.GetLastErrorMsg()}")
    shifted = dict(rpc, SAMP_OFF=repr(float(rpc["SAMP_OFF"]) - col0), LINE_OFF=repr(float(rpc["LINE_OFF"]) - row0))
    ds.SetMetadata(shifted, "RPC")
    ds = None
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise _scratch_failure(path, "the VRT of the raw window was not written")
    return path


def _scratch_failure(path: str, message: str) -> UserInputError:
    """A failure of GDAL on a scratch file: a full disk said as such, else ``message``."""
    from ..io.files import free_bytes, write_failure

    free = free_bytes(os.path.dirname(path))
    if free is not None and free < (1 << 20) or "write" in message.lower():
        return write_failure(path, OSError(message), free=free)
    return UserInputError(message)


def _warped_vrt(source: str, dem_path: str, grid: Grid, folder: str, resampling: str, error_threshold: float,
                src_nodata) -> str:
    from osgeo import gdal

    path = os.path.join(folder, "warped.vrt")
    left, top = grid.transform.c, grid.transform.f
    right, bottom = grid.transform * (grid.width, grid.height)
    options = gdal.WarpOptions(
        format="VRT", dstSRS=grid.crs.to_wkt(), outputBounds=(left, bottom, right, top), width=grid.width,
        height=grid.height, resampleAlg=resampling, errorThreshold=float(error_threshold), rpc=True,
        transformerOptions=[f"RPC_DEM={dem_path}", "RPC_DEMINTERPOLATION=bilinear",
                            "RPC_DEM_APPLY_VDATUM_SHIFT=FALSE"],
        srcNodata=src_nodata, dstNodata="nan", outputType=gdal.GDT_Float32, warpOptions=["INIT_DEST=NO_DATA"])
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        ds = gdal.Warp(path, source, options=options)
    finally:
        gdal.PopErrorHandler()
    if ds is None:
        raise _scratch_failure(path, f"GDAL could not set up the RPC warp of the scene: {gdal.GetLastErrorMsg()}")
    ds = None
    return path


def _aoi_mask(aoi_target, grid: Grid, start: int, stop: int) -> Optional[np.ndarray]:
    """True outside the AOI (target CRS polygon) for rows [start, stop) of ``grid``; None without AOI."""
    if aoi_target is None:
        return None
    from rasterio.features import geometry_mask

    transform = grid.transform * Affine.translation(0, start)
    return geometry_mask([aoi_target.__geo_interface__], (stop - start, grid.width), transform, all_touched=False)


def _copy_blocks(scene: str, warped: str, out: RasterWriter, grid: Grid, aoi_target, progress, cancelled) -> None:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(warped) as ds:
        for start in range(0, grid.height, BLOCK_ROWS):
            check_canceled(cancelled)
            stop = min(grid.height, start + BLOCK_ROWS)
            window = Window(0, start, grid.width, stop - start)
            try:
                block = ds.read(window=window).astype(np.float32)
            except READ_ERRORS as exc:
                raise read_failure(scene, exc, window) from exc
            outside = _aoi_mask(aoi_target, grid, start, stop)
            if outside is not None:
                block[:, outside] = np.nan
            out.write(block, window=((start, stop), (0, grid.width)))
            if progress is not None:
                progress(20.0 + 80.0 * stop / grid.height)


def orthorectify_scene(scene: str, dem: str, out_path: str, *, grid: Optional[Grid] = None,
                       aoi_wkt: Optional[str] = None, aoi_crs=None, resolution: float = 3.0, target_crs=None,
                       vertical_datum: str = "crs", height_offset: float = 0.0, resampling: str = "cubic",
                       margin: int = 150, error_threshold: float = 0.0, geoid_folder: Optional[str] = None,
                       progress: Optional[Callable[[float], None]] = None, cancelled: Optional[Callable] = None,
                       log: Log = None) -> str:
    """Orthorectify the raw ``scene`` (RPCs, any band count) onto ``dem`` (any CRS and resolution; heights
    of ``vertical_datum``, plus ``height_offset`` m) into the float32 GeoTIFF ``out_path``: ``grid`` (from
    :func:`job_grid`; None = this scene's own), NaN outside the RPC footprint and the AOI (WKT in
    ``aoi_crs``). ``margin``: raw pixels around the AOI kept for the resampling; ``error_threshold``:
    GDAL's approximation error in px (0 = exact). ``progress(percent)``, ``cancelled() -> bool``,
    ``log(message)`` are optional. Returns ``out_path``."""
    ORTHO_RESAMPLING.check(resampling, "resampling")
    if margin < 0 or error_threshold < 0:
        raise UserInputError("The margin (raw pixels) and the error threshold (px) must not be negative.")
    rpc = read_rpc(scene)
    model = RpcModel(rpc)
    with open_raster(scene) as ds:
        width, height, descriptions = ds.width, ds.height, band_descriptions(ds)
        nodata = ds.nodatavals[0]
    datum, shift = _dem_shift(dem, vertical_datum, height_offset, geoid_folder, log)
    aoi = aoi_lonlat(aoi_wkt, aoi_crs)
    region, on_terrain = _scene_region(model, width, height, aoi, lambda b: DemSampler(dem, shift, b))
    sampler = DemSampler(dem, shift, region.buffer(1e-3 * max(model.long_scale, model.lat_scale)).bounds)
    check_dem_coverage(sampler, region, dem, log)
    window = (0, 0, width, height) if aoi is None else source_window(model, aoi, sampler, width, height,
                                                                       int(margin))
    if grid is None:
        centre = (aoi if aoi is not None else on_terrain).centroid
        grid = aligned_grid(aoi if aoi is not None else on_terrain,
                            target_crs_wkt(target_crs, (centre.x, centre.y)), float(resolution))
    if progress is not None:
        progress(5.0)
    aoi_target = None if aoi is None else reproject_geometry(aoi, LONLAT, grid.crs.to_wkt())
    tags = {TAG_PREFIX + "SOURCE": os.path.basename(scene), TAG_PREFIX + "DEM": os.path.basename(dem),
            TAG_PREFIX + "VERTICAL_DATUM": datum, TAG_PREFIX + "HEIGHT_OFFSET_M": repr(float(height_offset)),
            TAG_PREFIX + "GEOID_GRID": os.path.basename(find_geoid_grid(datum, geoid_folder))
            if datum != "ellipsoid" else "",
            TAG_PREFIX + "SOURCE_WINDOW": " ".join(str(v) for v in window), TAG_PREFIX + "RESAMPLING": resampling,
            TAG_PREFIX + "ERROR_THRESHOLD_PX": repr(float(error_threshold))}
    folder = os.path.dirname(os.path.abspath(out_path))
    with temporary_folder(folder, "ortho") as scratch:
        dem_path = write_ellipsoidal_dem(dem, shift, region.buffer(0.002).bounds, scratch, cancelled)
        source = _source_vrt(scene, rpc, window, scratch)
        warped = _warped_vrt(source, dem_path, grid, scratch, resampling, error_threshold, nodata)
        if progress is not None:
            progress(20.0)
        hint = ("The scene's footprint does not reach the output grid (area of interest): no pixel was "
                "orthorectified. Check the scene, the AOI and the target CRS.")
        with RasterWriter(out_path, grid, descriptions, tags=tags, require_valid=hint) as out:
            _copy_blocks(scene, warped, out, grid, aoi_target, progress, cancelled)
    return out_path
