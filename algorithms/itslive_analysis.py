"""surfacemotion:strainrates, surfacemotion:fluxdivergence and surfacemotion:trackparticles —
analyses of ITS_LIVE (or any vx/vy) velocity fields."""

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsLineString,
    QgsPoint,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDateTime, Qt, QVariant

from ..core.itslive.flux import FLUX_STYLE, flux_divergence_file
from ..core.itslive.grids import read_velocity
from ..core.itslive.strain import METHODS, STRAIN_STYLE, strain_rates_file
from ..core.itslive.tracking import TIME_INTERPOLATIONS, line_summary, track_particles, track_rows
from .base import (MapGroup, SinkGroup, StylePostProcessor, SurfaceMotionAlgorithm, core_errors_as_processing_errors,
                   enum_parameter, enum_value, polygons_in_crs, require_geometry, run_core, style_on_completion,
                   tif_output)

#: Largest LENGTH_SCALE (m) and |DURATION| (years) the analyses accept.
MAX_LENGTH_SCALE_M = 1.0e6
MAX_DURATION_YEARS = 1000.0

#: Companion views of the strain-rate file loaded on completion (the core writes the main style's sidecar).
STRAIN_COMPANIONS = (("longitudinal", "strain_longitudinal"), ("e1", "strain_e1"))

SIGN_HELP = ("x = grid east (columns), y = grid north; on north-up rasters ∂/∂y = −∂/∂row / |Δy| "
             "(the ITS_LIVE notebooks forgot this sign and swapped Δx/Δy). ")

#: Tooltips of the velocity inputs shared by strainrates and fluxdivergence.
VELOCITY_PARAMETER_HELP = {
    "VX": "Velocity along the grid x axis (east on north-up grids), m/yr: a single-band raster, a multi-band "
          "stack or a downloaded ITS_LIVE GeoTIFF.",
    "VY": "Velocity along the grid y axis (north on north-up grids), m/yr, on the same grid as vx.",
    "BAND": "1-based band (time step) read from both velocity rasters.",
    "LENGTH_SCALE": "Half length of the differencing, in metres: derivatives over ±r pixels, r = max(1, "
                    "round(length / pixel size)). 0 = one pixel.",
    "OUTPUT": "Output GeoTIFF (.tif).",
}


def add_velocity_parameters(algorithm, band_help: str) -> None:
    tr = algorithm.tr
    algorithm.addParameter(QgsProcessingParameterRasterLayer("VX", tr("vx raster (m/yr, grid x / east)")))
    algorithm.addParameter(QgsProcessingParameterRasterLayer("VY", tr("vy raster (m/yr, grid y / north)")))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "BAND", tr(band_help), QgsProcessingParameterNumber.Integer, 1, minValue=1, maxValue=100000))


def raster_source(algorithm, parameters, name, context):
    layer = algorithm.parameterAsRasterLayer(parameters, name, context)
    return layer.source() if layer is not None else None


class StrainRatesAlgorithm(SurfaceMotionAlgorithm):
    OUTPUT = "OUTPUT"
    group_id = "itslive"
    PARAMETER_HELP = {
        **VELOCITY_PARAMETER_HELP,
        "METHOD": "Nominal: centred differences of the velocity. Logarithmic (Alley et al. 2018): virtual stakes "
                  "advected through the field, for large strains.",
        "LENGTH_SCALE": "Half length of the differencing (nominal) or of the stake spacing (logarithmic), in "
                        "metres; 0 = one pixel.",
        "UPSCALE": "The notebooks' decimation: keep every u-th cell and differentiate on that coarse grid (the "
                   "output grid). 1 = the native grid.",
        "VX_ERROR": "1-sigma error of vx (m/yr); with the vy error it adds the uncertainty band.",
        "VY_ERROR": "1-sigma error of vy (m/yr); with the vx error it adds the uncertainty band.",
        "OUTPUT": "Strain-rate GeoTIFF (.tif), 13 bands in 1/yr.",
    }

    def name(self):
        return "strainrates"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Strain rates")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Surface strain rates of a velocity field (vx, vy in m/yr, e.g. ITS_LIVE; the band picks the time "
            "step of stacks). Output: one float32 GeoTIFF, NaN nodata, units 1/yr, extension positive, "
            "compression negative. Bands: 1 exx, 2 eyy, 3 exy, 4 e1, 5 e2 (principal, e1 ≥ e2), 6 theta_p "
            "(direction of e1, degrees counter-clockwise from grid x), 7 effective √(½(exx²+eyy²+ezz²)+exy²), "
            "8 spin ½(∂vy/∂x − ∂vx/∂y), 9 longitudinal, 10 transverse, 11 shear (in the local flow direction θ "
            "= atan2(vy, vx)), 12 ezz = −(exx+eyy), and 13 uncertainty when both error rasters are given.\n"
            + SIGN_HELP +
            "\nMethod nominal: centred differences over ±r pixels, r = max(1, round(half length scale / pixel "
            "size)). Method logarithmic (Alley et al. 2018): virtual stakes at ±r pixels advected through the "
            "field; NaN within 2r of the edges.\n"
            "Upscale u above 1 keeps the notebooks' meaning: the field is decimated (every u-th cell, no "
            "averaging) and differentiated on that coarse grid, which is the output grid. Prefer the half "
            "length scale or the logarithmic method.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        add_velocity_parameters(self, "Band (time step) of the vx/vy rasters")
        self.addParameter(enum_parameter(self, "METHOD", "Method", METHODS, default="nominal"))
        self.addParameter(QgsProcessingParameterNumber(
            "LENGTH_SCALE", self.tr("Half length scale (m; 0 = one pixel)"), QgsProcessingParameterNumber.Double,
            0.0, minValue=0.0, maxValue=MAX_LENGTH_SCALE_M))
        self.addParameter(QgsProcessingParameterNumber(
            "UPSCALE", self.tr("Upscale (notebook decimation factor; 1 = native grid)"),
            QgsProcessingParameterNumber.Integer, 1, minValue=1, maxValue=100))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "VX_ERROR", self.tr("vx error raster (m/yr, 1-sigma)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "VY_ERROR", self.tr("vy error raster (m/yr, 1-sigma)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Strain rates")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        output = tif_output(self, parameters, self.OUTPUT, context)
        summary = run_core(
            strain_rates_file, feedback, raster_source(self, parameters, "VX", context),
            raster_source(self, parameters, "VY", context), output,
            method=enum_value(self, parameters, "METHOD", context, METHODS),
            length_scale_m=self.parameterAsDouble(parameters, "LENGTH_SCALE", context),
            upscale=self.parameterAsInt(parameters, "UPSCALE", context),
            band=self.parameterAsInt(parameters, "BAND", context),
            vx_error_path=raster_source(self, parameters, "VX_ERROR", context),
            vy_error_path=raster_source(self, parameters, "VY_ERROR", context))
        feedback.pushInfo(self.tr("Strain rates on a {} x {} grid of {:g} m, differencing radius {} px").format(
            summary["shape"][0], summary["shape"][1], summary["pixel_size_m"], summary["radius_px"]))
        style_on_completion(context, output, STRAIN_STYLE, STRAIN_COMPANIONS, MapGroup(self, [output]))
        return {self.OUTPUT: output}


class FluxDivergenceAlgorithm(SurfaceMotionAlgorithm):
    OUTPUT = "OUTPUT"
    group_id = "itslive"
    PARAMETER_HELP = {
        **VELOCITY_PARAMETER_HELP,
        "THICKNESS": "Ice thickness in metres (any CRS and grid), resampled bilinearly onto the velocity grid.",
        "OUTLINE": "Glacier outline polygons (any CRS): the output is limited to them.",
        "OUTLINE_CSV": "The notebooks' CSV of outline vertices: columns x, y (or the last two columns) in the "
                       "velocity CRS; several polygons by fid.",
        "COLUMN_FACTOR": "Ratio of the column-mean to the surface speed (1.0 = plug flow; typically 0.8-1.0).",
        "OUTPUT": "Flux-divergence GeoTIFF (.tif): divergence (m/yr), thickness (m), qx, qy (m²/yr).",
    }

    def name(self):
        return "fluxdivergence"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Flux divergence (dynamic thinning)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Flux divergence ∇·(H v) = ∂(f·H·vx)/∂x + ∂(f·H·vy)/∂y in m/yr on the velocity grid; positive = "
            "divergence = dynamic thinning (∂H/∂t = ḃ − ∇·(H v)). " + SIGN_HELP +
            "Centred differences over ±r pixels, r = max(1, round(half length scale / pixel size)).\n"
            "The ice thickness (m, any CRS) is resampled bilinearly onto the velocity grid; its nodata stays "
            "nodata (never zero), negative cells become nodata with a warning. f = the column-mean / surface speed factor (default 1.0; typically 0.8-1.0).\n"
            "The glacier outline (polygons in any CRS, or the notebooks' CSV of outline vertices in the "
            "velocity CRS) limits the output; without one the whole grid is kept.\n"
            "Output float32 GeoTIFF, NaN nodata: band 1 flux divergence (m/yr), 2 thickness on the velocity "
            "grid (m), 3 qx, 4 qy (m²/yr).")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterRasterLayer("THICKNESS", self.tr("Ice thickness (m)")))
        add_velocity_parameters(self, "Band (time step) of the vx/vy rasters")
        self.addParameter(QgsProcessingParameterFeatureSource(
            "OUTLINE", self.tr("Glacier outline (polygons)"), [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "OUTLINE_CSV", self.tr("Glacier outline vertices (CSV, velocity CRS)"), extension="csv", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "LENGTH_SCALE", self.tr("Half length scale (m; 0 = one pixel)"), QgsProcessingParameterNumber.Double,
            0.0, minValue=0.0, maxValue=MAX_LENGTH_SCALE_M))
        self.addParameter(QgsProcessingParameterNumber(
            "COLUMN_FACTOR", self.tr("Column-mean / surface speed factor"), QgsProcessingParameterNumber.Double,
            1.0, minValue=0.0, maxValue=1.5))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Flux divergence")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        output = tif_output(self, parameters, self.OUTPUT, context)
        vx_layer = self.parameterAsRasterLayer(parameters, "VX", context)
        outline = self.parameterAsSource(parameters, "OUTLINE", context)
        polygons = None if outline is None else polygons_in_crs(
            outline, vx_layer.crs().toWkt(), context, self.parameterDefinition("OUTLINE").description())
        summary = run_core(
            flux_divergence_file, feedback, raster_source(self, parameters, "THICKNESS", context),
            vx_layer.source(), raster_source(self, parameters, "VY", context), output,
            outline_polygons=polygons,
            outline_csv=self.parameterAsFile(parameters, "OUTLINE_CSV", context) or None,
            band=self.parameterAsInt(parameters, "BAND", context),
            length_scale_m=self.parameterAsDouble(parameters, "LENGTH_SCALE", context),
            column_factor=self.parameterAsDouble(parameters, "COLUMN_FACTOR", context))
        feedback.pushInfo(self.tr("{} glacier cells, median flux divergence {:.2f} m/yr").format(
            summary["n_cells"], summary["median_m_per_yr"]))
        if summary["n_negative_thickness"]:
            feedback.pushWarning(self.tr(
                "{} cells of the thickness (on the velocity grid) are negative: they are treated as nodata, so the "
                "flux divergence is NaN there and at their neighbours. Check the thickness product.").format(
                    summary["n_negative_thickness"]))
        style_on_completion(context, output, FLUX_STYLE)
        return {self.OUTPUT: output}


def point_fields() -> QgsFields:
    fields = QgsFields()
    fields.append(QgsField("track_id", QVariant.Int))
    fields.append(QgsField("step", QVariant.Int))
    fields.append(QgsField("date", QVariant.DateTime))
    for name in ("t_yr", "x", "y", "vx", "vy", "speed", "cum_dist_m"):
        fields.append(QgsField(name, QVariant.Double))
    return fields


def line_fields() -> QgsFields:
    fields = QgsFields()
    fields.append(QgsField("track_id", QVariant.Int))
    fields.append(QgsField("start_date", QVariant.DateTime))
    fields.append(QgsField("end_date", QVariant.DateTime))
    fields.append(QgsField("n_steps", QVariant.Int))
    fields.append(QgsField("length_m", QVariant.Double))
    fields.append(QgsField("stop_reason", QVariant.String))
    return fields


def utc(iso: str) -> QDateTime:
    moment = QDateTime.fromString(iso, Qt.ISODate)
    moment.setTimeSpec(Qt.UTC)
    return moment


class TrackParticlesAlgorithm(SurfaceMotionAlgorithm):
    SEEDS = "SEEDS"
    OUTPUT_LINES = "OUTPUT_LINES"
    OUTPUT_POINTS = "OUTPUT_POINTS"
    group_id = "itslive"
    PARAMETER_HELP = {
        "SEEDS": "Start points of the particles (any CRS, reprojected to the velocity CRS).",
        "VX": "Velocity along the grid x axis (m/yr): one band (steady) or a stack with the layer start dates "
              "(YYYY-MM-DD) as band descriptions.",
        "VY": "Velocity along the grid y axis (m/yr), on the same grid and with the same bands as vx.",
        "START_DATE": "When the particles start (UTC); empty = the first layer (forwards) or the end of the "
                      "record (backwards).",
        "DURATION": "Tracking time in years of 365.25 days; negative = backwards in time.",
        "TIME_INTERPOLATION": "Nearest layer: the velocity of the layer covering the time. Linear: interpolated "
                              "between layer start dates.",
        "CFL": "Largest sub-step as a fraction of a pixel at the maximum speed (at most 0.5).",
        "OUTPUT_LINES": "One line per particle with its start and end dates, length (m) and why it stopped.",
        "OUTPUT_POINTS": "Every vertex of every track with its date, velocity and cumulative distance.",
    }

    def name(self):
        return "trackparticles"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Track particles")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Advects seed points through a velocity field (vx, vy in m/yr): single-band rasters (a steady "
            "field) or stacks such as the GeoTIFFs of 'Download ITS_LIVE velocity cubes', whose band "
            "descriptions hold each layer's start date (YYYY-MM-DD); layer k covers [date k, date k+1), the last "
            "one as long as the one before.\n"
            "Classical RK4 in map coordinates with bilinear velocity (NaN if a corner is nodata), sub-steps of "
            "at most the maximum step × pixel / maximum speed, never across a layer boundary. A negative "
            "duration (years of 365.25 days) tracks backwards; the start date defaults to the first layer "
            "(forwards) or the end of the record (backwards). Particles stop at nodata, at the grid edge, at the "
            "end time or at the end of the record.\n"
            "Outputs in the velocity CRS: track vertices (track_id, step, date UTC, t_yr decimal year, x, y, vx, "
            "vy, speed m/yr, cum_dist_m) and track lines (track_id, start_date, end_date, n_steps, length_m, "
            "stop_reason).\n"
            "Image-pair stacks have gaps: aggregate them first (e.g. yearly bins in the download) so particles "
            "are not stopped by nodata.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.SEEDS, self.tr("Seed points"), [QgsProcessing.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterRasterLayer("VX", self.tr("vx raster or stack (m/yr)")))
        self.addParameter(QgsProcessingParameterRasterLayer("VY", self.tr("vy raster or stack (m/yr)")))
        self.addParameter(QgsProcessingParameterDateTime(
            "START_DATE", self.tr("Start date (UTC; empty = start of the record)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "DURATION", self.tr("Duration (years; negative = backwards)"), QgsProcessingParameterNumber.Double, 1.0,
            minValue=-MAX_DURATION_YEARS, maxValue=MAX_DURATION_YEARS))
        self.addParameter(enum_parameter(self, "TIME_INTERPOLATION", "Time interpolation", TIME_INTERPOLATIONS,
                                         default="nearest"))
        self.addParameter(QgsProcessingParameterNumber(
            "CFL", self.tr("Maximum step (fraction of a pixel)"), QgsProcessingParameterNumber.Double, 0.5,
            minValue=0.01, maxValue=0.5))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_LINES, self.tr("Tracks (lines)"), QgsProcessing.TypeVectorLine))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_POINTS, self.tr("Track vertices (points)"), QgsProcessing.TypeVectorPoint))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        vx_layer = self.parameterAsRasterLayer(parameters, "VX", context)
        vy_layer = self.parameterAsRasterLayer(parameters, "VY", context)
        seeds = self.parameterAsSource(parameters, self.SEEDS, context)
        require_geometry(seeds, [QgsWkbTypes.PointGeometry], self.parameterDefinition(self.SEEDS).description())
        with core_errors_as_processing_errors():
            grid = read_velocity(vx_layer.source(), vy_layer.source())
        crs = QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt)
        transform = QgsCoordinateTransform(seeds.sourceCrs(), crs, context.transformContext())
        xs, ys = [], []
        for feature in seeds.getFeatures():
            geometry = QgsGeometry(feature.geometry())
            if geometry.isEmpty():
                continue
            geometry.transform(transform)
            for point in (geometry.asMultiPoint() if geometry.isMultipart() else [geometry.asPoint()]):
                xs.append(point.x())
                ys.append(point.y())
        if not xs:
            raise QgsProcessingException(self.tr("The seed layer has no points."))
        start = None
        if parameters.get("START_DATE") not in (None, ""):
            moment = self.parameterAsDateTime(parameters, "START_DATE", context)
            if not moment.isValid():
                raise QgsProcessingException(self.tr("START_DATE is not a valid date."))
            start = moment.toUTC().toPyDateTime().replace(tzinfo=None)
        tracks = run_core(track_particles, feedback, grid, xs, ys, start=start,
                          duration_years=self.parameterAsDouble(parameters, "DURATION", context),
                          cfl=self.parameterAsDouble(parameters, "CFL", context),
                          time_interpolation=enum_value(self, parameters, "TIME_INTERPOLATION", context,
                                                        TIME_INTERPOLATIONS),
                          progress_range=(0.0, 90.0))
        with SinkGroup(self, parameters, context, feedback) as sinks:
            lines = sinks.open(self.OUTPUT_LINES, line_fields(), QgsWkbTypes.LineString, crs)
            points = sinks.open(self.OUTPUT_POINTS, point_fields(), QgsWkbTypes.Point, crs)
            for row in track_rows(tracks):
                feature = QgsFeature(point_fields())
                feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(row["x"], row["y"])))
                feature.setAttributes([row["track_id"], row["step"], utc(row["date"])] +
                                      [row[k] for k in ("t_yr", "x", "y", "vx", "vy", "speed", "cum_dist_m")])
                points.add(feature)
            for track in tracks:
                summary = line_summary(track)
                feature = QgsFeature(line_fields())
                vertices = [QgsPoint(x, y) for x, y in zip(track.x, track.y)]
                if len(vertices) == 1:  # a particle that could not move: a zero-length line at its seed
                    vertices.append(QgsPoint(track.x[0], track.y[0]))
                feature.setGeometry(QgsGeometry(QgsLineString(vertices)))
                feature.setAttributes([summary["track_id"], utc(summary["start_date"]), utc(summary["end_date"]),
                                       summary["n_steps"], summary["length_m"], summary["stop_reason"]])
                lines.add(feature)
            lines_id, points_id = lines.close(), points.close()
        reasons = {}
        for track in tracks:
            reasons[track.stop_reason] = reasons.get(track.stop_reason, 0) + 1
        feedback.pushInfo(self.tr("{} tracks; stop reasons: {}").format(
            len(tracks), ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))))
        group = MapGroup(self)
        for output, style in ((lines_id, "tracks_lines"), (points_id, "tracks_points")):
            style_on_completion(context, output, style, group=group)
        feedback.setProgress(100)
        return {self.OUTPUT_LINES: lines_id, self.OUTPUT_POINTS: points_id}




#: Styles a vector layer loaded on completion (StylePostProcessor styles vectors and rasters alike).
VectorStyle = StylePostProcessor
