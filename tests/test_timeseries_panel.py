"""The pixel time-series panel (ui/timeseries_panel.py, core/series/pixel_series.py) on a real QgsMapCanvas.

A small fixture writes an invertpairs-format output (speed, velocity_east, velocity_north: 6 dates on a
6 × 5 grid of 10 m pixels in UTM 19S, plus a speed error file) and its 4 source pair velocity rasters; the
canvas shows it in EPSG:4326, so each click goes through the canvas → layer CRS transform. The click is a
real ``QgsMapMouseEvent`` at the canvas pixel of a raster cell centre, given to the tool's
``canvasReleaseEvent``; the plotted line data are compared with the raster values read with rasterio.
"""
import datetime as dt
import json
import os
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from surface_motion.core.io import Grid, write_raster
from surface_motion.core.offsets.velocity import VELOCITY_DESCRIPTIONS
from surface_motion.core.series import pixel_series as ps

EPSG = 32719
ROWS, COLS, PIXEL = 5, 6, 10.0
X0, Y0 = 500000.0, 4000000.0
DATES = [dt.datetime(2020, 2, 1) + dt.timedelta(days=4 * k) for k in range(6)]
#: (reference, secondary) date indices of the 4 source pairs.
PAIRS = [(0, 1), (1, 3), (2, 4), (3, 5)]
NAN_CELL = (4, 5)  # no value at any date, in any file
GAP = (1, 1, 2)  # (row, col, date index) with no east (hence no speed) value


def grid() -> Grid:
    return Grid(rasterio.crs.CRS.from_epsg(EPSG), from_origin(X0, Y0, PIXEL, PIXEL), COLS, ROWS)


def centre(row: int, col: int):
    """Map coordinates (layer CRS) of a cell centre."""
    return X0 + (col + 0.5) * PIXEL, Y0 - (row + 0.5) * PIXEL


def truth():
    """(east, north, speed, speed error) arrays (dates, rows, cols) of the fixture, m/yr."""
    d, r, c = np.meshgrid(np.arange(len(DATES)), np.arange(ROWS), np.arange(COLS), indexing="ij")
    east = 100.0 + 10.0 * d + r + 0.1 * c
    north = -50.0 + 5.0 * d - c
    east[GAP[2], GAP[0], GAP[1]] = np.nan
    speed = np.hypot(east, north)
    error = 2.0 + 0.5 * d + 0.01 * r
    for array in (east, north, speed, error):
        array[:, NAN_CELL[0], NAN_CELL[1]] = np.nan
    return east, north, speed, error


def write_series_output(folder, sources=None) -> str:
    """The fixture in the invertpairs format; returns the path of ``<prefix>_speed.tif``."""
    folder = str(folder)
    east, north, speed, error = truth()
    if sources is None:
        sources = []
        for index, (i, j) in enumerate(PAIRS):
            pair_east, pair_north = east[i] + 3.0 * (index + 1), north[i] - 2.0 * (index + 1)
            pair_speed = np.hypot(pair_east, pair_north)
            azimuth = np.degrees(np.arctan2(pair_east, pair_north)) % 360
            name = f"pair{index}_{DATES[i]:%Y%m%d}_{DATES[j]:%Y%m%d}_velocity.tif"
            write_raster(os.path.join(folder, name), grid(), [pair_speed, azimuth, pair_east, pair_north],
                         VELOCITY_DESCRIPTIONS)
            # one relative path: resolved against the series file's folder
            sources.append({"path": name if index == 0 else os.path.join(folder, name),
                            "ref_date": DATES[i].strftime("%Y-%m-%d"), "sec_date": DATES[j].strftime("%Y-%m-%d")})
    iso = [d.strftime("%Y-%m-%d") for d in DATES]
    for kind, values in (("speed", speed), ("velocity_east", east), ("velocity_north", north),
                         ("speed_error", error)):
        tags = {"SM_SERIES_KIND": kind.replace("_error", ""), "SM_SERIES_UNIT": "m/yr",
                "SM_SERIES_DATES": ",".join(iso), "SM_SERIES_SOURCES": json.dumps(sources)}
        write_raster(os.path.join(folder, f"run_{kind}.tif"), grid(), values, [f"{d} (m/yr)" for d in iso],
                     tags=tags)
    rms = 0.5 + 0.1 * np.arange(ROWS * COLS, dtype=float).reshape(ROWS, COLS)
    write_raster(os.path.join(folder, "run_quality.tif"), grid(), [rms, np.full((ROWS, COLS), 4.0), np.zeros((ROWS, COLS))],
                 ["residual RMS (m/yr)", "pairs used (count)", "uncovered steps (count)"],
                 tags={"SM_SERIES_KIND": "quality", "SM_SERIES_SOURCES": json.dumps(sources)})
    return os.path.join(folder, "run_speed.tif")


def raster_values(path, row, col):
    with rasterio.open(path) as ds:
        return ds.read()[:, row, col].astype(float)


@pytest.fixture
def series_path(tmp_path):
    return write_series_output(tmp_path)


@pytest.fixture
def panel(qgis_canvas, qgis_new_project):
    """(canvas in EPSG:4326 with the layer, tool, dock) for a layer path given to ``add``."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer
    from surface_motion.ui.timeseries_panel import PixelSeriesTool, TimeSeriesDock

    def add(path):
        layer = QgsRasterLayer(path, os.path.basename(path), "gdal")
        assert layer.isValid()
        QgsProject.instance().addMapLayer(layer)
        qgis_canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
        qgis_canvas.setLayers([layer])
        qgis_canvas.setExtent(qgis_canvas.mapSettings().layerExtentToOutputExtent(layer, layer.extent()))
        dock = TimeSeriesDock()
        tool = PixelSeriesTool(qgis_canvas, dock, lambda: layer)
        qgis_canvas.setMapTool(tool)
        return layer, tool, dock

    crs = qgis_canvas.mapSettings().destinationCrs()
    yield add
    qgis_canvas.setLayers([])
    qgis_canvas.setDestinationCrs(crs)


def click(canvas, tool, layer, x, y):
    """Release the left button at the canvas pixel of layer-CRS map position (x, y)."""
    from qgis.core import QgsCoordinateTransform, QgsPointXY, QgsProject
    from qgis.gui import QgsMapMouseEvent
    from qgis.PyQt.QtCore import QEvent, QPoint, Qt

    to_canvas = QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(),
                                       QgsProject.instance().transformContext())
    device = canvas.getCoordinateTransform().transform(to_canvas.transform(QgsPointXY(x, y)))
    event = QgsMapMouseEvent(canvas, QEvent.MouseButtonRelease, QPoint(round(device.x()), round(device.y())),
                             Qt.LeftButton)
    tool.canvasReleaseEvent(event)


@pytest.mark.parametrize("row, col", [(2, 3), (1, 1), (0, 0)])
def test_a_click_plots_the_raster_values_of_the_pixel(panel, qgis_canvas, series_path, row, col):
    layer, tool, dock = panel(series_path)
    click(qgis_canvas, tool, layer, *centre(row, col))
    assert dock.pixel is not None, dock.message.text()
    assert (dock.pixel.row, dock.pixel.col) == (row, col)
    folder = os.path.dirname(series_path)
    lines = dock.series_lines()
    assert sorted(lines) == ["east", "north", "speed"]
    for component, name in (("speed", "speed"), ("east", "velocity_east"), ("north", "velocity_north")):
        dates, values = lines[component]
        assert list(dates) == DATES
        np.testing.assert_array_equal(np.asarray(values, float),
                                      raster_values(os.path.join(folder, f"run_{name}.tif"), row, col))
    east, north, speed, error = truth()
    np.testing.assert_allclose(ps.series_of(dock.pixel, "speed").values, speed[:, row, col].astype(np.float32))
    np.testing.assert_allclose(ps.series_of(dock.pixel, "speed").errors, error[:, row, col].astype(np.float32))
    assert ps.series_of(dock.pixel, "east").errors is None  # no east error file: no error bars
    if (row, col) == GAP[:2]:
        assert np.isnan(lines["east"][1][GAP[2]]) and np.isnan(lines["speed"][1][GAP[2]])
    # the pair segments: 4 pairs × 3 components, each from ref to sec date at the pair raster's value
    # (none where the pair lacks east or north, as in the inversion: pair 2 starts at the gap's date)
    segments = dock.segment_lines()
    assert len(segments) == (9 if (row, col) == GAP[:2] else 12)
    for index, (i, j) in enumerate(PAIRS):
        pair = os.path.join(folder, f"pair{index}_{DATES[i]:%Y%m%d}_{DATES[j]:%Y%m%d}_velocity.tif")
        speed_v, _, east_v, north_v = raster_values(pair, row, col)
        for component, expected in (("speed", speed_v), ("east", east_v), ("north", north_v)):
            matches = [s for s in segments if s[0] == component and s[1] == [DATES[i], DATES[j]]]
            assert len(matches) == (0 if np.isnan(east_v) or np.isnan(north_v) else 1)
            if not matches:
                continue
            assert list(matches[0][2]) == pytest.approx([expected, expected], rel=0, abs=0)
    assert east_v == pytest.approx(east[i, row, col] + 3.0 * len(PAIRS), abs=1e-4)  # last pair: offset +12


def test_csv_and_png_export(panel, qgis_canvas, series_path, tmp_path):
    layer, tool, dock = panel(series_path)
    row, col = 3, 2
    click(qgis_canvas, tool, layer, *centre(row, col))
    path = dock.export_csv(str(tmp_path / "out" / "pixel.csv"))
    assert path and dock.message.text() == f"Written: {path}"
    text = open(path, encoding="utf-8").read()
    assert text.splitlines()[0] == "date,value,component,kind,error,end_date,unit"
    rows = ps.read_csv_rows(text)
    assert len(rows) == 3 * len(DATES) + 3 * len(PAIRS)
    east, north, speed, error = truth()
    speed_rows = [r for r in rows if r["component"] == "speed" and r["kind"] == "series"]
    assert [r["date"] for r in speed_rows] == [d.strftime("%Y-%m-%d") for d in DATES]
    np.testing.assert_allclose([float(r["value"]) for r in speed_rows], speed[:, row, col], rtol=1e-6)
    np.testing.assert_allclose([float(r["error"]) for r in speed_rows], error[:, row, col], rtol=1e-6)
    north_rows = [r for r in rows if r["component"] == "north" and r["kind"] == "series"]
    assert [float(r["value"]) for r in north_rows] == pytest.approx(list(north[:, row, col]))
    pairs = [r for r in rows if r["kind"] == "pair" and r["component"] == "east"]
    assert [(r["date"], r["end_date"]) for r in pairs] == [
        (DATES[i].strftime("%Y-%m-%d"), DATES[j].strftime("%Y-%m-%d")) for i, j in PAIRS]
    assert [float(r["value"]) for r in pairs] == pytest.approx(
        [east[i, row, col] + 3.0 * (k + 1) for k, (i, j) in enumerate(PAIRS)])
    png = dock.export_png(str(tmp_path / "out" / "pixel.png"))
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path / "out")) == ["pixel.csv", "pixel.png"]  # no temporary left


def test_a_click_outside_the_raster_or_on_nan_shows_a_message(panel, qgis_canvas, series_path):
    layer, tool, dock = panel(series_path)
    click(qgis_canvas, tool, layer, *centre(2, 2))
    assert dock.pixel is not None
    x, y = centre(2, 2)
    # outside: the canvas shows the raster's extent only, so give the handler a point beyond it
    from qgis.core import QgsCoordinateTransform, QgsPointXY, QgsProject
    to_canvas = QgsCoordinateTransform(layer.crs(), qgis_canvas.mapSettings().destinationCrs(),
                                       QgsProject.instance().transformContext())
    shown = tool.show_at(to_canvas.transform(QgsPointXY(x - 100.0, y)))
    assert shown.row == -1 and dock.pixel is None
    assert "is outside run_speed.tif; click inside the raster" in dock.message.text()
    assert dock.series_lines() == {} and not dock.csv_button.isEnabled()
    click(qgis_canvas, tool, layer, *centre(*NAN_CELL))
    assert dock.pixel is None
    assert dock.message.text() == ("No value at row 4, column 5 of run_speed.tif (NaN at every date and in "
                                   "every source pair).")


def test_no_series_layer_and_missing_pair_files_are_said(panel, qgis_canvas, tmp_path):
    from qgis.core import QgsPointXY

    sources = [{"path": str(tmp_path / "gone.tif"), "ref_date": "2020-02-01", "sec_date": "2020-02-05"}]
    path = write_series_output(tmp_path, sources)
    layer, tool, dock = panel(path)
    click(qgis_canvas, tool, layer, *centre(0, 1))
    assert dock.pixel is not None and dock.pixel.segments == []
    assert "1 source pair file(s) of run_speed.tif no longer exist" in dock.message.text()
    plain = tmp_path / "plain.tif"
    write_raster(str(plain), grid(), np.ones((ROWS, COLS)), ["speed (m/yr)"])
    layer2, tool2, dock2 = panel(str(plain))
    assert tool2.show_at(QgsPointXY(*centre(0, 0))) is None
    assert dock2.message.text().startswith("No time-series layer on the map")


#: date_dt (days) of the ITS_LIVE layers of a download that kept the image pairs.
DT_DAYS = [6.0, 12.0, 8.0, 16.0, 10.0, 24.0]


def write_itslive(folder, pairs: bool) -> str:
    """GeoTIFFs as itslivedownload writes them (cube stem, SM_VARIABLE, band dates, SM_MID_DATE and, for
    image-pair layers, SM_DATE_DT_DAYS)."""
    east, north, speed, error = truth()
    descriptions = [d.strftime("%Y-%m-%d") for d in DATES]
    band_tags = [{"SM_MID_DATE": d.strftime("%Y-%m-%dT12:00:00"), **({"SM_DATE_DT_DAYS": f"{days:.3f}"} if pairs
                                                                      else {})} for d, days in zip(DATES, DT_DAYS)]
    for variable, values in (("v", speed), ("vx", east), ("vy", north), ("v_error", error)):
        write_raster(os.path.join(str(folder), f"ITS_LIVE_vel_EPSG32719_G0120_X650000_Y4850000_{variable}.tif"),
                     grid(), values, descriptions, band_tags=band_tags,
                     tags={"SM_VARIABLE": variable, "SM_UNITS": "m/yr", "SM_SOURCE": "s3://cube.zarr"})
    return os.path.join(str(folder), "ITS_LIVE_vel_EPSG32719_G0120_X650000_Y4850000_vx.tif")


@pytest.mark.parametrize("pairs", [False, True])
def test_an_itslive_download_geotiff(panel, qgis_canvas, tmp_path, pairs):
    path = write_itslive(tmp_path, pairs)
    layer, tool, dock = panel(path)
    row, col = 2, 4
    click(qgis_canvas, tool, layer, *centre(row, col))
    assert dock.pixel.family == "its_live"
    east, north, speed, error = truth()
    lines = dock.series_lines()
    assert list(lines["speed"][0]) == [d + dt.timedelta(hours=12) for d in DATES]
    np.testing.assert_allclose(lines["speed"][1], speed[:, row, col], rtol=1e-6)
    np.testing.assert_allclose(lines["east"][1], east[:, row, col], rtol=1e-6)
    np.testing.assert_allclose(lines["north"][1], north[:, row, col], rtol=1e-6)
    np.testing.assert_allclose(ps.series_of(dock.pixel, "speed").errors, error[:, row, col], rtol=1e-6)
    segments = dock.segment_lines()
    if not pairs:  # aggregated layers: no acquisition span, no segment
        assert segments == []
        return
    assert len(segments) == 3 * len(DATES)
    mids = [d + dt.timedelta(hours=12) for d in DATES]
    north_segments = [s for s in segments if s[0] == "north"]
    for (component, (start, end), values), mid, days, value in zip(north_segments, mids, DT_DAYS, north[:, row, col]):
        assert start == mid - dt.timedelta(days=days / 2) and end == mid + dt.timedelta(days=days / 2)
        assert values == pytest.approx([value, value], rel=1e-6)


def test_without_matplotlib_the_dock_names_the_installer(monkeypatch, series_path):
    from surface_motion.ui.timeseries_panel import INSTALL_HINT, TimeSeriesDock

    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_qt5agg", None)  # import fails
    dock = TimeSeriesDock()
    assert dock.message.text() == INSTALL_HINT and "Install Python dependencies…" in INSTALL_HINT
    dock.show_pixel(ps.read_pixel_series(series_path, *centre(0, 0)))
    assert dock.csv_button.isEnabled() and not dock.png_button.isEnabled()
    assert dock.message.text().endswith(INSTALL_HINT)


def test_the_toolbar_action_sets_the_map_tool(qgis_iface, monkeypatch):
    from surface_motion.plugin import SurfaceMotionPlugin
    from surface_motion.ui.timeseries_panel import PixelSeriesTool

    monkeypatch.setattr(qgis_iface, "removeDockWidget", lambda dock: None, raising=False)
    plugin = SurfaceMotionPlugin(qgis_iface)
    plugin.add_series_tool()
    assert [a.text() for a in plugin.toolbar.actions()] == ["Pixel time series"]
    assert plugin.series_action.isCheckable() and not plugin.series_action.icon().isNull()
    plugin.series_action.trigger()
    tool = qgis_iface.mapCanvas().mapTool()
    assert isinstance(tool, PixelSeriesTool) and tool is plugin.series_tool and tool.action() is plugin.series_action
    plugin.series_action.trigger()  # unchecked: the tool is released
    assert qgis_iface.mapCanvas().mapTool() is None
    plugin.remove_series_tool()
    assert plugin.toolbar is None and plugin.series_tool is None


#: Runs inside the desktop QGIS (``qgis --code``): load the series, pick the plugin's tool, click a pixel,
#: screenshot the dock and the window, report the plotted values.
DESKTOP_SCRIPT = '''
import json, os, traceback
from qgis.PyQt.QtCore import QEvent, QPoint, Qt, QTimer
from qgis.core import QgsApplication, QgsCoordinateTransform, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapMouseEvent
from qgis.utils import iface, plugins

OUT = os.environ["SM_DESKTOP_OUT"]
report = {"errors": []}


def finish():
    with open(os.path.join(OUT, "report.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    QgsApplication.exit(0)


def shoot():
    try:
        plugin = plugins["surface_motion"]
        dock = plugin.series_dock
        report["message"] = dock.message.text()
        report["lines"] = {c: [float(v) for v in y] for c, (x, y) in dock.series_lines().items()}
        report["segments"] = len(dock.segment_lines())
        report["dock_visible"] = dock.isVisible()
        report["dock_png"] = dock.grab().save(os.path.join(OUT, "dock.png"))
        report["window_png"] = iface.mainWindow().grab().save(os.path.join(OUT, "window.png"))
    except Exception:
        report["errors"].append(traceback.format_exc())
    finish()


def click():
    try:
        canvas = iface.mapCanvas()
        layer = iface.activeLayer()
        x, y = float(os.environ["SM_CLICK_X"]), float(os.environ["SM_CLICK_Y"])
        to_canvas = QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(),
                                           QgsProject.instance().transformContext())
        device = canvas.getCoordinateTransform().transform(to_canvas.transform(QgsPointXY(x, y)))
        event = QgsMapMouseEvent(canvas, QEvent.MouseButtonRelease, QPoint(round(device.x()), round(device.y())),
                                 Qt.LeftButton)
        canvas.mapTool().canvasReleaseEvent(event)
    except Exception:
        report["errors"].append(traceback.format_exc())
    QTimer.singleShot(2500, shoot)


def run():
    try:
        layer = QgsRasterLayer(os.environ["SM_SERIES"], os.path.basename(os.environ["SM_SERIES"])[:-4], "gdal")
        QgsProject.instance().addMapLayer(layer)
        iface.setActiveLayer(layer)
        iface.mapCanvas().setExtent(iface.mapCanvas().mapSettings().layerExtentToOutputExtent(layer, layer.extent()))
        iface.mapCanvas().refresh()
        plugin = plugins["surface_motion"]
        report["toolbar_actions"] = [a.text() for a in plugin.toolbar.actions()]
        plugin.series_action.trigger()
        report["tool_checked"] = plugin.series_action.isChecked()
    except Exception:
        report["errors"].append(traceback.format_exc())
    QTimer.singleShot(2000, click)


iface.mainWindow().resize(1500, 950)
QTimer.singleShot(1500, run)
'''


def test_the_panel_in_the_real_desktop(qgis_process_env, tmp_path):
    """The real QGIS under Xvfb: the toolbar button, a click, the dock with the series (screenshot under
    .build/screenshots/pixel_series_dock.png)."""
    from conftest import require_programs
    from test_desktop import run_desktop, save_screenshot

    require_programs("xvfb-run", "qgis")
    from test_series_inversion import GRID, write_network
    from surface_motion.core.series.driver import invert_network
    from surface_motion.core.series.network import read_network

    out = tmp_path / "desktop"
    out.mkdir()
    (tmp_path / "network").mkdir()
    pairs = read_network(write_network(str(tmp_path / "network")))
    paths = invert_network(pairs, str(tmp_path / "series"), prefix="synthetic")
    script = tmp_path / "panel_script.py"
    script.write_text(DESKTOP_SCRIPT)
    row, col = GRID.height // 2, GRID.width // 3
    x, y = GRID.transform * (col + 0.5, row + 0.5)
    env = dict(qgis_process_env, SM_SERIES=paths["speed"], SM_CLICK_X=str(x), SM_CLICK_Y=str(y))
    report = run_desktop(env, out, script, "", "")
    assert report["toolbar_actions"] == ["Pixel time series"] and report["tool_checked"]
    assert report["dock_visible"] and report["segments"] > 3 * 20
    for component, kind in (("speed", "speed"), ("east", "velocity_east"), ("north", "velocity_north")):
        np.testing.assert_array_equal(report["lines"][component], raster_values(paths[kind], row, col))
    assert report["message"].startswith(f"synthetic_speed.tif — row {row}, column {col}")
    assert report["dock_png"] and report["window_png"]
    save_screenshot(str(out / "dock.png"), "pixel_series_dock.png")
    save_screenshot(str(out / "window.png"), "pixel_series_window.png")


def test_a_stack_output_gives_the_pair_segments_and_a_displacement_series_no_segments(tmp_path):
    """stackvelocity: only SM_SERIES_SOURCES (no dates) → the segments; a displacement file → its family."""
    write_series_output(tmp_path)
    with rasterio.open(str(tmp_path / "run_speed.tif")) as ds:
        sources = ds.tags()["SM_SERIES_SOURCES"]
    stack = str(tmp_path / "stack.tif")
    write_raster(stack, grid(), [np.ones((ROWS, COLS)), np.zeros((ROWS, COLS))], ["mean speed (m/yr)",
                                                                                  "std speed (m/yr)"],
                 tags={"SM_SERIES_SOURCES": sources})
    pixel = ps.read_pixel_series(stack, *centre(3, 4))
    assert (pixel.family, pixel.series, pixel.message) == ("stack", [], "")
    east = truth()[0]
    assert sorted(s.value for s in pixel.segments if s.component == "east") == pytest.approx(
        sorted(east[i, 3, 4] + 3.0 * (k + 1) for k, (i, j) in enumerate(PAIRS)))
    iso = [d.strftime("%Y-%m-%d") for d in DATES]
    displacement = np.cumsum(truth()[0], axis=0) * 4 / 365.25
    for kind in ("displacement_east", "displacement_north"):
        write_raster(str(tmp_path / f"run_{kind}.tif"), grid(), displacement, [f"{d} (m)" for d in iso],
                     tags={"SM_SERIES_KIND": kind, "SM_SERIES_UNIT": "m", "SM_SERIES_DATES": ",".join(iso),
                           "SM_SERIES_SOURCES": sources})
    pixel = ps.read_pixel_series(str(tmp_path / "run_displacement_east.tif"), *centre(0, 2))
    assert pixel.family == "displacement" and pixel.unit == "m" and pixel.segments == []
    assert [s.component for s in pixel.series] == ["east", "north"]
    np.testing.assert_allclose(pixel.series[0].values, displacement[:, 0, 2], rtol=1e-6)
    with pytest.raises(ps.UserInputError, match="is not a time-series raster"):
        ps.read_pixel_series(str(tmp_path / "pair0_20200201_20200205_velocity.tif"), *centre(0, 0))


def test_a_click_on_a_real_invertpairs_output(panel, qgis_canvas, tmp_path):
    """The synthetic disparity network of tests/test_series_inversion.py inverted by core.series.driver:
    the plotted series are the output's pixel values; the segments are the disparities at the pixel in m/yr
    (east = dx · pixel width / dt, north = −dy · pixel height / dt) over each pair's dates."""
    from test_series_inversion import GRID, write_network
    from surface_motion.core.series.driver import invert_network
    from surface_motion.core.series.network import read_network

    folder = tmp_path / "network"
    folder.mkdir()
    pairs = read_network(write_network(str(folder)))
    paths = invert_network(pairs, str(tmp_path / "out"), prefix="pm")
    layer, tool, dock = panel(paths["velocity_east"])
    row, col = GRID.height // 2, GRID.width // 3
    x, y = GRID.transform * (col + 0.5, row + 0.5)
    click(qgis_canvas, tool, layer, x, y)
    assert dock.pixel is not None, dock.message.text()
    lines = dock.series_lines()
    for component, kind in (("speed", "speed"), ("east", "velocity_east"), ("north", "velocity_north")):
        np.testing.assert_array_equal(np.asarray(lines[component][1], float), raster_values(paths[kind], row, col))
        with rasterio.open(paths[kind]) as ds:
            assert [d.strftime("%Y-%m-%d") for d in lines[component][0]] == ds.tags()["SM_SERIES_DATES"].split(",")
    expected = []
    for pair in pairs:
        dx, dy, valid = raster_values(pair.path, row, col)[:3]
        if valid and np.isfinite(dx) and np.isfinite(dy):
            dt_yr = pair.dt_days / 365.25
            east, north = dx * GRID.transform.a / dt_yr, dy * GRID.transform.e / dt_yr
            expected += [("east", pair.ref_date, pair.sec_date, east), ("north", pair.ref_date, pair.sec_date, north)]
    got = [(c, start, end, v[0]) for c, (start, end), v in dock.segment_lines() if c != "speed"]
    assert len(got) == len(expected) > 20
    expected = [(c, ref.replace(tzinfo=None), sec.replace(tzinfo=None), v) for c, ref, sec, v in expected]
    for (c, start, end, value), (c2, ref, sec, value2) in zip(sorted(got, key=lambda s: s[:3]),
                                                              sorted(expected, key=lambda s: s[:3])):
        assert (c, start, end) == (c2, ref, sec)
        assert value == pytest.approx(value2, rel=1e-9)
    with rasterio.open(paths["quality"]) as ds:
        rms, used = ds.read()[:2, row, col]
    assert dock.message.text().endswith(f"Residual RMS {rms:.3g} m/yr, {int(used)} pair(s) used.")
