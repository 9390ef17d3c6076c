"""Every algorithm run in-process through the Processing framework (real QGIS 3.22, pytest-qgis)."""
import csv
import glob
import json
import os
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine

from conftest import REPO, SAMPLE_DIR

sys.path.insert(0, os.path.join(REPO, "tools"))
import make_sample  # noqa: E402  (the sample's own truth model)

EXPECTED_IDS = {"surfacemotion:extractband", "surfacemotion:buildpairs", "surfacemotion:correlatepair",
                "surfacemotion:correlatepairs", "surfacemotion:polyfit", "surfacemotion:velocity",
                "surfacemotion:planetscopel3bvelocity"}


@pytest.fixture(scope="module")
def green_bands(tmp_path_factory, provider):
    """Band 2 of every sample scene (UDM2-masked), extracted once for the module."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    scenes = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))
    folder = str(tmp_path_factory.mktemp("bands"))
    results = processing.run("surfacemotion:extractband",
                             {"INPUT": scenes, "BAND": 2, "USE_UDM2": True, "OUTPUT_FOLDER": folder},
                             context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    return sorted(results["OUTPUT_LAYERS"])


def test_provider_lists_every_algorithm_and_the_model(provider):
    ids = {algorithm.id() for algorithm in provider.algorithms()}
    assert EXPECTED_IDS <= ids
    for algorithm in provider.algorithms():
        assert algorithm.name() == algorithm.name().lower()
        assert algorithm.displayName()
        if algorithm.id() != "surfacemotion:planetscopel3bvelocity":
            assert len(algorithm.shortHelpString()) > 200
    assert provider.id() == "surfacemotion"
    assert provider.name() == "Surface Motion Toolbox"


def test_extractband_keeps_values_georeferencing_and_applies_udm2(green_bands):
    scenes = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))
    assert [os.path.basename(p) for p in green_bands] == [
        os.path.basename(s).replace(".tif", "_b2.tif") for s in scenes]
    for scene, band_path in zip(scenes, green_bands):
        udm2 = scene.replace("_AnalyticMS_SR_clip.tif", "_udm2_clip.tif")
        with rasterio.open(scene) as src, rasterio.open(band_path) as out, rasterio.open(udm2) as mask:
            assert out.count == 1 and out.dtypes[0] == "uint16"
            assert out.crs == src.crs and out.transform == src.transform
            assert out.nodata == 0
            usable = (mask.read(1) == 1) | (mask.read(2) == 1)
            expected = np.where(usable, src.read(2), 0)
            np.testing.assert_array_equal(out.read(1), expected)


def test_buildpairs_table_layer_and_csv(run_algorithm, green_bands, tmp_path):
    csv_path = str(tmp_path / "pairs.csv")
    results, context, _ = run_algorithm("surfacemotion:buildpairs", {
        "INPUTS": green_bands, "MODE": 0, "DT_MIN": 150, "OUTPUT": "memory:", "OUTPUT_CSV": csv_path})
    layer = results["OUTPUT"]  # processing.run hands back the layer object
    rows = list(csv.DictReader(open(csv_path)))
    n = len(green_bands)
    assert results["N_PAIRS"] == len(rows) == layer.featureCount()
    assert len(rows) <= n * (n - 1) // 2
    assert list(rows[0].keys()) == ["ref", "sec", "ref_id", "sec_id", "ref_date", "sec_date", "dt_days"]
    for row, feature in zip(rows, layer.getFeatures()):
        assert float(row["dt_days"]) >= 150
        assert row["ref_date"] < row["sec_date"]
        assert feature["ref_id"] == row["ref_id"]
        assert feature["dt_days"] == pytest.approx(float(row["dt_days"]), abs=1e-6)
    # reference mode: the oldest scene against all others
    results, _, _ = run_algorithm("surfacemotion:buildpairs", {
        "INPUTS": green_bands, "MODE": 1, "DT_MIN": 0, "OUTPUT": "memory:",
        "OUTPUT_CSV": str(tmp_path / "ref.csv")})
    rows = list(csv.DictReader(open(tmp_path / "ref.csv")))
    assert results["N_PAIRS"] == n - 1 and {r["ref"] for r in rows} == {green_bands[0]}


# ---------------------------------------------------------------- helpers for synthetic rasters

def write_raster(path, arrays, transform=Affine(3, 0, 441730, 0, -3, 4177460), crs="EPSG:32618",
                 descriptions=None, tags=None, nodata=None, dtype="float32"):
    arrays = np.atleast_3d(np.asarray(arrays, dtype=dtype).T).T if np.ndim(arrays) == 2 else np.asarray(arrays, dtype)
    with rasterio.open(path, "w", driver="GTiff", width=arrays.shape[2], height=arrays.shape[1],
                       count=arrays.shape[0], dtype=dtype, crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(arrays)
        for index, text in enumerate(descriptions or [], start=1):
            ds.set_band_description(index, text)
        if tags:
            ds.update_tags(**tags)
    return str(path)


def synthetic_disparity(path, dx, dy, step=1, tags=None, transform=Affine(3, 0, 441730, 0, -3, 4177460)):
    from surface_motion.core.offsets.disparity import BASE_DESCRIPTIONS, disparity_tags

    valid = np.isfinite(dx) & np.isfinite(dy)
    peak = np.where(valid, 0.9, np.nan)
    return write_raster(path, [dx, dy, valid.astype("float32"), peak], transform=transform,
                        descriptions=BASE_DESCRIPTIONS, tags={**disparity_tags(step), **(tags or {})},
                        nodata=float("nan"))


def folder_listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# ---------------------------------------------------------------- correlation

def test_correlatepair_measures_the_sample_landslide(run_algorithm, green_bands, tmp_path):
    truth = json.load(open(os.path.join(SAMPLE_DIR, "truth.json")))
    output = str(tmp_path / "pair.tif")
    results, context, _ = run_algorithm("surfacemotion:correlatepair", {
        "REFERENCE": green_bands[0], "SECONDARY": green_bands[-1], "CHIP_SIZE": 32, "SEARCH_RANGE": 10,
        "STEP": 8, "OUTPUT": output})
    assert results["OUTPUT"] == output
    with rasterio.open(output) as ds, rasterio.open(green_bands[0]) as ref:
        dx, dy, valid = ds.read(1), ds.read(2), ds.read(3)
        assert ds.crs == ref.crs
        # chip centres: first chip covers columns 0..31, centre at pixel 16 -> cell origin at 16 - 8/2 = 12 px
        assert ds.transform == ref.transform * Affine.translation(12, 12) * Affine.scale(8)
        assert ds.tags()["SM_REF_ID"] == "20200715_151233_62_2414"
        assert float(ds.tags()["SM_DT_DAYS"]) == pytest.approx(731.0, abs=0.01)
        rows, cols = np.mgrid[0:ds.height, 0:ds.width]
        centre_cols, centre_rows = 16 + 8 * cols, 16 + 8 * rows
    landslide = truth["landslide"]
    core = ((centre_cols - landslide["centre_col_px"]) / landslide["semi_axis_col_px"]) ** 2 + \
           ((centre_rows - landslide["centre_row_px"]) / landslide["semi_axis_row_px"]) ** 2 < 0.6 ** 2
    expected_dx, expected_dy = make_sample.expected_pair_offsets(truth, 0, len(green_bands) - 1,
                                                                 centre_cols.astype(float), centre_rows.astype(float))
    displacement_px = landslide["speed_m_per_yr"] / 3.0 * (731.0 / 365.25) / np.sqrt(2)
    assert np.nanmedian(dx[core]) == pytest.approx(displacement_px, abs=0.2)  # + right = east
    assert np.nanmedian(dy[core]) == pytest.approx(displacement_px, abs=0.2)  # + down = south
    assert np.nanmedian(np.abs(dx - expected_dx)[core]) < 0.05
    assert np.nanmedian(np.abs(dy - expected_dy)[core]) < 0.05
    assert np.isfinite(dx[core]).mean() > 0.9
    assert set(np.unique(valid)) <= {0.0, 1.0}
    assert np.all(np.isnan(dx[valid == 0]))


def test_correlatepairs_skips_existing_and_survives_a_failing_pair(run_algorithm, green_bands, tmp_path):
    bad = write_raster(tmp_path / "20200101_101010_11_2414_3B_AnalyticMS_SR_clip_b2.tif",
                       np.ones((64, 64)), crs="EPSG:32633")
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text(f"ref,sec\n{green_bands[0]},{green_bands[1]}\n{bad},{green_bands[1]}\n")
    parameters = {"PAIRS": str(csv_path), "CHIP_SIZE": 32, "SEARCH_RANGE": 6, "STEP": 16,
                  "OUTPUT_FOLDER": str(tmp_path / "out")}
    results, _, feedback = run_algorithm("surfacemotion:correlatepairs", parameters)
    assert results["N_FAILED"] == 1
    assert [os.path.basename(p) for p in results["OUTPUT_LAYERS"]] == [
        "20200715_151233_62_2414_20210112_150921_07_2455_disp.tif"]
    assert folder_listing(tmp_path / "out") == ["20200715_151233_62_2414_20210112_150921_07_2455_disp.qml",
                                                "20200715_151233_62_2414_20210112_150921_07_2455_disp.tif"]
    first_mtime = os.path.getmtime(results["OUTPUT_LAYERS"][0])
    again, _, _ = run_algorithm("surfacemotion:correlatepairs", parameters)
    assert os.path.getmtime(again["OUTPUT_LAYERS"][0]) == first_mtime  # skipped, not recomputed
    overwritten, _, _ = run_algorithm("surfacemotion:correlatepairs", {**parameters, "OVERWRITE": True})
    assert os.path.getmtime(overwritten["OUTPUT_LAYERS"][0]) >= first_mtime


# ---------------------------------------------------------------- de-ramping and velocity

def test_polyfit_removes_an_injected_ramp_outside_the_moving_area(run_algorithm, tmp_path):
    rows, cols = np.mgrid[0:80, 0:100].astype(float)
    x, y = cols / 99.0, rows / 79.0
    ramp_dx = 0.4 - 0.3 * x + 0.2 * y + 0.25 * x * y
    ramp_dy = -0.2 + 0.5 * x * x - 0.1 * y
    moving = (np.hypot(cols - 50, rows - 40) < 12)
    rng = np.random.default_rng(1)
    dx = ramp_dx + np.where(moving, 3.0, 0.0) + rng.normal(0, 0.02, x.shape)
    dy = ramp_dy + np.where(moving, -2.0, 0.0) + rng.normal(0, 0.02, x.shape)
    source = synthetic_disparity(tmp_path / "a_disp.tif", dx, dy)
    mask = write_raster(tmp_path / "moving.tif", moving.astype("uint8"), dtype="uint8")
    results, _, _ = run_algorithm("surfacemotion:polyfit", {
        "INPUT": [source], "ORDER": 1, "MASK_RASTER": mask, "OUTPUT_FOLDER": str(tmp_path / "out")})
    [output] = results["OUTPUT_LAYERS"]
    assert os.path.basename(output) == "a_disp_polyfit.tif"
    with rasterio.open(output) as ds:
        out_dx, out_dy = ds.read(1), ds.read(2)
    stable = ~moving
    assert np.sqrt(np.mean(out_dx[stable] ** 2)) < 0.03
    assert np.sqrt(np.mean(out_dy[stable] ** 2)) < 0.03
    assert np.median(out_dx[moving]) == pytest.approx(3.0, abs=0.03)
    assert np.median(out_dy[moving]) == pytest.approx(-2.0, abs=0.03)


@pytest.mark.parametrize("dx, dy, azimuth", [(0.0, -1.0, 0.0), (1.0, 0.0, 90.0), (0.0, 1.0, 180.0),
                                             (-1.0, 0.0, 270.0)])
def test_velocity_scale_and_azimuth(run_algorithm, tmp_path, dx, dy, azimuth):
    shape = (20, 30)
    source = synthetic_disparity(tmp_path / "20200101_101010_11_2414_20210101_101010_11_2414_disp.tif",
                                 np.full(shape, dx), np.full(shape, dy), step=4,
                                 transform=Affine(12, 0, 441730, 0, -12, 4177460))
    results, _, _ = run_algorithm("surfacemotion:velocity", {
        "INPUT": [source], "MEDIAN_SHIFT": False, "OUTPUT_FOLDER": str(tmp_path / "v")})
    [output] = results["OUTPUT_LAYERS"]
    dt_years = 366.0 / 365.25  # 2020 is a leap year: the id timestamps are exactly 366 days apart
    with rasterio.open(output) as ds:
        speed, az, east, north = ds.read()
        assert ds.descriptions[0] == "speed (m/yr)"
    # step 4 on a 12 m grid: reference pixels are 3 m, so 1 px = 3 m
    np.testing.assert_allclose(speed, 3.0 / dt_years, rtol=1e-6)
    np.testing.assert_allclose(az % 360.0, azimuth, atol=1e-4)
    np.testing.assert_allclose(east, 3.0 * dx / dt_years, atol=1e-6)
    np.testing.assert_allclose(north, -3.0 * dy / dt_years, atol=1e-6)


# ---------------------------------------------------------------- bad inputs: clear errors, nothing written

def expect_processing_error(run_algorithm, algorithm_id, parameters, *fragments):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(algorithm_id, parameters)
    for fragment in fragments:
        assert fragment in str(raised.value)
    return str(raised.value)


def textured(shape=(128, 128), seed=0):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.random.default_rng(seed).normal(size=shape), 2) * 1000 + 5000


def test_correlatepair_refuses_bad_inputs_and_writes_nothing(run_algorithm, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    good = write_raster(tmp_path / "good.tif", textured())
    cases = [
        (write_raster(tmp_path / "nocrs.tif", textured(), crs=None), "no coordinate reference system"),
        (write_raster(tmp_path / "utm33.tif", textured(), crs="EPSG:32633"), "EPSG:32633"),
        (write_raster(tmp_path / "coarse.tif", textured(), transform=Affine(6, 0, 441730, 0, -6, 4177460)),
         "pixel size"),
        (write_raster(tmp_path / "multi.tif", np.stack([textured()] * 4)), "has 4 bands"),
    ]
    for secondary, fragment in cases:
        message = expect_processing_error(run_algorithm, "surfacemotion:correlatepair", {
            "REFERENCE": good, "SECONDARY": secondary, "OUTPUT": str(out / "disp.tif")}, fragment)
        assert len(message) > 40
        assert folder_listing(out) == []


def test_unreadable_or_missing_inputs_are_reported(run_algorithm, tmp_path):
    corrupt = tmp_path / "20200715_151233_62_2414_3B_AnalyticMS_SR_clip.tif"
    corrupt.write_bytes(b"II*\x00 this is not a tiff")
    expect_processing_error(run_algorithm, "surfacemotion:extractband", {
        "INPUT": [str(corrupt)], "OUTPUT_FOLDER": str(tmp_path / "out")}, str(corrupt), "not a GDAL/OGR-readable")
    expect_processing_error(run_algorithm, "surfacemotion:polyfit", {
        "INPUT": [str(tmp_path / "missing.tif")], "OUTPUT_FOLDER": str(tmp_path / "out")}, "does not exist")
    assert folder_listing(tmp_path / "out") == []


def test_output_folder_not_writable(run_algorithm, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    scene = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))[0]
    expect_processing_error(run_algorithm, "surfacemotion:extractband", {
        "INPUT": [scene], "OUTPUT_FOLDER": str(blocker / "sub")}, "a_file' is a file, not a folder")


def test_velocity_refuses_zero_time_separation(run_algorithm, tmp_path):
    source = synthetic_disparity(tmp_path / "20200101_101010_11_2414_20200101_101010_11_2455_disp.tif",
                                 np.ones((10, 10)), np.ones((10, 10)))
    expect_processing_error(run_algorithm, "surfacemotion:velocity", {
        "INPUT": [source], "OUTPUT_FOLDER": str(tmp_path / "v")}, "zero time separation")
    expect_processing_error(run_algorithm, "surfacemotion:velocity", {
        "INPUT": [source], "DT_DAYS": 0, "OUTPUT_FOLDER": str(tmp_path / "v")}, "must be between 0.001 and")
    assert folder_listing(tmp_path / "v") == []


def test_buildpairs_names_the_unparseable_file(run_algorithm, tmp_path):
    good = write_raster(tmp_path / "20200715_151233_62_2414_3B_AnalyticMS_SR_clip_b2.tif", textured((16, 16)))
    bad = write_raster(tmp_path / "my_scene_b2.tif", textured((16, 16)))
    expect_processing_error(run_algorithm, "surfacemotion:buildpairs", {
        "INPUTS": [good, bad], "OUTPUT": "memory:", "OUTPUT_CSV": str(tmp_path / "p.csv")}, "my_scene_b2.tif")
    assert not os.path.exists(tmp_path / "p.csv")


def test_cancel_leaves_no_partial_output(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class CancelOnFirstProgress(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.progressChanged.connect(lambda value: self.cancel() if value > 0 else None)

    reference = write_raster(tmp_path / "ref.tif", textured((1600, 1200), seed=3))
    secondary = write_raster(tmp_path / "sec.tif", textured((1600, 1200), seed=3))
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_algorithm("surfacemotion:correlatepair", {
            "REFERENCE": reference, "SECONDARY": secondary, "STEP": 2, "OUTPUT": str(out / "disp.tif")},
            feedback=CancelOnFirstProgress())
    assert folder_listing(out) == []


def test_a_missing_numba_is_reported_with_an_install_hint(provider, monkeypatch):
    import surface_motion.algorithms.correlate as correlate_module
    algorithm = next(a for a in provider.algorithms() if a.id() == "surfacemotion:correlatepair")

    class Feedback:
        def __init__(self):
            self.lines = []

        def pushInfo(self, text):  # noqa: N802 (QGIS API name)
            self.lines.append(text)

    quiet = Feedback()
    monkeypatch.setattr(correlate_module, "numba_available", lambda: True)
    correlate_module.note_missing_numba(algorithm, quiet)
    assert quiet.lines == []
    told = Feedback()
    monkeypatch.setattr(correlate_module, "numba_available", lambda: False)
    correlate_module.note_missing_numba(algorithm, told)
    assert len(told.lines) == 1 and "python3-numba" in told.lines[0] and "pip install numba" in told.lines[0]


def test_provider_settings_unregister_twice_without_error(provider):
    """QGIS aborted on exit when the provider unloaded after Processing had dropped its settings."""
    from processing.core.ProcessingConfig import ProcessingConfig
    from surface_motion.algorithms.settings import SETTINGS
    from surface_motion.processing_provider.settings import register_settings, unregister_settings

    unregister_settings()
    unregister_settings()  # already gone: no KeyError
    assert not any(key in ProcessingConfig.settings for key, *_ in SETTINGS)
    register_settings(provider.name(), provider.icon())
    assert all(key in ProcessingConfig.settings for key, *_ in SETTINGS)
