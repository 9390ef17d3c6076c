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
    QgsProcessingParameterDefinition,
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
from ..core.offsets.disparity import DISPARITY_STYLE, REASONS
from ..core.offsets.pairs import pair_table_from_text, read_pair_table
from .base import (MAX_DAYS, SurfaceMotionAlgorithm, core_errors_as_processing_errors, enum_parameter, enum_value,
                   load_disparity_on_completion, output_folder_for, polygons_in_crs, run_core, style_on_completion,
                   tif_output)


CONVENTIONS_HELP = (
    "Output GeoTIFF (float32, NaN nodata, reference CRS) on the reference grid subsampled by STEP; "
    "each output pixel is centred on its chip centre (geotransform exact).\n"
    "Band 1 dx = column offset in reference pixels, + right (east on north-up grids); band 2 dy = row "
    "offset in reference pixels, + down (south); a feature at reference (col, row) is found at "
    "(col + dx, row + dy) in the secondary. Band 3 valid mask 1/0 (all other bands NaN where 0); band 4 "
    "peak zero-normalised cross-correlation (-1..1). Quality bands, found by their description: band 5 "
    "SNR = peak / mean |ZNCC| over the search surface; band 6 peak ratio = best / second-best ZNCC peak "
    "more than 2 px away (1 = ambiguous, capped at 100); band 7 uncertainty = 1-sigma error of the "
    "offset vector in px, from the peak ZNCC and its curvature; band 8 (only with the forward-backward "
    "check) |forward + backward offset| in px; then 'rejection reason' (a code where valid = 0, never NaN: "
    + ", ".join(f"{code} {meaning}" for code, meaning in REASONS)
    + "; the first test the cell's base chip failed) and 'chip size (px)' (the chip that gave the cell: "
    "CHIP_SIZE or a fallback ladder chip).\n"
    "Engine: zero-normalised cross-correlation of each chip over the search window (Lewis), by FFT per "
    "chip or, when chips overlap, by a displacement sweep shared by all chips (same values, chosen "
    "automatically), then "
    "sub-pixel refinement: 'lk' = iterative Lucas-Kanade on the image intensities with "
    "gain/bias normalisation (accurate: about 0.01 px on good texture, no pixel-locking); 'gaussian' = "
    "3x3 Gaussian peak fit (about 4 times as fast as 'lk' and twice as fast as 'affine', 0.03-0.1 px with "
    "pixel-locking; the choice for dense maps: STEP 1 over 2048 x 2048 px with a 16 px search takes 12 s on 2 "
    "cores); 'affine' (default) = the "
    "Lucas-Kanade refinement, then, where a chi-square test finds significant strain inside the chip, an "
    "affine Lucas-Kanade (translation at the chip centre + the 4 displacement gradients, gain/bias, "
    "Gaussian-weighted) so the strain does not bias the offset: the same numbers as 'lk' on pure "
    "translations, about a third of its error on a glacier-like warp (0.048 vs 0.138 px), and compiled "
    "with numba when it is installed (about twice as fast as 'lk', a dense 2048 x 2048 STEP 1 map in "
    "about 30 s). STRAIN_BANDS (advanced, needs SUBPIXEL 'affine'): four more bands last, the fitted "
    "displacement gradient inside each chip d(dx)/dx, d(dx)/dy, d(dy)/dx, d(dy)/dy in px/px "
    "(dimensionless; x + right, y + down; d(dx)/dx > 0 = extension along x; where the test found no "
    "significant strain, the first-order fit of the same model). SMOOTHING (advanced, "
    "default 0.8 px): Gaussian sigma applied to both images before matching; it removes the "
    "near-Nyquist detail no interpolator reproduces at fractional shifts (the cause of pixel-locking); "
    "0 = off. Blocks are read, "
    "computed two at a time (both cores) and written one by one, so memory stays bounded whatever the "
    "image size.\n"
    "CHIP_SIZE: template size in px (32 suits PlanetScope landslides). SEARCH_RANGE: largest expected "
    "offset in px in any direction (a peak on the edge of the range is rejected). STEP: output grid "
    "spacing in px.\n"
    "PREFILTER (advanced): Gaussian high-pass (default: image minus its Gaussian blur, sigma "
    "PREFILTER_SIZE px, default 3; removes illumination gradients, shadows and haze), none, Wallis (local "
    "contrast normalisation, window PREFILTER_SIZE px, default 5) or Laplacian of Gaussian (sigma default "
    "1.4, as Ames Stereo Pipeline). PREFILTER_SIZE 0 = the filter's default. With the high-pass, offsets "
    "larger than SEARCH_RANGE are not always caught by the search-edge test (a 12 px shift searched over "
    "8 px left 8 % of the cells valid and wrong, 0.7 % without a pre-filter, 3.7 % with FORWARD_BACKWARD "
    "1): set SEARCH_RANGE above the largest offset.\n"
    "Defaults (PlanetScope landslides and glaciers: CHIP_SIZE 32, SEARCH_RANGE 8, STEP 4, SUBPIXEL "
    "affine, PREFILTER high-pass sigma 3, SMOOTHING 0.8, MIN_TEXTURE 3, MEDIAN_TEST 3, COHERENCE 2, "
    "MIN_VALID_FRACTION 0.7) were chosen by bench/correlation.py (chip 32, step 8): on four real "
    "Sentinel-2 Perito Moreno glacier pairs (2-20 days, one with clouds) the high-pass keeps 0.93 of the "
    "cloudy pair's glacier (none: 0.78) with the lowest stable-ground noise of the filters (10 days: std "
    "0.075/0.065 px; Wallis 0.100/0.093), and the affine refinement has 0.048/0.043 px RMSE on an "
    "ITS_LIVE-shaped 6 px warp with 20 dB noise (Lucas-Kanade 0.138/0.116, OpenCV NCC 0.15) while "
    "matching Lucas-Kanade on pure translations (0.001 px noise-free, 0.03 px at 20 dB).\n"
    "Invalid (valid = 0): chips touching the image edge or with too little valid data (MIN_VALID_FRACTION); "
    "chips whose reference standard "
    "deviation is below MIN_TEXTURE x the image noise (estimated from the reference, Immerkaer's "
    "method; water and featureless areas; 0 = off; default 3); peaks on the edge of the search range; "
    "diverging refinements; cells failing the normalised median test against their 8 neighbours "
    "(|u - median| / (median residual + 0.1 px) > MEDIAN_TEST for dx or dy; default 3, 0 = off); and, "
    "when FORWARD_BACKWARD > 0, cells whose forward-backward residual exceeds it (px; costs a second "
    "correlation). MASK (optional polygons, any CRS): only cells whose chip centre lies inside are "
    "computed.\n"
    "Nodata (advanced): MIN_VALID_FRACTION (0-1, default 0.7): chips with nodata pixels (declared nodata, "
    "masks, DEM voids, saturated pixels flagged as nodata) are correlated on their valid pixels (masked "
    "zero-normalised cross-correlation, Padfield 2012, over the pixels valid in both the chip and the "
    "shifted secondary footprint; the refinement ignores nodata pixels and the samples next to them) when "
    "at least this fraction of the chip and of its overlap with the secondary is valid; 1 = chips touching "
    "nodata are invalid (the behaviour before). Measured on the ITS_LIVE-shaped 6 px warp (20 dB noise): "
    "1 % and 5 % random nodata in both images keep all of the clean case's valid cells, RMSE +2 % and "
    "+10-12 % (nodata pixels are filled from their neighbours before the smoothing and weigh nothing in "
    "the refinement); without masking 1 % left no valid cell. Images without nodata give the same "
    "numbers as with 1.\n"
    "Outliers and coverage (advanced): COHERENCE (px, default 2, 0 = off): displacement coherence test after "
    "autoRIFT's NDC filter: a cell is invalid when fewer than 15 % of its valid neighbours within about two "
    "chips agree with it to within COHERENCE px in dx and dy; it removes clusters of wrong matches the "
    "8-neighbour median test keeps (on a cloudy 20-day Sentinel-2 glacier pair, 2 px brought the "
    "stable-ground std from 0.46/0.72 to 0.24/0.40 px, and with the Wallis pre-filter from 1.7/1.9 to "
    "0.14/0.19 px, for 1-2 % of the glacier cells; on a smooth 6 px warp it removes no cell). CHIP_LADDER "
    "(0-3, default 0 = off): cells whose chip "
    "fails (low texture, peak on the search edge, low peak ratio, refinement, forward-backward) are retried "
    "with 2x, 4x, ... larger chips centred on the same point (autoRIFT's nested chips); 2 rungs raised the "
    "glacier coverage of that pair from 0.78 to 0.86 at about 4 times the run time, but large chips average "
    "the deformation inside them (on the 6 px warp the recovered cells raised the RMSE from 0.11 to 0.19 px): "
    "use it where coverage matters more than accuracy, and see the chip size band. MIN_PEAK_RATIO "
    "(default 0 = off): cells whose best / second-best peak ratio is below it are invalid.\n"
    "Both images must be single-band, on the same CRS and pixel size, on a common pixel grid; "
    "with different extents the overlap is used.\n"
    "Large motions (advanced): APRIORI (optional two-band raster, any CRS and resolution, sampled "
    "bilinearly at the chip centres, NaN-aware) gives the expected offset; each chip searches "
    "+-SEARCH_RANGE px around it (rounded), and dx, dy remain TOTAL offsets (a-priori + measured). "
    "APRIORI_UNITS: 'reference pixels' = band 1 dx (+ right), band 2 dy (+ down), as in the output; "
    "'metres per year' = band 1 vx, band 2 vy along the raster CRS's x and y axes (y up = north on "
    "north-up grids, e.g. ITS_LIVE vx/vy), multiplied by dt (APRIORI_DT days, 0 = from the PlanetScope "
    "dates in the file names; 365.25-day year) and converted with the reference geotransform, i.e. "
    "dx = vx dt / pixel width, dy = -vy dt / pixel height on north-up grids. Chips where the "
    "a-priori is NaN or outside it search around 0. PYRAMID_LEVELS (0 = off): coarse-to-fine search; "
    "the images are halved (Gaussian, then every second pixel) that many times, the coarsest level "
    "searches +-SEARCH_RANGE of its pixels (motions up to 2^levels x SEARCH_RANGE full-resolution px, "
    "e.g. 32 px with 2 levels and 8 px), and each finer level searches +-4 px around the "
    "median-filtered, doubled offsets of the level above; cost close to a +-4 px search. With both, "
    "the a-priori guides the coarsest level."
)


def _advanced(parameter):
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


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
    algorithm.addParameter(_advanced(enum_parameter(algorithm, "SUBPIXEL", "Sub-pixel method", SUBPIXEL_METHODS,
                                                    DEFAULT_SUBPIXEL)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "SMOOTHING", tr("Anti-aliasing smoothing: Gaussian sigma (px, 0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_SMOOTHING, minValue=0.0, maxValue=5.0)))
    algorithm.addParameter(_advanced(enum_parameter(algorithm, "PREFILTER", "Pre-filter", PREFILTERS,
                                                    DEFAULT_PREFILTER)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "PREFILTER_SIZE", tr("Pre-filter size: Wallis window or Gaussian sigma (px, 0 = default)"),
        QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=50.0)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "MIN_TEXTURE", tr("Minimum texture: chip standard deviation / image noise (0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_MIN_TEXTURE, minValue=0.0, maxValue=100.0)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "MEDIAN_TEST", tr("Normalised median test threshold (0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_MEDIAN_TEST, minValue=0.0, maxValue=100.0)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "FORWARD_BACKWARD", tr("Forward-backward check: largest residual (px, 0 = off)"),
        QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=1000.0)))
    algorithm.addParameter(QgsProcessingParameterFeatureSource(
        "MASK", tr("Area to correlate (polygons, optional)"), [QgsProcessing.TypeVectorPolygon],
        optional=True))
    algorithm.addParameter(_advanced(QgsProcessingParameterRasterLayer(
        "APRIORI", tr("A-priori offsets or velocities (2 bands: dx, dy px or vx, vy m/yr; optional)"),
        optional=True)))
    algorithm.addParameter(_advanced(enum_parameter(algorithm, "APRIORI_UNITS", "A-priori units", APRIORI_UNITS,
                                                    "pixels")))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "APRIORI_DT", tr("Time between the images for an a-priori velocity (days, 0 = from the file names)"),
        QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=MAX_DAYS)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "PYRAMID_LEVELS", tr("Coarse-to-fine pyramid levels (0 = off)"),
        QgsProcessingParameterNumber.Integer, 0, minValue=0, maxValue=6)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "MIN_VALID_FRACTION", tr("Minimum valid fraction of a chip with nodata (0-1; 1 = chips touching nodata "
                                 "are invalid)"),
        QgsProcessingParameterNumber.Double, DEFAULT_MIN_VALID_FRACTION, minValue=0.01, maxValue=1.0)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "CHIP_LADDER", tr("Fallback chip ladder: larger chips (2x, 4x, ...) tried where a chip fails (0 = off)"),
        QgsProcessingParameterNumber.Integer, DEFAULT_CHIP_LADDER, minValue=0, maxValue=3)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
        "COHERENCE", tr("Displacement coherence test tolerance (px, 0 = off)"),
        QgsProcessingParameterNumber.Double, DEFAULT_COHERENCE, minValue=0.0, maxValue=1000.0)))
    algorithm.addParameter(_advanced(QgsProcessingParameterNumber(
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
    algorithm.addParameter(_advanced(QgsProcessingParameterBoolean(
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

    def name(self):
        return "correlatepair"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Correlate image pair (offset tracking)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr("Measures the offsets between a reference and a secondary image.\n\n" + CONVENTIONS_HELP)

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
        run_core(correlate_files, feedback, ref, sec, output, tags=tags,
                 mask_geometries=mask_geometries(self, parameters, context, ref),
                 **correlation_settings(self, parameters, context))
        style_on_completion(context, output, DISPARITY_STYLE, [("dy", "disparity_dy")])
        return {self.OUTPUT: output}


class CorrelatePairsAlgorithm(SurfaceMotionAlgorithm):
    PAIRS = "PAIRS"
    OVERWRITE = "OVERWRITE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"
    N_FAILED = "N_FAILED"
    PARALLEL_PAIRS = "PARALLEL_PAIRS"
    DASK_SCHEDULER = "DASK_SCHEDULER"

    def name(self):
        return "correlatepairs"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Correlate image pairs from a pair table")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Runs 'Correlate image pair' for every row of a pair table (the output of 'Build image "
            "pairs', or any table/CSV with columns ref and sec holding raster paths) into a folder, "
            "one file per pair named <ref_id>_<sec_id>_disp.tif (file stems when the names carry no "
            "PlanetScope id). Existing outputs are skipped unless OVERWRITE is ticked, so an "
            "interrupted batch resumes. A pair that fails is reported and the others continue.\n"
            "PARALLEL_PAIRS: pairs correlated at once in this process (each already uses two threads). "
            "DASK_SCHEDULER: address of a dask.distributed scheduler (e.g. tcp://10.0.0.5:8786) to run "
            "the pairs on a cluster instead; its workers must be able to import this plugin's core "
            "package and read and write the paths in the table (shared file system). MASK polygons are "
            "reprojected to the CRS of the first reference image.\n\n"
            + CONVENTIONS_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.PAIRS, self.tr("Pair table (layer or CSV with ref, sec columns)"), [QgsProcessing.TypeVector]))
        add_correlation_parameters(self)
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, self.tr("Overwrite existing outputs"), False))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            self.PARALLEL_PAIRS, self.tr("Pairs correlated in parallel"), QgsProcessingParameterNumber.Integer,
            1, minValue=1, maxValue=64)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            self.DASK_SCHEDULER, self.tr("Dask scheduler address (optional, e.g. tcp://host:8786)"),
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
        for outcome in outcomes:
            if outcome.status == "failed":
                continue
            if outcome.message:
                feedback.pushWarning(self.tr("{}: {}").format(os.path.basename(outcome.output), outcome.message))
            outputs.append(outcome.output)
            load_disparity_on_completion(context, outcome.output, self.OUTPUT_LAYERS)
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
