"""The shipped model (models/planetscope_l3b_velocity.model3, provider class ShippedModel):
it validates in the Model Designer, lists its inputs in workflow order, applies its defaults to
inputs a script omits, sits in the offset-tracking group and loads only its final outputs."""
import csv
import glob
import json
import os
import sys

import numpy as np
import pytest
import rasterio
from conftest import REPO, SAMPLE_DIR

sys.path.insert(0, os.path.join(REPO, "tools"))

MODEL_ID = "surfacemotion:planetscopel3bvelocity"
MODEL_FILE = os.path.join(REPO, "models", "planetscope_l3b_velocity.model3")
STEPS = ["surfacemotion:extractband", "surfacemotion:buildpairs", "surfacemotion:correlatepairs",
         "surfacemotion:polyfit", "surfacemotion:velocity"]
SCENES = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))


def registered_model(provider, model_id: str = MODEL_ID):
    return next(a for a in provider.algorithms() if a.id() == model_id)


def file_model(path: str = MODEL_FILE):
    """The model as the Model Designer opens it: the plain model file."""
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(path)
    return model


def test_the_model_validates_in_the_designer_and_in_the_toolbox(provider):
    import make_model

    assert_validates([file_model(), registered_model(provider), registered_model(provider).createInstance()], STEPS)
    assert make_model.INPUT_ORDER[0] == "SCENES"


def assert_validates(models, steps) -> None:
    """Each model validates, has exactly ``steps`` and gives every mandatory input of a step a source
    (what the Model Designer checks)."""
    for model in models:
        assert model.validate() == (True, [])
        children = model.childAlgorithms()
        assert sorted(child.algorithmId() for child in children.values()) == sorted(steps)
        for child_id, child in children.items():
            assert model.validateChildAlgorithm(child_id) == (True, [])
            sources = child.parameterSources()
            for definition in child.algorithm().parameterDefinitions():
                assert (definition.isDestination() or definition.name() in sources
                        or definition.flags() & definition.FlagOptional), (child_id, definition.name())


def test_inputs_are_listed_in_workflow_order_scenes_first(provider):
    expected = ["SCENES", "USE_UDM2", "BAND", "DT_MIN", "CHIP_SIZE", "SEARCH_RANGE", "STEP", "MOVING_AREA",
                "ORDER", "DEM"]
    for model in (file_model(), registered_model(provider).createInstance()):
        inputs = [d.name() for d in model.parameterDefinitions() if not d.isDestination()]
        assert inputs == expected
        assert [p.parameterName() for p in model.orderedParameters()] == expected  # the designer's order


def test_numeric_inputs_have_ranges_within_those_of_the_steps_they_feed(provider):
    """A model input allows at most what the step it feeds allows (BAND is narrower: 4-band scenes)."""
    from qgis.core import QgsApplication, QgsProcessingModelChildParameterSource, QgsProcessingParameterNumber

    model = file_model()
    checked = 0
    for child in model.childAlgorithms().values():
        algorithm = QgsApplication.processingRegistry().algorithmById(child.algorithmId())
        for name, sources in child.parameterSources().items():
            if sources[0].source() != QgsProcessingModelChildParameterSource.ModelParameter:
                continue
            model_input = model.parameterDefinition(sources[0].parameterName())
            if not isinstance(model_input, QgsProcessingParameterNumber):
                continue
            step = algorithm.parameterDefinition(name)
            assert step.minimum() <= model_input.minimum() and model_input.maximum() <= step.maximum(), name
            assert model_input.maximum() < 1e300, f"{name} declares no maximum"
            checked += 1
    assert checked == 5  # BAND, DT_MIN, CHIP_SIZE, SEARCH_RANGE, STEP


def test_unconnected_step_settings_are_the_algorithms_defaults(provider):
    """The model fixes only the steps' inputs it connects (and KEEP_SNOW, MODE, MEDIAN_SHIFT); every
    other setting is a static copy of the algorithm's default, which must not drift from it."""
    from qgis.core import QgsApplication, QgsProcessingModelChildParameterSource

    fixed = {("extract", "KEEP_SNOW"): True, ("pairs", "MODE"): 0, ("velocity", "MEDIAN_SHIFT"): True}
    model = file_model()
    checked = 0
    for child_id, child in model.childAlgorithms().items():
        algorithm = QgsApplication.processingRegistry().algorithmById(child.algorithmId())
        for name, sources in child.parameterSources().items():
            assert len(sources) == 1
            if sources[0].source() != QgsProcessingModelChildParameterSource.StaticValue:
                continue
            expected = fixed.get((child_id, name), algorithm.parameterDefinition(name).defaultValue())
            assert sources[0].staticValue() == expected, (child_id, name)
            checked += 1
    assert checked >= 20  # correlatepairs alone has 17 settings the model leaves at their default
    correlate = model.childAlgorithm("correlate").parameterSources()
    assert all(correlate[name][0].source() == QgsProcessingModelChildParameterSource.ModelParameter
               for name in ("CHIP_SIZE", "SEARCH_RANGE", "STEP"))


def test_the_model_has_a_title_a_help_and_the_offset_tracking_group(provider, monkeypatch):
    import surface_motion.algorithms.base as base

    model = registered_model(provider)
    correlate = next(a for a in provider.algorithms() if a.id() == "surfacemotion:correlatepairs")
    assert model.displayName() == "PlanetScope L3B velocity chain (model)"
    assert (model.group(), model.groupId()) == (correlate.group(), correlate.groupId())
    assert model.groupId() == "offsettracking"
    monkeypatch.setitem(base.GROUPS, "offsettracking", "2. Offset tracking")  # labels are read at run time
    assert model.group() == "2. Offset tracking"
    help_text = model.shortHelpString()
    assert "velocity" in help_text and "Model Designer" in help_text
    description = model.helpContent()["ALG_DESC"]
    assert "<" not in description and ">" not in description  # QGIS renders help as HTML
    assert all(model.helpContent().get(name) for name in ("SCENES", "DT_MIN", "MOVING_AREA"))


def test_intermediate_outputs_are_optional_and_skipped_by_default(provider):
    model = registered_model(provider).createInstance()
    destinations = {d.name(): d for d in model.destinationParameterDefinitions()}
    assert list(destinations) == ["pairs:PAIRS_CSV", "correlate:DISPARITY_FOLDER", "polyfit:DERAMPED_FOLDER",
                                  "velocity:VELOCITY_FOLDER"]  # workflow order in the dialog
    assert [d.name() for d in model.outputDefinitions()] == list(destinations)  # each output once
    assert model.final_outputs() == {"velocity:VELOCITY_FOLDER"}
    for name, definition in destinations.items():
        optional = bool(definition.flags() & definition.FlagOptional)
        assert optional == (name != "velocity:VELOCITY_FOLDER"), name
        assert definition.createByDefault() == (name == "velocity:VELOCITY_FOLDER"), name


def test_a_script_omitting_every_optional_input_gets_the_model_defaults(run_algorithm):
    """processing.run with the scenes only: DT_MIN 180 days applies (9 of the sample's 10 pairs),
    every step gets the model's defaults, and only the 9 velocity rasters load, named by pair."""
    results, context, _ = run_algorithm(MODEL_ID, {"SCENES": SCENES})
    inputs = results["CHILD_INPUTS"]
    assert (inputs["extract"]["BAND"], inputs["extract"]["USE_UDM2"]) == (2, False)
    assert inputs["pairs"]["DT_MIN"] == 180.0
    assert (inputs["correlate"]["CHIP_SIZE"], inputs["correlate"]["SEARCH_RANGE"], inputs["correlate"]["STEP"]) \
        == (32, 8, 4)
    assert inputs["polyfit"]["ORDER"] == 1
    with open(results["pairs:PAIRS_CSV"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9 and min(float(row["dt_days"]) for row in rows) >= 180
    velocities = sorted(results["CHILD_RESULTS"]["velocity"]["OUTPUT_LAYERS"])
    assert len(velocities) == 9
    loaded = context.layersToLoadOnCompletion()
    assert sorted(loaded) == velocities  # no extracted band, no disparity map
    names = sorted(details.name for details in loaded.values())
    assert names[0] == "2020-07-15 → 2021-01-12 speed" and len(set(names)) == 9


def test_shipped_model_opens_and_runs_in_process(run_algorithm, tmp_path):
    results, context, _ = run_algorithm(MODEL_ID, {
        "SCENES": SCENES[::2], "DT_MIN": 300, "SEARCH_RANGE": 10, "STEP": 8, "ORDER": 0,
        "MOVING_AREA": os.path.join(SAMPLE_DIR, "landslide_outline.geojson"),
        "pairs:PAIRS_CSV": "TEMPORARY_OUTPUT", "correlate:DISPARITY_FOLDER": "TEMPORARY_OUTPUT",
        "polyfit:DERAMPED_FOLDER": str(tmp_path / "deramped"), "velocity:VELOCITY_FOLDER": str(tmp_path / "velocity")})
    rasters = sorted(glob.glob(str(tmp_path / "velocity" / "*_velocity.tif")))
    assert results["velocity:VELOCITY_FOLDER"] == str(tmp_path / "velocity")
    assert len(rasters) == 3  # scenes 0, 2, 4: all three pairs are >= 300 days apart
    # intermediate outputs given a destination load too (3 disparity maps twice: raw and de-ramped)
    folders = sorted(os.path.basename(os.path.dirname(path)) for path in context.layersToLoadOnCompletion())
    assert folders.count("velocity") == 3 and folders.count("deramped") == 3 and len(folders) == 9
    with rasterio.open(rasters[0]) as ds:
        speed = ds.read(1)
    truth = json.load(open(os.path.join(SAMPLE_DIR, "truth.json")))["landslide"]
    centre = speed[int(truth["centre_row_px"] / 8) - 2:int(truth["centre_row_px"] / 8) + 2,
                   int(truth["centre_col_px"] / 8) - 2:int(truth["centre_col_px"] / 8) + 2]
    assert np.nanmedian(centre) == pytest.approx(truth["speed_m_per_yr"], rel=0.10)
