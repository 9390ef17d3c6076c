"""surfacemotion:coregisterdem through Processing: in-process (outputs loaded as one group, the
unstable areas as polygons in another CRS, the no-convergence warning) and with `qgis_process.bin`.
Inputs: the Rome DEM in UTM 33N moved by the known shift (builders of test_core_dem)."""
import json
import os
import subprocess

import numpy as np
import pytest
from rasterio.warp import transform_geom

from test_core_dem import CORRECTION, displaced_copy, glacier, read_report, rome_utm


@pytest.fixture(scope="module")
def rome(tmp_path_factory):
    return rome_utm(tmp_path_factory.mktemp("rome_alg") / "rome_utm33.tif")


def parameters_for(dem, reference, folder, **extra):
    folder = str(folder)
    return {"DEM": dem, "REFERENCE": reference, "OUTPUT": os.path.join(folder, "coreg.tif"),
            "DH_BEFORE": os.path.join(folder, "dh_before.tif"), "DH_AFTER": os.path.join(folder, "dh_after.tif"),
            "REPORT": os.path.join(folder, "report.csv"), **extra}


def polygon_file(path, polygon_utm):
    """The polygon as a GeoJSON file in EPSG:4326 (reprojected by the algorithm to the DEM's CRS)."""
    geometry = transform_geom("EPSG:32633", "EPSG:4326", polygon_utm)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"name": "glacier"}, "geometry": geometry}]}, handle)
    return str(path)


def test_the_known_shift_is_recovered_and_the_outputs_load_as_one_group(rome, tmp_path, provider):
    import processing
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (QgsApplication, QgsLayerTree, QgsProcessingContext, QgsProcessingFeedback,
                           QgsProcessingOutputLayerDefinition, QgsProject)

    dem = displaced_copy(rome, tmp_path / "dem.tif")
    project = QgsProject.instance()
    project.clear()
    parameters = parameters_for(dem, rome, tmp_path)
    for name in ("OUTPUT", "DH_BEFORE", "DH_AFTER"):
        parameters[name] = QgsProcessingOutputLayerDefinition(parameters[name], project)
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()
    results = processing.run("surfacemotion:coregisterdem", parameters, context=context, feedback=feedback)
    assert (results["SHIFT_X"], results["SHIFT_Y"], results["SHIFT_Z"]) == pytest.approx(CORRECTION, abs=0.01)
    assert results["CONVERGED"] and results["NMAD_AFTER"] < 0.25 * results["NMAD_BEFORE"]
    assert "Shift applied to the DEM: x -2.400 m (east), y +1.700 m (north), z -3.100 m" in feedback.textLog()
    assert "No convergence" not in feedback.textLog()
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("surfacemotion:coregisterdem")
    assert handleAlgorithmResults(algorithm, context, feedback)
    try:
        nodes = project.layerTreeRoot().children()
        assert len(nodes) == 1 and QgsLayerTree.isGroup(nodes[0])
        assert nodes[0].name().startswith("Co-register DEM")
        shifted, after, before = nodes[0].children()
        assert shifted.layer().source() == str(tmp_path / "coreg.tif") and shifted.itemVisibilityChecked()
        assert after.layer().source() == str(tmp_path / "dh_after.tif") and not after.itemVisibilityChecked()
        assert before.layer().source() == str(tmp_path / "dh_before.tif")
        assert after.layer().renderer().type() == "singlebandpseudocolor"
    finally:
        project.clear()


def test_unstable_polygons_in_another_crs_are_excluded(rome, tmp_path, run_algorithm):
    change, polygon = glacier(rome)
    dem = displaced_copy(rome, tmp_path / "dem.tif", change=change)
    mask = polygon_file(tmp_path / "glacier.geojson", polygon)
    masked, _, _ = run_algorithm("surfacemotion:coregisterdem",
                                 parameters_for(dem, rome, tmp_path / "masked", UNSTABLE=mask))
    biased, _, _ = run_algorithm("surfacemotion:coregisterdem", parameters_for(dem, rome, tmp_path / "biased"))
    assert (masked["SHIFT_X"], masked["SHIFT_Y"], masked["SHIFT_Z"]) == pytest.approx(CORRECTION, abs=0.05)
    assert np.hypot(biased["SHIFT_X"] - CORRECTION[0], biased["SHIFT_Y"] - CORRECTION[1]) > 1.0


def test_no_convergence_warns_in_the_log_and_the_report(rome, tmp_path, run_algorithm):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    results, _, feedback = run_algorithm("surfacemotion:coregisterdem",
                                         parameters_for(dem, rome, tmp_path, MAX_ITERATIONS=1))
    assert not results["CONVERGED"] and results["ITERATIONS"] == 1
    assert "No convergence: the last horizontal step was" in feedback.textLog()
    assert read_report(results["REPORT"])[0]["converged"] == "no"


def test_coregisterdem_runs_from_the_command_line(rome, tmp_path, qgis_process_env):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    arguments = ["--json", "run", "surfacemotion:coregisterdem", "--"]
    arguments += [f"{key}={value}" for key, value in parameters_for(dem, rome, tmp_path / "cli", TILT=1).items()]
    done = subprocess.run(["qgis_process.bin", *arguments], env=qgis_process_env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout)["results"]
    assert (results["SHIFT_X"], results["SHIFT_Y"], results["SHIFT_Z"]) == pytest.approx(CORRECTION, abs=0.02)
    assert results["CONVERGED"] is True
    assert os.path.isfile(results["OUTPUT"]) and os.path.isfile(results["REPORT"])
    assert abs(float(read_report(results["REPORT"])[0]["tilt_x_m_per_km"])) < 0.01


def test_coregisterdem_chains_in_a_model(rome, tmp_path, provider):
    """In the Model Designer: the co-registered DEM of one step is the input of the next, which then finds
    (almost) nothing left to correct; the model validates."""
    import processing
    from qgis.core import (QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm,
                           QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource,
                           QgsProcessingModelParameter, QgsProcessingParameterRasterLayer, QgsProject)

    def static(value):
        return [QgsProcessingModelChildParameterSource.fromStaticValue(value)]

    model = QgsProcessingModelAlgorithm("dem alignment", "test")
    for name in ("dem", "reference"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    first = QgsProcessingModelChildAlgorithm("surfacemotion:coregisterdem")
    first.setChildId("first")
    second = QgsProcessingModelChildAlgorithm("surfacemotion:coregisterdem")
    second.setChildId("second")
    for child, folder in ((first, "first"), (second, "second")):
        child.addParameterSources("REFERENCE", [QgsProcessingModelChildParameterSource.fromModelParameter(
            "reference")])
        settings = {"SLOPE_MIN": 5.0, "SLOPE_MAX": 40.0, "TILT": False, "MAX_ITERATIONS": 10, "TOLERANCE": 0.001,
                    "RESAMPLING": 1}
        for name, value in parameters_for("", "", tmp_path / folder, **settings).items():
            if name not in ("DEM", "REFERENCE"):
                child.addParameterSources(name, static(value))
    first.addParameterSources("DEM", [QgsProcessingModelChildParameterSource.fromModelParameter("dem")])
    second.addParameterSources("DEM", [QgsProcessingModelChildParameterSource.fromChildOutput("first", "OUTPUT")])
    model.addChildAlgorithm(first)
    model.addChildAlgorithm(second)
    valid, issues = model.validate()
    assert valid, issues
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    processing.run(model, {"dem": displaced_copy(rome, tmp_path / "dem.tif"), "reference": rome}, context=context,
                   feedback=QgsProcessingFeedback())
    once, twice = (read_report(str(tmp_path / folder / "report.csv"))[0] for folder in ("first", "second"))
    assert (float(once["shift_x_m"]), float(once["shift_y_m"])) == pytest.approx(CORRECTION[:2], abs=0.01)
    # what the second step finds (about 0.01 m, 0.0004 px) is the cubic resampling of the first's output
    assert abs(float(twice["shift_x_m"])) < 0.03 and abs(float(twice["shift_y_m"])) < 0.03
    assert abs(float(twice["shift_z_m"])) < 0.02
    QgsProject.instance().removeAllMapLayers()
