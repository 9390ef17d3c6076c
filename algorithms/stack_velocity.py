"""surfacemotion:stackvelocity — per-pixel statistics of many pair velocities (REFERENCE §6.3)."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
)

from ..core.offsets.velocity import VELOCITY_STYLE
from ..core.series.network import merge_networks, read_network
from ..core.series.stack import stack_file
from .base import MapGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors, layer_paths, run_core, \
    style_on_completion, tif_output

#: Help of the pair inputs shared by stackvelocity and aoitimeline.
PAIR_INPUT_HELP = {
    "INPUT": "Pair rasters: velocity rasters of 'Velocity from disparity' (speed, azimuth, east, north in m/yr) or "
             "disparity rasters of 'Correlate image pair(s)' (converted to m/yr with their dates).",
    "PAIR_TABLE": "A CSV pair table with a column path (or output, velocity, disparity, file) and optionally "
                  "ref_date, sec_date (ISO dates, needed for rasters without date tags, e.g. ASP -F.tif); "
                  "relative paths are relative to the CSV.",
}


def pairs_from_parameters(algorithm, parameters, context):
    """The PairRaster objects of INPUT and PAIR_TABLE (checked to share one grid), or a clear error."""
    paths = layer_paths(parameters, "INPUT", context)
    table = algorithm.parameterAsFile(parameters, "PAIR_TABLE", context)
    if not paths and not table:
        raise QgsProcessingException(algorithm.tr(
            "No pair raster was given: choose velocity or disparity rasters in 'Pair rasters', or a pair table "
            "(CSV with a path column)."))
    with core_errors_as_processing_errors():
        return merge_networks(read_network(table) if table else [], read_network(paths) if paths else [])


def add_pair_input_parameters(algorithm) -> None:
    algorithm.addParameter(QgsProcessingParameterMultipleLayers(
        "INPUT", algorithm.tr("Pair rasters (velocity or disparity)"), QgsProcessing.TypeRaster, optional=True))
    algorithm.addParameter(QgsProcessingParameterFile(
        "PAIR_TABLE", algorithm.tr("Pair table (CSV: path, ref_date, sec_date)"), extension="csv", optional=True))


class StackVelocityAlgorithm(SurfaceMotionAlgorithm):
    group_id = "postprocessing"
    PARAMETER_HELP = {
        **PAIR_INPUT_HELP,
        "WEIGHTS": "Weight each pair by its inverse variance 1/sigma² from its uncertainty band (disparity: "
                   "'uncertainty (px, 1 sigma)'; velocity: a band described 'uncertainty ...' in m/yr); every input "
                   "must have one.",
        "OUTPUT": "The 11-band float32 GeoTIFF of the statistics (NaN nodata).",
    }
    HELP_SECTIONS = ("Output conventions",)

    def name(self):
        return "stackvelocity"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Stack velocity maps (mean, median, vector mean)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Per-pixel statistics of many pair velocity maps on one grid (velocity rasters, or disparity rasters "
            "converted with their dates), NaN-aware and computed in row blocks (bounded memory whatever the "
            "number of inputs). Inputs on different grids are refused: correlate on one reference grid or "
            "resample first.\n"
            "Output: one float32 GeoTIFF, NaN nodata. Bands: 1 vector-mean speed, 2 its azimuth (deg clockwise from grid north), 3 mean east and 4 mean "
            "north velocity (m/yr): the speed of the mean vector, which, unlike the mean of speeds, is not biased "
            "high by noise; 5 mean, 6 median, 7 std (population) and 8 MAD (1.4826 x median absolute deviation) "
            "of speed (m/yr); 9 count of valid pairs; 10 circular mean and 11 circular std of the direction "
            "(deg; C, S = mean cos, sin; R = sqrt(C² + S²); std = sqrt(-2 ln R)).\n"
            "Optional inverse-variance weights from the uncertainty band apply to bands 1-5, 7, 10, 11. The tag "
            "SM_SERIES_SOURCES lists the pairs and their dates.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        add_pair_input_parameters(self)
        self.addParameter(QgsProcessingParameterBoolean(
            "WEIGHTS", self.tr("Weight by inverse variance (uncertainty band)"), False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Velocity stack")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        pairs = pairs_from_parameters(self, parameters, context)
        output = tif_output(self, parameters, "OUTPUT", context)
        weighted = self.parameterAsBool(parameters, "WEIGHTS", context)
        report = run_core(stack_file, feedback, pairs, output, weighted=weighted)
        feedback.pushInfo(self.tr("{} pairs stacked ({} rows per block); {} pixels with at least one valid pair")
                          .format(report["n_pairs"], report["block_rows"], report["n_pixels"]))
        style_on_completion(context, output, VELOCITY_STYLE, [("azimuth", "velocity_azimuth")],
                            MapGroup(self, [output]))
        return {"OUTPUT": output}
