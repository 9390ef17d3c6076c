"""Colour ranges fitted to the data (core.io.styles) and the short layer names of the map.

The writer puts the 2nd-98th percentile of the band a style colours into the sidecar QML (symmetric
around 0 for signed quantities); styles of cyclic or class values keep their fixed range."""
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from core.io import Grid, write_raster
from core.io.styles import (DATA_RANGES, band_sample, date_label, layer_label, percentile_range, run_label,
                            style_path)

GRID = Grid(CRS.from_epsg(32633), from_origin(500000.0, 4000000.0, 10.0, 10.0), 250, 200)


def qml_range(path):
    """(renderer min, renderer max, shader min, shader max, item values, item labels) of a QML file."""
    root = ET.parse(path).getroot()
    renderer = root.find(".//rasterrenderer")
    shader = renderer.find(".//colorrampshader")
    items = shader.findall("item")
    return (float(renderer.get("classificationMin")), float(renderer.get("classificationMax")),
            float(shader.get("minimumValue")), float(shader.get("maximumValue")),
            [float(item.get("value")) for item in items], [item.get("label") for item in items],
            [item.get("color") for item in items], int(renderer.get("band")))


def test_speed_range_is_the_2nd_to_98th_percentile_of_the_written_band(tmp_path):
    rng = np.random.default_rng(3)
    speed = rng.gamma(2.0, 6.0, GRID.shape).astype("float32")  # m/yr, a long upper tail
    speed[:20, :20] = np.nan
    azimuth = rng.uniform(0, 360, GRID.shape).astype("float32")
    path = str(tmp_path / "v.tif")
    write_raster(path, GRID, np.stack([speed, azimuth]), ["speed (m/yr)", "azimuth (deg)"], style="velocity_speed")
    low, high = np.percentile(speed[np.isfinite(speed)].astype("float64"), [2, 98])
    r_min, r_max, s_min, s_max, values, labels, colours, band = qml_range(str(tmp_path / "v.qml"))
    assert band == 1
    assert (r_min, r_max) == pytest.approx((low, high), rel=1e-12)
    assert (s_min, s_max) == pytest.approx((low, high), rel=1e-12)
    assert high > 30 > 10  # the fixed 0-10 m/yr would have saturated two thirds of the cells
    np.testing.assert_allclose(values, np.linspace(low, high, 11), rtol=1e-12)
    assert labels[0] == f"{low:.3g}" and labels[-1] == f"{high:.3g}"
    _, _, _, _, _, _, shipped_colours, _ = qml_range(style_path("velocity_speed"))
    assert colours == shipped_colours  # the ramp itself is unchanged


def test_offsets_get_a_range_symmetric_around_zero(tmp_path):
    rng = np.random.default_rng(4)
    dx = rng.normal(1.5, 2.0, GRID.shape).astype("float32")  # px, mostly positive
    dy = rng.normal(-0.2, 0.5, GRID.shape).astype("float32")
    path = str(tmp_path / "d.tif")
    write_raster(path, GRID, np.stack([dx, dy]), ["dx (px)", "dy (px)"], style="disparity_dx")
    low, high = np.percentile(dx.astype("float64"), [2, 98])
    half = max(abs(low), abs(high))
    r_min, r_max, _, _, values, _, _, _ = qml_range(str(tmp_path / "d.qml"))
    assert (r_min, r_max) == pytest.approx((-half, half), rel=1e-12)
    assert values[5] == pytest.approx(0.0, abs=1e-9)  # the ramp's middle (white) stays at 0
    assert half == pytest.approx(high) and half > 5  # the fixed +-3 px would have saturated


def test_constant_or_cyclic_bands_keep_the_fixed_range(tmp_path):
    constant = np.full(GRID.shape, 2.5, "float32")
    write_raster(str(tmp_path / "c.tif"), GRID, constant, ["speed (m/yr)"], style="velocity_speed")
    assert qml_range(str(tmp_path / "c.qml"))[:2] == (0.0, 10.0)
    with open(str(tmp_path / "c.qml")) as sidecar, open(style_path("velocity_speed")) as shipped:
        assert sidecar.read() == shipped.read()
    assert "velocity_azimuth" not in DATA_RANGES and "s1_phase" not in DATA_RANGES
    assert percentile_range(np.array([np.nan, np.inf])) is None


def test_big_rasters_are_sampled_in_bounded_memory(tmp_path):
    grid = Grid(CRS.from_epsg(32633), from_origin(0.0, 3000.0, 1.0, 1.0), 3000, 2000)
    values = np.tile(np.linspace(-4.0, 6.0, grid.width, dtype="float32"), (grid.height, 1))
    path = str(tmp_path / "big.tif")
    write_raster(path, grid, values, ["dx (px)"])
    with rasterio.open(path) as ds:
        sample = band_sample(ds, 1, max_cells=10_000)
    assert 5_000 <= sample.size <= 10_000
    low, high = percentile_range(sample)
    assert (low, high) == pytest.approx((-4.0 + 0.02 * 10, 6.0 - 0.02 * 10), abs=0.02)


def test_short_layer_names_from_the_dates_in_file_names():
    velocity = "/out/20200715_151233_62_2414_20210112_150921_07_2455_disp_polyfit_velocity.tif"
    assert date_label(velocity) == "2020-07-15 → 2021-01-12"
    assert layer_label(velocity, "speed") == "2020-07-15 → 2021-01-12 speed"
    assert layer_label("/out/20200715_151233_62_2414_3B_AnalyticMS_SR_clip_b2.tif") == "2020-07-15"
    assert layer_label("/out/Timeseries.VV.vrt", "") == "Timeseries.VV"
    assert layer_label("/out/S1A_IW_GRDH_1SDV_20200101T053456_20200101T053521_030.tif", "VV") == "2020-01-01 VV"
    pairs = ["a_20200715_20210112.tif", "a_20200715_20220716.tif", "a_20210112_20220716.tif"]
    assert run_label(pairs) == "2020-07-15 → 2022-07-16, 3 pairs"
    assert run_label(pairs[:1]) == "2020-07-15 → 2021-01-12"
    assert run_label(["strain.tif"]) == ""
    assert os.path.basename(style_path("disparity_dy")) == "disparity_dy.qml"
