"""surfacemotion:aoitimeline end to end: AOI in EPSG:4326 (the rasters are in UTM 18N), a polygon and a buffered
point; the table, CSV and PNGs equal a direct numpy computation on the AOI pixels; qgis_process.bin."""
import csv
import json
import os
import subprocess

import pytest

from series_data import BUFFER, aoi_geojson, disc_mask, expected_statistics, rect_mask, velocity_network


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aoitimeline")
    paths, fields = velocity_network(folder)
    polygon, point = aoi_geojson(folder)
    return paths, fields, polygon, point


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def check_rows(rows, fields, mask):
    assert len(rows) == 3
    for index, row in enumerate(rows):
        assert row["pair"] == f"pair{index}_velocity.tif"
        for key, value in expected_statistics(*fields[index], mask).items():
            assert float(row[key]) == pytest.approx(value, rel=1e-9, abs=1e-9), key


@pytest.mark.parametrize("which", ["polygon", "point"])
def test_aoitimeline_numbers_equal_numpy_on_the_aoi_pixels(inputs, run_algorithm, tmp_path, which):
    from qgis.core import QgsVectorLayer

    paths, fields, polygon, point = inputs
    aoi = polygon if which == "polygon" else point
    parameters = {"INPUT": paths, "AOI": aoi, "BUFFER": 0 if which == "polygon" else BUFFER,
                  "OUTPUT": str(tmp_path / "timeline.gpkg"), "OUTPUT_CSV": str(tmp_path / "timeline.csv"),
                  "PLOT_FOLDER": str(tmp_path / "plots")}
    results, _, _ = run_algorithm("surfacemotion:aoitimeline", parameters)
    assert results["N_ROWS"] == 3
    check_rows(read_csv(results["OUTPUT_CSV"]), fields, rect_mask() if which == "polygon" else disc_mask())
    layer = QgsVectorLayer(results["OUTPUT"], "t", "ogr")
    assert layer.isValid() and layer.featureCount() == 3
    feature = sorted(layer.getFeatures(), key=lambda f: f["pair"])[0]
    want = expected_statistics(*fields[0], rect_mask() if which == "polygon" else disc_mask())
    assert feature["median_speed"] == pytest.approx(want["median_speed"], rel=1e-9)
    assert feature["n_valid_v_east"] == want["n_valid_v_east"] and feature["dt_days"] == 10.0
    assert feature["mid_date"].toString("yyyy-MM-dd") == "2020-02-06"
    assert os.listdir(tmp_path / "plots") == ["timeline_0.png"]


def test_feature_names_from_a_field(inputs, run_algorithm, tmp_path):
    paths, fields, polygon, _ = inputs
    parameters = {"INPUT": paths, "AOI": polygon, "ID_FIELD": "name", "OUTPUT": "memory:",
                  "OUTPUT_CSV": str(tmp_path / "t.csv"), "PLOT_FOLDER": str(tmp_path / "plots")}
    results, _, _ = run_algorithm("surfacemotion:aoitimeline", parameters)
    assert {row["feature"] for row in read_csv(results["OUTPUT_CSV"])} == {"rect"}
    assert os.listdir(tmp_path / "plots") == ["timeline_rect.png"]


def test_aoitimeline_dt_max_and_command_line(inputs, tmp_path, qgis_process_env):
    paths, fields, polygon, _ = inputs
    arguments = ["--json", "run", "surfacemotion:aoitimeline", "--"] + [f"INPUT={p}" for p in paths] + [
        f"AOI={polygon}", "DT_MAX=15", f"OUTPUT={tmp_path / 'cli.gpkg'}", f"OUTPUT_CSV={tmp_path / 'cli.csv'}"]
    done = subprocess.run(["qgis_process.bin", *arguments], env=qgis_process_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout)["results"]
    rows = read_csv(results["OUTPUT_CSV"])
    assert [r["dt_days"] for r in rows] == ["10.0"]
    for key, value in expected_statistics(*fields[0], rect_mask()).items():
        assert float(rows[0][key]) == pytest.approx(value, rel=1e-9), key
