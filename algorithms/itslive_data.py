"""surfacemotion:itslivefindcubes, surfacemotion:itslivedownload and surfacemotion:itslivepointseries —
finding and reading ITS_LIVE velocity cubes (STAC API with the legacy catalogue as fallback)."""
import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDate, QDateTime, QTime, Qt, QVariant

from ..core.io import OutputSet
from ..core.itslive.aggregate import METHODS as AGGREGATE_METHODS
from ..core.itslive.aggregate import UNITS as AGGREGATE_UNITS
from ..core.itslive.cubes import find_cubes, union_lonlat
from ..core.itslive.interrupt import interruptible
from ..core.itslive.download import MISSIONS, NO_MATCH_HINT, VARIABLES, DownloadRequest, download_cubes
from ..core.itslive.mosaics import MOSAIC_URL_TEMPLATE, SOURCES, download_mosaics
from ..core.itslive.pointseries import COLUMNS, point_series, write_csv, write_plot
from .settings import setting
from .itslive_analysis import VectorStyle
from .base import (MAX_DAYS, MapGroup, SinkGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors,
                   enum_parameter, enum_value, enum_values, load_on_completion, polygons_in_crs, require_geometry,
                   run_core)

WGS84 = "EPSG:4326"
#: The first day of the ITS_LIVE record (Landsat 4/5), the default start date.
RECORD_START = (1985, 1, 1)
DEFAULT_VARIABLES = [VARIABLES.index("vx"), VARIABLES.index("vy")]

SERVICE_HELP = (
    "Cubes are found with the ITS_LIVE STAC API (collection itslive-cubes) and, if that fails, with the legacy "
    "catalogue JSON; both URLs default to the provider settings (Processing → Options → Providers). "
    "The HTTP timeout (s) applies to each request. ")
FILTER_HELP = (
    "Layers are kept when start date ≤ mid_date, mid_date is before the end date (default: 1985-01-01 to "
    "tomorrow), roi_valid_percentage ≥ the "
    "minimum (%), the minimum ≤ date_dt ≤ the maximum (days; empty = no limit) and the mission is one of those "
    "chosen (Sentinel-1, Sentinel-2, Landsat 4-9; none chosen = all). Each cube is read in its own EPSG; "
    "velocities are m/yr along the cube's x/y axes (not east/north in polar stereographic). ")

#: Tooltips of the area-of-interest, service and layer-filter parameters of the ITS_LIVE algorithms.
ITSLIVE_PARAMETER_HELP = {
    "AOI_EXTENT": "Area of interest as an extent (any CRS); with polygons too, their union is used.",
    "AOI_LAYER": "Area of interest as polygons (any CRS); with an extent too, their union is used.",
    "STAC_URL": "Base URL of the ITS_LIVE STAC API, e.g. a mirror; empty = the provider setting "
                "(default https://stac.itslive.cloud).",
    "CATALOG_URL": "URL of the legacy cube catalogue (JSON), used when the STAC API fails; empty = the provider "
                   "setting.",
    "TIMEOUT": "Seconds to wait for each HTTP request before giving up.",
    "START_DATE": "First day of the layers kept: mid_date on or after it.",
    "END_DATE": "Day after the layers kept: mid_date before it (excluded).",
    "MIN_ROI_VALID": "Layers with a smaller roi_valid_percentage (share of valid cells over land ice, %) are "
                     "left out.",
    "DT_MIN": "Shortest image-pair separation date_dt kept, in days; empty = no limit.",
    "DT_MAX": "Longest image-pair separation date_dt kept, in days; empty = no limit.",
    "MISSIONS": "Satellites whose image pairs are kept (first image's mission); none chosen = all.",
}


def add_aoi_parameters(algorithm) -> None:
    algorithm.addParameter(QgsProcessingParameterExtent(
        "AOI_EXTENT", algorithm.tr("Area of interest (extent)"), optional=True))
    algorithm.addParameter(QgsProcessingParameterFeatureSource(
        "AOI_LAYER", algorithm.tr("Area of interest (polygons)"), [QgsProcessing.TypeVectorPolygon], optional=True))


def add_service_parameters(algorithm) -> None:
    algorithm.addParameter(QgsProcessingParameterString(
        "STAC_URL", algorithm.tr("STAC API URL (empty = provider setting)"), optional=True))
    algorithm.addParameter(QgsProcessingParameterString(
        "CATALOG_URL", algorithm.tr("Legacy catalogue URL (empty = provider setting)"), optional=True))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "TIMEOUT", algorithm.tr("HTTP timeout (s)"), QgsProcessingParameterNumber.Double, 60.0, minValue=0.1,
        maxValue=3600.0))


def add_filter_parameters(algorithm, dt_max_default=None) -> None:
    tr = algorithm.tr
    # defaults: the whole record, from its start to today (both today would select nothing)
    algorithm.addParameter(QgsProcessingParameterDateTime(
        "START_DATE", tr("Start date (mid_date on or after)"), QgsProcessingParameterDateTime.Date,
        defaultValue=QDateTime(QDate(*RECORD_START), QTime(0, 0), Qt.UTC)))
    algorithm.addParameter(QgsProcessingParameterDateTime(
        "END_DATE", tr("End date (mid_date before)"), QgsProcessingParameterDateTime.Date,
        defaultValue=QDateTime(QDate.currentDate().addDays(1), QTime(0, 0), Qt.UTC)))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "MIN_ROI_VALID", tr("Minimum roi_valid_percentage (%)"), QgsProcessingParameterNumber.Double, 0.0,
        minValue=0.0, maxValue=100.0))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "DT_MIN", tr("Minimum date_dt (days)"), QgsProcessingParameterNumber.Double, None, optional=True, minValue=0.0,
        maxValue=MAX_DAYS))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "DT_MAX", tr("Maximum date_dt (days)"), QgsProcessingParameterNumber.Double, dt_max_default, optional=True,
        minValue=0.0, maxValue=MAX_DAYS))
    algorithm.addParameter(enum_parameter(algorithm, "MISSIONS", "Missions (empty = all)", MISSIONS,
                                          allowMultiple=True, optional=True))


def aoi_lonlat(algorithm, parameters, context) -> dict:
    """The AOI (extent and/or polygons) as one lon/lat GeoJSON geometry."""
    geometries = []
    source = algorithm.parameterAsSource(parameters, "AOI_LAYER", context)
    if source is not None:
        geometries += polygons_in_crs(source, QgsCoordinateReferenceSystem(WGS84).toWkt(), context,
                                      algorithm.parameterDefinition("AOI_LAYER").description())
    if parameters.get("AOI_EXTENT") not in (None, ""):
        rectangle = algorithm.parameterAsExtent(parameters, "AOI_EXTENT", context)
        if rectangle.width() <= 0 or rectangle.height() <= 0:
            raise QgsProcessingException(algorithm.tr(
                "The area of interest extent has no area ({:g} x {:g}); draw a rectangle.").format(
                    rectangle.width(), rectangle.height()))
        extent = algorithm.parameterAsExtentGeometry(parameters, "AOI_EXTENT", context,
                                                     QgsCoordinateReferenceSystem(WGS84))
        if not extent.isEmpty():
            import json

            geometries.append(json.loads(extent.asJson()))
    with core_errors_as_processing_errors():
        return union_lonlat(geometries)


def service_urls(algorithm, parameters, context):
    stac = algorithm.parameterAsString(parameters, "STAC_URL", context) or setting("SURFACEMOTION_ITSLIVE_STAC_URL")
    catalog = (algorithm.parameterAsString(parameters, "CATALOG_URL", context)
               or setting("SURFACEMOTION_ITSLIVE_CATALOG_URL"))
    return stac, catalog, algorithm.parameterAsDouble(parameters, "TIMEOUT", context)


def found_cubes(algorithm, parameters, context, feedback, aoi):
    stac, catalog, timeout = service_urls(algorithm, parameters, context)
    messages = []
    with core_errors_as_processing_errors():
        cubes = interruptible(lambda: find_cubes(aoi, stac, catalog, timeout=timeout, messages=messages),
                              feedback.isCanceled)
    for message in messages:
        feedback.reportError(message, False)
    if not cubes:
        raise QgsProcessingException(algorithm.tr(
            "No ITS_LIVE cube intersects the area of interest: nothing was written. The cubes cover glaciers and "
            "ice sheets only; check the area (and the CRS of its extent or layer)."))
    feedback.pushInfo(algorithm.tr("{} cube(s) intersect the area of interest").format(len(cubes)))
    return cubes


def date_parameter(algorithm, parameters, name, context):
    moment = algorithm.parameterAsDateTime(parameters, name, context)
    if not moment.isValid():
        raise QgsProcessingException(algorithm.tr("{} is not a valid date.").format(name))
    return moment.date().toPyDate()


def download_request(algorithm, parameters, context, aoi, variables, aggregate=(0, "Y", "mean")) -> DownloadRequest:
    import datetime as dt

    start = date_parameter(algorithm, parameters, "START_DATE", context)
    end = date_parameter(algorithm, parameters, "END_DATE", context)
    optional = {}
    for name in ("DT_MIN", "DT_MAX"):
        value = parameters.get(name, algorithm.parameterDefinition(name).defaultValue())
        optional[name] = None if value in (None, "") else algorithm.parameterAsDouble({name: value}, name, context)
    missions = enum_values(algorithm, parameters, "MISSIONS", context, MISSIONS)
    request = DownloadRequest(
        aoi, dt.datetime(start.year, start.month, start.day), dt.datetime(end.year, end.month, end.day),
        variables, algorithm.parameterAsDouble(parameters, "MIN_ROI_VALID", context), optional["DT_MIN"],
        optional["DT_MAX"], missions or None, aggregate[0], aggregate[1], aggregate[2],
        timeout=algorithm.parameterAsDouble(parameters, "TIMEOUT", context))
    with core_errors_as_processing_errors():
        request.validate()  # before any request to the server
    return request


class ItsLiveFindCubesAlgorithm(SurfaceMotionAlgorithm):
    OUTPUT = "OUTPUT"
    group_id = "itslive"
    PARAMETER_HELP = {**ITSLIVE_PARAMETER_HELP,
                      "OUTPUT": "Polygons (EPSG:4326) of the cube footprints: cube_id, name, zarr_url, epsg."}

    def name(self):
        return "itslivefindcubes"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Find ITS_LIVE velocity cubes")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Finds the ITS_LIVE image-pair velocity cubes (Zarr, 120 m cells in UTM or polar stereographic, "
            "dimensions mid_date × y × x) whose footprint intersects the area of interest (an extent, polygons "
            "in any CRS, or both: their union).\n"
            "Output: a polygon layer (EPSG:4326) of the cube footprints with the attributes cube_id, name, "
            "zarr_url and epsg (the cube's own CRS), and the number of cubes.\n" + SERVICE_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        add_aoi_parameters(self)
        add_service_parameters(self)
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, self.tr("Cube footprints"), QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputNumber("N_CUBES", self.tr("Number of cubes")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        import json

        cubes = found_cubes(self, parameters, context, feedback, aoi_lonlat(self, parameters, context))
        fields = QgsFields()
        for name, kind in (("cube_id", QVariant.String), ("name", QVariant.String),
                           ("zarr_url", QVariant.String), ("epsg", QVariant.Int)):
            fields.append(QgsField(name, kind))
        with SinkGroup(self, parameters, context, feedback) as sinks:
            sink = sinks.open(self.OUTPUT, fields, QgsWkbTypes.MultiPolygon, QgsCoordinateReferenceSystem(WGS84))
            for cube in cubes:
                feature = QgsFeature(fields)
                geometry = QgsGeometry.fromWkt(_geojson_to_wkt(json.dumps(cube.footprint)))
                geometry.convertToMultiType()
                feature.setGeometry(geometry)
                feature.setAttributes([str(cube.cube_id), cube.name, cube.zarr_url, int(cube.epsg)])
                sink.add(feature)
            sink_id = sink.close()
        if context.willLoadLayerOnCompletion(sink_id):
            context.layerToLoadOnCompletionDetails(sink_id).setPostProcessor(VectorStyle.create("itslive_cubes"))
        feedback.setProgress(100)
        return {self.OUTPUT: sink_id, "N_CUBES": len(cubes)}


def _geojson_to_wkt(text: str) -> str:
    import json

    from shapely.geometry import shape

    return shape(json.loads(text)).wkt


class ItsLiveDownloadAlgorithm(SurfaceMotionAlgorithm):
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    group_id = "itslive"
    PARAMETER_HELP = {
        **ITSLIVE_PARAMETER_HELP,
        "VARIABLES": "Cube variables written as GeoTIFF stacks (vx, vy by default; v, the errors and more).",
        "AGGREGATE_AMOUNT": "Length N of the time bins the layers are averaged into, in the aggregation unit; "
                            "0 = every image pair kept.",
        "AGGREGATE_UNIT": "Unit of the bin length: years, months or days; bins start at the start date.",
        "AGGREGATE_METHOD": "How the layers of a bin are combined: mean, median, or mean weighted by 1/σ² of the "
                            "variable's error.",
        "SOURCE": "Image-pair velocity cubes (Zarr), or the annual v2 mosaics (Cloud-Optimised GeoTIFFs, one per "
                  "region and year).",
        "RGI_REGION": "Annual mosaics only: the RGI region number, two digits (01 = Alaska, 05 = Greenland, …).",
        "MOSAIC_URL": "Annual mosaics only: URL template with the fields {region}, {year} and {variable}.",
        "OUTPUT_FOLDER": "Folder of the NetCDF and GeoTIFF files, one set per cube; an interrupted download keeps "
                         "its finished parts here and resumes.",
    }

    def name(self):
        return "itslivedownload"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Download ITS_LIVE velocity cubes")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Downloads the area-of-interest window of every ITS_LIVE cube intersecting it; only the chunks "
            "holding the window and the chosen variables are read. " + FILTER_HELP +
            "\nOutputs per cube in the output folder: {cube}.nc, a CF NetCDF (mid_date, y, x, grid mapping with "
            "the EPSG), and {cube}_{variable}.tif, float32 GeoTIFFs with one band per time step in mid_date order "
            "(band description = the date, YYYY-MM-DD).\n"
            "Aggregation into bins of N years, months or days from the start date: mean, median or "
            "error-weighted mean; band dates = bin starts; count_{variable} gives the values per cell.\n"
            "An interrupted download resumes when the same request is run again. " + SERVICE_HELP +
            "\nSource 'Annual mosaics': the ITS_LIVE v2 annual mosaics of the RGI region instead, one band per "
            "year whose 1 January lies in the date range; the layer filters do not apply.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        add_aoi_parameters(self)
        add_filter_parameters(self)
        self.addParameter(enum_parameter(self, "VARIABLES", "Variables", VARIABLES, allowMultiple=True,
                                         defaultValue=DEFAULT_VARIABLES))
        self.addParameter(QgsProcessingParameterNumber(
            "AGGREGATE_AMOUNT", self.tr("Aggregate into bins of N units (0 = no aggregation)"),
            QgsProcessingParameterNumber.Integer, 0, minValue=0, maxValue=1000))
        self.addParameter(enum_parameter(self, "AGGREGATE_UNIT", "Aggregation unit", AGGREGATE_UNITS, default="Y"))
        self.addParameter(enum_parameter(self, "AGGREGATE_METHOD", "Aggregation method", AGGREGATE_METHODS,
                                         default="mean"))
        add_service_parameters(self)
        self.addParameter(enum_parameter(self, "SOURCE", "Source", SOURCES, default="cubes"))
        self.addParameter(QgsProcessingParameterString(
            "RGI_REGION", self.tr("Annual mosaics: RGI region number (01 = Alaska, 05 = Greenland, ...)"), "01"))
        self.addParameter(QgsProcessingParameterString(
            "MOSAIC_URL", self.tr("Annual mosaics: URL template ({region}, {year}, {variable})"), MOSAIC_URL_TEMPLATE))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", self.tr("Velocity GeoTIFF stacks")))
        self.addOutput(QgsProcessingOutputString("OUTPUT_NETCDF", self.tr("NetCDF files (';'-separated)")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        if parameters.get("VARIABLES") in (None, ""):  # unset: its default (enum_values answers [] then)
            parameters = dict(parameters, VARIABLES=DEFAULT_VARIABLES)
        variables = enum_values(self, parameters, "VARIABLES", context, VARIABLES)
        if not variables:
            raise QgsProcessingException(self.tr("Choose at least one variable."))
        aggregate = (self.parameterAsInt(parameters, "AGGREGATE_AMOUNT", context),
                     enum_value(self, parameters, "AGGREGATE_UNIT", context, AGGREGATE_UNITS),
                     enum_value(self, parameters, "AGGREGATE_METHOD", context, AGGREGATE_METHODS))
        aoi = aoi_lonlat(self, parameters, context)
        request = download_request(self, parameters, context, aoi, variables, aggregate)
        messages = []
        try:
            if enum_value(self, parameters, "SOURCE", context, SOURCES) == "mosaics":
                if aggregate[0]:
                    feedback.pushInfo(self.tr("Annual mosaics are already yearly: aggregation is not applied."))
                request.aggregate_amount = 0
                results = run_core(download_mosaics, feedback, request,
                                   self.parameterAsString(parameters, "RGI_REGION", context), folder,
                                   url_template=self.parameterAsString(parameters, "MOSAIC_URL", context),
                                   messages=messages)
            else:
                cubes = found_cubes(self, parameters, context, feedback, aoi)
                results = run_core(download_cubes, feedback, cubes, request, folder, messages=messages)
        finally:  # what was cleaned up or skipped, also when the download failed
            for message in messages:
                feedback.pushInfo(message)
        layers, netcdfs = [], []
        group = MapGroup(self, [path for result in results for path in result["geotiffs"]])
        for result in results:
            feedback.pushInfo(self.tr("{}: {} layers, {} x {} cells (EPSG:{})").format(
                result["name"], result["n_layers"], result["shape"][0], result["shape"][1], result["epsg"]))
            netcdfs.append(result["netcdf"])
            for path in result["geotiffs"]:
                layers.append(path)
                load_on_completion(context, path, os.path.basename(path)[:-4], "OUTPUT_LAYERS",
                                   result["styles"][path], group=group)
        return {self.OUTPUT_FOLDER: os.path.abspath(folder), "OUTPUT_LAYERS": layers,
                "OUTPUT_NETCDF": ";".join(netcdfs)}


def point_series_fields() -> QgsFields:
    fields = QgsFields()
    for name in COLUMNS:
        if name == "mid_date":
            kind = QVariant.DateTime
        elif name in ("point_id", "epsg"):
            kind = QVariant.Int
        elif name in ("mission", "satellite", "acquisition_date_img1", "acquisition_date_img2"):
            kind = QVariant.String
        else:
            kind = QVariant.Double
        fields.append(QgsField(name, kind))
    return fields


class ItsLivePointSeriesAlgorithm(SurfaceMotionAlgorithm):
    group_id = "itslive"
    PARAMETER_HELP = {
        **ITSLIVE_PARAMETER_HELP,
        "POINTS": "Points (any CRS) where the series are read, from the nearest cell of the cube containing each.",
        "DT_MAX": "Longest image-pair separation date_dt kept, in days (default 90); empty = no limit.",
        "OUTPUT": "The time series as a table (no geometry), one row per point and layer.",
        "OUTPUT_CSV": "The same table as a CSV file.",
        "OUTPUT_PLOT": "PNG plot of the speed v with error bars and a 30-day running mean, per point.",
    }

    def name(self):
        return "itslivepointseries"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("ITS_LIVE point velocity time series")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Velocity time series at points (any CRS) from the ITS_LIVE cubes containing them: the nearest cube "
            "cell, only its chunk read per variable. " + FILTER_HELP + "The maximum date_dt defaults to 90 days "
            "(the notebooks' 1-90-day pairs); clear it for all.\n"
            "Output table and CSV: point_id, mid_date (UTC), lon, lat, x, y (cell centre, cube CRS), v, v_error, "
            "vx, vx_error, vy, vy_error (m/yr), date_dt (days), mission, satellite, epsg and the acquisition "
            "dates when the cube has them; sorted by point and mid_date. The PNG plot shows v with 1-σ error "
            "bars and a 30-day running mean (at least 5 values).\n" + SERVICE_HELP)

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFeatureSource(
            "POINTS", self.tr("Points"), [QgsProcessing.TypeVectorPoint]))
        add_filter_parameters(self, dt_max_default=90.0)
        add_service_parameters(self)
        self.addParameter(QgsProcessingParameterFeatureSink(
            "OUTPUT", self.tr("Point time series"), QgsProcessing.TypeVector))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_CSV", self.tr("Point time series CSV"), self.tr("CSV files (*.csv)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_PLOT", self.tr("Plot (PNG)"), self.tr("PNG files (*.png)")))
        self.addOutput(QgsProcessingOutputNumber("N_ROWS", self.tr("Number of rows")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        source = self.parameterAsSource(parameters, "POINTS", context)
        require_geometry(source, [QgsWkbTypes.PointGeometry], self.parameterDefinition("POINTS").description())
        to_wgs84 = QgsCoordinateTransform(source.sourceCrs(), QgsCoordinateReferenceSystem(WGS84),
                                          context.transformContext())
        points = []
        for feature in source.getFeatures():
            geometry = QgsGeometry(feature.geometry())
            if geometry.isEmpty():
                continue
            geometry.transform(to_wgs84)
            for point in (geometry.asMultiPoint() if geometry.isMultipart() else [geometry.asPoint()]):
                points.append((point.x(), point.y()))
        if not points:
            raise QgsProcessingException(self.tr("The point layer has no points."))
        d = 0.01  # a box of ±0.01° around each point; boxes of close points overlap, hence their union
        with core_errors_as_processing_errors():
            aoi = union_lonlat([{"type": "Polygon", "coordinates": [
                [[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]]} for x, y in points])
        request = download_request(self, parameters, context, aoi, ("v", "vx", "vy"))
        cubes = found_cubes(self, parameters, context, feedback, aoi)
        messages = []
        rows = run_core(point_series, feedback, points, cubes, request, messages=messages, progress_range=(0, 80))
        for message in messages:
            feedback.reportError(message, False)
        if not rows:
            raise QgsProcessingException(self.tr(
                "No layer matched the filters at any point; nothing was written. " + NO_MATCH_HINT))
        csv_path = self.parameterAsFileOutput(parameters, "OUTPUT_CSV", context)
        plot_path = self.parameterAsFileOutput(parameters, "OUTPUT_PLOT", context)
        fields = point_series_fields()
        # the CSV, the plot and the table appear together: the table is written while the other two wait
        with core_errors_as_processing_errors(), OutputSet() as outputs:
            write_csv(rows, csv_path, outputs)
            write_plot(rows, plot_path, outputs)
            with SinkGroup(self, parameters, context, feedback) as sinks:
                sink = sinks.open("OUTPUT", fields, QgsWkbTypes.NoGeometry)
                for row in rows:
                    feature = QgsFeature(fields)
                    values = []
                    for name in COLUMNS:
                        if name == "mid_date":
                            moment = QDateTime.fromString(row[name], Qt.ISODate)
                            moment.setTimeSpec(Qt.UTC)
                            values.append(moment)
                        else:
                            values.append(row[name])
                    feature.setAttributes(values)
                    sink.add(feature)
                sink_id = sink.close()
        feedback.pushInfo(self.tr("{} rows for {} point(s)").format(len(rows), len(points)))
        feedback.setProgress(100)
        return {"OUTPUT": sink_id, "OUTPUT_CSV": csv_path, "OUTPUT_PLOT": plot_path, "N_ROWS": len(rows)}
