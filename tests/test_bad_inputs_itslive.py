"""Bad inputs of the ITS_LIVE algorithms (issue 11, point 6): strainrates, fluxdivergence, trackparticles,
itslivefindcubes, itslivedownload and itslivepointseries.

Real inputs: the Alaska stacks of tests/data/itslive (9 annual bands dated 2010-2018, EPSG:3413) and the
loopback ITS_LIVE server of tests/itslive_server.py. Every row gives the expected message fragment and
checks that nothing was left in the output folder. After the table: the cancel of a stalled request (within
2 s, nothing left) and the inputs that used to crash and now work (close points, seeds that cannot move,
negative thickness cells).
"""
from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
import rasterio
from affine import Affine

from bad_inputs import Case, case_ids, check_case
from faults import error_log, leftovers
from test_bad_inputs_offsets import box, warning_log
from test_bad_inputs_offsets import geojson as offsets_geojson
from test_itslive_algorithms import (OUTLINE_CSV, THICKNESS, VX, VY, fast_ice_points, service,
                                     window_extent)

#: The loopback server of the running test (set by the ``server`` fixture; parameters read it lazily).
SERVER = {}
RANGE = r"must be (between|at least|at most)"


# --------------------------------------------------------------------------- inputs

def stack_like(ws, name: str, source: str, change=None, transform=None, crs="keep", count=None) -> str:
    """A copy of a velocity stack in ``ws.inputs``: ``change(data)``, another grid or CRS, or its first
    ``count`` bands."""
    with rasterio.open(source) as ds:
        data = ds.read()
        profile = dict(ds.profile, driver="GTiff")
        descriptions = ds.descriptions
    if count is not None:
        data, descriptions = data[:count], descriptions[:count]
    if change is not None:
        data = change(data.copy())
    profile.update(count=data.shape[0], height=data.shape[1], width=data.shape[2], dtype="float32")
    if transform is not None:
        profile["transform"] = transform
    if crs != "keep":
        profile["crs"] = crs
    profile.pop("blockxsize", None)
    profile.pop("blockysize", None)
    profile["tiled"] = False
    path = ws.input(name)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.float32))
        for band, text in enumerate(descriptions, start=1):
            if text:
                dst.set_band_description(band, text)
    return path


def grid_of(source: str) -> Affine:
    with rasterio.open(source) as ds:
        return ds.transform


def moved(source: str, dx: float, dy: float) -> Affine:
    t = grid_of(source)
    return Affine(t.a, t.b, t.c + dx, t.d, t.e, t.f + dy)


def geojson(ws, name: str, geometries, crs: str = "EPSG:3413") -> str:
    return offsets_geojson(ws, name, geometries, crs)


def points(ws, coordinates, name: str = "points.geojson", crs: str = "EPSG:3413") -> str:
    return geojson(ws, name, [{"type": "Point", "coordinates": list(p)} for p in coordinates], crs)


def centre():
    with rasterio.open(VX) as ds:
        return ds.xy(ds.height // 2, ds.width // 2)


def polygon_layer(ws, name: str = "polygons.geojson") -> str:
    x, y = centre()
    return geojson(ws, name, [box(x - 500, y - 500, x + 500, y + 500)])


def shapefile_without_crs(ws, kind: str) -> str:
    """A point or polygon shapefile without .prj: QGIS reads it with an invalid CRS."""
    from osgeo import ogr

    x, y = centre()
    path = ws.input(f"nocrs_{kind}.shp")
    dataset = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(path)
    layer = dataset.CreateLayer("nocrs", None, ogr.wkbPoint if kind == "point" else ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    geometry = {"type": "Point", "coordinates": [x, y]} if kind == "point" else box(x - 500, y - 500, x + 500, y + 500)
    feature.SetGeometry(ogr.CreateGeometryFromJson(json.dumps(geometry)))
    layer.CreateFeature(feature)
    dataset = None
    return path


def stuck_point():
    """Map x, y of a cell where vx is nodata in band 1 (the first layer, where tracking starts)."""
    with rasterio.open(VX) as ds:
        rows, cols = np.nonzero(~np.isfinite(ds.read(1)))
        return ds.xy(int(rows[len(rows) // 2]), int(cols[len(rows) // 2]))


def nodata_seed(ws) -> str:
    return points(ws, [stuck_point()], "nodata_seed.geojson")


def outline_csv(ws, rows, header="x,y") -> str:
    path = ws.input("outline.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


def huge_vrt(ws, name: str, source: str, size: int = 300_000) -> str:
    from osgeo import gdal

    path = ws.input(name)
    gdal.Translate(path, source, format="VRT", width=size, height=size, bandList=[1])
    return path


def all_nan(data):
    return np.full(data.shape, np.nan)


def strain(ws, **extra) -> dict:
    return dict({"VX": VX, "VY": VY, "OUTPUT": ws.output("strain.tif")}, **extra)


def flux(ws, **extra) -> dict:
    return dict({"THICKNESS": THICKNESS, "VX": VX, "VY": VY, "OUTPUT": ws.output("flux.tif")}, **extra)


def track(ws, seeds=None, **extra) -> dict:
    return dict({"SEEDS": seeds or points(ws, fast_ice_points(2)), "VX": VX, "VY": VY,
                 "OUTPUT_LINES": ws.output("lines.gpkg"), "OUTPUT_POINTS": ws.output("points.gpkg")}, **extra)


def urls() -> dict:
    return service(SERVER["server"])


def extent() -> str:
    return window_extent(SERVER["server"])[0]


def window_corner():
    return window_extent(SERVER["server"])[1]


#: An EPSG:3413 extent over Scandinavia's coast, where the loopback server has no cube.
NOWHERE = "1500000,1510000,-1500000,-1490000 [EPSG:3413]"


def find(ws, **extra) -> dict:
    return dict({"AOI_EXTENT": extent(), "OUTPUT": ws.output("cubes.gpkg"), **urls()}, **extra)


def download(ws, **extra) -> dict:
    return dict({"AOI_EXTENT": extent(), "START_DATE": "2014-01-01", "END_DATE": "2016-01-01",
                 "OUTPUT_FOLDER": ws.output("cubes"), **urls()}, **extra)


def series_points(ws):
    left, top = window_corner()
    return points(ws, [(left + 60.0, top - 60.0)], "series_points.geojson")


def series(ws, **extra) -> dict:
    return dict({"POINTS": series_points(ws), "START_DATE": "2010-01-01", "END_DATE": "2019-01-01",
                 "OUTPUT": ws.output("series.gpkg"), "OUTPUT_CSV": ws.output("series.csv"),
                 "OUTPUT_PLOT": ws.output("series.png"), **urls()}, **extra)


def unreachable(**extra) -> dict:
    return dict({"STAC_URL": "http://127.0.0.1:9/stac", "CATALOG_URL": "http://127.0.0.1:9/catalog.json",
                 "TIMEOUT": 2}, **extra)


# --------------------------------------------------------------------------- the table

CASES = [
    # ---- strainrates
    Case("strainrates-band-0", "strainrates", lambda ws: strain(ws, BAND=0),
         r"Band \(time step\).*must be between 1 and 100000 \(got 0\)"),
    Case("strainrates-band-12", "strainrates", lambda ws: strain(ws, BAND=12), r"band 12 does not exist"),
    Case("strainrates-upscale-0", "strainrates", lambda ws: strain(ws, UPSCALE=0), r"Upscale.*must be between 1"),
    Case("strainrates-length-scale-negative", "strainrates", lambda ws: strain(ws, LENGTH_SCALE=-240),
         r"Half length scale.*must be between 0 and"),
    Case("strainrates-vy-other-size", "strainrates", lambda ws: strain(
        ws, VY=stack_like(ws, "vy_small.tif", VY, lambda d: d[:, :100, :100])),
         r"not on the same grid \(240 x 240 vs 100 x 100 cells\)"),
    Case("strainrates-vy-other-origin", "strainrates", lambda ws: strain(
        ws, VY=stack_like(ws, "vy_moved.tif", VY, transform=moved(VY, 120.0, 0.0))),
         r"not on the same grid \(same size, but the origins differ"),
    Case("strainrates-vy-other-pixel", "strainrates", lambda ws: strain(
        ws, VY=stack_like(ws, "vy_fine.tif", VY, transform=Affine(60, 0, grid_of(VY).c, 0, -60, grid_of(VY).f))),
         r"pixel size 120 x 120 vs 60 x 60"),
    Case("strainrates-vy-one-band", "strainrates", lambda ws: strain(
        ws, VY=stack_like(ws, "vy_one.tif", VY, count=1), BAND=5), r"band 5 does not exist"),
    Case("strainrates-vy-other-crs", "strainrates", lambda ws: strain(
        ws, VY=stack_like(ws, "vy_3031.tif", VY, crs="EPSG:3031")), r"different CRSs"),
    Case("strainrates-vx-all-nodata", "strainrates", lambda ws: strain(
        ws, VX=stack_like(ws, "vx_nan.tif", VX, all_nan)), r"is all nodata in band\(s\) 1"),
    Case("strainrates-vx-no-crs", "strainrates", lambda ws: strain(
        ws, VX=stack_like(ws, "vx_nocrs.tif", VX, crs=None)), r"no coordinate reference system"),
    Case("strainrates-geographic", "strainrates", lambda ws: strain(
        ws, VX=stack_like(ws, "vx_geo.tif", VX, crs="EPSG:4326", transform=Affine(0.01, 0, -50, 0, -0.01, 70)),
        VY=stack_like(ws, "vy_geo.tif", VY, crs="EPSG:4326", transform=Affine(0.01, 0, -50, 0, -0.01, 70))),
         r"geographic"),
    Case("strainrates-rotated", "strainrates", lambda ws: strain(
        ws, VX=stack_like(ws, "vx_rot.tif", VX, transform=Affine(120, 10, -3308887.5, 10, -120, 330727.5))),
         r"rotated geotransform"),
    Case("strainrates-one-error-raster", "strainrates", lambda ws: strain(ws, VX_ERROR=VX), r"Give both"),
    Case("strainrates-error-other-grid", "strainrates", lambda ws: strain(
        ws, VX_ERROR=stack_like(ws, "vxe.tif", VX, lambda d: d[:, :50, :50]),
        VY_ERROR=stack_like(ws, "vye.tif", VY, lambda d: d[:, :50, :50])), r"is not on the velocity grid"),
    Case("strainrates-too-big", "strainrates", lambda ws: strain(
        ws, VX=huge_vrt(ws, "vx_huge.vrt", VX), VY=huge_vrt(ws, "vy_huge.vrt", VY)),
         r"needs about [\d,.]+ GiB of memory.*coarser grid"),
    Case("strainrates-length-scale-too-long", "strainrates", lambda ws: strain(ws, LENGTH_SCALE=20000),
         r"too small for a length scale of 167 cells"),
    Case("strainrates-output-not-tif", "strainrates", lambda ws: strain(ws, OUTPUT=ws.output("s.png")), r"GeoTIFF"),
    Case("strainrates-missing-vx", "strainrates", lambda ws: strain(ws, VX=ws.input("absent.tif")),
         r"absent\.tif.*does not exist"),

    # ---- fluxdivergence
    Case("fluxdivergence-column-factor-2", "fluxdivergence", lambda ws: flux(ws, COLUMN_FACTOR=2),
         r"Column-mean / surface speed factor must be between 0 and 1.5 \(got 2\)"),
    Case("fluxdivergence-length-scale-negative", "fluxdivergence", lambda ws: flux(ws, LENGTH_SCALE=-1), RANGE),
    Case("fluxdivergence-band-10", "fluxdivergence", lambda ws: flux(ws, BAND=10), r"band 10 does not exist"),
    Case("fluxdivergence-thickness-elsewhere", "fluxdivergence", lambda ws: flux(
        ws, THICKNESS=stack_like(ws, "h_far.tif", THICKNESS, transform=moved(THICKNESS, 1e6, 0))),
         r"does not overlap the velocity grid"),
    Case("fluxdivergence-thickness-all-nodata", "fluxdivergence", lambda ws: flux(
        ws, THICKNESS=stack_like(ws, "h_nan.tif", THICKNESS, all_nan)), r"all nodata"),
    Case("fluxdivergence-thickness-negative", "fluxdivergence", lambda ws: flux(
        ws, THICKNESS=stack_like(ws, "h_neg.tif", THICKNESS, lambda d: -np.abs(d) - 1)),
         r"ice thickness cannot be negative"),
    Case("fluxdivergence-vx-all-nodata", "fluxdivergence", lambda ws: flux(
        ws, VX=stack_like(ws, "vx_nan.tif", VX, all_nan)), r"is all nodata"),
    Case("fluxdivergence-outline-points", "fluxdivergence", lambda ws: flux(
        ws, OUTLINE=points(ws, fast_ice_points(1))), r"Glacier outline.*point layer; a polygon layer is needed"),
    Case("fluxdivergence-outline-no-crs", "fluxdivergence", lambda ws: flux(
        ws, OUTLINE=shapefile_without_crs(ws, "polygon")), r"no coordinate reference system"),
    Case("fluxdivergence-outline-empty", "fluxdivergence", lambda ws: flux(
        ws, OUTLINE=geojson(ws, "empty.geojson", [])), r"has no features"),
    Case("fluxdivergence-outline-elsewhere", "fluxdivergence", lambda ws: flux(
        ws, OUTLINE=geojson(ws, "far.geojson", [box(0, 0, 1000, 1000)])), r"outline does not overlap"),
    Case("fluxdivergence-outline-csv-text", "fluxdivergence", lambda ws: flux(
        ws, OUTLINE_CSV=outline_csv(ws, [(1, 2), ("east", "north"), (3, 4)])), r"are not numbers"),
    Case("fluxdivergence-outline-csv-two-vertices", "fluxdivergence", lambda ws: flux(
        ws, OUTLINE_CSV=outline_csv(ws, [(-3290000, 310000), (-3289000, 311000)])), r"fewer than 3 vertices"),
    Case("fluxdivergence-too-big", "fluxdivergence", lambda ws: flux(
        ws, VX=huge_vrt(ws, "vx_huge.vrt", VX), VY=huge_vrt(ws, "vy_huge.vrt", VY)), r"GiB of memory"),
    Case("fluxdivergence-missing-thickness", "fluxdivergence", lambda ws: flux(ws, THICKNESS=ws.input("h.tif")),
         r"does not exist"),

    # ---- trackparticles
    Case("trackparticles-seeds-polygons", "trackparticles", lambda ws: track(ws, seeds=polygon_layer(ws)),
         r"Seed points.*polygon layer; a point layer is needed"),
    Case("trackparticles-seeds-empty", "trackparticles", lambda ws: track(ws, seeds=geojson(ws, "none.geojson", [])),
         r"has no features"),
    Case("trackparticles-seeds-no-crs", "trackparticles", lambda ws: track(
        ws, seeds=shapefile_without_crs(ws, "point")), r"no coordinate reference system"),
    Case("trackparticles-seed-on-nodata", "trackparticles", lambda ws: track(ws, seeds=nodata_seed(ws)),
         r"No seed could move: of 1 seed\(s\), 0 lie outside the velocity grid and 1 on nodata"),
    Case("trackparticles-seed-outside", "trackparticles", lambda ws: track(
        ws, seeds=points(ws, [(0.0, 0.0)], "outside.geojson")), r"No seed could move.*check the seed layer's CRS"),
    Case("trackparticles-duration-0", "trackparticles", lambda ws: track(ws, DURATION=0), r"duration is zero"),
    Case("trackparticles-duration-5000", "trackparticles", lambda ws: track(ws, DURATION=5000),
         r"Duration.*must be between -1000 and 1000 \(got 5000\)"),
    Case("trackparticles-cfl-0.9", "trackparticles", lambda ws: track(ws, CFL=0.9),
         r"Maximum step.*must be between 0.01 and 0.5 \(got 0.9\)"),
    Case("trackparticles-start-outside-record", "trackparticles", lambda ws: track(
        ws, START_DATE="1990-06-01T00:00:00Z"), r"outside the velocity record"),
    Case("trackparticles-vy-other-size", "trackparticles", lambda ws: track(
        ws, VY=stack_like(ws, "vy_small.tif", VY, lambda d: d[:, :100, :100])), r"not on the same grid"),
    Case("trackparticles-vx-all-nodata", "trackparticles", lambda ws: track(
        ws, VX=stack_like(ws, "vx_nan.tif", VX, all_nan)), r"all nodata"),

    # ---- itslivefindcubes
    Case("itslivefindcubes-no-aoi", "itslivefindcubes", lambda ws: dict(find(ws), AOI_EXTENT=None),
         r"area of interest is empty"),
    Case("itslivefindcubes-aoi-points", "itslivefindcubes", lambda ws: find(
        ws, AOI_EXTENT=None, AOI_LAYER=points(ws, fast_ice_points(1))), r"point layer; a polygon layer is needed"),
    Case("itslivefindcubes-aoi-no-crs", "itslivefindcubes", lambda ws: find(
        ws, AOI_EXTENT=None, AOI_LAYER=shapefile_without_crs(ws, "polygon")), r"no coordinate reference system"),
    Case("itslivefindcubes-timeout-0", "itslivefindcubes", lambda ws: find(ws, TIMEOUT=0),
         r"HTTP timeout.*must be between 0.1 and 3600 \(got 0\)"),
    Case("itslivefindcubes-flat-aoi", "itslivefindcubes", lambda ws: find(
        ws, AOI_EXTENT="-3290000,-3290000,310000,311000 [EPSG:3413]"), r"has no area"),
    Case("itslivefindcubes-nothing-there", "itslivefindcubes", lambda ws: find(ws, AOI_EXTENT=NOWHERE),
         r"No ITS_LIVE cube intersects the area of interest"),
    Case("itslivefindcubes-unreachable", "itslivefindcubes", lambda ws: find(ws, **unreachable()),
         r"127\.0\.0\.1:9"),

    # ---- itslivedownload
    Case("itslivedownload-end-before-start", "itslivedownload", lambda ws: download(
        ws, START_DATE="2016-01-01", END_DATE="2014-01-01"), r"must be after the start date"),
    Case("itslivedownload-start-date-garbage", "itslivedownload", lambda ws: download(ws, START_DATE="2015-13-45"),
         r"Start date.*must be a date \(YYYY-MM-DD\).*got '2015-13-45'"),
    Case("itslivedownload-same-dates", "itslivedownload", lambda ws: download(
        ws, START_DATE="2015-01-01", END_DATE="2015-01-01", **unreachable()), r"must be after the start date"),
    Case("itslivedownload-no-variables", "itslivedownload", lambda ws: download(ws, VARIABLES=[]),
         r"Variables is required: choose at least one"),
    Case("itslivedownload-roi-101", "itslivedownload", lambda ws: download(ws, MIN_ROI_VALID=101),
         r"roi_valid_percentage.*must be between 0 and 100 \(got 101\)"),
    Case("itslivedownload-dt-min-above-max", "itslivedownload", lambda ws: download(ws, DT_MIN=100, DT_MAX=10),
         r"minimum date_dt is larger than the maximum"),
    Case("itslivedownload-aggregate-negative", "itslivedownload", lambda ws: download(ws, AGGREGATE_AMOUNT=-1),
         r"Aggregate.*must be between 0 and 1000"),
    Case("itslivedownload-timeout-0", "itslivedownload", lambda ws: download(ws, TIMEOUT=0),
         r"must be between 0.1 and 3600"),
    Case("itslivedownload-nothing-there", "itslivedownload", lambda ws: download(ws, AOI_EXTENT=NOWHERE),
         r"No ITS_LIVE cube intersects the area of interest"),
    Case("itslivedownload-filters-match-nothing", "itslivedownload", lambda ws: download(ws, DT_MIN=1000),
         r"No layer matched the filters"),
    Case("itslivedownload-mosaic-bad-placeholder", "itslivedownload", lambda ws: download(
        ws, SOURCE=1, MOSAIC_URL="http://127.0.0.1:9/{regio}_{year}_{variable}.tif"),
         r"unknown placeholder \{regio\}"),
    Case("itslivedownload-mosaic-no-year", "itslivedownload", lambda ws: download(
        ws, SOURCE=1, MOSAIC_URL="http://127.0.0.1:9/{region}_{variable}.tif"), r"lacks \{year\}"),
    Case("itslivedownload-aoi-points", "itslivedownload", lambda ws: download(
        ws, AOI_EXTENT=None, AOI_LAYER=points(ws, fast_ice_points(1))), r"point layer; a polygon layer is needed"),
    Case("itslivedownload-unreachable", "itslivedownload", lambda ws: download(ws, **unreachable()),
         r"127\.0\.0\.1:9"),

    # ---- itslivepointseries
    Case("itslivepointseries-polygons", "itslivepointseries", lambda ws: series(ws, POINTS=polygon_layer(ws)),
         r"Points.*polygon layer; a point layer is needed"),
    Case("itslivepointseries-empty", "itslivepointseries", lambda ws: series(
        ws, POINTS=geojson(ws, "none.geojson", [])), r"has no features"),
    Case("itslivepointseries-no-crs", "itslivepointseries", lambda ws: series(
        ws, POINTS=shapefile_without_crs(ws, "point")), r"no coordinate reference system"),
    Case("itslivepointseries-end-before-start", "itslivepointseries", lambda ws: series(
        ws, START_DATE="2019-01-01", END_DATE="2010-01-01"), r"must be after the start date"),
    Case("itslivepointseries-dt-min-above-max", "itslivepointseries", lambda ws: series(ws, DT_MIN=100, DT_MAX=10),
         r"minimum date_dt is larger than the maximum"),
    Case("itslivepointseries-roi-negative", "itslivepointseries", lambda ws: series(ws, MIN_ROI_VALID=-1),
         r"must be between 0 and 100 \(got -1\)"),
    Case("itslivepointseries-no-cube", "itslivepointseries", lambda ws: series(
        ws, POINTS=points(ws, [(1505000.0, -1495000.0)], "far.geojson")), r"No ITS_LIVE cube intersects"),
    Case("itslivepointseries-filters-match-nothing", "itslivepointseries", lambda ws: series(
        ws, DT_MIN=80, DT_MAX=85), r"No layer matched the filters"),
    Case("itslivepointseries-unreachable", "itslivepointseries", lambda ws: series(ws, **unreachable()),
         r"127\.0\.0\.1:9"),
]


@pytest.fixture
def server(cube_server):  # noqa: F811 (the fixture imported above)
    cube_server.faults.clear()
    SERVER["server"] = cube_server
    yield cube_server
    cube_server.faults.clear()


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, server, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)


# --------------------------------------------------------------------------- cancelling a stalled request

def run_and_cancel_after(run_algorithm, algorithm: str, parameters: dict, delay: float):
    """Run ``algorithm`` and cancel its feedback after ``delay`` s from a timer; (error text, seconds
    from the cancel to the end of the run)."""
    from qgis.core import QgsProcessingException

    feedback = error_log()
    cancelled_at = {}

    def cancel():
        cancelled_at["t"] = time.monotonic()
        feedback.cancel()

    timer = threading.Timer(delay, cancel)
    timer.start()
    try:
        with pytest.raises(QgsProcessingException) as raised:
            run_algorithm(algorithm, parameters, feedback=feedback)
    finally:
        timer.cancel()
    assert "t" in cancelled_at, "the run ended before the cancel"
    return "\n".join([str(raised.value), *feedback.errors]), time.monotonic() - cancelled_at["t"]


@pytest.mark.parametrize("algorithm, stalled", [("itslivefindcubes", "/stac"), ("itslivedownload", "/cubes/"),
                                                ("itslivepointseries", "/cubes/")])
def test_cancel_ends_a_stalled_request_within_two_seconds(algorithm, stalled, server, run_algorithm, tmp_path):
    from bad_inputs import Workspace

    ws = Workspace(str(tmp_path))
    parameters = {"itslivefindcubes": find, "itslivedownload": download, "itslivepointseries": series}[algorithm](ws)
    parameters["TIMEOUT"] = 60.0
    server.slow_seconds = 20.0
    server.faults[stalled] = "slow"
    try:
        text, after_cancel = run_and_cancel_after(run_algorithm, f"surfacemotion:{algorithm}", parameters, 1.0)
    finally:
        server.faults.clear()
        server.slow_seconds = 3.0
    assert after_cancel < 2.0, f"the run went on {after_cancel:.1f} s after the cancel"
    assert "Cancelled by the user" in text, text
    assert leftovers(ws.out) == []


# --------------------------------------------------------------------------- what used to crash now works

def test_two_points_two_kilometres_apart_give_one_series_each(server, run_algorithm, tmp_path):
    """Their ±0.01° boxes overlap: the area of interest is their union (was an invalid MultiPolygon and a
    shapely TopologicalError)."""
    left, top = window_corner()
    seeds = points(_Inputs(tmp_path), [(left + 60.0, top - 60.0), (left + 60.0 + 1900.0, top - 60.0)])
    results, _, _ = run_algorithm("surfacemotion:itslivepointseries", dict(
        {"POINTS": seeds, "START_DATE": "2010-01-01", "END_DATE": "2019-01-01", "OUTPUT": "memory:",
         "OUTPUT_CSV": str(tmp_path / "s.csv"), "OUTPUT_PLOT": str(tmp_path / "s.png")}, **urls()))
    ids = [feature["point_id"] for feature in results["OUTPUT"].getFeatures()]
    assert results["N_ROWS"] == 36 and ids.count(1) == 18 and ids.count(2) == 18


def test_default_dates_select_the_whole_record(server, run_algorithm, tmp_path):
    """START_DATE and END_DATE omitted: 1985-01-01 to tomorrow (both were today: nothing selected)."""
    left, top = window_corner()
    seeds = points(_Inputs(tmp_path), [(left + 60.0, top - 60.0)])
    results, _, _ = run_algorithm("surfacemotion:itslivepointseries", dict(
        {"POINTS": seeds, "OUTPUT": "memory:", "OUTPUT_CSV": str(tmp_path / "s.csv"),
         "OUTPUT_PLOT": str(tmp_path / "s.png")}, **urls()))
    assert results["N_ROWS"] == 18  # all 9 years, the two pairs of <= 90 days each


def test_a_seed_that_cannot_move_gets_a_zero_length_line(run_algorithm, tmp_path):
    from qgis.core import QgsVectorLayer

    inputs = _Inputs(tmp_path)
    seeds = points(inputs, [fast_ice_points(1)[0], stuck_point()])
    feedback = error_log()
    results, _, _ = run_algorithm("surfacemotion:trackparticles", {
        "SEEDS": seeds, "VX": VX, "VY": VY, "DURATION": 1.0, "OUTPUT_LINES": str(tmp_path / "lines.gpkg"),
        "OUTPUT_POINTS": str(tmp_path / "points.gpkg")}, feedback=feedback)
    lines = {f["track_id"]: f for f in QgsVectorLayer(results["OUTPUT_LINES"], "l", "ogr").getFeatures()}
    assert lines[1]["length_m"] > 100.0
    assert lines[2]["stop_reason"] == "nodata at seed" and lines[2]["length_m"] == 0.0
    assert lines[2].geometry().length() == 0.0


def test_negative_thickness_cells_are_nodata_with_a_warning(run_algorithm, tmp_path):
    with rasterio.open(THICKNESS) as ds:
        n_negative = int((ds.read(1) < 0).sum())
    assert n_negative > 0  # the example thickness grid has negative cells
    feedback = warning_log()
    results, _, _ = run_algorithm("surfacemotion:fluxdivergence", {
        "THICKNESS": THICKNESS, "VX": VX, "VY": VY, "OUTLINE_CSV": OUTLINE_CSV,
        "OUTPUT": str(tmp_path / "flux.tif")}, feedback=feedback)
    messages = feedback.warnings
    warning = [m for m in messages if "thickness" in m and "negative" in m]
    assert warning and "treated as nodata" in warning[0], messages
    with rasterio.open(results["OUTPUT"]) as ds:
        thickness = ds.read(2)
    assert np.nanmin(thickness) >= 0.0


class _Inputs:
    """``ws.input`` for the tests outside the table."""

    def __init__(self, tmp_path):
        self.inputs = str(tmp_path)

    def input(self, name: str) -> str:
        return os.path.join(self.inputs, name)
