"""Checks of the committed PlanetScope-like sample (``sample/``) against its truth.

Nothing is regenerated from the Sentinel-2 source: the tests read the
committed files, so they also guard against a sample edited by hand or a
generator changed without re-running it.  Offsets are in pixels, dx + right
(east), dy + down (south); chip centres use GDAL pixel coordinates (a chip
starting at column a of size c is centred at a + c/2).
"""
from __future__ import annotations

import json
import math
import os
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from scipy import ndimage
from skimage.registration import phase_cross_correlation

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO_ROOT, "sample")
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import make_sample as ms  # noqa: E402

SCENE_IDS = [
    "20200715_151233_62_2414",
    "20210112_150921_07_2455",
    "20210718_151502_45_241e",
    "20220109_150744_88_2276",
    "20220716_151117_19_24a3",
]
EXPECTED_TRANSFORM = Affine(3.0, 0.0, 441730.0, 0.0, -3.0, 4177460.0)
CHIP = 64
CORE_CHIP = (228, 218)  # (row, col) upper-left; centre (col 250, row 260) = landslide centre
STABLE_CHIPS = [(100, 60), (380, 100), (150, 400)]
PCC_TOLERANCE_PX = 0.15
GRADIENT_TOLERANCE_PX = 0.03


@pytest.fixture(scope="module")
def truth():
    with open(os.path.join(SAMPLE, "truth.json"), encoding="utf-8") as handle:
        return json.load(handle)


def read_band(truth, index: int, band: int = 2) -> np.ndarray:
    with rasterio.open(os.path.join(SAMPLE, truth["scenes"][index]["file"])) as ds:
        return ds.read(band).astype(np.float64)


@pytest.fixture(scope="module")
def green_first_last(truth):
    return read_band(truth, 0), read_band(truth, 4)


def chip(image: np.ndarray, row: int, col: int) -> np.ndarray:
    return image[row:row + CHIP, col:col + CHIP]


def chip_centre(row: int, col: int):
    return np.array(col + CHIP / 2.0), np.array(row + CHIP / 2.0)


def phase_correlation_offset(ref: np.ndarray, sec: np.ndarray, row: int, col: int):
    """(dx, dy) of ``sec`` relative to ``ref`` at a chip, by skimage phase correlation."""
    # phase_cross_correlation(a, b) returns the shift that moves b onto a, so
    # (sec, ref) gives how far the reference content moved in the secondary.
    shift, _, _ = phase_cross_correlation(chip(sec, row, col), chip(ref, row, col), upsample_factor=50)
    return float(shift[1]), float(shift[0])


def gradient_offset(ref: np.ndarray, sec: np.ndarray, row: int, col: int, iterations: int = 15):
    """(dx, dy) by iterative least-squares gradient matching (Lucas-Kanade) with gain/offset."""
    rows, cols = np.mgrid[row:row + CHIP, col:col + CHIP].astype(np.float64)
    template = chip(ref, row, col)
    template = (template - template.mean()) / template.std()
    dx = dy = 0.0
    for _ in range(iterations):
        moved = ndimage.map_coordinates(sec, [rows + dy, cols + dx], order=3, mode="nearest")
        moved = (moved - moved.mean()) / moved.std()
        grad_row, grad_col = np.gradient(moved)
        design = np.stack([grad_col.ravel(), grad_row.ravel()], axis=1)
        step = np.linalg.lstsq(design, (template - moved).ravel(), rcond=None)[0]
        dx, dy = dx + step[0], dy + step[1]
    return dx, dy


# --------------------------------------------------------------------------
# Files and metadata
# --------------------------------------------------------------------------
def test_sample_holds_planet_named_scenes_udm2_truth_and_polygons():
    expected = {f"{sid}_3B_AnalyticMS_SR_clip.tif" for sid in SCENE_IDS}
    expected |= {f"{sid}_3B_udm2_clip.tif" for sid in SCENE_IDS}
    expected |= {"truth.json", "landslide_outline.geojson", "landslide_core.geojson", "README.md"}
    assert {f for f in os.listdir(SAMPLE) if not f.endswith(".aux.xml")} == expected  # GDAL may add stats


def test_sample_stays_below_10_mb():
    total = sum(os.path.getsize(os.path.join(SAMPLE, name)) for name in os.listdir(SAMPLE))
    assert total <= 10 * 1024 * 1024


@pytest.mark.parametrize("scene_id", SCENE_IDS)
def test_scene_is_4band_uint16_3m_utm18n_with_nodata_0(scene_id):
    with rasterio.open(os.path.join(SAMPLE, f"{scene_id}_3B_AnalyticMS_SR_clip.tif")) as ds:
        assert (ds.count, ds.width, ds.height) == (4, 640, 512)
        assert ds.dtypes == ("uint16",) * 4
        assert ds.crs.to_epsg() == 32618
        assert ds.transform.almost_equals(EXPECTED_TRANSFORM)
        assert ds.nodata == 0
        assert ds.descriptions == ("blue", "green", "red", "nir")
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        assert ds.tags()["SCENE_ID"] == scene_id
        data = ds.read()
    assert data.min() >= 1  # 0 is reserved for nodata
    assert 300 < np.median(data[1]) < 3000  # green reflectance x 10000 of farmland/water


@pytest.mark.parametrize("index", range(5))
def test_udm2_is_8band_uint8_on_the_scene_grid_clear_except_the_cloud(truth, index):
    scene = truth["scenes"][index]
    with rasterio.open(os.path.join(SAMPLE, scene["udm2_file"])) as ds:
        assert (ds.count, ds.width, ds.height) == (8, 640, 512)
        assert ds.dtypes == ("uint8",) * 8
        assert ds.crs.to_epsg() == 32618
        assert ds.transform.almost_equals(EXPECTED_TRANSFORM)
        udm = ds.read()
    clear, cloud = udm[0], udm[5]
    assert np.array_equal(clear, 1 - cloud)
    assert udm[[1, 2, 3, 4]].max() == 0  # no snow, shadow, haze
    if not scene["cloudy"]:
        assert cloud.sum() == 0
        return
    assert index == 2
    # Ellipse of semi-axes 22 x 16 px: pi * 22 * 16 = 1106 px.
    assert abs(int(cloud.sum()) - math.pi * 22 * 16) < 25
    green = read_band(truth, index)
    assert green[cloud == 1].min() > 4000 > np.percentile(green[cloud == 0], 99)
    rows, cols = np.nonzero(cloud)
    weight = ms.landslide_weight(cols + 0.5, rows + 0.5, truth["landslide"])
    assert weight.max() == 0  # the cloud is on stable ground


# --------------------------------------------------------------------------
# Truth
# --------------------------------------------------------------------------
def test_truth_velocity_is_9_m_per_yr_towards_135_deg(truth):
    slide = truth["landslide"]
    v_east, v_north = slide["velocity_east_m_per_yr"], slide["velocity_north_m_per_yr"]
    assert math.hypot(v_east, v_north) == pytest.approx(9.0, abs=1e-9)
    assert slide["speed_m_per_yr"] == 9.0 and slide["azimuth_deg"] == 135.0
    assert math.degrees(math.atan2(v_east, v_north)) % 360 == pytest.approx(135.0, abs=1e-9)
    assert v_east == pytest.approx(6.3639610307) and v_north == pytest.approx(-6.3639610307)
    # 3 m pixels: 3 px/yr, moving right (east) and down (south).
    assert slide["velocity_col_px_per_yr"] == pytest.approx(v_east / 3.0)
    assert slide["velocity_row_px_per_yr"] == pytest.approx(-v_north / 3.0)
    assert truth["pixel_size_m"] == 3 and truth["crs"] == "EPSG:32618"
    assert Affine(*truth["transform"]).almost_equals(EXPECTED_TRANSFORM)


def test_truth_scene_times_come_from_the_ids(truth):
    scenes = truth["scenes"]
    assert [scene["id"] for scene in scenes] == SCENE_IDS
    first = datetime(2020, 7, 15, 15, 12, 33, 620000, tzinfo=timezone.utc)
    assert scenes[0]["acquired"] == "2020-07-15T15:12:33.620000Z"
    last = datetime(2022, 7, 16, 15, 11, 17, 190000, tzinfo=timezone.utc)
    assert scenes[4]["t_years"] == pytest.approx((last - first).total_seconds() / 86400 / 365.25)
    assert scenes[4]["t_years"] == pytest.approx(2.0013665, abs=1e-6)
    gaps_days = np.diff([scene["t_years"] for scene in scenes]) * 365.25
    assert np.all((gaps_days > 170) & (gaps_days < 190))


def test_truth_ramps_stay_sub_pixel(truth):
    corners_cols = np.array([0.0, 640.0, 0.0, 640.0])
    corners_rows = np.array([0.0, 0.0, 512.0, 512.0])
    for scene in truth["scenes"]:
        assert 0.9 <= scene["gain"] <= 1.15
        for field in ms.ramp_displacement(corners_cols, corners_rows, scene["ramp_px"]):
            assert np.ptp(field) <= 0.3 + 1e-12
            assert np.abs(field).max() <= 0.35


def test_landslide_displacement_is_flat_in_the_core_and_zero_outside(truth):
    slide = truth["landslide"]
    t = truth["scenes"][4]["t_years"]
    # Centre and core edge: full 3 px/yr * t along (+x, +y) / sqrt 2.
    cols = np.array([250.0, 250.0 + 0.75 * 72.0, 250.0, 250.0 + 72.0, 10.0])
    rows = np.array([260.0, 260.0, 260.0 - 0.75 * 54.0, 260.0, 10.0])
    dx, dy = ms.landslide_displacement(cols, rows, t, slide)
    full = 3.0 * t / math.sqrt(2.0)
    np.testing.assert_allclose(dx, [full, full, full, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(dy, dx, atol=1e-9)
    # Halfway through the taper the cosine gives half the displacement.
    half_dx, _ = ms.landslide_displacement(np.array([250.0 + 0.875 * 72.0]), np.array([260.0]), t, slide)
    assert half_dx[0] == pytest.approx(full / 2.0)


def test_polygons_are_the_outline_and_core_ellipses_in_utm18n(truth):
    slide = truth["landslide"]
    for name, fraction in (("landslide_outline", 1.0), ("landslide_core", slide["core_fraction"])):
        with open(os.path.join(SAMPLE, name + ".geojson"), encoding="utf-8") as handle:
            collection = json.load(handle)
        assert "32618" in collection["crs"]["properties"]["name"]
        ring = np.array(collection["features"][0]["geometry"]["coordinates"][0])
        assert np.array_equal(ring[0], ring[-1])
        x, y = ring[:, 0], ring[:, 1]
        area = 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])  # > 0: counter-clockwise
        semi_a = fraction * slide["semi_axis_col_px"] * 3.0
        semi_b = fraction * slide["semi_axis_row_px"] * 3.0
        assert area == pytest.approx(math.pi * semi_a * semi_b, rel=1e-3)
        centre_x, centre_y = EXPECTED_TRANSFORM * (slide["centre_col_px"], slide["centre_row_px"])
        assert x.min() == pytest.approx(centre_x - semi_a) and x.max() == pytest.approx(centre_x + semi_a)
        assert y.min() == pytest.approx(centre_y - semi_b) and y.max() == pytest.approx(centre_y + semi_b)


# --------------------------------------------------------------------------
# Independent checks that the pixels carry the stated motion
# --------------------------------------------------------------------------
def test_core_chip_offset_by_phase_correlation_matches_truth(truth, green_first_last):
    ref, sec = green_first_last
    row, col = CORE_CHIP
    cols, rows = chip_centre(row, col)
    exp_dx, exp_dy = ms.expected_pair_offsets(truth, 0, 4, cols, rows)
    # Expected = landslide (6.004 px towards 135 deg) + ramp difference; the exact
    # value evaluates the secondary ramp at the displaced position (~1e-3 px apart).
    ramp4 = ms.ramp_displacement(cols, rows, truth["scenes"][4]["ramp_px"])
    ramp0 = ms.ramp_displacement(cols, rows, truth["scenes"][0]["ramp_px"])
    slide = 3.0 * truth["scenes"][4]["t_years"] / math.sqrt(2.0)
    assert float(exp_dx) == pytest.approx(slide + float(ramp4[0] - ramp0[0]), abs=2e-3)
    assert float(exp_dy) == pytest.approx(slide + float(ramp4[1] - ramp0[1]), abs=2e-3)
    dx, dy = phase_correlation_offset(ref, sec, row, col)
    assert abs(dx - float(exp_dx)) < PCC_TOLERANCE_PX
    assert abs(dy - float(exp_dy)) < PCC_TOLERANCE_PX


@pytest.mark.parametrize("row, col", STABLE_CHIPS)
def test_stable_chip_offset_by_phase_correlation_is_the_ramp_difference(truth, green_first_last, row, col):
    ref, sec = green_first_last
    cols, rows = chip_centre(row, col)
    ramp4 = ms.ramp_displacement(cols, rows, truth["scenes"][4]["ramp_px"])
    ramp0 = ms.ramp_displacement(cols, rows, truth["scenes"][0]["ramp_px"])
    exp_dx, exp_dy = ms.expected_pair_offsets(truth, 0, 4, cols, rows)
    # No landslide here: only the ramps (secondary ramp taken at the displaced position).
    assert float(exp_dx) == pytest.approx(float(ramp4[0] - ramp0[0]), abs=1e-4)
    assert float(exp_dy) == pytest.approx(float(ramp4[1] - ramp0[1]), abs=1e-4)
    dx, dy = phase_correlation_offset(ref, sec, row, col)
    assert abs(dx - float(exp_dx)) < PCC_TOLERANCE_PX
    assert abs(dy - float(exp_dy)) < PCC_TOLERANCE_PX


@pytest.mark.parametrize("row, col", [CORE_CHIP] + STABLE_CHIPS)
def test_gradient_matching_recovers_truth_to_three_hundredths_of_a_pixel(truth, green_first_last, row, col):
    # Phase correlation has ~0.1 px pixel-locking bias; a gradient-based
    # least-squares match shows the truth is far more exact than that.
    ref, sec = green_first_last
    exp_dx, exp_dy = ms.expected_pair_offsets(truth, 0, 4, *chip_centre(row, col))
    dx, dy = gradient_offset(ref, sec, row, col)
    assert abs(dx - float(exp_dx)) < GRADIENT_TOLERANCE_PX
    assert abs(dy - float(exp_dy)) < GRADIENT_TOLERANCE_PX


def test_expected_offsets_invert_the_warp_in_the_taper(truth):
    # Sec position y of a feature at ref x satisfies y - F_sec(y) = x - F_ref(x).
    cols = np.array([250.0 + 0.85 * 72.0, 250.0, 300.0])
    rows = np.array([260.0, 260.0 + 0.9 * 54.0, 300.0])
    dx, dy = ms.expected_pair_offsets(truth, 1, 4, cols, rows)
    ref_dx, ref_dy = ms.scene_displacement(cols, rows, truth, 1)
    sec_dx, sec_dy = ms.scene_displacement(cols + dx, rows + dy, truth, 4)
    np.testing.assert_allclose(cols + dx - sec_dx, cols - ref_dx, atol=1e-9)
    np.testing.assert_allclose(rows + dy - sec_dy, rows - ref_dy, atol=1e-9)


def test_committed_green_bands_regenerate_from_the_source_crop(truth):
    # tests/data/s2_b03_crop.tif is the same Sentinel-2 B03 window as the source,
    # so each committed green band must be reproducible from the truth alone.
    with rasterio.open(os.path.join(REPO_ROOT, "tests", "data", "s2_b03_crop.tif")) as ds:
        texture = ds.read(1).astype(np.float64)
    for index in (0, 4):
        regenerated = ms.to_uint16(ms.synthesize_band(texture, truth, index, 1))
        committed = read_band(truth, index).astype(np.int64)
        difference = np.abs(regenerated.astype(np.int64) - committed)
        assert difference.max() <= 1
        assert np.mean(difference == 0) > 0.999


def test_warp_image_shifts_content_by_the_field():
    rows, cols = np.mgrid[0:40, 0:50].astype(np.float64)
    image = np.sin(cols / 3.0) + np.cos(rows / 4.0)
    warped = ms.warp_image(image, np.full(image.shape, 1.5), np.full(image.shape, -0.5))
    expected = np.sin((cols - 1.5) / 3.0) + np.cos((rows + 0.5) / 4.0)
    np.testing.assert_allclose(warped[5:-5, 5:-5], expected[5:-5, 5:-5], atol=2e-3)
