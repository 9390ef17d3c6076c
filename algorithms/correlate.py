"""surfacemotion:correlatepair and surfacemotion:correlatepairs — offset tracking."""
import os

import pandas as pd
from qgis.core import (
    NULL,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.offsets.apriori import APRIORI_UNITS
from ..core.offsets.correlate import (DEFAULT_CHIP_LADDER, DEFAULT_COHERENCE, DEFAULT_MEDIAN_TEST,
                                     DEFAULT_MIN_PEAK_RATIO, DEFAULT_MIN_TEXTURE, DEFAULT_MIN_VALID_FRACTION,
                                     DEFAULT_PREFILTER, DEFAULT_SMOOTHING, DEFAULT_SUBPIXEL, SUBPIXEL_METHODS,
                                     correlate_files)
from ..core.offsets.jit import numba_available
from ..core.offsets.prefilters import PREFILTERS
from ..core.io import open_raster
from ..core.offsets.batch import correlate_pair_table, pair_tags
from ..core.offsets.disparity import DISPARITY_STYLE
from ..core.offsets.pairs import pair_table_from_text, read_pair_table
from .base import (MAX_DAYS, MapGroup, SurfaceMotionAlgorithm, advanced, core_errors_as_processing_errors,
                   enum_parameter, enum_value,
                   load_disparity_on_completion, output_folder_for, polygons_in_crs, run_core, style_on_completion,
                   tif_output)


OUTPUT_HELP = (
    "Output: float32 GeoTIFF, NaN nodata, on the reference grid subsampled by the output grid spacing, each "
    "cell centred on its chip. Band 1 dx and band 2 dy are offsets in reference pixels, dx + right (east on "
    "north-up grids), dy + down (south): a feature at reference (col, row) is at (col + dx, row + dy) in the "
    "secondary. Band 3 valid 1/0 (dx, dy NaN where 0); 4 peak correlation (−1…1); 5 SNR; 6 peak ratio; 7 1-σ "
    "uncertainty (px); then, found by their description, the forward-backward residual, the rejection reason, "
    "the chip size used and the deformation bands.\n"
    "Cells are invalid (the reason band says why) at image edges and nodata, on low texture (water, "
    "featureless areas), with a peak on the edge of the search range, a failed refinement or as outliers: keep "
    "the search range above the largest offset.\n"
)
DEFAULTS_HELP = (
    "The defaults suit PlanetScope landslides and glaciers (32 px chips, ±8 px search, 4 px spacing, affine "
    "refinement, Gaussian high-pass pre-filter). Each parameter has a tooltip; the Help button opens the full "
    "description (methods, reason codes, measured accuracy)."
)

#: Tooltips of the parameters shared by both correlation algorithms.
CORRELATION_PARAMETER_HELP = {
    "CHIP_SIZE": "Side of the square template matched between the images, in pixels. Larger chips match "
                 "weak texture more reliably but average the motion inside them; 32 suits PlanetScope landslides.",
    "SEARCH_RANGE": "Largest offset searched in any direction, in reference pixels. A peak on the edge of the "
                    "range is rejected: set it a few pixels above the largest expected motion.",
    "STEP": "Spacing of the output cells in reference pixels (1 = a dense map, one cell per pixel). Offsets stay "
            "in reference pixels whatever the spacing.",
    "SUBPIXEL": "Affine (default): Lucas-Kanade with the deformation inside the chip modelled where it is "
                "significant, the most accurate on glaciers and landslides. Lucas-Kanade: translation only, about "
                "0.01 px on good texture. Gaussian peak fit: the fastest, 0.03-0.1 px, with pixel-locking.",
    "SMOOTHING": "Gaussian blur (sigma in px) of both images before matching: removes the near-Nyquist detail "
                 "that causes pixel-locking. 0 = off; default 0.8.",
    "PREFILTER": "Filter applied before matching. Gaussian high-pass (default) removes illumination gradients, "
                 "shadows and haze; Wallis normalises local contrast; Laplacian of Gaussian as in Ames Stereo "
                 "Pipeline; None matches the raw images.",
    "PREFILTER_SIZE": "Size of the pre-filter in px: the Wallis window (default 5) or the Gaussian sigma "
                      "(high-pass 3, Laplacian of Gaussian 1.4). 0 = the filter's default.",
    "MIN_TEXTURE": "Chips whose standard deviation is below this multiple of the image noise (estimated from "
                   "the reference) are invalid: water and featureless areas. 0 = off; default 3.",
    "MEDIAN_TEST": "Normalised median test against the 8 neighbours: a cell is invalid when |offset − median| / "
                   "(median residual + 0.1 px) exceeds this, in dx or dy. 0 = off; default 3.",
    "FORWARD_BACKWARD": "When above 0, the pair is also correlated backwards and cells whose forward + backward "
                        "offset exceeds this many pixels are invalid (doubles the run time). 0 = off.",
    "MASK": "Polygons (any CRS): only cells whose chip centre lies inside are computed; the rest is NaN.",
    "APRIORI": "Two-band raster of expected offsets (any CRS and resolution, sampled bilinearly): each chip "
               "searches around its prediction, and dx, dy stay total offsets. Cells where it is NaN search "
               "around 0.",
    "APRIORI_UNITS": "Reference pixels: band 1 dx (+ right), band 2 dy (+ down). Metres per year: band 1 vx, "
                     "band 2 vy along the raster's CRS axes (y up), multiplied by the time between the images.",
    "APRIORI_DT": "Days between the images, to turn an a-priori velocity into offsets. 0 = from the "
                  "PlanetScope dates in the file names; a year is 365.25 days.",
    "PYRAMID_LEVELS": "Coarse-to-fine search for motions larger than the search range: the images are halved "
                      "this many times, the coarsest level searches the full range, each finer level ±4 px around "
                      "the level above (motions up to 2^levels × the search range). 0 = off.",
    "MIN_VALID_FRACTION": "Chips with nodata pixels are correlated on their valid pixels (masked correlation) "
                          "when at least this fraction (0-1) of the chip and of its overlap is valid; 1 = chips "
                          "touching nodata are invalid. Default 0.7.",
    "CHIP_LADDER": "Cells whose chip fails are retried with 2×, 4×, … larger chips, up to this many rungs. "
                   "Raises coverage at several times the run time, but large chips average the motion. 0 = off.",
    "COHERENCE": "Displacement coherence test (autoRIFT style): a cell is invalid when fewer than 15 % of its "
                 "neighbours within about two chips agree with it to within this many pixels. 0 = off; default 2.",
    "MIN_PEAK_RATIO": "Cells whose best / second-best correlation peak ratio is below this are invalid "
                      "(ambiguous matches). 0 = off.",
    "STRAIN_BANDS": "Four more bands with the deformation fitted inside each chip: d(dx)/dx, d(dx)/dy, d(dy)/dx, "
                    "d(dy)/dy in px/px (x + right, y + down). Needs the affine sub-pixel method.",
}


def note_missing_numba(algorithm, feedback) -> None:
    """Tell the user when the correlator's compiled kernels are unavailable (numba missing): the
    results are the same, the run is several times slower."""
    if not numba_available():
        feedback.pushInfo(algorithm.tr(
            "numba is not installed: the correlation runs in numpy (same numbers, about 4-5 times slower). "
            "To speed it up install it (Debian/Ubuntu: sudo apt install python3-numba; otherwise "
            "`python3 -m pip install numba` with the Python QGIS uses, Windows: in the OSGeo4W Shell), then "
            "restart QGIS."))


def add_correlation_parameters(algorithm) -> None:
    """Parameters shared by both correlation algorithms (CHIP_SIZE, SEARCH_RANGE, STEP, SUBPIXEL,
    SMOOTHING, PREFILTER, PREFILTER_SIZE, MIN_TEXTURE, MEDIAN_TEST, FORWARD_BACKWARD, MASK, APRIORI,
    APRIORI_UNITS, APRIORI_DT, PYRAMID_LEVELS, MIN_VALID_FRACTION, CHIP_LADDER, COHERENCE, MIN_PEAK_RATIO)."""
    tr = algorithm.tr
    algorithm.addParameter(QgsProcessingParameterNumber(
        "CHIP_SIZE", tr("Chip (template) size (px)"), QgsProcessingParameterNumber.Integer, 32,
        minValue=8, maxValue=512))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "SEARCH_RANGE", tr("Search range: largest expected offset (px)"),
        QgsProcessingParameterNumber.Integer, 8, minValue=1, maxValue=1000))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "STEP", tr("Output grid spacing (px)"), QgsProcessingParameterNumber.Integer, 4, minValue=1, maxValue=1000))
    algorithm.addParameter(advanced(enum_parameter(algorithm, "SUBPIXEL", "Sub-pixel method", SUBPIXEL_METHODS,
                                                    DEFAULT_SUBPIXEL)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "SMOOTHING", tr("Anti-aliasing smoothing: Gaussian sigma (px, 0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_SMOOTHING, minValue=0.0, maxValue=5.0)))
    algorithm.addParameter(advanced(enum_parameter(algorithm, "PREFILTER", "Pre-filter", PREFILTERS,
                                                    DEFAULT_PREFILTER)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "PREFILTER_SIZE", tr("Pre-filter size: Wallis window or Gaussian sigma (px, 0 = default)"),
        QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=50.0)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "MIN_TEXTURE", tr("Minimum texture: chip standard deviation / image noise (0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_MIN_TEXTURE, minValue=0.0, maxValue=100.0)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "MEDIAN_TEST", tr("Normalised median test threshold (0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_MEDIAN_TEST, minValue=0.0, maxValue=100.0)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "FORWARD_BACKWARD", tr("Forward-backward check: largest residual (px, 0 = off)"),
        QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=1000.0)))
    algorithm.addParameter(QgsProcessingParameterFeatureSource(
        "MASK", tr("Area to correlate (polygons)"), [QgsProcessing.TypeVectorPolygon],
        optional=True))
    algorithm.addParameter(advanced(QgsProcessingParameterRasterLayer(
        "APRIORI", tr("A-priori offsets or velocities (2 bands: dx, dy px or vx, vy m/yr)"),
        optional=True)))
    algorithm.addParameter(advanced(enum_parameter(algorithm, "APRIORI_UNITS", "A-priori units", APRIORI_UNITS,
                                                    "pixels")))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "APRIORI_DT", tr("Time between the images for an a-priori velocity (days, 0 = from the file names)"),
        QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=MAX_DAYS)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "PYRAMID_LEVELS", tr("Coarse-to-fine pyramid levels (0 = off)"),
        QgsProcessingParameterNumber.Integer, 0, minValue=0, maxValue=6)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "MIN_VALID_FRACTION", tr("Minimum valid fraction of a chip with nodata (0-1; 1 = chips touching nodata "
                                 "are invalid)"),
        QgsProcessingParameterNumber.Double, DEFAULT_MIN_VALID_FRACTION, minValue=0.01, maxValue=1.0)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "CHIP_LADDER", tr("Fallback chip ladder: larger chips (2x, 4x, ...) tried where a chip fails (0 = off)"),
        QgsProcessingParameterNumber.Integer, DEFAULT_CHIP_LADDER, minValue=0, maxValue=3)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "COHERENCE", tr("Displacement coherence test tolerance (px, 0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_COHERENCE, minValue=0.0, maxValue=1000.0)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        "MIN_PEAK_RATIO", tr("Minimum peak ratio: best / second-best ZNCC peak (0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_MIN_PEAK_RATIO, minValue=0.0, maxValue=100.0)))


def correlation_settings(algorithm, parameters, context) -> dict:
    """Keyword arguments for the core correlator from the shared parameters (MASK apart)."""
    return {
        "chip_size": algorithm.parameterAsInt(parameters, "CHIP_SIZE", context),
        "search_range": algorithm.parameterAsInt(parameters, "SEARCH_RANGE", context),
        "step": algorithm.parameterAsInt(parameters, "STEP", context),
        "subpixel": enum_value(algorithm, parameters, "SUBPIXEL", context, SUBPIXEL_METHODS),
        "smoothing": algorithm.parameterAsDouble(parameters, "SMOOTHING", context),
        "prefilter": enum_value(algorithm, parameters, "PREFILTER", context, PREFILTERS),
        "prefilter_size": algorithm.parameterAsDouble(parameters, "PREFILTER_SIZE", context),
        "min_texture": algorithm.parameterAsDouble(parameters, "MIN_TEXTURE", context),
        "median_test": algorithm.parameterAsDouble(parameters, "MEDIAN_TEST", context),
        "forward_backward": algorithm.parameterAsDouble(parameters, "FORWARD_BACKWARD", context),
        "apriori": _layer_source(algorithm.parameterAsRasterLayer(parameters, "APRIORI", context)),
        "apriori_units": enum_value(algorithm, parameters, "APRIORI_UNITS", context, APRIORI_UNITS),
        "apriori_dt_days": algorithm.parameterAsDouble(parameters, "APRIORI_DT", context) or None,
        "pyramid_levels": algorithm.parameterAsInt(parameters, "PYRAMID_LEVELS", context),
        "min_valid_fraction": algorithm.parameterAsDouble(parameters, "MIN_VALID_FRACTION", context),
        "chip_ladder": algorithm.parameterAsInt(parameters, "CHIP_LADDER", context),
        "coherence": algorithm.parameterAsDouble(parameters, "COHERENCE", context),
        "min_peak_ratio": algorithm.parameterAsDouble(parameters, "MIN_PEAK_RATIO", context),
        "strain_bands": algorithm.parameterAsBool(parameters, "STRAIN_BANDS", context),
    }


def add_strain_bands_parameter(algorithm) -> None:
    """STRAIN_BANDS (advanced, default off), the last parameter of both correlation algorithms."""
    algorithm.addParameter(advanced(QgsProcessingParameterBoolean(
        "STRAIN_BANDS", algorithm.tr("Deformation bands d(dx)/dx, d(dx)/dy, d(dy)/dx, d(dy)/dy (sub-pixel 'affine')"),
        False)))


def _layer_source(layer):
    return layer.source() if layer is not None else None


def mask_geometries(algorithm, parameters, context, raster_path: str):
    """MASK polygons as GeoJSON in the CRS of ``raster_path``, or None without a mask."""
    if not parameters.get("MASK"):
        return None
    source = algorithm.parameterAsSource(parameters, "MASK", context)
    if source is None:
        return None
    with core_errors_as_processing_errors(), open_raster(raster_path) as ds:
        crs_wkt = ds.crs.to_wkt() if ds.crs is not None else ""
    if not crs_wkt:
        return None  # the correlator reports the missing CRS
    geometries = polygons_in_crs(source, crs_wkt, context, algorithm.parameterDefinition("MASK").description())
    if not geometries:
        raise QgsProcessingException(algorithm.tr("The mask layer has no polygons."))
    return geometries


def table_folder(value) -> str:
    """Folder that relative paths in a pair table refer to: the CSV's folder, else the cwd."""
    path = str(value or "").split("|")[0]
    return os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else os.getcwd()


class CorrelatePairAlgorithm(SurfaceMotionAlgorithm):
    REFERENCE = "REFERENCE"
    SECONDARY = "SECONDARY"
    OUTPUT = "OUTPUT"
    PARAMETER_HELP = {
        **CORRELATION_PARAMETER_HELP,
        "REFERENCE": "The older image (single band). The output is on its grid, the offsets in its pixels.",
        "SECONDARY": "The newer image (single band), with the same CRS, pixel size and pixel grid as the reference.",
        "OUTPUT": "The disparity GeoTIFF (.tif).",
    }
    HELP_SECTIONS = ("Output conventions",)

    def name(self):
        return "correlatepair"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Correlate image pair (offset tracking)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Measures how far each point of the reference (older) image moved in the secondary (newer) image: "
            "zero-normalised cross-correlation of image chips, then sub-pixel refinement. Both images are "
            "single-band, with the same CRS and pixel size, on a common pixel grid (their overlap is used).\n"
            + OUTPUT_HELP + DEFAULTS_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterRasterLayer(self.REFERENCE, self.tr("Reference (older) image")))
        self.addParameter(QgsProcessingParameterRasterLayer(self.SECONDARY, self.tr("Secondary (newer) image")))
        add_correlation_parameters(self)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Disparity")))
        add_strain_bands_parameter(self)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        ref = self.parameterAsRasterLayer(parameters, self.REFERENCE, context).source()
        sec = self.parameterAsRasterLayer(parameters, self.SECONDARY, context).source()
        output = tif_output(self, parameters, self.OUTPUT, context)
        with core_errors_as_processing_errors():
            tags = pair_tags(ref, sec)
        note_missing_numba(self, feedback)
        summary = run_core(correlate_files, feedback, ref, sec, output, tags=tags,
                           mask_geometries=mask_geometries(self, parameters, context, ref),
                           **correlation_settings(self, parameters, context))
        feedback.pushInfo(summary.describe())
        pair = f"{os.path.basename(ref)}_{os.path.basename(sec)}"  # the pair's dates name the layers
        style_on_completion(context, output, DISPARITY_STYLE, [("dy", "disparity_dy")], MapGroup(self, [pair]), pair)
        return {self.OUTPUT: output}


class CorrelatePairsAlgorithm(SurfaceMotionAlgorithm):
    PAIRS = "PAIRS"
    OVERWRITE = "OVERWRITE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"
    N_FAILED = "N_FAILED"
    PARALLEL_PAIRS = "PARALLEL_PAIRS"
    DASK_SCHEDULER = "DASK_SCHEDULER"
    PARAMETER_HELP = {
        **CORRELATION_PARAMETER_HELP,
        "PAIRS": "A table layer or CSV with columns ref and sec (raster paths; relative paths are relative to the "
                 "CSV), e.g. the output of 'Build image pairs'. Mask polygons are reprojected to the CRS of the "
                 "first reference image.",
        "OVERWRITE": "Redo pairs whose complete output already exists; otherwise they are skipped, so a rerun "
                     "resumes an interrupted batch.",
        "PARALLEL_PAIRS": "Pairs correlated at once in this process; each pair already uses two threads.",
        "DASK_SCHEDULER": "Address of a dask.distributed scheduler to run the pairs on a cluster instead. Its "
                          "workers must import this plugin's core package and see the paths in the table.",
        "OUTPUT_FOLDER": "Folder of the disparity GeoTIFFs, one per pair.",
    }
    HELP_SECTIONS = ("Output conventions",)

    def name(self):
        return "correlatepairs"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Correlate image pairs from a pair table")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Runs 'Correlate image pair' for every row of a pair table (the output of 'Build image pairs', or "
            "any table or CSV with columns ref and sec holding raster paths) into the output folder, one file "
            "per pair named {ref_id}_{sec_id}_disp.tif (file stems without PlanetScope ids). Complete outputs "
            "are skipped unless 'Overwrite existing outputs' is ticked, so a rerun resumes; a failed pair is "
            "reported and the others go on.\n"
            + OUTPUT_HELP + DEFAULTS_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.PAIRS, self.tr("Pair table (layer or CSV with ref, sec columns)"), [QgsProcessing.TypeVector]))
        add_correlation_parameters(self)
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, self.tr("Overwrite existing outputs"), False))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.PARALLEL_PAIRS, self.tr("Pairs correlated in parallel"), QgsProcessingParameterNumber.Integer,
            1, minValue=1, maxValue=64)))
        self.addParameter(advanced(QgsProcessingParameterString(
            self.DASK_SCHEDULER, self.tr("Dask scheduler address (e.g. tcp://host:8786)"),
            optional=True)))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, self.tr("Disparity rasters")))
        self.addOutput(QgsProcessingOutputNumber(self.N_FAILED, self.tr("Number of failed pairs")))
        add_strain_bands_parameter(self)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        table = self.read_pair_source(parameters, context)
        with output_folder_for(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context),
                               keep_on_failure=True, feedback=feedback) as folder:
            note_missing_numba(self, feedback)
            outcomes = run_core(
                correlate_pair_table, feedback, table, folder,
                overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context), log=feedback.pushInfo,
                workers=self.parameterAsInt(parameters, self.PARALLEL_PAIRS, context),
                scheduler=self.parameterAsString(parameters, self.DASK_SCHEDULER, context).strip() or None,
                mask_geometries=(mask_geometries(self, parameters, context, table["ref"].iloc[0])
                                 if len(table) else None),
                **correlation_settings(self, parameters, context))
            failed = [outcome for outcome in outcomes if outcome.status == "failed"]
            for outcome in failed:
                feedback.reportError(self.tr("Pair {} / {} failed: {}").format(
                    outcome.ref, outcome.sec, outcome.message), False)
            if outcomes and len(failed) == len(outcomes):
                raise QgsProcessingException(self.tr(
                    "All {} pairs failed; the first error was: {}").format(len(failed), failed[0].message))
        outputs = []
        group = MapGroup(self, [outcome.output for outcome in outcomes if outcome.status != "failed"])
        for outcome in outcomes:
            if outcome.status == "failed":
                continue
            if outcome.message:
                feedback.pushWarning(self.tr("{}: {}").format(os.path.basename(outcome.output), outcome.message))
            outputs.append(outcome.output)
            load_disparity_on_completion(context, outcome.output, self.OUTPUT_LAYERS, group)
        return {self.OUTPUT_FOLDER: folder, self.OUTPUT_LAYERS: outputs, self.N_FAILED: len(failed)}

    def read_pair_source(self, parameters, context) -> pd.DataFrame:
        """The pair table (core.offsets.pairs conventions) from a CSV file or a table layer."""
        value = parameters.get(self.PAIRS)
        path = str(value or "").split("|")[0]
        with core_errors_as_processing_errors():
            if isinstance(value, str) and path.lower().endswith(".csv") and os.path.isfile(path):
                return read_pair_table(path)
            source = self.parameterAsSource(parameters, self.PAIRS, context)
            if source is None:
                raise QgsProcessingException(self.tr("The pair table could not be read."))
            names = source.fields().names()
            rows = [[None if attribute is None or attribute == NULL else attribute
                     for attribute in feature.attributes()] for feature in source.getFeatures()]
            return pair_table_from_text(pd.DataFrame(rows, columns=names), table_folder(value),
                                        f"The pair table '{source.sourceName()}'")
