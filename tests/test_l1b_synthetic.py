"""The synthetic L1B generator (tests/l1b_synthetic.py): its truth, DEM files and look geometry."""
import numpy as np
import pytest
from osgeo import gdal

from core.io import open_raster
from l1b_synthetic import (EGM96_DEM_CRS, camera, egm96_undulation, lonlat_to_utm, make_scene, texture_at,
                           true_dem, write_dem)

gdal.UseExceptions()
LOOKS = (1, -1)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("l1b")
    return {look: make_scene(str(folder), look) for look in LOOKS}


def test_dem_has_real_relief():
    dem = true_dem()
    slope = dem.slope_degrees()
    assert dem.h.max() - dem.h.min() > 400.0
    assert 30.0 < slope.max() < 40.0
    assert np.mean(slope > 15.0) > 0.1  # not one steep spot: a tenth of the DEM is steeper than 15°


@pytest.mark.parametrize("look", LOOKS)
def test_ground_to_image_to_ground_round_trip(look):
    cam, dem = camera(look), true_dem()
    rng = np.random.default_rng(3)
    cols, rows = rng.uniform(0, cam.cols, 2000), rng.uniform(0, cam.rows, 2000)
    lon, lat, h = cam.image_to_ground(cols, rows, dem.sample)
    np.testing.assert_allclose(h, dem.sample(lon, lat), atol=1e-4)  # on the DEM
    col, row = cam.ground_to_image(lon, lat, h)
    assert np.max(np.hypot(col - cols, row - rows)) < 1e-6
    lon2, lat2, _ = cam.image_to_ground(col, row, dem.sample)
    x, y = lonlat_to_utm(lon, lat)
    x2, y2 = lonlat_to_utm(lon2, lat2)
    assert np.max(np.hypot(x2 - x, y2 - y)) < 1e-3  # m


@pytest.mark.parametrize("look", LOOKS)
def test_camera_is_planetscope_like(look):
    cam, dem = camera(look), true_dem()
    col, row = cam.ground_to_image(*cam.aim)
    assert (col, row) == pytest.approx((cam.cols / 2, cam.rows / 2), abs=1e-6)
    cols, rows = np.array([360.0, 361.0, 360.0]), np.array([440.0, 440.0, 441.0])
    lon, lat, _ = cam.image_to_ground(cols, rows, dem.sample(*np.array(cam.aim[:2])[:, None]))
    x, y = lonlat_to_utm(lon, lat)
    across, along = np.hypot(x[1] - x[0], y[1] - y[0]), np.hypot(x[2] - x[0], y[2] - y[0])
    assert 3.0 < across < 4.0 and 3.0 < along < 4.0
    origin, direction = cam.ray(np.array([360.0]), np.array([440.0]))
    target = origin + direction * 1.0
    assert np.degrees(np.arccos(np.clip(np.dot(direction[0], -origin[0] / np.linalg.norm(origin[0])), -1, 1))) \
        == pytest.approx(4.0, abs=0.01)  # off-nadir view angle
    assert np.linalg.norm(origin[0]) - np.linalg.norm(target[0]) > 0  # looking down


def test_opposite_looks_see_opposite_parallax():
    """A DEM 30 m too high moves the ground seen at a point by 30·tan(incidence) away from the sensor."""
    dem = true_dem()
    shifts = {}
    for look in LOOKS:
        cam = camera(look)
        lon, lat, h = (np.array([value]) for value in cam.aim)
        east, north = cam.parallax(lon, lat, h, 30.0)
        shifts[look] = np.array([east[0], north[0]])
        assert np.hypot(*shifts[look]) == pytest.approx(30.0 * np.tan(np.radians(4.0)), rel=0.1)
    cosine = shifts[1] @ shifts[-1] / (np.linalg.norm(shifts[1]) * np.linalg.norm(shifts[-1]))
    assert cosine < -0.99  # opposite directions
    assert shifts[1][0] > 0 > shifts[-1][0]  # +4° roll looks east: the ray runs on eastward
    assert dem.h.min() > 0


@pytest.mark.parametrize("look", LOOKS)
def test_raw_scene_is_the_texture_at_the_ground_of_each_pixel(scenes, look):
    scene = scenes[look]
    with open_raster(scene.path) as ds:
        raw = ds.read(1)
        assert ds.dtypes[0] == "uint16" and raw.shape == (scene.camera.rows, scene.camera.cols)
    gdal_rpc = gdal.Open(scene.path).GetMetadata("RPC")
    assert float(gdal_rpc["LINE_OFF"]) == pytest.approx(float(scene.rpc["LINE_OFF"]))
    rng = np.random.default_rng(7)
    rows, cols = rng.integers(0, raw.shape[0], 500), rng.integers(0, raw.shape[1], 500)
    lon, lat, _ = scene.camera.image_to_ground(cols + 0.5, rows + 0.5, true_dem().sample)
    np.testing.assert_allclose(raw[rows, cols], texture_at(*lonlat_to_utm(lon, lat)), atol=0.5 + 1e-9)
    assert raw.std() > 100.0  # real texture


def test_dem_files_ellipsoid_egm96_and_shifted(tmp_path):
    dem = true_dem()
    ellipsoid = write_dem(str(tmp_path / "dem.tif"))
    egm96 = write_dem(str(tmp_path / "dem_egm96.tif"), datum="egm96")
    raised = write_dem(str(tmp_path / "dem_up30.tif"), height_offset=30.0)
    moved = write_dem(str(tmp_path / "dem_moved.tif"), shift_east=20.0, shift_north=-10.0)
    with open_raster(ellipsoid) as ds:
        assert ds.crs.to_epsg() == 4326
        np.testing.assert_allclose(ds.read(1), dem.h, atol=1e-4)
        transform = ds.transform
    cols, rows = np.meshgrid(np.arange(dem.h.shape[1]) + 0.5, np.arange(dem.h.shape[0]) + 0.5)
    undulation = egm96_undulation(*(transform * (cols, rows)))
    assert -40.0 < undulation.mean() < -36.0  # EGM96 is ~38 m below the ellipsoid off Virginia
    with open_raster(egm96) as ds:
        assert "EGM96" in ds.crs.to_wkt() and EGM96_DEM_CRS.endswith("5773")
        np.testing.assert_allclose(ds.read(1), dem.h - undulation, atol=1e-3)
    with open_raster(raised) as ds:
        np.testing.assert_allclose(ds.read(1), dem.h + 30.0, atol=1e-3)
    with open_raster(moved) as ds:
        lat = np.radians(transform.f + transform.e * dem.h.shape[0] / 2)
        metres = np.pi / 180 * 6371000.0
        assert (ds.transform.c - transform.c) * metres * np.cos(lat) == pytest.approx(20.0, abs=1e-6)
        assert (ds.transform.f - transform.f) * metres == pytest.approx(-10.0, abs=1e-6)
