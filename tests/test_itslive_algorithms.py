"""ITS_LIVE analysis algorithms through Processing (in-process) and qgis_process.bin."""
import glob
import json
import os
import subprocess

import numpy as np
import pytest
import rasterio

from conftest import REPO

DATA = os.path.join(REPO, "tests", "data", "itslive")
VX = os.path.join(DATA, "alaska_vx_2010_2018.tif")
VY = os.path.join(DATA, "alaska_vy_2010_2018.tif")
THICKNESS = os.path.join(DATA, "alaska_thickness.tif")
OUTLINE_CSV = os.path.join(DATA, "glacier_outline.csv")
ANALYSIS_IDS = ("strainrates", "fluxdivergence", "trackparticles", "itslivefindcubes", "itslivedownload",
                "itslivepointseries")


def seeds_geojson(path, points, crs="EPSG:3413"):
    features = [{"type": "Feature", "properties": {"id": k}, "geometry": {"type": "Point", "coordinates": list(p)}}
                for k, p in enumerate(points)]
    code = crs.split(":")[1]
    with open(path, "w") as handle:
        json.dump({"type": "FeatureCollection", "features": features,
                   "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{code}"}}}, handle)
    return str(path)


def fast_ice_points(n=3):
    """Map coordinates of the fastest cells of 2010 (sure to be on the glacier)."""
    with rasterio.open(VX) as vx, rasterio.open(VY) as vy:
        speed = np.hypot(vx.read(1), vy.read(1))
        transform = vx.transform
    order = np.argsort(np.where(np.isfinite(speed), speed, -1).ravel())[::-1]
    points = []
    for flat in order[:200:200 // n][:n]:
        row, col = np.unravel_index(flat, speed.shape)
        points.append((transform.c + (col + 0.5) * transform.a, transform.f + (row + 0.5) * transform.e))
    return points


def test_algorithms_are_registered_with_help(provider):
    ids = {a.id() for a in provider.algorithms()}
    for name in ANALYSIS_IDS:
        assert f"surfacemotion:{name}" in ids
        algorithm = provider.algorithm(name)
        assert algorithm.groupId() == "itslive"
        assert "1/yr" in algorithm.shortHelpString() or "m/yr" in algorithm.shortHelpString() or "STAC" in algorithm.shortHelpString()


def test_strainrates_in_process_loads_styled(run_algorithm, tmp_path):
    from qgis.core import QgsProject

    out = str(tmp_path / "strain.tif")
    results, context, _ = run_algorithm("surfacemotion:strainrates", {
        "VX": VX, "VY": VY, "BAND": 9, "METHOD": 1, "LENGTH_SCALE": 240.0, "OUTPUT": out})
    assert results["OUTPUT"] == out
    assert os.path.exists(os.path.splitext(out)[0] + ".qml")
    with rasterio.open(out) as ds:
        assert ds.count == 12 and ds.descriptions[6] == "effective (1/yr)"
        assert ds.tags()["SM_METHOD"] == "logarithmic"
        effective = ds.read(7)
    assert 0.001 < np.nanmedian(effective) < 0.5
    # the layer loads with the sidecar style (band 7 pseudocolour)
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(out, "strain")
    assert layer.isValid() and layer.renderer().type() == "singlebandpseudocolor"
    assert layer.renderer().band() == 7
    QgsProject.instance().removeAllMapLayers()


def test_fluxdivergence_with_polygon_layer_equals_csv(run_algorithm, tmp_path):
    import csv

    rows = list(csv.DictReader(open(OUTLINE_CSV)))
    ring = [[float(r["x"]), float(r["y"])] for r in rows]
    polygon = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3413"}},
               "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    polygon_path = tmp_path / "outline.geojson"
    polygon_path.write_text(json.dumps(polygon))
    outputs = {}
    for key, extra in (("csv", {"OUTLINE_CSV": OUTLINE_CSV}), ("layer", {"OUTLINE": str(polygon_path)})):
        out = str(tmp_path / f"flux_{key}.tif")
        run_algorithm("surfacemotion:fluxdivergence", dict(
            {"THICKNESS": THICKNESS, "VX": VX, "VY": VY, "BAND": 5, "COLUMN_FACTOR": 0.9, "OUTPUT": out}, **extra))
        with rasterio.open(out) as ds:
            outputs[key] = ds.read(1)
    np.testing.assert_array_equal(np.isfinite(outputs["csv"]), np.isfinite(outputs["layer"]))
    np.testing.assert_allclose(outputs["csv"], outputs["layer"], equal_nan=True)
    assert np.isfinite(outputs["csv"]).sum() > 5000


def test_trackparticles_layers_and_attributes(run_algorithm, tmp_path):
    seeds = seeds_geojson(tmp_path / "seeds.geojson", fast_ice_points(3))
    results, context, _ = run_algorithm("surfacemotion:trackparticles", {
        "SEEDS": seeds, "VX": VX, "VY": VY, "DURATION": 3.0, "START_DATE": "2012-01-01T00:00:00Z",
        "OUTPUT_LINES": str(tmp_path / "lines.gpkg"), "OUTPUT_POINTS": str(tmp_path / "points.gpkg")})
    from qgis.core import QgsVectorLayer

    lines = QgsVectorLayer(results["OUTPUT_LINES"], "lines", "ogr")
    points = QgsVectorLayer(results["OUTPUT_POINTS"], "points", "ogr")
    assert lines.featureCount() == 3
    assert lines.crs().authid() == "EPSG:3413"
    names = [f.name() for f in points.fields()]
    for name in ("track_id", "step", "date", "t_yr", "x", "y", "vx", "vy", "speed", "cum_dist_m"):
        assert name in names
    first = sorted(points.getFeatures(), key=lambda f: (f["track_id"], f["step"]))[0]
    assert first["date"].toString("yyyy-MM-dd") == "2012-01-01"
    assert first["t_yr"] == pytest.approx(2012.0, abs=0.01)
    for line in lines.getFeatures():
        assert line["stop_reason"] in ("end time", "left grid", "nodata", "end of record")
        assert line["length_m"] > 100.0
        assert line.geometry().length() == pytest.approx(line["length_m"], rel=1e-6)


def test_bad_band_gives_a_clear_processing_error(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="band 12 does not exist"):
        run_algorithm("surfacemotion:strainrates", {"VX": VX, "VY": VY, "BAND": 12,
                                                     "OUTPUT": str(tmp_path / "s.tif")})
    assert not os.path.exists(tmp_path / "s.tif")


def run_json(env, algorithm_id, parameters):
    arguments = ["qgis_process.bin", "--json", "run", algorithm_id, "--"]
    arguments += [f"{key}={value}" for key, value in parameters.items()]
    done = subprocess.run(arguments, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)["results"]


def test_analyses_run_with_qgis_process(qgis_process_env, tmp_path):
    env = qgis_process_env
    strain = run_json(env, "surfacemotion:strainrates", {
        "VX": VX, "VY": VY, "BAND": 1, "UPSCALE": 2, "OUTPUT": str(tmp_path / "strain.tif")})
    with rasterio.open(strain["OUTPUT"]) as ds:
        assert ds.width == 120 and ds.transform.a == 240.0
    flux = run_json(env, "surfacemotion:fluxdivergence", {
        "THICKNESS": THICKNESS, "VX": VX, "VY": VY, "OUTLINE_CSV": OUTLINE_CSV, "OUTPUT": str(tmp_path / "flux.tif")})
    assert os.path.exists(flux["OUTPUT"]) and os.path.exists(str(tmp_path / "flux.qml"))
    seeds = seeds_geojson(tmp_path / "seeds.geojson", fast_ice_points(2))
    tracks = run_json(env, "surfacemotion:trackparticles", {
        "SEEDS": seeds, "VX": VX, "VY": VY, "DURATION": -2.0, "START_DATE": "2015-06-01T00:00:00",
        "OUTPUT_LINES": str(tmp_path / "lines.gpkg"), "OUTPUT_POINTS": str(tmp_path / "points.gpkg")})
    assert tracks["OUTPUT_LINES"].startswith(str(tmp_path / "lines.gpkg"))


# --------------------------------------------------------------------------- cube algorithms (local server)

def window_extent(cube_server):
    """An EPSG:3413 extent string of 30 x 20 cells inside the test cube."""
    with rasterio.open(VX) as ds:
        left = ds.transform.c + 40 * 120.0
        top = ds.transform.f - 100 * 120.0
    return f"{left},{left + 30 * 120.0},{top - 20 * 120.0},{top} [EPSG:3413]", (left, top)


def service(cube_server):
    return {"STAC_URL": cube_server.url + "/stac", "CATALOG_URL": cube_server.url + "/catalog_v02.json"}


def test_itslivefindcubes_returns_footprints(run_algorithm, cube_server):
    extent, _ = window_extent(cube_server)
    results, _, _ = run_algorithm("surfacemotion:itslivefindcubes", dict(
        {"AOI_EXTENT": extent, "OUTPUT": "memory:"}, **service(cube_server)))
    layer = results["OUTPUT"]
    assert results["N_CUBES"] == 1 and layer.featureCount() == 1
    feature = next(layer.getFeatures())
    assert feature["epsg"] == 3413 and feature["zarr_url"].endswith(".zarr")
    assert layer.crs().authid() == "EPSG:4326" and feature.geometry().area() > 0


def test_itslivedownload_writes_stacks_netcdf_and_loads_styled(run_algorithm, cube_server, tmp_path):
    extent, (left, top) = window_extent(cube_server)
    results, context, _ = run_algorithm("surfacemotion:itslivedownload", dict(
        {"AOI_EXTENT": extent, "START_DATE": "2014-01-01", "END_DATE": "2016-01-01", "VARIABLES": [0, 1, 2],
         "MIN_ROI_VALID": 50.0, "MISSIONS": [2], "OUTPUT_FOLDER": str(tmp_path)}, **service(cube_server)))
    layers = sorted(results["OUTPUT_LAYERS"])
    assert [os.path.basename(p).rsplit("_", 1)[-1] for p in layers] == ["v.tif", "vx.tif", "vy.tif"]
    assert results["OUTPUT_NETCDF"].endswith(".nc") and os.path.exists(results["OUTPUT_NETCDF"])
    with rasterio.open(layers[0]) as ds:
        assert ds.count == 4  # Landsat pairs with roi >= 50 %: 2 per year
        assert (ds.width, ds.height) == (30, 20)
        assert ds.transform.c == pytest.approx(left) and ds.transform.f == pytest.approx(top)
        assert ds.descriptions[0].startswith("2014-")
    assert os.path.exists(layers[0][:-4] + ".qml")
    assert len(context.layersToLoadOnCompletion()) == 3
    # a downloaded stack is a valid tracker input (dates in the band descriptions)
    seeds = seeds_geojson(tmp_path / "seeds.geojson", [(left + 15 * 120.0, top - 10 * 120.0)])
    tracks, _, _ = run_algorithm("surfacemotion:trackparticles", {
        "SEEDS": seeds, "VX": layers[1], "VY": layers[2], "DURATION": 0.5,
        "OUTPUT_LINES": "memory:", "OUTPUT_POINTS": "memory:"})
    assert tracks["OUTPUT_LINES"].featureCount() == 1


def test_itslivepointseries_table_csv_and_plot(run_algorithm, cube_server, tmp_path):
    _, (left, top) = window_extent(cube_server)
    seeds = seeds_geojson(tmp_path / "points.geojson", [(left + 60.0, top - 60.0)])
    results, _, _ = run_algorithm("surfacemotion:itslivepointseries", dict(
        {"POINTS": seeds, "START_DATE": "2010-01-01", "END_DATE": "2019-01-01", "OUTPUT": "memory:",
         "OUTPUT_CSV": str(tmp_path / "series.csv"), "OUTPUT_PLOT": str(tmp_path / "series.png")},
        **service(cube_server)))
    assert results["N_ROWS"] == 18 == results["OUTPUT"].featureCount()  # 2 pairs of <= 90 days x 9 years
    header = open(results["OUTPUT_CSV"]).readline().strip().split(",")
    assert header[:4] == ["point_id", "mid_date", "lon", "lat"]
    assert open(results["OUTPUT_PLOT"], "rb").read(4) == b"\x89PNG"
    first = next(results["OUTPUT"].getFeatures())
    assert first["x"] == pytest.approx(left + 60.0) and first["epsg"] == 3413


def test_cube_algorithms_run_with_qgis_process(qgis_process_env, cube_server, tmp_path):
    extent, (left, top) = window_extent(cube_server)
    urls = service(cube_server)
    found = run_json(qgis_process_env, "surfacemotion:itslivefindcubes", dict(
        {"AOI_EXTENT": extent, "OUTPUT": str(tmp_path / "cubes.gpkg")}, **urls))
    assert found["N_CUBES"] == 1
    downloaded = run_json(qgis_process_env, "surfacemotion:itslivedownload", dict(
        {"AOI_EXTENT": extent, "START_DATE": "2010-01-01", "END_DATE": "2013-01-01", "VARIABLES": 0,
         "AGGREGATE_AMOUNT": 1, "AGGREGATE_METHOD": 1, "OUTPUT_FOLDER": str(tmp_path / "dl")}, **urls))
    vx = [p for p in downloaded["OUTPUT_LAYERS"] if p.endswith("_vx.tif")][0]
    with rasterio.open(vx) as ds:
        assert list(ds.descriptions) == ["2010-01-01", "2011-01-01", "2012-01-01"]
    points = seeds_geojson(tmp_path / "points.geojson", [(left + 60.0, top - 60.0)])
    series = run_json(qgis_process_env, "surfacemotion:itslivepointseries", dict(
        {"POINTS": points, "START_DATE": "2012-01-01", "END_DATE": "2013-01-01", "OUTPUT": str(tmp_path / "s.gpkg"),
         "OUTPUT_CSV": str(tmp_path / "s.csv"), "OUTPUT_PLOT": str(tmp_path / "s.png")}, **urls))
    assert series["N_ROWS"] == 2  # the 16- and 48-day pairs of 2012 (DT_MAX default 90 days)


def test_every_itslive_algorithm_runs_in_a_model(provider, cube_server, tmp_path):
    import processing
    from qgis.core import (QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm,
                           QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource,
                           QgsProcessingModelParameter, QgsProcessingParameterRasterLayer,
                           QgsProject)

    def static(value):
        return [QgsProcessingModelChildParameterSource.fromStaticValue(value)]

    def from_model(name):
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    extent, (left, top) = window_extent(cube_server)
    seeds = seeds_geojson(tmp_path / "seeds.geojson", fast_ice_points(2))
    points = seeds_geojson(tmp_path / "points.geojson", [(left + 60.0, top - 60.0)])
    model = QgsProcessingModelAlgorithm("itslive chain", "test")
    for name in ("vx", "vy"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    children = {
        "strain": ("surfacemotion:strainrates", {"VX": from_model("vx"), "VY": from_model("vy"), "BAND": static(2),
                                                  "OUTPUT": static(str(tmp_path / "strain.tif"))}),
        "flux": ("surfacemotion:fluxdivergence", {"THICKNESS": static(THICKNESS), "VX": from_model("vx"),
                                                  "VY": from_model("vy"), "OUTLINE_CSV": static(OUTLINE_CSV),
                                                  "OUTPUT": static(str(tmp_path / "flux.tif"))}),
        "tracks": ("surfacemotion:trackparticles", {"SEEDS": static(seeds), "VX": from_model("vx"),
                                                    "VY": from_model("vy"), "DURATION": static(1.0),
                                                    "OUTPUT_LINES": static(str(tmp_path / "lines.gpkg")),
                                                    "OUTPUT_POINTS": static(str(tmp_path / "points.gpkg"))}),
        "find": ("surfacemotion:itslivefindcubes", {"AOI_EXTENT": static(extent),
                                                    "STAC_URL": static(service(cube_server)["STAC_URL"]),
                                                    "OUTPUT": static(str(tmp_path / "cubes.gpkg"))}),
        "download": ("surfacemotion:itslivedownload", {
            "AOI_EXTENT": static(extent), "START_DATE": static("2012-01-01"), "END_DATE": static("2013-01-01"),
            "VARIABLES": static([0]), "STAC_URL": static(service(cube_server)["STAC_URL"]),
            "OUTPUT_FOLDER": static(str(tmp_path / "download"))}),
        "series": ("surfacemotion:itslivepointseries", {
            "POINTS": static(points), "START_DATE": static("2012-01-01"), "END_DATE": static("2013-01-01"),
            "STAC_URL": static(service(cube_server)["STAC_URL"]), "OUTPUT": static(str(tmp_path / "series.gpkg")),
            "OUTPUT_CSV": static(str(tmp_path / "series.csv")), "OUTPUT_PLOT": static(str(tmp_path / "series.png"))}),
    }
    for child_id, (algorithm_id, sources) in children.items():
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        for name, source in sources.items():
            child.addParameterSources(name, source)
        model.addChildAlgorithm(child)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    processing.run(model, {"vx": VX, "vy": VY}, context=context, feedback=QgsProcessingFeedback())
    with rasterio.open(str(tmp_path / "strain.tif")) as ds:
        assert ds.count == 12 and np.isfinite(ds.read(7)).mean() > 0.5
    with rasterio.open(str(tmp_path / "flux.tif")) as ds:
        assert np.isfinite(ds.read(1)).sum() > 5000
    assert os.path.exists(str(tmp_path / "lines.gpkg")) and os.path.exists(str(tmp_path / "cubes.gpkg"))
    assert len(glob.glob(str(tmp_path / "download" / "*_vx.tif"))) == 1
    assert len(open(tmp_path / "series.csv").read().splitlines()) == 3  # header + 2 pairs of <= 90 days
    QgsProject.instance().removeAllMapLayers()


def test_itslivedownload_annual_mosaics_source(run_algorithm, cube_server, tmp_path):
    from itslive_server import build_mosaics

    build_mosaics(cube_server.root)
    extent, (left, top) = window_extent(cube_server)
    results, _, _ = run_algorithm("surfacemotion:itslivedownload", {
        "AOI_EXTENT": extent, "START_DATE": "2016-01-01", "END_DATE": "2019-01-01", "VARIABLES": [0, 2],
        "SOURCE": 1, "RGI_REGION": "1",
        "MOSAIC_URL": cube_server.url + "/mosaics/ITS_LIVE_velocity_120m_RGI{region}A_{year}_v02_{variable}.tif",
        "OUTPUT_FOLDER": str(tmp_path)})
    vx = [p for p in results["OUTPUT_LAYERS"] if p.endswith("_vx.tif")][0]
    with rasterio.open(VX) as ds:
        truth = ds.read([7, 8, 9])[:, 100:120, 40:70]
    with rasterio.open(vx) as ds:
        assert list(ds.descriptions) == ["2016-01-01", "2017-01-01", "2018-01-01"]
        np.testing.assert_array_equal(ds.read(), truth)


def test_vector_styles_apply_to_track_and_footprint_layers(provider):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsVectorLayer

    from surface_motion.algorithms.itslive_analysis import VectorStyle

    cases = (("LineString?crs=EPSG:3413", "tracks_lines", "singleSymbol"),
             ("Point?crs=EPSG:3413&field=speed:double", "tracks_points", "graduatedSymbol"),
             ("MultiPolygon?crs=EPSG:4326", "itslive_cubes", "singleSymbol"))
    for uri, style, renderer in cases:
        layer = QgsVectorLayer(uri, style, "memory")
        VectorStyle.create(style).postProcessLayer(layer, QgsProcessingContext(), QgsProcessingFeedback())
        assert layer.renderer().type() == renderer
    assert layer.renderer().symbol().symbolLayer(0).strokeColor().name() == "#2166ac"
