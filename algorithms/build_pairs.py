"""surfacemotion:buildpairs — pair table from PlanetScope scene names."""
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsGeometry,
    QgsPointXY,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..core.offsets.pairs import (FOOTPRINT_COLUMNS, MODES, PAIR_COLUMNS, Footprint, build_footprint_pairs,
                                  build_pairs, list_scenes, write_pair_table)
from ..core.planet.groups import scenes_from_records
from .base import (MAX_DAYS, SinkGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors, enum_parameter,
                   enum_value, layer_paths)
from .planet_groups import footprint_records, group_of_record


def pair_fields(columns=PAIR_COLUMNS) -> QgsFields:
    """Attribute table of the pair layer (same columns as the CSV)."""
    fields = QgsFields()
    for name in columns:
        kind = (QVariant.Int if name == "group" else
                QVariant.Double if name == "dt_days" or name in FOOTPRINT_COLUMNS else QVariant.String)
        fields.append(QgsField(name, kind))
    return fields


def _cell(value):
    """A pandas cell as an attribute (NA → NULL, numpy numbers → Python numbers)."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def equal_area_crs(source, context) -> QgsCoordinateReferenceSystem:
    """A Lambert azimuthal equal-area CRS centred on the footprints' extent (areas in m², exact)."""
    to_wgs84 = QgsCoordinateTransform(source.sourceCrs(), QgsCoordinateReferenceSystem("EPSG:4326"),
                                      context.transformContext())
    centre = to_wgs84.transform(QgsPointXY(source.sourceExtent().center()))
    return QgsCoordinateReferenceSystem.fromProj(
        f"+proj=laea +lat_0={centre.y():.6f} +lon_0={centre.x():.6f} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs")


def footprint_overlaps(source, context):
    """``overlap(ref_id, sec_id)`` = area(ref ∩ sec) / area(ref) x 100 of the footprints of a layer,
    computed in an equal-area CRS (not in degrees)."""
    transform = QgsCoordinateTransform(source.sourceCrs(), equal_area_crs(source, context),
                                       context.transformContext())
    id_index = source.fields().indexOf("id")
    shapes = {}
    for feature in source.getFeatures():
        geometry = QgsGeometry(feature.geometry())
        geometry.transform(transform)
        shapes[str(feature.attributes()[id_index])] = geometry

    def overlap(ref_id: str, sec_id: str) -> float:
        ref, sec = shapes[ref_id], shapes[sec_id]
        area = ref.area()
        return float("nan") if area <= 0 else 100.0 * ref.intersection(sec).area() / area

    return overlap


class BuildPairsAlgorithm(SurfaceMotionAlgorithm):
    INPUTS = "INPUTS"
    FOLDER = "FOLDER"
    PATTERN = "PATTERN"
    MODE = "MODE"
    DT_MIN = "DT_MIN"
    DT_MAX = "DT_MAX"
    FOOTPRINTS = "FOOTPRINTS"
    OUTPUT = "OUTPUT"
    OUTPUT_CSV = "OUTPUT_CSV"
    N_PAIRS = "N_PAIRS"

    group_id = "preparation"
    PARAMETER_HELP = {
        "INPUTS": "Single-band scenes whose file names start with a PlanetScope scene id.",
        "FOLDER": "A folder searched (not recursively) for scenes matching the file pattern; combined with the "
                  "list of scenes.",
        "PATTERN": "Glob pattern of the scene files in the folder, e.g. *_b2.tif (the green bands written by "
                   "'Extract band').",
        "MODE": "All pairs older → newer: every scene with every later scene. One reference: the oldest scene "
                "against every other scene.",
        "DT_MIN": "Shortest time between the two scenes of a pair, in days (inclusive).",
        "DT_MAX": "Longest time between the two scenes of a pair, in days (inclusive); empty = no limit.",
        "FOOTPRINTS": "Scene footprints, e.g. with group_id from 'Group Planet scenes by common perspective': "
                      "pairs only within a group, with view-angle, sun-angle and overlap columns. Scenes are "
                      "matched by the Planet id in their file names.",
        "OUTPUT": "The pair table as a layer (no geometry), input of 'Correlate image pairs from a pair table'.",
        "OUTPUT_CSV": "The same table as a CSV file.",
    }

    def name(self):
        return "buildpairs"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Build image pairs")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Builds the table of image pairs to correlate from single-band scenes: a list of rasters and/or a "
            "folder with a file pattern (default *_b2.tif, the output of 'Extract band').\n"
            "Acquisition times come from the PlanetScope scene id at the start of each file name: "
            "YYYYMMDD_HHMMSS_SSSS (PS2) or YYYYMMDD_HHMMSS_FF_SSSS (SuperDove), followed by _3B_ or _1B_; mixing "
            "the two sensors is refused.\n"
            "Pairing mode: all pairs older → newer (every scene with every later one), or one reference (the "
            "oldest scene against every other).\n"
            "The time separation dt_days is in fractional days from the full UTC timestamps; a pair is kept when "
            "minimum ≤ dt_days ≤ maximum (empty maximum = no limit). Choose the minimum so the expected motion "
            "exceeds the 1-2 px noise. No pair within the limits is an error that says so.\n"
            "With scene footprints (of the catalogue search, or with groups from 'Group Planet scenes by common "
            "perspective'): "
            "pairs only within each group (scenes in no group left out), plus the true view angles, the "
            "absolute differences of true view angle, sun azimuth and sun elevation in degrees, the footprint "
            "overlap % (equal-area) and the group.\n"
            "Outputs: a table layer and a CSV with the columns ref, sec (paths), ref_id, sec_id, ref_date, "
            "sec_date (ISO 8601 UTC) and dt_days, and the number of pairs."
        )

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUTS, self.tr("Single-band scenes"), QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.FOLDER, self.tr("Folder of single-band scenes"),
            behavior=QgsProcessingParameterFile.Folder, optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.PATTERN, self.tr("File pattern in the folder"), "*_b2.tif"))
        self.addParameter(enum_parameter(self, self.MODE, "Pairing mode", MODES, "all"))
        self.addParameter(QgsProcessingParameterNumber(
            self.DT_MIN, self.tr("Minimum time separation (days)"),
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=MAX_DAYS))
        self.addParameter(QgsProcessingParameterNumber(
            self.DT_MAX, self.tr("Maximum time separation (days; empty = no limit)"),
            QgsProcessingParameterNumber.Double, None, optional=True, minValue=0.0, maxValue=MAX_DAYS))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.FOOTPRINTS, self.tr("Scene footprints (pairs within groups)"), [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, self.tr("Pair table"), QgsProcessing.TypeVector))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_CSV, self.tr("Pair table CSV"), self.tr("CSV files (*.csv)")))
        self.addOutput(QgsProcessingOutputNumber(self.N_PAIRS, self.tr("Number of pairs")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        paths = layer_paths(parameters, self.INPUTS, context)
        folder = self.parameterAsFile(parameters, self.FOLDER, context)
        pattern = self.parameterAsString(parameters, self.PATTERN, context) or "*_b2.tif"
        dt_max = parameters.get(self.DT_MAX)
        dt_max = None if dt_max in (None, "") else self.parameterAsDouble(parameters, self.DT_MAX, context)
        with core_errors_as_processing_errors():
            if folder:
                paths += [p for p in list_scenes(folder, pattern) if p not in paths]
            if not paths:
                raise QgsProcessingException(self.tr(
                    "No scenes given: choose a folder (and file pattern) or a list of rasters."))
            mode = enum_value(self, parameters, self.MODE, context, MODES)
            dt_min = self.parameterAsDouble(parameters, self.DT_MIN, context)
            footprints = self.parameterAsSource(parameters, self.FOOTPRINTS, context) \
                if parameters.get(self.FOOTPRINTS) not in (None, "") else None
            if footprints is None:
                table = build_pairs(paths, mode=mode, dt_min_days=dt_min, dt_max_days=dt_max)
            else:
                table = self.footprint_pairs(paths, footprints, context, feedback, mode, dt_min, dt_max)
        if table.empty and footprints is not None:
            raise QgsProcessingException(self.tr(
                "No pair of the {} scenes lies within one group of the scene footprints and satisfies the "
                "time-separation limits (DT_MIN = {:g} days, DT_MAX = {}): nothing was written. Check the "
                "groups (group_id), lower DT_MIN or raise DT_MAX.").format(
                    len(paths), dt_min, "no limit" if dt_max is None else f"{dt_max:g} days"))
        if table.empty:
            raise QgsProcessingException(self.tr(
                "No pair of the {} scenes satisfies the time-separation limits (DT_MIN = {:g} days, DT_MAX = "
                "{}): nothing was written. Lower DT_MIN or raise DT_MAX.").format(
                    len(paths), self.parameterAsDouble(parameters, self.DT_MIN, context),
                    "no limit" if dt_max is None else f"{dt_max:g} days"))
        feedback.pushInfo(self.tr("{} scenes -> {} pairs").format(len(paths), len(table)))
        csv_output = self.parameterAsFileOutput(parameters, self.OUTPUT_CSV, context)
        if not csv_output.lower().endswith(".csv"):
            raise QgsProcessingException(self.tr(
                "The pair table CSV '{}' must end in .csv (it is a comma-separated text file).").format(csv_output))

        with SinkGroup(self, parameters, context, feedback) as sinks:  # both outputs or neither
            columns = PAIR_COLUMNS + [name for name in FOOTPRINT_COLUMNS if name in table.columns]
            fields = pair_fields(columns)
            sink = sinks.open(self.OUTPUT, fields, QgsWkbTypes.NoGeometry)
            for row in table[columns].itertuples(index=False):
                feature = QgsFeature(fields)
                feature.setAttributes([_cell(value) if name != "dt_days" else float(value)
                                       for name, value in zip(columns, row)])
                sink.add(feature)
            sink_id = sink.close()
            with core_errors_as_processing_errors():
                csv_path = write_pair_table(table, csv_output)
        feedback.setProgress(100)
        return {self.OUTPUT: sink_id, self.OUTPUT_CSV: csv_path, self.N_PAIRS: len(table)}

    def footprint_pairs(self, paths, source, context, feedback, mode, dt_min, dt_max):
        """Pairs within the groups of the footprints layer ``source``, with the footprint columns."""
        records = footprint_records(source, self.tr("Scene footprints (pairs within groups)"))
        scenes = scenes_from_records(records)
        footprints = {scene_id: Footprint(float(scenes.true_va[i]), float(scenes.sun_azimuth[i]),
                                          float(scenes.sun_elevation[i]), group_of_record(records[i]))
                      for i, scene_id in enumerate(scenes.ids)}
        table, left_out = build_footprint_pairs(paths, footprints, footprint_overlaps(source, context), mode,
                                                dt_min, dt_max)
        if left_out:
            feedback.pushInfo(self.tr("{} scene(s) in no group (or alone in their group) left out: {}").format(
                len(left_out), ", ".join(left_out[:20])))
        return table
