"""surfacemotion:s1inventory and surfacemotion:s1download — Sentinel-1 products the
OpenSarToolkit way: a footprint inventory (catalogue search or local folder) refined by track and
acquisition, and the download of chosen products with credentials from the QGIS authentication
database."""
from __future__ import annotations

import datetime as dt

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureRequest,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDate, QDateTime, QTime, Qt, QVariant

from ..core.choices import Choices
from ..core.sentinel1.download import Product, download_products
from ..core.sentinel1.http import Credentials, Session
from ..core.sentinel1.inventory import (DEFAULT_MIN_COVERAGE, INVENTORY_FIELDS, MODES, MOSAIC_FIELDS, ORBIT_DIRECTIONS,
                                        POLARISATION_FILTERS, PRODUCT_TYPES, InventoryRequest, coverage_report,
                                        folder_inventory, parse_relative_orbits, refine)
from ..core.sentinel1.stac import SOURCES, search_asf, search_stac
from .base import (SinkGroup, SurfaceMotionAlgorithm, core_errors_as_processing_errors, enum_parameter, enum_value,
                   output_folder_for, run_core)
from .itslive_data import WGS84, add_aoi_parameters, aoi_lonlat, date_parameter
from .planet import _geojson_wkt, qgis_proxy
from .settings import setting

STAC_URL_SETTING = "SURFACEMOTION_S1_STAC_URL"
ASF_URL_SETTING = "SURFACEMOTION_S1_ASF_URL"
TOKEN_URL_SETTING = "SURFACEMOTION_S1_TOKEN_URL"
#: How s1download authenticates: OAuth2 token (Copernicus Data Space) or HTTP Basic (ASF / Earthdata).
AUTH_METHODS = Choices(("token", "OAuth2 token from user name and password (Copernicus Data Space)"),
                       ("basic", "HTTP Basic (ASF, NASA Earthdata)"))
_FIELD_TYPES = {"string": QVariant.String, "double": QVariant.Double, "int": QVariant.Int, "bool": QVariant.Bool}


def schema_fields(schema) -> QgsFields:
    fields = QgsFields()
    for name, kind, _ in schema:
        fields.append(QgsField(name, _FIELD_TYPES[kind]))
    return fields


def _feature(fields: QgsFields, geometry: dict, values: list) -> QgsFeature:
    feature = QgsFeature(fields)
    shape = QgsGeometry.fromWkt(_geojson_wkt(geometry))
    shape.convertToMultiType()
    feature.setGeometry(shape)
    feature.setAttributes(values)
    return feature


def credentials_from_auth_config(config_id: str, token_url: str) -> Credentials:
    """User name and password of a QGIS authentication configuration (method Basic)."""
    manager = QgsApplication.authManager()
    config = QgsAuthMethodConfig()
    if not config_id or not manager.loadAuthenticationConfig(config_id, config, True) or not config.isValid(True):
        raise QgsProcessingException(
            f"The QGIS authentication configuration '{config_id}' cannot be read (unknown id, or the master password "
            "was not given). Check it in Settings → Options → Authentication.")
    values = config.configMap()
    username, password = values.get("username", ""), values.get("password", "")
    if config.method() != "Basic" or not (username and password):
        raise QgsProcessingException(
            f"The QGIS authentication configuration '{config.name()}' must use method Basic with a user name and a "
            "password (your Copernicus Data Space or NASA Earthdata account).")
    return Credentials(username, password, token_url)


class S1InventoryAlgorithm(SurfaceMotionAlgorithm):
    OUTPUT = "OUTPUT"
    MOSAICS = "MOSAICS"
    group_id = "sentinel1"
    PARAMETER_HELP = {
        "SOURCE": "Where the products are listed: a STAC API (provider setting 'Sentinel-1 STAC API URL', default "
                  "the Copernicus Data Space), ASF's search API, or a local folder of downloaded .zip / .SAFE products "
                  "(offline; footprints from manifest.safe).",
        "AOI_EXTENT": "Area of interest as an extent (any CRS); with polygons too, their union is used.",
        "AOI_LAYER": "Area of interest as polygons (any CRS); with an extent too, their union is used.",
        "START_DATE": "First day listed (UTC): sensing start on or after it.",
        "END_DATE": "Day after the last day listed (UTC): sensing start before it.",
        "PRODUCT_TYPE": "Product level: GRD (ground range detected).",
        "MODE": "Acquisition mode; IW over land.",
        "POLARISATION": "Products kept must have every polarisation listed (VV VH = dual-pol over land).",
        "ORBIT_DIRECTION": "Ascending, descending or both.",
        "RELATIVE_ORBITS": "Tracks kept, as relative orbit numbers 1-175 separated by commas; empty = all.",
        "MIN_COVERAGE": "A track's mosaic of one day is complete when it covers at least this much of the area of "
                        "interest (%, equal-area).",
        "FOLDER": "Folder holding the downloaded products (.zip or .SAFE, also in sub-folders), for the local mode.",
        "TIMEOUT": "Seconds to wait for each HTTP request before retrying (then giving up).",
        "OUTPUT": "Polygons (EPSG:4326) of the product footprints with their properties and refine fields.",
        "MOSAICS": "Polygons (EPSG:4326) of each key, track and day: the union of its footprints and its coverage.",
    }

    def name(self):
        return "s1inventory"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 inventory (search and refine)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Lists Sentinel-1 products over the area of interest sensed from the start date (UTC) to before the "
            "end date, from a STAC API (Copernicus Data Space, every result page), ASF's search API, or a local "
            "folder of downloaded products (offline). Filters: product type, mode, polarisation, orbit direction "
            "and relative orbits.\n"
            "Refine, as OpenSarToolkit: products are grouped by key (orbit direction and polarisations, e.g. "
            "ASCENDING_VVVH), track and UTC day; each group's mosaic covers a share of the area of interest (%, in "
            "an equal-area projection) and is complete at the minimum coverage. The key with the most complete "
            "mosaics is preselected; the log lists the coverage per track and day.\n"
            "Outputs: the product footprints (EPSG:4326: id, start and stop time, relative orbit, orbit direction, "
            "slice number, polarisations, download URL, checksum, coverage, complete, selected), the mosaics layer, "
            "the number of products and the preselected key. Feed the selected products to 'Sentinel-1 download'.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        tr = self.tr
        self.addParameter(enum_parameter(self, "SOURCE", "Source", SOURCES, "stac"))
        add_aoi_parameters(self)
        today = QDate.currentDate()
        self.addParameter(QgsProcessingParameterDateTime(
            "START_DATE", tr("Start date (sensing on or after, UTC)"), QgsProcessingParameterDateTime.Date,
            defaultValue=QDateTime(today.addDays(-90), QTime(0, 0), Qt.UTC)))
        self.addParameter(QgsProcessingParameterDateTime(
            "END_DATE", tr("End date (sensing before, UTC)"), QgsProcessingParameterDateTime.Date,
            defaultValue=QDateTime(today.addDays(1), QTime(0, 0), Qt.UTC)))
        self.addParameter(enum_parameter(self, "PRODUCT_TYPE", "Product type", PRODUCT_TYPES, "GRD"))
        self.addParameter(enum_parameter(self, "MODE", "Acquisition mode", MODES, "IW"))
        self.addParameter(enum_parameter(self, "POLARISATION", "Polarisation", POLARISATION_FILTERS, "VV VH"))
        self.addParameter(enum_parameter(self, "ORBIT_DIRECTION", "Orbit direction", ORBIT_DIRECTIONS, "any"))
        self.addParameter(QgsProcessingParameterString(
            "RELATIVE_ORBITS", tr("Relative orbits (tracks, comma-separated)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_COVERAGE", tr("Minimum coverage of a complete mosaic (%)"), QgsProcessingParameterNumber.Double,
            DEFAULT_MIN_COVERAGE, minValue=0.01, maxValue=100.0))
        self.addParameter(QgsProcessingParameterFile(
            "FOLDER", tr("Folder of downloaded products (local mode)"), QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "TIMEOUT", tr("HTTP timeout (s)"), QgsProcessingParameterNumber.Double, 60.0, minValue=0.1,
            maxValue=3600.0))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, tr("Sentinel-1 products"), QgsProcessing.TypeVectorPolygon))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.MOSAICS, tr("Mosaics per key, track and day"), QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputNumber("N_PRODUCTS", tr("Number of products")))
        self.addOutput(QgsProcessingOutputString("SELECTED_KEY", tr("Preselected key")))

    def inventory_request(self, parameters, context) -> InventoryRequest:
        start = date_parameter(self, parameters, "START_DATE", context)
        end = date_parameter(self, parameters, "END_DATE", context)
        with core_errors_as_processing_errors():
            request = InventoryRequest(
                aoi_lonlat(self, parameters, context), dt.datetime(start.year, start.month, start.day),
                dt.datetime(end.year, end.month, end.day),
                enum_value(self, parameters, "PRODUCT_TYPE", context, PRODUCT_TYPES),
                enum_value(self, parameters, "MODE", context, MODES),
                enum_value(self, parameters, "POLARISATION", context, POLARISATION_FILTERS),
                enum_value(self, parameters, "ORBIT_DIRECTION", context, ORBIT_DIRECTIONS),
                parse_relative_orbits(self.parameterAsString(parameters, "RELATIVE_ORBITS", context)),
                self.parameterAsDouble(parameters, "MIN_COVERAGE", context))
            request.validate()
        return request

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        request = self.inventory_request(parameters, context)
        source = enum_value(self, parameters, "SOURCE", context, SOURCES)
        timeout = self.parameterAsDouble(parameters, "TIMEOUT", context)
        records, messages = self.find(source, request, parameters, context, feedback, timeout)
        for line in messages:
            feedback.pushInfo(line)
        with core_errors_as_processing_errors():
            refined = refine(records, request.aoi, request.min_coverage)
        for line in coverage_report(refined):
            feedback.pushInfo(line)
        if refined.selected_key is None and refined.records:
            feedback.reportError(self.tr("No key has a mosaic covering the area of interest; nothing is preselected. "
                                         "Widen the dates, or lower the minimum coverage."), False)
        fields, mosaic_fields = schema_fields(INVENTORY_FIELDS), schema_fields(MOSAIC_FIELDS)
        crs = QgsCoordinateReferenceSystem(WGS84)
        with SinkGroup(self, parameters, context, feedback) as sinks:
            sink = sinks.open(self.OUTPUT, fields, QgsWkbTypes.MultiPolygon, crs)
            for record in refined.records:
                sink.add(_feature(fields, record["geometry"], [record[name] for name, _, _ in INVENTORY_FIELDS]))
            mosaic_sink = sinks.open(self.MOSAICS, mosaic_fields, QgsWkbTypes.MultiPolygon, crs)
            for mosaic in refined.mosaics:
                mosaic_sink.add(_feature(mosaic_fields, mosaic.geometry, [
                    mosaic.key, mosaic.relative_orbit, mosaic.acquisition, len(mosaic.records), mosaic.coverage_pct,
                    mosaic.complete, mosaic.selected]))
            sink_id, mosaics_id = sink.close(), mosaic_sink.close()
        if not refined.records:
            feedback.reportError(self.tr("No product matches: widen the dates or the filters."), False)
        return {self.OUTPUT: sink_id, self.MOSAICS: mosaics_id, "N_PRODUCTS": len(refined.records),
                "SELECTED_KEY": refined.selected_key or ""}

    def find(self, source, request, parameters, context, feedback, timeout):
        """(records, log lines) of the chosen source."""
        if source == "folder":
            folder = self.parameterAsFile(parameters, "FOLDER", context)
            if not folder:
                raise QgsProcessingException(self.tr(
                    "The local mode needs the 'Folder of downloaded products (local mode)': choose the folder "
                    "holding the .zip or .SAFE products."))
            lines = []
            with core_errors_as_processing_errors():
                records = folder_inventory(folder, request, lines.append, feedback.isCanceled)
            return records, lines + [self.tr("{} product(s) in {} match").format(len(records), folder)]
        url = (setting(STAC_URL_SETTING) if source == "stac" else setting(ASF_URL_SETTING)).strip().rstrip("/")
        feedback.pushInfo(self.tr("Searching {}").format(url))
        session = Session(None, timeout, qgis_proxy(url), feedback.isCanceled)
        search = search_stac if source == "stac" else search_asf
        result = run_core(lambda progress, is_canceled: search(session, url, request, progress=progress,
                                                               log=feedback.pushInfo, is_canceled=is_canceled),
                          feedback, progress_range=(0.0, 90.0))
        lines = result.messages + [self.tr("{} product(s) returned in {} page(s); {} left out by the filters, {} "
                                           "kept").format(result.returned, result.pages, result.dropped,
                                                          len(result.records))]
        return result.records, lines


class S1DownloadAlgorithm(SurfaceMotionAlgorithm):
    group_id = "sentinel1"
    PARAMETER_HELP = {
        "INPUT": "A 'Sentinel-1 inventory (search and refine)' products layer; tick 'Selected features only' to "
                 "download only the features selected on the map.",
        "PRESELECTED_ONLY": "Download only the products whose field selected is true (the complete mosaics of the "
                            "preselected key).",
        "CREDENTIALS": "A QGIS authentication configuration (method Basic) with your account: Copernicus Data "
                       "Space for its products, NASA Earthdata for ASF's.",
        "AUTH_METHOD": "OAuth2: the user name and password are exchanged for a token at the provider setting "
                       "'Sentinel-1 OAuth2 token URL'; HTTP Basic: sent as such (ASF).",
        "TIMEOUT": "Seconds to wait for each HTTP request before retrying (then giving up).",
        "OUTPUT_FOLDER": "Folder for the product archives (id.zip); products already there and complete are skipped.",
    }

    def name(self):
        return "s1download"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Sentinel-1 download")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Downloads the product archives of Sentinel-1 inventory features (all, the selected ones on the map, or "
            "the preselected complete mosaics) with the credentials of a QGIS authentication configuration, never "
            "written to the log or the outputs.\n"
            "Each product becomes id.zip in the output folder, complete or absent: the bytes arrive in a hidden "
            "partial folder, a broken transfer is resumed with HTTP Range requests (also by a run days later, after a "
            "cancel), and the archive is checked — size and MD5 or SHA-256 checksum when the catalogue gives them, "
            "a .SAFE manifest inside — before it gets its name. Products already complete are skipped.\n"
            "Outputs: the folder, the number of products downloaded and skipped, and the MB transferred. The "
            "archives feed 'Sentinel-1 GRD to analysis-ready backscatter (sarsen, no SNAP)' and the local mode of "
            "the inventory.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        tr = self.tr
        self.addParameter(QgsProcessingParameterFeatureSource(
            "INPUT", tr("Sentinel-1 products (inventory layer)"), [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterBoolean(
            "PRESELECTED_ONLY", tr("Only the preselected complete mosaics"), False))
        self.addParameter(QgsProcessingParameterAuthConfig(
            "CREDENTIALS", tr("Account (authentication configuration)"), optional=True))
        self.addParameter(enum_parameter(self, "AUTH_METHOD", "Authentication", AUTH_METHODS, "token"))
        self.addParameter(QgsProcessingParameterNumber(
            "TIMEOUT", tr("HTTP timeout (s)"), QgsProcessingParameterNumber.Double, 60.0, minValue=0.1,
            maxValue=3600.0))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", tr("Output folder")))
        self.addOutput(QgsProcessingOutputNumber("N_DOWNLOADED", tr("Products downloaded")))
        self.addOutput(QgsProcessingOutputNumber("N_SKIPPED", tr("Products already complete")))
        self.addOutput(QgsProcessingOutputNumber("MEGABYTES", tr("MB transferred")))

    def products(self, parameters, context):
        source = self.parameterAsSource(parameters, "INPUT", context)
        if source is None:
            raise QgsProcessingException(self.tr("The products layer cannot be read."))
        names = source.fields().names()
        missing = [n for n in ("id", "download_url", "checksum", "size_bytes", "selected") if n not in names]
        if missing:
            raise QgsProcessingException(self.tr(
                "The input layer lacks the field(s) {}: give the products layer of 'Sentinel-1 inventory (search and "
                "refine)'.").format(", ".join(missing)))
        preselected = self.parameterAsBoolean(parameters, "PRESELECTED_ONLY", context)
        products = []
        for feature in source.getFeatures(QgsFeatureRequest()):
            if preselected and feature["selected"] not in (True, 1, "true"):
                continue
            size = feature["size_bytes"]
            products.append(Product(str(feature["id"] or ""), str(feature["download_url"] or ""),
                                    str(feature["checksum"] or ""),
                                    int(size) if isinstance(size, (int, float)) and size == size else 0))
        return products

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        products = self.products(parameters, context)
        method = enum_value(self, parameters, "AUTH_METHOD", context, AUTH_METHODS)
        config_id = self.parameterAsString(parameters, "CREDENTIALS", context)
        token_url = setting(TOKEN_URL_SETTING).strip() if method == "token" else ""
        credentials = credentials_from_auth_config(config_id, token_url) if config_id else None
        first_url = products[0].url if products else ""
        session = Session(credentials, self.parameterAsDouble(parameters, "TIMEOUT", context),
                          qgis_proxy(first_url) if first_url else None, feedback.isCanceled)
        folder = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        log = lambda line: feedback.pushInfo(session.scrub(line))  # noqa: E731
        with output_folder_for(folder, keep_on_failure=True, feedback=feedback) as path:
            report = run_core(lambda progress, is_canceled: download_products(
                session, products, path, progress=progress, is_canceled=is_canceled, log=log), feedback)
        feedback.pushInfo(self.tr("{} product(s) downloaded ({:.1f} MB, {} resumed transfer(s)), {} already "
                                  "complete").format(report.fetched, report.bytes / 1e6, report.resumes,
                                                     report.skipped))
        return {"OUTPUT_FOLDER": path, "N_DOWNLOADED": report.fetched, "N_SKIPPED": report.skipped,
                "MEGABYTES": report.bytes / 1e6}
