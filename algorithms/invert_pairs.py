"""surfacemotion:invertpairs — a redundant pair network to velocity time series (REFERENCE §6.5, issue 14)."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.series.driver import QUANTITIES, WEIGHT_RESIDUALS, WEIGHTS, invert_network
from ..core.series.network import merge_networks, read_network
from .base import (MapGroup, SurfaceMotionAlgorithm, advanced, core_errors_as_processing_errors, enum_parameter,
                   enum_value, layer_paths, load_on_completion, output_folder_for, run_core)

#: Longest regular step (days) and largest λ the parameters accept.
MAX_STEP_DAYS = 3650.0
MAX_LAMBDA = 1000.0
MAX_MIN_PAIRS = 10000


class InvertPairsAlgorithm(SurfaceMotionAlgorithm):
    group_id = "postprocessing"
    PARAMETER_HELP = {
        "INPUT": "Disparity rasters of surfacemotion:correlatepair(s) or velocity rasters of "
                 "surfacemotion:velocity, all on one grid, with their dates in their tags or file names; or the _vx.tif of an "
                 "ITS_LIVE download (surfacemotion:itslivedownload without aggregation): one pair per band.",
        "PAIRS": "A CSV with a 'path' column (the pair rasters, relative to the CSV) and, for rasters without "
                 "dates (an ASP -F.tif), 'ref_date' and 'sec_date' (ISO, UTC); added to the layers.",
        "STEP_DAYS": "Length of the regular time steps in days; 0 = the steps between consecutive unique "
                     "acquisition dates.",
        "REGULARISATION": "Weight λ of the first-order smoothness (dimensionless, 0.01-10 is the useful "
                          "range); 0 = chosen by generalised cross-validation.",
        "WEIGHTS": "Residual spread: 1/σ² per pair, σ = 1.4826 MAD of the pair's residuals over the block. "
                   "Uncertainty band: (σ_ref/σ)² per pixel and pair from the pairs' uncertainty bands (m/yr; "
                   "disparity px converted with the pixel size and dt), σ_ref their median.",
        "DASK_SCHEDULER": "Address of a dask.distributed scheduler to invert the blocks on a cluster instead; "
                          "its workers must see the pair rasters by the same paths and have this plugin installed.",
        "ROBUST": "Iteratively down-weight outlying pairs per pixel (Tukey biweight, c = 4.685).",
        "MIN_PAIRS": "Pixels with fewer valid pairs than this are nodata.",
        "PREFIX": "Start of the output file names ({prefix}_speed.tif ...).",
        "OUTPUT_FOLDER": "Folder of the time-series rasters.",
    }

    def name(self):
        return "invertpairs"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Invert a pair network to velocity time series")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Inverts many pair rasters on one grid (disparity or velocity, from this plugin; an ASP -F.tif "
            "with dates from the pair table) into a velocity time series per pixel. Unknowns: the mean "
            "velocity of each time step (regular, or between consecutive acquisition dates); each pair "
            "measures the overlap-weighted mean of the steps it spans. Weighted least squares (weights from "
            "the residual spread of each pair, or from the pairs' uncertainty bands) with first-order smoothness (λ given or by generalised "
            "cross-validation), then robust reweighting (Tukey biweight, per pixel). Pixels with the same data mask "
            "share one factorisation; the grid is processed in blocks, on a Dask cluster if one is given. Pairs "
            "may be ITS_LIVE downloads (their _vx.tif: one pair per band).\n"
            "Outputs (float32, one band per step, band description = date and unit): {prefix}_velocity_east, "
            "_velocity_north and _speed (m/yr, at step centres), _displacement_east and _displacement_north "
            "(cumulative m, at step ends) and _quality (residual RMS m/yr, pairs used, uncovered steps). "
            "Steps no pair overlaps come from the smoothness only: they are listed in the log and tagged.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", self.tr("Pair rasters (disparity, velocity or an ITS_LIVE _vx.tif)"), QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "PAIRS", self.tr("…or a pair table (CSV with path, ref_date, sec_date)"), extension="csv",
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "STEP_DAYS", self.tr("Time step (days; 0 = between acquisition dates)"),
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=MAX_STEP_DAYS))
        self.addParameter(QgsProcessingParameterNumber(
            "REGULARISATION", self.tr("Regularisation λ (0 = generalised cross-validation)"),
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=MAX_LAMBDA))
        self.addParameter(enum_parameter(self, "WEIGHTS", "Weights of the observations", WEIGHTS,
                                         WEIGHT_RESIDUALS))
        self.addParameter(QgsProcessingParameterBoolean(
            "ROBUST", self.tr("Robust reweighting of outlying pairs"), True))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_PAIRS", self.tr("Minimum number of valid pairs per pixel"),
            QgsProcessingParameterNumber.Integer, 3, minValue=1, maxValue=MAX_MIN_PAIRS))
        self.addParameter(QgsProcessingParameterString("PREFIX", self.tr("Output file name prefix"), "series"))
        self.addParameter(advanced(QgsProcessingParameterString(
            "DASK_SCHEDULER", self.tr("Dask scheduler address (e.g. tcp://host:8786)"), optional=True)))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", self.tr("Time-series rasters")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        inputs = layer_paths(parameters, "INPUT", context)
        table = self.parameterAsFile(parameters, "PAIRS", context)
        if not inputs and not table:
            raise QgsProcessingException(self.tr(
                "No pair raster was given: choose the pair rasters (INPUT) or a pair table (PAIRS)."))
        prefix = self.parameterAsString(parameters, "PREFIX", context).strip()
        if not prefix or any(char in prefix for char in '/\\:*?"<>|'):
            raise QgsProcessingException(self.tr(
                "The output file name prefix '{}' is empty or holds a character not allowed in file names."
            ).format(prefix))
        with core_errors_as_processing_errors():
            pairs = merge_networks(read_network(inputs) if inputs else [], read_network(table) if table else [])
        feedback.pushInfo(self.tr("{} pairs, {} … {}").format(
            len(pairs), min(p.start for p in pairs).date(), max(p.end for p in pairs).date()))
        lam = self.parameterAsDouble(parameters, "REGULARISATION", context)
        with output_folder_for(self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                               feedback=feedback) as folder:
            paths = run_core(invert_network, feedback, pairs, folder, prefix=prefix,
                             step_days=self.parameterAsDouble(parameters, "STEP_DAYS", context),
                             lam=lam or None, robust=self.parameterAsBool(parameters, "ROBUST", context),
                             min_pairs=self.parameterAsInt(parameters, "MIN_PAIRS", context),
                             weights=enum_value(self, parameters, "WEIGHTS", context, WEIGHTS),
                             scheduler=self.parameterAsString(parameters, "DASK_SCHEDULER", context).strip() or None,
                             log=feedback.pushInfo)
        order = ["speed"] + [kind for kind, _, _ in QUANTITIES if kind != "speed"] + ["quality"]
        styles = {kind: style for kind, _, style in QUANTITIES}
        styles["quality"] = "velocity_speed"
        group = MapGroup(self, [paths["speed"]])
        for kind in order:
            load_on_completion(context, paths[kind], f"{prefix} {kind.replace('_', ' ')}", "OUTPUT_LAYERS",
                               styles[kind], group=group)
        return {"OUTPUT_FOLDER": folder, "OUTPUT_LAYERS": [paths[kind] for kind in order]}

