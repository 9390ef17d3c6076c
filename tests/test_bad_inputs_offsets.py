"""Bad inputs of the offset-tracking chain (issue 11, point 6): extractband, buildpairs, correlatepair,
correlatepairs, polyfit, velocity and the shipped model planetscopel3bvelocity.

Every row is a real bad input made from the sample scenes (sample/) and their bands and disparity map
(made once per session with the core functions), the expected message fragment, and no file left in the
output folder. Behaviour that was fixed alongside and is not an error (reversed dates, zero offsets,
pyramid levels into a new folder) is tested at the end.
"""
from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import pytest
import rasterio
from affine import Affine

from bad_inputs import Case, case_ids, check_case
from faults import error_log
from conftest import ALGORITHM_COUNT, REPO, SAMPLE_DIR

sys.path.insert(0, os.path.join(REPO, "tools"))
import demo  # noqa: E402

SCENES = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))
OUTLINE = os.path.join(SAMPLE_DIR, "landslide_outline.geojson")
FAST = {"CHIP_SIZE": 32, "SEARCH_RANGE": 8, "STEP": 16}
MODEL = "surfacemotion:planetscopel3bvelocity"


# --------------------------------------------------------------------------- inputs made once per session

@functools.lru_cache(maxsize=None)
def chain() -> dict:
    """Green bands of two sample scenes and their disparity map (core functions, made once)."""
    from surface_motion.core.offsets.bands import extract_band, output_name_for
    from surface_motion.core.offsets.batch import pair_tags
    from surface_motion.core.offsets.correlate import correlate_files

    root = tempfile.mkdtemp(prefix="sm-bad-offsets-")
    bands = []
    for scene in (SCENES[0], SCENES[2]):
        bands.append(extract_band(scene, os.path.join(root, output_name_for(scene, 2)), band=2))
    disparity = os.path.join(root, "20200715_151233_62_2414_20210718_151502_45_241e_disp.tif")
    correlate_files(bands[0], bands[1], disparity, chip_size=32, search_range=8, step=16,
                    tags=pair_tags(bands[0], bands[1]))
    return {"root": root, "bands": bands, "disparity": disparity}


def _band(index: int = 0) -> str:
    return chain()["bands"][index]


def _disparity() -> str:
    return chain()["disparity"]


def _profile(path: str) -> dict:
    with rasterio.open(path) as ds:
        return dict(ds.profile)


def raster_like(ws, name: str, source: str, values=None, transform=None, crs="keep", dtype=None,
                nodata="keep", count=None) -> str:
    """A GeoTIFF in ``ws.inputs`` with the grid of ``source`` (changed as asked) and ``values``
    (a function of the source's data, an array, or None = the source's data)."""
    with rasterio.open(source) as ds:
        data = ds.read()
        profile = dict(ds.profile)
        tags = ds.tags()
        descriptions = ds.descriptions
    if callable(values):
        data = values(data)
    elif values is not None:
        data = np.broadcast_to(np.asarray(values), data.shape).copy()
    if count is not None:
        data = np.repeat(data[:1], count, axis=0)
        descriptions = [None] * count
    profile.update(count=data.shape[0], dtype=dtype or str(data.dtype), driver="GTiff")
    if transform is not None:
        profile["transform"] = transform
    if crs != "keep":
        profile["crs"] = crs
    if nodata != "keep":
        profile["nodata"] = nodata
    path = ws.input(name)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(profile["dtype"]))
        dst.update_tags(**tags)
        for band, text in enumerate(descriptions, start=1):
            if text:
                dst.set_band_description(band, text)
    return path


def shifted(source: str, dcol: float, drow: float) -> Affine:
    t = _profile(source)["transform"]
    return Affine(t.a, t.b, t.c + dcol * t.a, t.d, t.e, t.f + drow * t.e)


def scaled(source: str, factor: float) -> Affine:
    t = _profile(source)["transform"]
    return Affine(t.a * factor, t.b, t.c, t.d, t.e * factor, t.f)


def cropped(ws, name: str, source: str, rows: int, cols: int, row0: int = 0, col0: int = 0) -> str:
    """A window of ``source`` (same pixels, georeferenced)."""
    with rasterio.open(source) as ds:
        window = rasterio.windows.Window(col0, row0, cols, rows)
        data = ds.read(window=window)
        profile = dict(ds.profile, width=cols, height=rows, transform=ds.window_transform(window),
                       driver="GTiff", tiled=False)
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
    path = ws.input(name)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def geojson(ws, name: str, geometries, crs: str = "EPSG:32618") -> str:
    features = [{"type": "Feature", "properties": {"id": k}, "geometry": g} for k, g in enumerate(geometries)]
    document = {"type": "FeatureCollection", "features": features}
    if crs:
        document["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.split(':')[1]}"}}
    path = ws.input(name)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    return path


def scene_centre(source: str = None):
    with rasterio.open(source or _band()) as ds:
        return ds.xy(ds.height // 2, ds.width // 2)


def point_layer(ws) -> str:
    x, y = scene_centre()
    return geojson(ws, "points.geojson", [{"type": "Point", "coordinates": [x, y]}])


def box(x0, y0, x1, y1) -> dict:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def polygon_without_crs(ws) -> str:
    """A shapefile without .prj: QGIS reads it with an invalid CRS."""
    from osgeo import ogr

    x, y = scene_centre()
    path = ws.input("nocrs.shp")
    driver = ogr.GetDriverByName("ESRI Shapefile")
    dataset = driver.CreateDataSource(path)
    layer = dataset.CreateLayer("nocrs", None, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromJson(json.dumps(box(x - 100, y - 100, x + 100, y + 100))))
    layer.CreateFeature(feature)
    dataset = None
    return path


def far_polygon(ws) -> str:
    x, y = scene_centre()
    return geojson(ws, "far.geojson", [box(x + 1e5, y + 1e5, x + 1e5 + 300, y + 1e5 + 300)])


def whole_area_polygon(ws) -> str:
    x, y = scene_centre()
    return geojson(ws, "everything.geojson", [box(x - 1e4, y - 1e4, x + 1e4, y + 1e4)])


def empty_polygon_layer(ws) -> str:
    return geojson(ws, "empty.geojson", [])


def text_file(ws, name: str, text: str) -> str:
    path = ws.input(name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def scene_copy(ws, name: str, values=None, **options) -> str:
    """A sample scene rewritten under a PlanetScope-like name."""
    return raster_like(ws, name, SCENES[0], values, **options)


def renamed_band(ws, name: str, values=None, **options) -> str:
    return raster_like(ws, name, _band(), values, **options)


def disparity_like(ws, name: str, change) -> str:
    """A copy of the session's disparity map with ``change(data)`` applied to its bands."""
    return raster_like(ws, name, _disparity(), change)


def all_invalid(data):
    data = data.copy()
    data[0:2] = np.nan
    data[2] = 0
    return data


def huge_vrt(ws, name: str, source: str, size: int = 1_000_000) -> str:
    """A VRT of ``size`` x ``size`` pixels over ``source`` (a few bytes on disk, terabytes in memory)."""
    from osgeo import gdal

    path = ws.input(name)
    gdal.Translate(path, source, format="VRT", width=size, height=size)
    return path


def pair_csv(ws, rows, header="ref,sec") -> str:
    return text_file(ws, "pairs.csv", header + "\n" + "".join(f"{a},{b}\n" for a, b in rows))


def band_pair(ws, sec_name: str = "sec_20210718_151502_45_241e_3B_b2.tif", **options):
    return _band(), renamed_band(ws, sec_name, **options)


def correlate(ws, reference=None, secondary=None, **extra) -> dict:
    return dict({"REFERENCE": reference or _band(0), "SECONDARY": secondary or _band(1), **FAST,
                 "OUTPUT": ws.output("disp.tif")}, **extra)


def model(ws, **extra) -> dict:
    parameters = {"SCENES": SCENES[::2], "DT_MIN": 100, **FAST, "ORDER": 0,
                  **{name: ws.output(path) for name, path in demo.MODEL_OUTPUTS.items()}}
    parameters.update(extra)
    return parameters


def constant(value):
    """Every pixel ``value`` (NaN makes the data float)."""
    return lambda data: np.full(data.shape, value, np.float32 if np.isnan(value) else data.dtype)


# --------------------------------------------------------------------------- the table

RANGE = r"must be (between|at least|at most|a whole number)"

CASES = [
    # ---- extractband
    Case("extractband-no-scenes", "extractband", lambda ws: {"INPUT": [], "OUTPUT_FOLDER": ws.out},
         r"Multi-band scenes is required"),
    Case("extractband-band-0", "extractband", lambda ws: {"INPUT": SCENES[:1], "BAND": 0, "OUTPUT_FOLDER": ws.out},
         r"Band number.*must be between 1 and \d+ \(got 0\)"),
    Case("extractband-band-1.5", "extractband",
         lambda ws: {"INPUT": SCENES[:1], "BAND": 1.5, "OUTPUT_FOLDER": ws.out}, r"must be a whole number"),
    Case("extractband-band-missing", "extractband",
         lambda ws: {"INPUT": SCENES[:1], "BAND": 5, "OUTPUT_FOLDER": ws.out}, r"band 5.*(does not exist|has 4)"),
    Case("extractband-missing-file", "extractband",
         lambda ws: {"INPUT": [ws.input("nothing_3B_AnalyticMS_SR_clip.tif")], "OUTPUT_FOLDER": ws.out},
         r"does not exist"),
    Case("extractband-not-a-raster", "extractband",
         lambda ws: {"INPUT": [text_file(ws, "scene.tif", "not a tiff")], "OUTPUT_FOLDER": ws.out},
         r"cannot be read|not a GDAL"),
    Case("extractband-no-udm2", "extractband", lambda ws: {
        "INPUT": [scene_copy(ws, "20200715_151233_62_2414_3B_AnalyticMS_SR_clip.tif")], "USE_UDM2": True,
        "OUTPUT_FOLDER": ws.out}, r"No UDM2 file found"),
    Case("extractband-all-nodata", "extractband", lambda ws: {
        "INPUT": [scene_copy(ws, "zeros_3B_AnalyticMS_SR_clip.tif", constant(0))], "OUTPUT_FOLDER": ws.out},
         r"no usable pixel|all nodata"),
    Case("extractband-all-nan", "extractband", lambda ws: {
        "INPUT": [scene_copy(ws, "nan_3B_AnalyticMS_SR_clip.tif", constant(np.nan), dtype="float32",
                             nodata=float("nan"))], "OUTPUT_FOLDER": ws.out}, r"no usable pixel|all nodata"),
    Case("extractband-constant", "extractband", lambda ws: {
        "INPUT": [scene_copy(ws, "flat_3B_AnalyticMS_SR_clip.tif", constant(1234))], "OUTPUT_FOLDER": ws.out},
         r"constant.*no texture"),
    Case("extractband-no-crs", "extractband", lambda ws: {
        "INPUT": [scene_copy(ws, "nocrs_3B_AnalyticMS_SR_clip.tif", crs=None)], "OUTPUT_FOLDER": ws.out},
         r"no coordinate reference system"),
    Case("extractband-udm2-other-grid", "extractband", lambda ws: {
        "INPUT": [_scene_with_udm2(ws, transform=shifted(SCENES[0], 5, 0))], "USE_UDM2": True,
        "OUTPUT_FOLDER": ws.out}, r"UDM2 mask .*(transform|grid)"),
    Case("extractband-udm2-other-crs", "extractband", lambda ws: {
        "INPUT": [_scene_with_udm2(ws, crs="EPSG:32617")], "USE_UDM2": True, "OUTPUT_FOLDER": ws.out},
         r"UDM2 mask .* is in"),
    Case("extractband-output-folder-is-a-file", "extractband", lambda ws: {
        "INPUT": SCENES[:1], "OUTPUT_FOLDER": text_file(ws, "a_file", "x")},
         r"(is a file|not a folder|Not a directory)"),

    # ---- buildpairs
    Case("buildpairs-nothing", "buildpairs", lambda ws: {"OUTPUT": ws.output("p.gpkg"),
                                                         "OUTPUT_CSV": ws.output("p.csv")}, r"No scenes given"),
    Case("buildpairs-missing-folder", "buildpairs", lambda ws: {
        "FOLDER": ws.input("absent"), "OUTPUT": ws.output("p.gpkg"), "OUTPUT_CSV": ws.output("p.csv")},
         r"does not exist"),
    Case("buildpairs-pattern-matches-nothing", "buildpairs", lambda ws: {
        "FOLDER": SAMPLE_DIR, "PATTERN": "*_b7.tif", "OUTPUT": ws.output("p.gpkg"), "OUTPUT_CSV": ws.output("p.csv")},
         r"b7"),
    Case("buildpairs-dt-min-negative", "buildpairs", lambda ws: {
        "INPUTS": SCENES, "DT_MIN": -5, "OUTPUT": ws.output("p.gpkg"), "OUTPUT_CSV": ws.output("p.csv")},
         r"Minimum time separation.*must be between 0 and \d+ \(got -5\)"),
    Case("buildpairs-dt-max-negative", "buildpairs", lambda ws: {
        "INPUTS": SCENES, "DT_MAX": -1, "OUTPUT": ws.output("p.gpkg"), "OUTPUT_CSV": ws.output("p.csv")},
         r"Maximum time separation.*must be between 0 and"),
    Case("buildpairs-dt-max-below-min", "buildpairs", lambda ws: {
        "INPUTS": SCENES, "DT_MIN": 200, "DT_MAX": 100, "OUTPUT": ws.output("p.gpkg"),
        "OUTPUT_CSV": ws.output("p.csv")}, r"minimum time separation \(200.0 days\) is larger than the maximum"),
    Case("buildpairs-no-pair-in-limits", "buildpairs", lambda ws: {
        "INPUTS": SCENES, "DT_MIN": 5000, "OUTPUT": ws.output("p.gpkg"), "OUTPUT_CSV": ws.output("p.csv")},
         r"No pair of the 5 scenes satisfies the time-separation limits \(DT_MIN = 5000 days"),
    Case("buildpairs-one-scene", "buildpairs", lambda ws: {
        "INPUTS": SCENES[:1], "OUTPUT": ws.output("p.gpkg"), "OUTPUT_CSV": ws.output("p.csv")},
         r"At least 2 scenes are needed"),
    Case("buildpairs-names-without-ids", "buildpairs", lambda ws: {
        "INPUTS": [renamed_band(ws, "left.tif"), renamed_band(ws, "right.tif")], "OUTPUT": ws.output("p.gpkg"),
        "OUTPUT_CSV": ws.output("p.csv")}, r"(scene id|acquisition time).*left\.tif|left\.tif.*(scene id|time)"),
    Case("buildpairs-mixed-sensors", "buildpairs", lambda ws: {
        "INPUTS": [renamed_band(ws, "20200715_151233_2414_3B_b2.tif"),
                   renamed_band(ws, "20210718_151502_45_241e_3B_b2.tif")],
        "OUTPUT": ws.output("p.gpkg"), "OUTPUT_CSV": ws.output("p.csv")}, r"Mix"),
    Case("buildpairs-csv-not-csv", "buildpairs", lambda ws: {
        "INPUTS": SCENES, "OUTPUT": ws.output("p.gpkg"), "OUTPUT_CSV": ws.output("pairs.xlsx")}, r"\.csv"),

    # ---- correlatepair: parameter ranges
    Case("correlatepair-chip-4", "correlatepair", lambda ws: correlate(ws, CHIP_SIZE=4),
         r"Chip .*must be between 8 and 512 \(got 4\)"),
    Case("correlatepair-chip-1000", "correlatepair", lambda ws: correlate(ws, CHIP_SIZE=1000),
         r"Chip .*must be between 8 and 512 \(got 1000\)"),
    Case("correlatepair-search-0", "correlatepair", lambda ws: correlate(ws, SEARCH_RANGE=0),
         r"Search range.*must be between 1 and"),
    Case("correlatepair-step-0", "correlatepair", lambda ws: correlate(ws, STEP=0), r"grid spacing.*" + RANGE),
    Case("correlatepair-smoothing-6", "correlatepair", lambda ws: correlate(ws, SMOOTHING=6),
         r"smoothing.*must be between 0 and 5"),
    Case("correlatepair-prefilter-size-negative", "correlatepair", lambda ws: correlate(ws, PREFILTER_SIZE=-1),
         r"Pre-filter size.*" + RANGE),
    Case("correlatepair-min-texture-negative", "correlatepair", lambda ws: correlate(ws, MIN_TEXTURE=-0.5),
         r"Minimum texture.*" + RANGE),
    Case("correlatepair-median-test-negative", "correlatepair", lambda ws: correlate(ws, MEDIAN_TEST=-2),
         r"median test.*" + RANGE),
    Case("correlatepair-forward-backward-negative", "correlatepair",
         lambda ws: correlate(ws, FORWARD_BACKWARD=-1), r"Forward-backward.*" + RANGE),
    Case("correlatepair-pyramid-7", "correlatepair", lambda ws: correlate(ws, PYRAMID_LEVELS=7),
         r"pyramid levels.*must be between 0 and 6 \(got 7\)"),
    Case("correlatepair-valid-fraction-0", "correlatepair", lambda ws: correlate(ws, MIN_VALID_FRACTION=0),
         r"valid fraction.*must be between 0.01 and 1"),
    Case("correlatepair-ladder-4", "correlatepair", lambda ws: correlate(ws, CHIP_LADDER=4),
         r"chip ladder.*must be between 0 and 3"),
    Case("correlatepair-coherence-negative", "correlatepair", lambda ws: correlate(ws, COHERENCE=-1),
         r"coherence.*" + RANGE),
    Case("correlatepair-peak-ratio-negative", "correlatepair", lambda ws: correlate(ws, MIN_PEAK_RATIO=-1),
         r"peak ratio.*" + RANGE),
    Case("correlatepair-apriori-dt-negative", "correlatepair", lambda ws: correlate(ws, APRIORI_DT=-3),
         r"a-priori velocity.*" + RANGE),
    Case("correlatepair-strain-without-affine", "correlatepair",
         lambda ws: correlate(ws, STRAIN_BANDS=True, SUBPIXEL=0), r"Strain bands.*affine"),
    # ---- correlatepair: images
    Case("correlatepair-missing-reference", "correlatepair",
         lambda ws: correlate(ws, reference=ws.input("absent.tif")), r"absent\.tif.*does not exist"),
    Case("correlatepair-output-not-tif", "correlatepair",
         lambda ws: correlate(ws, OUTPUT=ws.output("disp.png")), r"GeoTIFF"),
    Case("correlatepair-no-overlap", "correlatepair",
         lambda ws: correlate(ws, secondary=renamed_band(ws, "far.tif", transform=shifted(_band(), 5000.333, 0))),
         r"do not overlap"),
    Case("correlatepair-subpixel-shift", "correlatepair",
         lambda ws: correlate(ws, secondary=renamed_band(ws, "shift.tif", transform=shifted(_band(), 0.4, 0))),
         r"shifted by \(\+0\.400"),
    Case("correlatepair-other-crs", "correlatepair",
         lambda ws: correlate(ws, secondary=renamed_band(ws, "utm17.tif", crs="EPSG:32617")),
         r"secondary is in"),
    Case("correlatepair-other-pixel-size", "correlatepair",
         lambda ws: correlate(ws, secondary=renamed_band(ws, "coarse.tif", transform=scaled(_band(), 2.0))),
         r"pixel size is 3 x 3 but the secondary's is 6 x 6"),
    Case("correlatepair-small-overlap", "correlatepair",
         lambda ws: correlate(ws, secondary=cropped(ws, "crop.tif", _band(1), 40, 40)),
         r"overlap by only 40 x 40 px.*48 px"),
    Case("correlatepair-small-overlap-pyramid", "correlatepair",
         lambda ws: correlate(ws, secondary=cropped(ws, "crop.tif", _band(1), 40, 40), PYRAMID_LEVELS=3),
         r"overlap by only 40 x 40 px"),
    Case("correlatepair-constant-reference", "correlatepair",
         lambda ws: correlate(ws, reference=renamed_band(ws, "flat.tif", constant(500))), r"no texture"),
    Case("correlatepair-constant-secondary", "correlatepair",
         lambda ws: correlate(ws, secondary=renamed_band(ws, "flat.tif", constant(500))), r"no texture"),
    Case("correlatepair-all-nodata-reference", "correlatepair",
         lambda ws: correlate(ws, reference=renamed_band(ws, "zeros.tif", constant(0))), r"all nodata"),
    Case("correlatepair-all-nan-secondary", "correlatepair", lambda ws: correlate(
        ws, secondary=renamed_band(ws, "nan.tif", constant(np.nan), dtype="float32", nodata=float("nan"))),
         r"all nodata"),
    Case("correlatepair-texture-threshold-too-high", "correlatepair", lambda ws: correlate(ws, MIN_TEXTURE=100),
         r"no valid cell.*Every one of the [\d,]+ cells was rejected: low texture 100 %"),
    Case("correlatepair-peak-ratio-too-high", "correlatepair", lambda ws: correlate(ws, MIN_PEAK_RATIO=100),
         r"Every one of the [\d,]+ cells was rejected: low peak ratio"),
    Case("correlatepair-reference-no-crs", "correlatepair",
         lambda ws: correlate(ws, reference=renamed_band(ws, "nocrs.tif", crs=None)),
         r"no coordinate reference system|no CRS"),
    Case("correlatepair-multiband-reference", "correlatepair",
         lambda ws: correlate(ws, reference=SCENES[0]), r"(single-band|one band|4 bands)"),
    Case("correlatepair-mask-points", "correlatepair", lambda ws: correlate(ws, MASK=point_layer(ws)),
         r"Area to correlate.*point layer; a polygon layer is needed"),
    Case("correlatepair-mask-no-crs", "correlatepair", lambda ws: correlate(ws, MASK=polygon_without_crs(ws)),
         r"no coordinate reference system"),
    Case("correlatepair-mask-elsewhere", "correlatepair", lambda ws: correlate(ws, MASK=far_polygon(ws)),
         r"(mask|area to correlate).*(does not overlap|covers no)"),
    Case("correlatepair-mask-empty", "correlatepair", lambda ws: correlate(ws, MASK=empty_polygon_layer(ws)),
         r"'empty' has no features"),
    Case("correlatepair-apriori-one-band", "correlatepair",
         lambda ws: correlate(ws, APRIORI=_band()), r"a-priori.*2 bands|two bands|1 band"),
    Case("correlatepair-too-big", "correlatepair", lambda ws: correlate(
        ws, reference=huge_vrt(ws, "ref.vrt", _band(0)), secondary=huge_vrt(ws, "sec.vrt", _band(1)), STEP=1),
         r"No space left.*about [\d,]+ MB needed"),

    # ---- correlatepairs
    Case("correlatepairs-missing-columns", "correlatepairs", lambda ws: {
        "PAIRS": pair_csv(ws, [(_band(0), _band(1))], header="first,second"), **FAST, "OUTPUT_FOLDER": ws.out},
         r"lacks the column"),
    Case("correlatepairs-empty-table", "correlatepairs", lambda ws: {
        "PAIRS": pair_csv(ws, []), **FAST, "OUTPUT_FOLDER": ws.out}, r"(no pair|empty)"),
    Case("correlatepairs-missing-raster", "correlatepairs", lambda ws: {
        "PAIRS": pair_csv(ws, [(_band(0), ws.input("gone.tif"))]), **FAST, "OUTPUT_FOLDER": ws.out},
         r"gone\.tif.*(does not exist|not found)"),
    Case("correlatepairs-all-pairs-fail", "correlatepairs", lambda ws: {
        "PAIRS": pair_csv(ws, [(_band(0), renamed_band(ws, "flat_b2.tif", constant(500)))]), **FAST,
        "OUTPUT_FOLDER": ws.out}, r"All 1 pairs failed.*no texture"),
    Case("correlatepairs-parallel-0", "correlatepairs", lambda ws: {
        "PAIRS": pair_csv(ws, [(_band(0), _band(1))]), **FAST, "PARALLEL_PAIRS": 0, "OUTPUT_FOLDER": ws.out},
         r"Pairs correlated in parallel must be between 1 and 64"),
    Case("correlatepairs-bad-scheduler", "correlatepairs", lambda ws: {
        "PAIRS": pair_csv(ws, [(_band(0), _band(1))]), **FAST, "DASK_SCHEDULER": "tcp://127.0.0.1:9",
        "OUTPUT_FOLDER": ws.out}, r"(Cannot reach the Dask scheduler|dask)"),
    Case("correlatepairs-mask-points", "correlatepairs", lambda ws: {
        "PAIRS": pair_csv(ws, [(_band(0), _band(1))]), **FAST, "MASK": point_layer(ws), "OUTPUT_FOLDER": ws.out},
         r"point layer; a polygon layer is needed"),
    Case("correlatepairs-chip-4", "correlatepairs", lambda ws: {
        "PAIRS": pair_csv(ws, [(_band(0), _band(1))]), "CHIP_SIZE": 4, "OUTPUT_FOLDER": ws.out},
         r"must be between 8 and 512"),

    # ---- polyfit
    Case("polyfit-no-input", "polyfit", lambda ws: {"INPUT": [], "OUTPUT_FOLDER": ws.out}, r"is required"),
    Case("polyfit-percentiles-swapped", "polyfit", lambda ws: {
        "INPUT": [_disparity()], "PERCENTILE_LOW": 90, "PERCENTILE_HIGH": 10, "OUTPUT_FOLDER": ws.out},
         r"percentile"),
    Case("polyfit-percentile-101", "polyfit", lambda ws: {
        "INPUT": [_disparity()], "PERCENTILE_HIGH": 101, "OUTPUT_FOLDER": ws.out},
         r"Upper percentile cut must be between 0 and 100 \(got 101\)"),
    Case("polyfit-not-a-disparity", "polyfit", lambda ws: {"INPUT": [SCENES[0]], "OUTPUT_FOLDER": ws.out},
         r"(not a disparity|disparity)"),
    Case("polyfit-all-invalid", "polyfit", lambda ws: {
        "INPUT": [disparity_like(ws, "dead_disp.tif", all_invalid)], "OUTPUT_FOLDER": ws.out},
         r"has no valid offset"),
    Case("polyfit-mask-points", "polyfit", lambda ws: {
        "INPUT": [_disparity()], "MASK": point_layer(ws), "OUTPUT_FOLDER": ws.out},
         r"Moving area.*point layer; a polygon layer is needed"),
    Case("polyfit-mask-no-crs", "polyfit", lambda ws: {
        "INPUT": [_disparity()], "MASK": polygon_without_crs(ws), "OUTPUT_FOLDER": ws.out},
         r"no coordinate reference system"),
    Case("polyfit-mask-raster-no-crs", "polyfit", lambda ws: {
        "INPUT": [_disparity()], "MASK_RASTER": renamed_band(ws, "mask.tif", constant(0), crs=None),
        "OUTPUT_FOLDER": ws.out}, r"no coordinate reference system"),
    Case("polyfit-mask-everything", "polyfit", lambda ws: {
        "INPUT": [_disparity()], "MASK": whole_area_polygon(ws), "OUTPUT_FOLDER": ws.out},
         r"(moving area|mask).*(every|all|no stable)"),
    Case("polyfit-mask-too-big", "polyfit", lambda ws: {
        "INPUT": [huge_vrt(ws, "20200715_151233_62_2414_20210718_151502_45_241e_disp.vrt", _disparity())],
        "MASK": OUTLINE, "OUTPUT_FOLDER": ws.out}, r"moving-area mask on the 1000000 x 1000000 cells.*GiB of memory"),
    Case("polyfit-dem-elsewhere", "polyfit", lambda ws: {
        "INPUT": [_disparity()], "DEM": renamed_band(ws, "dem.tif", transform=shifted(_band(), 1e5, 0)),
        "OUTPUT_FOLDER": ws.out}, r"DEM.*(does not (overlap|cover))"),
    Case("polyfit-dem-no-crs", "polyfit", lambda ws: {
        "INPUT": [_disparity()], "DEM": renamed_band(ws, "dem.tif", crs=None), "OUTPUT_FOLDER": ws.out},
         r"no coordinate reference system|no CRS"),

    # ---- velocity
    Case("velocity-dt-negative", "velocity", lambda ws: {
        "INPUT": [_disparity()], "DT_DAYS": -30, "OUTPUT_FOLDER": ws.out},
         r"Time separation.*must be between 0.001 and \d+ \(got -30\)"),
    Case("velocity-dt-zero", "velocity", lambda ws: {
        "INPUT": [_disparity()], "DT_DAYS": 0, "OUTPUT_FOLDER": ws.out}, r"Time separation.*\(got 0\)"),
    Case("velocity-only-ref-date", "velocity", lambda ws: {
        "INPUT": [_disparity()], "REF_DATE": "2020-07-15T15:12:33", "OUTPUT_FOLDER": ws.out}, r"Give both"),
    Case("velocity-ref-date-garbage", "velocity", lambda ws: {
        "INPUT": [_disparity()], "REF_DATE": "yesterday", "SEC_DATE": "2021-07-18T15:15:02", "OUTPUT_FOLDER": ws.out},
         r"Reference acquisition time.*must be a date.*got 'yesterday'"),
    Case("velocity-same-dates", "velocity", lambda ws: {
        "INPUT": [_disparity()], "REF_DATE": "2020-07-15T15:12:33", "SEC_DATE": "2020-07-15T15:12:33",
        "OUTPUT_FOLDER": ws.out}, r"zero time separation"),
    Case("velocity-min-peak-2", "velocity", lambda ws: {
        "INPUT": [_disparity()], "MIN_PEAK": 2, "OUTPUT_FOLDER": ws.out},
         r"Minimum peak correlation.*must be between -1 and 1 \(got 2\)"),
    Case("velocity-min-peak-too-high", "velocity", lambda ws: {
        "INPUT": [_disparity()], "MIN_PEAK": 1.0, "MEDIAN_SHIFT": False, "OUTPUT_FOLDER": ws.out},
         r"no valid offset.*peak"),
    Case("velocity-all-invalid", "velocity", lambda ws: {
        "INPUT": [disparity_like(ws, "dead_disp.tif", all_invalid)], "OUTPUT_FOLDER": ws.out},
         r"has no valid offset"),
    Case("velocity-geographic", "velocity", lambda ws: {
        "INPUT": [raster_like(ws, "geo_20200715_151233_62_2414_20210718_151502_45_241e_disp.tif", _disparity(),
                              crs="EPSG:4326", transform=Affine(1e-4, 0, -70, 0, -1e-4, 10))],
        "OUTPUT_FOLDER": ws.out}, r"geographic"),
    Case("velocity-no-dates", "velocity", lambda ws: {
        "INPUT": [_disparity_without_dates(ws)], "OUTPUT_FOLDER": ws.out}, r"Cannot find the time separation"),
    Case("velocity-mask-points", "velocity", lambda ws: {
        "INPUT": [_disparity()], "MASK": point_layer(ws), "OUTPUT_FOLDER": ws.out},
         r"point layer; a polygon layer is needed"),
    Case("velocity-mask-everything", "velocity", lambda ws: {
        "INPUT": [_disparity()], "MASK": whole_area_polygon(ws), "OUTPUT_FOLDER": ws.out},
         r"moving-area mask covers all \d+ valid cells.*no stable ground"),
    Case("velocity-mask-too-big", "velocity", lambda ws: {
        "INPUT": [huge_vrt(ws, "20200715_151233_62_2414_20210718_151502_45_241e_disp.vrt", _disparity())],
        "MASK": OUTLINE, "OUTPUT_FOLDER": ws.out}, r"GiB of memory.*larger STEP"),
    Case("velocity-not-a-disparity", "velocity", lambda ws: {"INPUT": [SCENES[0]], "OUTPUT_FOLDER": ws.out},
         r"disparity"),

    # ---- the shipped model
    Case("model-one-scene", MODEL, lambda ws: model(ws, SCENES=SCENES[:1]), r"At least 2 scenes are needed"),
    Case("model-dt-min-too-large", MODEL, lambda ws: model(ws, DT_MIN=5000), r"No pair"),
    Case("model-moving-area-points", MODEL, lambda ws: model(ws, MOVING_AREA=point_layer(ws)),
         r"point layer; a polygon layer is needed"),
    Case("model-band-9", MODEL, lambda ws: model(ws, BAND=9), r"band.*between 1 and \d+ \(got 9\)"),
    Case("model-missing-scene", MODEL, lambda ws: model(ws, SCENES=[*SCENES[:2], ws.input("gone_scene.tif")]),
         r"gone_scene\.tif.*does not exist"),
    Case("model-chip-size-zero", MODEL, lambda ws: model(ws, CHIP_SIZE=0), r"Chip size.*between 8 and 512 \(got 0\)"),
]


def _scene_with_udm2(ws, **udm2_options) -> str:
    """A sample scene copy whose UDM2 (next to it) is on another grid or CRS."""
    name = os.path.basename(SCENES[0])
    target = ws.input(name)
    shutil.copyfile(SCENES[0], target)
    udm2 = SCENES[0].replace("_AnalyticMS_SR_clip.tif", "_udm2_clip.tif")
    raster_like(ws, os.path.basename(udm2), udm2, **udm2_options)
    return target


def _disparity_without_dates(ws) -> str:
    """The disparity map under a name without scene ids and without its date tags."""
    path = raster_like(ws, "disp.tif", _disparity())
    with rasterio.open(path, "r+") as ds:
        tags = ds.tags()
        for key in [k for k in tags if k.startswith(("SM_REF", "SM_SEC", "SM_DT"))]:
            ds.update_tags(**{key: ""})
    return path


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)


def test_the_table_has_its_share():
    assert len(CASES) >= 60


# --------------------------------------------------------------------------- what is not an error

class _Inputs:
    """``ws.input`` for the tests outside the table."""

    def __init__(self, folder):
        self.inputs = str(folder)

    def input(self, name: str) -> str:
        return os.path.join(self.inputs, name)


def warning_log():
    """A Processing feedback that keeps its warnings in ``warnings`` (and its errors in ``errors``)."""
    feedback = error_log()
    feedback.warnings = []
    push = feedback.pushWarning

    def keep(text):
        feedback.warnings.append(text)
        push(text)

    feedback.pushWarning = keep
    return feedback


def test_reversed_dates_are_accepted_with_a_note_on_the_sign(run_algorithm, tmp_path):
    """REF_DATE after SEC_DATE: dt < 0, velocities point forward in time (opposite to the offsets)."""
    feedback = warning_log()
    forward, _, _ = run_algorithm("surfacemotion:velocity", {
        "INPUT": [_disparity()], "REF_DATE": "2020-07-15T15:12:33", "SEC_DATE": "2021-07-18T15:15:02",
        "MEDIAN_SHIFT": False, "OUTPUT_FOLDER": str(tmp_path / "forward")})
    backward, _, _ = run_algorithm("surfacemotion:velocity", {
        "INPUT": [_disparity()], "REF_DATE": "2021-07-18T15:15:02", "SEC_DATE": "2020-07-15T15:12:33",
        "MEDIAN_SHIFT": False, "OUTPUT_FOLDER": str(tmp_path / "backward")}, feedback=feedback)
    note = [text for text in feedback.warnings if "reversed" in text]
    assert note and "signed forward in time" in note[0] and "dt = -368.0" in note[0], feedback.warnings
    with rasterio.open(forward["OUTPUT_LAYERS"][0]) as a, rasterio.open(backward["OUTPUT_LAYERS"][0]) as b:
        np.testing.assert_allclose(b.read(3), -a.read(3), equal_nan=True)  # east velocity flips
        np.testing.assert_allclose(b.read(1), a.read(1), equal_nan=True)  # speed does not


def test_a_zero_offset_has_no_azimuth(run_algorithm, tmp_path):
    """Speed 0 → azimuth NaN, not 0° (north)."""
    def zero_half(data):
        data = data.copy()
        data[0:2, :, : data.shape[2] // 2] = 0.0
        return data

    disparity = raster_like(_Inputs(tmp_path), "20200715_151233_62_2414_20210718_151502_45_241e_zero.tif",
                            _disparity(), zero_half)
    results, _, _ = run_algorithm("surfacemotion:velocity", {
        "INPUT": [disparity], "MEDIAN_SHIFT": False, "OUTPUT_FOLDER": str(tmp_path / "v")})
    with rasterio.open(results["OUTPUT_LAYERS"][0]) as ds:
        speed, azimuth, valid = ds.read(1), ds.read(2), np.isfinite(ds.read(1))
    still = valid & (speed == 0)
    assert still.sum() > 10
    assert np.isnan(azimuth[still]).all()
    assert np.isfinite(azimuth[valid & (speed > 0)]).all()


def test_pyramid_levels_into_a_folder_that_does_not_exist(run_algorithm, tmp_path):
    output = tmp_path / "new" / "deeper" / "disp.tif"
    results, _, _ = run_algorithm("surfacemotion:correlatepair", {
        "REFERENCE": _band(0), "SECONDARY": _band(1), **FAST, "PYRAMID_LEVELS": 2, "OUTPUT": str(output)})
    assert results["OUTPUT"] == str(output)
    assert sorted(os.listdir(output.parent)) == ["disp.qml", "disp.tif"]


def test_out_of_range_numbers_say_what_is_allowed(provider):
    """checkParameterValues: '<label> must be between a and b (got v)' instead of 'Incorrect parameter value'."""
    from qgis.core import QgsProcessingContext

    algorithm = provider.algorithm("correlatepair")
    context = QgsProcessingContext()
    base = {"REFERENCE": _band(0), "SECONDARY": _band(1), "OUTPUT": "disp.tif"}
    for name, value, expected in (
            ("CHIP_SIZE", 4, "Chip (template) size (px) must be between 8 and 512 (got 4)."),
            ("STEP", 2.5, "Output grid spacing (px) must be a whole number between 1 and 1000 (got 2.5)."),
            ("SMOOTHING", "lots", "must be a number (got 'lots')")):
        ok, message = algorithm.checkParameterValues(dict(base, **{name: value}), context)
        assert not ok and expected in message, message
    ok, message = algorithm.checkParameterValues(dict(base, CHIP_SIZE=64), context)
    assert ok, message
    # an optional list left empty is not "required"
    ok, message = provider.algorithm("buildpairs").checkParameterValues(
        {"INPUTS": [], "FOLDER": SAMPLE_DIR, "OUTPUT": "memory:", "OUTPUT_CSV": "pairs.csv"}, context)
    assert ok, message


def test_every_numeric_parameter_declares_its_range(provider):
    """Every number parameter of every algorithm and shipped model has a finite minimum and maximum."""
    from qgis.core import QgsProcessingParameterNumber

    algorithms = provider.algorithms()
    assert len(algorithms) == ALGORITHM_COUNT
    unbounded = [f"{algorithm.name()}:{definition.name()}" for algorithm in algorithms
                 for definition in algorithm.parameterDefinitions()
                 if isinstance(definition, QgsProcessingParameterNumber)
                 and max(abs(definition.minimum()), abs(definition.maximum())) > 1e300]
    assert unbounded == []
