"""Geometry of an orthorectification: the AOI, the scene footprint, the raw source window.

Ground polygons are shapely geometries in longitude/latitude (EPSG:4326, degrees). The raw
source window is found by projecting *every* AOI vertex (edges densified, plus a grid of
interior points, each at its DEM height) into the raw image through the RPC, then adding a
margin (raw pixels) and clamping to the scene.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import numpy as np

from ..errors import UserInputError
from .rpc import RpcModel

LONLAT = "EPSG:4326"
#: Points per edge of the densified scene border.
BORDER_POINTS = 32


def crs_wkt(crs) -> str:
    """WKT of any CRS text GDAL understands (EPSG code, WKT, PROJ string)."""
    from osgeo import osr

    srs = osr.SpatialReference()
    if srs.SetFromUserInput(str(crs)) != 0:
        raise UserInputError(f"'{crs}' is not a coordinate reference system GDAL knows; give e.g. EPSG:32633.")
    return srs.ExportToWkt()


def horizontal_wkt(crs) -> str:
    """The horizontal part of a (possibly compound) CRS as WKT."""
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.SetFromUserInput(str(crs))
    if srs.IsCompound():
        srs.StripVertical()
    return srs.ExportToWkt()


def transformer(source, target) -> Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """(x, y) arrays in ``source`` -> (x, y) in ``target`` (lon/lat order for geographic CRSs)."""
    from osgeo import osr

    def srs_of(crs):
        srs = osr.SpatialReference()
        srs.SetFromUserInput(horizontal_wkt(crs))
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        return srs

    transform = osr.CoordinateTransformation(srs_of(source), srs_of(target))

    def apply(x, y):
        x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        if x.size == 0:
            return x.copy(), y.copy()
        done = np.array(transform.TransformPoints(np.column_stack([x.ravel(), y.ravel()]).tolist()))
        return done[:, 0].reshape(x.shape), done[:, 1].reshape(x.shape)

    return apply


def reproject_geometry(geometry, source, target, densify: Optional[float] = None):
    """A shapely geometry from CRS ``source`` to ``target``, its edges densified first (``densify`` in
    source units; default 1/64 of the geometry's size) so curved edges survive."""
    from shapely.ops import transform as shapely_transform

    if densify is None:
        minx, miny, maxx, maxy = geometry.bounds
        densify = max(maxx - minx, maxy - miny) / 64.0 or 1.0
    geometry = densified(geometry, densify)
    apply = transformer(source, target)
    return shapely_transform(lambda x, y, z=None: apply(x, y), geometry)


def densified(geometry, step: float):
    """``geometry`` with vertices added so no edge is longer than ``step``."""
    try:
        return geometry.segmentize(step)
    except AttributeError:  # shapely < 2
        from shapely.geometry import Polygon, MultiPolygon

        def ring(coords):
            points = []
            coords = list(coords)
            for (x0, y0), (x1, y1) in zip(coords[:-1], coords[1:]):
                n = max(1, int(math.ceil(math.hypot(x1 - x0, y1 - y0) / step)))
                points += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(n)]
            return points + [coords[-1]]

        def poly(p):
            return Polygon(ring(p.exterior.coords), [ring(i.coords) for i in p.interiors])

        if isinstance(geometry, MultiPolygon):
            return MultiPolygon([poly(p) for p in geometry.geoms])
        return poly(geometry)


def aoi_lonlat(aoi_wkt: Optional[str], aoi_crs=None):
    """The AOI polygon (WKT in ``aoi_crs``, default EPSG:4326) in lon/lat, or None without AOI."""
    if not aoi_wkt:
        return None
    from shapely import wkt as shapely_wkt
    from shapely.errors import ShapelyError

    try:
        geometry = shapely_wkt.loads(aoi_wkt)
    except (ShapelyError, ValueError) as exc:
        raise UserInputError(f"The area of interest is not a valid WKT geometry ({exc}).") from exc
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty:
        raise UserInputError(f"The area of interest must be a polygon; got a {geometry.geom_type}.")
    if not geometry.is_valid:
        geometry = geometry.buffer(0)
    return reproject_geometry(geometry, aoi_crs or LONLAT, LONLAT)


def border(width: int, height: int, col0: float = 0.0, row0: float = 0.0,
           points: int = BORDER_POINTS) -> Tuple[np.ndarray, np.ndarray]:
    """(col, row) of the densified outline of the image window (pixel corners), closed ring."""
    t = np.linspace(0.0, 1.0, points, endpoint=False)
    cols = np.concatenate([col0 + t * width, np.full(points, col0 + width), col0 + (1 - t) * width,
                           np.full(points, col0)])
    rows = np.concatenate([np.full(points, row0), row0 + t * height, np.full(points, row0 + height),
                           row0 + (1 - t) * height])
    return np.append(cols, cols[0]), np.append(rows, rows[0])


def footprint(model: RpcModel, width: int, height: int, dem, col0: int = 0, row0: int = 0):
    """The ground outline (lon/lat shapely polygon) of the raw window on the terrain ``dem``
    (sampler or constant ellipsoidal height, see :meth:`RpcModel.image_to_ground`)."""
    from shapely.geometry import Polygon

    cols, rows = border(width, height, col0, row0)
    lon, lat, _ = model.image_to_ground(cols, rows, dem)
    if callable(dem) and not np.all(np.isfinite(lon)):  # border points without terrain: mean height there
        lon2, lat2 = model.image_to_ground_at_height(cols, rows, model.height_off)
        lon, lat = np.where(np.isfinite(lon), lon, lon2), np.where(np.isfinite(lat), lat, lat2)
    polygon = Polygon(np.column_stack([lon, lat]))
    return polygon if polygon.is_valid else polygon.buffer(0)


def possible_footprint(model: RpcModel, width: int, height: int):
    """The ground outline the scene can have on any terrain within the RPC's height range
    (union of the footprints at HEIGHT_OFF - HEIGHT_SCALE, HEIGHT_OFF and HEIGHT_OFF + HEIGHT_SCALE)."""
    low, high = model.height_range()
    parts = [footprint(model, width, height, h) for h in (low, model.height_off, high)]
    union = parts[0]
    for part in parts[1:]:
        union = union.union(part)
    return union.convex_hull


def sample_points(polygon, count: int = 24) -> Tuple[np.ndarray, np.ndarray]:
    """Every vertex of ``polygon`` (edges densified to ``count`` points per polygon size) and a
    ``count`` x ``count`` grid of its interior points, as (lon, lat) arrays."""
    from shapely.geometry import Point

    minx, miny, maxx, maxy = polygon.bounds
    step = max(maxx - minx, maxy - miny) / count or 1e-9
    dense = densified(polygon, step)
    xs, ys = [], []
    for part in getattr(dense, "geoms", [dense]):
        for ring in [part.exterior, *part.interiors]:
            x, y = np.asarray(ring.coords).T[:2]
            xs.append(x)
            ys.append(y)
    gx, gy = np.meshgrid(np.linspace(minx, maxx, count), np.linspace(miny, maxy, count))
    inside = np.array([polygon.contains(Point(x, y)) for x, y in zip(gx.ravel(), gy.ravel())], dtype=bool)
    xs.append(gx.ravel()[inside])
    ys.append(gy.ravel()[inside])
    return np.concatenate(xs), np.concatenate(ys)


def source_window(model: RpcModel, aoi, dem: Callable, width: int, height: int,
                  margin: int) -> Tuple[int, int, int, int]:
    """The raw window (col_off, row_off, width, height) that holds the AOI on the terrain, plus
    ``margin`` raw pixels, clamped to the scene. Every AOI vertex and interior sample is projected
    at its DEM height (the RPC's mean height where the DEM has none). Raises when the AOI misses
    the scene."""
    lon, lat = sample_points(aoi)
    h = np.asarray(dem(lon, lat), dtype=np.float64)
    h = np.where(np.isfinite(h), h, np.nanmedian(h) if np.isfinite(h).any() else model.height_off)
    cols, rows = model.ground_to_image(lon, lat, h)
    col0 = max(0, int(math.floor(np.min(cols))) - margin)
    row0 = max(0, int(math.floor(np.min(rows))) - margin)
    col1 = min(width, int(math.ceil(np.max(cols))) + margin)
    row1 = min(height, int(math.ceil(np.max(rows))) + margin)
    if col1 <= col0 or row1 <= row0:
        raise UserInputError(aoi_outside_message(aoi))
    return col0, row0, col1 - col0, row1 - row0


def aoi_outside_message(aoi, scene: str = "the scene") -> str:
    minx, miny, maxx, maxy = aoi.bounds
    return (f"The area of interest (lon {minx:.4f}…{maxx:.4f}, lat {miny:.4f}…{maxy:.4f}) lies outside {scene}: "
            "no raw pixel of the scene sees it. Choose an AOI inside the scene's footprint, or leave the AOI empty "
            "to orthorectify the whole scene.")


def utm_crs_of(lon: float, lat: float) -> str:
    """'EPSG:326zz' / 'EPSG:327zz' of the UTM zone holding (lon, lat) (standard 6° zones)."""
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"
