"""surfacemotion:orthorectify — raw (L1B) scenes with RPCs onto a DEM, one grid for the whole job."""
import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterCrs,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ..core.errors import EmptyOutputError, check_canceled
from ..core.ortho.orthorectify import ORTHO_RESAMPLING, job_grid, orthorectify_scene
from ..core.ortho.vdatum import VERTICAL_DATUMS
from ..core.offsets.pairs import list_scenes
from .base import (MapGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors, enum_parameter, enum_value,
                   layer_paths, load_on_completion, output_folder_for, polygons_in_crs)
from .settings import setting

WGS84 = "EPSG:4326"


def folder_scenes(folder: str):
    """The raw scenes of a folder: its GeoTIFFs, without UDM masks and earlier orthos."""
    paths = list_scenes(folder, "*.tif") + [p for p in _optional(list_scenes, folder, "*.tiff")]
    return [p for p in paths if "udm" not in os.path.basename(p).lower() and not p.endswith("_ortho.tif")]


def _optional(function, *args):
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - no .tiff file: fine
        return []


def polygons_lonlat_wkt(algorithm, parameters, name: str, context):
    """The union of the polygons of the optional feature source ``name`` as lon/lat (WGS 84) WKT, or None."""
    if parameters.get(name) in (None, ""):
        return None
    source = algorithm.parameterAsSource(parameters, name, context)
    if source is None:
        return None
    from shapely.geometry import shape
    from shapely.ops import unary_union

    geometries = polygons_in_crs(source, QgsCoordinateReferenceSystem(WGS84).toWkt(), context,
                                 algorithm.parameterDefinition(name).description())
    return unary_union([shape(g) for g in geometries]).wkt


def ortho_name(scene: str) -> str:
    """``<stem>_ortho.tif``."""
    return os.path.splitext(os.path.basename(scene))[0] + "_ortho.tif"


class OrthorectifyAlgorithm(SurfaceMotionAlgorithm):
    INPUT = "INPUT"
    FOLDER = "FOLDER"
    DEM = "DEM"
    VERTICAL_DATUM = "VERTICAL_DATUM"
    HEIGHT_OFFSET = "HEIGHT_OFFSET"
    AOI = "AOI"
    RESOLUTION = "RESOLUTION"
    TARGET_CRS = "TARGET_CRS"
    RESAMPLING = "RESAMPLING"
    MARGIN = "MARGIN"
    ERROR_THRESHOLD = "ERROR_THRESHOLD"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"

    group_id = "preparation"
    PARAMETER_HELP = {
        "INPUT": "Raw (L1B) scenes with RPCs: in the TIFF, in a {stem}_RPC.TXT next to it or in an RPC XML "
                 "({stem}_metadata.xml). Usually the output of Extract band on basic_analytic scenes.",
        "FOLDER": "A folder whose GeoTIFFs (not UDM masks, not earlier _ortho.tif) are added to the scenes.",
        "DEM": "Terrain heights in metres, any CRS and resolution, covering the scenes (or the area of "
               "interest). Geoid heights are converted to the ellipsoidal heights of the RPCs.",
        "VERTICAL_DATUM": "What the DEM heights refer to. 'From the DEM's CRS' reads a compound CRS "
                          "(e.g. EPSG:4326+5773); a DEM declaring none is taken as ellipsoidal, with a warning. "
                          "SRTM = EGM96, Copernicus DEM = EGM2008 (needs the grid us_nga_egm08_25.tif).",
        "HEIGHT_OFFSET": "Metres added to every DEM height (after the datum conversion), e.g. to correct a "
                         "known DEM bias.",
        "AOI": "Polygons (any CRS); the orthos cover their union and are NaN outside. Empty: the whole scene "
               "footprints.",
        "RESOLUTION": "Pixel size of the orthos in metres (PlanetScope: 3 m).",
        "TARGET_CRS": "Projected CRS of the orthos. Empty: the UTM zone of the area of interest (or of the "
                      "scenes' centre). A CRS in degrees is refused.",
        "RESAMPLING": "Resampling of the raw image: cubic (default), bilinear, nearest, Lanczos, cubic spline.",
        "MARGIN": "Raw pixels kept around the area of interest when the raw scene is cut before warping.",
        "ERROR_THRESHOLD": "GDAL's approximation error in pixels; 0 = every pixel computed exactly (needed in "
                           "steep terrain), 0.125 = gdalwarp's default.",
        "OUTPUT_FOLDER": "Folder of the orthoimages, {scene stem}_ortho.tif.",
    }

    def name(self):
        return "orthorectify"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Orthorectify raw scenes (RPC + DEM)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Orthorectifies raw (L1B) scenes through their RPCs onto a DEM, as float32 GeoTIFFs named "
            "{scene stem}_ortho.tif in the output folder, all on one identical grid (target CRS, resolution in "
            "m, bounds on multiples of the resolution) so they can be correlated.\n"
            "DEM: any CRS and resolution. RPC heights are ellipsoidal: geoid heights (EGM96, EGM2008) are "
            "converted with PROJ's geoid grid; a missing grid is an error (EGM2008: put us_nga_egm08_25.tif "
            "from cdn.proj.org into the folder of the provider setting or PROJ's folder), never a silent 0 m "
            "shift. A height offset in m is added to every DEM height.\n"
            "Area of interest: every vertex is projected into the raw scene through the RPC at its DEM height; "
            "the raw scene is cut there plus a margin (raw pixels) and the ortho is NaN outside the AOI and "
            "outside the scene footprint.\n"
            "Warping: exact by default (error threshold 0 px), cubic resampling. Refused with a message: a "
            "scene without RPCs, a DEM not covering the area, a target CRS in degrees, an AOI outside the "
            "scenes. The outputs load as one layer group."
        )

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUT, self.tr("Raw scenes with RPCs"), QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.FOLDER, self.tr("Folder of raw scenes"), behavior=QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, self.tr("DEM (heights in m)")))
        self.addParameter(enum_parameter(self, self.VERTICAL_DATUM, "Vertical datum of the DEM", VERTICAL_DATUMS,
                                         "crs"))
        self.addParameter(QgsProcessingParameterNumber(
            self.HEIGHT_OFFSET, self.tr("Height offset added to the DEM (m)"), QgsProcessingParameterNumber.Double,
            0.0, minValue=-10000.0, maxValue=10000.0))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr("Area of interest"), [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.RESOLUTION, self.tr("Resolution (m)"), QgsProcessingParameterNumber.Double, 3.0, minValue=0.01,
            maxValue=10000.0))
        self.addParameter(QgsProcessingParameterCrs(
            self.TARGET_CRS, self.tr("Target CRS (empty: UTM zone of the area of interest)"), optional=True))
        self.addParameter(enum_parameter(self, self.RESAMPLING, "Resampling", ORTHO_RESAMPLING, "cubic"))
        self.addParameter(QgsProcessingParameterNumber(
            self.MARGIN, self.tr("Margin around the area of interest (raw pixels)"),
            QgsProcessingParameterNumber.Integer, 150, minValue=0, maxValue=100000))
        self.addParameter(QgsProcessingParameterNumber(
            self.ERROR_THRESHOLD, self.tr("Approximation error threshold (px; 0 = exact)"),
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=10.0))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, self.tr("Orthoimages")))

    def _scenes(self, parameters, context):
        paths = layer_paths(parameters, self.INPUT, context)
        folder = self.parameterAsFile(parameters, self.FOLDER, context)
        with core_errors_as_processing_errors():
            if folder:
                paths += [p for p in folder_scenes(folder) if p not in paths]
        if not paths:
            raise QgsProcessingException(self.tr(
                "No scenes given: choose raw scenes with RPCs and/or a folder of them."))
        return paths


    def _options(self, parameters, context):
        crs = self.parameterAsCrs(parameters, self.TARGET_CRS, context)
        dem = self.parameterAsRasterLayer(parameters, self.DEM, context)
        if dem is None:
            raise QgsProcessingException(self.tr("The DEM is required: choose a raster of heights in metres."))
        return {
            "dem": dem.source().split("|")[0],
            "aoi_wkt": polygons_lonlat_wkt(self, parameters, self.AOI, context), "aoi_crs": WGS84,
            "resolution": self.parameterAsDouble(parameters, self.RESOLUTION, context),
            "target_crs": crs.toWkt() if crs.isValid() else None,
            "vertical_datum": enum_value(self, parameters, self.VERTICAL_DATUM, context, VERTICAL_DATUMS),
            "height_offset": self.parameterAsDouble(parameters, self.HEIGHT_OFFSET, context),
        }

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        scenes = self._scenes(parameters, context)
        options = self._options(parameters, context)
        dem = options.pop("dem")
        geoid_folder = setting("SURFACEMOTION_GEOID_FOLDER") or None
        extra = {"resampling": enum_value(self, parameters, self.RESAMPLING, context, ORTHO_RESAMPLING),
                 "margin": self.parameterAsInt(parameters, self.MARGIN, context),
                 "error_threshold": self.parameterAsDouble(parameters, self.ERROR_THRESHOLD, context),
                 "geoid_folder": geoid_folder}
        with core_errors_as_processing_errors():
            grid = job_grid(scenes, dem, geoid_folder=geoid_folder, **options)
        feedback.pushInfo(self.tr("One grid for the {} scene(s): {} x {} pixels of {:g} m, {}").format(
            len(scenes), grid.width, grid.height, grid.transform.a,
            f"EPSG:{grid.crs.to_epsg()}" if grid.crs.to_epsg() else grid.crs.to_wkt()))
        outputs = []
        self.logged = set()
        with output_folder_for(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context),
                               feedback=feedback) as folder:
            for index, scene in enumerate(scenes):
                outputs += self._one(scene, dem, os.path.join(folder, ortho_name(scene)), grid, options, extra,
                                     feedback, index, len(scenes))
            if not outputs:
                raise QgsProcessingException(self.tr(
                    "No scene reaches the output grid: nothing was written. Check the area of interest."))
        group = MapGroup(self, outputs)
        for path in outputs:
            load_on_completion(context, path, os.path.splitext(os.path.basename(path))[0], self.OUTPUT_LAYERS,
                               group=group)
        return {self.OUTPUT_FOLDER: folder, self.OUTPUT_LAYERS: outputs}

    def _one(self, scene, dem, target, grid, options, extra, feedback, index, count):
        """Orthorectify one scene; [] when its footprint misses the grid (reported, the job goes on)."""
        share = 100.0 / count
        feedback.pushInfo(self.tr("Scene {}/{}: {} -> {}").format(index + 1, count, scene, target))

        def progress(percent):
            feedback.setProgress(index * share + share * max(0.0, min(100.0, percent)) / 100.0)

        def log(message):
            if message in self.logged:
                return  # the same DEM note for every scene: once
            self.logged.add(message)
            warning = "taken as ellipsoidal" in message or "nodata" in message
            (feedback.pushWarning if warning else feedback.pushInfo)(message)

        try:
            with core_errors_as_processing_errors():
                check_canceled(feedback.isCanceled)
                orthorectify_scene(scene, dem, target, grid=grid, progress=progress, cancelled=feedback.isCanceled,
                                   log=log, **options, **extra)
        except QgsProcessingException as exc:
            if not isinstance(exc.__cause__, EmptyOutputError):
                raise
            feedback.reportError(self.tr("Skipped {}: {}").format(os.path.basename(scene), exc), False)
            return []
        return [target]
