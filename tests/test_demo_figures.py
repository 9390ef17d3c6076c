"""The demo's map figures (tools/demo_maps.py): title, colour bar with units, scale bar, north arrow
and colour ranges from the data, read back from the matplotlib figure."""
import math
import os
import sys

import numpy as np
import pytest
from affine import Affine

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from demo_maps import (NORTH_ARROW, Band, MapStyle, colour_range, length_label, map_figure,  # noqa: E402
                       scale_length)


def field(seed=0, shape=(60, 80), offset=0.0):
    """A smooth random field with a few NaN cells."""
    rng = np.random.default_rng(seed)
    values = rng.normal(offset, 1.0, shape).cumsum(axis=1) / 5.0
    values[:3, :5] = np.nan
    return values


def parts(figure):
    """(map axes, colour bar axes, scale bar, north arrow annotation, texts of the map axes)."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    axes, colour_bar = figure.axes
    bars = [artist for artist in axes.artists if isinstance(artist, AnchoredSizeBar)]
    arrows = [text for text in axes.texts if text.get_gid() == NORTH_ARROW]
    assert len(bars) == 1 and len(arrows) == 1
    return axes, colour_bar, bars[0], arrows[0], [text.get_text() for text in axes.texts]


def arrow_angle(arrow) -> float:
    """Direction of the north arrow, degrees clockwise from up (its tail is offset from the tip)."""
    tail_x, tail_y = arrow.xyann
    return math.degrees(math.atan2(-tail_x, -tail_y))


def test_a_map_has_title_colour_bar_with_units_scale_bar_and_north_arrow():
    values = field(offset=3.0)
    # 10 m pixels in UTM 33N centred on its central meridian (x 500 km, 15 deg E): true north is up
    band = Band(values, Affine(10.0, 0.0, 499600.0, 0.0, -10.0, 5000000.0))
    figure = map_figure(band, "EPSG:32633", "Speed 2020-07-15 → 2021-01-12", MapStyle("speed", "m/yr"))
    axes, colour_bar, bar, arrow, texts = parts(figure)
    assert axes.get_title() == "Speed 2020-07-15 → 2021-01-12"
    assert colour_bar.get_ylabel() == "speed (m/yr)"
    # 800 m wide: the bar is the largest 1/2/5 x 10^k length up to a fifth of it
    assert bar.txt_label.get_text() == "100 m"
    assert "N" in texts
    assert arrow_angle(arrow) == pytest.approx(0.0, abs=0.01)
    finite = values[np.isfinite(values)]
    assert axes.images[-1].get_clim() == pytest.approx(tuple(np.percentile(finite, [2, 98])))


def test_signed_quantities_get_a_range_symmetric_around_zero():
    values = field(seed=1, offset=0.4)
    low, high = np.percentile(values[np.isfinite(values)], [2, 98])
    reach = max(abs(low), abs(high))
    assert colour_range(values, symmetric=True) == pytest.approx((-reach, reach))
    band = Band(values, Affine(120.0, 0.0, -3330000.0, 0.0, -120.0, 300000.0))
    figure = map_figure(band, "EPSG:3413", "Longitudinal strain rate", MapStyle("longitudinal", "1/yr", "RdBu_r",
                                                                               symmetric=True))
    axes, colour_bar, bar, arrow, _ = parts(figure)
    assert axes.images[-1].get_clim() == pytest.approx((-reach, reach))
    assert colour_bar.get_ylabel() == "longitudinal (1/yr)"
    assert bar.txt_label.get_text() == "1 km"  # 9.6 km wide
    # polar stereographic north (Alaska): true north points at the pole, the grid's origin
    centre_x, centre_y = -3330000.0 + 40 * 120.0, 300000.0 - 30 * 120.0
    assert arrow_angle(arrow) == pytest.approx(math.degrees(math.atan2(-centre_x, -centre_y)), abs=0.1)


def test_a_background_sets_the_frame_and_lines_are_drawn():
    background = Band(field(seed=2, shape=(100, 120)), Affine(3.0, 0.0, 442000.0, 0.0, -3.0, 4177000.0))
    band = Band(field(seed=3, shape=(20, 25)), Affine(12.0, 0.0, 442060.0, 0.0, -12.0, 4176940.0))
    outline = np.array([[442100.0, 4176800.0], [442200.0, 4176800.0], [442150.0, 4176900.0], [442100.0, 4176800.0]])
    style = MapStyle("dx, + right (east)", "px", "RdBu_r", symmetric=True, alpha=0.8, lines=[(outline, "white")])
    figure = map_figure(band, "EPSG:32618", "Column offset dx", style, background)
    axes, colour_bar, bar, _, _ = parts(figure)
    assert len(axes.images) == 2 and axes.images[-1].get_alpha() == 0.8
    assert axes.get_xlim() == (442000.0, 442360.0) and axes.get_ylim() == (4176700.0, 4177000.0)
    np.testing.assert_array_equal(axes.lines[0].get_xydata(), outline)
    assert colour_bar.get_ylabel() == "dx, + right (east) (px)"
    assert bar.txt_label.get_text() == "50 m"  # 360 m wide


def test_scale_lengths_and_labels():
    assert [scale_length(width) for width in (1836.0, 27000.0, 360.0, 9.6)] == [200.0, 5000.0, 50.0, 1.0]
    assert [length_label(length, "m") for length in (200.0, 5000.0, 1500.0)] == ["200 m", "5 km", "1.5 km"]
    assert length_label(2.0, "US survey foot") == "2 US survey foot"


def test_the_demo_draws_its_maps_from_a_velocity_and_a_disparity_raster(tmp_path):
    import glob

    import rasterio
    from PIL import Image

    import demo

    scene = sorted(glob.glob(os.path.join(demo.SAMPLE, "*_3B_AnalyticMS_SR_clip.tif")))[0]
    with rasterio.open(scene) as ds:
        crs, transform = ds.crs, ds.transform * Affine.scale(4.0)  # the correlation grid: every 4th pixel
        shape = (ds.height // 4, ds.width // 4)
    bump = np.exp(-np.hypot(*np.mgrid[-1:1:shape[0] * 1j, -1:1:shape[1] * 1j]) ** 2 * 8.0)
    tags = {"SM_REF_DATE": "2020-07-15T15:12:33Z", "SM_SEC_DATE": "2021-01-12T15:09:21Z"}
    paths = {}
    for name, bands in (("velocity", [9.0 * bump, np.full(shape, 135.0)]), ("deramped", [bump, -bump, bump > 0])):
        paths[name] = str(tmp_path / f"{name}.tif")
        with rasterio.open(paths[name], "w", driver="GTiff", width=shape[1], height=shape[0], count=len(bands),
                           dtype="float32", crs=crs, transform=transform, nodata=float("nan")) as ds:
            ds.write(np.stack(bands).astype(np.float32))
            ds.update_tags(**tags)
    written = demo.draw_maps(paths["velocity"], paths["deramped"], str(tmp_path))
    assert [os.path.basename(path) for path in written] == ["velocity_map.png", "disparity_dx_map.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 600 and image.height > 400
