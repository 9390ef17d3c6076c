"""surfacemotion:buildpairs — pair table from PlanetScope scene names."""
from qgis.core import (
    QgsFeature,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..core.offsets.pairs import MODES, PAIR_COLUMNS, build_pairs, list_scenes, write_pair_table
from .base import (MAX_DAYS, SinkGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors, enum_parameter,
                   enum_value, layer_paths)


def pair_fields() -> QgsFields:
    """Attribute table of the pair layer (same columns as the CSV)."""
    fields = QgsFields()
    for name in PAIR_COLUMNS:
        fields.append(QgsField(name, QVariant.Double if name == "dt_days" else QVariant.String))
    return fields


class BuildPairsAlgorithm(SurfaceMotionAlgorithm):
    INPUTS = "INPUTS"
    FOLDER = "FOLDER"
    PATTERN = "PATTERN"
    MODE = "MODE"
    DT_MIN = "DT_MIN"
    DT_MAX = "DT_MAX"
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
            table = build_pairs(paths, mode=enum_value(self, parameters, self.MODE, context, MODES),
                                dt_min_days=self.parameterAsDouble(parameters, self.DT_MIN, context),
                                dt_max_days=dt_max)
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
            sink = sinks.open(self.OUTPUT, pair_fields(), QgsWkbTypes.NoGeometry)
            for row in table.itertuples(index=False):
                feature = QgsFeature(pair_fields())
                feature.setAttributes([getattr(row, name) if name != "dt_days" else float(row.dt_days)
                                       for name in PAIR_COLUMNS])
                sink.add(feature)
            sink_id = sink.close()
            with core_errors_as_processing_errors():
                csv_path = write_pair_table(table, csv_output)
        feedback.setProgress(100)
        return {self.OUTPUT: sink_id, self.OUTPUT_CSV: csv_path, self.N_PAIRS: len(table)}
