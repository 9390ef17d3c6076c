"""surfacemotion:polyfit and surfacemotion:velocity — de-ramping and velocity maps."""
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import Qt

from ..core.offsets.disparity import describe_disparity
from ..core.offsets.polyfit import ORDERS, deramp_file, moving_mask_from_geometries, moving_mask_from_raster
from ..core.offsets.velocity import VELOCITY_STYLE, velocity_file
from .base import (MAX_DAYS, MapGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors, enum_parameter,
                   enum_value, layer_paths, load_disparity_on_completion, load_on_completion, output_folder_for,
                   output_path_for,
                   polygons_in_crs, run_core)

#: Shortest time separation DT_DAYS accepts (days, about 1.4 minutes): zero and negative are refused.
MIN_DT_DAYS = 0.001

MOVING_MASK_HELP = (
    "Moving area: polygons (any CRS, reprojected) and/or a raster (nonzero = moving, resampled "
    "nearest-neighbour) covering what moves; it is left out so that only stable ground is used."
)

#: Tooltips of the moving-area parameters of polyfit and velocity.
MOVING_MASK_PARAMETER_HELP = {
    "MASK": "Polygons (any CRS) covering the area that moves (landslide, glacier); left out, so that only "
            "stable ground is used.",
    "MASK_RASTER": "A raster on any grid whose nonzero cells mark the area that moves (resampled "
                   "nearest-neighbour); combined with the polygons.",
}


def moving_mask_for(algorithm, parameters, context, disparity_path: str):
    """Boolean moving-area mask on the disparity grid from MASK / MASK_RASTER, or None."""
    polygons = algorithm.parameterAsSource(parameters, "MASK", context)
    raster = algorithm.parameterAsRasterLayer(parameters, "MASK_RASTER", context)
    mask = None
    with core_errors_as_processing_errors():
        if polygons is not None:
            crs_wkt = describe_disparity(disparity_path).crs.to_wkt()
            mask = moving_mask_from_geometries(polygons_in_crs(
                polygons, crs_wkt, context, algorithm.parameterDefinition("MASK").description()), disparity_path)
        if raster is not None:
            raster_mask = moving_mask_from_raster(raster.source(), disparity_path)
            mask = raster_mask if mask is None else (mask | raster_mask)
    return mask


def add_moving_mask_parameters(algorithm) -> None:
    tr = algorithm.tr
    algorithm.addParameter(QgsProcessingParameterFeatureSource(
        "MASK", tr("Moving area (polygons, excluded)"), [QgsProcessing.TypeVectorPolygon], optional=True))
    algorithm.addParameter(QgsProcessingParameterRasterLayer(
        "MASK_RASTER", tr("Moving area raster (nonzero = moving, excluded)"), optional=True))


def reversed_pair_note(algorithm, name: str, dt_days: float) -> str:
    """The log line for a pair whose secondary is older than its reference (dt < 0)."""
    return algorithm.tr(
        "{}: the pair is reversed: the secondary image is {:.3f} days older than the reference (dt = {:.3f} "
        "days). The velocities are offset / dt, so they are signed forward in time: they point from the "
        "older to the newer position, as for a pair in the usual order.").format(name, -dt_days, dt_days)


class PolyfitAlgorithm(SurfaceMotionAlgorithm):
    INPUT = "INPUT"
    ORDER = "ORDER"
    DEM = "DEM"
    PERCENTILE_LOW = "PERCENTILE_LOW"
    PERCENTILE_HIGH = "PERCENTILE_HIGH"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"

    group_id = "postprocessing"
    PARAMETER_HELP = {
        **MOVING_MASK_PARAMETER_HELP,
        "INPUT": "Disparity rasters of 'Correlate image pair(s)' or Ames Stereo Pipeline -F.tif files.",
        "ORDER": "Order of the 2-D polynomial fitted to dx and to dy: 1 plane, 2 quadratic (default), 3 cubic.",
        "DEM": "Elevation raster (any CRS, m): adds an elevation term to the polynomial, for height-dependent "
               "orthorectification errors.",
        "PERCENTILE_LOW": "Stable-ground values below this percentile (0-100) of each component are left out of "
                          "the fit.",
        "PERCENTILE_HIGH": "Stable-ground values above this percentile (0-100) of each component are left out of "
                           "the fit.",
        "OUTPUT_FOLDER": "Folder of the de-ramped disparity rasters ({input stem}_polyfit.tif).",
    }
    HELP_SECTIONS = ("Output conventions",)

    def name(self):
        return "polyfit"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Remove ramp (polynomial fit on stable ground)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Removes the co-registration and orthorectification ramp from disparity maps (ours, or an Ames "
            "Stereo Pipeline -F.tif): dx and dy are each fitted by least squares with a 2-D polynomial of the "
            "chosen order (1: 3 terms, 2: 6, 3: 10) in column and row scaled to 0…1, optionally with a DEM "
            "elevation term (4, 10, 20 terms; the DEM is resampled bilinearly to the disparity grid, its "
            "nodata honoured).\n"
            "The fit uses stable ground only: valid cells outside the moving area, without the values below "
            "the lower or above the upper percentile cut (default 5 and 95) of each component. The fitted "
            "surface is subtracted on the whole grid.\n"
            "Outputs {input stem}_polyfit.tif in the output folder: the input's bands and conventions, offsets "
            "in reference pixels (dx + right, dy + down). The log gives the RMS of the fit before and after.\n"
            + MOVING_MASK_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUT, self.tr("Disparity rasters"), QgsProcessing.TypeRaster))
        self.addParameter(enum_parameter(self, self.ORDER, "Polynomial order", ORDERS, "2"))
        add_moving_mask_parameters(self)
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.DEM, self.tr("DEM (adds an elevation term)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.PERCENTILE_LOW, self.tr("Lower percentile cut"), QgsProcessingParameterNumber.Double,
            5.0, minValue=0.0, maxValue=100.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.PERCENTILE_HIGH, self.tr("Upper percentile cut"), QgsProcessingParameterNumber.Double,
            95.0, minValue=0.0, maxValue=100.0))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, self.tr("De-ramped disparity rasters")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        inputs = layer_paths(parameters, self.INPUT, context)
        if not inputs:
            raise QgsProcessingException(self.tr("No disparity raster was given."))
        dem = self.parameterAsRasterLayer(parameters, self.DEM, context)
        settings = {
            "order": int(enum_value(self, parameters, self.ORDER, context, ORDERS)),
            "dem_path": dem.source() if dem is not None else None,
            "percentile_low": self.parameterAsDouble(parameters, self.PERCENTILE_LOW, context),
            "percentile_high": self.parameterAsDouble(parameters, self.PERCENTILE_HIGH, context),
        }
        outputs = []
        with output_folder_for(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context),
                               feedback=feedback) as folder:
            for index, source in enumerate(inputs):
                output = output_path_for(folder, source, "_polyfit")
                share = 100.0 / len(inputs)
                report = run_core(deramp_file, feedback, source, output,
                                  moving_mask=moving_mask_for(self, parameters, context, source),
                                  progress_range=(index * share, (index + 1) * share), **settings)
                feedback.pushInfo(self.tr(
                    "{}: fit RMS dx {:.3f} -> {:.3f} px, dy {:.3f} -> {:.3f} px ({} / {} points)").format(
                        os.path.basename(output), report["rms_before_dx"], report["rms_after_dx"],
                        report["rms_before_dy"], report["rms_after_dy"],
                        report["n_fit_points_dx"], report["n_fit_points_dy"]))
                outputs.append(output)
        group = MapGroup(self, outputs)
        for output in outputs:
            load_disparity_on_completion(context, output, self.OUTPUT_LAYERS, group)
        return {self.OUTPUT_FOLDER: folder, self.OUTPUT_LAYERS: outputs}


class VelocityAlgorithm(SurfaceMotionAlgorithm):
    INPUT = "INPUT"
    DT_DAYS = "DT_DAYS"
    REF_DATE = "REF_DATE"
    SEC_DATE = "SEC_DATE"
    MEDIAN_SHIFT = "MEDIAN_SHIFT"
    MIN_PEAK = "MIN_PEAK"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"

    group_id = "postprocessing"
    PARAMETER_HELP = {
        **MOVING_MASK_PARAMETER_HELP,
        "INPUT": "Disparity rasters (offsets in reference pixels), de-ramped or not.",
        "DT_DAYS": "Days between the two images, for every input; empty = from the acquisition times below, the "
                   "dates stored by the correlation or the scene ids in the file names.",
        "REF_DATE": "Acquisition time of the reference (older) image, UTC; give it with the secondary time.",
        "SEC_DATE": "Acquisition time of the secondary (newer) image, UTC; give it with the reference time.",
        "MEDIAN_SHIFT": "Subtract the median dx and dy of stable ground (outside the moving area) before "
                        "converting, which removes a residual co-registration shift.",
        "MIN_PEAK": "Cells whose peak correlation (-1…1) is below this become nodata; empty = keep every valid "
                    "cell.",
        "OUTPUT_FOLDER": "Folder of the velocity rasters ({input stem}_velocity.tif).",
    }
    HELP_SECTIONS = ("Output conventions",)

    def name(self):
        return "velocity"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Velocity from disparity")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Converts disparity maps (ours, de-ramped or not, or an Ames Stereo Pipeline -F.tif) to velocity. "
            "Output {input stem}_velocity.tif, float32, NaN nodata, on the disparity grid. Band 1 speed (m/yr); band 2 "
            "flow azimuth in degrees clockwise from grid north (0 north, 90 east, 180 south, 270 west; NaN where "
            "the speed is 0); band 3 east (grid x) and band 4 north (grid y) velocity (m/yr).\n"
            "Offsets in reference pixels become metres through the geotransform (any north-up or rotated "
            "projected grid; geographic CRSs are refused); a year is 365.25 days. The time separation comes "
            "from, in this order: 'Time separation'; the reference and secondary acquisition times; the dates "
            "stored by the correlation; the two PlanetScope scene ids in the file name. The first two apply to "
            "every input. It must be positive; a reference date after the secondary one is accepted with a "
            "warning and velocities stay signed forward in time (secondary minus reference).\n"
            "Median shift (default on): the median dx and dy of stable ground (valid cells outside the moving "
            "area, or all valid cells without one) are subtracted first. Minimum peak correlation: cells with "
            "a lower peak correlation become nodata.\n"
            + MOVING_MASK_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUT, self.tr("Disparity rasters"), QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterNumber(
            self.DT_DAYS, self.tr("Time separation (days; empty = from dates or file names)"),
            QgsProcessingParameterNumber.Double, None, optional=True, minValue=MIN_DT_DAYS, maxValue=MAX_DAYS))
        self.addParameter(QgsProcessingParameterDateTime(
            self.REF_DATE, self.tr("Reference acquisition time (UTC)"), optional=True))
        self.addParameter(QgsProcessingParameterDateTime(
            self.SEC_DATE, self.tr("Secondary acquisition time (UTC)"), optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.MEDIAN_SHIFT, self.tr("Subtract the median offset of stable ground"), True))
        add_moving_mask_parameters(self)
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_PEAK, self.tr("Minimum peak correlation (empty = keep all valid cells)"),
            QgsProcessingParameterNumber.Double, None, optional=True, minValue=-1.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, self.tr("Velocity rasters")))

    def optional_double(self, parameters, name, context):
        value = parameters.get(name)
        return None if value in (None, "") else self.parameterAsDouble(parameters, name, context)

    def optional_datetime(self, parameters, name, context):
        value = parameters.get(name)
        if value in (None, ""):
            return None
        moment = self.parameterAsDateTime(parameters, name, context)
        if not moment.isValid():
            raise QgsProcessingException(self.tr("{} is not a valid date and time.").format(name))
        return moment.toUTC().toString(Qt.ISODate)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        inputs = layer_paths(parameters, self.INPUT, context)
        if not inputs:
            raise QgsProcessingException(self.tr("No disparity raster was given."))
        settings = {
            "dt_days": self.optional_double(parameters, self.DT_DAYS, context),
            "ref_date": self.optional_datetime(parameters, self.REF_DATE, context),
            "sec_date": self.optional_datetime(parameters, self.SEC_DATE, context),
            "median_shift": self.parameterAsBool(parameters, self.MEDIAN_SHIFT, context),
            "min_peak": self.optional_double(parameters, self.MIN_PEAK, context),
        }
        if (settings["ref_date"] is None) != (settings["sec_date"] is None):
            raise QgsProcessingException(self.tr("Give both REF_DATE and SEC_DATE, or neither."))
        outputs = []
        with output_folder_for(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context),
                               feedback=feedback) as folder:
            for index, source in enumerate(inputs):
                output = output_path_for(folder, source, "_velocity")
                moving = moving_mask_for(self, parameters, context, source)
                share = 100.0 / len(inputs)
                report = run_core(velocity_file, feedback, source, output,
                                  stable_mask=None if moving is None else ~moving,
                                  progress_range=(index * share, (index + 1) * share), **settings)
                feedback.pushInfo(self.tr("{}: dt = {:.3f} days, median shift dx {:.3f} px, dy {:.3f} px").format(
                    os.path.basename(output), report["dt_days"], report["median_dx"], report["median_dy"]))
                if report["dt_days"] < 0:
                    feedback.pushWarning(reversed_pair_note(self, os.path.basename(source), report["dt_days"]))
                outputs.append(output)
        group = MapGroup(self, outputs)
        for output in outputs:
            load_on_completion(context, output, None, self.OUTPUT_LAYERS, VELOCITY_STYLE,
                               companions=[("azimuth", "velocity_azimuth")], group=group)
        return {self.OUTPUT_FOLDER: folder, self.OUTPUT_LAYERS: outputs}
