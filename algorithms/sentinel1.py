"""Sentinel-1 without SNAP: s1grdtoard, s1timeseries, s1mtspeckle, s1timescan, s1animation, s1mosaic (REFERENCE §9)."""
from typing import Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.sentinel1.ard import PRODUCT_TYPES
from ..core.sentinel1.common import OUTPUT_TYPES
from ..core.sentinel1.naming import FROM_FILE_NAMES, POLARISATION_SOURCES, POLARISATIONS
from ..core.sentinel1.speckle import mt_speckle_filter
from ..core.sentinel1.timescan import DEFAULT_METRICS, DEFAULT_OUTLIER_K, METRIC_CHOICES, timescan
from ..core.sentinel1.timeseries import build_time_series
from ..core.sentinel1.units import UNITS
from .base import (MapGroup, SurfaceMotionAlgorithm, enum_parameter, enum_value, enum_values, layer_label,
                   layer_paths, load_on_completion, output_folder_for, run_core)

STACK_HELP = (
    "Stack input: the time-series VRT of 'Sentinel-1 time series' (band descriptions = dates) or single-date "
    "rasters (layers and/or a folder) whose names contain the date (YYYYMMDDTHHMMSS, YYYY-MM-DD, YYYYMMDD or "
    "OST .YYMMDD.) and one polarisation (VV, VH, HH or HV), all on one grid. Integer rasters are read through "
    "their GDAL scale/offset with 0 = nodata; in linear power an exact 0 is nodata and negatives are floored "
    "at 1e-5 (−50 dB).")

#: Tooltips of the stack inputs shared by the Sentinel-1 stack algorithms.
STACK_PARAMETER_HELP = {
    "INPUT": "The time-series VRT of 'Sentinel-1 time series', or single-date rasters whose names hold the "
             "date and the polarisation.",
    "FOLDER": "A folder of single-date rasters (.tif, .tiff, .vrt) whose names hold the date and the "
              "polarisation; added to the layers.",
    "UNIT": "Unit of the input values: dB (10·log10 of the power) or linear power (γ⁰/σ⁰).",
    "OUTPUT_TYPE": "float32 (NaN nodata), or uint8 / uint16 scaled with GDAL scale/offset (0 = nodata) for "
                   "smaller files.",
    "OUTPUT_FOLDER": "Folder of the output rasters and their VRT.",
}


#: Largest pixel size a RESOLUTION may ask for (CRS units: 100 km, or degrees in a geographic CRS).
MAX_PIXEL_SIZE = 100000.0


def add_stack_inputs(algorithm, layers_label: str) -> None:
    algorithm.addParameter(QgsProcessingParameterMultipleLayers(
        "INPUT", algorithm.tr(layers_label), QgsProcessing.TypeRaster, optional=True))
    algorithm.addParameter(QgsProcessingParameterFile(
        "FOLDER", algorithm.tr("…or a folder of single-date rasters (.tif, .tiff, .vrt)"),
        behavior=QgsProcessingParameterFile.Folder, optional=True))


def stack_inputs(algorithm, parameters, context) -> list:
    paths = layer_paths(parameters, "INPUT", context)
    folder = algorithm.parameterAsFile(parameters, "FOLDER", context)
    if folder:
        paths.append(folder)
    if not paths:
        raise QgsProcessingException(algorithm.tr("Give input rasters or a folder of single-date rasters."))
    return paths


def add_unit_parameter(algorithm, description: str, default: str = "db") -> None:
    algorithm.addParameter(enum_parameter(algorithm, "UNIT", description, UNITS, default))


def load_vrt(context, vrt: str, output_name: str, style: str, group: Optional[MapGroup] = None) -> None:
    """Load a VRT written by the core (its sidecar style included) on completion."""
    load_on_completion(context, vrt, None, output_name, style, group=group)


class S1TimeSeriesAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"
    PARAMETER_HELP = {
        **STACK_PARAMETER_HELP,
        "INPUT": "Single-date analysis-ready backscatter rasters (any source) whose names hold the date and the "
                 "polarisation.",
        "LS_MASKS": "Layover/shadow masks (nonzero = layover or shadow); files named *lsmask*, *ls_mask* or "
                    "*layover* among the inputs are used too.",
        "APPLY_LS_MASK": "Set layover and shadow pixels to nodata.",
        "TO_DB": "Write 10·log10 of the power (dB); unticked = linear power.",
        "POLARISATION": "Polarisation of inputs whose names carry none; 'from file names' refuses such inputs.",
        "OUTPUT_FOLDER": "Folder of the per-date rasters and the Timeseries.{POL}.vrt of each polarisation.",
    }

    def name(self):
        return "s1timeseries"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 time series (stack ARD)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Builds one stack per polarisation from single-date analysis-ready backscatter GeoTIFFs of any "
            "source ('Sentinel-1 GRD to analysis-ready backscatter', OST/SNAP, sarsen, ASF HyP3 RTC, OPERA "
            "RTC-S1, Earth Engine). Dates and polarisations come from the file names (YYYYMMDDTHHMMSS, "
            "YYYY-MM-DD, YYYYMMDD or OST .YYMMDD.; VV/VH/HH/HV). All inputs must share one CRS.\n"
            "Grid: the first date's pixel grid cropped to the intersection of all footprints; other dates are "
            "resampled bilinearly onto it. Pixels not valid at every date of every polarisation become nodata.\n"
            "Layover/shadow: files whose name contains lsmask, ls_mask or layover (or the masks given) are "
            "unioned (nonzero = layover or shadow) and removed when asked.\n"
            "Input unit: linear power (exact 0 = nodata, negatives floored at 1e-5) or dB = 10·log10(power); a "
            "stack whose values contradict the unit (negative as linear, above 10 as dB) is refused. "
            "Integer output maps −30…5 dB to DN 1…255 (uint8) or 1…65535 (uint16), 0 = nodata, with GDAL "
            "scale/offset so QGIS shows dB.\n"
            "Outputs per polarisation: NN.{YYYYMMDD}.{POL}.tif (NaN nodata for float) and "
            "Timeseries.{POL}.vrt (band k = date k, band descriptions = acquisition times, UTC).")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        add_stack_inputs(self, "Single-date ARD backscatter rasters")
        add_unit_parameter(self, "Unit of the inputs", "linear")
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "LS_MASKS", self.tr("Layover/shadow masks (nonzero = layover or shadow)"), QgsProcessing.TypeRaster,
            optional=True))
        self.addParameter(QgsProcessingParameterBoolean("APPLY_LS_MASK", self.tr("Remove layover/shadow"), True))
        self.addParameter(QgsProcessingParameterBoolean("TO_DB", self.tr("Write dB (else linear power)"), True))
        self.addParameter(enum_parameter(self, "OUTPUT_TYPE", "Output data type", OUTPUT_TYPES, "float32"))
        self.addParameter(enum_parameter(self, "POLARISATION", "Polarisation of inputs without one in their name",
                                         POLARISATION_SOURCES, FROM_FILE_NAMES))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_VRTS", self.tr("Time-series VRTs (one per polarisation)")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", self.tr("Time-series rasters")))
        for pol in POLARISATIONS:
            self.addOutput(QgsProcessingOutputRasterLayer(f"{pol}_VRT", self.tr("{} time series (VRT)").format(pol)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        inputs = stack_inputs(self, parameters, context)
        with output_folder_for(self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                               feedback=feedback) as folder:
            results = run_core(
                build_time_series, feedback, inputs, folder,
                unit=enum_value(self, parameters, "UNIT", context, UNITS),
                ls_masks=layer_paths(parameters, "LS_MASKS", context),
                apply_ls_mask=self.parameterAsBool(parameters, "APPLY_LS_MASK", context),
                to_db=self.parameterAsBool(parameters, "TO_DB", context),
                output_dtype=enum_value(self, parameters, "OUTPUT_TYPE", context, OUTPUT_TYPES),
                polarisation=enum_value(self, parameters, "POLARISATION", context, POLARISATION_SOURCES))
        outputs = {"OUTPUT_FOLDER": folder, "OUTPUT_VRTS": [], "OUTPUT_LAYERS": []}
        for pol in POLARISATIONS:
            outputs[f"{pol}_VRT"] = None
        group = MapGroup(self, [result["vrt"] for result in results.values()])
        for pol, result in results.items():
            feedback.pushInfo(self.tr("{}: {} dates {} … {}").format(
                pol, len(result["dates"]), result["dates"][0], result["dates"][-1]))
            load_vrt(context, result["vrt"], "OUTPUT_VRTS", result["style"], group)
            outputs["OUTPUT_VRTS"].append(result["vrt"])
            outputs["OUTPUT_LAYERS"].extend(result["paths"])
            outputs[f"{pol}_VRT"] = result["vrt"]
        return outputs


class S1MtSpeckleAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"
    PARAMETER_HELP = {
        **STACK_PARAMETER_HELP,
        "WINDOW": "Side of the square boxcar window of the local means, in pixels (odd).",
    }

    def name(self):
        return "s1mtspeckle"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 multi-temporal speckle filter (Quegan)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Quegan-type multi-temporal speckle filter of one co-registered stack (one track, one "
            "polarisation): J_k = E[I_k] / N · Σ_i I_i / E[I_i], in linear power, with E[·] a NaN-aware "
            "boxcar mean over the window (default 7×7 pixels) and N the valid dates of the pixel. It keeps the "
            "mean backscatter of every date and divides the speckle variance of homogeneous areas by up to N, "
            "with less blurring than a single-date filter; changes on one date are kept.\n"
            "Output: the time-series format (NN.{YYYYMMDD}.{POL}.tif and Timeseries.{POL}.vrt, float32, NaN "
            "nodata) in the input unit.\n" + STACK_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        add_stack_inputs(self, "Time-series VRT or single-date rasters")
        add_unit_parameter(self, "Unit of the stack")
        self.addParameter(QgsProcessingParameterNumber(
            "WINDOW", self.tr("Window size (odd, pixels)"), QgsProcessingParameterNumber.Integer, 7, minValue=1,
            maxValue=51))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_VRT", self.tr("Filtered time series (VRT)")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", self.tr("Filtered rasters")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        inputs = stack_inputs(self, parameters, context)
        window = self.parameterAsInt(parameters, "WINDOW", context)
        if window % 2 == 0:
            raise QgsProcessingException(self.tr("The window size must be odd (e.g. 5, 7, 9)."))
        with output_folder_for(self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                               feedback=feedback) as folder:
            result = run_core(mt_speckle_filter, feedback, inputs, folder,
                              unit=enum_value(self, parameters, "UNIT", context, UNITS), window=window)
        load_vrt(context, result["vrt"], "OUTPUT_VRT", result["style"])
        return {"OUTPUT_FOLDER": folder, "OUTPUT_VRT": result["vrt"], "OUTPUT_LAYERS": result["paths"]}


class S1TimescanAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"
    PARAMETER_HELP = {
        **STACK_PARAMETER_HELP,
        "METRICS": "Metrics written: levels in dB (avg, median, min, max, percentiles), spread (std, std_db, cov, "
                   "pdiff), count, and the harmonic fit (amplitude, phase, trend, model_mean, residuals).",
        "PERCENTILES": "Percentiles (0-100) written with the percentiles metric and used by pdiff, "
                       "comma-separated.",
        "REMOVE_OUTLIERS": "Leave outlying dates out of every metric, per pixel, where at least 5 dates are valid.",
        "OUTLIER_K": "Threshold k of the outlier rule: dates farther than k robust standard deviations "
                     "(1.4826·MAD, in dB) from the per-pixel median are dropped.",
        "OUTPUT_FOLDER": "Folder of the metric rasters and Timescan.{POL}.vrt.",
    }

    def name(self):
        return "s1timescan"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 timescan (multi-temporal metrics)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Per-pixel statistics of a backscatter stack (one track, one polarisation), block by block, "
            "computed in linear power: avg, median, min, max and percentiles written in dB; std in linear "
            "power; std_db = std of the dB values; cov = std/avg; pdiff = p_high − p_low in dB; count = "
            "dates used.\n"
            "Outlier removal (on by default, where at least 5 dates are valid): drop dates with |x − median| > "
            "k·σ in dB, σ = 1.4826·MAD (at least 0.1 dB), k = the outlier threshold (default 6): a clean stack "
            "keeps all its dates, spikes and drop-outs go; every metric uses the kept dates.\n"
            "Harmonics (in dB, at least 6 kept dates): y(t) = trend·(t − t̄) + c·cos 2πt + s·sin 2πt + "
            "model_mean, t in years of 365.25 days; amplitude = √(c² + s²) dB, phase = atan2(s, c) in radians, "
            "trend in dB per year, model_mean in dB, residuals = RMS misfit in dB.\n"
            "Integer output: DN 1…max, 0 = nodata, with GDAL scale/offset giving the physical values.\n"
            "Outputs: NN.{POL}.{metric}.tif per metric and Timescan.{POL}.vrt (band descriptions = metrics).\n"
            + STACK_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        add_stack_inputs(self, "Time-series VRT or single-date rasters")
        add_unit_parameter(self, "Unit of the stack")
        self.addParameter(enum_parameter(self, "METRICS", "Metrics", METRIC_CHOICES, allowMultiple=True,
                                         defaultValue=[METRIC_CHOICES.index(m) for m in DEFAULT_METRICS]))
        self.addParameter(QgsProcessingParameterString(
            "PERCENTILES", self.tr("Percentiles (comma-separated, 0-100)"), "5, 95"))
        self.addParameter(QgsProcessingParameterBoolean(
            "REMOVE_OUTLIERS", self.tr("Remove outliers (|dB − median| > k·1.4826·MAD)"), True))
        self.addParameter(QgsProcessingParameterNumber(
            "OUTLIER_K", self.tr("Outlier threshold k (× 1.4826·MAD, dB)"), QgsProcessingParameterNumber.Double,
            DEFAULT_OUTLIER_K, minValue=1.0, maxValue=20.0))
        self.addParameter(enum_parameter(self, "OUTPUT_TYPE", "Output data type", OUTPUT_TYPES, "float32"))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_VRT", self.tr("Timescan (VRT, one band per metric)")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", self.tr("Timescan metric rasters")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        inputs = stack_inputs(self, parameters, context)
        # an unset METRICS means its default (enum_values answers [] for any unset multiple enum)
        metrics = (list(DEFAULT_METRICS) if parameters.get("METRICS") is None
                   else enum_values(self, parameters, "METRICS", context, METRIC_CHOICES))
        if not metrics:
            raise QgsProcessingException(self.tr("Choose at least one metric."))
        text = self.parameterAsString(parameters, "PERCENTILES", context)
        try:
            percentiles = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise QgsProcessingException(self.tr(
                "Percentiles must be numbers separated by commas, e.g. '5, 95' (got '{}').").format(text))
        with output_folder_for(self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                               feedback=feedback) as folder:
            result = run_core(
                timescan, feedback, inputs, folder, metrics=metrics, percentiles=percentiles,
                unit=enum_value(self, parameters, "UNIT", context, UNITS),
                remove_outliers=self.parameterAsBool(parameters, "REMOVE_OUTLIERS", context),
                outlier_k=self.parameterAsDouble(parameters, "OUTLIER_K", context),
                output_dtype=enum_value(self, parameters, "OUTPUT_TYPE", context, OUTPUT_TYPES))
        group = MapGroup(self, result["paths"])
        for name, path, style in zip(result["metrics"], result["paths"], result["styles"]):
            load_on_completion(context, path, f"{result['polarisation']} {name}", "OUTPUT_LAYERS", style,
                               group=group)
        feedback.pushInfo(self.tr("{} metrics from {} dates").format(len(result["metrics"]), len(result["dates"])))
        return {"OUTPUT_FOLDER": folder, "OUTPUT_VRT": result["vrt"], "OUTPUT_LAYERS": result["paths"]}


class S1AnimationAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"
    PARAMETER_HELP = {
        **STACK_PARAMETER_HELP,
        "INPUT": "The co-polarised (VV or HH) stack: a time-series VRT or single-date rasters.",
        "CROSS": "The cross-polarised (VH or HV) stack of the same dates, for colour frames; without it the "
                 "frames are grey.",
        "MAX_SIZE": "Longer side of the frames in pixels; the stack is averaged down to it.",
        "FRAME_MS": "How long each frame is shown, in milliseconds.",
        "SHOW_DATES": "Write the date (YYYY-MM-DD, UTC) at the top left of each frame.",
        "OUTPUT": "The animated GIF file.",
    }

    def name(self):
        return "s1animation"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 time-series animation (GIF)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Output: an animated GIF of a time series, one frame per date with the date (YYYY-MM-DD, UTC) "
            "burnt in at the top left, looping. With a co- (VV or HH) and a cross-polarised (VH or HV) stack: "
            "R = co-pol dB "
            "stretched −20…0, G = cross-pol dB −25…−5, B = co − cross (ratio in dB) 1…15; dates are paired by "
            "UTC day. With one stack: grey, −25…0 dB. No data is black. Reads are averaged down so the longer "
            "side has at most the maximum frame size in pixels.\n" + STACK_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", self.tr("Co-polarised stack (VV/HH: time-series VRT or date rasters)"), QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "CROSS", self.tr("Cross-polarised stack (VH/HV)"), QgsProcessing.TypeRaster, optional=True))
        add_unit_parameter(self, "Unit of the stacks")
        self.addParameter(QgsProcessingParameterNumber(
            "MAX_SIZE", self.tr("Maximum frame size (pixels, longer side)"), QgsProcessingParameterNumber.Integer,
            800, minValue=16, maxValue=8000))
        self.addParameter(QgsProcessingParameterNumber(
            "FRAME_MS", self.tr("Frame duration (milliseconds)"), QgsProcessingParameterNumber.Integer, 700,
            minValue=20, maxValue=60000))
        self.addParameter(QgsProcessingParameterBoolean("SHOW_DATES", self.tr("Burn in the dates"), True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", self.tr("Animation"), self.tr("GIF files (*.gif)")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        from ..core.sentinel1.animation import make_animation

        co = layer_paths(parameters, "INPUT", context)
        if not co:
            raise QgsProcessingException(self.tr("Give the co-polarised stack."))
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        result = run_core(
            make_animation, feedback, co, output, cross_inputs=layer_paths(parameters, "CROSS", context),
            unit=enum_value(self, parameters, "UNIT", context, UNITS),
            max_size=self.parameterAsInt(parameters, "MAX_SIZE", context),
            frame_ms=self.parameterAsInt(parameters, "FRAME_MS", context),
            show_dates=self.parameterAsBool(parameters, "SHOW_DATES", context))
        feedback.pushInfo(self.tr("{} frames of {}×{} pixels").format(
            len(result["dates"]), result["size"][1], result["size"][0]))
        return {"OUTPUT": output}


class S1MosaicAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"
    PARAMETER_HELP = {
        **STACK_PARAMETER_HELP,
        "INPUT": "The time-series or timescan VRTs (or rasters) of the tracks to mosaic.",
        "UNIT": "Unit of the time-series values, dB or linear power; blending is done in linear power.",
        "HARMONISE": "Shift each track by a constant dB offset so that overlaps agree (dB levels only).",
        "FEATHER": "Width of the blend at track edges, in output pixels; 0 = no feathering.",
        "DATE_WINDOW": "Acquisitions of different tracks within this many days of each other form one mosaic.",
        "CRS": "CRS of the mosaic; empty = the first input's.",
        "RESOLUTION": "Output pixel size in units of the CRS; 0 = the first input's.",
        "OUTPUT_FOLDER": "Folder of the mosaic rasters and their VRT.",
    }

    def name(self):
        return "s1mosaic"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 mosaic of tracks (time series or timescans)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Mosaics the time series or timescans of several tracks with GDAL and numpy (no Orfeo ToolBox).\n"
            "Grid: CRS and pixel size of the first input unless given, union extent; inputs are warped "
            "bilinearly with NaN nodata. Feathering: weight = distance (pixels) to the nearest nodata pixel, "
            "capped at the feather width; values are blended as Σw·x/Σw, in linear power for dB levels (time "
            "series in dB; timescan avg, max, min, median, percentiles, model_mean), as they are for other "
            "metrics.\n"
            "Harmonisation (dB levels only): the mean dB difference on each overlap of at least 50 pixels gives "
            "per-track offsets (least squares, summing to 0), added before blending.\n"
            "Outputs for time series (band descriptions or names are dates): the acquisitions of all tracks "
            "within the date window of its first date form one mosaic dated by that date: "
            "NN.{YYYYMMDD}.{POL}.mosaic.tif and Timeseries.{POL}.mosaic.vrt. For timescans: one mosaic per "
            "metric present in all inputs: NN.mosaic.{metric}.tif and Timescan.mosaic.vrt.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", self.tr("Time series or timescans of the tracks (VRTs or rasters)"), QgsProcessing.TypeRaster))
        add_unit_parameter(self, "Unit of time-series values")
        self.addParameter(QgsProcessingParameterBoolean(
            "HARMONISE", self.tr("Harmonise radiometry on overlaps"), True))
        self.addParameter(QgsProcessingParameterNumber(
            "FEATHER", self.tr("Feather width (pixels)"), QgsProcessingParameterNumber.Double, 50.0, minValue=0.0,
            maxValue=10000.0))
        self.addParameter(QgsProcessingParameterNumber(
            "DATE_WINDOW", self.tr("Date window for time series (days)"), QgsProcessingParameterNumber.Double, 6.0,
            minValue=0.0, maxValue=366.0))
        self.addParameter(QgsProcessingParameterCrs("CRS", self.tr("Output CRS (default: first input)"),
                                                    optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "RESOLUTION", self.tr("Pixel size in CRS units (0 = first input's)"), QgsProcessingParameterNumber.Double,
            0.0, minValue=0.0, maxValue=MAX_PIXEL_SIZE))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_VRT", self.tr("Mosaic (VRT)")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", self.tr("Mosaic rasters")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        from ..core.sentinel1.mosaic import mosaic

        inputs = layer_paths(parameters, "INPUT", context)
        crs = self.parameterAsCrs(parameters, "CRS", context)
        with output_folder_for(self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                               feedback=feedback) as folder:
            result = run_core(
                mosaic, feedback, inputs, folder, unit=enum_value(self, parameters, "UNIT", context, UNITS),
                harmonise=self.parameterAsBool(parameters, "HARMONISE", context),
                feather_px=self.parameterAsDouble(parameters, "FEATHER", context),
                date_window_days=self.parameterAsDouble(parameters, "DATE_WINDOW", context),
                crs=crs.toWkt() if crs.isValid() else None,
                resolution=self.parameterAsDouble(parameters, "RESOLUTION", context) or None)
        for name, offsets in result["offsets"].items():
            if any(offsets):
                feedback.pushInfo(self.tr("{}: harmonisation offsets (dB) {}").format(name, offsets))
        if result["kind"] == "timescan":
            group = MapGroup(self, result["paths"])
            for name, path, style in zip(result["names"], result["paths"], result["styles"]):
                load_on_completion(context, path, f"mosaic {name}", "OUTPUT_LAYERS", style, group=group)
        else:
            load_vrt(context, result["vrt"], "OUTPUT_VRT", result["styles"][0])
        return {"OUTPUT_FOLDER": folder, "OUTPUT_VRT": result["vrt"], "OUTPUT_LAYERS": result["paths"]}


class S1GrdToArdAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"
    PARAMETER_HELP = {
        "INPUT": "The GRD product as its .zip or its manifest.safe file.",
        "SAFE_FOLDER": "The GRD product as an unpacked .SAFE folder (instead of the file above).",
        "DEM": "Elevation in metres (above the ellipsoid or the geoid) covering the scene; its grid is the "
               "output grid unless CRS or pixel size are given.",
        "PRODUCT_TYPE": "GTC sigma0 or gamma0 (ellipsoid incidence angle), or RTC gamma0 with terrain "
                        "flattening (Small 2011).",
        "POLARISATIONS": "Polarisations processed; none chosen = all in the product.",
        "AOI": "Extent of the output (any CRS); empty = the DEM extent. Memory grows with it.",
        "CRS": "CRS of the output; empty = the DEM's.",
        "RESOLUTION": "Output pixel size in units of the CRS; 0 = the DEM's.",
        "LS_MASK": "Also write the layover/shadow mask (0 none, 1 layover, 2 shadow).",
        "OUTPUT_FOLDER": "Folder of the backscatter rasters and the mask.",
    }

    def name(self):
        return "s1grdtoard"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 GRD to analysis-ready backscatter (sarsen, no SNAP)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Terrain-corrected backscatter of one Sentinel-1 GRD product (.SAFE folder, its manifest.safe, or "
            "the .zip) with sarsen instead of ESA SNAP. sarsen runs in its own Python environment (see the "
            "README's installation section), set in the provider setting 'Python interpreter of the sarsen "
            "virtual environment'.\n"
            "Output grid = the DEM grid, optionally warped: CRS and pixel size default to the DEM's, the area "
            "of interest to the DEM extent. Memory grows with the area, not the scene: crop to what you need.\n"
            "Products (linear power, float32, NaN nodata outside the swath): GTC σ⁰ = β⁰·sin θ_e, GTC γ⁰ = "
            "β⁰·tan θ_e (θ_e = ellipsoid incidence angle), or RTC γ⁰ with terrain flattening (Small 2011). No "
            "thermal-noise removal. Files: {SAFE id}_{product}_{POL}.tif (product GTCsigma0, GTCgamma0 or "
            "RTCgamma0) and the layover/shadow mask {SAFE id}_lsmask.tif (0 none, 1 layover, 2 shadow; local "
            "slope rule). The names carry the date, so the outputs feed 'Sentinel-1 time series' directly "
            "(input unit linear).")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFile(
            "INPUT", self.tr("GRD product (.zip or manifest.safe)"), optional=True,
            fileFilter="Sentinel-1 GRD (*.zip *.ZIP manifest.safe)"))
        self.addParameter(QgsProcessingParameterFile(
            "SAFE_FOLDER", self.tr("…or the .SAFE folder"), behavior=QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("DEM", self.tr("DEM (heights above the ellipsoid or "
                                                                           "geoid, metres)")))
        self.addParameter(enum_parameter(self, "PRODUCT_TYPE", "Product", PRODUCT_TYPES, "rtc_gamma0"))
        self.addParameter(enum_parameter(self, "POLARISATIONS", "Polarisations (none = all in the product)",
                                         POLARISATIONS, allowMultiple=True, optional=True))
        self.addParameter(QgsProcessingParameterExtent("AOI", self.tr("Area of interest"), optional=True))
        self.addParameter(QgsProcessingParameterCrs("CRS", self.tr("Output CRS (default: the DEM's)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "RESOLUTION", self.tr("Pixel size in CRS units (0 = the DEM's)"), QgsProcessingParameterNumber.Double,
            0.0, minValue=0.0, maxValue=MAX_PIXEL_SIZE))
        self.addParameter(QgsProcessingParameterBoolean("LS_MASK", self.tr("Write the layover/shadow mask"), True))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", self.tr("Backscatter rasters")))
        self.addOutput(QgsProcessingOutputRasterLayer("LS_MASK_LAYER", self.tr("Layover/shadow mask")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        from ..core.sentinel1.ard import grd_to_ard
        from .settings import setting

        product = (self.parameterAsFile(parameters, "INPUT", context)
                   or self.parameterAsFile(parameters, "SAFE_FOLDER", context))
        if not product:
            raise QgsProcessingException(self.tr("Give the GRD product (.zip, manifest.safe or .SAFE folder)."))
        dem = self.parameterAsRasterLayer(parameters, "DEM", context)
        crs = self.parameterAsCrs(parameters, "CRS", context)
        target = crs if crs.isValid() else dem.crs()
        bounds = None
        if parameters.get("AOI"):
            extent = self.parameterAsExtent(parameters, "AOI", context, target)
            if not extent.isEmpty():
                bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        polarisations = enum_values(self, parameters, "POLARISATIONS", context, POLARISATIONS)
        python = setting("SURFACEMOTION_SARSEN_PYTHON")
        feedback.pushInfo(self.tr("sarsen interpreter: {}").format(python))
        with output_folder_for(self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                               feedback=feedback) as folder:
            result = run_core(
                grd_to_ard, feedback, product, dem.source(), folder,
                product_type=enum_value(self, parameters, "PRODUCT_TYPE", context, PRODUCT_TYPES),
                polarisations=polarisations or None, bounds=bounds, crs=crs.toWkt() if crs.isValid() else None,
                resolution=self.parameterAsDouble(parameters, "RESOLUTION", context) or None,
                ls_mask=self.parameterAsBool(parameters, "LS_MASK", context), python=python)
        paths = [result["paths"][pol] for pol in result["polarisations"]]
        group = MapGroup(self, paths[:1])
        for pol, path in zip(result["polarisations"], paths):
            load_on_completion(context, path, layer_label(path, pol), "OUTPUT_LAYERS", result["style"], group=group)
        if result["ls_mask"]:
            load_on_completion(context, result["ls_mask"], "layover/shadow", "LS_MASK_LAYER",
                               result["ls_mask_style"], group=group)
        return {"OUTPUT_FOLDER": folder, "OUTPUT_LAYERS": paths, "LS_MASK_LAYER": result["ls_mask"]}
