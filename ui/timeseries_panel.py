"""Click a pixel, see its time series: the "Pixel time series" map tool and its dock.

:class:`PixelSeriesTool` (a ``QgsMapToolEmitPoint``) takes the clicked canvas point, transforms it from the
canvas CRS to the layer's (the project's transform context) and asks
:func:`core.series.pixel_series.read_pixel_series` for the pixel's series: speed and east/north components
of an ``invertpairs`` output (or the layers of an ITS_LIVE download), 1-σ error bars where an error file
exists, and the source pairs as horizontal segments (reference → secondary date at the pair's velocity).
:class:`TimeSeriesDock` plots it with matplotlib's Qt5 canvas (``backend_qt5agg``, PyQt5 as in QGIS 3.22)
and exports it as CSV and PNG (written atomically through ``core.io``). Without matplotlib the dock says so
and names the plugin's "Install Python dependencies…" action; the plugin still loads (lazy import).
"""
from __future__ import annotations

import os
from typing import Optional

from qgis.core import (QgsCoordinateTransform, QgsMapLayerType, QgsPointXY, QgsProject, QgsRasterLayer,
                       QgsCsException)
from qgis.gui import QgsMapToolEmitPoint, QgsVertexMarker
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
                                 QWidget)

from ..core.errors import UserInputError
from ..core.io import atomic_file, verify, write_text
from ..core.series import pixel_series as ps

TITLE = "Pixel time series"
INSTALL_HINT = ("matplotlib is not installed, so the time series cannot be plotted. Install it with "
                "Plugins → Surface Motion Toolbox → Install Python dependencies… (or python3-matplotlib).")
#: Plot colour per component.
COLOURS = {"speed": "#1f4e9c", "east": "#c0392b", "north": "#27885a"}


def matplotlib_canvas():
    """(Figure, FigureCanvasQTAgg) classes, or None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_qt5agg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasQTAgg


def layer_path(layer) -> Optional[str]:
    """The file of a GDAL raster layer (None for other layers)."""
    if layer is None or layer.type() != QgsMapLayerType.RasterLayer or layer.providerType() != "gdal":
        return None
    path = layer.source().split("|")[0]
    return path if os.path.isfile(path) else None


class TimeSeriesDock(QDockWidget):
    """The dock: a message line, the plot, and the CSV / PNG export buttons."""

    def __init__(self, parent=None):
        super().__init__(TITLE, parent)
        self.setObjectName("SurfaceMotionPixelTimeSeries")
        self.setMinimumWidth(440)
        self.pixel: Optional[ps.PixelSeries] = None
        body = QWidget()
        layout = QVBoxLayout(body)
        self.message = QLabel("Click a pixel of an invertpairs, stackvelocity or ITS_LIVE download layer.")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.message)
        classes = matplotlib_canvas()
        self.figure = self.canvas = self.axes = None
        self.plotted_series, self.plotted_segments = {}, []
        if classes is None:
            self.message.setText(INSTALL_HINT)
        else:
            figure_class, canvas_class = classes
            self.figure = figure_class(figsize=(6, 3.6), dpi=100)
            self.canvas = canvas_class(self.figure)
            self.canvas.setMinimumHeight(260)
            layout.addWidget(self.canvas, 1)
        buttons = QHBoxLayout()
        self.csv_button = QPushButton("Export CSV…")
        self.png_button = QPushButton("Export PNG…")
        self.csv_button.clicked.connect(lambda: self.export_csv())
        self.png_button.clicked.connect(lambda: self.export_png())
        for button in (self.csv_button, self.png_button):
            button.setEnabled(False)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.setWidget(body)

    def show_message(self, text: str) -> None:
        """Show ``text`` instead of a series (the previous plot is cleared)."""
        self.pixel = None
        self.message.setText(text)
        if self.figure is not None:
            self.figure.clear()
            self.axes, self.plotted_series, self.plotted_segments = None, {}, []
            self.canvas.draw_idle()
        self.csv_button.setEnabled(False)
        self.png_button.setEnabled(False)

    def show_pixel(self, pixel: ps.PixelSeries) -> None:
        """Plot ``pixel`` (or show its message when it has nothing to plot)."""
        if pixel.message:
            self.show_message(pixel.message)
            return
        self.pixel = pixel
        text = (f"{os.path.basename(pixel.path)} — row {pixel.row}, column {pixel.col} "
                f"(x {pixel.x:.1f}, y {pixel.y:.1f})")
        self.message.setText("\n".join([text] + pixel.notes))
        self.csv_button.setEnabled(True)
        if self.figure is None:
            self.message.setText(self.message.text() + "\n" + INSTALL_HINT)
            return
        self.png_button.setEnabled(True)
        self.draw(pixel)

    def draw(self, pixel: ps.PixelSeries) -> None:
        """Two panels sharing the time axis: speed above, east/north components below; each with its
        series (markers and line, 1-σ error bars) and its pair segments (wide pale lines)."""
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        self.figure.clear()
        self.plotted_series, self.plotted_segments = {}, []
        present = ps.components(pixel)
        panels = [group for group in (("speed",), ("east", "north")) if any(c in present for c in group)]
        axes_list = self.figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        self.axes = axes_list[0]
        quantity = "displacement" if pixel.family == "displacement" else "velocity"
        for axes, group in zip(axes_list, panels):
            self._draw_group(axes, pixel, group)
            axes.set_ylabel(f"{'speed' if group == ('speed',) else quantity} ({pixel.unit})", fontsize=9)
            axes.grid(alpha=0.3)
            axes.tick_params(labelsize=8)
            axes.legend(fontsize=7, loc="best", ncol=2, framealpha=0.7)
        locator = AutoDateLocator(minticks=3, maxticks=7)
        axes_list[-1].xaxis.set_major_locator(locator)
        axes_list[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
        self.figure.tight_layout()
        self.canvas.draw_idle()

    def _draw_group(self, axes, pixel: ps.PixelSeries, group) -> None:
        for series in pixel.series:
            if series.component not in group:
                continue
            colour = COLOURS[series.component]
            label = series.component + (" (ITS_LIVE layers)" if series.kind == "its_live" else "")
            style = "o" if series.kind == "its_live" else "o-"
            container = axes.errorbar(series.dates, series.values, yerr=series.errors, fmt=style, ms=4, lw=1.6,
                                      color=colour, ecolor=colour, elinewidth=1, capsize=2, label=label, zorder=3)
            self.plotted_series[series.component] = container.lines[0]
        for component in group:  # one LineCollection per component: fast with hundreds of pairs
            mine = [segment for segment in pixel.segments if segment.component == component]
            if mine:
                collection = axes.hlines([m.value for m in mine], [m.ref_date for m in mine],
                                         [m.sec_date for m in mine], colors=COLOURS[component], alpha=0.4,
                                         lw=3 if len(mine) < 30 else 2,
                                         label=f"{component} pairs", zorder=2)
                collection.set_capstyle("butt")
                self.plotted_segments.append((component, collection))
        if group != ("speed",):
            axes.axhline(0.0, color="0.6", lw=0.8)

    def series_lines(self):
        """{component: (x data, y data)} of the plotted series (the data lines of the errorbar containers)."""
        return {c: (line.get_xdata(), line.get_ydata()) for c, line in self.plotted_series.items()}

    def segment_lines(self):
        """[(component, [start, end] as naive UTC datetimes, [value, value])] of the plotted pair segments."""
        from matplotlib.dates import num2date

        return [(c, [num2date(x).replace(tzinfo=None) for x in segment[:, 0]], list(segment[:, 1]))
                for c, collection in self.plotted_segments for segment in collection.get_segments()]

    def _ask(self, caption: str, suffix: str, file_filter: str) -> str:
        stem = os.path.splitext(self.pixel.path)[0] if self.pixel else "pixel"
        default = f"{stem}_r{self.pixel.row}_c{self.pixel.col}{suffix}" if self.pixel else stem + suffix
        path, _ = QFileDialog.getSaveFileName(self, caption, default, file_filter)
        return path

    def export_csv(self, path: Optional[str] = None) -> Optional[str]:
        """Write the shown series as CSV (asks for the file when ``path`` is None); returns the path."""
        if self.pixel is None:
            return None
        path = path or self._ask("Export the time series as CSV", ".csv", "CSV (*.csv)")
        if not path:
            return None
        text = ps.csv_text(self.pixel)
        return self._written(lambda: write_text(path, text, verify=verify.csv_rows(text.count("\n") - 1)), path)

    def export_png(self, path: Optional[str] = None) -> Optional[str]:
        """Save the plot as PNG (asks for the file when ``path`` is None); returns the path."""
        if self.pixel is None or self.figure is None:
            return None
        path = path or self._ask("Export the plot as PNG", ".png", "PNG (*.png)")
        if not path:
            return None

        def save():
            with atomic_file(path, verify=verify.image_readable(frames=1)) as tmp:
                self.figure.savefig(tmp, format="png", dpi=150)
            return path
        return self._written(save, path)

    def _written(self, write, path: str) -> Optional[str]:
        try:
            write()
        except (UserInputError, OSError) as exc:
            self.message.setText(f"Could not write {path}: {exc}")
            return None
        self.message.setText(f"Written: {path}")
        return path


class PixelSeriesTool(QgsMapToolEmitPoint):
    """Map tool: a click shows the clicked pixel's time series in :attr:`dock`."""

    def __init__(self, canvas, dock: TimeSeriesDock, active_layer=lambda: None):
        super().__init__(canvas)
        self.dock = dock
        self.active_layer = active_layer  # callable (iface.activeLayer in the desktop)
        self.marker: Optional[QgsVertexMarker] = None

    def mark(self, point: Optional[QgsPointXY]) -> None:
        """Mark the clicked point on the canvas (None: remove the mark)."""
        if self.marker is not None:
            self.canvas().scene().removeItem(self.marker)
            self.marker = None
        if point is not None:
            self.marker = QgsVertexMarker(self.canvas())
            self.marker.setIconType(QgsVertexMarker.ICON_CROSS)
            self.marker.setColor(QColor("#f6a01a"))
            self.marker.setIconSize(14)
            self.marker.setPenWidth(3)
            self.marker.setCenter(point)

    def deactivate(self):
        self.mark(None)
        super().deactivate()

    def canvasReleaseEvent(self, event):  # noqa: N802 (QGIS API name)
        """A click (the button released): the series at the released point (QgsMapToolEmitPoint emits
        ``canvasClicked`` on the press, which this tool leaves unconnected)."""
        if event.button() == Qt.LeftButton:
            self.show_at(self.toMapCoordinates(event.pos()))

    def series_layers(self):
        """Raster layers the panel can read: the active layer first, then the canvas layers top to bottom."""
        layers, seen = [], set()
        for layer in [self.active_layer()] + list(self.canvas().layers()):
            path = layer_path(layer)
            if path and layer.id() not in seen and ps.file_kind(path):
                seen.add(layer.id())
                layers.append((layer, path))
        return layers

    def show_at(self, point: QgsPointXY) -> Optional[ps.PixelSeries]:
        """Show the series at canvas point ``point`` (canvas CRS) in the dock; returns what was shown."""
        self.dock.show()
        self.dock.raise_()
        self.mark(None)
        layers = self.series_layers()
        if not layers:
            self.dock.show_message("No time-series layer on the map: add an invertpairs or stackvelocity "
                                   "output or an ITS_LIVE download GeoTIFF, and select it.")
            return None
        outside = None
        for layer, path in layers:
            try:
                local = self.to_layer_crs(layer, point)
                pixel = ps.read_pixel_series(path, local.x(), local.y())
            except QgsCsException:
                continue
            except UserInputError as exc:
                self.dock.show_message(str(exc))
                return None
            if pixel.row < 0:  # outside this layer: try the next one
                outside = outside or pixel
                continue
            self.dock.show_pixel(pixel)
            self.mark(point)
            return pixel
        self.dock.show_message(outside.message if outside else "The click is outside every time-series layer.")
        return outside

    def to_layer_crs(self, layer: QgsRasterLayer, point: QgsPointXY) -> QgsPointXY:
        """``point`` from the canvas CRS to the layer's (project transform context)."""
        transform = QgsCoordinateTransform(self.canvas().mapSettings().destinationCrs(), layer.crs(),
                                           QgsProject.instance().transformContext())
        return transform.transform(point)
