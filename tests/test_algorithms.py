"""Every algorithm run in-process through the Processing framework (real QGIS 3.22, pytest-qgis)."""
import csv
import glob
import json
import os

import numpy as np
import pytest
import rasterio
from affine import Affine

from conftest import SAMPLE_DIR

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
    from qgis.core import QgsProcessingUtils

    layer = QgsProcessingUtils.mapLayerFromString(results["OUTPUT"], context)
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
