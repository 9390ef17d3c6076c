"""Timescan metrics against an independent per-pixel numpy computation (REFERENCE §9.4–9.5)."""
import datetime as dt
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from core.errors import UserInputError
from core.dates import decimal_year
from core.sentinel1.timescan import expand_metrics, timescan, timescan_block
from core.sentinel1.units import db_to_power, from_dn, gdal_scale_offset, power_to_db, to_dn

ALL = ("avg", "max", "min", "median", "std", "std_db", "cov", "percentiles", "pdiff", "count", "harmonics")


def synthetic_stack(dates=14, shape=(9, 11), seed=1):
    """Speckled power with NaNs, strong outliers, a few sparse pixels and one empty pixel."""
    rng = np.random.default_rng(seed)
    when = [dt.datetime(2021, 1, 4) + dt.timedelta(days=int(d)) for d in np.sort(rng.choice(700, dates, replace=False))]
    years = np.array([decimal_year(w) for w in when])
    level = 10 ** (rng.uniform(-20, -5, shape) / 10)
    power = (level * rng.gamma(4.0, 0.25, (dates,) + shape)).astype(np.float32)
    power[rng.random(power.shape) < 0.15] = np.nan
    power[rng.random(power.shape) < 0.05] *= 80.0  # bright outliers
    power[rng.random(power.shape) < 0.04] /= 80.0  # dark outliers
    power[:, 0, 0] = np.nan  # no data at all
    power[3:, 0, 1] = np.nan  # 3 dates: no outlier removal, no harmonics
    power[7:, 0, 2] = np.nan  # 7 dates at most
    return power, years, when


def reference_pixel(series, years, percentiles, remove_outliers, k):
    """Independent computation for one pixel with plain numpy."""
    valid = np.isfinite(series)
    values = series[valid].astype(np.float64)
    t = years[valid]
    if remove_outliers and len(values) >= 5:
        db = 10 * np.log10(np.maximum(values, 1e-5))
        median = np.median(db)
        sigma = max(1.4826 * np.median(np.abs(db - median)), 0.1)
        inside = np.abs(db - median) <= k * sigma
        values, t = values[inside], t[inside]
    out = {"count": len(values)}
    if len(values) == 0:
        return out
    db = 10 * np.log10(values)
    out.update(avg=10 * np.log10(values.mean()), max=db.max(), min=db.min(),
               median=10 * np.log10(np.median(values)), std=values.std(), std_db=db.std(),
               cov=values.std() / values.mean())
    for q in percentiles:
        out[f"p{q:g}"] = 10 * np.log10(np.percentile(values, q))
    out["pdiff"] = out[f"p{max(percentiles):g}"] - out[f"p{min(percentiles):g}"]
    if len(values) >= 6:
        design = np.column_stack([t - years.mean(), np.cos(2 * np.pi * t), np.sin(2 * np.pi * t), np.ones_like(t)])
        coef, *_ = np.linalg.lstsq(design, db, rcond=None)
        residual = db - design @ coef
        out.update(trend=coef[0], amplitude=np.hypot(coef[1], coef[2]), phase=np.arctan2(coef[2], coef[1]),
                   model_mean=coef[3], residuals=np.sqrt(np.mean(residual ** 2)))
    return out


TOLERANCE = {"std": 1e-4, "cov": 1e-4}  # relative; dB metrics absolute below


@pytest.mark.parametrize("remove_outliers, k", [(True, 6.0), (True, 2.5), (False, 6.0)])
def test_every_metric_matches_an_independent_numpy_computation(remove_outliers, k):
    power, years, _ = synthetic_stack()
    percentiles = (5.0, 95.0, 50.0, 10.0)
    before = power.copy()
    result = timescan_block(power, years, ALL, percentiles, remove_outliers, k)
    np.testing.assert_array_equal(power, before)  # the input block is not modified (NaNs included)
    assert list(result) == expand_metrics(ALL, percentiles)
    checked = 0
    for i in range(power.shape[1]):
        for j in range(power.shape[2]):
            expected = reference_pixel(power[:, i, j], years, percentiles, remove_outliers, k)
            assert result["count"][i, j] == expected["count"]
            for name, values in result.items():
                if name == "count":
                    continue
                if name not in expected:
                    assert np.isnan(values[i, j]), (name, i, j)
                    continue
                if name in TOLERANCE:
                    assert values[i, j] == pytest.approx(expected[name], rel=TOLERANCE[name]), (name, i, j)
                else:
                    assert values[i, j] == pytest.approx(expected[name], abs=2e-4), (name, i, j)
                checked += 1
    assert checked > 1500
    assert result["count"][0, 0] == 0 and np.isnan(result["avg"][0, 0])
    assert result["count"][0, 1] == 3  # fewer than 5 dates: nothing removed


def clean_stack(dates=30, shape=(24, 24), looks=20.0, season_db=2.0, seed=3):
    """A clean 30-date stack every 12 days: ``looks``-look speckle (20: a speckle-filtered or multi-looked
    stack) on a seasonal cycle of amplitude ``season_db`` around per-pixel levels of −20…−5 dB."""
    rng = np.random.default_rng(seed)
    when = [dt.datetime(2021, 1, 3, 5, 30) + dt.timedelta(days=12 * i) for i in range(dates)]
    years = np.array([decimal_year(w) for w in when])
    level_db = rng.uniform(-20, -5, shape)[None] + season_db * np.cos(2 * np.pi * years)[:, None, None]
    power = db_to_power(level_db.astype(np.float32)) * rng.gamma(looks, 1.0 / looks, (dates,) + shape)
    return power.astype(np.float32), years


def test_default_outlier_rule_leaves_a_clean_stack_alone():
    power, years = clean_stack()
    metrics = ("avg", "max", "min", "median", "count")
    kept = timescan_block(power, years, metrics)  # default: outlier removal on, k = 6
    raw = timescan_block(power, years, metrics, remove_outliers=False)
    np.testing.assert_array_equal(kept["count"], 30)
    for name in ("avg", "max", "min", "median"):
        np.testing.assert_array_equal(kept[name], raw[name], err_msg=name)
    # max and min are the extremes of the 30 dates
    np.testing.assert_allclose(kept["max"], power_to_db(power.max(axis=0)), atol=1e-5)
    np.testing.assert_allclose(kept["min"], power_to_db(power.min(axis=0)), atol=1e-5)


@pytest.mark.parametrize("seed", [3, 4])
def test_default_outlier_rule_drops_exactly_the_injected_outliers(seed):
    power, years = clean_stack(seed=seed)
    spiked = power.copy()
    rng = np.random.default_rng(seed + 8)
    bright = rng.random(power.shape) < 0.03
    dark = ~bright & (rng.random(power.shape) < 0.03)
    level = np.broadcast_to(np.median(power, axis=0), power.shape)
    spiked[bright] = level[bright] * np.float32(10 ** 2.5)  # 25 dB above the pixel's level (ships, RFI)
    spiked[dark] = np.float32(1e-5)  # drop-outs at the −50 dB floor (noise removal left ≤ 0)
    injected = bright | dark
    assert injected.sum() > 900
    result = timescan_block(spiked, years, ("avg", "max", "min", "count"))
    np.testing.assert_array_equal(result["count"], 30 - injected.sum(axis=0))
    clean = np.where(injected, np.nan, power)
    np.testing.assert_allclose(result["avg"], power_to_db(np.nanmean(clean, axis=0)), atol=1e-4)
    np.testing.assert_allclose(result["max"], power_to_db(np.nanmax(clean, axis=0)), atol=1e-5)
    np.testing.assert_allclose(result["min"], power_to_db(np.nanmin(clean, axis=0)), atol=1e-5)


@pytest.mark.parametrize("looks, clean_drop_max, k2_drop_min", [(20.0, 2e-4, 0.05), (4.4, 5e-4, 0.05)])
def test_outlier_rule_rates(looks, clean_drop_max, k2_drop_min):
    """The measurement behind k = 6 (DEFAULT_OUTLIER_K): clean values dropped and spikes found, 30 dates."""
    power, years = clean_stack(shape=(150, 150), looks=looks, season_db=0.0, seed=5)  # no season: worst case
    count6 = timescan_block(power, years, ("count",))["count"]
    count2 = timescan_block(power, years, ("count",), outlier_k=2.0)["count"]
    assert 1 - count6.mean() / 30 < clean_drop_max  # k = 6: clean stacks (almost) untouched
    assert 1 - count2.mean() / 30 > k2_drop_min  # k = 2 would drop > 4 % of clean values
    spiked = power.copy()
    spiked[7] *= np.float32(10.0)  # +10 dB on one date
    spiked[19] *= np.float32(10 ** -1.5)  # −15 dB on another
    kept = timescan_block(spiked, years, ("count",))["count"]
    removed = (count6 - kept).mean()  # of the 2 spikes per pixel
    assert removed > (1.95 if looks == 20.0 else 0.7)  # 4.4-look speckle hides a +10 dB spike more often


def test_percentiles_do_not_alter_the_other_metrics():
    power, years, _ = synthetic_stack(seed=7)
    base = timescan_block(power, years, ("avg", "max", "min", "median", "std", "cov", "count", "harmonics"))
    for percentiles in [(5.0, 95.0), (10.0, 90.0, 50.0, 1.0, 99.0)]:
        other = timescan_block(power, years, ALL, percentiles)
        for name, values in base.items():
            np.testing.assert_array_equal(other[name], values, err_msg=name)


def test_db_power_round_trip_and_floor():
    db = np.array([-50.0, -30.0, -12.5, 0.0, 5.0, np.nan], dtype=np.float32)
    np.testing.assert_allclose(power_to_db(db_to_power(db)), db, atol=1e-5)
    np.testing.assert_allclose(db_to_power(np.float32([-10, 0, 10])), [0.1, 1.0, 10.0], rtol=1e-6)
    assert power_to_db(np.float32([-0.5]))[0] == pytest.approx(-50.0)  # non-positive power floored at 1e-5


@pytest.mark.parametrize("dtype, dn_max", [("uint8", 255), ("uint16", 65535)])
def test_integer_scaling_round_trip_and_documented_ranges(dtype, dn_max):
    value_range = (-30.0, 5.0)
    values = np.array([-40.0, -30.0, -12.3, 5.0, 9.0, np.nan])
    dn = to_dn(values, value_range, dtype)
    assert dn[0] == 1 and dn[1] == 1 and dn[3] == dn_max and dn[4] == dn_max and dn[5] == 0  # clipped, no overflow
    scale, offset = gdal_scale_offset(value_range, dtype)
    assert scale == pytest.approx(35.0 / (dn_max - 1)) and offset == pytest.approx(-30.0 - scale)
    back = from_dn(dn, scale, offset)
    assert back[1] == pytest.approx(-30.0, abs=1e-4) and back[3] == pytest.approx(5.0, abs=1e-3)
    assert abs(back[2] - (-12.3)) <= scale / 2 + 1e-6 and np.isnan(back[5])


def test_harmonics_recover_a_known_seasonal_signal():
    when = [dt.datetime(2019, 1, 1) + dt.timedelta(days=12 * i) for i in range(70)]
    years = np.array([decimal_year(w) for w in when])
    phase, amplitude, trend, level = 1.2, 2.5, -0.4, -11.0
    centred = years - years.mean()
    db = level + trend * centred + amplitude * np.cos(2 * np.pi * years - phase)
    block = np.repeat(db[:, None, None], 4, axis=2).astype(np.float32)
    block[5:9, 0, 1] = np.nan  # gaps do not bias the fit
    rng = np.random.default_rng(0)
    block[:, 0, 2] += rng.normal(0, 0.5, len(years)).astype(np.float32)
    result = timescan_block(db_to_power(block), years, ("harmonics",), remove_outliers=False)
    for column in (0, 1):
        assert result["amplitude"][0, column] == pytest.approx(amplitude, abs=1e-3)
        assert result["phase"][0, column] == pytest.approx(phase, abs=1e-3)
        assert result["trend"][0, column] == pytest.approx(trend, abs=1e-3)
        assert result["model_mean"][0, column] == pytest.approx(level, abs=1e-3)
        assert result["residuals"][0, column] == pytest.approx(0.0, abs=1e-3)
    assert result["amplitude"][0, 2] == pytest.approx(amplitude, abs=0.15)
    assert result["residuals"][0, 2] == pytest.approx(0.5, abs=0.1)


def write_dates(folder, power_db, when, pol="VV", crs="EPSG:32633", names=None):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k, (band, w) in enumerate(zip(power_db, when)):
        name = names[k] if names else f"S1A_IW_GRDH_1SDV_{w:%Y%m%dT%H%M%S}_gamma0_{pol}.tif"
        path = os.path.join(folder, name)
        with rasterio.open(path, "w", driver="GTiff", width=band.shape[1], height=band.shape[0], count=1,
                           dtype="float32", crs=crs, transform=from_origin(500000, 4600000, 20, 20),
                           nodata=float("nan")) as ds:
            ds.write(band.astype(np.float32), 1)
        paths.append(path)
    return paths


def test_timescan_files_float_and_integer(tmp_path):
    power, years, when = synthetic_stack(dates=10, shape=(40, 23), seed=3)
    paths = write_dates(str(tmp_path / "in"), power_to_db(power), when)
    report = timescan(paths, str(tmp_path / "out"), unit="db", memory_mb=0.05, workers=2)
    assert report["polarisation"] == "VV" and len(report["dates"]) == 10
    default = ("avg", "max", "min", "median", "std", "cov", "percentiles", "pdiff", "count", "harmonics")
    expected = timescan_block(db_to_power(power_to_db(power)), years, default)
    assert [os.path.basename(p) for p in report["paths"]][:3] == ["01.VV.avg.tif", "02.VV.max.tif", "03.VV.min.tif"]
    for name, path in zip(report["metrics"], report["paths"]):
        with rasterio.open(path) as ds:
            np.testing.assert_allclose(ds.read(1), expected[name], rtol=1e-5, atol=1e-5, equal_nan=True)
    with rasterio.open(report["vrt"]) as vrt:
        assert list(vrt.descriptions) == report["metrics"]
        np.testing.assert_allclose(vrt.read(1), expected["avg"], rtol=1e-6, equal_nan=True)
    scaled = timescan(paths, str(tmp_path / "int"), metrics=("avg", "cov", "count"), unit="db",
                      output_dtype="uint16")
    with rasterio.open(scaled["paths"][0]) as ds:
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0
        physical = from_dn(ds.read(1), ds.scales[0], ds.offsets[0])
        avg = timescan_block(power, years, ("avg",))["avg"]
        inside = np.isfinite(avg) & (avg > -30) & (avg < 5)
        assert np.nanmax(np.abs(physical - avg)[inside]) <= ds.scales[0] / 2 + 1e-4


def test_linear_input_zero_is_nodata(tmp_path):
    power, years, when = synthetic_stack(dates=8, shape=(5, 6), seed=9)
    stored = np.nan_to_num(power, nan=0.0)  # linear ARD with 0 = nodata
    paths = write_dates(str(tmp_path / "in"), stored, when)
    report = timescan(paths, str(tmp_path / "out"), metrics=("avg", "count"), unit="linear")
    expected = timescan_block(power, years, ("avg", "count"))
    with rasterio.open(report["paths"][1]) as ds:
        np.testing.assert_array_equal(ds.read(1), expected["count"])


@pytest.mark.parametrize("case, fragment", [
    ("one_date", "at least 2 dates"),
    ("no_dates", "No acquisition date"),
    ("mixed_pol", "mixes polarisations"),
    ("mixed_crs", "Mixed coordinate reference systems"),
    ("few_for_harmonics", "Harmonics need at least 6 dates"),
])
def test_bad_inputs_give_clear_errors_and_no_output(tmp_path, case, fragment):
    power, _, when = synthetic_stack(dates=8, shape=(4, 4))
    db = power_to_db(power)
    folder = str(tmp_path / "in")
    if case == "one_date":
        paths = write_dates(folder, db[:1], when[:1])
    elif case == "no_dates":
        paths = write_dates(folder, db[:3], when[:3], names=["a_VV.tif", "b_VV.tif", "c_VV.tif"])
    elif case == "mixed_pol":
        paths = write_dates(folder, db[:4], when[:4]) + write_dates(folder, db[4:], when[4:], pol="VH")
    elif case == "mixed_crs":
        paths = write_dates(folder, db[:4], when[:4]) + write_dates(folder, db[4:], when[4:], crs="EPSG:32632")
    else:
        paths = write_dates(folder, db[:5], when[:5])
    out = tmp_path / "out"
    with pytest.raises(UserInputError, match=fragment):
        timescan(paths, str(out), unit="db")
    assert not out.exists() or os.listdir(out) == []


def test_cancel_leaves_no_partial_output(tmp_path):
    from core.errors import Cancelled

    power, _, when = synthetic_stack(dates=8, shape=(30, 8))
    paths = write_dates(str(tmp_path / "in"), power_to_db(power), when)
    calls = []

    def is_canceled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        timescan(paths, str(tmp_path / "out"), unit="db", memory_mb=0.01, is_canceled=is_canceled)
    assert not (tmp_path / "out").exists()  # the run created the folder, so it removes it again


@pytest.mark.parametrize("block_shape, memory_mb", [((256, 256), 1.0), ((256, 256), 400.0), ((1, 700), 2.0),
                                                    ((16, 700), 0.01)])
def test_block_windows_cover_the_grid_once_and_follow_the_tiles(block_shape, memory_mb):
    from core.sentinel1.timescan import block_windows

    windows = block_windows(600, 700, block_shape, 100, memory_mb, 2)
    cover = np.zeros((600, 700), int)
    for window in windows:
        cover[window.row_off:window.row_off + window.height, window.col_off:window.col_off + window.width] += 1
        if block_shape == (256, 256) and memory_mb == 1.0:
            assert window.col_off % 256 == 0 and window.row_off % window.height == 0 or window.row_off + window.height == 600
        assert window.width * window.height * 100 * 4 * 16 * 2 <= max(memory_mb * 2 ** 20, 700 * 100 * 4 * 16 * 2)
    assert (cover == 1).all()
