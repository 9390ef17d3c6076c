"""Bad inputs of surfacemotion:coregisterdem (issue 13, points 2 and 6): each case gives a clear error
naming what is wrong and how to fix it, and leaves nothing in the output folder. Inputs: the Rome DEM
in UTM 33N (test_core_dem builders) and variants of it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from bad_inputs import Case, case_ids, check_case
from test_core_dem import ROME, displaced_copy, rome_utm, write_dem

ALGORITHM = "coregisterdem"


def reference(ws) -> str:
    return rome_utm(ws.input("rome_utm33.tif"))


def dem(ws, **options) -> str:
    return displaced_copy(reference(ws), ws.input(options.pop("name", "dem.tif")), **options)


def outputs(ws, **changes) -> dict:
    return {"OUTPUT": ws.output("coreg.tif"), "DH_BEFORE": ws.output("before.tif"),
            "DH_AFTER": ws.output("after.tif"), "REPORT": ws.output("report.csv"), **changes}


def run(ws, **parameters) -> dict:
    base = {"DEM": dem(ws), "REFERENCE": reference(ws)}
    base.update(parameters)
    return dict(outputs(ws), **base)


def variant(ws, name, change=None, crs=None) -> str:
    """The displaced DEM with its values changed by ``change(values)`` and/or another CRS."""
    with rasterio.open(dem(ws)) as ds:
        values, transform, source_crs = ds.read(1), ds.transform, ds.crs
    if change is not None:
        values = change(values)
    return write_dem(ws.input(name), values, transform, source_crs if crs is None else crs)


def no_crs(ws) -> str:
    with rasterio.open(dem(ws)) as ds:
        values, transform = ds.read(1), ds.transform
    path = ws.input("no_crs.tif")
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype="float32", transform=transform, nodata=float("nan")) as out:
        out.write(values, 1)
    return path


def two_bands(ws) -> str:
    with rasterio.open(dem(ws)) as ds:
        profile, values = ds.profile, ds.read(1)
    path = ws.input("two_bands.tif")
    with rasterio.open(path, "w", **dict(profile, count=2)) as out:
        out.write(np.stack([values, values]))
    return path


def feet_heights(ws) -> str:
    """The reference with its heights in feet (band unit 'ft')."""
    with rasterio.open(reference(ws)) as ds:
        values, transform = ds.read(1), ds.transform
    return write_dem(ws.input("feet_heights.tif"), values / 0.3048, transform, units="ft")


def points(ws) -> str:
    path = ws.input("points.geojson")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [12.5, 42.0]}}]},
            handle)
    return path


def everything(ws) -> str:
    """One polygon (EPSG:4326) covering the whole DEM: no stable ground left."""
    path = ws.input("everything.geojson")
    ring = [[12.3, 41.8], [12.7, 41.8], [12.7, 42.2], [12.3, 42.2], [12.3, 41.8]]
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}, handle)
    return path


CASES = [
    Case("coregisterdem-no-dem", ALGORITHM, lambda ws: outputs(ws, REFERENCE=reference(ws)),
         r"DEM to align is required"),
    Case("coregisterdem-no-reference", ALGORITHM, lambda ws: outputs(ws, DEM=dem(ws)), r"Reference DEM is required"),
    Case("coregisterdem-missing-dem", ALGORITHM, lambda ws: run(ws, DEM=ws.input("absent.tif")),
         r"absent\.tif' does not exist"),
    Case("coregisterdem-dem-not-a-raster", ALGORITHM,
         lambda ws: run(ws, DEM=open(ws.input("x.tif"), "w").write("not a tiff") and ws.input("x.tif")),
         r"cannot be read: it is not a GDAL/OGR-readable file"),
    Case("coregisterdem-dem-in-degrees", ALGORITHM, lambda ws: run(ws, DEM=ROME),
         r"DEM to align 'Rome-30m-DEM\.tif' is in a geographic CRS.*Reproject it to a projected CRS in metres"),
    Case("coregisterdem-dem-in-feet", ALGORITHM, lambda ws: run(ws, DEM=variant(ws, "feet.tif", crs="EPSG:2263")),
         r"has its coordinates in .*foot.*not metres"),
    Case("coregisterdem-dem-two-bands", ALGORITHM, lambda ws: run(ws, DEM=two_bands(ws)),
         r"DEM to align 'two_bands\.tif' has 2 bands; a DEM has one band of heights"),
    Case("coregisterdem-reference-in-feet", ALGORITHM, lambda ws: run(ws, REFERENCE=feet_heights(ws)),
         r"reference DEM 'feet_heights\.tif' declares its heights in 'ft'.*Convert the heights to metres"),
    Case("coregisterdem-dem-without-crs", ALGORITHM, lambda ws: run(ws, DEM=no_crs(ws)),
         r"has no coordinate reference system"),
    Case("coregisterdem-no-overlap", ALGORITHM, lambda ws: run(ws, DEM=dem(ws, name="far.tif", dx=50_000.0)),
         r"'far\.tif' and the reference DEM 'rome_utm33\.tif' do not overlap"),
    Case("coregisterdem-dem-all-nodata", ALGORITHM,
         lambda ws: run(ws, DEM=variant(ws, "empty.tif", lambda v: np.full_like(v, np.nan))),
         r"have no valid cell in common"),
    Case("coregisterdem-different-vertical-datums", ALGORITHM, lambda ws: run(
        ws, DEM=dem(ws, name="egm96.tif", crs="EPSG:32633+5773"),
        REFERENCE=dem(ws, name="egm2008.tif", dx=0, dy=0, dz=0, crs="EPSG:32633+3855")),
         r"heights in 'EGM96 height' but the reference DEM 'egm2008\.tif' in 'EGM2008 height'.*Convert one"),
    Case("coregisterdem-ellipsoid-vs-geoid", ALGORITHM, lambda ws: run(
        ws, DEM=dem(ws, name="egm96.tif", crs="EPSG:32633+5773"),
        REFERENCE=displaced_copy(ROME, ws.input("ellipsoidal.tif"), dx=0, dy=0, dz=0, crs="EPSG:4979")),
         r"'EGM96 height' but the reference DEM 'ellipsoidal\.tif' in 'ellipsoidal height"),
    Case("coregisterdem-flat-terrain", ALGORITHM,
         lambda ws: run(ws, DEM=variant(ws, "flat.tif", lambda v: np.where(np.isfinite(v), 50.0, v)),
                        REFERENCE=variant(ws, "flat_ref.tif", lambda v: np.where(np.isfinite(v), 48.0, v))),
         r"Only 0 stable cells.*with a slope between 5° and 40°.*Lower the minimum slope"),
    Case("coregisterdem-narrow-slope-range", ALGORITHM, lambda ws: run(ws, SLOPE_MIN=30, SLOPE_MAX=31),
         r"Only \d+ stable cells .* at least 2000 are needed"),
    Case("coregisterdem-slope-limits-reversed", ALGORITHM, lambda ws: run(ws, SLOPE_MIN=40, SLOPE_MAX=10),
         r"slope limits must satisfy 0 ≤ minimum < maximum ≤ 90° \(got 40° and 10°\)"),
    Case("coregisterdem-slope-min-negative", ALGORITHM, lambda ws: run(ws, SLOPE_MIN=-1),
         r"Minimum slope \(degrees\) must be between 0 and 89 \(got -1\)"),
    Case("coregisterdem-max-iterations-zero", ALGORITHM, lambda ws: run(ws, MAX_ITERATIONS=0),
         r"Maximum iterations must be between 1 and 100 \(got 0\)"),
    Case("coregisterdem-tolerance-zero", ALGORITHM, lambda ws: run(ws, TOLERANCE=0),
         r"Tolerance of the horizontal step \(pixels\) must be between"),
    Case("coregisterdem-unstable-points", ALGORITHM, lambda ws: run(ws, UNSTABLE=points(ws)),
         r"is a point layer; a polygon layer is needed"),
    Case("coregisterdem-unstable-everywhere", ALGORITHM, lambda ws: run(ws, UNSTABLE=everything(ws)),
         r"Only 0 stable cells.*0 outside the unstable areas"),
    Case("coregisterdem-output-not-tif", ALGORITHM, lambda ws: run(ws, OUTPUT=ws.output("coreg.png")),
         r"must be a GeoTIFF"),
    Case("coregisterdem-output-overwrites-input", ALGORITHM, lambda ws: run(ws, DH_BEFORE=reference(ws)),
         r"would overwrite the input 'rome_utm33\.tif'"),
    Case("coregisterdem-two-outputs-one-file", ALGORITHM, lambda ws: run(ws, DH_AFTER=ws.output("before.tif")),
         r"Two outputs have the same file name"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)
