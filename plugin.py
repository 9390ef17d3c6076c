"""Plugin object: registers the Processing provider, the "Install Python dependencies…" action and the
plugin's toolbar with the "Pixel time series" map tool (ui/timeseries_panel.py)."""
import os
from html import escape

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import QThread, Qt, pyqtSignal
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (QAction, QDialog, QDialogButtonBox, QLabel, QMessageBox, QPlainTextEdit,
                                 QProgressBar, QPushButton, QVBoxLayout)

from . import dependencies_folder
from .algorithms.settings import STARTUP_CHOICES, setting
from .core import dependencies
from .processing_provider.provider import ICON_PATH, SurfaceMotionProvider

MENU = "Surface Motion Toolbox"
SERIES_ICON_PATH = os.path.join(os.path.dirname(__file__), "ui", "icons", "pixel_series.svg")
LOG_TAG = "Surface Motion Toolbox"


def packages_to_install():
    """pip requirements the plugin lacks now: requirements.txt's, then the missing optional ones."""
    return dependencies.missing_requirements(dependencies.read_requirements()) + dependencies.missing_optional()


class SurfaceMotionPlugin:
    """Registers the provider in initProcessing (called by QGIS desktop and qgis_process) and,
    in the desktop, the menu action that installs the missing Python packages."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None  # keep a reference, or Python garbage-collects the provider
        self.install_action = None
        self.dialog = None
        self.toolbar = None
        self.series_action = None
        self.series_tool = None
        self.series_dock = None

    def initProcessing(self):  # noqa: N802 (QGIS API name)
        if self.provider is None:
            self.provider = SurfaceMotionProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API name)
        self.initProcessing()
        self.install_action = QAction(QIcon(ICON_PATH), "Install Python dependencies…", self.iface.mainWindow())
        self.install_action.setToolTip("Install the missing Python packages of the Surface Motion Toolbox into "
                                       "this QGIS profile (python/dependencies) with QGIS's own Python")
        self.install_action.triggered.connect(lambda: self.open_installer())
        self.iface.addPluginToMenu(MENU, self.install_action)
        self.add_series_tool()
        if self.iface.mainWindow().isVisible():  # enabled in a running QGIS
            self.check_at_startup()
        else:
            self.iface.initializationCompleted.connect(self.check_at_startup)

    def add_series_tool(self):
        """The plugin's toolbar with the checkable "Pixel time series" map tool (dock made on first use)."""
        self.toolbar = self.iface.addToolBar(MENU)
        self.toolbar.setObjectName("SurfaceMotionToolbar")
        self.series_action = QAction(QIcon(SERIES_ICON_PATH), "Pixel time series", self.iface.mainWindow())
        self.series_action.setCheckable(True)
        self.series_action.setToolTip("Pixel time series: click a pixel of an invertpairs or stackvelocity output "
                                      "or of an ITS_LIVE download to plot its time series")
        self.series_action.triggered.connect(lambda checked: self.activate_series_tool(checked))
        self.toolbar.addAction(self.series_action)

    def activate_series_tool(self, checked: bool = True):
        """Make the map tool the canvas's (or release it); returns the tool."""
        canvas = self.iface.mapCanvas()
        if not checked:
            if self.series_tool is not None and canvas.mapTool() is self.series_tool:
                canvas.unsetMapTool(self.series_tool)
            return self.series_tool
        if self.series_tool is None:
            from .ui.timeseries_panel import PixelSeriesTool, TimeSeriesDock

            self.series_dock = TimeSeriesDock(self.iface.mainWindow())
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.series_dock)
            self.series_dock.hide()
            self.series_tool = PixelSeriesTool(canvas, self.series_dock, self.iface.activeLayer)
            self.series_tool.setAction(self.series_action)
        canvas.setMapTool(self.series_tool)
        return self.series_tool

    def remove_series_tool(self):
        if self.series_tool is not None:
            self.iface.mapCanvas().unsetMapTool(self.series_tool)
            self.series_tool = None
        if self.series_dock is not None:
            self.iface.removeDockWidget(self.series_dock)
            self.series_dock.deleteLater()
            self.series_dock = None
        if self.toolbar is not None:
            self.toolbar.removeAction(self.series_action)
            self.toolbar.deleteLater()
            self.toolbar, self.series_action = None, None

    def unload(self):
        self.remove_series_tool()
        if self.install_action is not None:
            self.iface.removePluginMenu(MENU, self.install_action)
            self.install_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def check_at_startup(self):
        """Act on missing requirements.txt packages as the provider setting says (default: ask)."""
        choice = setting("SURFACEMOTION_DEPENDENCIES_AT_STARTUP")
        missing = dependencies.missing_requirements(dependencies.read_requirements())
        if not missing or choice == STARTUP_CHOICES[2]:
            return
        if choice == STARTUP_CHOICES[1]:
            self.open_installer(start=True)
            return
        bar = self.iface.messageBar()
        item = bar.createMessage(MENU, dependencies.missing_notice(
            [dependencies.requirement_name(requirement) for requirement in missing]))
        button = QPushButton("Install…")
        button.clicked.connect(lambda: (bar.popWidget(item), self.open_installer()))
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.Warning)

    def open_installer(self, start: bool = False):
        """Show the installer dialog (``start``: begin at once, without the confirmation click)."""
        self.dialog = InstallDialog(dependencies_folder(), packages_to_install(), self.iface.mainWindow())
        self.dialog.show()
        if start:
            self.dialog.start()
        return self.dialog


class InstallWorker(QThread):
    """Runs :func:`core.dependencies.install` off the GUI thread; output through signals."""

    line = pyqtSignal(str)
    progress = pyqtSignal(float)
    done = pyqtSignal(object, object)  # (InstallResult or None, error message or None)

    def __init__(self, requirements, folder, parent=None):
        super().__init__(parent)
        self.requirements, self.folder, self.canceled = list(requirements), folder, False

    def run(self):
        try:
            result = dependencies.install(self.requirements, self.folder, log=self.line.emit,
                                          progress=self.progress.emit, is_canceled=lambda: self.canceled)
        except Exception as exc:  # noqa: BLE001 — every failure is shown to the user, never lost in a thread
            self.done.emit(None, str(exc))
        else:
            self.done.emit(result, None)


class InstallDialog(QDialog):
    """Lists what will be installed where, runs pip with a live log, and says how it went."""

    def __init__(self, folder, requirements, parent=None):
        super().__init__(parent)
        self.folder, self.requirements, self.worker, self.result_text = folder, list(requirements), None, ""
        self.setWindowTitle("Surface Motion Toolbox — Install Python dependencies")
        self.resize(760, 460)
        layout = QVBoxLayout(self)
        if self.requirements:
            text = (f"Missing: <b>{escape(', '.join(self.requirements))}</b>.<br>They will be installed with QGIS's "
                    f"Python into <code>{escape(folder)}</code> (this profile only; numpy, GDAL and the other "
                    "packages QGIS ships are pinned and never replaced). pip downloads them from https://pypi.org."
                    "<br>On Debian/Ubuntu, packages that have a <code>python3-…</code> Debian package are better "
                    "installed with apt.")
        else:
            text = ("Every Python package the plugin uses is installed "
                    f"(dependencies folder: <code>{escape(folder)}</code>).")
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.buttons = QDialogButtonBox()
        self.install_button = self.buttons.addButton("Install", QDialogButtonBox.AcceptRole)
        self.install_button.setEnabled(bool(self.requirements))
        self.close_button = self.buttons.addButton(QDialogButtonBox.Close)
        self.install_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self.cancel_or_close)
        for widget in (self.label, self.bar, self.log, self.buttons):
            layout.addWidget(widget)

    def start(self):
        if not self.requirements or self.worker is not None:
            return
        self.install_button.setEnabled(False)
        self.close_button.setText("Cancel")
        self.worker = InstallWorker(self.requirements, self.folder, self)
        self.worker.line.connect(self.append)
        self.worker.progress.connect(lambda percent: self.bar.setValue(int(percent)))
        self.worker.done.connect(self.finished_install)
        self.worker.start()

    def append(self, line):
        self.log.appendPlainText(line)
        QgsMessageLog.logMessage(line, LOG_TAG, Qgis.Info)

    def cancel_or_close(self):
        if self.worker is not None and self.worker.isRunning():
            self.worker.canceled = True
        else:
            self.close()

    def finished_install(self, result, error):
        self.close_button.setText("Close")
        if error is None:
            dependencies.add_to_path(self.folder)
            self.result_text = result.summary() + " They can be used now; no restart is needed."
            self.bar.setValue(100)
            QgsMessageLog.logMessage(self.result_text, LOG_TAG, Qgis.Success)
            QMessageBox.information(self, "Python dependencies installed", self.result_text)
        else:
            self.result_text = error
            QgsMessageLog.logMessage(error, LOG_TAG, Qgis.Critical)
            QMessageBox.warning(self, "Python dependencies not installed", error)
        self.worker = None

