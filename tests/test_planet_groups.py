"""surfacemotion:planetgroups and the footprints input of surfacemotion:buildpairs (issue 12, points 3, 4,
6): group ids written on the footprints, DEM-pair table, order independence through the layer, pairs only
within groups with view-angle, sun-angle and overlap columns (overlap against shapely in an equal-area
CRS, computed independently), unchanged behaviour without footprints, and the search → groups → pairs →
correlate → velocity chain as a model built in code."""
import csv
import os

import pytest

from planet_footprints import (SAMPLE_ANGLES, SAMPLE_BOUNDS, SAMPLE_SCENES, footprint, sample_footprints, sample_ids,
                               write_layer)
from surface_motion.core.offsets.pairs import FOOTPRINT_COLUMNS, PAIR_COLUMNS

WINTER = ["20210112_150921_07_2455", "20220109_150744_88_2276"]
SUMMER = ["20200715_151233_62_2414", "20210718_151502_45_241e", "20220716_151117_19_24a3"]


def layer_rows(layer):
    names = layer.fields().names()
    return [dict(zip(names, feature.attributes())) for feature in layer.getFeatures()]


def as_layer(value):
    """An output of processing.run: a layer (memory outputs) or a file path."""
    from qgis.core import QgsVectorLayer

    return value if isinstance(value, QgsVectorLayer) else QgsVectorLayer(value, "output", "ogr")


def groups_by_id(layer):
    return {row["id"]: row["group_id"] for row in layer_rows(layer)}


# --------------------------------------------------------------------------- planetgroups

def test_groups_are_written_on_the_footprints_with_dem_pairs(run_algorithm, tmp_path):
    layer = sample_footprints(str(tmp_path / "footprints.geojson"))
    results, context, _ = run_algorithm("surfacemotion:planetgroups", {
        "INPUT": layer, "TOLERANCE": 0.5, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 100, "DEM_MAX_DAYS": 200,
        "DEM_MIN_VIEW_ANGLE": 2, "OUTPUT": str(tmp_path / "groups.gpkg"), "DEM_PAIRS": "memory:"})
    from qgis.core import QgsVectorLayer

    grouped = QgsVectorLayer(results["OUTPUT"], "groups", "ogr")
    # sweep from the lowest true view angle: the winter scenes (−4.1, −4.0) are group 1, summer group 2
    assert groups_by_id(grouped) == {**{i: 1 for i in WINTER}, **{i: 2 for i in SUMMER}}
    assert grouped.featureCount() == 5 and grouped.crs().authid() == "EPSG:4326"
    assert set(grouped.fields().names()) >= {"id", "acquired", "true_view_angle", "aoi_coverage_pct", "group_id"}
    assert (results["N_GROUPS"], results["N_GROUPED"]) == (2, 5)
    pairs = layer_rows(as_layer(results["DEM_PAIRS"]))
    # each scene with the next one (181, 187, 175, 188 days later), from the other side: |Δ true view angle| ≈ 7°
    assert [(row["img1"], row["img2"]) for row in pairs] == [(SUMMER[0], WINTER[0]), (WINTER[0], SUMMER[1]),
                                                             (SUMMER[1], WINTER[1]), (WINTER[1], SUMMER[2])]
    assert [round(row["true_va_diff"], 6) for row in pairs] == [7.0, 7.1, 7.2, 7.3]
    assert results["N_DEM_PAIRS"] == 4 and [round(row["dt_days"]) for row in pairs] == [181, 187, 175, 188]
    results, context, _ = run_algorithm("surfacemotion:planetgroups", {
        "INPUT": layer, "MIN_GROUP_SIZE": 2, "DEM_MAX_DAYS": 183, "DEM_MIN_VIEW_ANGLE": 2, "OUTPUT": "memory:", "DEM_PAIRS": "memory:"})
    assert [(row["img1"], row["img2"]) for row in layer_rows(as_layer(results["DEM_PAIRS"]))] == [
        (SUMMER[0], WINTER[0]), (SUMMER[1], WINTER[1])]  # 181 and 175 days; the others are too far apart


def test_the_grouped_footprints_load_coloured_by_group(run_algorithm, tmp_path):
    from qgis.core import QgsExpressionContext, QgsExpressionContextUtils, QgsProcessingFeedback, QgsSymbolLayer

    layer = sample_footprints(str(tmp_path / "footprints.geojson"))
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingOutputLayerDefinition, QgsProject

    destination = QgsProcessingOutputLayerDefinition(str(tmp_path / "groups.gpkg"), QgsProject.instance())
    parameters = {"INPUT": layer, "MIN_GROUP_SIZE": 3, "MIN_DAYS": 0, "OUTPUT": destination, "DEM_PAIRS": "memory:"}
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results = processing.run("surfacemotion:planetgroups", parameters, context=context,
                             feedback=QgsProcessingFeedback())
    details = context.layersToLoadOnCompletion()[results["OUTPUT"]]
    grouped = as_layer(results["OUTPUT"])
    details.postProcessor().postProcessLayer(grouped, context, QgsProcessingFeedback())
    fill = grouped.renderer().symbol().symbolLayer(0)
    colours = {}
    for feature in grouped.getFeatures():
        expression_context = QgsExpressionContext()
        expression_context.appendScope(QgsExpressionContextUtils.layerScope(grouped))
        expression_context.setFeature(feature)
        colour, _ = fill.dataDefinedProperties().valueAsColor(QgsSymbolLayer.PropertyFillColor, expression_context)
        colours[feature["group_id"]] = colour.name()
    assert colours[-1] == "#9e9e9e" and len(set(colours.values())) == 2  # summer group 1 coloured, winter grey


def test_groups_do_not_depend_on_the_feature_order(run_algorithm, tmp_path):
    ids = sample_ids()
    layers = []
    for name, order in (("forward", ids), ("backward", ids[::-1]), ("mixed", [ids[i] for i in (3, 0, 4, 2, 1)])):
        features = [footprint(scene_id, SAMPLE_ANGLES[scene_id]) for scene_id in order]
        layers.append(write_layer(str(tmp_path / f"{name}.geojson"), features))
    found = []
    for layer in layers:
        results, context, _ = run_algorithm("surfacemotion:planetgroups", {
            "INPUT": layer, "TOLERANCE": 0.3, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 0, "OUTPUT": "memory:",
            "DEM_PAIRS": "memory:"})
        found.append(groups_by_id(as_layer(results["OUTPUT"])))
    assert found[0] == found[1] == found[2] == {**{i: 1 for i in WINTER}, **{i: 2 for i in SUMMER}}


def test_true_view_angle_is_computed_from_the_satellite_azimuth_when_the_layer_has_none(run_algorithm, tmp_path):
    """Without the true_view_angle field the sign comes from satellite_azimuth and the scan line: 100° is
    east of a 10° scan line (+), 280° west (−); with illumination the winter sun splits nothing off."""
    features = [footprint(i, SAMPLE_ANGLES[i], sun_azimuth=150.0 if i in SUMMER else 160.0) for i in sample_ids()]
    layer = write_layer(str(tmp_path / "tutorial.geojson"), features, drop=["true_view_angle"])
    results, context, _ = run_algorithm("surfacemotion:planetgroups", {
        "INPUT": layer, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 0, "ILLUMINATION": True, "SUN_AZIMUTH_TOLERANCE": 5,
        "OUTPUT": "memory:", "DEM_PAIRS": "memory:"})
    assert groups_by_id(as_layer(results["OUTPUT"])) == {**{i: 1 for i in WINTER}, **{i: 2 for i in SUMMER}}
    results, context, _ = run_algorithm("surfacemotion:planetgroups", {
        "INPUT": layer, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 0, "TOLERANCE": 8, "ILLUMINATION": True,
        "SUN_AZIMUTH_TOLERANCE": 5, "OUTPUT": "memory:", "DEM_PAIRS": "memory:"})
    # 8° would join both perspectives, but the sun azimuths differ by 10°
    assert groups_by_id(as_layer(results["OUTPUT"])) == {**{i: 1 for i in WINTER}, **{i: 2 for i in SUMMER}}


def test_no_group_is_reported_and_every_scene_gets_minus_one(run_algorithm, tmp_path):
    from faults import error_log

    layer = sample_footprints(str(tmp_path / "footprints.geojson"))
    feedback = error_log()
    results, context, _ = run_algorithm("surfacemotion:planetgroups", {
        "INPUT": layer, "MIN_GROUP_SIZE": 4, "MIN_DAYS": 0, "OUTPUT": "memory:", "DEM_PAIRS": "memory:"},
        feedback=feedback)
    assert set(groups_by_id(as_layer(results["OUTPUT"])).values()) == {-1}
    assert results["N_GROUPS"] == 0 and "No group of at least 4 scenes" in feedback.errors[0]


# --------------------------------------------------------------------------- buildpairs with footprints

def _grouped_layer(run_algorithm, tmp_path, **footprint_options):
    layer = sample_footprints(str(tmp_path / "footprints.geojson"), **footprint_options)
    results, _, _ = run_algorithm("surfacemotion:planetgroups", {
        "INPUT": layer, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 0, "OUTPUT": str(tmp_path / "groups.gpkg"),
        "DEM_PAIRS": "memory:"})
    return results["OUTPUT"]


def shapely_overlap_pct(ref_bounds, sec_bounds) -> float:
    """area(ref ∩ sec) / area(ref) × 100 with shapely in EPSG:6933 (NSIDC EASE-Grid 2.0, equal area)."""
    import pyproj
    from shapely.geometry import box
    from shapely.ops import transform

    project = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True).transform
    ref, sec = transform(project, box(*ref_bounds)), transform(project, box(*sec_bounds))
    return 100.0 * ref.intersection(sec).area / ref.area


def test_pairs_only_within_groups_with_angle_sun_and_overlap_columns(run_algorithm, tmp_path):
    groups = _grouped_layer(run_algorithm, tmp_path)
    csv_path = str(tmp_path / "pairs.csv")
    results, context, _ = run_algorithm("surfacemotion:buildpairs", {
        "INPUTS": SAMPLE_SCENES, "DT_MIN": 100, "FOOTPRINTS": groups, "OUTPUT": "memory:", "OUTPUT_CSV": csv_path})
    rows = layer_rows(as_layer(results["OUTPUT"]))
    assert results["N_PAIRS"] == 4  # 1 winter pair + 3 summer pairs (10 without groups)
    assert [(r["ref_id"], r["sec_id"], r["group"]) for r in rows] == [
        (WINTER[0], WINTER[1], 1), (SUMMER[0], SUMMER[1], 2), (SUMMER[0], SUMMER[2], 2), (SUMMER[1], SUMMER[2], 2)]
    assert [round(r["true_va_diff"], 6) for r in rows] == [0.1, 0.1, 0.2, 0.1]
    assert [r["true_va_ref"] for r in rows] == [-4.0, 3.0, 3.0, 3.1]
    assert [r["sun_az_diff"] for r in rows] == [0.0] * 4 and [r["sun_elev_diff"] for r in rows] == [0.0] * 4
    west, south, east, north = SAMPLE_BOUNDS
    order = sample_ids()
    bounds = {scene_id: (west + k * 0.002, south, east + k * 0.002, north) for k, scene_id in enumerate(order)}
    expected = [shapely_overlap_pct(bounds[r["ref_id"]], bounds[r["sec_id"]]) for r in rows]
    assert [r["overlap_pct"] for r in rows] == pytest.approx(expected, abs=0.01)
    assert 60 < min(expected) < 90  # the shifts matter: 2 × 0.002° of a 0.022° wide footprint
    with open(csv_path, newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == PAIR_COLUMNS + FOOTPRINT_COLUMNS and len(table) == 4
    assert [row["group"] for row in table] == ["1", "2", "2", "2"]


def test_sun_differences_and_footprints_without_groups(run_algorithm, tmp_path):
    """A plain footprints layer (no group_id): every scene is paired, with the footprint columns and an
    empty group; sun differences are absolute and wrap around north."""
    features = [footprint(scene_id, SAMPLE_ANGLES[scene_id], sun_azimuth=358.0 + 3 * k, sun_elevation=40 + k)
                for k, scene_id in enumerate(sample_ids())]
    layer = write_layer(str(tmp_path / "plain.geojson"), features, drop=["group_id"])
    results, context, _ = run_algorithm("surfacemotion:buildpairs", {
        "INPUTS": SAMPLE_SCENES[:2], "FOOTPRINTS": layer, "OUTPUT": "memory:",
        "OUTPUT_CSV": str(tmp_path / "pairs.csv")})
    (row,) = layer_rows(as_layer(results["OUTPUT"]))
    assert row["sun_az_diff"] == pytest.approx(3.0) and row["sun_elev_diff"] == pytest.approx(1.0)
    assert row["true_va_diff"] == pytest.approx(7.0) and row["overlap_pct"] == pytest.approx(100.0)
    assert row["group"] is None or str(row["group"]) == "NULL"


def test_without_footprints_the_pair_table_is_unchanged(run_algorithm, tmp_path):
    csv_path = str(tmp_path / "pairs.csv")
    results, context, _ = run_algorithm("surfacemotion:buildpairs", {
        "INPUTS": SAMPLE_SCENES, "DT_MIN": 100, "OUTPUT": "memory:", "OUTPUT_CSV": csv_path})
    assert results["N_PAIRS"] == 10
    assert as_layer(results["OUTPUT"]).fields().names() == PAIR_COLUMNS
    with open(csv_path, encoding="utf-8") as handle:
        assert handle.readline().strip() == ",".join(PAIR_COLUMNS)


def test_scenes_in_no_group_are_left_out_and_a_scene_without_footprint_is_refused(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    layer = sample_footprints(str(tmp_path / "footprints.geojson"))
    results, _, _ = run_algorithm("surfacemotion:planetgroups", {
        "INPUT": layer, "MIN_GROUP_SIZE": 3, "MIN_DAYS": 0, "OUTPUT": "memory:", "DEM_PAIRS": "memory:"})
    # the winter pair is too small a group: only the 3 summer pairs remain
    grouped = results["OUTPUT"]
    results, context, feedback = run_algorithm("surfacemotion:buildpairs", {
        "INPUTS": SAMPLE_SCENES, "FOOTPRINTS": grouped, "OUTPUT": "memory:", "OUTPUT_CSV": str(tmp_path / "p.csv")})
    assert results["N_PAIRS"] == 3
    only_summer = write_layer(str(tmp_path / "summer.geojson"),
                              [footprint(i, SAMPLE_ANGLES[i]) for i in SUMMER])
    with pytest.raises(QgsProcessingException, match=r"2 scene\(s\) have no footprint.*20210112_150921_07_2455"):
        run_algorithm("surfacemotion:buildpairs", {
            "INPUTS": SAMPLE_SCENES, "FOOTPRINTS": only_summer, "OUTPUT": "memory:",
            "OUTPUT_CSV": str(tmp_path / "q.csv")})
    assert not os.path.exists(tmp_path / "q.csv")


# --------------------------------------------------------------------------- Model Builder

def groups_to_velocity_model():
    """search → groups → pairs path as a model: planetgroups → extractband → buildpairs (FOOTPRINTS) →
    correlatepairs → velocity, the L3B model's steps after the pairs (README, 'Planet search to velocity
    in the Model Designer')."""
    from qgis.core import (QgsApplication, QgsProcessing, QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource as Source, QgsProcessingModelOutput,
                           QgsProcessingModelParameter, QgsProcessingParameterFeatureSource,
                           QgsProcessingParameterMultipleLayers)

    model = QgsProcessingModelAlgorithm("planetgroupstovelocity", "Test", "test")
    model.addModelParameter(QgsProcessingParameterFeatureSource(
        "FOOTPRINTS", "Footprints", [QgsProcessing.TypeVectorPolygon]), QgsProcessingModelParameter("FOOTPRINTS"))
    model.addModelParameter(QgsProcessingParameterMultipleLayers("SCENES", "Scenes", QgsProcessing.TypeRaster),
                            QgsProcessingModelParameter("SCENES"))

    def child(child_id, algorithm_id, sources, outputs=()):
        """A step; its other inputs get the algorithm's defaults (the designer needs every mandatory one)."""
        step = QgsProcessingModelChildAlgorithm(algorithm_id)
        step.setChildId(child_id)
        for name, source in sources.items():
            step.addParameterSources(name, [source])
        for definition in QgsApplication.processingRegistry().algorithmById(algorithm_id).parameterDefinitions():
            if not definition.isDestination() and definition.name() not in sources \
                    and definition.defaultValue() is not None:
                step.addParameterSources(definition.name(), [Source.fromStaticValue(definition.defaultValue())])
        model_outputs = {}
        for name in outputs:
            output = QgsProcessingModelOutput(name, name)
            output.setChildId(child_id)
            output.setChildOutputName(name)
            model_outputs[output.name()] = output
        step.setModelOutputs(model_outputs)
        model.addChildAlgorithm(step)

    static = Source.fromStaticValue
    child("groups", "surfacemotion:planetgroups", {
        "INPUT": Source.fromModelParameter("FOOTPRINTS"), "TOLERANCE": static(0.5), "MIN_GROUP_SIZE": static(2),
        "MIN_DAYS": static(100.0)})
    child("extract", "surfacemotion:extractband", {"INPUT": Source.fromModelParameter("SCENES"), "BAND": static(2)})
    child("pairs", "surfacemotion:buildpairs", {
        "INPUTS": Source.fromChildOutput("extract", "OUTPUT_LAYERS"),
        "FOOTPRINTS": Source.fromChildOutput("groups", "OUTPUT"), "DT_MIN": static(100.0)}, ["OUTPUT_CSV"])
    child("correlate", "surfacemotion:correlatepairs", {
        "PAIRS": Source.fromChildOutput("pairs", "OUTPUT"), "CHIP_SIZE": static(32), "SEARCH_RANGE": static(8),
        "STEP": static(16)})
    child("velocity", "surfacemotion:velocity", {"INPUT": Source.fromChildOutput("correlate", "OUTPUT_LAYERS")},
          ["OUTPUT_FOLDER"])
    return model


def test_the_groups_to_velocity_chain_validates_and_runs_as_a_model(provider, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProject

    from faults import error_log

    model = groups_to_velocity_model()
    assert model.validate() == (True, [])
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    layer = sample_footprints(str(tmp_path / "footprints.geojson"))
    velocity = str(tmp_path / "velocity")
    feedback = error_log()
    results, ok = model.run({"FOOTPRINTS": layer, "SCENES": SAMPLE_SCENES, "pairs:OUTPUT_CSV": str(tmp_path / "p.csv"),
                             "velocity:OUTPUT_FOLDER": velocity}, context, feedback)
    assert ok, feedback.errors
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as handle:
        pairs = list(csv.DictReader(handle))
    assert [(row["ref_id"], row["sec_id"], row["group"]) for row in pairs] == [
        (WINTER[0], WINTER[1], "1"), (SUMMER[0], SUMMER[1], "2"), (SUMMER[0], SUMMER[2], "2"),
        (SUMMER[1], SUMMER[2], "2")]
    written = sorted(name for name in os.listdir(velocity) if name.endswith(".tif"))
    assert len(written) == 4 and all("_velocity" in name for name in written), written
    assert any(WINTER[0] in name and WINTER[1] in name for name in written)


def test_groups_and_pairs_from_the_command_line(qgis_process_env, tmp_path):
    """`qgis_process.bin --json run` of planetgroups, then buildpairs with its grouped footprints."""
    from test_qgis_process import run_json

    layer = sample_footprints(str(tmp_path / "footprints.geojson"))
    grouped = run_json(qgis_process_env, "surfacemotion:planetgroups", {
        "INPUT": layer, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 100, "DEM_MIN_VIEW_ANGLE": 2, "DEM_MAX_DAYS": 183,
        "OUTPUT": str(tmp_path / "groups.gpkg"), "DEM_PAIRS": str(tmp_path / "dem_pairs.csv")})
    assert (grouped["N_GROUPS"], grouped["N_GROUPED"], grouped["N_DEM_PAIRS"]) == (2, 5, 2)
    with open(tmp_path / "dem_pairs.csv", newline="", encoding="utf-8") as handle:
        dem = list(csv.DictReader(handle))
    assert [(row["img1"], row["img2"]) for row in dem] == [(SUMMER[0], WINTER[0]), (SUMMER[1], WINTER[1])]
    pairs = run_json(qgis_process_env, "surfacemotion:buildpairs", {
        "INPUTS": SAMPLE_SCENES, "DT_MIN": 100, "FOOTPRINTS": grouped["OUTPUT"],
        "OUTPUT": str(tmp_path / "pairs.gpkg"), "OUTPUT_CSV": str(tmp_path / "pairs.csv")})
    assert pairs["N_PAIRS"] == 4
    with open(tmp_path / "pairs.csv", newline="", encoding="utf-8") as handle:
        assert [row["group"] for row in csv.DictReader(handle)] == ["1", "2", "2", "2"]


def test_a_run_loads_its_two_layers_in_one_group_footprints_on_top(tmp_path):
    """The grouped footprints and the DEM-pair table of one run land in one layer-tree group, the
    footprints first and visible (issue 11's orderly map)."""
    import processing
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (QgsApplication, QgsLayerTree, QgsProcessingContext, QgsProcessingFeedback,
                           QgsProcessingOutputLayerDefinition, QgsProject)

    project = QgsProject.instance()
    project.clear()
    layer = sample_footprints(str(tmp_path / "footprints.geojson"))
    parameters = {"INPUT": layer, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 0, "DEM_MIN_VIEW_ANGLE": 2,
                  "OUTPUT": QgsProcessingOutputLayerDefinition(str(tmp_path / "groups.gpkg"), project),
                  "DEM_PAIRS": QgsProcessingOutputLayerDefinition(str(tmp_path / "dem.gpkg"), project)}
    context = QgsProcessingContext()
    context.setProject(project)
    processing.run("surfacemotion:planetgroups", parameters, context=context, feedback=QgsProcessingFeedback())
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("surfacemotion:planetgroups")
    assert handleAlgorithmResults(algorithm, context, QgsProcessingFeedback())
    try:
        nodes = project.layerTreeRoot().children()
        assert len(nodes) == 1 and QgsLayerTree.isGroup(nodes[0])
        assert nodes[0].name().startswith("Group Planet scenes")
        footprints, pairs = nodes[0].children()
        assert footprints.layer().source().startswith(str(tmp_path / "groups.gpkg"))
        assert pairs.layer().source().startswith(str(tmp_path / "dem.gpkg"))
        assert footprints.itemVisibilityChecked() and footprints.layer().geometryType() == 2  # polygons
    finally:
        project.clear()
