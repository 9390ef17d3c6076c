"""surfacemotion:correlatepair and surfacemotion:correlatepairs — offset tracking."""
import os

import pandas as pd
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.correlate import correlate_files
from ..core.workflow import correlate_pair_table, pair_tags
from .base import (StylePostProcessor, SurfaceMotionAlgorithm, core_errors_as_processing_errors,
                   load_disparity_on_completion, prepare_output_folder, run_core, write_sidecar_style)

SUBPIXEL_METHODS = ("lk", "gaussian")
DISPARITY_STYLE = "disparity_dx"

CONVENTIONS_HELP = (
    "Output GeoTIFF (float32, NaN nodata, reference CRS) on the reference grid subsampled by STEP; "
    "each output pixel is centred on its chip centre (geotransform exact).\n"
    "Band 1 dx = column offset in reference pixels, + right (east on north-up grids); band 2 dy = row "
    "offset in reference pixels, + down (south); a feature at reference (col, row) is found at "
    "(col + dx, row + dy) in the secondary. Band 3 valid mask 1/0 (dx, dy NaN where 0); band 4 peak "
    "zero-normalised cross-correlation (-1..1).\n"
    "Engine: FFT zero-normalised cross-correlation of each chip over the search window, then "
    "sub-pixel refinement: 'lk' (default) = iterative Lucas-Kanade on the image intensities with "
    "gain/bias normalisation (accurate, a few hundredths of a pixel on good texture); 'gaussian' = "
    "3x3 Gaussian peak fit (faster, some pixel-locking). Chips with no texture, nodata, a peak on the "
    "edge of the search range or a diverging refinement are marked invalid.\n"
    "CHIP_SIZE: template size in px (32 suits PlanetScope landslides). SEARCH_RANGE: largest expected "
    "offset in px in any direction. STEP: output grid spacing in px.\n"
    "Both images must be single-band, on the same CRS and pixel size, on a common pixel grid; "
    "with different extents the overlap is used."
)


def add_correlation_parameters(algorithm) -> None:
    """CHIP_SIZE, SEARCH_RANGE, STEP and SUBPIXEL, shared by both correlation algorithms."""
    tr = algorithm.tr
    algorithm.addParameter(QgsProcessingParameterNumber(
        "CHIP_SIZE", tr("Chip (template) size (px)"), QgsProcessingParameterNumber.Integer, 32,
        minValue=8, maxValue=512))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "SEARCH_RANGE", tr("Search range: largest expected offset (px)"),
        QgsProcessingParameterNumber.Integer, 8, minValue=1, maxValue=1000))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "STEP", tr("Output grid spacing (px)"), QgsProcessingParameterNumber.Integer, 4, minValue=1))
    subpixel = QgsProcessingParameterEnum(
        "SUBPIXEL", tr("Sub-pixel method"),
        [tr("Lucas-Kanade refinement (accurate)"), tr("3x3 Gaussian peak fit (fast)")], defaultValue=0)
    subpixel.setFlags(subpixel.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    algorithm.addParameter(subpixel)


def correlation_settings(algorithm, parameters, context) -> dict:
    """Keyword arguments for the core correlator from the shared parameters."""
    return {
        "chip_size": algorithm.parameterAsInt(parameters, "CHIP_SIZE", context),
        "search_range": algorithm.parameterAsInt(parameters, "SEARCH_RANGE", context),
        "step": algorithm.parameterAsInt(parameters, "STEP", context),
        "subpixel": SUBPIXEL_METHODS[algorithm.parameterAsEnum(parameters, "SUBPIXEL", context)],
    }


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

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        ref = self.parameterAsRasterLayer(parameters, self.REFERENCE, context).source()
        sec = self.parameterAsRasterLayer(parameters, self.SECONDARY, context).source()
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not output.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(self.tr("The disparity output must be a GeoTIFF (.tif)."))
        with core_errors_as_processing_errors():
            tags = pair_tags(ref, sec)
        run_core(correlate_files, feedback, ref, sec, output, tags=tags,
                 **correlation_settings(self, parameters, context))
        write_sidecar_style(output, DISPARITY_STYLE)
        if context.willLoadLayerOnCompletion(output):
            name = context.layerToLoadOnCompletionDetails(output).name
            context.layerToLoadOnCompletionDetails(output).setPostProcessor(
                StylePostProcessor.create(DISPARITY_STYLE, [(name + " dy", "disparity_dy")]))
        return {self.OUTPUT: output}


class CorrelatePairsAlgorithm(SurfaceMotionAlgorithm):
    PAIRS = "PAIRS"
    OVERWRITE = "OVERWRITE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"
    N_FAILED = "N_FAILED"

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
            "interrupted batch resumes. A pair that fails is reported and the others continue.\n\n"
            + CONVENTIONS_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.PAIRS, self.tr("Pair table (layer or CSV with ref, sec columns)"), [QgsProcessing.TypeVector]))
        add_correlation_parameters(self)
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, self.tr("Overwrite existing outputs"), False))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, self.tr("Disparity rasters")))
        self.addOutput(QgsProcessingOutputNumber(self.N_FAILED, self.tr("Number of failed pairs")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        table = self.read_pair_source(parameters, context)
        folder = prepare_output_folder(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        outcomes = run_core(correlate_pair_table, feedback, table, folder,
                            overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
                            log=feedback.pushInfo, **correlation_settings(self, parameters, context))
        outputs = []
        for outcome in outcomes:
            if outcome.status == "failed":
                feedback.reportError(self.tr("Pair {} / {} failed: {}").format(
                    outcome.ref, outcome.sec, outcome.message), False)
                continue
            write_sidecar_style(outcome.output, DISPARITY_STYLE)
            outputs.append(outcome.output)
            load_disparity_on_completion(context, outcome.output, self.OUTPUT_LAYERS)
        n_failed = sum(outcome.status == "failed" for outcome in outcomes)
        if outcomes and n_failed == len(outcomes):
            raise QgsProcessingException(self.tr(
                "All {} pairs failed; the first error was: {}").format(n_failed, outcomes[0].message))
        return {self.OUTPUT_FOLDER: folder, self.OUTPUT_LAYERS: outputs, self.N_FAILED: n_failed}

    def read_pair_source(self, parameters, context) -> pd.DataFrame:
        """Pair table rows as a DataFrame (columns as in the layer)."""
        source = self.parameterAsSource(parameters, self.PAIRS, context)
        if source is None:
            raise QgsProcessingException(self.tr("The pair table could not be read."))
        names = source.fields().names()
        if "ref" not in names or "sec" not in names:
            raise QgsProcessingException(self.tr(
                "The pair table needs columns 'ref' and 'sec' (raster paths); it has: {}.").format(
                    ", ".join(names)))
        rows = [dict(zip(names, feature.attributes())) for feature in source.getFeatures()]
        table = pd.DataFrame(rows, columns=names)
        base_dir = table_folder(parameters.get(self.PAIRS))
        for column in ("ref", "sec"):
            table[column] = [path if os.path.isabs(path) else os.path.join(base_dir, path)
                             for path in table[column].astype(str)]
        return table
