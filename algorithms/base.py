"""Shared plumbing for the thin Processing adapters: core calls, errors, outputs."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Callable, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsMapLayer,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core.errors import Cancelled, UserInputError
from ..core.raster_io import ensure_writable_dir

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLES_DIR = os.path.join(PLUGIN_DIR, "ui", "styles")
ICON_PATH = os.path.join(PLUGIN_DIR, "ui", "icons", "surface_motion.svg")

GROUPS = {
    "preparation": "Preparation",
    "offsettracking": "Offset tracking",
    "postprocessing": "Post-processing",
    "itslive": "ITS_LIVE glacier velocity",
    "sentinel1": "Sentinel-1 time series",
}


class SurfaceMotionAlgorithm(QgsProcessingAlgorithm):
    """Base class: translation, grouping, icon, and running core functions."""

    group_id = "offsettracking"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("SurfaceMotion", text)

    def createInstance(self):  # noqa: N802 (QGIS API name)
        return type(self)()

    def group(self):
        return self.tr(GROUPS[self.group_id])

    def groupId(self):  # noqa: N802 (QGIS API name)
        return self.group_id

    def icon(self):
        return QIcon(ICON_PATH)

    def flags(self):
        return super().flags()

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        """Name the unreadable file instead of Processing's generic 'Incorrect parameter value'."""
        for definition in self.parameterDefinitions():
            if isinstance(definition, (QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer)):
                for value in input_values(parameters.get(definition.name())):
                    problem = unreadable_input_problem(value, context)
                    if problem:
                        return False, f"{definition.description()}: {problem}"
        return super().checkParameterValues(parameters, context)


def run_core(function: Callable, feedback, *args, progress_range=(0.0, 100.0), **kwargs):
    """Call a core function with progress/cancel wired to ``feedback``.

    ``progress_range`` maps the core's 0-100 % into a part of the algorithm's
    progress bar. Core errors become ``QgsProcessingException`` with the core's
    message, which already says what is wrong and how to fix it.
    """
    start, stop = progress_range

    def progress(percent: float) -> None:
        if feedback is not None:
            feedback.setProgress(start + (stop - start) * max(0.0, min(100.0, percent)) / 100.0)

    def is_canceled() -> bool:
        return feedback is not None and feedback.isCanceled()

    with core_errors_as_processing_errors():
        return function(*args, progress=progress, is_canceled=is_canceled, **kwargs)


#: pip and Debian package names of the optional Python packages, by import name.
OPTIONAL_PACKAGES = {
    "xarray": ("xarray", "python3-xarray"), "zarr": ("zarr", "python3-zarr"),
    "fsspec": ("fsspec", "python3-fsspec"), "aiohttp": ("aiohttp", "python3-aiohttp"),
    "pystac_client": ("pystac-client", None), "pystac": ("pystac", None),
    "matplotlib": ("matplotlib", "python3-matplotlib"), "PIL": ("pillow", "python3-pil"),
    "netCDF4": ("netCDF4", "python3-netcdf4"), "dask": ("dask", "python3-dask"),
    "distributed": ("distributed", "python3-distributed"), "rasterio": ("rasterio", "python3-rasterio"),
    "scipy": ("scipy", "python3-scipy"), "pandas": ("pandas", "python3-pandas"),
}


def install_hint(module: str) -> str:
    """How to install the package that provides ``module``, on every platform."""
    top = module.split(".")[0]
    pip_name, debian_name = OPTIONAL_PACKAGES.get(top, (top, None))
    debian = f"Debian/Ubuntu: sudo apt install {debian_name}; " if debian_name else ""
    return (f"This algorithm needs the Python package '{pip_name}', which is not installed. {debian}"
            f"otherwise run `python3 -m pip install {pip_name}` with the Python QGIS uses (Windows: in "
            "the OSGeo4W Shell), then restart QGIS. See the plugin's README, 'Installing into a desktop QGIS'.")


@contextlib.contextmanager
def core_errors_as_processing_errors():
    """Re-raise core errors as ``QgsProcessingException`` with the core's message;
    a missing optional package becomes an install hint."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise QgsProcessingException(install_hint(exc.name or str(exc))) from exc
    except UserInputError as exc:
        raise QgsProcessingException(str(exc)) from exc
    except Cancelled as exc:
        raise QgsProcessingException("Cancelled by the user: no output was written.") from exc


def prepare_output_folder(folder: str) -> str:
    """Create the output folder and check it is writable, with a clear error if not."""
    with core_errors_as_processing_errors():
        return ensure_writable_dir(folder)


def write_sidecar_style(raster_path: str, style_name: str) -> str:
    """Copy ``ui/styles/<style_name>.qml`` next to ``raster_path`` (QGIS loads it as default style)."""
    target = os.path.splitext(raster_path)[0] + ".qml"
    shutil.copyfile(os.path.join(STYLES_DIR, style_name + ".qml"), target)
    return target


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a raster loaded on completion from ``ui/styles/<style>.qml``.

    ``companions`` adds more views of the same file, each with its own style,
    e.g. the flow azimuth (band 2) next to the speed (band 1) of a velocity file.
    """

    _keep_alive: List["StylePostProcessor"] = []  # Processing holds only a raw pointer

    def __init__(self, style_name: str, companions: Sequence[Tuple[str, str]] = ()):
        super().__init__()
        self.style_name = style_name
        self.companions = tuple(companions)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API name)
        if not isinstance(layer, QgsRasterLayer):
            return
        layer.loadNamedStyle(os.path.join(STYLES_DIR, self.style_name + ".qml"))
        layer.triggerRepaint()
        project = context.project()
        for layer_name, style_name in self.companions:
            companion = QgsRasterLayer(layer.source(), layer_name, "gdal")
            companion.loadNamedStyle(os.path.join(STYLES_DIR, style_name + ".qml"))
            if project is not None and companion.isValid():
                project.addMapLayer(companion)

    @classmethod
    def create(cls, style_name: str, companions: Sequence[Tuple[str, str]] = ()) -> "StylePostProcessor":
        instance = cls(style_name, companions)
        cls._keep_alive.append(instance)
        return instance


def load_on_completion(context: QgsProcessingContext, path: str, name: str, output_name: str,
                       style_name: Optional[str] = None,
                       companions: Sequence[Tuple[str, str]] = ()) -> None:
    """Ask Processing to add ``path`` to the project when the algorithm finishes."""
    details = QgsProcessingContext.LayerDetails(name, context.project(), output_name)
    if style_name:
        details.setPostProcessor(StylePostProcessor.create(style_name, companions))
    context.addLayerToLoadOnCompletion(path, details)


def tif_output(algorithm, parameters, name: str, context) -> str:
    """Path of a raster destination parameter, which must be a GeoTIFF."""
    output = algorithm.parameterAsOutputLayer(parameters, name, context)
    if not output.lower().endswith((".tif", ".tiff")):
        raise QgsProcessingException(algorithm.tr("The output must be a GeoTIFF (.tif)."))
    return output


def style_output(context, output: str, style: str, companions: Sequence[Tuple[str, str]] = ()) -> None:
    """Sidecar style for a raster destination, plus companion views when it loads on completion."""
    write_sidecar_style(output, style)
    if context.willLoadLayerOnCompletion(output):
        details = context.layerToLoadOnCompletionDetails(output)
        details.setPostProcessor(StylePostProcessor.create(
            style, [(f"{details.name} {label}", companion) for label, companion in companions]))


def load_disparity_on_completion(context: QgsProcessingContext, path: str, output_name: str) -> None:
    """Load a disparity raster styled on dx, with a second view styled on dy."""
    stem = os.path.splitext(os.path.basename(path))[0]
    load_on_completion(context, path, stem + " dx", output_name, "disparity_dx",
                       companions=[(stem + " dy", "disparity_dy")])


def input_values(value) -> list:
    """The entries of a layer parameter value (one value or a list)."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def unreadable_input_problem(value, context) -> Optional[str]:
    """Why a layer parameter entry cannot be used, or None if it loads."""
    if isinstance(value, QgsMapLayer):
        return None if value.isValid() else f"layer '{value.name()}' is not valid"
    if not isinstance(value, str):
        return None  # e.g. a model child output definition, resolved later by Processing
    layer = QgsProcessingUtils.mapLayerFromString(value, context)
    if layer is not None and layer.isValid():
        return None
    path = value.split("|")[0]
    if os.path.exists(path):
        return f"'{path}' cannot be read: it is not a GDAL/OGR-readable file (corrupt or unsupported)."
    return f"'{path}' does not exist. Check the path."


def layer_paths(parameters, name: str, context) -> List[str]:
    """File paths of the layers of a multiple-layer parameter, without duplicates."""
    paths = []
    for value in input_values(parameters.get(name)):
        layer = value if isinstance(value, QgsMapLayer) else QgsProcessingUtils.mapLayerFromString(str(value), context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(unreadable_input_problem(value, context))
        path = layer.source().split("|")[0]
        if path not in paths:
            paths.append(path)
    return paths


def polygons_in_crs(source, crs_wkt: str, context) -> List[dict]:
    """GeoJSON geometries of a polygon feature source, reprojected to ``crs_wkt``."""
    target = QgsCoordinateReferenceSystem.fromWkt(crs_wkt)
    transform = QgsCoordinateTransform(source.sourceCrs(), target, context.transformContext())
    geometries = []
    for feature in source.getFeatures():
        geometry = QgsGeometry(feature.geometry())
        if geometry.isEmpty():
            continue
        geometry.transform(transform)
        geometries.append(json.loads(geometry.asJson()))
    return geometries


def output_path_for(folder: str, source_path: str, suffix: str) -> str:
    """``<folder>/<source stem><suffix>.tif``."""
    stem = os.path.splitext(os.path.basename(source_path))[0]
    return os.path.join(folder, f"{stem}{suffix}.tif")
