"""Time-series stacks (s1timeseries) and the multi-temporal speckle filter (s1mtspeckle)."""
import datetime as dt
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from core.errors import UserInputError
from core.sentinel1.naming import parse_datetime, parse_polarisation
from core.sentinel1.speckle import mt_speckle_filter, quegan_filter
from core.sentinel1.timeseries import build_time_series
from core.sentinel1.units import from_dn, power_to_db

WHEN = [dt.datetime(2022, 3, 1, 5, 30, 12) + dt.timedelta(days=12 * i) for i in range(5)]


def write(path, array, origin=(500000, 4600000), crs="EPSG:32633", nodata=float("nan"), dtype="float32", res=20):
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                       dtype=dtype, crs=crs, transform=from_origin(origin[0], origin[1], res, res), nodata=nodata) as ds:
        ds.write(array.astype(dtype), 1)
    return path


@pytest.mark.parametrize("text, expected", [
    ("S1A_IW_GRDH_1SDV_20230105T053012_20230105T053037_046654_059773_1A2B_VV.tif", "2023-01-05T05:30:12"),
    ("OPERA_L2_RTC-S1_T001-000189-IW1_20231005T140539Z_20231005T181838Z_S1A_30_v1.0_VH.tif", "2023-10-05T14:05:39"),
    ("3.220105.TC.VV.tif", "2022-01-05T00:00:00"),
    ("sarsen_gamma0_2021-12-23_VV.tif", "2021-12-23T00:00:00"),
    ("S1_20200712_VH.tif", "2020-07-12T00:00:00"),
])
def test_dates_and_polarisations_from_names(text, expected):
    assert parse_datetime(text).isoformat() == expected
    assert parse_polarisation(text) in ("VV", "VH")


def make_ard(folder, shift=(0, 0), with_mask=True):
    """Two polarisations, 5 dates, linear power; the last date is shifted by whole pixels."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    truth = {}
    for pol, level in (("VV", 0.08), ("VH", 0.015)):
        for k, when in enumerate(WHEN):
            power = (level * rng.gamma(5, 0.2, (30, 40))).astype(np.float32)
            power[0, :] = 0.0  # linear ARD nodata = 0
            origin = (500000 + 20 * shift[1] * (k == 4), 4600000 - 20 * shift[0] * (k == 4))
            name = f"S1B_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_rtc_gamma0_{pol}.tif"
            write(os.path.join(folder, name), power, origin=origin, nodata=0.0)
            truth[(pol, k)] = power
    if with_mask:
        mask = np.zeros((30, 40), np.uint8)
        mask[10:12, 5:9] = 2  # shadow
        write(os.path.join(folder, "S1B_20220301_lsmask.tif"), mask, nodata=None, dtype="uint8")
    return truth


def test_time_series_common_extent_ls_mask_db_and_vrt(tmp_path):
    truth = make_ard(str(tmp_path / "ard"), shift=(2, 3))
    result = build_time_series([str(tmp_path / "ard")], str(tmp_path / "ts"), unit="linear", memory_mb=0.05)
    assert sorted(result) == ["VH", "VV"]
    vv = result["VV"]
    assert [os.path.basename(p) for p in vv["paths"]] == [f"{i:02d}.{w:%Y%m%d}.VV.tif" for i, w in enumerate(WHEN, 1)]
    with rasterio.open(vv["vrt"]) as vrt:
        assert list(vrt.descriptions) == [w.isoformat() for w in WHEN]
        stack = vrt.read()
        # common extent: the last date is shifted 2 rows down and 3 columns right
        assert vrt.shape == (28, 37)
        assert vrt.transform.c == 500000 + 60 and vrt.transform.f == 4600000 - 40
    expected = 10 * np.log10(truth[("VV", 0)][2:, 3:])
    expected[8:10, 2:6] = np.nan  # shadow mask applied (rows 10-11, cols 5-8 in the input grid)
    expected[:, :] = np.where(np.isfinite(stack).all(axis=0), expected, np.nan)
    np.testing.assert_allclose(stack[0], expected, atol=1e-5, equal_nan=True)
    assert np.isnan(stack[:, 8:10, 2:6]).all()
    # nodata row of the shifted date (its row 0 = common row 0) is invalid for every date
    assert np.isnan(stack[:, 0, :]).all()
    assert np.isfinite(stack[:, 1:8, :]).all()


def test_time_series_integer_scaling(tmp_path):
    truth = make_ard(str(tmp_path / "ard"), with_mask=False)
    result = build_time_series([str(tmp_path / "ard")], str(tmp_path / "ts"), output_dtype="uint16")
    with rasterio.open(result["VH"]["paths"][2]) as ds:
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0
        physical = from_dn(ds.read(1), ds.scales[0], ds.offsets[0])
    expected = power_to_db(truth[("VH", 2)])
    expected[0] = np.nan
    assert np.nanmax(np.abs(physical - expected)) <= 35 / 65534 / 2 + 1e-5
    assert np.isnan(physical[0]).all()


@pytest.mark.parametrize("case, fragment", [
    ("one_date", "at least 2 dates"), ("no_dates", "No acquisition date"),
    ("mixed_crs", "Mixed coordinate reference systems"), ("no_pol", "No polarisation"),
    ("int_linear", "needs dB output"),
])
def test_time_series_bad_inputs(tmp_path, case, fragment):
    folder = tmp_path / "ard"
    folder.mkdir()
    image = np.ones((6, 6), np.float32)
    if case == "one_date":
        write(str(folder / "S1A_20220101_VV.tif"), image)
        write(str(folder / "S1A_20220113_VH.tif"), image)
        write(str(folder / "S1A_20220125_VH.tif"), image)
    elif case == "no_dates":
        write(str(folder / "scene_a_VV.tif"), image)
        write(str(folder / "scene_b_VV.tif"), image)
    elif case == "mixed_crs":
        write(str(folder / "S1A_20220101_VV.tif"), image)
        write(str(folder / "S1A_20220113_VV.tif"), image, crs="EPSG:32632")
    else:
        write(str(folder / "S1A_20220101.tif" if case == "no_pol" else folder / "S1A_20220101_VV.tif"), image)
        write(str(folder / "S1A_20220113.tif" if case == "no_pol" else folder / "S1A_20220113_VV.tif"), image)
    out = tmp_path / "ts"
    with pytest.raises(UserInputError, match=fragment):
        build_time_series([str(folder)], str(out), to_db=case != "int_linear",
                          output_dtype="uint8" if case == "int_linear" else "float32")
    assert not out.exists() or os.listdir(out) == []


def test_quegan_filter_preserves_the_mean_and_divides_the_variance():
    rng = np.random.default_rng(42)
    dates, window, level = 10, 7, 0.05
    power = rng.exponential(level, (dates, 200, 200)).astype(np.float32)  # single-look speckle
    power[3, 50:60, 50:60] = np.nan
    filtered = quegan_filter(power, window)
    assert np.isnan(filtered[3, 50:60, 50:60]).all() and np.isfinite(filtered[2, 50:60, 50:60]).all()
    inner = (slice(None), slice(10, 190), slice(70, 190))  # away from borders and the gap
    assert filtered[inner].mean() == pytest.approx(power[inner].mean(), rel=0.01)
    ratio = filtered[inner].var() / power[inner].var()
    # first-order theory: 1/N from averaging N speckle ratios + (1 − 1/N)/w² from the local means
    expected = 1 / dates + (1 - 1 / dates) / window ** 2
    assert ratio == pytest.approx(expected, rel=0.1)
    assert ratio < 0.15


def test_quegan_keeps_a_changing_date_and_file_blocks_equal_whole_image(tmp_path):
    rng = np.random.default_rng(1)
    power = rng.gamma(4, 0.25, (6, 45, 33)).astype(np.float32) * 0.1
    power[2, :, 20:] *= 10  # a change on date 3 only (e.g. flooding reversed)
    filtered = quegan_filter(power, 5)
    assert filtered[2, :, 24:].mean() / filtered[1, :, 24:].mean() == pytest.approx(10, rel=0.1)
    folder = tmp_path / "ts"
    folder.mkdir()
    for k in range(6):
        write(str(folder / f"{k + 1:02d}.2022{k + 1:02d}05.VV.tif"), power_to_db(power[k]))
    result = mt_speckle_filter([str(folder)], str(tmp_path / "spk"), unit="db", window=5, memory_mb=0.02)
    with rasterio.open(result["vrt"]) as vrt:
        np.testing.assert_allclose(vrt.read(), power_to_db(quegan_filter(power, 5)), atol=2e-4)
        assert vrt.descriptions[0] == "2022-01-05T00:00:00"


def test_unit_sanity_rule_on_known_samples():
    from core.sentinel1.units import unit_problem

    rng = np.random.default_rng(0)
    power = (0.05 * rng.gamma(4.4, 1 / 4.4, 10000)).astype(np.float32)
    noisy = power - np.float32(0.02)  # thermal-noise removal leaves some negative values
    assert 0.03 < np.mean(noisy < 0) < 0.1
    assert unit_problem(noisy, "linear", "a.tif") is None
    db = 10 * np.log10(power)
    assert unit_problem(db, "db", "a.tif") is None
    bright = np.concatenate([db, np.full(4000, 25.0, np.float32)])  # 29 % corner reflectors / urban at +25 dB
    assert unit_problem(bright, "db", "a.tif") is None
    message = unit_problem(db, "linear", "a.tif")
    assert message.startswith("'a.tif' is declared linear power but 100% of its values are negative (median -13.3)")
    assert message.endswith("these look like dB. Set the unit to dB.")
    dn = rng.integers(1, 256, 10000).astype(np.float32)  # uint8 DN without scale/offset
    assert "declared dB but its values are mostly above 10 (median 12" in unit_problem(dn, "db", "b.tif")
    assert unit_problem(np.full(5, np.nan, np.float32), "db", "c.tif") is None  # no data: left to the empty checks


def _stack(folder, dates=6, shape=(40, 12)):
    rng = np.random.default_rng(3)
    when = [dt.datetime(2022, 1, 2, 5, 30) + dt.timedelta(days=12 * i) for i in range(dates)]
    paths = []
    os.makedirs(folder, exist_ok=True)
    for k, moment in enumerate(when, start=1):
        path = os.path.join(folder, f"{k:02d}.{moment:%Y%m%d}.VV.tif")
        with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=1, dtype="float32",
                           crs="EPSG:32633", transform=from_origin(400000, 5000000, 20, 20), nodata=float("nan"),
                           blockysize=1) as ds:
            ds.write((-12 + rng.normal(0, 1, shape)).astype(np.float32), 1)
        paths.append(path)
    return paths


@pytest.mark.parametrize("run", ["timeseries", "speckle", "animation", "mosaic"])
def test_long_loops_stop_at_the_next_block_on_cancel(tmp_path, run):
    """Cancel is polled once per block (per date for the animation, per image for the mosaic): the run stops
    within a few polls of the request and leaves nothing."""
    from core.errors import Cancelled
    from core.sentinel1.animation import make_animation
    from core.sentinel1.mosaic import mosaic

    paths = _stack(str(tmp_path / "in"))
    polls = []

    def is_canceled():
        polls.append(1)
        return len(polls) >= 3

    out = str(tmp_path / "out")
    with pytest.raises(Cancelled):
        if run == "timeseries":
            build_time_series(paths, out, unit="db", memory_mb=0.001, is_canceled=is_canceled)
        elif run == "speckle":
            mt_speckle_filter(paths, out, unit="db", window=3, memory_mb=0.001, is_canceled=is_canceled)
        elif run == "animation":
            make_animation(paths, os.path.join(out, "a.gif"), unit="db", is_canceled=is_canceled)
        else:
            mosaic(paths[:3], out, unit="db", date_window_days=0, is_canceled=is_canceled)
    assert len(polls) == 3  # stopped at the poll that saw the request
    assert not os.path.exists(out)
