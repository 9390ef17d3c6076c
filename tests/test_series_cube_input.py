"""core.series.network: ITS_LIVE cube downloads (itslivedownload's <cube>_vx.tif / _vy.tif) read as a pair
network, one pair per band (dates mid_date ∓ date_dt / 2), and PairRaster.read_sigma for every kind of pair
(ITS_LIVE errors, velocity and disparity uncertainty bands, ASP: none), against hand computations."""
import datetime as dt
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from core.errors import UserInputError
from core.io import Grid, write_raster
from core.itslive.cubes import CubeInfo
from core.itslive.download import CubeWindow, DownloadRequest, write_cube_outputs
from core.offsets.disparity import DX, DY, UNCERTAINTY, VALID
from core.offsets.velocity import VELOCITY_DESCRIPTIONS
from core.series.network import (KIND_ASP, KIND_DISPARITY, KIND_ITSLIVE, KIND_VELOCITY, read_network, read_pair,
                                 read_pairs, sources_tag)
from core.series.stack import stack_file, stack_statistics

UTC = dt.timezone.utc
STEM = "ITS_LIVE_vel_EPSG32607_G0120_X650000_Y6750000"
#: The layers as itslivedownload writes them (mid_date order): (mid_date, date_dt days).
LAYERS = ((dt.datetime(2020, 1, 20, 12, 0, 0), 30.0),     # 2020-01-05T12:00 .. 2020-02-04T12:00
          (dt.datetime(2020, 1, 22, 6, 30, 0), 2.5),      # 2020-01-21T00:30 .. 2020-01-23T12:30
          (dt.datetime(2020, 1, 25, 0, 0, 0), 48.25))     # 2019-12-31T21:00 .. 2020-02-18T03:00
SHAPE = (4, 5)
X = 650000.0 + 120.0 * np.arange(SHAPE[1])       # cell centres, x ascending
Y = 6750000.0 - 120.0 * np.arange(SHAPE[0])      # y descending


def _fields(seed=4):
    """vx, vy, vx_error, vy_error stacks (layers, rows, cols), float32-exact, NaN holes in vx and vy."""
    rng = np.random.default_rng(seed)
    n = len(LAYERS)
    vx = rng.normal(100.0, 30.0, (n,) + SHAPE).astype(np.float32).astype(np.float64)
    vy = rng.normal(-40.0, 20.0, (n,) + SHAPE).astype(np.float32).astype(np.float64)
    vx[0, 1, 2] = np.nan
    vy[2, 3, 0] = np.nan
    vx_error = rng.uniform(2.0, 30.0, (n,) + SHAPE).astype(np.float32).astype(np.float64)
    vy_error = rng.uniform(2.0, 30.0, (n,) + SHAPE).astype(np.float32).astype(np.float64)
    return {"vx": vx, "vy": vy, "vx_error": vx_error, "vy_error": vy_error}


def write_download(folder, variables=("vx", "vy", "vx_error", "vy_error"), aggregate=0, data=None, layers=LAYERS):
    """An ITS_LIVE download written by itslivedownload's own writer; returns {variable: path}."""
    data = data or _fields()
    cube = CubeInfo(f"https://its-live-data.s3.amazonaws.com/datacubes/v2/N60W140/{STEM}.zarr", 32607, {}, "c1")
    window = CubeWindow(cube, 32607, np.arange(len(layers)), slice(0, SHAPE[0]), slice(0, SHAPE[1]), X, Y,
                        np.array([mid for mid, _ in layers], dtype="datetime64[ns]"),
                        np.array([days for _, days in layers]), np.array(["2A", "8", "1A"][:len(layers)]))
    request = DownloadRequest({}, dt.datetime(2019, 1, 1), dt.datetime(2021, 1, 1), variables,
                              aggregate_amount=aggregate, aggregate_unit="Y")
    os.makedirs(str(folder), exist_ok=True)
    write_cube_outputs(window, data, request, str(folder))
    return {name: os.path.join(str(folder), f"{STEM}_{name}.tif") for name in variables}


def expected_dates():
    """(ref, sec) per layer, by hand: mid_date ∓ date_dt / 2."""
    moments = [(mid.replace(tzinfo=UTC), dt.timedelta(days=days / 2)) for mid, days in LAYERS]
    return [(mid - half, mid + half) for mid, half in moments]


def test_download_is_one_pair_per_band_sorted_by_date(tmp_path):
    paths = write_download(tmp_path)
    pairs = read_network([paths["vx"]])
    # by start date: layer 3 (starts 2019-12-31T21:00), layer 1 (2020-01-05), layer 2 (2020-01-21)
    assert [p.band for p in pairs] == [3, 1, 2]
    ref3, sec3 = expected_dates()[2]
    assert ref3 == dt.datetime(2019, 12, 31, 21, 0, tzinfo=UTC) and sec3 == dt.datetime(2020, 2, 18, 3, 0, tzinfo=UTC)
    for pair in pairs:
        ref, sec = expected_dates()[pair.band - 1]
        assert pair.kind == KIND_ITSLIVE and (pair.ref_date, pair.sec_date) == (ref, sec)
        assert pair.dt_days == pytest.approx(LAYERS[pair.band - 1][1], abs=1e-9)
        assert pair.path == paths["vx"] and pair.north_path == paths["vy"]
        assert pair.grid.crs.to_epsg() == 32607 and (pair.grid.height, pair.grid.width) == SHAPE
        assert pair.grid.transform == Affine(120.0, 0, 650000.0 - 60.0, 0, -120.0, 6750000.0 + 60.0)
    assert pairs[1].ref_date == dt.datetime(2020, 1, 5, 12, 0, tzinfo=UTC)
    assert pairs[2].ref_date == dt.datetime(2020, 1, 21, 0, 30, tzinfo=UTC)
    assert pairs[2].sec_date == dt.datetime(2020, 1, 23, 12, 30, tzinfo=UTC)


def test_velocities_and_sigmas_of_every_band_exactly(tmp_path):
    truth = _fields()
    paths = write_download(tmp_path, data=truth)
    for pair in read_network([paths["vx"]]):
        b = pair.band - 1
        east, north = pair.read_velocity()
        missing = np.isnan(truth["vx"][b]) | np.isnan(truth["vy"][b])
        np.testing.assert_array_equal(east, np.where(missing, np.nan, truth["vx"][b]))
        np.testing.assert_array_equal(north, np.where(missing, np.nan, truth["vy"][b]))
        assert east.dtype == np.float64
        assert pair.has_sigma
        sigma_east, sigma_north = pair.read_sigma()
        np.testing.assert_array_equal(sigma_east, truth["vx_error"][b])
        np.testing.assert_array_equal(sigma_north, truth["vy_error"][b])
        window = rasterio.windows.Window(1, 2, 3, 2)
        part_east, part_north = pair.read_sigma(window)
        np.testing.assert_array_equal(part_north, truth["vy_error"][b][2:4, 1:4])
        np.testing.assert_array_equal(pair.read_velocity(window)[0], east[2:4, 1:4])


def test_vx_vy_or_both_or_a_pair_table_give_one_set_of_pairs(tmp_path):
    paths = write_download(tmp_path)
    keys = [p.key for p in read_network([paths["vx"]])]
    assert len(keys) == 3
    assert [p.key for p in read_network([paths["vy"]])] == keys
    assert [p.key for p in read_network([paths["vx"], paths["vy"]])] == keys
    pd.DataFrame({"path": [os.path.basename(paths["vx"])]}).to_csv(tmp_path / "pairs.csv", index=False)
    pairs = read_network(str(tmp_path / "pairs.csv"))
    assert [p.key for p in pairs] == keys
    records = json.loads(sources_tag(pairs))
    assert [r["band"] for r in records] == [3, 1, 2]
    assert records[1] == {"path": paths["vx"], "ref_date": "2020-01-05T12:00:00.000000Z",
                          "sec_date": "2020-02-04T12:00:00.000000Z", "band": 1}
    # a source record leads back to its pair (how the time-series panel re-reads the sources)
    again = read_pair(records[2]["path"], records[2]["ref_date"], records[2]["sec_date"])
    assert again.band == 2 and again.key == pairs[2].key
    assert read_pair(paths["vy"], band=3).sec_date == expected_dates()[2][1]
    assert len(read_pairs(paths["vx"])) == 3


def test_read_pair_of_a_download_needs_a_band_or_its_dates(tmp_path):
    paths = write_download(tmp_path)
    with pytest.raises(UserInputError, match="holds 3 pairs"):
        read_pair(paths["vx"])
    with pytest.raises(UserInputError, match="No pair of .* is 2020-01-01"):
        read_pair(paths["vx"], "2020-01-01", "2020-01-31")
    with pytest.raises(UserInputError, match="no pair in band 4"):
        read_pair(paths["vx"], band=4)


def test_aggregated_download_is_refused(tmp_path):
    paths = write_download(tmp_path, variables=("vx", "vy"), aggregate=1)
    with rasterio.open(paths["vx"]) as ds:
        assert "SM_DATE_DT_DAYS" not in ds.tags(1) and "SM_MID_DATE" in ds.tags(1)
    with pytest.raises(UserInputError, match="aggregated into time bins.*without aggregation"):
        read_network([paths["vx"]])


def test_missing_or_mismatched_companion_is_refused(tmp_path):
    only_x = write_download(tmp_path / "x", variables=("vx",))
    with pytest.raises(UserInputError, match=f"no companion '{STEM}_vy.tif'"):
        read_network([only_x["vx"]])
    only_y = write_download(tmp_path / "y", variables=("vy",))
    with pytest.raises(UserInputError, match=f"no companion '{STEM}_vx.tif'"):
        read_network([only_y["vy"]])
    both = write_download(tmp_path / "v", variables=("vx", "vy"))
    renamed = str(tmp_path / "v" / "east.tif")
    shutil.copy(both["vx"], renamed)
    with pytest.raises(UserInputError, match="does not end with '_vx.tif'"):
        read_network([renamed])
    # a _vy from another download (other layers) next to the _vx
    other = {k: v[:2] for k, v in _fields().items()}
    write_download(tmp_path / "other", variables=("vy",), data=other, layers=LAYERS[:2])
    shutil.copy(str(tmp_path / "other" / f"{STEM}_vy.tif"), both["vy"])
    with pytest.raises(UserInputError, match="not from the same ITS_LIVE download"):
        read_network([both["vx"]])


def test_download_without_both_errors_has_no_sigma(tmp_path):
    paths = write_download(tmp_path, variables=("vx", "vy", "vx_error"))
    pairs = read_network([paths["vy"]])
    assert not any(p.has_sigma for p in pairs) and pairs[0].read_sigma() is None
    with pytest.raises(UserInputError, match="no uncertainty band.*vx_error and vy_error"):
        stack_file(pairs, str(tmp_path / "stack.tif"), weighted=True)
    assert not os.path.exists(tmp_path / "stack.tif")


def test_weighted_stack_of_a_download_uses_the_component_errors(tmp_path):
    truth = _fields()
    paths = write_download(tmp_path, data=truth)
    out = str(tmp_path / "stack.tif")
    stack_file(read_network([paths["vx"]]), out, weighted=True)
    order = [2, 0, 1]  # the pairs' date order
    e, n = truth["vx"][order], truth["vy"][order]
    sigma = np.sqrt((truth["vx_error"][order] ** 2 + truth["vy_error"][order] ** 2) / 2.0)
    want = stack_statistics(np.hypot(e, n), e, n, sigma=sigma)
    with rasterio.open(out) as ds:
        np.testing.assert_allclose(ds.read(5), want["mean_speed"].astype(np.float32), rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(ds.read(3), want["mean_v_east"].astype(np.float32), rtol=1e-6, equal_nan=True)
        assert ds.read(9)[1, 2] == 2 and ds.read(9)[0, 0] == 3
        assert [s["band"] for s in json.loads(ds.tags()["SM_SERIES_SOURCES"])] == [3, 1, 2]


# --------------------------------------------------------------------------- read_sigma of the other kinds

GRID = Grid("EPSG:32619", Affine(3.0, 0, 500000.0, 0, -3.0, 4000000.0), 5, 4)
DATES = {"SM_REF_DATE": "2020-02-01T00:00:00Z", "SM_SEC_DATE": "2020-02-21T00:00:00Z"}  # dt = 20 days


def test_velocity_raster_sigma_is_its_uncertainty_band(tmp_path):
    shape = (GRID.height, GRID.width)
    unc = np.arange(20, dtype=np.float64).reshape(shape) / 4.0 + 0.5
    unc[0, 0] = np.nan
    bands = [np.full(shape, 5.0), np.full(shape, 90.0), np.full(shape, 5.0), np.zeros(shape), unc]
    path = write_raster(str(tmp_path / "v.tif"), GRID, bands, list(VELOCITY_DESCRIPTIONS) + ["uncertainty (m/yr)"],
                        tags=DATES)
    pair = read_pair(path)
    assert pair.kind == KIND_VELOCITY and pair.has_sigma and pair.sigma_band == 5
    sigma_east, sigma_north = pair.read_sigma()
    np.testing.assert_array_equal(sigma_east, unc)
    np.testing.assert_array_equal(sigma_north, unc)
    bare = read_pair(write_raster(str(tmp_path / "b.tif"), GRID, bands[:4], VELOCITY_DESCRIPTIONS, tags=DATES))
    assert not bare.has_sigma and bare.read_sigma() is None


def test_disparity_sigma_is_px_times_reference_pixel_over_dt(tmp_path):
    shape = (GRID.height, GRID.width)
    unc = np.linspace(0.05, 0.5, 20).reshape(shape).astype(np.float32).astype(np.float64)
    tags = dict(DATES, SM_STEP="2")  # 3 m output pixels of 2 reference pixels: 1.5 m reference pixels
    path = write_raster(str(tmp_path / "d.tif"), GRID, [np.ones(shape), np.ones(shape), np.ones(shape), unc],
                        [DX, DY, VALID, UNCERTAINTY], tags=tags)
    pair = read_pair(path)
    assert pair.kind == KIND_DISPARITY and pair.step == 2 and pair.has_sigma
    sigma_east, sigma_north = pair.read_sigma(rasterio.windows.Window(0, 1, 5, 2))
    np.testing.assert_allclose(sigma_east, unc[1:3] * 1.5 / (20 / 365.25), rtol=1e-12)
    np.testing.assert_allclose(sigma_north, unc[1:3] * 1.5 / (20 / 365.25), rtol=1e-12)
    # non-square pixels (2 m x 4 m): each component with its own pixel side
    oblong = Grid(GRID.crs, Affine(2.0, 0, 500000.0, 0, -4.0, 4000000.0), 5, 4)
    path = write_raster(str(tmp_path / "o.tif"), oblong, [np.ones(shape), np.ones(shape), np.ones(shape), unc],
                        [DX, DY, VALID, UNCERTAINTY], tags=DATES)
    sigma_east, sigma_north = read_pair(path).read_sigma()
    np.testing.assert_allclose(sigma_east, unc * 2.0 * 365.25 / 20, rtol=1e-12)
    np.testing.assert_allclose(sigma_north, unc * 4.0 * 365.25 / 20, rtol=1e-12)


def test_asp_and_disparity_without_uncertainty_have_no_sigma(tmp_path):
    shape = (GRID.height, GRID.width)
    asp = write_raster(str(tmp_path / "run-F.tif"), GRID, [np.ones(shape)] * 3, ["", "", ""])
    pair = read_pair(asp, "2020-02-01", "2020-02-05")
    assert pair.kind == KIND_ASP and not pair.has_sigma and pair.read_sigma() is None
    plain = write_raster(str(tmp_path / "p.tif"), GRID, [np.ones(shape)] * 3, [DX, DY, VALID], tags=DATES)
    assert read_pair(plain).read_sigma() is None
    assert read_pair(plain).key == (str(tmp_path / "p.tif"), 0)
    assert "band" not in read_pair(plain).source_record()


def test_block_readers_equal_the_pair_by_pair_reads(tmp_path, monkeypatch):
    """A mixed network (ITS_LIVE bands, a velocity raster without uncertainty, a disparity raster with one):
    read_velocity_block / read_sigma_block equal read_velocity / read_sigma pair by pair, also when the bands
    of the download are read a few at a time."""
    import core.series.network as network

    paths = write_download(tmp_path)
    grid = read_pair(paths["vx"], band=1).grid
    shape = (grid.height, grid.width)
    rng = np.random.default_rng(11)
    v_east = rng.normal(50, 10, shape)
    velocity = write_raster(str(tmp_path / "v.tif"), grid, [np.hypot(v_east, 1.0), np.zeros(shape), v_east,
                                                           np.ones(shape)], VELOCITY_DESCRIPTIONS, tags=DATES)
    unc = rng.uniform(0.1, 0.3, shape)
    disparity = write_raster(str(tmp_path / "d.tif"), grid, [rng.normal(1, 0.2, shape), rng.normal(-1, 0.2, shape),
                                                             np.ones(shape), unc], [DX, DY, VALID, UNCERTAINTY],
                             tags=dict(DATES, SM_REF_DATE="2020-01-10T00:00:00Z"))
    pairs = read_network([paths["vx"], velocity, disparity])
    assert [p.kind for p in pairs] == [KIND_ITSLIVE, KIND_ITSLIVE, KIND_DISPARITY, KIND_ITSLIVE, KIND_VELOCITY]
    window = rasterio.windows.Window(1, 1, 3, 2)
    for group_bytes in (network.BAND_GROUP_BYTES, 2 * 6 * 4):  # all bands in one read; 2 bands of 6 cells per read
        monkeypatch.setattr(network, "BAND_GROUP_BYTES", group_bytes)
        velocities = network.read_velocity_block(pairs, window)
        sigmas = network.read_sigma_block(pairs, window, np.float64)
        assert velocities.shape == sigmas.shape == (5, 2, 2, 3) and velocities.dtype == np.float32
        for j, pair in enumerate(pairs):
            east, north = pair.read_velocity(window)
            np.testing.assert_array_equal(velocities[j, 0], east.astype(np.float32))
            np.testing.assert_array_equal(velocities[j, 1], north.astype(np.float32))
            if pair.has_sigma:
                np.testing.assert_array_equal(sigmas[j], np.stack(pair.read_sigma(window)))
            else:
                assert np.isnan(sigmas[j]).all()
    assert np.isnan(network.read_velocity_block(pairs)[0, 0, 3, 0])  # layer 3's vy hole masks its vx


# --------------------------------------------------------------------------- a real download, end to end

def test_itslivedownload_output_read_as_a_network(cube_server, tmp_path):
    """The loopback cube (built from the real Alaska mosaics, pairs of 16-365 days) downloaded without
    aggregation: every layer kept is one pair with mid ∓ dt / 2 dates, the cube's vx / vy and errors."""
    import xarray as xr

    from core.itslive.cubes import transformer
    from core.itslive.download import download_cubes
    from itslive_server import CUBE_NAME

    cube = xr.open_zarr(os.path.join(cube_server.root, "cubes", CUBE_NAME), consolidated=True)
    x, y = cube["x"].values, cube["y"].values
    cols, rows = slice(20, 30), slice(110, 118)
    corners_x = [x[cols][0] - 60.0, x[cols][-1] + 60.0, x[cols][-1] + 60.0, x[cols][0] - 60.0]
    corners_y = [y[rows][-1] - 60.0, y[rows][-1] - 60.0, y[rows][0] + 60.0, y[rows][0] + 60.0]
    lon, lat = transformer(3413, 4326).transform(corners_x, corners_y)
    ring = [[float(a), float(b)] for a, b in zip(lon, lat)]
    # the window read back is located from the output's geotransform below
    aoi = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
    info = CubeInfo(f"{cube_server.url}/cubes/{CUBE_NAME}", 3413, {}, "test")
    request = DownloadRequest(aoi, dt.datetime(2012, 1, 1), dt.datetime(2013, 1, 1),
                              ("vx", "vy", "vx_error", "vy_error"))
    result = download_cubes([info], request, str(tmp_path))[0]
    pairs = read_network([os.path.join(str(tmp_path), f"{CUBE_NAME[:-5]}_vy.tif")])
    assert len(pairs) == result["n_layers"] == 4   # the four pseudo pairs of 2012
    mid = cube["mid_date"].values
    layers = np.flatnonzero((mid >= np.datetime64("2012-01-01")) & (mid < np.datetime64("2013-01-01")))
    layers = layers[np.argsort(mid[layers])]
    with rasterio.open(pairs[0].path) as ds:
        col0 = int(round((ds.transform.c + 60.0 - x[0]) / 120.0))
        row0 = int(round((y[0] - (ds.transform.f - 60.0)) / 120.0))
        height, width = ds.height, ds.width
    for pair in pairs:
        layer = layers[pair.band - 1]
        centre = pd.Timestamp(mid[layer]).to_pydatetime().replace(tzinfo=UTC)
        days = cube["date_dt"].values[layer] / np.timedelta64(1, "D")
        assert (pair.ref_date, pair.sec_date) == (centre - dt.timedelta(days=days / 2),
                                                  centre + dt.timedelta(days=days / 2))
        assert pair.dt_days == pytest.approx(days, abs=1e-9)
        window = dict(mid_date=layer, y=slice(row0, row0 + height), x=slice(col0, col0 + width))
        east, north = pair.read_velocity()
        want_east = cube["vx"].isel(**window).values.astype(np.float32)
        want_north = cube["vy"].isel(**window).values.astype(np.float32)
        assert np.isfinite(east).sum() > 0
        np.testing.assert_array_equal(east, np.where(np.isfinite(want_north), want_east, np.nan))
        np.testing.assert_array_equal(north, np.where(np.isfinite(want_east), want_north, np.nan))
        sigma_east, sigma_north = pair.read_sigma()
        np.testing.assert_array_equal(sigma_east, cube["vx_error"].isel(**window).values.astype(np.float32))
        np.testing.assert_array_equal(sigma_north, cube["vy_error"].isel(**window).values.astype(np.float32))
    # sorted by start = mid - dt / 2, mid at noon of day-of-year 46, 136, 316, 226 (Jan 1 + 45, 135, 315, 225 d)
    assert [round(p.dt_days) for p in pairs] == [16, 48, 365, 96]
    assert [p.start.timetuple().tm_yday for p in pairs] == [38, 112, 134, 178]


def test_a_download_inverts_as_a_network(tmp_path):
    """invert_network on the pairs of one download of a steady flow (vx = 120, vy = -45 m/yr in every pair):
    every step's velocity is that flow, the displacement grows by it, the sources name the bands."""
    from core.series.driver import invert_network

    steady = _fields()
    steady["vx"][:] = 120.0
    steady["vy"][:] = -45.0
    paths = write_download(tmp_path / "download", variables=("vx", "vy"), data=steady)
    pairs = read_network([paths["vx"]])
    out = invert_network(pairs, str(tmp_path / "out"), prefix="cube", lam=0.1, robust=False, min_pairs=1)
    with rasterio.open(out["velocity_east"]) as ds:
        east = ds.read()
        assert ds.count == 5  # steps between the 6 distinct dates
        assert [s["band"] for s in json.loads(ds.tags()["SM_SERIES_SOURCES"])] == [3, 1, 2]
    with rasterio.open(out["velocity_north"]) as ds:
        north = ds.read()
    np.testing.assert_allclose(east, 120.0, rtol=1e-5)
    np.testing.assert_allclose(north, -45.0, rtol=1e-5)
    with rasterio.open(out["displacement_east"]) as ds:
        # 2019-12-31T21:00 .. 2020-02-18T03:00 = 48.25 days at 120 m/yr (to the end of the last step)
        np.testing.assert_allclose(ds.read(ds.count), 120.0 * 48.25 / 365.25, rtol=1e-4)
