"""surfacemotion:orthorectify through Processing and qgis_process.bin: batch over scenes and a folder, one
grid, geolocation against the analytic camera, the layer group, the DEM-datum warning."""
import json
import os
import subprocess

import numpy as np
import rasterio

from ortho_scenes import WIDTH, aoi_wkt, analytic_rpc, write_dem, write_scene
from test_core_ortho import N, interior, ortho_positions


def aoi_layer(path, crs="EPSG:32720"):
    """The test AOI as a GeoJSON polygon layer in ``crs`` (reprojected from lon/lat)."""
    from core.ortho.aoi import aoi_lonlat, reproject_geometry

    geometry = reproject_geometry(aoi_lonlat(aoi_wkt()), "EPSG:4326", crs)
    epsg = crs.split(":")[1]
    feature = {"type": "Feature", "properties": {"id": 1}, "geometry": json.loads(json.dumps(
        geometry.__geo_interface__, default=list))}
    collection = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {
        "name": f"urn:ogc:def:crs:EPSG::{epsg}"}}, "features": [feature]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(collection, handle)
    return path


def inputs(tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    first = write_scene(str(tmp_path / "first.tif"), where="txt")
    second = write_scene(str(scenes / "second.tif"), rpc=analytic_rpc(s0=130.0, l0=80.0), where="tiff")
    write_scene(str(scenes / "second_udm2.tif"), where="tiff")  # a mask in the folder: not a scene
    dem = write_dem(str(tmp_path / "dem_egm96.tif"), shift=N, crs="EPSG:4326+5773")
    return first, second, str(scenes), dem


def test_batch_over_scenes_and_a_folder_on_one_grid_loaded_as_one_group(provider, tmp_path):
    import processing
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (QgsApplication, QgsLayerTree, QgsProcessingContext, QgsProcessingFeedback,
                           QgsProject)

    first, second, folder, dem = inputs(tmp_path)
    project = QgsProject.instance()
    project.clear()
    context = QgsProcessingContext()
    context.setProject(project)
    progress = []

    class Feedback(QgsProcessingFeedback):
        def setProgress(self, value):  # noqa: N802 (QGIS API name)
            progress.append(value)
            super().setProgress(value)

    results = processing.run("surfacemotion:orthorectify", {
        "INPUT": [first], "FOLDER": folder, "DEM": dem, "VERTICAL_DATUM": 0, "AOI": aoi_layer(
            str(tmp_path / "aoi.geojson")), "MARGIN": 20, "OUTPUT_FOLDER": str(tmp_path / "out")},
        context=context, feedback=Feedback())
    outputs = results["OUTPUT_LAYERS"]
    assert [os.path.basename(p) for p in outputs] == ["first_ortho.tif", "second_ortho.tif"]
    assert sorted(os.listdir(tmp_path / "out")) == ["first_ortho.tif", "second_ortho.tif"]
    grids = []
    for path, camera in zip(outputs, ({}, {"s0": 130.0, "l0": 80.0})):
        with rasterio.open(path) as ds:
            grids.append((ds.crs.to_epsg(), tuple(ds.transform), ds.shape))
            assert ds.tags()["ORTHO_VERTICAL_DATUM"] == "egm96"
        values, expected, col, row = ortho_positions(path) if not camera else _second_positions(path, camera)
        ok = np.isfinite(values) & interior(col, row)
        assert ok.sum() > 1000 and np.abs(values[ok] - expected[ok]).max() < 0.05  # px
    assert grids[0] == grids[1] and grids[0][0] == 32720 and grids[0][1][0] == 3.0
    assert progress[-1] == 100.0 and any(40 < p < 60 for p in progress)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("surfacemotion:orthorectify")
    assert handleAlgorithmResults(algorithm, context, QgsProcessingFeedback())
    try:
        nodes = project.layerTreeRoot().children()
        assert len(nodes) == 1 and QgsLayerTree.isGroup(nodes[0])
        assert nodes[0].name().startswith("Orthorectify raw scenes")
        assert [child.layer().source() for child in nodes[0].children()] == outputs
    finally:
        project.clear()


def _second_positions(path, camera):
    from core.ortho.aoi import transformer
    from ortho_scenes import plane_height, true_image_position

    with rasterio.open(path) as ds:
        values = ds.read(1).astype(np.float64)
        rows, cols = np.mgrid[0:ds.height, 0:ds.width]
        lon, lat = transformer(ds.crs.to_wkt(), "EPSG:4326")(*(ds.transform * (cols + 0.5, rows + 0.5)))
    col, row = true_image_position(lon, lat, plane_height(lon, lat), **camera)
    return values, col - 0.5, col, row


def test_a_dem_without_vertical_crs_is_warned_about(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingFeedback

    warnings = []

    class Feedback(QgsProcessingFeedback):
        def pushWarning(self, text):  # noqa: N802 (QGIS API name)
            warnings.append(text)
            super().pushWarning(text)

    scene = write_scene(str(tmp_path / "scene.tif"))
    dem = write_dem(str(tmp_path / "dem.tif"))
    results, _, _ = run_algorithm("surfacemotion:orthorectify", {
        "INPUT": [scene], "DEM": dem, "TARGET_CRS": "EPSG:32719", "RESOLUTION": 4,
        "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback=Feedback())
    assert len(warnings) == 1 and "taken as ellipsoidal" in warnings[0] and "EGM96 geoid heights" in warnings[0]
    with rasterio.open(results["OUTPUT_LAYERS"][0]) as ds:
        assert ds.crs.to_epsg() == 32719 and ds.res == (4.0, 4.0) and ds.descriptions == ("green (DN)",)


def test_orthorectify_from_the_command_line(qgis_process_env, tmp_path):
    first, _, folder, dem = inputs(tmp_path)
    arguments = ["qgis_process.bin", "--json", "run", "surfacemotion:orthorectify", "--", f"INPUT={first}",
                 f"FOLDER={folder}", f"DEM={dem}", "VERTICAL_DATUM=0", "RESAMPLING=1", "ERROR_THRESHOLD=0",
                 f"OUTPUT_FOLDER={tmp_path / 'cli'}"]
    done = subprocess.run(arguments, env=qgis_process_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout)["results"]
    assert [os.path.basename(p) for p in results["OUTPUT_LAYERS"]] == ["first_ortho.tif", "second_ortho.tif"]
    values, expected, col, row = ortho_positions(results["OUTPUT_LAYERS"][0])
    ok = np.isfinite(values) & interior(col, row, 4)
    assert ok.sum() > 0.5 * WIDTH * 100 and np.abs(values[ok] - expected[ok]).max() < 0.05
    with rasterio.open(results["OUTPUT_LAYERS"][0]) as ds:
        assert ds.tags()["ORTHO_RESAMPLING"] == "bilinear"
