"""ITS_LIVE analysis algorithms through Processing (in-process) and qgis_process.bin."""
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
ANALYSIS_IDS = ("strainrates", "fluxdivergence", "trackparticles")


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
        assert algorithm.group() == "ITS_LIVE glacier velocity"
        assert "1/yr" in algorithm.shortHelpString() or "m/yr" in algorithm.shortHelpString()


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
