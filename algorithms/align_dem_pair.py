"""surfacemotion:aligndemtopair — shift a DEM so two orthorectified L1B scenes agree (disparity-based)."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.dem.pair_alignment import align_dem_to_pair
from ..core.ortho.vdatum import VERTICAL_DATUMS
from .base import MapGroup, SurfaceMotionAlgorithm, enum_parameter, enum_value, run_core, style_on_completion, tif_output
from .orthorectify import polygons_lonlat_wkt
from .settings import setting


class AlignDemToPairAlgorithm(SurfaceMotionAlgorithm):
    DEM = "DEM"
    VERTICAL_DATUM = "VERTICAL_DATUM"
    REFERENCE_SCENE = "REFERENCE_SCENE"
    SECONDARY_SCENE = "SECONDARY_SCENE"
    AOI = "AOI"
    UNSTABLE = "UNSTABLE"
    RESOLUTION = "RESOLUTION"
    CHIP_SIZE = "CHIP_SIZE"
    SEARCH_RANGE = "SEARCH_RANGE"
    STEP = "STEP"
    MAX_ITERATIONS = "MAX_ITERATIONS"
    TOLERANCE = "TOLERANCE"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"

    group_id = "preparation"
    PARAMETER_HELP = {
        "DEM": "The DEM the scenes are orthorectified onto (any CRS and resolution, heights in metres). It is "
               "moved horizontally; its heights are not changed.",
        "VERTICAL_DATUM": "What the DEM heights refer to (as in Orthorectify).",
        "REFERENCE_SCENE": "A raw (L1B) scene with RPCs.",
        "SECONDARY_SCENE": "A raw scene of the same area seen from another direction (e.g. the opposite look), "
                           "acquired close in time: moving ground would read as DEM error.",
        "AOI": "Polygons (any CRS) the orthos are limited to; empty: the overlap of the scenes' footprints.",
        "UNSTABLE": "Polygons (any CRS) of moving or changed ground (glaciers, landslides, water), left out of "
                    "the fit.",
        "RESOLUTION": "Pixel size of the orthos the disparity is measured on, in metres.",
        "CHIP_SIZE": "Correlation chip side, in ortho pixels.",
        "SEARCH_RANGE": "Largest disparity searched, in ortho pixels.",
        "STEP": "Spacing of the disparity cells, in ortho pixels.",
        "MAX_ITERATIONS": "Most orthorectify-correlate-fit rounds.",
        "TOLERANCE": "Stop when a round moves the DEM by less than this, in metres.",
        "OUTPUT": "The aligned DEM (.tif): the input heights on the moved grid, CRS and nodata kept.",
        "REPORT": "CSV table, one row per round: its step and the total shift applied (m, x east, y north), "
                  "standard errors, disparity NMAD before and after the fit (m), cells used, convergence.",
    }

    def name(self):
        return "aligndemtopair"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Align DEM to an L1B scene pair (disparity-based)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Moves a DEM horizontally so that two raw (L1B) scenes orthorectified onto it agree on stable ground "
            "(the tutorial's disparity-based DEM alignment). Each round orthorectifies both scenes onto the DEM "
            "on one grid, correlates them, and fits the residual disparity d (m) = p·(∇h·s) + a plane per "
            "component, where p is the difference of the scenes' parallax sensitivities (from their RPCs), ∇h "
            "the DEM slope and s the DEM's displacement; the DEM's geotransform is moved by −s. Rounds stop "
            "when a step is below the tolerance (m).\n"
            "Use it when the RPCs and the DEM disagree on where the terrain is (a DEM co-registered to another "
            "reference, RPC geolocation bias): opposite-look pairs then show terrain-shaped offsets. The vertical "
            "offset is not observable this way (it only adds a constant disparity): use Co-register DEM for it.\n"
            "Signs: the report's shift x, y (m, east, north) is applied: the output is the DEM moved by (x, y).")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        tr = self.tr
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, tr("DEM (heights in m)")))
        self.addParameter(enum_parameter(self, self.VERTICAL_DATUM, "Vertical datum of the DEM", VERTICAL_DATUMS,
                                         "crs"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.REFERENCE_SCENE, tr("Raw scene with RPCs")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.SECONDARY_SCENE, tr("Raw scene seen from another direction")))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, tr("Area of interest"), [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.UNSTABLE, tr("Unstable areas (polygons, excluded)"), [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.RESOLUTION, tr("Ortho resolution (m)"), QgsProcessingParameterNumber.Double, 3.0, minValue=0.01,
            maxValue=10000.0))
        for name, label, default, low, high in ((self.CHIP_SIZE, "Chip size (px)", 32, 8, 512),
                                                (self.SEARCH_RANGE, "Search range (px)", 8, 1, 1000),
                                                (self.STEP, "Cell spacing (px)", 8, 1, 1000),
                                                (self.MAX_ITERATIONS, "Maximum rounds", 3, 1, 20)):
            self.addParameter(QgsProcessingParameterNumber(name, tr(label), QgsProcessingParameterNumber.Integer,
                                                           default, minValue=low, maxValue=high))
        self.addParameter(QgsProcessingParameterNumber(
            self.TOLERANCE, tr("Tolerance of a round's step (m)"), QgsProcessingParameterNumber.Double, 0.1,
            minValue=0.001, maxValue=100.0))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, tr("Aligned DEM")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT, tr("Alignment report"), tr("CSV files (*.csv)"), optional=True))
        for name, label in (("SHIFT_X", "Shift x (m, east)"), ("SHIFT_Y", "Shift y (m, north)"),
                            ("NMAD_BEFORE", "Disparity NMAD before (m)"), ("NMAD_AFTER", "Disparity NMAD after (m)"),
                            ("ITERATIONS", "Rounds")):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))
        self.addOutput(QgsProcessingOutputBoolean("CONVERGED", tr("Converged")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        dem = self.parameterAsRasterLayer(parameters, self.DEM, context)
        scenes = [self.parameterAsRasterLayer(parameters, name, context)
                  for name in (self.REFERENCE_SCENE, self.SECONDARY_SCENE)]
        output = tif_output(self, parameters, self.OUTPUT, context)
        report = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        result = run_core(
            align_dem_to_pair, feedback, dem.source().split("|")[0], scenes[0].source().split("|")[0],
            scenes[1].source().split("|")[0], output, report,
            aoi_wkt=polygons_lonlat_wkt(self, parameters, self.AOI, context), aoi_crs="EPSG:4326",
            unstable_wkt=polygons_lonlat_wkt(self, parameters, self.UNSTABLE, context),
            vertical_datum=enum_value(self, parameters, self.VERTICAL_DATUM, context, VERTICAL_DATUMS),
            resolution=self.parameterAsDouble(parameters, self.RESOLUTION, context),
            chip_size=self.parameterAsInt(parameters, self.CHIP_SIZE, context),
            search_range=self.parameterAsInt(parameters, self.SEARCH_RANGE, context),
            step=self.parameterAsInt(parameters, self.STEP, context),
            iterations=self.parameterAsInt(parameters, self.MAX_ITERATIONS, context),
            tolerance=self.parameterAsDouble(parameters, self.TOLERANCE, context),
            geoid_folder=setting("SURFACEMOTION_GEOID_FOLDER") or None, log=feedback.pushInfo)
        first, last = result.fits[0], result.fits[-1]
        feedback.pushInfo(self.tr(
            "Shift applied to the DEM: x {:+.3f} m (east), y {:+.3f} m (north) after {} round(s); disparity "
            "NMAD {:.3f} m before, {:.3f} m after the last round's fit.").format(
                result.shift_east, result.shift_north, len(result.fits), first.nmad_before, last.nmad_after))
        if not result.converged:
            feedback.pushWarning(self.tr(
                "No convergence: the last round still moved the DEM by {:.3f} m (tolerance {:g} m). The total shift "
                "was applied; raise the maximum rounds or check the unstable areas.").format(
                    (last.shift_east ** 2 + last.shift_north ** 2) ** 0.5,
                    self.parameterAsDouble(parameters, self.TOLERANCE, context)))
        style_on_completion(context, output, None, group=MapGroup(self, [output]))
        return {self.OUTPUT: output, self.REPORT: report, "SHIFT_X": result.shift_east,
                "SHIFT_Y": result.shift_north, "NMAD_BEFORE": first.nmad_before, "NMAD_AFTER": last.nmad_after,
                "ITERATIONS": len(result.fits), "CONVERGED": result.converged}
