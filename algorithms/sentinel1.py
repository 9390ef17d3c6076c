"""Sentinel-1 without SNAP: s1grdtoard, s1timeseries, s1mtspeckle, s1timescan, s1animation, s1mosaic (REFERENCE §9)."""
import os

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
from .base import (SurfaceMotionAlgorithm, enum_parameter, enum_value, enum_values, layer_paths,
                   load_on_completion, output_folder_for, run_core)

STACK_HELP = (
    "Stack input: the time-series VRT of surfacemotion:s1timeseries (band descriptions = dates) or "
    "single-date rasters (layers and/or a folder) whose names contain the date (YYYYMMDDTHHMMSS, "
    "YYYY-MM-DD, YYYYMMDD or OST .YYMMDD.) and one polarisation (VV, VH, HH or HV), all on one grid. "
    "Integer rasters are read through their GDAL scale/offset with 0 = nodata; float nodata and NaN "
    "are no data; in linear power an exact 0 is no data and negatives are floored at 1e-5 (−50 dB).")


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


def load_vrt(context, vrt: str, output_name: str, style: str) -> None:
    """Load a VRT written by the core (its sidecar style included) on completion."""
    load_on_completion(context, vrt, os.path.splitext(os.path.basename(vrt))[0], output_name, style)


class S1TimeSeriesAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"

    def name(self):
        return "s1timeseries"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 time series (stack ARD)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Builds one stack per polarisation from single-date analysis-ready backscatter GeoTIFFs of any "
            "source (surfacemotion:s1grdtoard, OST/SNAP, sarsen, ASF HyP3 RTC, OPERA RTC-S1, Earth Engine).\n"
            "Dates and polarisations come from the file names (YYYYMMDDTHHMMSS, YYYY-MM-DD, YYYYMMDD or OST "
            ".YYMMDD.; VV/VH/HH/HV). All inputs must share one CRS. The grid is the first date's pixel grid "
            "cropped to the intersection of all footprints; other dates are resampled bilinearly onto it. "
            "Pixels not valid at every date of every polarisation become nodata (common valid extent).\n"
            "Layover/shadow: files whose name contains lsmask, ls_mask or layover (or the masks given) are "
            "unioned (nonzero = layover or shadow, e.g. SNAP codes 1, 2, 3) and removed when enabled.\n"
            "Input unit: linear power (exact 0 = nodata, negatives floored at 1e-5) or dB. dB = 10·log10(power). "
            "Integer output maps −30…5 dB to DN 1…255 (uint8) or 1…65535 (uint16), 0 = nodata, with GDAL "
            "scale/offset so QGIS shows dB.\n"
            "Outputs per polarisation: NN.<YYYYMMDD>.<POL>.tif (NaN nodata for float) and Timeseries.<POL>.vrt "
            "(band k = date k, band descriptions = acquisition times YYYY-MM-DDTHH:MM:SS UTC).")

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
        for pol, result in results.items():
            feedback.pushInfo(self.tr("{}: {} dates {} … {}").format(
                pol, len(result["dates"]), result["dates"][0], result["dates"][-1]))
            load_vrt(context, result["vrt"], "OUTPUT_VRTS", result["style"])
            outputs["OUTPUT_VRTS"].append(result["vrt"])
            outputs["OUTPUT_LAYERS"].extend(result["paths"])
            outputs[f"{pol}_VRT"] = result["vrt"]
        return outputs


class S1MtSpeckleAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"

    def name(self):
        return "s1mtspeckle"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 multi-temporal speckle filter (Quegan)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Quegan-type multi-temporal speckle filter of one co-registered stack (one track, one polarisation): "
            "J_k = E[I_k] / N · Σ_i I_i / E[I_i], computed in linear power, with E[·] a NaN-aware w×w boxcar mean "
            "(default 7×7) and N the valid dates of the pixel. It keeps the mean backscatter of every date and "
            "divides the speckle variance of homogeneous areas by up to N (about 1/N + (1 − 1/N)/w² of the "
            "input variance for uncorrelated single-look speckle), with less blurring than a single-date filter; "
            "changes on one date are kept.\n"
            "Output: the time-series format (NN.<YYYYMMDD>.<POL>.tif + Timeseries.<POL>.vrt, float32, NaN "
            "nodata) in the input unit.\n\n" + STACK_HELP)

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

    def name(self):
        return "s1timescan"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 timescan (multi-temporal metrics)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Per-pixel statistics of a backscatter stack (one track, one polarisation), block by block.\n"
            "Outlier removal (default on, only where ≥ 5 dates are valid): drop dates with |x − median| > k·σ "
            "in dB, σ = 1.4826·MAD (median absolute deviation from the median, at least 0.1 dB), k = 6: a clean "
            "stack keeps all its dates (avg, min and max unchanged), gross outliers (spikes, drop-outs) go; every "
            "metric, percentiles included, uses the kept dates.\n"
            "Computed in linear power: avg, median, min, max and percentiles (linear interpolation), written in "
            "dB; std (population) in linear power; std_db = std of the dB values; cov = std/avg; pdiff = "
            "p_high(dB) − p_low(dB) in dB (OST's pDiff was linear); count = dates used.\n"
            "Harmonics (≥ 6 kept dates; in dB): "
            "y(t) = trend·(t − t̄) + c·cos 2πt + s·sin 2πt + model_mean, with t "
            "= 2000 + time since 2000-01-01 00:00 UTC in years of 365.25 days (the plugin's one time scale) "
            "and t̄ = mean t of the stack. amplitude = √(c² + s²) dB; phase = atan2(s, c) in radians (−π…π): "
            "the seasonal term is amplitude·cos(2πt − phase), so its peak falls phase/2π × 365.25 days after "
            "the start of a year of this scale (2000-01-01 + k × 365.25 days, between 31 December 06:00 and 1 "
            "January 00:00 UTC; a negative phase = before it); trend in dB per year; model_mean in dB at t̄; "
            "residuals = √(SSR/n) dB.\n"
            "Integer output (DN 1…max, 0 = nodata, GDAL scale/offset = physical values): avg/max/min/median/"
            "percentiles/model_mean −30…5 dB, std 1e-5…0.2, cov 1e-5…1, std_db 0…15 dB, pdiff 0…35 dB, "
            "amplitude and trend −5…5, residuals −10…10, phase −π…π; count unscaled.\n"
            "Outputs: NN.<POL>.<metric>.tif per metric and Timescan.<POL>.vrt (band descriptions = metrics).\n\n"
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
        for name, path, style in zip(result["metrics"], result["paths"], result["styles"]):
            load_on_completion(context, path, f"{result['polarisation']} {name}", "OUTPUT_LAYERS", style)
        feedback.pushInfo(self.tr("{} metrics from {} dates").format(len(result["metrics"]), len(result["dates"])))
        return {"OUTPUT_FOLDER": folder, "OUTPUT_VRT": result["vrt"], "OUTPUT_LAYERS": result["paths"]}


class S1AnimationAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"

    def name(self):
        return "s1animation"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 time-series animation (GIF)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Animated GIF of a time series, one frame per date with the date (YYYY-MM-DD, UTC) burnt in at the "
            "top left, looping. With a co- (VV or HH) and a cross-polarised (VH or HV) stack: R = co-pol dB "
            "stretched −20…0, G = cross-pol dB −25…−5, B = co − cross (ratio in dB) 1…15; dates are paired by "
            "UTC day. With one stack: grey, −25…0 dB. No data is black. Reads are averaged down so the longer "
            "side has at most the maximum size in pixels.\n\n" + STACK_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", self.tr("Co-polarised stack (VV/HH: time-series VRT or date rasters)"), QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "CROSS", self.tr("Cross-polarised stack (VH/HV), optional"), QgsProcessing.TypeRaster, optional=True))
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

    def name(self):
        return "s1mosaic"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 mosaic of tracks (time series or timescans)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Mosaics time series or timescans of several tracks with GDAL and numpy (no Orfeo ToolBox).\n"
            "Grid: CRS and pixel size of the first input unless given, union extent; inputs are warped "
            "bilinearly with NaN nodata. Feathering: weight = distance (pixels) to the nearest no-data pixel, "
            "capped at the feather width; values are blended as Σw·x/Σw, in linear power for dB backscatter "
            "levels (time series in dB; timescan avg, max, min, median, percentiles, model_mean) and as they are "
            "for other metrics.\n"
            "Harmonisation (dB levels only): the mean dB difference on each overlap of ≥ 50 pixels gives "
            "offsets o_i minimising Σ(d_ij + o_i − o_j)² with Σo_i = 0, added before blending.\n"
            "Time series (all band descriptions or names are dates): acquisitions of all tracks within the date "
            "window of the window's first date form one mosaic (one acquisition per track), dated by that first "
            "date: NN.<YYYYMMDD>.<POL>.mosaic.tif + Timeseries.<POL>.mosaic.vrt. Timescans: one mosaic per metric "
            "present in all inputs: NN.mosaic.<metric>.tif + Timescan.mosaic.vrt.")

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
            for name, path, style in zip(result["names"], result["paths"], result["styles"]):
                load_on_completion(context, path, f"mosaic {name}", "OUTPUT_LAYERS", style)
        else:
            load_vrt(context, result["vrt"], "OUTPUT_VRT", result["styles"][0])
        return {"OUTPUT_FOLDER": folder, "OUTPUT_VRT": result["vrt"], "OUTPUT_LAYERS": result["paths"]}


class S1GrdToArdAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"

    def name(self):
        return "s1grdtoard"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 GRD to analysis-ready backscatter (sarsen, no SNAP)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Terrain-corrected backscatter of one Sentinel-1 GRD product (.SAFE folder, its manifest.safe, or "
            "the .zip) with sarsen instead of ESA SNAP. sarsen runs in its own Python environment: run `make "
            "sarsen` in the plugin folder once, or point the provider setting 'Python interpreter of the sarsen "
            "virtual environment' to a Python with sarsen installed.\n"
            "Output grid = the DEM grid after optional warping: CRS (default the DEM's), resolution (default "
            "the DEM's) and area of interest (default the DEM extent). Memory grows with the AOI size, not the "
            "scene: crop to what you need.\n"
            "Products (linear power, float32, NaN nodata outside the swath): GTC σ⁰ = β⁰·sin θ_e, GTC γ⁰ = "
            "β⁰·tan θ_e (θ_e = ellipsoid incidence angle from orbit and DEM), or RTC γ⁰ with gamma flattening "
            "(Small 2011; sarsen's 'gamma_bilinear'). No thermal-noise removal. Files: <SAFE id>_<GTCsigma0|"
            "GTCgamma0|RTCgamma0>_<POL>.tif and the layover/shadow mask <SAFE id>_lsmask.tif (0 none, 1 "
            "layover: terrain slope towards the sensor steeper than the incidence angle; 2 shadow: slope away "
            "steeper than 90° minus the incidence angle; local criterion). The file names carry the date, so the "
            "outputs feed surfacemotion:s1timeseries directly (input unit: linear).")

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
        for path in paths:
            load_on_completion(context, path, os.path.splitext(os.path.basename(path))[0], "OUTPUT_LAYERS",
                               result["style"])
        if result["ls_mask"]:
            load_on_completion(context, result["ls_mask"], "layover/shadow", "LS_MASK_LAYER",
                               result["ls_mask_style"])
        return {"OUTPUT_FOLDER": folder, "OUTPUT_LAYERS": paths, "LS_MASK_LAYER": result["ls_mask"]}
