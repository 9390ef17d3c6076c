"""Tests of core.offsets.polyfit: polynomial de-ramping of disparity rasters."""
import os

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

import core.offsets.polyfit as polyfit
from core.offsets.disparity import BASE_DESCRIPTIONS, PEAK, describe_disparity, disparity_tags
from core.errors import Cancelled, UserInputError
from core.offsets.polyfit import (design_matrix, deramp_file, evaluate_ramp, fit_ramp, moving_mask_from_geometries,
                          moving_mask_from_raster, n_terms)

CRS_UTM = CRS.from_epsg(32618)
CELL = 30.0
X0, Y0 = 500000.0, 4500000.0
HEIGHT, WIDTH = 120, 150
NOISE = 0.05
SNR = "SNR"


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Force many row blocks so the two-pass streaming is exercised."""
    monkeypatch.setattr(polyfit, "_BLOCK_CELLS", 1500)  # 10 rows -> 12 blocks


def grid_xy(height=HEIGHT, width=WIDTH):
    """Scaled column/row predictors the de-ramp uses (min-max over the grid)."""
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    return cols / (width - 1), rows / (height - 1)


def write_ours(path, dx, dy, valid=None, peak=None, transform=None, tags=None):
    """Our 5-band disparity format: dx, dy, valid, peak, SNR."""
    height, width = dx.shape
    valid = np.isfinite(dx) & np.isfinite(dy) if valid is None else valid
    peak = np.linspace(0.2, 0.9, dx.size).reshape(dx.shape) if peak is None else peak
    snr = np.arange(dx.size, dtype=np.float32).reshape(dx.shape)
    profile = dict(driver="GTiff", width=width, height=height, count=5, dtype="float32",
                   crs=CRS_UTM, transform=transform or from_origin(X0, Y0, CELL, CELL), nodata=np.nan)
    with rasterio.open(path, "w", **profile) as ds:
        for band, data in enumerate((np.where(valid, dx, np.nan), np.where(valid, dy, np.nan),
                                     valid.astype(np.float32), peak, snr), start=1):
            ds.write(np.asarray(data, np.float32), band)
        for band, text in enumerate(BASE_DESCRIPTIONS + (SNR,), start=1):
            ds.set_band_description(band, text)
        ds.update_tags(**(tags or disparity_tags(step=1, ref_id="20200101_101010_1014",
                                                 sec_id="20200301_101010_1014", dt_days=60.0)))
    return str(path)


def write_asp(path, dx, dy, mask):
    profile = dict(driver="GTiff", width=dx.shape[1], height=dx.shape[0], count=3, dtype="float32",
                   crs=CRS_UTM, transform=from_origin(X0, Y0, CELL, CELL))
    with rasterio.open(path, "w", **profile) as ds:
        for band, data in enumerate((dx, dy, mask), start=1):
            ds.write(np.asarray(data, np.float32), band)
    return str(path)


def read_band(path, band):
    with rasterio.open(path) as ds:
        return ds.read(band).astype(np.float64)


def synthetic_case(order, seed=0, z=None):
    """Known ramps (dx, dy) + noise + a moving patch; returns everything needed to check."""
    rng = np.random.default_rng(seed)
    x, y = grid_xy()
    terms = n_terms(order, z is not None)
    coef_dx = rng.uniform(-2, 2, terms)
    coef_dy = rng.uniform(-2, 2, terms)
    ramp_dx = evaluate_ramp(coef_dx, x, y, order, z)
    ramp_dy = evaluate_ramp(coef_dy, x, y, order, z)
    noise_dx = rng.normal(0, NOISE, x.shape)
    noise_dy = rng.normal(0, NOISE, x.shape)
    moving = np.zeros(x.shape, bool)
    moving[30:60, 40:90] = True
    motion_dx, motion_dy = 4.0, -3.0
    dx = ramp_dx + noise_dx + np.where(moving, motion_dx, 0.0)
    dy = ramp_dy + noise_dy + np.where(moving, motion_dy, 0.0)
    valid = rng.random(x.shape) > 0.1  # 10 % invalid cells
    return dict(dx=dx, dy=dy, valid=valid, moving=moving, noise_dx=noise_dx, noise_dy=noise_dy,
                motion=(motion_dx, motion_dy))


def residual_rms(out, case, stable):
    dx, dy = read_band(out, 1), read_band(out, 2)
    cells = stable & case["valid"]
    rms_dx = np.sqrt(np.mean((dx[cells] - case["noise_dx"][cells]) ** 2))
    rms_dy = np.sqrt(np.mean((dy[cells] - case["noise_dy"][cells]) ** 2))
    return rms_dx, rms_dy


# --------------------------------------------------------------------------- model


def test_n_terms_match_reference_table():
    assert [n_terms(o, False) for o in (1, 2, 3)] == [3, 6, 10]
    assert [n_terms(o, True) for o in (1, 2, 3)] == [4, 10, 20]


def test_design_matrix_monomials():
    row = design_matrix(np.array([2.0]), np.array([3.0]), 3)[0]
    assert row.tolist() == [1, 2, 3, 4, 6, 9, 8, 12, 18, 27]
    row_z = design_matrix(np.array([2.0]), np.array([3.0]), 2, np.array([5.0]))[0]
    assert row_z.tolist() == [1, 2, 3, 5, 4, 6, 10, 9, 15, 25]
    assert design_matrix(np.zeros(7), np.zeros(7), 3, np.zeros(7)).shape == (7, 20)


def test_fit_ramp_recovers_exact_coefficients_and_needs_ten_points_per_term():
    rng = np.random.default_rng(1)
    x, y, z = rng.random(300), rng.random(300), rng.random(300)
    truth = rng.normal(size=20)
    values = design_matrix(x, y, 3, z) @ truth
    np.testing.assert_allclose(fit_ramp(values, x, y, 3, z), truth, atol=1e-8)
    with pytest.raises(UserInputError, match="too few stable valid pixels: 199 < 200"):
        fit_ramp(values[:199], x[:199], y[:199], 3, z[:199])


# --------------------------------------------------------------------------- file, x/y


@pytest.mark.parametrize("order", [1, 2, 3])
def test_deramp_removes_known_ramp_of_each_order(tmp_path, order):
    case = synthetic_case(order, seed=order)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    out = str(tmp_path / "deramped.tif")
    seen = []
    result = deramp_file(src, out, order=order, moving_mask=case["moving"], progress=seen.append)

    rms_dx, rms_dy = residual_rms(out, case, ~case["moving"])
    assert rms_dx < 0.02 and rms_dy < 0.02
    # the moving patch keeps its motion once the ramp is gone
    dx, dy = read_band(out, 1), read_band(out, 2)
    patch = case["moving"] & case["valid"]
    assert np.mean(dx[patch]) == pytest.approx(case["motion"][0], abs=0.02)
    assert np.mean(dy[patch]) == pytest.approx(case["motion"][1], abs=0.02)
    # fit statistics: the residual of the fit is the injected noise
    assert result["rms_after_dx"] == pytest.approx(NOISE, abs=0.003)
    assert result["rms_after_dy"] == pytest.approx(NOISE, abs=0.003)
    assert result["rms_before_dx"] > 0.2
    stable_valid = int((case["valid"] & ~case["moving"]).sum())
    assert 0.89 * stable_valid <= result["n_fit_points_dx"] <= 0.91 * stable_valid
    assert len(result["coefficients_dx"]) == n_terms(order, False)
    # progress reported per block, monotone, ending at 100
    assert len(seen) > 10 and seen == sorted(seen) and seen[-1] == 100.0


def test_deramp_keeps_layout_tags_and_quality_bands(tmp_path):
    case = synthetic_case(2)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    out = str(tmp_path / "out.tif")
    deramp_file(src, out, order=2, moving_mask=case["moving"])
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.count == 5 and b.descriptions == a.descriptions
        assert b.crs == a.crs and b.transform == a.transform
        for band in (3, 4, 5):
            np.testing.assert_array_equal(b.read(band), a.read(band))
        tags = b.tags()
        assert tags["SM_REF_ID"] == "20200101_101010_1014" and tags["SM_STEP"] == "1"
        assert tags["SM_DT_DAYS"] == "60.0"
        assert tags["SM_POLYFIT_ORDER"] == "2" and tags["SM_POLYFIT_DEM"] == "none"
        assert float(tags["SM_POLYFIT_RMS_DX"]) == pytest.approx(NOISE, abs=0.003)
        np.testing.assert_array_equal(np.isnan(b.read(1)), ~case["valid"])


def test_percentile_cut_rejects_gross_outliers(tmp_path):
    case = synthetic_case(2, seed=7)
    rng = np.random.default_rng(8)
    outliers = rng.random(case["dx"].shape) < 0.02
    signs = np.where(rng.random(case["dx"].shape) < 0.5, -1.0, 1.0)
    dx = case["dx"] + np.where(outliers, 50.0 * signs, 0.0)
    dy = case["dy"] + np.where(outliers, -50.0 * signs, 0.0)
    src = write_ours(tmp_path / "disp.tif", dx, dy, case["valid"])
    good = ~case["moving"] & ~outliers

    out = str(tmp_path / "cut.tif")
    deramp_file(src, out, order=2, moving_mask=case["moving"])
    rms_dx, rms_dy = residual_rms(out, case, good)
    assert rms_dx < 0.02 and rms_dy < 0.02

    # without the cut the outliers bend the fit: proves the cut is what helps
    out_nocut = str(tmp_path / "nocut.tif")
    deramp_file(src, out_nocut, order=2, moving_mask=case["moving"], percentile_low=0, percentile_high=100)
    assert max(residual_rms(out_nocut, case, good)) > 0.1


def test_subsampling_to_max_fit_points(tmp_path):
    case = synthetic_case(1, seed=3)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    out = str(tmp_path / "out.tif")
    result = deramp_file(src, out, order=1, moving_mask=case["moving"], max_fit_points=400)
    assert result["n_fit_points_dx"] == 400 and result["n_fit_points_dy"] == 400
    rms_dx, rms_dy = residual_rms(out, case, ~case["moving"])
    assert rms_dx < 0.02 and rms_dy < 0.02


def test_asp_input_becomes_our_format(tmp_path):
    case = synthetic_case(1, seed=4)
    dx = np.where(case["valid"], case["dx"], -9999.0)  # ASP writes junk under mask 0
    dy = np.where(case["valid"], case["dy"], -9999.0)
    src = write_asp(tmp_path / "run-F.tif", dx, dy, case["valid"].astype(np.float32))
    out = str(tmp_path / "run-F_deramped.tif")
    deramp_file(src, out, order=1, moving_mask=case["moving"])
    info = describe_disparity(out)
    assert not info.is_asp and info.step == 1 and info.tags["SM_STEP"] == "1"
    assert info.descriptions == BASE_DESCRIPTIONS and info.descriptions[3] == PEAK
    assert np.isnan(read_band(out, 4)).all()
    np.testing.assert_array_equal(read_band(out, 3), case["valid"].astype(float))
    assert np.isnan(read_band(out, 1)[~case["valid"]]).all()
    rms_dx, rms_dy = residual_rms(out, case, ~case["moving"])
    assert rms_dx < 0.02 and rms_dy < 0.02


# --------------------------------------------------------------------------- DEM

DEM_NODATA = -9999.0
DEM_CELL = 2 * CELL
DEM_LEFT, DEM_TOP = X0 - 5 * DEM_CELL + 17.0, Y0 + 5 * DEM_CELL - 17.0
DEM_GAP_ROWS, DEM_GAP_COLS = slice(20, 26), slice(30, 36)


def hill(easting, northing):
    """Smooth terrain (m) with a valley below sea level: -150 .. ~1350 m."""
    cx, cy = X0 + 0.45 * WIDTH * CELL, Y0 - 0.5 * HEIGHT * CELL
    r2 = (easting - cx) ** 2 + (northing - cy) ** 2
    return -150.0 + 1500.0 * np.exp(-r2 / (2 * 900.0 ** 2)) + 0.05 * (easting - X0)


def write_coarse_dem(path, nodata_box=True):
    """DEM on a 2x coarser grid, shifted by 17 m, extending 5 cells beyond the disparity grid."""
    cell, left, top = DEM_CELL, DEM_LEFT, DEM_TOP
    width, height = WIDTH // 2 + 10, HEIGHT // 2 + 10
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    z = hill(left + (cols + 0.5) * cell, top - (rows + 0.5) * cell)
    if nodata_box:
        z[DEM_GAP_ROWS, DEM_GAP_COLS] = DEM_NODATA
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32",
                   crs=CRS_UTM, transform=from_origin(left, top, cell, cell), nodata=DEM_NODATA)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(z.astype(np.float32), 1)
    return str(path)


def grid_centres():
    cols, rows = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    return X0 + (cols + 0.5) * CELL, Y0 - (rows + 0.5) * CELL


def z_on_grid():
    return hill(*grid_centres())


def dem_gap_regions():
    """Grid cells surely NaN (all 4 bilinear neighbours are nodata) and surely valid (outside the gap)."""
    east, north = grid_centres()
    def inside(first, last):  # between DEM cell-centre (or edge) coordinates of the gap
        (c0, c1), (r0, r1) = first, last
        return (east > DEM_LEFT + c0 * DEM_CELL) & (east < DEM_LEFT + c1 * DEM_CELL) & \
               (north < DEM_TOP - r0 * DEM_CELL) & (north > DEM_TOP - r1 * DEM_CELL)
    rows, cols = DEM_GAP_ROWS, DEM_GAP_COLS
    surely_nan = inside((cols.start + 0.5, cols.stop - 0.5), (rows.start + 0.5, rows.stop - 0.5))
    surely_valid = ~inside((cols.start, cols.stop), (rows.start, rows.stop))
    return surely_nan, surely_valid


@pytest.mark.parametrize("order", [1, 2, 3])
def test_deramp_with_dem_term_from_coarser_grid(tmp_path, order):
    z = z_on_grid()
    # any affine rescaling of z spans the same polynomial space as the tool's min-max scaling
    case = synthetic_case(order, seed=10 + order, z=(z + 150.0) / 1500.0)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    dem = write_coarse_dem(tmp_path / "dem.tif")
    out = str(tmp_path / "out.tif")
    result = deramp_file(src, out, order=order, moving_mask=case["moving"], dem_path=dem)
    assert len(result["coefficients_dx"]) == n_terms(order, True)

    dx = read_band(out, 1)
    dem_gap = np.isnan(dx) & case["valid"]
    # DEM nodata (6x6 coarse cells = 12x12 grid cells) becomes NaN and invalid; GDAL's
    # bilinear kernel fills cells with at least one valid neighbour, so the gap shrinks a bit
    surely_nan, surely_valid = dem_gap_regions()
    assert surely_nan.sum() == 100
    assert dem_gap[surely_nan & case["valid"]].all() and not dem_gap[surely_valid].any()
    assert (read_band(out, 3)[dem_gap] == 0).all()
    # below-sea-level terrain is data, not nodata
    below_sea = (z < 0) & case["valid"]
    assert below_sea.sum() > 1000 and np.isfinite(dx[below_sea]).all()
    rms_dx, rms_dy = residual_rms(out, case, ~case["moving"] & ~dem_gap)
    assert rms_dx < 0.02 and rms_dy < 0.02
    with rasterio.open(out) as ds:
        assert ds.tags()["SM_POLYFIT_DEM"] == "dem.tif"


def test_order3_with_and_without_dem_on_the_same_pair(tmp_path):
    """The original tool crashed on order 3 without DEM; both variants must run and help."""
    z = z_on_grid()
    case = synthetic_case(3, seed=21, z=(z + 150.0) / 1500.0)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    dem = write_coarse_dem(tmp_path / "dem.tif", nodata_box=False)
    with_dem = deramp_file(src, str(tmp_path / "a.tif"), order=3, moving_mask=case["moving"], dem_path=dem)
    without = deramp_file(src, str(tmp_path / "b.tif"), order=3, moving_mask=case["moving"])
    assert with_dem["rms_after_dx"] == pytest.approx(NOISE, abs=0.003)
    # a cubic in x, y alone cannot absorb the terrain term, but it does reduce the ramp
    assert with_dem["rms_after_dx"] < without["rms_after_dx"] < without["rms_before_dx"]


def test_dem_in_geographic_crs_is_reprojected(tmp_path):
    from rasterio.warp import transform as warp_transform, transform_bounds
    lon_l, lat_b, lon_r, lat_t = transform_bounds(CRS_UTM, "EPSG:4326", X0 - 600, Y0 - HEIGHT * CELL - 600,
                                                  X0 + WIDTH * CELL + 600, Y0 + 600)
    res = 0.0003
    width, height = int((lon_r - lon_l) / res) + 1, int((lat_t - lat_b) / res) + 1
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    lon = (lon_l + (cols + 0.5) * res).ravel()
    lat = (lat_t - (rows + 0.5) * res).ravel()
    east, north = warp_transform("EPSG:4326", CRS_UTM, lon, lat)
    z_geo = hill(np.array(east), np.array(north)).reshape(height, width)
    dem = str(tmp_path / "dem_wgs84.tif")
    with rasterio.open(dem, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(lon_l, lat_t, res, res), nodata=DEM_NODATA) as ds:
        ds.write(z_geo.astype(np.float32), 1)
    case = synthetic_case(1, seed=30, z=(z_on_grid() + 150.0) / 1500.0)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    out = str(tmp_path / "out.tif")
    deramp_file(src, out, order=1, moving_mask=case["moving"], dem_path=dem)
    rms_dx, rms_dy = residual_rms(out, case, ~case["moving"])
    assert rms_dx < 0.02 and rms_dy < 0.02


def test_dem_errors(tmp_path):
    case = synthetic_case(1)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    far = str(tmp_path / "far.tif")
    with rasterio.open(far, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
                       crs=CRS_UTM, transform=from_origin(X0 + 1e5, Y0, 30, 30)) as ds:
        ds.write(np.ones((10, 10), np.float32), 1)
    with pytest.raises(UserInputError, match="does not overlap"):
        deramp_file(src, str(tmp_path / "o.tif"), order=1, dem_path=far)
    local = str(tmp_path / "local.tif")
    local_wkt = 'LOCAL_CS["engineering site",LOCAL_DATUM["site",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
    with rasterio.open(local, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
                       crs=CRS.from_wkt(local_wkt), transform=from_origin(X0, Y0, 30, 30)) as ds:
        ds.write(np.ones((10, 10), np.float32), 1)
    with pytest.raises(UserInputError, match="cannot be reprojected"):
        deramp_file(src, str(tmp_path / "o.tif"), order=1, dem_path=local)
    assert not os.path.exists(tmp_path / "o.tif")


# --------------------------------------------------------------------------- masks


def test_moving_mask_from_geometries_all_touched(tmp_path):
    src = write_ours(tmp_path / "disp.tif", np.zeros((HEIGHT, WIDTH)), np.zeros((HEIGHT, WIDTH)))
    # box from column 10.5 to 20.5 and row 5.5 to 8.5: all_touched -> cols 10..20, rows 5..8
    left, right = X0 + 10.5 * CELL, X0 + 20.5 * CELL
    top, bottom = Y0 - 5.5 * CELL, Y0 - 8.5 * CELL
    polygon = {"type": "Polygon", "coordinates": [[(left, top), (right, top), (right, bottom),
                                                   (left, bottom), (left, top)]]}
    mask = moving_mask_from_geometries([polygon], src)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[5:9, 10:21] = True
    np.testing.assert_array_equal(mask, expected)
    assert not moving_mask_from_geometries([], src).any()


def test_moving_mask_from_raster_nearest_with_nodata(tmp_path):
    src = write_ours(tmp_path / "disp.tif", np.zeros((HEIGHT, WIDTH)), np.zeros((HEIGHT, WIDTH)))
    # 10 m mask grid: 3x3 mask cells per disparity cell
    fine = np.zeros((HEIGHT * 3, WIDTH * 3), np.uint8)
    fine[30:60, 60:120] = 1       # disparity rows 10..19, cols 20..39
    fine[90:120, 0:30] = 7        # any nonzero value is moving: rows 30..39, cols 0..9
    fine[150:180, 150:180] = 255  # nodata: not moving
    mask_path = str(tmp_path / "mask.tif")
    with rasterio.open(mask_path, "w", driver="GTiff", width=fine.shape[1], height=fine.shape[0], count=1,
                       dtype="uint8", crs=CRS_UTM, transform=from_origin(X0, Y0, 10, 10), nodata=255) as ds:
        ds.write(fine, 1)
    mask = moving_mask_from_raster(mask_path, src)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[10:20, 20:40] = True
    expected[30:40, 0:10] = True
    np.testing.assert_array_equal(mask, expected)


def test_deramp_with_rasterised_polygon_mask(tmp_path):
    case = synthetic_case(2, seed=5)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    left, right = X0 + 40 * CELL, X0 + 90 * CELL
    top, bottom = Y0 - 30 * CELL, Y0 - 60 * CELL
    polygon = {"type": "Polygon", "coordinates": [[(left, top), (right, top), (right, bottom),
                                                   (left, bottom), (left, top)]]}
    mask = moving_mask_from_geometries([polygon], src)
    assert mask[case["moving"]].all()
    out = str(tmp_path / "out.tif")
    deramp_file(src, out, order=2, moving_mask=mask)
    rms_dx, rms_dy = residual_rms(out, case, ~mask)
    assert rms_dx < 0.02 and rms_dy < 0.02


# --------------------------------------------------------------------------- errors, cancel


def test_too_few_points_and_parameter_errors(tmp_path):
    case = synthetic_case(3)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], np.ones((HEIGHT, WIDTH), bool))
    moving = np.ones((HEIGHT, WIDTH), bool)
    moving[:8, :8] = False  # 64 stable cells, 4 + 4 dropped by the 5/95 % cut -> 56 < 100 needed
    out = tmp_path / "o.tif"
    with pytest.raises(UserInputError, match=r"too few stable valid pixels: 56 < 100"):
        deramp_file(src, str(out), order=3, moving_mask=moving)
    with pytest.raises(UserInputError, match="order must be 1, 2 or 3"):
        deramp_file(src, str(out), order=4)
    with pytest.raises(UserInputError, match="Percentiles"):
        deramp_file(src, str(out), percentile_low=95, percentile_high=5)
    with pytest.raises(UserInputError, match="Percentiles"):
        deramp_file(src, str(out), percentile_low=-1)
    with pytest.raises(UserInputError, match="shape"):
        deramp_file(src, str(out), moving_mask=np.zeros((3, 3), bool))
    assert os.listdir(tmp_path) == ["disp.tif"]


@pytest.mark.parametrize("cancel_after", [1, 15])  # during pass 1, during pass 2
def test_cancel_leaves_nothing(tmp_path, cancel_after):
    case = synthetic_case(1)
    src = write_ours(tmp_path / "disp.tif", case["dx"], case["dy"], case["valid"])
    calls = []

    def is_canceled():
        calls.append(1)
        return len(calls) >= cancel_after

    with pytest.raises(Cancelled):
        deramp_file(src, str(tmp_path / "out.tif"), order=1, is_canceled=is_canceled)
    assert len(calls) == cancel_after
    assert os.listdir(tmp_path) == ["disp.tif"]
