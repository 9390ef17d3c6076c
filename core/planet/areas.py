"""Areas of lon/lat polygons (footprints, areas of interest) in metres: densified, then projected
to a Lambert azimuthal equal-area CRS centred on them (never areas in degrees, REFERENCE §3)."""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import numpy as np

from ..errors import UserInputError

#: Longest edge (degrees) of a polygon before it is projected: GeoJSON edges are straight in lon/lat
#: (RFC 7946), so long edges get vertices every DENSIFY_STEP degrees to stay so after projection.
DENSIFY_STEP = 0.002


def densified(geometry: dict, step: float = DENSIFY_STEP):
    """A shapely (Multi)Polygon of a GeoJSON polygon in lon/lat with vertices at most ``step`` degrees
    apart; anything but a polygon is a UserInputError."""
    from shapely.geometry import MultiPolygon, Polygon, shape

    def ring(coords) -> List[Tuple[float, float]]:
        points = np.asarray(coords, dtype=np.float64)[:, :2]
        out = []
        for a, b in zip(points[:-1], points[1:]):
            count = max(1, int(np.ceil(np.max(np.abs(b - a)) / step)))
            out.extend(a + (b - a) * t for t in np.arange(count) / count)
        out.append(points[-1])
        return [tuple(p) for p in out]

    shaped = shape(geometry)
    if shaped.geom_type not in ("Polygon", "MultiPolygon"):
        raise UserInputError(f"A footprint or area of interest is a {shaped.geom_type}, not a polygon.")
    geom = shaped.buffer(0)
    polygons = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    parts = [Polygon(ring(p.exterior.coords), [ring(i.coords) for i in p.interiors])
             for p in polygons if not p.is_empty]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def equal_area_projector(geometries: Sequence[dict]) -> Callable:
    """A function (shapely geometry in lon/lat → geometry in metres) projecting to a Lambert
    azimuthal equal-area CRS centred on the centroid of ``geometries`` (GeoJSON, lon/lat)."""
    import pyproj
    from shapely.geometry import shape
    from shapely.ops import transform, unary_union

    centre = unary_union([shape(geometry) for geometry in geometries]).centroid
    laea = pyproj.CRS.from_proj4(f"+proj=laea +lat_0={centre.y:.8f} +lon_0={centre.x:.8f} +ellps=WGS84 +units=m")
    forward = pyproj.Transformer.from_crs("EPSG:4326", laea, always_xy=True).transform
    return lambda geometry: transform(forward, geometry)


def projected(geometries: Sequence[dict]) -> list:
    """The geometries, densified, in the equal-area CRS centred on all of them (areas in m²)."""
    project = equal_area_projector(geometries)
    return [project(densified(geometry)) for geometry in geometries]
