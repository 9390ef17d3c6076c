"""surfacemotion:timelapse — scenes co-registered onto the reference, as an animated GIF (and MP4)."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from .base import SurfaceMotionAlgorithm, enum_parameter, enum_value, layer_paths, run_core


class TimelapseAlgorithm(SurfaceMotionAlgorithm):
    group_id = "postprocessing"
    PARAMETER_HELP = {
        "INPUT": "The scenes (e.g. the single-band outputs of 'Extract band'), dated by their names: a PlanetScope "
                 "scene id or YYYYMMDD / YYYY-MM-DD. All on one grid; the oldest is the reference.",
        "BAND": "Band of the scenes shown (1 = first).",
        "CORRECTION": "How each secondary is put onto the reference: none; the polynomial fit of polyfit "
                      "(its outputs as pairs); a constant shift = the median offset of each pair's disparity map.",
        "PAIRS": "One disparity raster per secondary, paired with the reference (oldest scene): outputs of "
                 "polyfit for the polynomial fit, any disparity rasters for the median shift.",
        "VELOCITY": "A velocity raster (its speed band, m/yr) drawn over every frame with a colour ramp.",
        "VELOCITY_MAX": "Speed (m/yr) at the red end of the colour ramp; 0 = the 98th percentile of the speeds.",
        "OPACITY": "Opacity of the velocity overlay, 0 (invisible) to 1 (opaque).",
        "MAX_SIZE": "Longer side of the frames in pixels; the scenes are averaged down to it.",
        "FRAME_MS": "How long each frame is shown, in milliseconds.",
        "SHOW_DATES": "Write the date (YYYY-MM-DD, UTC) at the top left of each frame.",
        "WRITE_MP4": "Also write an MP4 (same name, .mp4) when ffmpeg is on PATH or the imageio-ffmpeg package "
                     "is installed; without either the log says so.",
        "OUTPUT": "The animated GIF file.",
        "OUTPUT_MP4": "The MP4 file, when one was written.",
    }

    def name(self):
        return "timelapse"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Timelapse of co-registered scenes (GIF, MP4)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Output: an animated GIF of the scenes in date order, one frame per scene, the oldest being the "
            "reference. Each secondary is resampled bilinearly onto the reference grid at (x + dx, y + dy): dx, "
            "dy from the polynomial ramp that polyfit fitted to the pair (fitted without a DEM), or a constant "
            "shift, the median offset of the pair's disparity map, or none. Stable ground stays put; the motion "
            "remains visible.\n"
            "Frames are averaged down so the longer side has at most the maximum frame size, stretched with one "
            "2-98 % percentile range for all frames (grey, no data black), with the date (YYYY-MM-DD, UTC) at "
            "the top left. An optional velocity raster is drawn over them semi-transparently (blue, 0 m/yr, to "
            "red, the maximum speed). An MP4 is written too when ffmpeg is on PATH or imageio-ffmpeg is "
            "installed (optional).")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        from ..core.series.timelapse import CORRECTIONS

        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", self.tr("Scenes (dated by their names)"), QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterNumber(
            "BAND", self.tr("Band"), QgsProcessingParameterNumber.Integer, 1, minValue=1, maxValue=100))
        self.addParameter(enum_parameter(self, "CORRECTION", "Co-registration of the secondaries", CORRECTIONS,
                                         "none"))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "PAIRS", self.tr("Pairs with the reference (disparity rasters)"), QgsProcessing.TypeRaster,
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "VELOCITY", self.tr("Velocity overlay (velocity raster)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "VELOCITY_MAX", self.tr("Speed at the top of the colour ramp (m/yr, 0 = automatic)"),
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=1e6))
        self.addParameter(QgsProcessingParameterNumber(
            "OPACITY", self.tr("Opacity of the velocity overlay"), QgsProcessingParameterNumber.Double, 0.5,
            minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            "MAX_SIZE", self.tr("Maximum frame size (pixels, longer side)"), QgsProcessingParameterNumber.Integer,
            1600, minValue=16, maxValue=8000))
        self.addParameter(QgsProcessingParameterNumber(
            "FRAME_MS", self.tr("Frame duration (milliseconds)"), QgsProcessingParameterNumber.Integer, 700,
            minValue=20, maxValue=60000))
        self.addParameter(QgsProcessingParameterBoolean("SHOW_DATES", self.tr("Burn in the dates"), True))
        self.addParameter(QgsProcessingParameterBoolean("WRITE_MP4", self.tr("Also write an MP4 (needs ffmpeg)"), True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", self.tr("Timelapse"), self.tr("GIF files (*.gif)")))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_MP4", self.tr("Timelapse MP4")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        from ..core.series.timelapse import CORRECTIONS, make_timelapse

        scenes = layer_paths(parameters, "INPUT", context)
        if not scenes:
            raise QgsProcessingException(self.tr("Give the scenes."))
        velocity = self.parameterAsRasterLayer(parameters, "VELOCITY", context)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        result = run_core(
            make_timelapse, feedback, scenes, output, band=self.parameterAsInt(parameters, "BAND", context),
            correction=enum_value(self, parameters, "CORRECTION", context, CORRECTIONS),
            disparities=layer_paths(parameters, "PAIRS", context),
            velocity=velocity.source() if velocity is not None else None,
            velocity_max=self.parameterAsDouble(parameters, "VELOCITY_MAX", context),
            opacity=self.parameterAsDouble(parameters, "OPACITY", context),
            max_size=self.parameterAsInt(parameters, "MAX_SIZE", context),
            frame_ms=self.parameterAsInt(parameters, "FRAME_MS", context),
            show_dates=self.parameterAsBool(parameters, "SHOW_DATES", context),
            mp4=self.parameterAsBool(parameters, "WRITE_MP4", context))
        feedback.pushInfo(self.tr("{} frames of {}×{} pixels ({} … {}), stretch {:.6g} … {:.6g}").format(
            len(result["dates"]), result["size"][1], result["size"][0], result["dates"][0], result["dates"][-1],
            *result["limits"]))
        if result["velocity_max"] is not None:
            feedback.pushInfo(self.tr("Velocity overlay: 0 … {:.4g} m/yr").format(result["velocity_max"]))
        for note in result["notes"]:
            feedback.pushInfo(note)
        return {"OUTPUT": output, "OUTPUT_MP4": result["path_mp4"] or ""}
