"""Surface Motion Toolbox: QGIS plugin entry point."""
import os

#: QgsSettings key of the provider setting SURFACEMOTION_DEPENDENCIES_FOLDER (Processing stores
#: its settings under Processing/Configuration/), read here before the provider exists.
DEPENDENCIES_FOLDER_KEY = "Processing/Configuration/SURFACEMOTION_DEPENDENCIES_FOLDER"


def dependencies_folder() -> str:
    """Folder of the plugin's pip packages: the provider setting, else ``<profile>/python/dependencies``
    (the folder QPIP installs into)."""
    from qgis.core import QgsApplication, QgsSettings

    folder = QgsSettings().value(DEPENDENCIES_FOLDER_KEY, "") or ""
    return folder or os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "dependencies")


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Called by QGIS (desktop and qgis_process) to create the plugin instance.

    First appends the dependencies folder to ``sys.path``, before anything imports an optional
    package (core.dependencies imports only the standard library).
    """
    from .core.dependencies import add_to_path

    add_to_path(dependencies_folder())
    from .plugin import SurfaceMotionPlugin

    return SurfaceMotionPlugin(iface)
