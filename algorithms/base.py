"""Shared plumbing for the thin Processing adapters: core calls, errors, outputs."""
from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsFeatureSink,
    QgsProcessingContext,
    QgsProcessingDestinationParameter,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsMapLayer,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtXml import QDomDocument

from ..core.choices import Choices
from ..core.dependencies import INSTALL_ACTION, OPTIONAL, PIP_ONLY, requirement_name
from ..core.errors import Cancelled, UserInputError
from ..core.io import STYLES_DIR, output_folder
from ..core.io.files import free_bytes, sidecar_paths, write_failure
from ..core.io.styles import date_label, fitted_style_of_file, layer_label, run_label
from .help import help_url

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON_PATH = os.path.join(PLUGIN_DIR, "ui", "icons", "surface_motion.svg")

#: Toolbox group labels by group id (the ids are stable). The Toolbox sorts groups by their label
#: (QString::localeAwareCompare), so the number puts them in workflow order.
GROUPS = {
    "planet": "1. PlanetScope catalogue",
    "preparation": "2. Preparation",
    "offsettracking": "3. Offset tracking",
    "postprocessing": "4. Post-processing",
    "itslive": "5. ITS_LIVE glacier velocity",
    "sentinel1": "6. Sentinel-1 time series",
}


class SurfaceMotionAlgorithm(QgsProcessingAlgorithm):
    """Base class: translation, grouping, icon, help, and running core functions.

    ``PARAMETER_HELP`` maps parameter names to a sentence or two of help, given to the parameter
    definition (``setHelp``) when it is added; QGIS shows it in the tooltip of the parameter's label
    and widget in the dialog. ``HELP_SECTIONS`` names shared README sections appended to the
    algorithm's help page (the Help button, :mod:`.help`).
    """

    group_id = "offsettracking"
    PARAMETER_HELP: Dict[str, str] = {}
    HELP_SECTIONS: Tuple[str, ...] = ()

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

    def helpUrl(self):  # noqa: N802 (QGIS API name)
        return help_url(self.name(), self.HELP_SECTIONS)

    def addParameter(self, definition, createOutput=True):  # noqa: N802,N803 (QGIS API names)
        """Add a parameter with its help from ``PARAMETER_HELP`` (tooltip in the dialog)."""
        text = self.PARAMETER_HELP.get(definition.name())
        if text:
            definition.setHelp(self.tr(text))
        return super().addParameter(definition, createOutput)

    def flags(self):
        return super().flags()

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        """Say what is allowed instead of Processing's generic 'Incorrect parameter value for X'."""
        problem = parameters_problem(self.parameterDefinitions(), parameters, context)
        if problem:
            return False, problem
        return super().checkParameterValues(parameters, context)


def parameters_problem(definitions, parameters, context) -> Optional[str]:
    """The first problem of ``parameters`` said in the user's terms, or None: a missing mandatory value,
    a number out of its declared range, a layer of the wrong type or without CRS, an unreadable file.
    Used by every algorithm of the plugin and by the shipped models."""
    for definition in definitions:
        problem = parameter_value_problem(definition, parameters.get(definition.name()))
        if problem:
            return problem
        if isinstance(definition, QgsProcessingParameterFeatureSource):
            problem = feature_source_problem(definition, parameters.get(definition.name()), context)
            if problem:
                return problem
        if isinstance(definition, (QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer)):
            for value in input_values(parameters.get(definition.name())):
                problem = unreadable_input_problem(value, context)
                if problem:
                    return f"{definition.description()}: {problem}"
    return None


#: Upper bound of every time-separation / duration parameter in days (a century).
MAX_DAYS = 36525.0
#: QgsProcessingParameterNumber's bounds when none is declared (±DBL_MAX).
_UNBOUNDED = 1e300


def _number_text(value: float) -> str:
    return f"{value:g}"


def number_range_problem(definition, value) -> Optional[str]:
    """Why ``value`` does not fit the number parameter ``definition`` ("<label> must be between a and
    b (got v)"), or None. Values that are not plain numbers (expressions, model inputs) are left to QGIS."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return f"{definition.description()} must be a number (got '{value}')."
    label = definition.description()
    if number != number:  # NaN
        return f"{label} must be a number (got NaN)."
    low, high = definition.minimum(), definition.maximum()
    has_low, has_high = abs(low) < _UNBOUNDED, abs(high) < _UNBOUNDED
    allowed = (f"between {_number_text(low)} and {_number_text(high)}" if has_low and has_high else
               f"at least {_number_text(low)}" if has_low else f"at most {_number_text(high)}" if has_high else "")
    if allowed and not low <= number <= high:
        return f"{label} must be {allowed} (got {_number_text(number)})."
    if definition.dataType() == QgsProcessingParameterNumber.Integer and number != int(number):
        return f"{label} must be a whole number{' ' + allowed if allowed else ''} (got {_number_text(number)})."
    return None


def parameter_value_problem(definition, value) -> Optional[str]:
    """What is wrong with the value of one parameter, said in the user's terms, or None: a mandatory
    parameter without a value, or a number outside its declared minimum/maximum."""
    empty = value is None or (isinstance(value, (str, list)) and len(value) == 0)
    if empty and definition.flags() & QgsProcessingParameterDefinition.FlagOptional:
        return None
    if isinstance(value, list) and not value:  # an explicit empty choice: the default does not apply
        return f"{definition.description()} is required: choose at least one."
    if value is None or value == "":
        if isinstance(definition, QgsProcessingDestinationParameter) or definition.defaultValue() not in (None, ""):
            return None
        return f"{definition.description()} is required: give a value."
    if isinstance(definition, QgsProcessingParameterNumber):
        return number_range_problem(definition, value)
    if isinstance(definition, QgsProcessingParameterDateTime) and isinstance(value, str):
        return date_text_problem(definition, value)
    return None


def date_text_problem(definition, text: str) -> Optional[str]:
    """Why ``text`` is not an ISO 8601 date or date-time for ``definition``, or None."""
    import datetime

    from qgis.PyQt.QtCore import QDate, QDateTime, Qt

    if QDateTime.fromString(text, Qt.ISODate).isValid() or QDate.fromString(text, Qt.ISODate).isValid():
        return None
    try:  # also "YYYY-MM-DD HH:MM[:SS]" and offsets, as QGIS reads them
        datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return None
    except ValueError:
        pass
    return (f"{definition.description()} must be a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM:SS, "
            f"UTC); got '{text}'.")


#: Geometry kinds a feature-source parameter may ask for, by QgsProcessing source type.
_GEOMETRY_KINDS = {QgsProcessing.TypeVectorPoint: QgsWkbTypes.PointGeometry,
                   QgsProcessing.TypeVectorLine: QgsWkbTypes.LineGeometry,
                   QgsProcessing.TypeVectorPolygon: QgsWkbTypes.PolygonGeometry}
_KIND_NAMES = {QgsWkbTypes.PointGeometry: "point", QgsWkbTypes.LineGeometry: "line",
               QgsWkbTypes.PolygonGeometry: "polygon", QgsWkbTypes.NullGeometry: "table (no geometry)"}


def feature_source_problem(definition, value, context) -> Optional[str]:
    """Why the layer given to a point/line/polygon feature-source parameter cannot be used, or None:
    the wrong geometry type (a point layer as a mask), or no coordinate reference system (its
    coordinates could not be placed on the rasters)."""
    wanted = [_GEOMETRY_KINDS[kind] for kind in definition.dataTypes() if kind in _GEOMETRY_KINDS]
    if not wanted or value in (None, ""):
        return None
    if isinstance(value, QgsProcessingFeatureSourceDefinition):
        value = value.source.staticValue()
    layer = value if isinstance(value, QgsMapLayer) else (
        QgsProcessingUtils.mapLayerFromString(value, context) if isinstance(value, str) else None)
    if not isinstance(layer, QgsVectorLayer) or not layer.isValid():
        return None  # unreadable files are named by Processing / the algorithm
    return geometry_problem(layer, wanted, definition.description())


def geometry_problem(source, kinds: Sequence[int], label: str) -> Optional[str]:
    """Why a feature source (a layer or a Processing source) cannot serve as a layer of geometry
    ``kinds`` (QgsWkbTypes.PointGeometry, ...), or None: no features, the wrong geometry type, or no CRS."""
    name = source.sourceName() if hasattr(source, "sourceName") else ""
    if source.featureCount() == 0:
        return f"{label}: '{name}' has no features; give a layer with at least one {_KIND_NAMES[kinds[0]]}."
    kind = QgsWkbTypes.geometryType(source.wkbType())
    if kind not in kinds:
        needed = " or ".join(_KIND_NAMES[wanted] for wanted in kinds)
        return f"{label}: '{name}' is a {_KIND_NAMES.get(kind, 'non-spatial')} layer; a {needed} layer is needed."
    if not source.sourceCrs().isValid():
        return (f"{label}: '{name}' has no coordinate reference system, so its coordinates cannot be placed "
                "on the rasters. Assign its CRS (Layer Properties → Source, or 'Assign projection').")
    return None


def require_geometry(source, kinds: Sequence[int], label: str) -> None:
    """:func:`geometry_problem` as a QgsProcessingException (models skip checkParameterValues of their steps)."""
    problem = geometry_problem(source, kinds, label)
    if problem:
        raise QgsProcessingException(problem)


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


#: pip and Debian package names of the optional Python packages, by import name (one table:
#: core.dependencies, which the installer also uses; the pip-only ones come from requirements.txt).
OPTIONAL_PACKAGES = {**{module: (requirement_name(pip), debian) for module, (pip, debian) in OPTIONAL.items()},
                     **{module: (pip, None) for module, pip in PIP_ONLY.items()}}


def install_hint(module: str) -> str:
    """How to install the package that provides ``module``, on every platform."""
    top = module.split(".")[0]
    pip_name, debian_name = OPTIONAL_PACKAGES.get(top, (top, None))
    debian = f" (Debian/Ubuntu: better `sudo apt install {debian_name}`, then restart QGIS)" if debian_name else ""
    return (f"This algorithm needs the Python package '{pip_name}', which is not installed. Install it with "
            f"{INSTALL_ACTION}, which installs the missing packages into this QGIS profile with QGIS's own "
            f"Python{debian}. Without the menu: `python3 -m pip install --target <profile>/python/dependencies "
            f"{pip_name}` with the Python QGIS uses (Windows: in the OSGeo4W Shell). See the plugin's README, "
            "'Installing into a desktop QGIS'.")


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


@contextlib.contextmanager
def output_folder_for(folder: str, keep_on_failure: bool = False, feedback=None) -> Iterator[str]:
    """The output folder of a run (``with output_folder_for(path) as folder:``): created if needed,
    temporary files of killed runs removed, and removed again if the run fails and created it
    (``keep_on_failure`` for resumable batches). Core errors become QgsProcessingException."""
    log = feedback.pushInfo if feedback is not None else None
    with core_errors_as_processing_errors(), output_folder(folder, keep_on_failure, log) as path:
        yield path


def advanced(parameter):
    """``parameter`` flagged advanced (folded away in the dialog)."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def enum_parameter(algorithm, name: str, description: str, choices: Choices, default: Optional[str] = None,
                   **options) -> QgsProcessingParameterEnum:
    """An enum parameter whose options are the (translated) labels of a core choice list."""
    if default is not None and not options.get("allowMultiple"):
        options["defaultValue"] = choices.index(default)
    return QgsProcessingParameterEnum(name, algorithm.tr(description),
                                      [algorithm.tr(label) for label in choices.labels], **options)


def enum_value(algorithm, parameters, name: str, context, choices: Choices) -> str:
    """The core value chosen in an enum parameter built by :func:`enum_parameter`."""
    with core_errors_as_processing_errors():
        return choices.value(algorithm.parameterAsEnum(parameters, name, context))


def enum_values(algorithm, parameters, name: str, context, choices: Choices) -> List[str]:
    """The core values chosen in a multiple enum parameter (its default when not given; empty when
    nothing is chosen)."""
    value = parameters.get(name)
    with core_errors_as_processing_errors():
        if value is None:  # not given: the parameter's default (parameterAsEnums would answer [0])
            default = algorithm.parameterDefinition(name).defaultValue()
            return [choices.value(int(i)) for i in (default if isinstance(default, (list, tuple)) else
                                                    [] if default in (None, "") else [default])]
        if value in ("", []):
            return []
        return [choices.value(index) for index in algorithm.parameterAsEnums(parameters, name, context)]


def _remove_vector_file(path: str) -> None:
    """A vector file with its sidecars (style, GeoPackage journals, shapefile companions)."""
    stem = os.path.splitext(path)[0]
    companions = [stem + ext for ext in (".shx", ".dbf", ".prj", ".cpg", ".qix")]
    for candidate in [path, *sidecar_paths(path), *companions]:
        with contextlib.suppress(OSError):
            os.remove(candidate)


def _file_size(path: Optional[str]) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


class VerifiedSink:
    """A feature sink of a Processing destination whose writes are checked.

    QGIS reports a failed feature write (full disk, locked file) only as a log
    line and the algorithm would report success over an unreadable file; here
    every ``add`` is checked, and :meth:`close` flushes, closes and reopens the
    file and counts its features. Any failure — creating the data source
    included — removes the file and raises a QgsProcessingException that says
    why (a full disk as such). Open sinks through :class:`SinkGroup`.
    """

    def __init__(self, algorithm, parameters, name: str, context, fields, geometry_type, crs=None):
        from qgis.core import QgsCoordinateReferenceSystem

        self.name = name
        target = algorithm.parameterAsOutputLayer(parameters, name, context).split("|")[0]
        try:
            self.sink, self.destination = algorithm.parameterAsSink(
                parameters, name, context, fields, geometry_type, crs or QgsCoordinateReferenceSystem())
        except QgsProcessingException as exc:
            if not os.path.isabs(target):
                raise
            folder = os.path.dirname(target)
            free = free_bytes(folder) if os.path.isdir(folder) else None
            written = _file_size(target)
            _remove_vector_file(target)  # QGIS may leave a half-created GeoPackage
            raise QgsProcessingException(str(write_failure(target, exc, free=free, written_bytes=written))) from exc
        if self.sink is None:
            raise QgsProcessingException(f"Cannot create the output {name}.")
        path = str(self.destination).split("|")[0]
        self.path = path if os.path.isfile(path) else None
        self.count = 0

    def add(self, feature) -> None:
        if not self.sink.addFeature(feature, QgsFeatureSink.FastInsert):
            self.fail(self.sink.lastError() or "a feature could not be written")
        self.count += 1

    def close(self) -> str:
        """Flush, close and verify; returns the destination id for the results."""
        if not self.sink.flushBuffer() or self.sink.lastError():
            self.fail(self.sink.lastError() or "the features could not be flushed")
        self.sink = None  # deletes the writer: the file is complete on disk now
        if self.path is not None:
            layer = QgsVectorLayer(self.path, "check", "ogr")
            if not layer.isValid() or layer.featureCount() != self.count:
                self.fail(f"the file reads back with {layer.featureCount() if layer.isValid() else 'no'} "
                          f"features instead of {self.count}")
        return self.destination

    def remove(self) -> None:
        """Remove the written file (another output of the run failed); memory layers stay."""
        self.sink = None
        if self.path is not None:
            _remove_vector_file(self.path)

    def fail(self, reason: str) -> None:
        free = free_bytes(os.path.dirname(self.path)) if self.path else None
        written = _file_size(self.path)
        self.remove()
        if self.path is not None:
            raise QgsProcessingException(str(write_failure(self.path, OSError(reason), free=free,
                                                           written_bytes=written)))
        raise QgsProcessingException(f"Writing the output {self.name} failed: {reason}.")


class SinkGroup:
    """The feature sinks of one run, which appear together or not at all.

    ``with SinkGroup(algorithm, parameters, context, feedback) as sinks:`` then
    ``sink = sinks.open(name, fields, geometry_type, crs)`` (a :class:`VerifiedSink`).
    The folder of a file destination is created when missing (and removed again when
    the run fails and created it); when the block fails — a sink, or any other output
    written inside the block — every sink of the group is removed.
    """

    def __init__(self, algorithm, parameters, context, feedback=None):
        self.algorithm, self.parameters, self.context, self.feedback = algorithm, parameters, context, feedback
        self.sinks: List[VerifiedSink] = []
        self.folders = contextlib.ExitStack()

    def __enter__(self) -> "SinkGroup":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is not None:
            for sink in self.sinks:
                sink.remove()
        return self.folders.__exit__(kind, exc, tb)

    def open(self, name: str, fields, geometry_type, crs=None) -> VerifiedSink:
        path = self.algorithm.parameterAsOutputLayer(self.parameters, name, self.context).split("|")[0]
        if os.path.isabs(path):  # a file, not memory:, ogr:... or a database
            self.folders.enter_context(output_folder_for(os.path.dirname(path), feedback=self.feedback))
        sink = VerifiedSink(self.algorithm, self.parameters, name, self.context, fields, geometry_type, crs)
        self.sinks.append(sink)
        return sink


class MapGroup:
    """The layer-tree group of one run: every layer the run loads goes into it, in the order the
    run asked for them (a file's companion views right after it), only the top layer visible.

    ``MapGroup(algorithm, paths)`` names the group after the algorithm and the outputs' dates
    (``Velocity 2020-07-15 → 2022-07-16, 9 pairs``); a run that loads a single layer gets no group.
    """

    def __init__(self, algorithm, paths: Sequence[str] = ()):
        title = re.sub(r"\s*\([^)]*\)\s*$", "", algorithm.displayName())  # without "(offset tracking)"
        self.name = f"{title} {run_label(list(paths))}".strip()
        self.key = uuid.uuid4().hex
        self.size = 0
        self.added = 0

    def reserve(self, count: int) -> int:
        """Plan ``count`` more layers; returns the rank (map order) of the first of them."""
        rank = self.size
        self.size += count
        return rank


def style_on_completion(context, output: str, style: str, companions: Sequence[Tuple[str, str]] = (),
                        group: Optional[MapGroup] = None, path: Optional[str] = None) -> None:
    """Style a destination when it loads on completion (the core wrote its sidecar .qml), name it
    after its dates and put it into ``group`` with companion views of the same file, each with its
    own style: ``companions`` are (role, style) pairs, e.g. ``("dy", "disparity_dy")``.
    ``path``: the file name the layer name's dates come from (default ``output``); without dates
    the layer keeps the name Processing gave it."""
    if context.willLoadLayerOnCompletion(output):
        details = context.layerToLoadOnCompletionDetails(output)
        dates = date_label(path or output)
        name = f"{dates} {_role_of(style)}".strip() if dates else details.name
        details.setPostProcessor(StylePostProcessor.create(style, companions, name, group))


def _role_of(style: Optional[str]) -> str:
    """The role word of a style in a layer name (``velocity_speed`` -> ``speed``)."""
    return STYLE_ROLES.get(style or "", "")


#: The role word shown after the dates in layer names, by style.
STYLE_ROLES = {"velocity_speed": "speed", "velocity_azimuth": "azimuth", "disparity_dx": "dx",
               "disparity_dy": "dy", "strain_effective": "effective strain rate",
               "strain_longitudinal": "longitudinal strain rate", "strain_e1": "e1",
               "flux_divergence": "flux divergence", "tracks_lines": "tracks", "tracks_points": "track vertices"}


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles, names and places a layer loaded on completion.

    A raster takes its sidecar style (written by the core with the colour range fitted to the
    data), or ``ui/styles/<style>.qml`` when it has none; a vector takes ``ui/styles/<style>.qml``.
    ``companions`` ((role, style) pairs) add more views of the same raster, each with its own style
    fitted to its band, e.g. the flow azimuth (band 2) next to the speed (band 1) of a velocity
    file. With a :class:`MapGroup` of more than one layer, the layer and its companions move into
    the run's group (created where QGIS put the first layer), ordered as the run asked; only the
    group's top layer stays visible. Works on QGIS 3.22 (no group in LayerDetails) and later
    versions alike: it only moves the layer-tree nodes QGIS made.
    """

    _keep_alive: List["StylePostProcessor"] = []  # Processing holds only a raw pointer
    ORDER_PROPERTY = "surfacemotion/map_order"
    RUN_PROPERTY = "surfacemotion/run"

    def __init__(self, style_name: Optional[str], companions: Sequence[Tuple[str, str]] = (),
                 layer_name: Optional[str] = None, group: Optional[MapGroup] = None):
        super().__init__()
        self.style_name = style_name
        self.companions = tuple(companions)
        self.layer_name = layer_name
        self.group = group
        self.rank = group.reserve(1 + len(self.companions)) if group is not None else 0

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API name)
        if self.style_name:
            apply_style(layer, self.style_name, sidecar=True)
        if self.layer_name:
            layer.setName(self.layer_name)
        project = context.project() or QgsProject.instance()
        views = [layer]
        if isinstance(layer, QgsRasterLayer):
            base = self.layer_name or layer.name()
            for role, style_name in self.companions:
                companion = QgsRasterLayer(layer.source(), _with_role(base, self.style_name, role), "gdal")
                if companion.isValid():
                    apply_style(companion, style_name)
                    project.addMapLayer(companion, False)
                    views.append(companion)
        place_in_group(project, views, self.group, self.rank)

    @classmethod
    def create(cls, style_name: Optional[str], companions: Sequence[Tuple[str, str]] = (),
               layer_name: Optional[str] = None, group: Optional[MapGroup] = None) -> "StylePostProcessor":
        instance = cls(style_name, companions, layer_name, group)
        cls._keep_alive.append(instance)
        return instance


def _with_role(name: str, style_name: Optional[str], role: str) -> str:
    """``name`` with the primary layer's role word replaced by ``role`` (``... speed`` -> ``... azimuth``)."""
    primary = _role_of(style_name)
    if primary and name.endswith(" " + primary):
        return f"{name[:-len(primary) - 1]} {role}"
    return f"{name} {role}"


def apply_style(layer, style_name: str, sidecar: bool = False) -> None:
    """Style ``layer`` with ``ui/styles/<style_name>.qml``; for a raster, its colour range fitted to
    the band it colours (core styles.fitted_style). ``sidecar``: prefer the style the core wrote
    next to the file (already fitted) when there is one."""
    path = layer.source().split("|")[0]
    own = os.path.splitext(path)[0] + ".qml"
    if sidecar and os.path.isfile(own):
        layer.loadNamedStyle(own)
    elif isinstance(layer, QgsRasterLayer) and os.path.isfile(path):
        try:
            text = fitted_style_of_file(style_name, path)
        except UserInputError:
            text = None
        document = QDomDocument()
        if text is None or not document.setContent(text)[0]:
            layer.loadNamedStyle(os.path.join(STYLES_DIR, style_name + ".qml"))
        else:
            layer.importNamedStyle(document)
    else:
        layer.loadNamedStyle(os.path.join(STYLES_DIR, style_name + ".qml"))
    layer.triggerRepaint()


def place_in_group(project, layers: Sequence[QgsMapLayer], group: Optional[MapGroup], rank: int) -> None:
    """Put ``layers`` (one file's views, primary first) into ``group``'s layer-tree group at ``rank``;
    without a group of several layers, the views stay where QGIS put the first one, hidden but it."""
    root = project.layerTreeRoot()
    node = root.findLayer(layers[0].id())
    if node is None:  # not in this project's layer tree (e.g. a layer styled outside a run)
        return
    parent = node.parent()
    index = parent.children().index(node)
    if group is None or group.size <= 1:
        for offset, layer in enumerate(layers[1:], start=1):
            parent.insertLayer(index + offset, layer).setItemVisibilityChecked(False)
        return
    target = _run_group(root, group)
    if target is None:
        target = parent.insertGroup(index, group.name)
        target.setCustomProperty(StylePostProcessor.RUN_PROPERTY, group.key)
    for offset, layer in enumerate(layers):
        existing = root.findLayer(layer.id())
        order = rank + offset
        position = sum(1 for child in target.children()
                       if int(child.customProperty(StylePostProcessor.ORDER_PROPERTY, -1)) < order)
        target.insertLayer(position, layer).setCustomProperty(StylePostProcessor.ORDER_PROPERTY, order)
        if existing is not None:
            existing.parent().removeChildNode(existing)
    for position, child in enumerate(target.children()):
        child.setItemVisibilityChecked(position == 0)


def _run_group(root, group: MapGroup):
    """The layer-tree group of run ``group`` if it exists already."""
    for node in root.findGroups(True):
        if node.customProperty(StylePostProcessor.RUN_PROPERTY) == group.key:
            return node
    return None


def load_on_completion(context: QgsProcessingContext, path: str, name: Optional[str], output_name: str,
                       style_name: Optional[str] = None, companions: Sequence[Tuple[str, str]] = (),
                       group: Optional[MapGroup] = None) -> None:
    """Ask Processing to add ``path`` to the project when the algorithm finishes, named ``name``
    (None: its dates and the style's role, ``2020-07-15 → 2021-01-12 speed``), styled, with its
    ``companions`` ((role, style) views of the same file), in ``group``."""
    name = name or layer_label(path, _role_of(style_name))
    details = QgsProcessingContext.LayerDetails(name, context.project(), output_name)
    details.setPostProcessor(StylePostProcessor.create(style_name, companions, name, group))
    context.addLayerToLoadOnCompletion(path, details)


def tif_output(algorithm, parameters, name: str, context) -> str:
    """Path of a raster destination parameter, which must be a GeoTIFF."""
    output = algorithm.parameterAsOutputLayer(parameters, name, context)
    if not output.lower().endswith((".tif", ".tiff")):
        raise QgsProcessingException(algorithm.tr("The output must be a GeoTIFF (.tif)."))
    return output


def load_disparity_on_completion(context: QgsProcessingContext, path: str, output_name: str,
                                 group: Optional[MapGroup] = None) -> None:
    """Load a disparity raster styled on dx, with a second view styled on dy."""
    load_on_completion(context, path, None, output_name, "disparity_dx",
                       companions=[("dy", "disparity_dy")], group=group)


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


def polygons_in_crs(source, crs_wkt: str, context, label: str = "The polygon layer") -> List[dict]:
    """GeoJSON geometries of a polygon feature source, reprojected to ``crs_wkt``; a source that is
    not a polygon layer with a CRS is refused with ``label`` in the message."""
    require_geometry(source, [QgsWkbTypes.PolygonGeometry], label)
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
