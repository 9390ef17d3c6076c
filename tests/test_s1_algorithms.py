"""Sentinel-1 algorithms from Processing: in-process, in a model and through qgis_process.bin."""
import datetime as dt
import glob
import json
import os
import subprocess

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from core.dates import decimal_year
from core.sentinel1.speckle import quegan_filter
from core.sentinel1.timescan import timescan_block
from core.sentinel1.units import db_to_power, power_to_db

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAFE = os.path.join(REPO, "tests", "data", "s1",
                    "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
DEM = os.path.join(REPO, "tests", "data", "s1", "Rome-30m-DEM.tif")
WHEN = [dt.datetime(2022, 1, 2, 5, 30) + dt.timedelta(days=24 * i) for i in range(8)]


def write_ard(folder, shape=(20, 24), seed=0):
    """Linear-power ARD of two polarisations (0 = nodata) and a layover/shadow mask."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for pol, level in (("VV", 0.1), ("VH", 0.02)):
        stack = (level * rng.gamma(4, 0.25, (len(WHEN),) + shape)).astype(np.float32)
        for when, image in zip(WHEN, stack):
            with rasterio.open(os.path.join(folder, f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_gamma0_{pol}.tif"), "w",
                               driver="GTiff", width=shape[1], height=shape[0], count=1, dtype="float32",
                               crs="EPSG:32633", transform=from_origin(400000, 5000000, 20, 20), nodata=0.0) as ds:
                ds.write(image, 1)
        truth[pol] = stack
    mask = np.zeros(shape, np.uint8)
    mask[:2] = 1
    with rasterio.open(os.path.join(folder, "S1A_20220102_lsmask.tif"), "w", driver="GTiff", width=shape[1],
                       height=shape[0], count=1, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(400000, 5000000, 20, 20)) as ds:
        ds.write(mask, 1)
    return truth


def styled_min_max(path):
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(path, "check", "gdal")  # picks up the sidecar .qml as its default style
    assert layer.isValid()
    renderer = layer.renderer()
    return renderer.type(), renderer.classificationMin(), renderer.classificationMax()


def fitted_range(path, band=1):
    """The colour range the writer fits into the sidecar style: the band's 2nd-98th percentile."""
    with rasterio.open(path) as ds:
        values = ds.read(band).astype("float64")
    low, high = np.percentile(values[np.isfinite(values) & (values != ds.nodata)], [2, 98])
    return pytest.approx(low, rel=1e-6), pytest.approx(high, rel=1e-6)


def test_timeseries_speckle_timescan_chain(run_algorithm, tmp_path):
    truth = write_ard(str(tmp_path / "ard"))
    series, context, _ = run_algorithm("surfacemotion:s1timeseries", {
        "FOLDER": str(tmp_path / "ard"), "UNIT": 1, "OUTPUT_FOLDER": str(tmp_path / "ts")})
    assert os.path.basename(series["VV_VRT"]) == "Timeseries.VV.vrt" and series["HH_VRT"] is None
    assert len(series["OUTPUT_LAYERS"]) == 16 and sorted(map(os.path.basename, series["OUTPUT_VRTS"])) == [
        "Timeseries.VH.vrt", "Timeseries.VV.vrt"]
    assert series["VV_VRT"] in context.layersToLoadOnCompletion()
    assert styled_min_max(series["OUTPUT_LAYERS"][0]) == ("singlebandpseudocolor",
                                                          *fitted_range(series["OUTPUT_LAYERS"][0]))
    with rasterio.open(series["VV_VRT"]) as vrt:
        stack = vrt.read()
        assert vrt.descriptions[0] == "2022-01-02T05:30:00"
    expected = 10 * np.log10(truth["VV"])
    expected[:, :2] = np.nan  # layover rows
    np.testing.assert_allclose(stack, expected, atol=1e-5, equal_nan=True)

    speckle, _, _ = run_algorithm("surfacemotion:s1mtspeckle", {
        "INPUT": [series["VV_VRT"]], "UNIT": 0, "WINDOW": 3, "OUTPUT_FOLDER": str(tmp_path / "spk")})
    power = np.where(np.isfinite(expected), truth["VV"], np.nan)
    filtered = quegan_filter(power, 3)
    with rasterio.open(speckle["OUTPUT_VRT"]) as vrt:
        np.testing.assert_allclose(vrt.read(), 10 * np.log10(filtered), atol=2e-4, equal_nan=True)

    scan, context, _ = run_algorithm("surfacemotion:s1timescan", {
        "INPUT": [speckle["OUTPUT_VRT"]], "UNIT": 0, "PERCENTILES": "10, 90",
        "OUTPUT_FOLDER": str(tmp_path / "scan")})
    names = [os.path.basename(p) for p in scan["OUTPUT_LAYERS"]]
    assert names[:2] == ["01.VV.avg.tif", "02.VV.max.tif"] and "08.VV.p90.tif" in names
    assert "15.VV.model_mean.tif" == names[-1]
    years = np.array([decimal_year(w) for w in WHEN])
    stored_db = power_to_db(filtered)  # what s1mtspeckle wrote and s1timescan reads
    reference = timescan_block(db_to_power(stored_db), years,
                               ("avg", "max", "min", "median", "std", "cov", "percentiles", "pdiff", "count",
                                "harmonics"), (10.0, 90.0), db_values=stored_db)
    with rasterio.open(scan["OUTPUT_VRT"]) as vrt:
        assert vrt.count == 15 and vrt.descriptions[0] == "avg"
        for band, name in enumerate(vrt.descriptions, start=1):
            np.testing.assert_allclose(vrt.read(band), reference[name], rtol=1e-4, atol=1e-4, equal_nan=True,
                                       err_msg=name)
    amplitude = scan["OUTPUT_LAYERS"][names.index("11.VV.amplitude.tif")]
    assert styled_min_max(amplitude)[1:] == fitted_range(amplitude)
    assert len(context.layersToLoadOnCompletion()) == 15


def test_timescan_refuses_bad_stacks_and_writes_nothing(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    write_ard(str(tmp_path / "ard"))
    files = sorted(glob.glob(str(tmp_path / "ard" / "*_V?.tif")))
    cases = [
        ({"INPUT": files[:1]}, "at least 2 dates"),
        ({"FOLDER": str(tmp_path / "ard")}, "mixes polarisations"),
        ({"INPUT": files[:4], "PERCENTILES": "5, x"}, "Percentiles must be numbers"),
    ]
    for index, (parameters, fragment) in enumerate(cases):
        out = tmp_path / f"out{index}"
        with pytest.raises(QgsProcessingException) as raised:
            run_algorithm("surfacemotion:s1timescan", dict(parameters, UNIT=1, OUTPUT_FOLDER=str(out)))
        assert fragment in str(raised.value)
        assert not out.exists() or os.listdir(out) == []


def test_timeseries_and_timescan_in_a_model(provider, tmp_path):
    import processing
    from qgis.core import (QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm,
                           QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource,
                           QgsProcessingModelOutput, QgsProcessingModelParameter, QgsProcessingParameterFile,
                           QgsProject)

    truth = write_ard(str(tmp_path / "ard"))
    model = QgsProcessingModelAlgorithm("s1 chain", "test")
    model.addModelParameter(QgsProcessingParameterFile("ard", "ARD folder", behavior=QgsProcessingParameterFile.Folder),
                            QgsProcessingModelParameter("ard"))
    series = QgsProcessingModelChildAlgorithm("surfacemotion:s1timeseries")
    series.setChildId("series")
    series.addParameterSources("FOLDER", [QgsProcessingModelChildParameterSource.fromModelParameter("ard")])
    series.addParameterSources("UNIT", [QgsProcessingModelChildParameterSource.fromStaticValue(1)])
    series.addParameterSources("OUTPUT_FOLDER", [QgsProcessingModelChildParameterSource.fromStaticValue(
        str(tmp_path / "ts"))])
    model.addChildAlgorithm(series)
    scan = QgsProcessingModelChildAlgorithm("surfacemotion:s1timescan")
    scan.setChildId("scan")
    scan.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("series", "VH_VRT")])
    scan.addParameterSources("METRICS", [QgsProcessingModelChildParameterSource.fromStaticValue([0, 8])])
    scan.addParameterSources("REMOVE_OUTLIERS", [QgsProcessingModelChildParameterSource.fromStaticValue(False)])
    scan.addParameterSources("OUTPUT_FOLDER", [QgsProcessingModelChildParameterSource.fromStaticValue(
        str(tmp_path / "scan"))])
    output = QgsProcessingModelOutput("timescan", "Timescan")
    output.setChildOutputName("OUTPUT_VRT")
    scan.setModelOutputs({"timescan": output})
    model.addChildAlgorithm(scan)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results = processing.run(model, {"ard": str(tmp_path / "ard")}, context=context,
                             feedback=QgsProcessingFeedback())
    vrt = results["scan:timescan"]
    with rasterio.open(vrt) as ds:
        assert list(ds.descriptions) == ["avg", "count"]
        expected = 10 * np.log10(truth["VH"][:, 2:].mean(axis=0))
        np.testing.assert_allclose(ds.read(1)[2:], expected, atol=1e-4)
        assert np.isnan(ds.read(1)[:2]).all() and (ds.read(2)[2:] == 8).all()


def test_s1_algorithms_from_qgis_process(qgis_process_env, tmp_path):
    write_ard(str(tmp_path / "ard"))

    def run(algorithm_id, parameters):
        arguments = ["qgis_process.bin", "--json", "run", algorithm_id, "--"]
        for key, value in parameters.items():
            for item in value if isinstance(value, list) else [value]:
                arguments.append(f"{key}={item}")
        done = subprocess.run(arguments, env=qgis_process_env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return json.loads(done.stdout)["results"]

    listing = subprocess.run(["qgis_process.bin", "list"], env=qgis_process_env, capture_output=True, text=True,
                             timeout=600).stdout
    for algorithm_id in ("s1grdtoard", "s1timeseries", "s1mtspeckle", "s1timescan", "s1animation", "s1mosaic"):
        assert f"surfacemotion:{algorithm_id}\t" in listing
    series = run("surfacemotion:s1timeseries", {"FOLDER": str(tmp_path / "ard"), "UNIT": 1, "OUTPUT_TYPE": 2,
                                                "OUTPUT_FOLDER": str(tmp_path / "ts")})
    speckle = run("surfacemotion:s1mtspeckle", {"INPUT": series["VV_VRT"], "OUTPUT_FOLDER": str(tmp_path / "spk")})
    scan = run("surfacemotion:s1timescan", {"INPUT": speckle["OUTPUT_VRT"], "METRICS": [0, 3],
                                            "OUTPUT_TYPE": 1, "OUTPUT_FOLDER": str(tmp_path / "scan")})
    with rasterio.open(scan["OUTPUT_LAYERS"][0]) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
        avg = ds.read(1).astype(float) * ds.scales[0] + ds.offsets[0]
    assert np.nanmean(avg[2:]) == pytest.approx(-10.0, abs=0.5)  # VV level 0.1 = −10 dB
    ard = run("surfacemotion:s1grdtoard", {"SAFE_FOLDER": SAFE, "DEM": DEM, "PRODUCT_TYPE": 1, "LS_MASK": "false",
                                           "AOI": "12.47,12.49,41.97,41.99 [EPSG:4326]",
                                           "OUTPUT_FOLDER": str(tmp_path / "ard_out")})
    assert ard["LS_MASK_LAYER"] is None or ard["LS_MASK_LAYER"] == ""
    with rasterio.open(ard["OUTPUT_LAYERS"][0]) as ds:
        gamma0 = ds.read(1)
    assert ds.shape == (72, 72) and np.isfinite(gamma0).all()
    # GTC γ⁰ = β⁰·tan θ with β⁰ = 150² / 473.9733² and θ ≈ 44° at Rome (see tests/test_s1_ard.py)
    assert np.median(gamma0) == pytest.approx(150 ** 2 / 473.9733 ** 2 * np.tan(np.deg2rad(44.0)), rel=0.02)


def test_animation_and_mosaic_from_processing(run_algorithm, tmp_path):
    from PIL import Image

    write_ard(str(tmp_path / "ard"))
    series, _, _ = run_algorithm("surfacemotion:s1timeseries", {
        "FOLDER": str(tmp_path / "ard"), "UNIT": 1, "OUTPUT_FOLDER": str(tmp_path / "ts")})
    gif = str(tmp_path / "anim.gif")
    result, _, _ = run_algorithm("surfacemotion:s1animation", {
        "INPUT": [series["VV_VRT"]], "CROSS": [series["VH_VRT"]], "MAX_SIZE": 16, "OUTPUT": gif})
    with Image.open(result["OUTPUT"]) as image:
        assert image.n_frames == len(WHEN) and image.size == (16, 13)

    # a second "track" starting 10 columns east, seeing the same ground with a +1.5 dB bias
    shifted = tmp_path / "track2"
    shifted.mkdir()
    with rasterio.open(series["VV_VRT"]) as vrt:
        stack, transform, crs = vrt.read(), vrt.transform, vrt.crs
    for when, image in zip(WHEN, stack):
        with rasterio.open(str(shifted / f"{when:%Y%m%dT%H%M%S}_VV.tif"), "w", driver="GTiff", width=24, height=20,
                           count=1, dtype="float32", crs=crs, nodata=float("nan"),
                           transform=transform * transform.translation(10, 0)) as ds:
            ds.write(np.concatenate([image[:, 10:], image[:, :10]], axis=1) + 1.5, 1)  # same ground + 1.5 dB
    scans = []
    for index, source in enumerate((series["VV_VRT"], str(shifted))):
        parameters = {"UNIT": 0, "METRICS": [0, 8], "REMOVE_OUTLIERS": False,
                      "OUTPUT_FOLDER": str(tmp_path / f"scan{index}")}
        parameters.update({"INPUT": [source]} if index == 0 else {"FOLDER": source})
        scans.append(run_algorithm("surfacemotion:s1timescan", parameters)[0]["OUTPUT_VRT"])
    mosaic, context, _ = run_algorithm("surfacemotion:s1mosaic", {
        "INPUT": scans, "FEATHER": 3, "OUTPUT_FOLDER": str(tmp_path / "mosaic")})
    with rasterio.open(mosaic["OUTPUT_VRT"]) as vrt:
        assert list(vrt.descriptions) == ["avg", "count"] and vrt.shape == (20, 34)
        avg = vrt.read(1)
    with rasterio.open(scans[0]) as first:
        reference = first.read(1)
    # harmonised: both tracks move by 0.75 dB towards each other, so track 1 reads +0.75 dB
    np.testing.assert_allclose(avg[2:, :24], reference[2:] + 0.75, atol=1e-3)
    assert styled_min_max(mosaic["OUTPUT_LAYERS"][0]) == ("singlebandpseudocolor",
                                                          *fitted_range(mosaic["OUTPUT_LAYERS"][0]))


def test_grdtoard_rtc_from_processing_loads_styled_layers(run_algorithm, tmp_path):
    result, context, feedback = run_algorithm("surfacemotion:s1grdtoard", {
        "INPUT": os.path.join(SAFE, "manifest.safe"), "DEM": DEM, "POLARISATIONS": [0],
        "AOI": "12.47,12.50,41.97,42.00 [EPSG:4326]", "OUTPUT_FOLDER": str(tmp_path / "ard")})
    assert [os.path.basename(p) for p in result["OUTPUT_LAYERS"]] == [
        "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371_RTCgamma0_VV.tif"]
    assert set(context.layersToLoadOnCompletion()) == {result["OUTPUT_LAYERS"][0], result["LS_MASK_LAYER"]}
    assert styled_min_max(result["OUTPUT_LAYERS"][0]) == ("singlebandpseudocolor",
                                                          *fitted_range(result["OUTPUT_LAYERS"][0]))
    with rasterio.open(result["OUTPUT_LAYERS"][0]) as ds:
        gamma0 = ds.read(1)
    # RTC γ⁰ of a constant β⁰ = 0.1002 over gentle terrain: around β⁰·tan θ (θ ≈ 44°), varying with slopes
    valid = np.isfinite(gamma0)
    assert valid.mean() > 0.95
    assert np.median(gamma0[valid]) == pytest.approx(150 ** 2 / 473.9733 ** 2 * np.tan(np.deg2rad(44.0)), rel=0.15)


S1_ALGORITHMS = ("s1timeseries", "s1mtspeckle", "s1timescan", "s1animation", "s1mosaic", "s1grdtoard")


def test_every_numeric_parameter_declares_its_range(provider):
    from qgis.core import QgsProcessingParameterNumber

    ranges = {}
    for name in S1_ALGORITHMS:
        algorithm = provider.algorithm(name)
        for definition in algorithm.parameterDefinitions():
            if isinstance(definition, QgsProcessingParameterNumber):
                ranges[f"{name}:{definition.name()}"] = (definition.minimum(), definition.maximum())
    assert ranges == {
        "s1mtspeckle:WINDOW": (1, 51), "s1timescan:OUTLIER_K": (1.0, 20.0), "s1animation:MAX_SIZE": (16, 8000),
        "s1animation:FRAME_MS": (20, 60000), "s1mosaic:FEATHER": (0.0, 10000.0), "s1mosaic:DATE_WINDOW": (0.0, 366.0),
        "s1mosaic:RESOLUTION": (0.0, 100000.0), "s1grdtoard:RESOLUTION": (0.0, 100000.0)}
    assert provider.algorithm("s1timescan").parameterDefinition("OUTLIER_K").defaultValue() == 6.0
