"""surfacemotion:aoitimeline — per-pair velocity statistics inside AOI polygons or around points (REFERENCE §6.4)."""
import json
import os
import re

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDateTime, Qt, QVariant

from ..core.io import OutputSet
from ..core.series.plots import write_timeline_png
from ..core.series.timeline import COLUMNS, timeline_rows, write_timeline_csv
from .base import (MAX_DAYS, SinkGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors,
                   output_folder_for, require_geometry, run_core)
from .stack_velocity import PAIR_INPUT_HELP, add_pair_input_parameters, pairs_from_parameters

#: Largest BUFFER around points (m).
MAX_BUFFER_M = 100_000.0
_DATE_COLUMNS = ("date_ref", "date_sec", "mid_date")


def timeline_fields() -> QgsFields:
    fields = QgsFields()
    for name in COLUMNS:
        if name in _DATE_COLUMNS:
            kind = QVariant.DateTime
        elif name in ("id_ref", "id_sec") or name.startswith("n_valid_"):
            kind = QVariant.Int
        elif name in ("feature", "pair", "ref", "sec"):
            kind = QVariant.String
        else:
            kind = QVariant.Double
        fields.append(QgsField(name, kind))
    return fields


def _attribute(name: str, value):
    if name in _DATE_COLUMNS:
        moment = QDateTime.fromString(value.replace("Z", ""), Qt.ISODate)
        moment.setTimeSpec(Qt.UTC)
        return moment
    if isinstance(value, float) and value != value:
        return None
    return value


class AoiTimelineAlgorithm(SurfaceMotionAlgorithm):
    group_id = "postprocessing"
    PARAMETER_HELP = {
        **PAIR_INPUT_HELP,
        "AOI": "Polygons, or points with a buffer, in any CRS (reprojected to each raster's CRS): one timeline "
               "per feature.",
        "ID_FIELD": "Field whose value names each feature in the table and the plot file names; empty = the "
                    "feature id.",
        "BUFFER": "Radius (m) of the disc around each point (in the rasters' projected CRS); also grows polygons. "
                  "Required for points.",
        "DT_MAX": "Pairs longer than this (days) are left out; empty = every pair.",
        "OUTPUT": "The per-pair statistics as a table (no geometry), one row per feature and pair.",
        "OUTPUT_CSV": "The same table as a CSV file.",
        "PLOT_FOLDER": "Folder of the PNG plots, one per feature (timeline_{feature}.png); empty = no plot.",
    }

    def name(self):
        return "aoitimeline"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("AOI velocity timeline (per-pair statistics)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Per-pair velocity statistics inside each AOI feature: polygons, or points with a buffer (m), any "
            "CRS. Pairs: velocity rasters, or disparity rasters converted with their dates, from the list and/or "
            "a CSV pair table; grids may differ (each feature is rasterised once per grid, all_touched off: a "
            "pixel counts when its centre is inside).\n"
            "Outputs: a table and its CSV with the columns feature, pair, ref, sec (scene ids), id_ref, id_sec (index of the date among the sorted "
            "dates), date_ref, date_sec, mid_date (UTC), dt_days, then n_valid, mean, std (population), median, "
            "p25, p75 of speed, v_east and v_north (m/yr). One row per feature and pair, sorted by feature and "
            "date. A PNG per feature draws each pair as a segment over its dates at its median speed with a "
            "p25-p75 error bar.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        add_pair_input_parameters(self)
        self.addParameter(QgsProcessingParameterFeatureSource(
            "AOI", self.tr("AOI polygons or points"),
            [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(
            "ID_FIELD", self.tr("Feature name field"), parentLayerParameterName="AOI", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "BUFFER", self.tr("Buffer around the AOI features (m)"), QgsProcessingParameterNumber.Double, 0.0,
            minValue=0.0, maxValue=MAX_BUFFER_M))
        self.addParameter(QgsProcessingParameterNumber(
            "DT_MAX", self.tr("Longest pair kept (days; empty = all)"), QgsProcessingParameterNumber.Double, None,
            optional=True, minValue=0.001, maxValue=MAX_DAYS))
        self.addParameter(QgsProcessingParameterFeatureSink(
            "OUTPUT", self.tr("AOI timeline"), QgsProcessing.TypeVector))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_CSV", self.tr("AOI timeline CSV"), self.tr("CSV files (*.csv)")))
        self.addParameter(QgsProcessingParameterFolderDestination(
            "PLOT_FOLDER", self.tr("Folder of the plots (PNG)"), optional=True))
        self.addOutput(QgsProcessingOutputNumber("N_ROWS", self.tr("Number of rows")))

    def aoi_features(self, parameters, context):
        """[(name, QgsGeometry in the AOI CRS)], the AOI CRS and whether they are points."""
        source = self.parameterAsSource(parameters, "AOI", context)
        label = self.parameterDefinition("AOI").description()
        require_geometry(source, [QgsWkbTypes.PolygonGeometry, QgsWkbTypes.PointGeometry], label)
        if not source.sourceCrs().isValid():
            raise QgsProcessingException(self.tr("{} has no CRS: set its CRS.").format(label))
        points = QgsWkbTypes.geometryType(source.wkbType()) == QgsWkbTypes.PointGeometry
        field = self.parameterAsString(parameters, "ID_FIELD", context)
        features, seen = [], set()
        for feature in source.getFeatures():
            if feature.geometry().isEmpty():
                continue
            value = feature[field] if field else None
            name = str(feature.id()) if value in (None, "") or not field else str(value)
            if name in seen:  # names must tell the rows (and the plot files) apart
                name = f"{name}_{feature.id()}"
            seen.add(name)
            features.append((name, QgsGeometry(feature.geometry())))
        return features, source.sourceCrs(), points

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        features, aoi_crs, points = self.aoi_features(parameters, context)
        buffer_m = self.parameterAsDouble(parameters, "BUFFER", context)
        if points and buffer_m <= 0:
            raise QgsProcessingException(self.tr(
                "The AOI layer has points but BUFFER is 0: give a buffer radius in metres (e.g. 30) so that each "
                "point becomes a disc of pixels."))
        dt_max = None if parameters.get("DT_MAX") in (None, "") else self.parameterAsDouble(
            parameters, "DT_MAX", context)
        pairs = pairs_from_parameters(self, parameters, context)

        def geometries_in(crs):
            target = QgsCoordinateReferenceSystem.fromWkt(crs.to_wkt())
            if buffer_m > 0 and target.isGeographic():
                raise QgsProcessingException(self.tr(
                    "The pair rasters are in a geographic CRS, where a buffer in metres is undefined: use "
                    "rasters in a projected CRS."))
            transform = QgsCoordinateTransform(aoi_crs, target, context.transformContext())
            out = []
            for _, geometry in features:
                moved = QgsGeometry(geometry)
                moved.transform(transform)
                if buffer_m > 0:
                    moved = moved.buffer(buffer_m, 32)
                out.append(json.loads(moved.asJson()))
            return out

        names = [name for name, _ in features]
        rows = run_core(timeline_rows, feedback, pairs, names, geometries_in, dt_max=dt_max, progress_range=(0, 80))
        csv_path = self.parameterAsFileOutput(parameters, "OUTPUT_CSV", context)
        plot_folder = self.parameterAsString(parameters, "PLOT_FOLDER", context)
        plots = []
        fields = timeline_fields()
        with core_errors_as_processing_errors(), OutputSet() as outputs:
            write_timeline_csv(csv_path, rows, outputs)
            if plot_folder:
                plots = self.write_plots(plot_folder, names, rows, outputs, feedback)
            with SinkGroup(self, parameters, context, feedback) as sinks:
                sink = sinks.open("OUTPUT", fields, QgsWkbTypes.NoGeometry)
                for row in rows:
                    feature = QgsFeature(fields)
                    feature.setAttributes([_attribute(name, row[name]) for name in COLUMNS])
                    sink.add(feature)
                sink_id = sink.close()
        feedback.pushInfo(self.tr("{} rows: {} pair(s) x {} feature(s); {} plot(s)").format(
            len(rows), len(rows) // max(1, len(names)), len(names), len(plots)))
        feedback.setProgress(100)
        return {"OUTPUT": sink_id, "OUTPUT_CSV": csv_path, "PLOT_FOLDER": plot_folder or None, "N_ROWS": len(rows)}

    def write_plots(self, folder, names, rows, outputs, feedback):
        paths = []
        with output_folder_for(folder, feedback=feedback):
            for name in names:
                path = os.path.join(folder, "timeline_{}.png".format(re.sub(r"[^\w.-]+", "_", name)))
                write_timeline_png(path, [r for r in rows if r["feature"] == name], f"AOI feature {name}",
                                   output_set=outputs)
                paths.append(path)
        return paths
