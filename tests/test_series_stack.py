"""core/series/stack.py: stack statistics equal to direct numpy on a small stack (REFERENCE §6.3), NaN handling,
inverse-variance weights, the blockwise file path equal to the whole-array result, the output's bands, tags."""
import json
import math

import numpy as np
import pytest
import rasterio
from affine import Affine

from core.errors import UserInputError
from core.io import Grid, write_raster
from core.offsets.velocity import offsets_to_velocity
from core.series.network import read_pair
from core.series.stack import MAD_SCALE, STACK_BANDS, STACK_DESCRIPTIONS, stack_file, stack_statistics
from series_data import TRANSFORM, velocity_raster



def small_stack(seed=1, n=7, shape=(5, 6)):
    rng = np.random.default_rng(seed)
    v_east = 10.0 + rng.normal(0, 3, (n,) + shape)
    v_north = -4.0 + rng.normal(0, 3, (n,) + shape)
    v_east[0, 0, 0] = np.nan       # one pair missing at a pixel
    v_north[:, 1, 1] = np.nan      # a pixel without any pair
    v_east[2:, 2, 2] = np.nan      # a pixel with 2 pairs
    return np.hypot(v_east, v_north), v_east, v_north


def numpy_reference(speed, v_east, v_north, w=None):
    """Pixel-by-pixel statistics written out with plain numpy on the valid values."""
    out = {name: np.full(speed.shape[1:], np.nan) for name, _ in STACK_BANDS}
    for r in range(speed.shape[1]):
        for c in range(speed.shape[2]):
            s, e, n = speed[:, r, c], v_east[:, r, c], v_north[:, r, c]
            ok = np.isfinite(s) & np.isfinite(e) & np.isfinite(n)
            out["count"][r, c] = ok.sum()
            if not ok.any():
                continue
            s, e, n = s[ok], e[ok], n[ok]
            ww = np.ones_like(s) if w is None else 1.0 / w[:, r, c][ok] ** 2
            out["mean_speed"][r, c] = np.average(s, weights=ww)
            out["std_speed"][r, c] = math.sqrt(np.average((s - np.average(s, weights=ww)) ** 2, weights=ww))
            out["median_speed"][r, c] = np.median(s)
            out["mad_speed"][r, c] = 1.4826 * np.median(np.abs(s - np.median(s)))
            me, mn = np.average(e, weights=ww), np.average(n, weights=ww)
            out["mean_v_east"][r, c], out["mean_v_north"][r, c] = me, mn
            out["vector_speed"][r, c] = math.hypot(me, mn)
            out["vector_azimuth"][r, c] = math.degrees(math.atan2(me, mn)) % 360.0
            theta = np.arctan2(e, n)
            cc, ss = np.average(np.cos(theta), weights=ww), np.average(np.sin(theta), weights=ww)
            out["circular_mean"][r, c] = math.degrees(math.atan2(ss, cc)) % 360.0
            out["circular_std"][r, c] = math.degrees(math.sqrt(-2.0 * math.log(math.hypot(cc, ss))))
    return out


def test_statistics_equal_numpy_with_nans():
    speed, v_east, v_north = small_stack()
    got = stack_statistics(speed, v_east, v_north)
    want = numpy_reference(speed, v_east, v_north)
    for name, _ in STACK_BANDS:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=name)
    assert got["count"][0, 0] == 6 and got["count"][1, 1] == 0 and got["count"][2, 2] == 2
    assert np.isnan(got["mean_speed"][1, 1]) and np.isnan(got["circular_std"][1, 1])
    assert MAD_SCALE == 1.4826


def test_weighted_statistics_equal_numpy():
    speed, v_east, v_north = small_stack(seed=2)
    sigma = np.random.default_rng(3).uniform(0.5, 4.0, speed.shape)
    got = stack_statistics(speed, v_east, v_north, sigma=sigma)
    want = numpy_reference(speed, v_east, v_north, w=sigma)
    for name in ("mean_speed", "std_speed", "mean_v_east", "mean_v_north", "vector_speed", "circular_mean",
                 "circular_std", "median_speed", "mad_speed", "count"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=name)


def test_known_directions_and_the_vector_mean_is_not_biased_by_noise():
    # three pairs at 0°, 90° and 0° with speed 1: C = 2/3, S = 1/3
    e = np.array([0.0, 1.0, 0.0])[:, None, None]
    n = np.array([1.0, 0.0, 1.0])[:, None, None]
    got = stack_statistics(np.hypot(e, n), e, n)
    assert got["circular_mean"][0, 0] == pytest.approx(math.degrees(math.atan2(1 / 3, 2 / 3)), abs=1e-12)
    assert got["circular_std"][0, 0] == pytest.approx(math.degrees(math.sqrt(-2 * math.log(math.sqrt(5) / 3))))
    # stable ground with noise: mean speed ~ sigma*sqrt(pi/2), vector mean ~ 0
    rng = np.random.default_rng(0)
    e, n = rng.normal(0, 1, (400, 1, 1)), rng.normal(0, 1, (400, 1, 1))
    got = stack_statistics(np.hypot(e, n), e, n)
    assert got["mean_speed"][0, 0] == pytest.approx(math.sqrt(math.pi / 2), rel=0.1)
    assert got["vector_speed"][0, 0] < 0.2


def test_stack_file_blockwise_equals_whole_array(tmp_path):
    speed, v_east, v_north = small_stack(n=5, shape=(9, 4))
    paths = [velocity_raster(tmp_path / f"v{i}.tif", v_east[i], v_north[i], sec=f"2020-02-{11 + i}")
             for i in range(5)]
    pairs = [read_pair(p) for p in paths]
    out = str(tmp_path / "stack.tif")
    report = stack_file(pairs, out, max_block_bytes=5 * 4 * 8 * 7 * 2)  # 2 rows per block
    assert report["block_rows"] == 2 and report["n_pairs"] == 5
    e32, n32 = v_east.astype(np.float32).astype(np.float64), v_north.astype(np.float32).astype(np.float64)
    want = stack_statistics(np.hypot(e32, n32), e32, n32)
    with rasterio.open(out) as ds:
        assert ds.descriptions == STACK_DESCRIPTIONS
        assert ds.dtypes == ("float32",) * 11 and np.isnan(ds.nodata) and ds.crs.to_epsg() == 32618
        assert ds.transform == TRANSFORM
        for index, (name, _) in enumerate(STACK_BANDS, start=1):
            np.testing.assert_allclose(ds.read(index), want[name].astype(np.float32), rtol=1e-6, atol=1e-5,
                                       equal_nan=True, err_msg=name)
        tags = ds.tags()
    sources = json.loads(tags["SM_SERIES_SOURCES"])
    assert [s["sec_date"][:10] for s in sources] == [f"2020-02-{11 + i}" for i in range(5)]
    assert tags["SM_SERIES_UNIT"] == "m/yr" and tags["SM_SERIES_KIND"] == "velocity_stack"
    assert "(m/yr" in STACK_DESCRIPTIONS[0] and "deg" in STACK_DESCRIPTIONS[1]


def test_disparity_inputs_are_converted_with_their_dt(tmp_path):
    from core.offsets.disparity import DX, DY, VALID

    rng = np.random.default_rng(5)
    grid = Grid("EPSG:32618", TRANSFORM, 4, 3)
    want_e, want_n, paths = [], [], []
    for i, days in enumerate((10, 20, 40)):
        dx, dy = rng.normal(1, 0.3, (3, 4)), rng.normal(-0.5, 0.3, (3, 4))
        path = str(tmp_path / f"d{i}.tif")
        write_raster(path, grid, [dx, dy, np.ones((3, 4))], [DX, DY, VALID],
                     tags={"SM_REF_DATE": "2020-01-01T00:00:00Z", "SM_SEC_DATE": f"2020-01-{1 + days:02d}T00:00:00Z"
                           if days < 31 else "2020-02-10T00:00:00Z"})
        _, _, e, n = offsets_to_velocity(dx.astype(np.float32), dy.astype(np.float32), Affine(3, 0, 0, 0, -3, 0),
                                         days)
        want_e.append(e)
        want_n.append(n)
        paths.append(path)
    out = str(tmp_path / "stack.tif")
    stack_file([read_pair(p) for p in paths], out)
    want = stack_statistics(np.hypot(want_e, want_n), np.array(want_e), np.array(want_n))
    with rasterio.open(out) as ds:
        np.testing.assert_allclose(ds.read(3), want["mean_v_east"], rtol=1e-5)
        np.testing.assert_allclose(ds.read(5), want["mean_speed"], rtol=1e-5)


def test_grids_differ_and_weights_without_uncertainty_are_refused(tmp_path):
    speed, v_east, v_north = small_stack(n=2, shape=(4, 4))
    a = velocity_raster(tmp_path / "a.tif", v_east[0], v_north[0])
    b = velocity_raster(tmp_path / "b.tif", v_east[1][:, :3], v_north[1][:, :3])
    with pytest.raises(UserInputError, match="not on one grid"):
        stack_file([read_pair(a), read_pair(b)], str(tmp_path / "s.tif"))
    with pytest.raises(UserInputError, match="no uncertainty band"):
        stack_file([read_pair(a)], str(tmp_path / "s.tif"), weighted=True)
    with pytest.raises(UserInputError, match="No pair raster"):
        stack_file([], str(tmp_path / "s.tif"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif"]


def test_weights_from_the_disparity_uncertainty_band(tmp_path):
    """sigma (m/yr) = uncertainty (px) · pixel size (m) / dt (yr); the weighted file equals stack_statistics."""
    from core.offsets.disparity import DX, DY, UNCERTAINTY, VALID

    rng = np.random.default_rng(8)
    grid = Grid("EPSG:32618", TRANSFORM, 4, 3)
    east, north, sigma, paths = [], [], [], []
    for i, (sec, days) in enumerate((("2020-01-11", 10), ("2020-01-31", 30))):
        dx = rng.normal(1, 0.3, (3, 4)).astype(np.float32)
        dy = rng.normal(-0.5, 0.3, (3, 4)).astype(np.float32)
        unc = rng.uniform(0.05, 0.5, (3, 4)).astype(np.float32)
        path = str(tmp_path / f"d{i}.tif")
        write_raster(path, grid, [dx, dy, np.ones((3, 4)), unc], [DX, DY, VALID, UNCERTAINTY],
                     tags={"SM_REF_DATE": "2020-01-01T00:00:00Z", "SM_SEC_DATE": sec + "T00:00:00Z"})
        _, _, e, n = offsets_to_velocity(dx, dy, Affine(3, 0, 0, 0, -3, 0), days)
        east.append(e)
        north.append(n)
        sigma.append(unc.astype(np.float64) * 3.0 / (days / 365.25))
        paths.append(path)
    out = str(tmp_path / "weighted.tif")
    stack_file([read_pair(p) for p in paths], out, weighted=True)
    e, n = np.array(east), np.array(north)
    want = stack_statistics(np.hypot(e, n), e, n, sigma=np.array(sigma))
    unweighted = stack_statistics(np.hypot(e, n), e, n)
    with rasterio.open(out) as ds:
        assert ds.tags()["SM_STACK_WEIGHTED"] == "yes"
        np.testing.assert_allclose(ds.read(5), want["mean_speed"], rtol=1e-5)
        np.testing.assert_allclose(ds.read(1), want["vector_speed"], rtol=1e-5)
        assert np.abs(ds.read(5) - unweighted["mean_speed"]).max() > 1e-3  # the weights change the mean


def test_block_size_is_bounded_whatever_the_number_of_inputs():
    from core.series.stack import DEFAULT_BLOCK_BYTES, block_rows

    for n_inputs in (2, 50, 500, 5000):
        rows = block_rows(n_inputs, 2000, 2000)
        assert rows >= 1
        assert rows == 1 or rows * n_inputs * 2000 * 8 * 7 <= DEFAULT_BLOCK_BYTES
    assert block_rows(500, 2000, 2000) == 4 and block_rows(2, 100, 50) == 50


def test_cancel_between_blocks_leaves_nothing(tmp_path):
    from core.errors import Cancelled

    speed, v_east, v_north = small_stack(n=2, shape=(6, 4))
    paths = [velocity_raster(tmp_path / f"v{i}.tif", v_east[i], v_north[i], sec=f"2020-02-1{i + 1}")
             for i in range(2)]
    calls = []

    def cancel_after_first_block():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        stack_file([read_pair(p) for p in paths], str(tmp_path / "s.tif"), max_block_bytes=2 * 4 * 8 * 7 * 2,
                   is_canceled=cancel_after_first_block)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v0.tif", "v1.tif"]
