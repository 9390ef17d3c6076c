"""surfacemotion:stackvelocity end to end: in-process and with qgis_process.bin, numbers equal to
core.series.stack.stack_statistics of the inputs, band descriptions, CRS, nodata, SM_SERIES_SOURCES, pair table."""
import json
import os
import subprocess

import numpy as np
import pytest
import rasterio

from core.series.stack import STACK_BANDS, STACK_DESCRIPTIONS, stack_statistics
from series_data import DATES, velocity_network


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    return velocity_network(tmp_path_factory.mktemp("stackvelocity"))


def check_output(path, fields, paths):
    e = np.array([f[0] for f in fields])
    n = np.array([f[1] for f in fields])
    want = stack_statistics(np.hypot(e, n), e, n)
    with rasterio.open(path) as ds:
        assert ds.descriptions == STACK_DESCRIPTIONS and ds.count == 11
        assert ds.crs.to_epsg() == 32618 and np.isnan(ds.nodata) and ds.dtypes[0] == "float32"
        for index, (name, _) in enumerate(STACK_BANDS, start=1):
            np.testing.assert_allclose(ds.read(index), want[name].astype(np.float32), rtol=2e-6, atol=1e-5,
                                       equal_nan=True, err_msg=name)
        sources = json.loads(ds.tags()["SM_SERIES_SOURCES"])
    assert [s["path"] for s in sources] == [os.path.abspath(p) for p in paths]
    assert [(s["ref_date"][:10], s["sec_date"][:10]) for s in sources] == list(DATES)
    assert os.path.isfile(path[:-4] + ".qml")  # the velocity speed style sidecar


def test_stackvelocity_in_process(network, run_algorithm, tmp_path):
    paths, fields = network
    out = str(tmp_path / "stack.tif")
    results, _, feedback = run_algorithm("surfacemotion:stackvelocity", {"INPUT": paths, "OUTPUT": out})
    assert results["OUTPUT"] == out
    check_output(out, fields, paths)


def test_stackvelocity_from_a_pair_table(network, run_algorithm, tmp_path):
    paths, fields = network
    table = tmp_path / "pairs.csv"
    table.write_text("path\n" + "\n".join(paths) + "\n")
    out = str(tmp_path / "stack.tif")
    run_algorithm("surfacemotion:stackvelocity", {"PAIR_TABLE": str(table), "OUTPUT": out})
    check_output(out, fields, paths)


def test_stackvelocity_runs_from_the_command_line(network, tmp_path, qgis_process_env):
    paths, fields = network
    out = str(tmp_path / "cli_stack.tif")
    arguments = ["--json", "run", "surfacemotion:stackvelocity", "--"] + [f"INPUT={p}" for p in paths] + \
        [f"OUTPUT={out}"]
    done = subprocess.run(["qgis_process.bin", *arguments], env=qgis_process_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout)["results"]["OUTPUT"] == out
    check_output(out, fields, paths)


def _child(algorithm_id, child_id, sources):
    """A model step with ``sources`` and, like the Model Designer, the defaults of its other parameters."""
    from qgis.core import QgsApplication, QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource

    child = QgsProcessingModelChildAlgorithm(algorithm_id)
    child.setChildId(child_id)
    for name, source in sources.items():
        child.addParameterSources(name, [source])
    for definition in QgsApplication.processingRegistry().algorithmById(algorithm_id).parameterDefinitions():
        if definition.name() not in sources and definition.defaultValue() is not None \
                and not definition.isDestination():
            child.addParameterSources(definition.name(), [
                QgsProcessingModelChildParameterSource.fromStaticValue(definition.defaultValue())])
    return child


def test_a_model_chaining_correlatepairs_velocity_stackvelocity_validates(provider, tmp_path):
    from qgis.core import (QgsProcessing, QgsProcessingModelAlgorithm, QgsProcessingModelChildParameterSource as S,
                           QgsProcessingModelParameter, QgsProcessingParameterFeatureSource)

    model = QgsProcessingModelAlgorithm("pairs to stack", "test")
    model.addModelParameter(QgsProcessingParameterFeatureSource("pairs", "pairs", [QgsProcessing.TypeVector]),
                            QgsProcessingModelParameter("pairs"))
    model.addChildAlgorithm(_child("surfacemotion:correlatepairs", "correlate", {
        "PAIRS": S.fromModelParameter("pairs"), "OUTPUT_FOLDER": S.fromStaticValue(str(tmp_path / "disp"))}))
    model.addChildAlgorithm(_child("surfacemotion:velocity", "velocity", {
        "INPUT": S.fromChildOutput("correlate", "OUTPUT_LAYERS"),
        "OUTPUT_FOLDER": S.fromStaticValue(str(tmp_path / "vel"))}))
    model.addChildAlgorithm(_child("surfacemotion:stackvelocity", "stack", {
        "INPUT": S.fromChildOutput("velocity", "OUTPUT_LAYERS"),
        "OUTPUT": S.fromStaticValue(str(tmp_path / "stack.tif"))}))
    valid, issues = model.validate()
    assert valid, issues
    assert set(model.dependsOnChildAlgorithms("stack")) == {"velocity", "correlate"}


def test_a_model_velocity_to_stackvelocity_runs_on_disparity_rasters(provider, tmp_path):
    """Disparity rasters -> velocity (a model step) -> stackvelocity: the stack equals the numpy statistics of
    offsets_to_velocity of the disparities."""
    import processing
    from affine import Affine
    from qgis.core import (QgsProcessing, QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm,
                           QgsProcessingModelChildParameterSource as S, QgsProcessingModelParameter,
                           QgsProcessingParameterMultipleLayers, QgsProject)

    from core.io import Grid, write_raster
    from core.offsets.disparity import DX, DY, VALID
    from core.offsets.velocity import offsets_to_velocity
    from series_data import CRS, TRANSFORM

    rng = np.random.default_rng(2)
    paths, east, north = [], [], []
    for index, sec in enumerate(("2020-03-01", "2020-04-01")):
        dx = rng.normal(1.0, 0.2, (12, 10)).astype(np.float32)
        dy = rng.normal(-0.5, 0.2, (12, 10)).astype(np.float32)
        path = str(tmp_path / f"disp{index}.tif")
        write_raster(path, Grid(CRS, TRANSFORM, 10, 12), [dx, dy, np.ones((12, 10))], [DX, DY, VALID],
                     tags={"SM_REF_DATE": "2020-02-01T00:00:00Z", "SM_SEC_DATE": sec + "T00:00:00Z"})
        days = 29.0 if index == 0 else 60.0
        _, _, e, n = offsets_to_velocity(dx, dy, Affine(3, 0, 0, 0, -3, 0), days)
        paths.append(path)
        east.append(e)
        north.append(n)
    model = QgsProcessingModelAlgorithm("velocity to stack", "test")
    model.addModelParameter(QgsProcessingParameterMultipleLayers("disp", "disp", QgsProcessing.TypeRaster),
                            QgsProcessingModelParameter("disp"))
    model.addChildAlgorithm(_child("surfacemotion:velocity", "velocity", {
        "INPUT": S.fromModelParameter("disp"), "MEDIAN_SHIFT": S.fromStaticValue(False),
        "OUTPUT_FOLDER": S.fromStaticValue(str(tmp_path / "vel"))}))
    model.addChildAlgorithm(_child("surfacemotion:stackvelocity", "stack", {
        "INPUT": S.fromChildOutput("velocity", "OUTPUT_LAYERS"),
        "OUTPUT": S.fromStaticValue(str(tmp_path / "stack.tif"))}))
    valid, issues = model.validate()
    assert valid, issues
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    processing.run(model, {"disp": paths}, context=context, feedback=QgsProcessingFeedback())
    e, n = np.array(east), np.array(north)
    want = stack_statistics(np.hypot(e, n), e, n)
    with rasterio.open(str(tmp_path / "stack.tif")) as ds:
        np.testing.assert_allclose(ds.read(1), want["vector_speed"], rtol=1e-5)
        np.testing.assert_allclose(ds.read(7), want["std_speed"], rtol=1e-4, atol=1e-5)
    QgsProject.instance().removeAllMapLayers()
