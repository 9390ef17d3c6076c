"""The shipped L1B model (models/planetscope_l1b_velocity.model3): it validates in the Model Designer,
lists its inputs in workflow order, feeds one DEM to the orthorectification and the ramp fit, keeps the
steps' defaults, and measures a known landslide motion on synthetic L1B scenes with RPCs."""
import glob
import json
import os
import sys

import numpy as np
import pytest
import rasterio
from conftest import REPO

import l1b_synthetic as synthetic
import test_model

sys.path.insert(0, os.path.join(REPO, "tools"))

MODEL_ID = "surfacemotion:planetscopel1bvelocity"
MODEL_FILE = os.path.join(REPO, "models", "planetscope_l1b_velocity.model3")
STEPS = ["surfacemotion:extractband", "surfacemotion:orthorectify", "surfacemotion:buildpairs",
         "surfacemotion:correlatepairs", "surfacemotion:polyfit", "surfacemotion:velocity"]
#: The landslide: a disk of this radius (m) around this point (m east/north of the scene's aim point)
#: moves rigidly by SLIDE (m east, m north) between the two acquisitions, DT_DAYS apart.
SLIDE_CENTRE, SLIDE_RADIUS, SLIDE = (-250.0, 150.0), 380.0, (7.5, -4.5)
DATES = ("20200301_101010_1001", "20210301_101010_1001")
DT_DAYS = 365.0


def registered_model(provider):
    return test_model.registered_model(provider, MODEL_ID)


def file_model():
    return test_model.file_model(MODEL_FILE)


def slide_centre_utm():
    lon, lat, _ = synthetic.scene_aim()
    x, y = synthetic.lonlat_to_utm(np.array([lon]), np.array([lat]))
    return float(x[0]) + SLIDE_CENTRE[0], float(y[0]) + SLIDE_CENTRE[1]


def moved_texture(x, y):
    """The texture after the slide: inside the disk the ground shows what was SLIDE metres up-slope."""
    cx, cy = slide_centre_utm()
    inside = np.hypot(np.asarray(x) - cx, np.asarray(y) - cy) < SLIDE_RADIUS
    return synthetic.texture_at(np.where(inside, x - SLIDE[0], x), np.where(inside, y - SLIDE[1], y))


def slide_polygon_lonlat(radius: float, points: int = 48):
    cx, cy = slide_centre_utm()
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    lon, lat = synthetic.utm_to_lonlat(cx + radius * np.cos(angles), cy + radius * np.sin(angles))
    ring = [[float(a), float(b)] for a, b in zip(lon, lat)]
    return ring + ring[:1]


@pytest.fixture(scope="module")
def l1b_job(tmp_path_factory):
    """Two 4-band L1B scenes a year apart seen from opposite directions (±4° roll; the second with the
    landslide moved: only a right DEM and datum bring them together), their DEM declared EGM96, the moving-area polygon (a margin around the disk) and the AOI."""
    folder = str(tmp_path_factory.mktemp("l1b_model"))
    scenes = [synthetic.make_scene(folder, 1, name=f"{DATES[0]}_1B_AnalyticMS", bands=4).path,
              synthetic.make_scene(folder, -1, name=f"{DATES[1]}_1B_AnalyticMS", bands=4,
                                   texture=moved_texture).path]
    dem = synthetic.write_dem(os.path.join(folder, "dem_egm96.tif"), datum="egm96")
    moving = os.path.join(folder, "moving.geojson")
    with open(moving, "w") as handle:
        json.dump({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {
            "type": "Polygon", "coordinates": [slide_polygon_lonlat(SLIDE_RADIUS + 60.0)]}}]}, handle)
    aoi = os.path.join(folder, "aoi.geojson")
    with open(aoi, "w") as handle:
        json.dump({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {
            "type": "Polygon", "coordinates": [[list(p) for p in synthetic.aoi_lonlat()] +
                                               [list(synthetic.aoi_lonlat()[0])]]}}]}, handle)
    return {"folder": folder, "scenes": scenes, "dem": dem, "moving": moving, "aoi": aoi}


def test_the_l1b_model_validates_in_the_designer_and_in_the_toolbox(provider):
    test_model.assert_validates([file_model(), registered_model(provider),
                                 registered_model(provider).createInstance()], STEPS)


def test_inputs_in_workflow_order_and_one_dem_for_ortho_and_ramp(provider):
    import make_model

    expected = ["SCENES", "USE_UDM2", "BAND", "DEM", "VERTICAL_DATUM", "AOI", "RESOLUTION", "DT_MIN", "CHIP_SIZE",
                "SEARCH_RANGE", "STEP", "MOVING_AREA", "ORDER"]
    assert make_model.L1B_INPUT_ORDER == expected
    for model in (file_model(), registered_model(provider).createInstance()):
        assert [d.name() for d in model.parameterDefinitions() if not d.isDestination()] == expected
        assert [p.parameterName() for p in model.orderedParameters()] == expected
    model = file_model()
    for child_id in ("ortho", "polyfit"):
        (source,) = model.childAlgorithm(child_id).parameterSources()["DEM"]
        assert source.parameterName() == "DEM"
    assert model.parameterDefinition("ORDER").defaultValue() == 1  # order 2 + DEM, the tutorial's default
    assert not model.parameterDefinition("DEM").flags() & model.parameterDefinition("DEM").FlagOptional


def test_unconnected_step_settings_are_the_algorithms_defaults_and_ranges_fit(provider):
    from qgis.core import QgsApplication, QgsProcessingModelChildParameterSource, QgsProcessingParameterNumber

    fixed = {("extract", "KEEP_SNOW"): True, ("pairs", "MODE"): 0, ("velocity", "MEDIAN_SHIFT"): True}
    model = file_model()
    statics = numbers = 0
    for child_id, child in model.childAlgorithms().items():
        algorithm = QgsApplication.processingRegistry().algorithmById(child.algorithmId())
        for name, sources in child.parameterSources().items():
            (source,) = sources
            step = algorithm.parameterDefinition(name)
            if source.source() == QgsProcessingModelChildParameterSource.StaticValue:
                assert source.staticValue() == fixed.get((child_id, name), step.defaultValue()), (child_id, name)
                statics += 1
            elif source.source() == QgsProcessingModelChildParameterSource.ModelParameter:
                model_input = model.parameterDefinition(source.parameterName())
                if isinstance(model_input, QgsProcessingParameterNumber):
                    assert step.minimum() <= model_input.minimum() and model_input.maximum() <= step.maximum()
                    assert model_input.defaultValue() == step.defaultValue() or name in ("DT_MIN", "BAND")
                    numbers += 1
    ortho = model.childAlgorithm("ortho").parameterSources()
    assert ortho["ERROR_THRESHOLD"][0].staticValue() == 0.0  # exact warping
    assert statics >= 25 and numbers == 6  # BAND, RESOLUTION, DT_MIN, CHIP_SIZE, SEARCH_RANGE, STEP


def test_the_l1b_model_has_a_title_help_and_group(provider):
    model = registered_model(provider)
    assert model.displayName() == "PlanetScope L1B velocity chain (model)"
    assert model.groupId() == "offsettracking"
    description = model.helpContent()["ALG_DESC"]
    assert "ellipsoidal" in description and "<" not in description and ">" not in description
    assert all(model.helpContent().get(name) for name in ("SCENES", "DEM", "VERTICAL_DATUM", "AOI"))


def test_the_l1b_model_measures_a_known_landslide_on_synthetic_l1b_scenes(run_algorithm, l1b_job, tmp_path):
    """Raw scenes → orthos on the EGM96 DEM → 1 pair → velocity: the slide's speed and direction within
    3 %, stable ground at rest; only the velocity raster loads."""
    results, context, _ = run_algorithm(MODEL_ID, {
        "SCENES": l1b_job["scenes"], "DEM": l1b_job["dem"], "VERTICAL_DATUM": 2,  # EGM96 (VERTICAL_DATUMS order: crs, ellipsoid, egm96, egm2008)
        "AOI": l1b_job["aoi"], "MOVING_AREA": l1b_job["moving"], "SEARCH_RANGE": 6,
        "ortho:ORTHO_FOLDER": str(tmp_path / "ortho"), "velocity:VELOCITY_FOLDER": str(tmp_path / "velocity")})
    assert results["CHILD_INPUTS"]["ortho"]["VERTICAL_DATUM"] == 2
    orthos = sorted(glob.glob(str(tmp_path / "ortho" / "*_ortho.tif")))
    assert [os.path.basename(p) for p in orthos] == [f"{d}_1B_AnalyticMS_b2_ortho.tif" for d in DATES]
    with rasterio.open(orthos[0]) as a, rasterio.open(orthos[1]) as b:
        assert a.transform == b.transform and a.crs == b.crs and a.crs.to_epsg() == 32618
        assert a.res == (3.0, 3.0)
    (velocity,) = glob.glob(str(tmp_path / "velocity" / "*_velocity.tif"))
    with rasterio.open(velocity) as ds:
        speed, azimuth, v_east, v_north = ds.read().astype(np.float64)
        rows, cols = np.mgrid[0:ds.height, 0:ds.width]
        x, y = ds.transform * (cols + 0.5, rows + 0.5)
    cx, cy = slide_centre_utm()
    distance = np.hypot(x - cx, y - cy)
    core_cells = (distance < SLIDE_RADIUS - 80) & np.isfinite(speed)
    stable = (distance > SLIDE_RADIUS + 150) & np.isfinite(speed)
    years = DT_DAYS / 365.25
    print(f"\nL1B model on the slide: v_east {np.median(v_east[core_cells]):.3f} (truth {SLIDE[0] / years:.3f}), "
          f"v_north {np.median(v_north[core_cells]):.3f} (truth {SLIDE[1] / years:.3f}) m/yr, azimuth "
          f"{np.median(azimuth[core_cells]):.2f}°; stable ground median |v| "
          f"{np.median(speed[stable]):.3f} m/yr, p90 {np.percentile(speed[stable], 90):.3f} m/yr "
          f"({core_cells.sum()} slide cells, {stable.sum()} stable cells)")
    assert core_cells.sum() > 100 and stable.sum() > 1000
    assert np.median(v_east[core_cells]) == pytest.approx(SLIDE[0] / years, rel=0.03)
    assert np.median(v_north[core_cells]) == pytest.approx(SLIDE[1] / years, rel=0.03)
    assert np.median(speed[core_cells]) == pytest.approx(np.hypot(*SLIDE) / years, rel=0.03)
    expected_azimuth = np.degrees(np.arctan2(SLIDE[0], SLIDE[1])) % 360
    assert np.median(azimuth[core_cells]) == pytest.approx(expected_azimuth, abs=2.0)
    assert abs(np.median(v_east[stable])) < 0.1 and abs(np.median(v_north[stable])) < 0.1
    assert np.percentile(speed[stable], 90) < 0.6
    loaded = context.layersToLoadOnCompletion()
    folders = sorted(os.path.basename(os.path.dirname(path)) for path in loaded)
    assert folders == ["ortho", "ortho", "velocity"]  # the orthos were given a destination


def test_the_l1b_model_and_the_dem_alignment_run_with_qgis_process(qgis_process_env, l1b_job, tmp_path):
    """qgis_process.bin --json run of the model (scenes and DEM only, the rest defaults but the search
    range) and of aligndemtopair on the same pair with a DEM displaced 10 m west."""
    import subprocess

    def run(algorithm, parameters):
        arguments = ["qgis_process.bin", "--json", "run", algorithm, "--"]
        for key, value in parameters.items():
            arguments += [f"{key}={item}" for item in (value if isinstance(value, list) else [value])]
        done = subprocess.run(arguments, env=qgis_process_env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return json.loads(done.stdout)["results"]

    results = run(MODEL_ID, {"SCENES": l1b_job["scenes"], "DEM": l1b_job["dem"], "VERTICAL_DATUM": 2,
                             "AOI": l1b_job["aoi"], "MOVING_AREA": l1b_job["moving"], "SEARCH_RANGE": 6,
                             "velocity:VELOCITY_FOLDER": str(tmp_path / "velocity")})
    (velocity,) = glob.glob(str(tmp_path / "velocity" / "*_velocity.tif"))
    assert results["velocity:VELOCITY_FOLDER"] == str(tmp_path / "velocity")
    with rasterio.open(velocity) as ds:
        assert ds.descriptions[0].startswith("speed") and np.nanmax(ds.read(1)) > 5.0
    displaced = synthetic.write_dem(str(tmp_path / "dem_west.tif"), shift_east=-10.0)
    aligned = run("surfacemotion:aligndemtopair", {
        "DEM": displaced, "VERTICAL_DATUM": 1, "REFERENCE_SCENE": synthetic.make_scene(str(tmp_path), 1).path,
        "SECONDARY_SCENE": synthetic.make_scene(str(tmp_path), -1).path, "AOI": l1b_job["aoi"], "STEP": 16,
        "OUTPUT": str(tmp_path / "aligned.tif"), "REPORT": str(tmp_path / "report.csv")})
    assert aligned["SHIFT_X"] == pytest.approx(10.0, abs=0.15) and abs(aligned["SHIFT_Y"]) < 0.15
    assert aligned["CONVERGED"] and os.path.isfile(str(tmp_path / "aligned.tif"))
