"""Sentinel-1 animation (s1animation) and mosaics (s1mosaic)."""
import datetime as dt
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from core.errors import UserInputError
from core.sentinel1.animation import make_animation

WHEN = [dt.datetime(2021, 5, 1, 17, 5) + dt.timedelta(days=12 * i) for i in range(4)]


def write_stack(folder, pol, db_values, shape=(60, 90), origin=(600000, 5100000), crs="EPSG:32632", res=20,
                when=WHEN):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k, w in enumerate(when):
        value = db_values[k] if np.ndim(db_values) else db_values
        image = np.broadcast_to(np.asarray(value, np.float32), shape).copy()
        path = os.path.join(folder, f"{k + 1:02d}.{w:%Y%m%d}.{pol}.tif")
        with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=1, dtype="float32",
                           crs=crs, transform=from_origin(origin[0], origin[1], res, res), nodata=float("nan")) as ds:
            ds.write(image, 1)
            ds.set_band_description(1, w.isoformat())
        paths.append(path)
    return paths


def test_animation_colours_frames_and_dates(tmp_path):
    from PIL import Image, ImageSequence

    co = write_stack(str(tmp_path / "vv"), "VV", [-10.0, -5.0, -20.0, 0.0])
    cross = write_stack(str(tmp_path / "vh"), "VH", -15.0)
    result = make_animation(co, str(tmp_path / "anim.gif"), cross_inputs=cross, max_size=45)
    assert result["dates"] == [f"{w:%Y-%m-%d}" for w in WHEN] and result["size"] == (30, 45)
    with Image.open(tmp_path / "anim.gif") as gif:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
        assert gif.info["loop"] == 0
    assert len(frames) == 4 and frames[0].size == (45, 30)
    # R = VV −20…0, G = VH −25…−5, B = VV − VH 1…15 dB, each to 0…255
    expected = [(128, 128, 73), (191, 128, 164), (0, 128, 0), (255, 128, 255)]
    for frame, colour in zip(frames, expected):
        pixels = np.asarray(frame)
        assert tuple(pixels[25, 40]) == colour
        label = pixels[2:16, 2:60 if pixels.shape[1] > 60 else 44]
        assert (label == 255).all(axis=2).any() and (label == 0).all(axis=2).any()  # white text on black


def test_animation_refuses_unmatched_stacks(tmp_path):
    co = write_stack(str(tmp_path / "vv"), "VV", -10.0)
    later = [w + dt.timedelta(days=3) for w in WHEN]
    cross = write_stack(str(tmp_path / "vh"), "VH", -15.0, when=later)
    with pytest.raises(UserInputError, match="no acquisition day in common"):
        make_animation(co, str(tmp_path / "anim.gif"), cross_inputs=cross)
    with pytest.raises(UserInputError, match="must end with .gif"):
        make_animation(co, str(tmp_path / "anim.mp4"))
    assert sorted(os.listdir(tmp_path)) == ["vh", "vv"]


def test_mosaic_harmonises_and_feathers_timescans(tmp_path):
    from core.sentinel1.mosaic import feather_weights, mosaic

    rng = np.random.default_rng(0)
    truth = (-12 + rng.normal(0, 1, (60, 150))).astype(np.float32)  # a 3 km × 1.2 km area, 20 m pixels

    def write_scan(name, array, origin, metrics=("avg", "cov")):
        path = str(tmp_path / name)
        with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=2,
                           dtype="float32", crs="EPSG:32632", transform=from_origin(origin, 5100000, 20, 20),
                           nodata=float("nan")) as ds:
            ds.write(np.stack([array, np.full(array.shape, 0.3 if "A" in name else 0.5, np.float32)]))
            for band, metric in enumerate(metrics, 1):
                ds.set_band_description(band, metric)
        return path

    a = write_scan("track_A.tif", truth[:, :100], 600000)
    b = write_scan("track_B.tif", truth[:, 60:] + 2.0, 600000 + 60 * 20)  # 40 columns overlap, +2 dB bias
    result = mosaic([a, b], str(tmp_path / "out"), feather_px=10)
    assert result["kind"] == "timescan" and result["names"] == ["avg", "cov"]
    assert result["offsets"]["avg"] == pytest.approx([1.0, -1.0], abs=1e-3)
    with rasterio.open(result["paths"][0]) as ds:
        assert ds.shape == (60, 150) and ds.transform.c == 600000
        np.testing.assert_allclose(ds.read(1), truth + 1.0, atol=1e-3)  # A + 1 = B − 1 everywhere
    # cov is not a dB level: no harmonisation, plain feathered average of 0.3 and 0.5
    with rasterio.open(result["vrt"]) as vrt:
        cov = vrt.read(2)
    valid_a = np.zeros((60, 150), bool)
    valid_a[:, :100] = True
    valid_b = np.zeros((60, 150), bool)
    valid_b[:, 60:] = True
    wa, wb = feather_weights(valid_a, 10), feather_weights(valid_b, 10)
    np.testing.assert_allclose(cov, (0.3 * wa + 0.5 * wb) / (wa + wb), atol=1e-6)
    assert cov[30, 10] == pytest.approx(0.3) and cov[30, 140] == pytest.approx(0.5)
    assert cov[30, 95] == pytest.approx((0.3 * 5 + 0.5 * 10) / 15, abs=1e-6)  # 5 px from A's edge, 36 px into B


def test_mosaic_time_series_by_date_window(tmp_path):
    from core.sentinel1.mosaic import mosaic

    when_a = [dt.datetime(2021, 5, 1), dt.datetime(2021, 5, 13), dt.datetime(2021, 6, 30)]
    when_b = [dt.datetime(2021, 5, 3), dt.datetime(2021, 5, 15)]
    a = write_stack(str(tmp_path / "a"), "VV", [-10.0, -11.0, -12.0], shape=(50, 50), when=when_a)
    b = write_stack(str(tmp_path / "b"), "VV", [-10.0, -11.0], shape=(50, 50), origin=(600500, 5100000),
                    when=when_b)
    result = mosaic(a + b, str(tmp_path / "out"), harmonise=False, feather_px=5)
    assert result["kind"] == "timeseries"
    assert [os.path.basename(p) for p in result["paths"]] == [
        "01.20210501.VV.mosaic.tif", "02.20210513.VV.mosaic.tif", "03.20210630.VV.mosaic.tif"]
    with rasterio.open(result["paths"][1]) as ds:
        assert ds.shape == (50, 75)
        np.testing.assert_allclose(ds.read(1), -11.0, atol=1e-4)  # dates 13 and 15 May blended
    with rasterio.open(result["paths"][2]) as ds:
        image = ds.read(1)
        assert np.isnan(image[:, 60:]).all() and np.allclose(image[:, :45], -12.0)  # only track A on 30 June
    with pytest.raises(UserInputError, match="at least two inputs"):
        mosaic(a[:1], str(tmp_path / "bad"))
    c = write_stack(str(tmp_path / "c"), "VH", -15.0, when=when_b)
    with pytest.raises(UserInputError, match="mix polarisations"):
        mosaic(a + c, str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists() or os.listdir(tmp_path / "bad") == []


def test_mosaic_memory_estimate_refuses_a_grid_that_cannot_fit(tmp_path, monkeypatch):
    import core.io.memory
    import core.sentinel1.mosaic as mosaic_module
    from core.io import Grid

    for module in (core.io.memory, mosaic_module):
        monkeypatch.setattr(module, "available_memory_bytes", lambda: 8 * 2 ** 30)
    grid = Grid(rasterio.crs.CRS.from_epsg(32633), from_origin(400000, 5000000, 1.0, 1.0), 100000, 50000)
    # 5e9 pixels × (2 tracks × 16 + 20) bytes = 242.1 GiB; a pixel size of 1 × √(242.1 / 6.4) × 1.1 = 6.77 fits
    with pytest.raises(UserInputError, match=r"The mosaic grid of 100,000 × 50,000 pixels at 1 CRS units \(2 tracks "
                                             r"per band\) needs about 242\.1 GiB of memory but only 8\.0 GiB is "
                                             r"available; nothing was written\. Give a coarser resolution: a pixel "
                                             r"size \(RESOLUTION\) of at least 6\.77 CRS units"):
        mosaic_module.require_mosaic_memory(grid, 2)
    small = Grid(grid.crs, grid.transform, 1000, 1000)  # 52 MB: fine
    assert mosaic_module.require_mosaic_memory(small, 2) is None
