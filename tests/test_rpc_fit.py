"""core.ortho.rpc_fit: RPCs fitted to the synthetic pushbroom camera, checked against the camera and GDAL.

GDAL's own RPC transformer evaluating the fitted dict must give the camera's (col, row): that proves
the term order and the half-pixel convention; a one-term model per monomial checks the order term by term.
"""
import numpy as np
import pytest
from osgeo import gdal

from core.errors import UserInputError
from core.ortho.rpc import RpcModel
from core.ortho.rpc_fit import TERM_NAMES, fit_rpc, rpc_terms, rpc_txt
from l1b_synthetic import camera, fit_scene_rpc, true_dem, write_dem

gdal.UseExceptions()
LOOKS = (1, -1)


@pytest.fixture(scope="module")
def fits():
    dem = true_dem()
    return {look: (camera(look), fit_scene_rpc(camera(look), dem)) for look in LOOKS}


def _gdal_dataset(rpc, width=720, height=880):
    ds = gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_UInt16)
    ds.SetMetadata({key: str(value) for key, value in rpc.items()}, "RPC")
    return ds


def _gdal_ground_to_image(rpc, lon, lat, h):
    """(col, row) from GDAL's RPC transformer (lon/lat/ellipsoidal h -> pixel, corner convention)."""
    ds = _gdal_dataset(rpc)
    transformer = gdal.Transformer(ds, None, ["METHOD=RPC"])
    points, ok = transformer.TransformPoints(1, list(zip(map(float, lon), map(float, lat), map(float, h))))
    assert all(ok)
    points = np.array(points)
    return points[:, 0], points[:, 1]


def _random_ground(cam, count=300, seed=0):
    """Random ground points inside the scene at random heights 0-700 m (independent of the fit grids)."""
    rng = np.random.default_rng(seed)
    cols, rows = rng.uniform(0, cam.cols, count), rng.uniform(0, cam.rows, count)
    heights = rng.uniform(0.0, 700.0, count)
    lon, lat, h = cam.image_to_ground(cols, rows, lambda a, b: heights)
    return lon, lat, h, cols, rows


@pytest.mark.parametrize("look", LOOKS)
def test_fit_residual_is_below_a_hundredth_of_a_pixel(fits, look):
    cam, fit = fits[look]
    assert fit.max_residual < 0.01 and fit.rms_residual <= fit.max_residual
    lon, lat, h, cols, rows = _random_ground(cam, seed=look + 5)
    col, row = RpcModel(fit.rpc).ground_to_image(lon, lat, h)
    assert np.max(np.hypot(col - cols, row - rows)) < 0.01


@pytest.mark.parametrize("look", LOOKS)
def test_gdal_rpc_transformer_agrees_with_the_camera(fits, look):
    cam, fit = fits[look]
    lon, lat, h, cols, rows = _random_ground(cam, seed=look + 11)
    col, row = _gdal_ground_to_image(fit.rpc, lon, lat, h)
    assert np.max(np.hypot(col - cols, row - rows)) < 0.01


@pytest.mark.parametrize("datum", ["ellipsoid", "egm96"])
def test_gdal_rpc_dem_intersection_agrees_with_the_camera(fits, datum, tmp_path):
    """GDAL's image -> ground on the DEM (RPC_DEM, EGM96 shifted by GDAL) lands where the camera's rays
    meet the terrain: re-projected through the camera, within 0.01 px."""
    cam, fit = fits[1]
    dem = write_dem(str(tmp_path / f"dem_{datum}.tif"), datum=datum)
    transformer = gdal.Transformer(_gdal_dataset(fit.rpc), None, [
        "METHOD=RPC", f"RPC_DEM={dem}", "RPC_DEMINTERPOLATION=bilinear", "RPC_PIXEL_ERROR_THRESHOLD=0.001"])
    rng = np.random.default_rng(2)
    cols, rows = rng.uniform(0, cam.cols, 300), rng.uniform(0, cam.rows, 300)
    points, ok = transformer.TransformPoints(0, list(zip(cols, rows, np.zeros_like(cols))))
    assert all(ok)
    lon, lat = np.array(points)[:, 0], np.array(points)[:, 1]
    col, row = cam.ground_to_image(lon, lat, true_dem().sample(lon, lat))
    assert np.max(np.hypot(col - cols, row - rows)) < 0.01


def test_gdal_evaluates_each_term_in_our_order():
    rpc = {"LINE_OFF": "0", "SAMP_OFF": "0", "LAT_OFF": "0", "LONG_OFF": "0", "HEIGHT_OFF": "0",
           "LINE_SCALE": "1", "SAMP_SCALE": "1", "LAT_SCALE": "1", "LONG_SCALE": "1", "HEIGHT_SCALE": "1",
           "LINE_DEN_COEFF": " ".join(["1"] + ["0"] * 19), "SAMP_DEN_COEFF": " ".join(["1"] + ["0"] * 19),
           "LINE_NUM_COEFF": " ".join(["0", "0", "1"] + ["0"] * 17)}  # line = P (GDAL needs a 2-D model)
    lon, lat, h = 0.3, -0.7, 0.45
    expected = rpc_terms(np.array([lon]), np.array([lat]), np.array([h]))[0]
    assert expected[TERM_NAMES.index("LPH")] == pytest.approx(lon * lat * h)
    assert expected[TERM_NAMES.index("PPH")] == pytest.approx(lat * lat * h)
    for index in range(20):
        coefficients = np.zeros(20)
        coefficients[1] += 1.0  # sample = L + term[index]
        coefficients[index] += 1.0
        model = dict(rpc, SAMP_NUM_COEFF=" ".join(map(str, coefficients)))
        col, row = _gdal_ground_to_image(model, [lon], [lat], [h])
        assert col[0] - 0.5 == pytest.approx(lon + expected[index], abs=1e-12), TERM_NAMES[index]
        assert row[0] - 0.5 == pytest.approx(lat, abs=1e-12)  # GDAL adds half a pixel to RPC line/sample


def test_rpc_txt_sidecar_reads_back_in_gdal(fits, tmp_path):
    cam, fit = fits[1]
    image = tmp_path / "scene.tif"
    created = gdal.GetDriverByName("GTiff").Create(str(image), cam.cols, cam.rows, 1, gdal.GDT_UInt16)
    del created  # closes the file
    (tmp_path / "scene_RPC.TXT").write_text(rpc_txt(fit.rpc))
    read = gdal.Open(str(image)).GetMetadata("RPC")
    for key in ("LINE_OFF", "SAMP_OFF", "LAT_OFF", "LONG_OFF", "HEIGHT_OFF", "LAT_SCALE", "HEIGHT_SCALE"):
        assert float(read[key]) == pytest.approx(float(fit.rpc[key]), rel=1e-12, abs=1e-12)
    for key in ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF"):
        np.testing.assert_allclose(np.array(read[key].split(), float), np.array(fit.rpc[key].split(), float),
                                   rtol=1e-12, atol=1e-15)


def test_fit_refuses_a_camera_no_rpc_can_follow():
    def wavy(lon, lat, h):
        return 1000 * np.sin(40 * np.asarray(lon)), 1000 * np.cos(40 * np.asarray(lat))

    with pytest.raises(UserInputError, match=r"misses the camera by up to .* px on the check grid"):
        fit_rpc(wavy, (0.0, 1.0), (0.0, 1.0), (0.0, 100.0))


def test_fit_refuses_empty_ranges_and_too_small_grids():
    def affine(lon, lat, h):
        return np.asarray(lon) * 100, np.asarray(lat) * 100

    with pytest.raises(UserInputError, match="increasing, finite lon/lat/height ranges"):
        fit_rpc(affine, (1.0, 1.0), (0.0, 1.0), (0.0, 100.0))
    with pytest.raises(UserInputError, match="at least 4 x 4 x 3 nodes"):
        fit_rpc(affine, (0.0, 1.0), (0.0, 1.0), (0.0, 100.0), shape=(3, 4, 3))
    fit = fit_rpc(affine, (0.0, 1.0), (0.0, 1.0), (0.0, 100.0))
    assert fit.max_residual < 1e-6
