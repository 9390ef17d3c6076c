"""surfacemotion:extractband — multi-band scenes to single-band GeoTIFFs."""
import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessing,
)

from ..core.errors import EmptyOutputError
from ..core.offsets.bands import extract_band, find_udm2_for, output_name_for
from .base import MapGroup, SurfaceMotionAlgorithm, layer_paths, load_on_completion, output_folder_for, run_core


class ExtractBandAlgorithm(SurfaceMotionAlgorithm):
    INPUT = "INPUT"
    BAND = "BAND"
    USE_UDM2 = "USE_UDM2"
    KEEP_SNOW = "KEEP_SNOW"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"

    group_id = "preparation"
    PARAMETER_HELP = {
        "INPUT": "PlanetScope (or any) multi-band scenes; each gives one single-band GeoTIFF.",
        "BAND": "1-based band number: 2 = green of 4-band PlanetScope, 4 = green of 8-band scenes.",
        "USE_UDM2": "Set pixels that the scene's UDM2 usable-data mask (found next to the scene by name) does "
                    "not flag clear to nodata: clouds, haze, shadow.",
        "KEEP_SNOW": "With the UDM2 mask: count pixels flagged snow/ice as usable (needed on glaciers and "
                     "snowfields).",
        "OUTPUT_FOLDER": "Folder of the single-band GeoTIFFs ({input stem}_b{N}.tif).",
    }

    def name(self):
        return "extractband"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Extract band (PlanetScope scenes)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Writes one band of each multi-band scene to a single-band GeoTIFF named {input stem}_b{N}.tif in "
            "the output folder (N = the band number); correlation needs single-band images.\n"
            "Band number: 1-based. Default 2 = green of 4-band PlanetScope (1 blue, 2 green, 3 red, 4 NIR); for "
            "8-band scenes green is band 4.\n"
            "UDM2 mask: the usable-data mask next to each scene ({id}_3B_udm2_clip.tif or {id}_1B_udm2.tif) is "
            "found by name, and pixels that are not clear become nodata; pixels flagged snow/ice are kept when "
            "'Keep pixels flagged snow/ice' is ticked (default), otherwise glaciers and snowfields would be "
            "erased.\n"
            "Data type, CRS, geotransform, RPC metadata and nodata are kept (nodata 0 for unsigned integers "
            "when the input declares none). A scene with no usable pixel is skipped with a message; the run "
            "fails only when no scene is usable. The outputs load on the map."
        )

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUT, self.tr("Multi-band scenes"), QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterNumber(
            self.BAND, self.tr("Band number (1-based; 2 = green in 4-band PlanetScope)"),
            QgsProcessingParameterNumber.Integer, 2, minValue=1, maxValue=1000))
        self.addParameter(QgsProcessingParameterBoolean(
            self.USE_UDM2, self.tr("Mask with the UDM2 file next to each scene (not clear -> nodata)"), False))
        self.addParameter(QgsProcessingParameterBoolean(
            self.KEEP_SNOW, self.tr("Keep pixels flagged snow/ice in UDM2 as usable"), True))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, self.tr("Single-band rasters")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        sources = layer_paths(parameters, self.INPUT, context)
        if not sources:
            raise QgsProcessingException(self.tr("No input scenes were given."))
        band = self.parameterAsInt(parameters, self.BAND, context)
        use_udm2 = self.parameterAsBool(parameters, self.USE_UDM2, context)
        keep_snow = self.parameterAsBool(parameters, self.KEEP_SNOW, context)
        udm2_paths = [find_udm2_for(src) if use_udm2 else None for src in sources]
        missing = [src for src, udm2 in zip(sources, udm2_paths) if use_udm2 and udm2 is None]
        if missing:
            raise QgsProcessingException(self.tr(
                "No UDM2 file found next to: {}. Expected e.g. <id>_3B_udm2_clip.tif in the same "
                "folder; untick 'Mask with the UDM2 file' or download the udm2 asset.").format(
                    ", ".join(missing)))

        outputs = []
        with output_folder_for(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context),
                               feedback=feedback) as folder:
            for index, (src, udm2) in enumerate(zip(sources, udm2_paths)):
                dst = os.path.join(folder, output_name_for(src, band))
                feedback.pushInfo(self.tr("{} -> {}").format(src, dst))
                share = 100.0 / len(sources)
                try:
                    run_core(extract_band, feedback, src, dst, band=band, udm2_path=udm2,
                             keep_snow=keep_snow, progress_range=(index * share, (index + 1) * share))
                except QgsProcessingException as exc:
                    if not isinstance(exc.__cause__, EmptyOutputError):
                        raise
                    feedback.reportError(self.tr("Skipped {}: {}").format(os.path.basename(src), exc), False)
                    continue  # a scene that is all cloud: the others go on
                outputs.append(dst)
            if not outputs:
                raise QgsProcessingException(self.tr(
                    "No scene has a usable pixel (all nodata, constant, or masked by their UDM2 as cloud, haze or "
                    "shadow; see the messages above): nothing was written. Use other scenes, or untick the UDM2 "
                    "mask."))
        group = MapGroup(self, outputs)
        for dst in outputs:
            load_on_completion(context, dst, None, self.OUTPUT_LAYERS, group=group)
        return {self.OUTPUT_FOLDER: folder, self.OUTPUT_LAYERS: outputs}
