"""Builders of small velocity-pair networks for the stackvelocity / aoitimeline tests (UTM 18N, 3 m pixels)."""
import json
import os

import numpy as np
from affine import Affine
from pyproj import Transformer

from core.io import Grid, write_raster
from core.offsets.velocity import VELOCITY_DESCRIPTIONS

TRANSFORM = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4000000.0)
CRS = "EPSG:32618"
SHAPE = (20, 24)
#: (reference date, secondary date) of the pairs.
DATES = (("2020-02-01", "2020-02-11"), ("2020-02-01", "2020-02-21"), ("2020-02-11", "2020-03-02"))


def velocity_raster(path, v_east, v_north, ref="2020-02-01", sec="2020-02-11", transform=TRANSFORM) -> str:
    speed = np.hypot(v_east, v_north)
    azimuth = np.mod(np.degrees(np.arctan2(v_east, v_north)), 360)
    grid = Grid(CRS, transform, v_east.shape[1], v_east.shape[0])
    write_raster(str(path), grid, [speed, azimuth, v_east, v_north], list(VELOCITY_DESCRIPTIONS),
                 tags={"SM_REF_DATE": ref + "T00:00:00Z", "SM_SEC_DATE": sec + "T00:00:00Z"}, require_valid=None)
    return str(path)


def velocity_network(folder, seed=0):
    """Three velocity rasters with NaN holes; returns (paths, [(v_east, v_north) as float32-exact float64])."""
    rng = np.random.default_rng(seed)
    paths, fields = [], []
    for index, (ref, sec) in enumerate(DATES):
        e = (5.0 + index + rng.normal(0, 2, SHAPE)).astype(np.float32).astype(np.float64)
        n = (-2.0 + rng.normal(0, 2, SHAPE)).astype(np.float32).astype(np.float64)
        e[rng.random(SHAPE) < 0.15] = np.nan
        paths.append(velocity_raster(os.path.join(str(folder), f"pair{index}_velocity.tif"), e, n, ref, sec))
        fields.append((e, n))
    return paths, fields


def pixel_centres():
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    x, y = TRANSFORM * (cols + 0.5, rows + 0.5)
    return x, y


#: The AOI rectangle in UTM (edges half-way between pixel centres) and the buffered point.
RECT = (500000.0 + 3 * 3.0, 4000000.0 - 12 * 3.0, 500000.0 + 11 * 3.0, 4000000.0 - 4 * 3.0)
POINT = (500000.0 + 17.5 * 3.0, 4000000.0 - 9.5 * 3.0)   # a pixel centre (col 17, row 9)
BUFFER = 7.5                                              # centre distances 6.71 and 8.49 m either side


def rect_mask():
    x, y = pixel_centres()
    return (x > RECT[0]) & (x < RECT[2]) & (y > RECT[1]) & (y < RECT[3])


def disc_mask():
    x, y = pixel_centres()
    return np.hypot(x - POINT[0], y - POINT[1]) < BUFFER


def aoi_geojson(folder) -> tuple:
    """(polygon file, point file): GeoJSON in EPSG:4326 (another CRS than the rasters)."""
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    x0, y0, x1, y1 = RECT
    ring = [list(to_wgs84.transform(x, y)) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    polygon = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "rect"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    point = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "pt"},
         "geometry": {"type": "Point", "coordinates": list(to_wgs84.transform(*POINT))}}]}
    paths = []
    for name, content in (("aoi_polygon.geojson", polygon), ("aoi_point.geojson", point)):
        path = os.path.join(str(folder), name)
        with open(path, "w") as handle:
            json.dump(content, handle)
        paths.append(path)
    return tuple(paths)


def expected_statistics(v_east, v_north, mask) -> dict:
    """Direct numpy statistics of the AOI pixels (valid = both components finite)."""
    ok = mask & np.isfinite(v_east) & np.isfinite(v_north)
    out = {}
    for name, values in (("speed", np.hypot(v_east, v_north)[ok]), ("v_east", v_east[ok]), ("v_north", v_north[ok])):
        out[f"n_valid_{name}"] = values.size
        out[f"mean_{name}"] = values.mean()
        out[f"std_{name}"] = values.std()
        out[f"median_{name}"] = np.median(values)
        out[f"p25_{name}"] = np.percentile(values, 25)
        out[f"p75_{name}"] = np.percentile(values, 75)
    return out
