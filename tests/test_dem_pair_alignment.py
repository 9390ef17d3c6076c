"""Disparity-based DEM alignment (core/dem/disparity_alignment.py, core/dem/pair_alignment.py,
surfacemotion:aligndemtopair): the linear fit on analytic fields, then the whole loop on synthetic
opposite-look L1B scenes (tests/l1b_synthetic.py) with a DEM displaced from the images' frame."""
import csv
import os
import re

import numpy as np
import pytest
import rasterio

import l1b_synthetic as synthetic
from core.dem.disparity_alignment import fit_dem_shift
from core.dem.pair_alignment import REPORT_COLUMNS, align_dem_to_pair, shifted_transform
from core.errors import UserInputError
from core.ortho.rpc import read_rpc
from core.ortho.rpc_fit import rpc_txt

ALGORITHM = "surfacemotion:aligndemtopair"
#: The DEM's content sits this far (m, east, north) from where the images see the terrain.
DEM_OFFSET = (12.0, -8.0)


def analytic_fields(n=4000, seed=3):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 3000, n), rng.uniform(0, 3000, n)
    grad_e, grad_n = 0.6 * np.sin(x / 300.0), 0.5 * np.cos(y / 250.0 + x / 900.0)
    p_e, p_n = 0.14 + 0.002 * x / 3000, -0.01 + 0.003 * y / 3000
    return x, y, grad_e, grad_n, p_e, p_n


def test_the_fit_recovers_a_known_shift_and_bias_plane_exactly():
    x, y, g_e, g_n, p_e, p_n = analytic_fields()
    s = (3.0, -2.0)
    dh = g_e * s[0] + g_n * s[1]
    d_e = p_e * dh + 0.4 + 1e-4 * x - 2e-4 * y
    d_n = p_n * dh - 0.2 + 3e-5 * y
    fit = fit_dem_shift(d_e, d_n, p_e, p_n, g_e, g_n, x, y)
    assert (fit.shift_east, fit.shift_north) == pytest.approx(s, abs=1e-9)
    assert fit.nmad_after < 1e-9 < fit.nmad_before
    assert fit.cells == x.size


def test_the_fit_resists_noise_and_outliers_within_its_standard_errors():
    x, y, g_e, g_n, p_e, p_n = analytic_fields(seed=5)
    rng = np.random.default_rng(7)
    s = (-5.0, 1.5)
    dh = g_e * s[0] + g_n * s[1]
    d_e, d_n = p_e * dh + rng.normal(0, 0.05, x.size), p_n * dh + rng.normal(0, 0.05, x.size)
    d_e[:200] += rng.uniform(2, 5, 200)  # mismatches (clouds, moving ground)
    fit = fit_dem_shift(d_e, d_n, p_e, p_n, g_e, g_n, x, y)
    assert abs(fit.shift_east - s[0]) < 4 * fit.sigma_east + 0.05
    assert abs(fit.shift_north - s[1]) < 4 * fit.sigma_north + 0.05
    assert fit.nmad_after == pytest.approx(0.05, rel=0.15)


def test_the_fit_refuses_flat_terrain_and_a_pair_without_parallax():
    x, y, g_e, g_n, p_e, p_n = analytic_fields()
    zeros = np.zeros_like(x)
    with pytest.raises(UserInputError, match="too flat"):
        fit_dem_shift(zeros, zeros, p_e, p_n, zeros, zeros, x, y)
    with pytest.raises(UserInputError, match="same direction"):
        fit_dem_shift(zeros, zeros, zeros, zeros, g_e, g_n, x, y)
    with pytest.raises(UserInputError, match="at least 80"):
        fit_dem_shift(*(a[:50] for a in (zeros, zeros, p_e, p_n, g_e, g_n, x, y)))


def test_shifted_transform_moves_metres_in_projected_and_geographic_grids():
    from affine import Affine
    from rasterio.crs import CRS

    assert shifted_transform(Affine(3, 0, 1000, 0, -3, 5000), CRS.from_epsg(32618), 2.0, -1.0) == \
        Affine(3, 0, 1002, 0, -3, 4999)
    moved = shifted_transform(Affine(1e-4, 0, -75.0, 0, -1e-4, 37.7), CRS.from_epsg(4326), 100.0, 50.0)
    metres = np.pi / 180 * 6371008.8
    assert (moved.c + 75.0) * metres * np.cos(np.radians(37.7)) == pytest.approx(100.0, rel=1e-9)
    assert (moved.f - 37.7) * metres == pytest.approx(50.0, rel=1e-9)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Both looks of the generator, the true DEM and a copy displaced by DEM_OFFSET."""
    folder = str(tmp_path_factory.mktemp("dem_alignment"))
    scenes = {look: synthetic.make_scene(folder, look).path for look in (1, -1)}
    return {"folder": folder, "scenes": scenes,
            "true": synthetic.write_dem(os.path.join(folder, "dem_true.tif")),
            "displaced": synthetic.write_dem(os.path.join(folder, "dem_displaced.tif"), shift_east=DEM_OFFSET[0],
                                             shift_north=DEM_OFFSET[1])}


def test_a_displaced_dem_is_moved_back_onto_the_images(pair, tmp_path):
    out, report = str(tmp_path / "aligned.tif"), str(tmp_path / "report.csv")
    result = align_dem_to_pair(pair["displaced"], pair["scenes"][1], pair["scenes"][-1], out, report,
                               aoi_wkt=synthetic.aoi_wkt(), aoi_crs="EPSG:4326")
    assert result.converged and len(result.fits) <= 3
    assert (result.shift_east, result.shift_north) == pytest.approx((-DEM_OFFSET[0], -DEM_OFFSET[1]), abs=0.1)
    first, last = result.fits[0], result.fits[-1]
    assert first.nmad_before > 0.2 and last.nmad_before < 0.02  # m of residual disparity: 0.28 -> 0.006
    with rasterio.open(out) as aligned, rasterio.open(pair["true"]) as true, rasterio.open(pair["displaced"]) as src:
        assert aligned.crs == src.crs and (aligned.width, aligned.height) == (src.width, src.height)
        assert np.array_equal(aligned.read(1), src.read(1))  # heights untouched, only the grid moved
        assert aligned.transform.c == pytest.approx(true.transform.c, abs=0.1 / 88000)  # 0.1 m in degrees
        assert aligned.transform.f == pytest.approx(true.transform.f, abs=0.1 / 111000)
        assert float(aligned.tags()["SM_DEM_SHIFT_EAST_M"]) == pytest.approx(result.shift_east, abs=1e-3)
    with open(report, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(REPORT_COLUMNS) and len(rows) == len(result.fits)
    assert float(rows[-1]["shift_x_m"]) == pytest.approx(-DEM_OFFSET[0], abs=0.1) and rows[-1]["converged"] == "yes"
    assert not [name for name in os.listdir(tmp_path) if name not in ("aligned.tif", "aligned.qml", "report.csv")]


def test_a_common_rpc_bias_is_absorbed_by_moving_the_true_dem(pair, tmp_path):
    """Both scenes' RPCs place the ground 6 m east and 4 m south of the truth (a common geolocation
    bias): the true DEM no longer matches the images, and is moved by that bias."""
    biased = {}
    bias_east, bias_north = 6.0, -4.0
    metres = np.pi / 180 * 6371008.8
    for look, scene in pair["scenes"].items():
        rpc = dict(read_rpc(scene))
        lat = float(rpc["LAT_OFF"])
        rpc["LONG_OFF"] = repr(float(rpc["LONG_OFF"]) + bias_east / (metres * np.cos(np.radians(lat))))
        rpc["LAT_OFF"] = repr(lat + bias_north / metres)
        folder = tmp_path / f"look{look}"
        folder.mkdir()
        path = str(folder / "biased_1B_AnalyticMS.tif")
        with rasterio.open(scene) as src:
            profile = dict(src.profile)
            data = src.read()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(data)
        with open(str(folder / "biased_1B_AnalyticMS_RPC.TXT"), "w") as handle:
            handle.write(rpc_txt(rpc))
        biased[look] = path
    result = align_dem_to_pair(pair["true"], biased[1], biased[-1], str(tmp_path / "aligned.tif"),
                               aoi_wkt=synthetic.aoi_wkt(), aoi_crs="EPSG:4326")
    assert (result.shift_east, result.shift_north) == pytest.approx((bias_east, bias_north), abs=0.15)
    assert result.fits[-1].nmad_before < result.fits[0].nmad_before / 5


def test_the_algorithm_reports_the_shift_and_loads_the_dem(pair, tmp_path, provider):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingOutputLayerDefinition, QgsProject

    project = QgsProject.instance()
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    context.setProject(project)
    results = processing.run(ALGORITHM, {
        "DEM": pair["displaced"], "REFERENCE_SCENE": pair["scenes"][1], "SECONDARY_SCENE": pair["scenes"][-1],
        "VERTICAL_DATUM": 1, "STEP": 16,
        "OUTPUT": QgsProcessingOutputLayerDefinition(str(tmp_path / "aligned.tif"), project),
        "REPORT": str(tmp_path / "report.csv")}, context=context, feedback=feedback)
    assert (results["SHIFT_X"], results["SHIFT_Y"]) == pytest.approx((-DEM_OFFSET[0], -DEM_OFFSET[1]), abs=0.15)
    assert results["CONVERGED"] and results["NMAD_AFTER"] < results["NMAD_BEFORE"] / 10
    assert results["ITERATIONS"] <= 3 and os.path.isfile(results["REPORT"])
    logged = re.search(r"Shift applied to the DEM: x ([-+.\d]+) m \(east\), y ([-+.\d]+) m", feedback.textLog())
    assert (float(logged.group(1)), float(logged.group(2))) == pytest.approx((results["SHIFT_X"], results["SHIFT_Y"]),
                                                                             abs=1e-3)
    assert list(context.layersToLoadOnCompletion()) == [str(tmp_path / "aligned.tif")]


def test_the_same_scene_twice_is_refused_and_nothing_is_written(run_algorithm, pair, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="The two scenes are the same file"):
        run_algorithm(ALGORITHM, {"DEM": pair["true"], "REFERENCE_SCENE": pair["scenes"][1],
                                  "SECONDARY_SCENE": pair["scenes"][1], "OUTPUT": str(tmp_path / "aligned.tif")})
    assert os.listdir(tmp_path) == []
