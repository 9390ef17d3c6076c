"""surfacemotion:planetgroups — common-perspective groups and DEM-pair suggestions of Planet footprints."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsFeature,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDate, QDateTime, Qt, QVariant

from ..core.planet import groups as core_groups
from ..core.planet.schema import GROUP_FIELD
from ..core.planet.view_angle import DEFAULT_SCAN_LINE_AZIMUTH
from .base import (MAX_DAYS, MapGroup, SinkGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors, require_geometry,
                   style_on_completion)


#: ui/styles/planet_groups.qml: footprints filled by group_id (a hue per group, grey = in no group).
GROUPS_STYLE = "planet_groups"


def plain_value(value: Any) -> Any:
    """A layer attribute as plain Python: NULL → None, dates → ISO 8601 UTC text (GeoJSON readers
    may turn ``acquired`` into a date-time field)."""
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    if isinstance(value, QDateTime):
        if not value.isValid():
            return None
        return value.toUTC().toString(Qt.ISODateWithMs) if value.timeSpec() != Qt.LocalTime \
            else value.toString(Qt.ISODateWithMs) + "Z"
    if isinstance(value, QDate):
        return value.toString(Qt.ISODate) if value.isValid() else None
    return value


def footprint_records(source, label: str) -> List[Dict[str, Any]]:
    """The attributes of every feature of a footprints layer as plain records (feature order), after
    checking it is a polygon layer with the fields the grouping reads."""
    require_geometry(source, [QgsWkbTypes.PolygonGeometry], label)
    names = source.fields().names()
    missing = core_groups.missing_fields(names)
    if missing:
        raise QgsProcessingException(
            f"{label}: the layer lacks the field(s) {', '.join(missing)}; it has {', '.join(names) or 'none'}. "
            "Use the footprints written by 'Search the PlanetScope catalogue' (or a layer with Planet's item properties).")
    return [{name: plain_value(value) for name, value in zip(names, feature.attributes())}
            for feature in source.getFeatures()]


def dem_pair_fields() -> QgsFields:
    fields = QgsFields()
    for name in core_groups.DEM_PAIR_COLUMNS:
        kind = QVariant.String if name in ("img1", "img2", "date1", "date2") else QVariant.Double
        fields.append(QgsField(name, kind))
    return fields


class PlanetGroupsAlgorithm(SurfaceMotionAlgorithm):
    INPUT = "INPUT"
    TOLERANCE = "TOLERANCE"
    MIN_GROUP_SIZE = "MIN_GROUP_SIZE"
    MIN_DAYS = "MIN_DAYS"
    SCAN_LINE_AZIMUTH = "SCAN_LINE_AZIMUTH"
    ILLUMINATION = "ILLUMINATION"
    SUN_AZIMUTH_TOLERANCE = "SUN_AZIMUTH_TOLERANCE"
    SUN_ELEVATION_TOLERANCE = "SUN_ELEVATION_TOLERANCE"
    DEM_MAX_DAYS = "DEM_MAX_DAYS"
    DEM_MIN_VIEW_ANGLE = "DEM_MIN_VIEW_ANGLE"
    OUTPUT = "OUTPUT"
    DEM_PAIRS = "DEM_PAIRS"
    N_GROUPS = "N_GROUPS"
    N_GROUPED = "N_GROUPED"
    N_DEM_PAIRS = "N_DEM_PAIRS"

    group_id = "planet"
    PARAMETER_HELP = {
        "INPUT": "Scene footprints with Planet's properties (id, acquired, view_angle, true_view_angle or "
                 "satellite_azimuth, sun_azimuth, sun_elevation), e.g. from 'Search the PlanetScope catalogue'.",
        "TOLERANCE": "Largest difference of true (signed) view angle between two scenes of a group, in degrees "
                     "(tutorial 0.3, default 0.5).",
        "MIN_GROUP_SIZE": "Fewest scenes a group must keep after the time thinning.",
        "MIN_DAYS": "Shortest time between consecutive scenes of a group, in days; closer scenes are left to "
                    "other groups. 0 = no thinning.",
        "SCAN_LINE_AZIMUTH": "Azimuth of the scan line in degrees from north (7-12, default 10), used where a "
                             "footprint has no true view angle and it is computed from the satellite azimuth.",
        "ILLUMINATION": "Also require similar sun angles: sun azimuth and elevation within their tolerances of "
                        "the scene that opens the group (avoids shadow-driven offsets).",
        "SUN_AZIMUTH_TOLERANCE": "Largest sun-azimuth difference from the scene opening the group, in degrees.",
        "SUN_ELEVATION_TOLERANCE": "Largest sun-elevation difference from the scene opening the group, in degrees.",
        "DEM_MAX_DAYS": "DEM pairs: the newer scene at most this many days after the older one.",
        "DEM_MIN_VIEW_ANGLE": "DEM pairs: only scenes with at least this view angle, in degrees.",
        "OUTPUT": "The footprints with the field group_id (1, 2, ...; -1 = in no group).",
        "DEM_PAIRS": "Suggested stereo pairs for a DEM: img1, img2, date1, date2, dt_days, true_va1, true_va2, "
                     "true_va_diff (a .csv destination writes CSV).",
    }

    def name(self):
        return "planetgroups"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Group Planet scenes by common perspective")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Groups the scene footprints of the PlanetScope catalogue search by common perspective, so that offset "
            "tracking pairs scenes seen from the same side, and suggests stereo pairs for a DEM.\n"
            "Two scenes of a group differ by at most the tolerance in true (signed) view angle, in degrees; "
            "it is computed from the satellite azimuth and the scan-line azimuth where the layer lacks it. "
            "Groups are deterministic: scenes sorted by true view angle, time and id; the lowest free scene "
            "opens a window up to tolerance degrees higher; its scenes are thinned to the minimum days "
            "between members and form a group if at least the minimum group size remains, else the opening "
            "scene is left out. The input order does not matter (unlike the tutorial's greedy grouping).\n"
            "Illumination: optionally also sun azimuth and elevation within their tolerances of the opening "
            "scene.\n"
            "DEM pairs: for each scene with at least the minimum view angle, the newer scene within the "
            "maximum days with the largest true view-angle difference.\n"
            "Outputs: the footprints with group_id (-1 = in no group), the DEM-pair table and the numbers "
            "of groups, grouped scenes and DEM pairs. Give the grouped footprints to 'Build image pairs'."
        )

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.INPUT, self.tr("Scene footprints"), [QgsProcessing.TypeVectorPolygon]))
        self._number(self.TOLERANCE, "True view-angle tolerance (degrees)", core_groups.DEFAULT_TOLERANCE, 0.0, 45.0)
        self._number(self.MIN_GROUP_SIZE, "Minimum group size (scenes)", core_groups.DEFAULT_MIN_GROUP_SIZE, 1,
                     100000, integer=True)
        self._number(self.MIN_DAYS, "Minimum time between group members (days)", core_groups.DEFAULT_MIN_DAYS,
                     0.0, MAX_DAYS)
        self._number(self.SCAN_LINE_AZIMUTH, "Scan-line azimuth (degrees)", DEFAULT_SCAN_LINE_AZIMUTH, 0.0, 45.0)
        self.addParameter(QgsProcessingParameterBoolean(
            self.ILLUMINATION, self.tr("Match illumination (sun angles)"), False))
        self._number(self.SUN_AZIMUTH_TOLERANCE, "Sun azimuth tolerance (degrees)",
                     core_groups.DEFAULT_SUN_TOLERANCE, 0.0, 180.0)
        self._number(self.SUN_ELEVATION_TOLERANCE, "Sun elevation tolerance (degrees)",
                     core_groups.DEFAULT_SUN_TOLERANCE, 0.0, 90.0)
        self._number(self.DEM_MAX_DAYS, "DEM pairs: maximum time between the scenes (days)",
                     core_groups.DEFAULT_DEM_MAX_DAYS, 0.01, MAX_DAYS)
        self._number(self.DEM_MIN_VIEW_ANGLE, "DEM pairs: minimum view angle (degrees)",
                     core_groups.DEFAULT_DEM_MIN_VIEW_ANGLE, 0.0, 60.0)
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, self.tr("Footprints with groups"), QgsProcessing.TypeVectorPolygon))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.DEM_PAIRS, self.tr("Suggested DEM pairs"), QgsProcessing.TypeVector))
        self.addOutput(QgsProcessingOutputNumber(self.N_GROUPS, self.tr("Number of groups")))
        self.addOutput(QgsProcessingOutputNumber(self.N_GROUPED, self.tr("Number of grouped scenes")))
        self.addOutput(QgsProcessingOutputNumber(self.N_DEM_PAIRS, self.tr("Number of DEM pairs")))

    def _number(self, name: str, label: str, default: float, low: float, high: float, integer: bool = False):
        kind = QgsProcessingParameterNumber.Integer if integer else QgsProcessingParameterNumber.Double
        self.addParameter(QgsProcessingParameterNumber(name, self.tr(label), kind, default, minValue=low,
                                                       maxValue=high))

    def rules(self, parameters, context) -> core_groups.GroupRules:
        """The grouping rules chosen in the dialog."""
        illumination = self.parameterAsBoolean(parameters, self.ILLUMINATION, context)
        number = lambda name: self.parameterAsDouble(parameters, name, context)  # noqa: E731
        return core_groups.GroupRules(
            tolerance=number(self.TOLERANCE),
            min_group_size=self.parameterAsInt(parameters, self.MIN_GROUP_SIZE, context),
            min_days=number(self.MIN_DAYS),
            sun_azimuth_tolerance=number(self.SUN_AZIMUTH_TOLERANCE) if illumination else None,
            sun_elevation_tolerance=number(self.SUN_ELEVATION_TOLERANCE) if illumination else None)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.tr("The scene footprints layer cannot be read."))
        records = footprint_records(source, self.tr("Scene footprints"))
        with core_errors_as_processing_errors():
            scenes = core_groups.scenes_from_records(
                records, self.parameterAsDouble(parameters, self.SCAN_LINE_AZIMUTH, context))
            group_ids = core_groups.perspective_groups(scenes, self.rules(parameters, context))
            dem_pairs = core_groups.suggest_dem_pairs(
                scenes, self.parameterAsDouble(parameters, self.DEM_MIN_VIEW_ANGLE, context),
                self.parameterAsDouble(parameters, self.DEM_MAX_DAYS, context))
        n_groups = len({int(g) for g in group_ids if g != core_groups.NO_GROUP})
        n_grouped = int((group_ids != core_groups.NO_GROUP).sum())
        feedback.pushInfo(self.tr("{} scenes: {} groups of {} scenes in all, {} in no group; {} DEM pairs").format(
            len(records), n_groups, n_grouped, len(records) - n_grouped, len(dem_pairs)))
        if n_groups == 0:
            feedback.reportError(self.tr(
                "No group of at least {} scenes: raise the tolerance, lower the minimum group size or the "
                "minimum days between members.").format(self.parameterAsInt(parameters, self.MIN_GROUP_SIZE,
                                                                             context)))
        fields = QgsFields(source.fields())
        if fields.indexOf(GROUP_FIELD) < 0:
            fields.append(QgsField(GROUP_FIELD, QVariant.Int))
        group_index = fields.indexOf(GROUP_FIELD)
        with SinkGroup(self, parameters, context, feedback) as sinks:  # both outputs or neither
            sink = sinks.open(self.OUTPUT, fields, source.wkbType(), source.sourceCrs())
            for feature, group in zip(source.getFeatures(), group_ids):
                out = QgsFeature(fields)
                out.setGeometry(feature.geometry())
                attributes = list(feature.attributes()) + [None] * (fields.count() - len(feature.attributes()))
                attributes[group_index] = int(group)
                out.setAttributes(attributes)
                sink.add(out)
            output_id = sink.close()
            pairs_sink = sinks.open(self.DEM_PAIRS, dem_pair_fields(), QgsWkbTypes.NoGeometry)
            for row in dem_pairs:
                out = QgsFeature(dem_pair_fields())
                out.setAttributes([row[name] for name in core_groups.DEM_PAIR_COLUMNS])
                pairs_sink.add(out)
            pairs_id = pairs_sink.close()
        group = MapGroup(self)  # the grouped footprints on top, the DEM-pair table below them
        style_on_completion(context, output_id, GROUPS_STYLE, group=group)
        style_on_completion(context, pairs_id, None, group=group)
        feedback.setProgress(100)
        return {self.OUTPUT: output_id, self.DEM_PAIRS: pairs_id, self.N_GROUPS: n_groups,
                self.N_GROUPED: n_grouped, self.N_DEM_PAIRS: len(dem_pairs)}


def group_of_record(record: Dict[str, Any]) -> Optional[int]:
    """The group id of a footprint record; None when the layer has no groups (no group_id field)."""
    if GROUP_FIELD not in record:
        return None
    value = record[GROUP_FIELD]
    try:
        return int(value)
    except (TypeError, ValueError):
        return core_groups.NO_GROUP
