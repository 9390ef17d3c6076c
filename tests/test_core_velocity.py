"""Tests of core.offsets.velocity: offsets -> velocity, dt resolution, median shift."""
import os
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import from_origin

import core.offsets.polyfit as polyfit
from core.offsets.disparity import BASE_DESCRIPTIONS, disparity_tags, grid_transform
from core.errors import Cancelled, UserInputError
from core.offsets.velocity import (DAYS_PER_YEAR, VELOCITY_DESCRIPTIONS, offsets_to_velocity, resolve_dt_days,
                           velocity_file)

CRS_UTM = CRS.from_epsg(32618)
NORTH_UP_3M = Affine(3.0, 0.0, 0.0, 0.0, -3.0, 0.0)
REF_ID, SEC_ID = "20200101_101010_1014", "20220907_140709_64_24a3"


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Force many row blocks so block-wise reading and writing is exercised."""
    monkeypatch.setattr(polyfit, "_BLOCK_CELLS", 400)


def write_ours(path, dx, dy, valid=None, peak=None, transform=None, tags=None, crs=CRS_UTM):
    height, width = np.shape(dx)
    valid = np.isfinite(dx) & np.isfinite(dy) if valid is None else valid
    peak = np.full((height, width), 0.8) if peak is None else peak
    profile = dict(driver="GTiff", width=width, height=height, count=4, dtype="float32", crs=crs,
                   transform=transform or from_origin(600000.0, 7000000.0, 3.0, 3.0), nodata=np.nan)
    with rasterio.open(path, "w", **profile) as ds:
        for band, data in enumerate((np.where(valid, dx, np.nan), np.where(valid, dy, np.nan),
                                     valid.astype(np.float32), peak), start=1):
            ds.write(np.asarray(data, np.float32), band)
        for band, text in enumerate(BASE_DESCRIPTIONS, start=1):
            ds.set_band_description(band, text)
        ds.update_tags(**(disparity_tags(step=1) if tags is None else tags))
    return str(path)


def read_all(path):
    with rasterio.open(path) as ds:
        return ds.read().astype(np.float64), ds.tags(), ds.descriptions, ds.transform


def uniform(value, shape=(40, 30)):
    return np.full(shape, float(value))


# --------------------------------------------------------------------------- arrays


def test_velocity_scale_three_metre_pixels_one_year():
    speed, azimuth, v_east, v_north = offsets_to_velocity(np.array([2.0]), np.array([0.0]), NORTH_UP_3M, 365.25)
    assert v_east[0] == pytest.approx(6.0) and v_north[0] == pytest.approx(0.0)
    assert speed[0] == pytest.approx(6.0) and azimuth[0] == pytest.approx(90.0)
    assert DAYS_PER_YEAR == 365.25
    # half a year doubles the speed
    assert offsets_to_velocity(2.0, 0.0, NORTH_UP_3M, 365.25 / 2)[0] == pytest.approx(12.0)


@pytest.mark.parametrize("dx, dy, expected", [(0, -1, 0.0), (1, 0, 90.0), (0, 1, 180.0), (-1, 0, 270.0),
                                              (1, -1, 45.0), (-1, 1, 225.0)])
def test_azimuth_clockwise_from_grid_north(dx, dy, expected):
    _, azimuth, v_east, v_north = offsets_to_velocity(np.array([dx], float), np.array([dy], float),
                                                      NORTH_UP_3M, 365.25)
    assert azimuth[0] == pytest.approx(expected)
    # north-up: dy + down is southward motion
    assert v_north[0] == pytest.approx(-3.0 * dy) and v_east[0] == pytest.approx(3.0 * dx)


def test_nan_offsets_stay_nan():
    speed, azimuth, v_east, v_north = offsets_to_velocity(np.array([np.nan, 1.0]), np.array([0.0, np.nan]),
                                                          NORTH_UP_3M, 10.0)
    assert np.isnan(speed).all() and np.isnan(azimuth).all() and np.isnan(v_east).all()


def test_rotated_grid():
    # columns point 30 deg counter-clockwise from east (azimuth 60), 10 m pixels
    transform = Affine.rotation(30.0) * Affine.scale(10.0, -10.0)
    speed, azimuth, v_east, v_north = offsets_to_velocity(np.array([1.0, 0.0]), np.array([0.0, 1.0]),
                                                          transform, 365.25)
    np.testing.assert_allclose(v_east, [10 * np.cos(np.radians(30)), 10 * np.sin(np.radians(30))], atol=1e-9)
    np.testing.assert_allclose(v_north, [10 * np.sin(np.radians(30)), -10 * np.cos(np.radians(30))], atol=1e-9)
    np.testing.assert_allclose(azimuth, [60.0, 150.0], atol=1e-9)
    np.testing.assert_allclose(speed, [10.0, 10.0], atol=1e-9)


def test_negative_dt_flips_velocity_and_azimuth():
    speed, azimuth, v_east, v_north = offsets_to_velocity(np.array([2.0]), np.array([-1.0]), NORTH_UP_3M, -365.25)
    assert v_east[0] == pytest.approx(-6.0) and v_north[0] == pytest.approx(-3.0)
    assert speed[0] == pytest.approx(np.hypot(6, 3))
    forward = offsets_to_velocity(np.array([2.0]), np.array([-1.0]), NORTH_UP_3M, 365.25)[1][0]
    assert azimuth[0] == pytest.approx((forward + 180.0) % 360.0)
    assert azimuth[0] == pytest.approx(180.0 + np.degrees(np.arctan2(6, 3)))


@pytest.mark.parametrize("dt", [0.0, float("nan"), float("inf")])
def test_zero_or_non_finite_dt_is_an_error(dt):
    with pytest.raises(UserInputError, match="zero time separation"):
        offsets_to_velocity(np.ones(2), np.ones(2), NORTH_UP_3M, dt)


# --------------------------------------------------------------------------- dt resolution


def acquired(scene_id):
    parts = scene_id.split("_")
    stamp = datetime.strptime(parts[0] + parts[1], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    hundredths = int(parts[2]) if len(parts) == 4 else 0
    return stamp.timestamp() + hundredths / 100.0


def expected_days(ref_id, sec_id):
    return (acquired(sec_id) - acquired(ref_id)) / 86400.0


def test_dt_priority_explicit_then_dates_then_tags(tmp_path):
    path = write_ours(tmp_path / "d.tif", uniform(1), uniform(0),
                      tags=disparity_tags(step=1, dt_days=30.0, ref_date="2020-01-01", sec_date="2020-03-01"))
    assert resolve_dt_days(path) == 30.0
    assert resolve_dt_days(path, dt_days=12.5) == 12.5
    assert resolve_dt_days(path, ref_date="2020-01-01T00:00:00Z", sec_date="2020-01-11T12:00:00") == 10.5
    with pytest.raises(UserInputError, match="both"):
        resolve_dt_days(path, ref_date="2020-01-01")
    with pytest.raises(UserInputError, match="not an ISO 8601"):
        resolve_dt_days(path, ref_date="01/01/2020", sec_date="2020-01-11")
    with pytest.raises(UserInputError, match="zero time separation"):
        resolve_dt_days(path, dt_days=0.0)


def test_dt_from_date_tags(tmp_path):
    path = write_ours(tmp_path / "d.tif", uniform(1), uniform(0),
                      tags=disparity_tags(step=1, ref_date="2020-01-01T10:10:10+00:00",
                                          sec_date="2020-03-01T22:10:10Z"))
    assert resolve_dt_days(path) == pytest.approx(60.5)


def test_dt_from_id_tags(tmp_path):
    path = write_ours(tmp_path / "d.tif", uniform(1), uniform(0),
                      tags=disparity_tags(step=1, ref_id=REF_ID, sec_id=SEC_ID))
    assert resolve_dt_days(path) == pytest.approx(expected_days(REF_ID, SEC_ID), abs=1e-6)


@pytest.mark.parametrize("ref_id, sec_id", [("20200101_101010_1014", "20200301_221010_1014"),
                                            ("20220901_120000_12_24a3", "20220907_140709_64_24a3"),
                                            (REF_ID, SEC_ID)])
def test_dt_from_file_name_both_id_forms(tmp_path, ref_id, sec_id):
    path = write_ours(tmp_path / f"{ref_id}_{sec_id}_disparity.tif", uniform(1), uniform(0))
    assert resolve_dt_days(path) == pytest.approx(expected_days(ref_id, sec_id), abs=1e-6)
    # reversed order: secondary older than reference -> negative dt
    reversed_path = write_ours(tmp_path / f"{sec_id}_{ref_id}_disparity.tif", uniform(1), uniform(0))
    assert resolve_dt_days(reversed_path) == pytest.approx(-expected_days(ref_id, sec_id), abs=1e-6)


def test_dt_missing_is_a_clear_error(tmp_path):
    path = write_ours(tmp_path / "pair.tif", uniform(1), uniform(0))
    with pytest.raises(UserInputError, match="give DT_DAYS"):
        resolve_dt_days(path)


# --------------------------------------------------------------------------- files


def test_velocity_file_north_up(tmp_path):
    valid = np.ones((40, 30), bool)
    valid[5:9, 3:7] = False
    src = write_ours(tmp_path / "d.tif", uniform(2), uniform(-1), valid=valid,
                     tags=disparity_tags(step=1, ref_id=REF_ID, sec_id=SEC_ID, dt_days=365.25, corr_method="zncc"))
    out = str(tmp_path / "v.tif")
    seen = []
    result = velocity_file(src, out, progress=seen.append)
    bands, tags, descriptions, transform = read_all(out)
    assert descriptions == VELOCITY_DESCRIPTIONS
    with rasterio.open(src) as ds:
        assert transform == ds.transform
    np.testing.assert_allclose(bands[2][valid], 6.0, rtol=1e-6)
    np.testing.assert_allclose(bands[3][valid], 3.0, rtol=1e-6)
    np.testing.assert_allclose(bands[0][valid], np.hypot(6, 3), rtol=1e-6)
    np.testing.assert_allclose(bands[1][valid], np.degrees(np.arctan2(6, 3)), rtol=1e-6)
    assert np.isnan(bands[:, ~valid]).all()
    assert result == {"dt_days": 365.25, "median_dx": 0.0, "median_dy": 0.0, "n_valid": 40 * 30 - 16}
    assert tags["SM_DT_DAYS"] == "365.25" and tags["SM_REF_ID"] == REF_ID and tags["SM_CORR_METHOD"] == "zncc"
    assert tags["SM_MEDIAN_SHIFT_DX"] == "0.0" and tags["SM_MEDIAN_SHIFT_DY"] == "0.0"
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == 100.0


def test_velocity_file_step_greater_than_one_uses_reference_pixels(tmp_path):
    ref_transform = from_origin(600000.0, 7000000.0, 3.0, 3.0)
    grid = grid_transform(ref_transform, 0, 0, chip=32, step=8)  # 24 m output cells
    src = write_ours(tmp_path / "d.tif", uniform(2), uniform(0), transform=grid, tags=disparity_tags(step=8))
    out = str(tmp_path / "v.tif")
    velocity_file(src, out, dt_days=365.25)
    bands, _, _, transform = read_all(out)
    assert transform == grid and transform.a == 24.0
    np.testing.assert_allclose(bands[2], 6.0, rtol=1e-6)  # 2 reference px * 3 m, not * 24 m
    np.testing.assert_allclose(bands[1], 90.0, rtol=1e-6)


def test_velocity_file_rotated_grid(tmp_path):
    transform = Affine.translation(600000.0, 7000000.0) * Affine.rotation(30.0) * Affine.scale(10.0, -10.0)
    src = write_ours(tmp_path / "d.tif", uniform(0), uniform(1), transform=transform)
    out = str(tmp_path / "v.tif")
    velocity_file(src, out, dt_days=365.25 / 2)
    bands, _, _, _ = read_all(out)
    np.testing.assert_allclose(bands[0], 20.0, rtol=1e-6)
    np.testing.assert_allclose(bands[1], 150.0, rtol=1e-6)
    np.testing.assert_allclose(bands[2], 10.0, rtol=1e-6)
    np.testing.assert_allclose(bands[3], -20.0 * np.cos(np.radians(30)), rtol=1e-6)


def test_velocity_file_reads_asp_three_band(tmp_path):
    mask = np.ones((40, 30), np.float32)
    mask[10:20, :] = 0
    src = str(tmp_path / f"{REF_ID}_{SEC_ID}-F.tif")
    with rasterio.open(src, "w", driver="GTiff", width=30, height=40, count=3, dtype="float32", crs=CRS_UTM,
                       transform=from_origin(600000.0, 7000000.0, 3.0, 3.0)) as ds:
        ds.write(np.full((40, 30), -1.0, np.float32), 1)
        ds.write(np.full((40, 30), 0.0, np.float32), 2)
        ds.write(mask, 3)
    out = str(tmp_path / "v.tif")
    result = velocity_file(src, out)
    bands, _, _, _ = read_all(out)
    dt_years = expected_days(REF_ID, SEC_ID) / 365.25
    assert result["dt_days"] == pytest.approx(expected_days(REF_ID, SEC_ID), abs=1e-6)
    np.testing.assert_allclose(bands[2][mask == 1], -3.0 / dt_years, rtol=1e-6)
    np.testing.assert_allclose(bands[1][mask == 1], 270.0, rtol=1e-6)
    assert np.isnan(bands[:, mask == 0]).all() and result["n_valid"] == 30 * 30
    with pytest.raises(UserInputError, match="no 'peak ZNCC' band"):
        velocity_file(src, str(tmp_path / "v2.tif"), min_peak=0.3)


def median_case():
    """Stable ground offset (0.5, -0.25) px; a moving area covering 60 % of the cells."""
    rng = np.random.default_rng(3)
    shape = (40, 30)
    moving = np.zeros(shape, bool)
    moving[:24, :] = True
    dx = 0.5 + rng.normal(0, 0.01, shape) + np.where(moving, 10.0, 0.0)
    dy = -0.25 + rng.normal(0, 0.01, shape) + np.where(moving, -4.0, 0.0)
    return dx, dy, moving


def test_median_shift_over_stable_ground_only(tmp_path):
    dx, dy, moving = median_case()
    src = write_ours(tmp_path / "d.tif", dx, dy)
    out = str(tmp_path / "v.tif")
    result = velocity_file(src, out, dt_days=365.25, median_shift=True, stable_mask=~moving)
    assert result["median_dx"] == pytest.approx(0.5, abs=0.005)
    assert result["median_dy"] == pytest.approx(-0.25, abs=0.005)
    bands, tags, _, _ = read_all(out)
    # stable ground ends at zero (noise 0.01 px = 0.03 m/yr); the moving area keeps its own motion
    assert np.median(bands[2][~moving]) == pytest.approx(0.0, abs=0.002)
    assert np.median(bands[3][~moving]) == pytest.approx(0.0, abs=0.002)
    assert np.abs(bands[2:4, ~moving]).max() < 0.15
    assert np.median(bands[2][moving]) == pytest.approx(30.0, abs=0.05)
    assert np.median(bands[3][moving]) == pytest.approx(12.0, abs=0.05)
    assert float(tags["SM_MEDIAN_SHIFT_DX"]) == pytest.approx(result["median_dx"])

    # without a mask the median covers every valid cell, here dominated by the moving area
    everywhere = velocity_file(src, str(tmp_path / "v_all.tif"), dt_days=365.25, median_shift=True)
    assert everywhere["median_dx"] == pytest.approx(10.5, abs=0.02)
    assert everywhere["median_dy"] == pytest.approx(-4.25, abs=0.02)


def test_min_peak_drops_low_correlation(tmp_path):
    peak = np.full((40, 30), 0.9)
    peak[:, :10] = 0.2
    src = write_ours(tmp_path / "d.tif", uniform(1), uniform(0), peak=peak)
    out = str(tmp_path / "v.tif")
    result = velocity_file(src, out, dt_days=365.25, min_peak=0.5)
    bands, tags, _, _ = read_all(out)
    assert result["n_valid"] == 40 * 20 and np.isnan(bands[0][:, :10]).all()
    np.testing.assert_allclose(bands[0][:, 10:], 3.0, rtol=1e-6)
    assert tags["SM_MIN_PEAK"] == "0.5"


def test_negative_dt_from_tags_flips_file_velocity(tmp_path):
    src = write_ours(tmp_path / "d.tif", uniform(2), uniform(0),
                     tags=disparity_tags(step=1, ref_date="2021-01-01", sec_date="2020-01-01"))
    out = str(tmp_path / "v.tif")
    result = velocity_file(src, out)
    assert result["dt_days"] == -366.0
    bands, _, _, _ = read_all(out)
    np.testing.assert_allclose(bands[2], -6.0 * 365.25 / 366.0, rtol=1e-6)
    np.testing.assert_allclose(bands[1], 270.0, rtol=1e-6)


def test_file_errors(tmp_path):
    geographic = write_ours(tmp_path / "geo.tif", uniform(1), uniform(0), crs=CRS.from_epsg(4326),
                            transform=from_origin(10.0, 60.0, 0.0001, 0.0001))
    with pytest.raises(UserInputError, match="geographic CRS"):
        velocity_file(geographic, str(tmp_path / "v.tif"), dt_days=10)
    src = write_ours(tmp_path / "d.tif", uniform(1), uniform(0))
    with pytest.raises(UserInputError, match="zero time separation"):
        velocity_file(src, str(tmp_path / "v.tif"), dt_days=0)
    with pytest.raises(UserInputError, match="shape"):
        velocity_file(src, str(tmp_path / "v.tif"), dt_days=10, median_shift=True, stable_mask=np.ones((2, 2), bool))
    with pytest.raises(UserInputError, match="stable ground"):
        velocity_file(src, str(tmp_path / "v.tif"), dt_days=10, median_shift=True,
                      stable_mask=np.zeros((40, 30), bool))
    assert sorted(os.listdir(tmp_path)) == ["d.tif", "geo.tif"]


@pytest.mark.parametrize("median_shift", [False, True])
def test_cancel_leaves_nothing(tmp_path, median_shift):
    src = write_ours(tmp_path / "d.tif", uniform(1), uniform(0))
    calls = []

    def is_canceled():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Cancelled):
        velocity_file(src, str(tmp_path / "v.tif"), dt_days=10, median_shift=median_shift, is_canceled=is_canceled)
    assert len(calls) == 3 and os.listdir(tmp_path) == ["d.tif"]
