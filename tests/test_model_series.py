"""surfacemotion:invertpairs and surfacemotion:aoitimeline as steps of a Processing model built in code (issue 14,
"every id runs ... in a model"): the models validate like in the Model Designer and their outputs equal the
synthetic truth (invertpairs) and a direct numpy computation on the AOI pixels (aoitimeline).

The pairs are the synthetic redundant disparity network of tests/test_series_inversion.py (2 m pixels, EPSG:32719,
64 pairs, east flow 0.05 px/day then a ramp to 0.15 px/day, north flow half of it, noise, outliers, cloud gaps)."""
import csv
import json
import os
import subprocess

import numpy as np
import pytest
from pyproj import Transformer

from core.io import open_raster
from core.offsets.velocity import offsets_to_velocity
from series_data import expected_statistics
from test_model import assert_validates
from test_series_inversion import DATES, GRID, PAIRS, _displacement, write_network
from test_stackvelocity import _child

#: AOI rectangle in the pairs' UTM grid, edges half-way between pixel centres: columns 3-10, rows 4-11.
RECT = (GRID.transform.c + 3 * 2.0, GRID.transform.f - 12 * 2.0, GRID.transform.c + 11 * 2.0,
        GRID.transform.f - 4 * 2.0)
ROWS, COLS = slice(4, 12), slice(3, 11)


def write_aoi(folder) -> str:
    """The AOI rectangle as a GeoJSON polygon in EPSG:4326 (another CRS than the pairs); returns its path."""
    to_wgs84 = Transformer.from_crs(GRID.crs, "EPSG:4326", always_xy=True)
    x0, y0, x1, y1 = RECT
    ring = [list(to_wgs84.transform(x, y)) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    aoi = os.path.join(str(folder), "aoi.geojson")
    with open(aoi, "w") as handle:
        json.dump({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "rect"},
                   "geometry": {"type": "Polygon", "coordinates": [ring]}}]}, handle)
    return aoi


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """(pair paths, AOI GeoJSON)."""
    folder = tmp_path_factory.mktemp("model_series")
    return write_network(str(folder)), write_aoi(folder)


def _pairs_input(model, name: str = "pairs") -> None:
    """Add a multiple-raster model input ``name`` (the pair rasters)."""
    from qgis.core import QgsProcessing, QgsProcessingModelParameter, QgsProcessingParameterMultipleLayers

    model.addModelParameter(QgsProcessingParameterMultipleLayers(name, name, QgsProcessing.TypeRaster),
                            QgsProcessingModelParameter(name))


def _invert_step(folder: str):
    """The invertpairs step on the model's pairs: per-date steps, GCV lambda, robust, prefix mdl."""
    from qgis.core import QgsProcessingModelChildParameterSource as S

    return _child("surfacemotion:invertpairs", "invert", {
        "INPUT": S.fromModelParameter("pairs"), "STEP_DAYS": S.fromStaticValue(0.0),
        "REGULARISATION": S.fromStaticValue(0.0), "ROBUST": S.fromStaticValue(True),
        "MIN_PAIRS": S.fromStaticValue(3), "PREFIX": S.fromStaticValue("mdl"),
        "OUTPUT_FOLDER": S.fromStaticValue(folder)})


def _run(model, parameters: dict) -> dict:
    """Run ``model`` in-process (processing.run); removes the layers it loaded into the project."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    try:
        return processing.run(model, parameters, context=context, feedback=QgsProcessingFeedback())
    finally:
        QgsProject.instance().removeAllMapLayers()


def _step_truth_px():
    """True displacement (px) east per inversion step (between consecutive dates)."""
    return np.array([_displacement(lo, hi) for lo, hi in zip(DATES[:-1], DATES[1:])])


def check_inversion(folder, prefix="mdl"):
    """The inverted velocity per step equals the synthetic truth: east RMS < 0.1 px per step (noise 0.1 px,
    10 % outlier pairs), north = half the east flow, speed = hypot of both (m/yr, 2 m pixels)."""
    days = np.diff(DATES)[:, None, None]
    m_per_yr = _step_truth_px()[:, None, None] / days * 2.0 * 365.25
    read = {}
    for kind in ("speed", "velocity_east", "velocity_north"):
        with open_raster(os.path.join(folder, f"{prefix}_{kind}.tif")) as ds:
            assert ds.count == len(DATES) - 1
            read[kind] = ds.read().astype(float)
    east_px = read["velocity_east"] * days / 365.25 / 2.0
    assert np.isfinite(east_px).mean() > 0.9
    assert np.sqrt(np.nanmean((east_px - _step_truth_px()[:, None, None]) ** 2)) < 0.1
    np.testing.assert_allclose(np.nanmedian(read["velocity_north"], axis=(1, 2)),
                               0.5 * m_per_yr[:, 0, 0], rtol=0.1)
    np.testing.assert_allclose(read["speed"], np.hypot(read["velocity_east"], read["velocity_north"]), rtol=1e-5)
    np.testing.assert_allclose(np.nanmedian(read["speed"], axis=(1, 2)), np.hypot(1.0, 0.5) * m_per_yr[:, 0, 0],
                               rtol=0.1)


def test_a_model_running_invertpairs_on_its_input_pairs(provider, network, tmp_path):
    """A one-step model (model input pair rasters -> invertpairs) validates and recovers the synthetic history."""
    from qgis.core import QgsProcessingModelAlgorithm

    paths, _ = network
    model = QgsProcessingModelAlgorithm("invert pairs", "test")
    _pairs_input(model)
    model.addChildAlgorithm(_invert_step(str(tmp_path / "inv")))
    assert_validates([model], ["surfacemotion:invertpairs"])
    _run(model, {"pairs": paths})
    check_inversion(str(tmp_path / "inv"))


def expected_aoi_rows(paths):
    """{pair file name: numpy statistics of offsets_to_velocity of its disparities on the AOI pixels}."""
    mask = np.zeros((GRID.height, GRID.width), bool)
    mask[ROWS, COLS] = True
    out = {}
    for path, (i, j) in zip(paths, PAIRS):
        with open_raster(path) as ds:
            dx, dy = ds.read(1).astype(float), ds.read(2).astype(float)
        _, _, east, north = offsets_to_velocity(dx, dy, GRID.transform, DATES[j] - DATES[i])
        out[os.path.basename(path)] = expected_statistics(east, north, mask)
    return out


def series_model(folder):
    """One pair input and one AOI input feeding both invertpairs and aoitimeline (outputs under ``folder``)."""
    from qgis.core import (QgsProcessing, QgsProcessingModelAlgorithm, QgsProcessingModelChildParameterSource as S,
                           QgsProcessingModelParameter, QgsProcessingParameterFeatureSource)

    model = QgsProcessingModelAlgorithm("invert and timeline", "test")
    _pairs_input(model)
    model.addModelParameter(QgsProcessingParameterFeatureSource("aoi", "aoi", [QgsProcessing.TypeVector]),
                            QgsProcessingModelParameter("aoi"))
    model.addChildAlgorithm(_invert_step(os.path.join(folder, "inv")))
    model.addChildAlgorithm(_child("surfacemotion:aoitimeline", "timeline", {
        "INPUT": S.fromModelParameter("pairs"), "AOI": S.fromModelParameter("aoi"),
        "OUTPUT": S.fromStaticValue(os.path.join(folder, "timeline.gpkg")),
        "OUTPUT_CSV": S.fromStaticValue(os.path.join(folder, "timeline.csv"))}))
    return model


STEPS = ["surfacemotion:invertpairs", "surfacemotion:aoitimeline"]


def test_a_model_feeding_the_same_pairs_to_invertpairs_and_aoitimeline(provider, network, tmp_path):
    """The timeline table equals numpy on the AOI pixels; the inversion equals the truth."""
    paths, aoi = network
    model = series_model(str(tmp_path))
    assert_validates([model], STEPS)
    _run(model, {"pairs": paths, "aoi": aoi})
    check_inversion(str(tmp_path / "inv"))
    check_timeline_csv(str(tmp_path / "timeline.csv"), paths)


def test_the_model_saved_as_a_file_runs_with_qgis_process(provider, network, tmp_path, qgis_process_env):
    """The same model written as a .model3 file (what the Model Designer saves) reopens, validates and runs
    through qgis_process.bin with the same numbers."""
    from qgis.core import QgsProcessingModelAlgorithm

    paths, aoi = network
    path = str(tmp_path / "series.model3")
    assert series_model(str(tmp_path)).toFile(path)
    reopened = QgsProcessingModelAlgorithm()
    assert reopened.fromFile(path)
    assert_validates([reopened], STEPS)
    arguments = ["qgis_process.bin", "--json", "run", path, "--", f"aoi={aoi}"] + [f"pairs={p}" for p in paths]
    done = subprocess.run(arguments, env=qgis_process_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_inversion(str(tmp_path / "inv"))
    check_timeline_csv(str(tmp_path / "timeline.csv"), paths)


def check_timeline_csv(path, paths):
    """Every pair has one row; its dt and its statistics equal numpy on the AOI pixels (8 x 8, minus cloud gaps)."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    want = expected_aoi_rows(paths)
    dt_days = {os.path.basename(p): DATES[j] - DATES[i] for p, (i, j) in zip(paths, PAIRS)}
    assert sorted(row["pair"] for row in rows) == sorted(want)
    for row in rows:
        assert float(row["dt_days"]) == pytest.approx(dt_days[row["pair"]])
        for key, value in want[row["pair"]].items():
            assert float(row[key]) == pytest.approx(value, rel=1e-6, abs=1e-6), (row["pair"], key)
    counts = [int(row["n_valid_speed"]) for row in rows]
    assert 0 < min(counts) and max(counts) <= 64
