"""surfacemotion:planetsearch — PlanetScope catalogue search (Planet Data API, ``planet`` SDK),
and the helpers every Planet algorithm shares: the API key (QGIS authentication database, else
the provider setting, else PL_API_KEY), the base URL and QGIS's proxy."""
from __future__ import annotations

import datetime as dt
import json
import os
import urllib.parse
from typing import Optional, Tuple

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsSettings,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDate, QDateTime, QTime, Qt, QVariant

from ..core.planet.client import DEFAULT_BASE_URL, open_planet, redact
from ..core.planet.schema import FOOTPRINT_FIELDS
from ..core.planet.search import (GROUND_CONTROL, GROUND_CONTROL_VALUES, INSTRUMENTS, PUBLISHING_STAGES, QUALITY,
                                  SearchRequest, search_footprints)
from ..core.planet.view_angle import DEFAULT_SCAN_LINE_AZIMUTH
from .base import (SinkGroup, StylePostProcessor, SurfaceMotionAlgorithm, core_errors_as_processing_errors,
                   enum_parameter, enum_value, enum_values)
from .itslive_data import WGS84, add_aoi_parameters, aoi_lonlat, date_parameter
from .settings import setting

API_KEY_PARAMETER = "API_KEY"
KEY_SETTING = "SURFACEMOTION_PLANET_API_KEY"
URL_SETTING = "SURFACEMOTION_PLANET_URL"
#: Header names of a QGIS "API Header" authentication configuration read as the Planet key.
HEADER_NAMES = ("authorization", "api-key", "x-api-key")

API_KEY_HELP = ("A QGIS authentication configuration holding your Planet API key (Settings → Options → "
                "Authentication: method Basic with the key as password, or API Header). Empty: the provider "
                "setting, else the PL_API_KEY environment variable.")


def add_api_key_parameter(algorithm) -> None:
    """The 'Planet API key' parameter: a QGIS authentication configuration id (optional)."""
    algorithm.addParameter(QgsProcessingParameterAuthConfig(
        API_KEY_PARAMETER, algorithm.tr("Planet API key (authentication configuration)"), optional=True))


def key_from_auth_config(config_id: str) -> str:
    """The Planet API key stored in QGIS authentication configuration ``config_id``: the password
    of a Basic configuration (its user name when the password is empty, as Planet's Basic auth
    takes the key as user name), or the value of an API Header configuration's Authorization /
    api-key header (without an ``api-key `` prefix)."""
    manager = QgsApplication.authManager()
    config = QgsAuthMethodConfig()
    if not config_id or not manager.loadAuthenticationConfig(config_id, config, True) or not config.isValid(True):
        raise QgsProcessingException(
            f"The QGIS authentication configuration '{config_id}' cannot be read (unknown id, or the master "
            "password was not given). Check it in Settings → Options → Authentication.")
    values = config.configMap()
    if config.method() == "Basic":
        key = values.get("password") or values.get("username") or ""
    else:
        headers = {name.lower(): value for name, value in values.items()}
        key = next((headers[name] for name in HEADER_NAMES if headers.get(name)), "")
        if not key and len(values) == 1:
            key = next(iter(values.values()))
    key = key.strip()
    if key.lower().startswith("api-key "):
        key = key[len("api-key "):].strip()
    if not key:
        raise QgsProcessingException(
            f"The QGIS authentication configuration '{config.name()}' ({config.method()}) holds no Planet API key: "
            "use method Basic with the key as password, or API Header with an Authorization header.")
    return key


def planet_api_key(algorithm, parameters, context) -> Tuple[str, str]:
    """(key, where it came from): the authentication configuration of the 'Planet API key'
    parameter, else the provider setting, else the PL_API_KEY environment variable. The
    second value names the source for messages and never contains the key."""
    config_id = algorithm.parameterAsString(parameters, API_KEY_PARAMETER, context) if (
        algorithm.parameterDefinition(API_KEY_PARAMETER) is not None) else ""
    if config_id:
        return key_from_auth_config(config_id), f"the QGIS authentication configuration '{config_id}'"
    key = (setting(KEY_SETTING) or "").strip()
    if key:
        return key, "the provider setting 'Planet API key' (Processing → Options → Providers)"
    key = os.environ.get("PL_API_KEY", "").strip()
    if key:
        return key, "the PL_API_KEY environment variable"
    raise QgsProcessingException(
        "No Planet API key: choose a QGIS authentication configuration holding it in 'Planet API key' (Settings → "
        "Options → Authentication: method Basic with the key as password), or set the provider setting, or the "
        "PL_API_KEY environment variable. The key is on your Planet account page (My Settings → API key).")


def planet_base_url() -> str:
    """The Planet API base URL of the provider setting (default https://api.planet.com)."""
    return (setting(URL_SETTING) or DEFAULT_BASE_URL).strip().rstrip("/")


def qgis_proxy(url: str = DEFAULT_BASE_URL) -> Optional[str]:
    """QGIS's HTTP proxy (Settings → Options → Network) as ``http://[user:password@]host:port`` for
    requests to ``url``, or None: proxy disabled, not an HTTP proxy, or ``url`` in the exclude list."""
    settings = QgsSettings()
    enabled = settings.value("proxy/proxyEnabled", False)
    if str(enabled).lower() not in ("true", "1"):
        return None
    kind = str(settings.value("proxy/proxyType", "HttpProxy") or "HttpProxy")
    host = str(settings.value("proxy/proxyHost", "") or "").strip()
    if kind not in ("HttpProxy", "HttpCachingProxy", "DefaultProxy") or not host:
        return None
    excludes = settings.value("proxy/proxyExcludedUrls", "") or ""
    excludes = excludes if isinstance(excludes, list) else [e for e in str(excludes).split("|") if e]
    if any(url.startswith(prefix.strip()) for prefix in excludes if prefix.strip()):
        return None
    port = str(settings.value("proxy/proxyPort", "") or "").strip()
    user = str(settings.value("proxy/proxyUser", "") or "")
    password = str(settings.value("proxy/proxyPassword", "") or "")
    credentials = (urllib.parse.quote(user, safe="") + (":" + urllib.parse.quote(password, safe="") if password
                                                          else "") + "@") if user else ""
    return f"http://{credentials}{host}{':' + port if port else ''}"


#: QGIS field types of the schema's types.
_FIELD_TYPES = {"string": QVariant.String, "double": QVariant.Double, "int": QVariant.Int, "bool": QVariant.Bool}


def footprint_fields() -> QgsFields:
    """The footprints layer's fields (core.planet.schema.FOOTPRINT_FIELDS)."""
    fields = QgsFields()
    for name, kind, _ in FOOTPRINT_FIELDS:
        fields.append(QgsField(name, _FIELD_TYPES[kind]))
    return fields


class PlanetSearchAlgorithm(SurfaceMotionAlgorithm):
    OUTPUT = "OUTPUT"
    group_id = "planet"
    PARAMETER_HELP = {
        "AOI_EXTENT": "Area of interest as an extent (any CRS); with polygons too, their union is used.",
        "AOI_LAYER": "Area of interest as polygons (any CRS); with an extent too, their union is used.",
        API_KEY_PARAMETER: API_KEY_HELP,
        "START_DATE": "First day searched (UTC), acquired on or after it.",
        "END_DATE": "Day after the last day searched (UTC): acquired before it (excluded).",
        "INSTRUMENTS": "PlanetScope instruments kept: PS2 (Dove Classic), PS2.SD (Dove-R), PSB.SD (SuperDove). "
                       "Offset tracking needs scenes of one sensor family.",
        "MAX_CLOUD_COVER": "Scenes with more cloud cover (% of the scene) are left out.",
        "MIN_CLEAR_PERCENT": "Scenes with fewer clear pixels (% of the scene, UDM2) are left out; 0 = no limit.",
        "MIN_VIEW_ANGLE": "Smallest off-nadir view angle kept (degrees, unsigned).",
        "MAX_VIEW_ANGLE": "Largest off-nadir view angle kept (degrees, unsigned).",
        "GROUND_CONTROL": "Keep only scenes orthorectified with (or without) ground control points.",
        "QUALITY": "Planet's quality category: standard only (recommended), or standard and test.",
        "PUBLISHING_STAGES": "Publishing stages kept (preview, standard, finalized); none chosen = all.",
        "MIN_AOI_COVERAGE": "Scenes covering less of the area of interest (% of its area, computed in an "
                            "equal-area projection) are left out.",
        "SCAN_LINE_AZIMUTH": "Azimuth of the scan line (degrees from north) used for the sign of the true view "
                             "angle; 10 for PlanetScope (typically 7-12).",
        "TIMEOUT": "Seconds to wait for each HTTP request before retrying (then giving up).",
        "OUTPUT": "Polygons (EPSG:4326) of the scene footprints with their properties, labelled by date.",
    }

    def name(self):
        return "planetsearch"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Search the PlanetScope catalogue")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Searches Planet's Data API for PlanetScope scenes (item type PSScene) over the area of interest "
            "(an extent, polygons in any CRS, or their union) acquired from the start date (UTC) to before the end "
            "date, through every page of results.\n"
            "Filters: instruments, maximum cloud cover (%), minimum clear percent (%), view angle range (degrees), "
            "ground control, quality category, publishing stage and minimum coverage of the area of interest (%, "
            "computed in an equal-area projection, not in degrees).\n"
            "Output: a polygon layer (EPSG:4326) of the footprints, labelled by acquisition date, with id, "
            "acquired, instrument, satellite_id, view_angle, true_view_angle (signed by the scan line), "
            "satellite_azimuth, sun_azimuth, sun_elevation, cloud_cover (0-1), clear_percent, gsd (m), "
            "ground_control, quality_category, publishing_stage, aoi_coverage_pct and orbit; and the number of "
            "scenes. The API key comes from a QGIS authentication configuration (else the provider setting, else "
            "PL_API_KEY) and is never written to the log or the outputs. Searching uses no download quota.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        tr = self.tr
        add_aoi_parameters(self)
        add_api_key_parameter(self)
        today = QDate.currentDate()
        self.addParameter(QgsProcessingParameterDateTime(
            "START_DATE", tr("Start date (acquired on or after, UTC)"), QgsProcessingParameterDateTime.Date,
            defaultValue=QDateTime(today.addDays(-365), QTime(0, 0), Qt.UTC)))
        self.addParameter(QgsProcessingParameterDateTime(
            "END_DATE", tr("End date (acquired before, UTC)"), QgsProcessingParameterDateTime.Date,
            defaultValue=QDateTime(today.addDays(1), QTime(0, 0), Qt.UTC)))
        self.addParameter(enum_parameter(self, "INSTRUMENTS", "Instruments", INSTRUMENTS, allowMultiple=True,
                                         defaultValue=list(range(len(INSTRUMENTS)))))
        for name, label, default in (("MAX_CLOUD_COVER", "Maximum cloud cover (%)", 10.0),
                                     ("MIN_CLEAR_PERCENT", "Minimum clear percent (%)", 0.0),
                                     ("MIN_VIEW_ANGLE", "Minimum view angle (degrees)", 0.0),
                                     ("MAX_VIEW_ANGLE", "Maximum view angle (degrees)", 30.0),
                                     ("MIN_AOI_COVERAGE", "Minimum coverage of the area of interest (%)", 0.0)):
            high = 30.0 if "VIEW_ANGLE" in name else 100.0
            self.addParameter(QgsProcessingParameterNumber(
                name, tr(label), QgsProcessingParameterNumber.Double, default, minValue=0.0, maxValue=high))
        self.addParameter(enum_parameter(self, "GROUND_CONTROL", "Ground control", GROUND_CONTROL, "either"))
        self.addParameter(enum_parameter(self, "QUALITY", "Quality category", QUALITY, "standard"))
        self.addParameter(enum_parameter(self, "PUBLISHING_STAGES", "Publishing stages (none = all)", PUBLISHING_STAGES,
                                         allowMultiple=True, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "SCAN_LINE_AZIMUTH", tr("Scan-line azimuth (degrees)"), QgsProcessingParameterNumber.Double,
            DEFAULT_SCAN_LINE_AZIMUTH, minValue=0.0, maxValue=90.0))
        self.addParameter(QgsProcessingParameterNumber(
            "TIMEOUT", tr("HTTP timeout (s)"), QgsProcessingParameterNumber.Double, 60.0, minValue=0.1,
            maxValue=3600.0))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT, tr("Scene footprints"), QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputNumber("N_SCENES", tr("Number of scenes")))

    def search_request(self, parameters, context) -> SearchRequest:
        """The core request of the parameters (validated before any request to the server)."""
        aoi = aoi_lonlat(self, parameters, context)
        start = date_parameter(self, parameters, "START_DATE", context)
        end = date_parameter(self, parameters, "END_DATE", context)
        instruments = enum_values(self, parameters, "INSTRUMENTS", context, INSTRUMENTS)
        stages = enum_values(self, parameters, "PUBLISHING_STAGES", context, PUBLISHING_STAGES)
        number = lambda name: self.parameterAsDouble(parameters, name, context)  # noqa: E731
        quality = enum_value(self, parameters, "QUALITY", context, QUALITY)
        request = SearchRequest(
            aoi, dt.datetime(start.year, start.month, start.day), dt.datetime(end.year, end.month, end.day),
            instruments, number("MAX_CLOUD_COVER"), number("MIN_CLEAR_PERCENT"),
            (number("MIN_VIEW_ANGLE"), number("MAX_VIEW_ANGLE")),
            GROUND_CONTROL_VALUES[enum_value(self, parameters, "GROUND_CONTROL", context, GROUND_CONTROL)],
            () if quality == "any" else ("standard",), stages, number("MIN_AOI_COVERAGE"),
            number("SCAN_LINE_AZIMUTH"))
        with core_errors_as_processing_errors():
            request.validate()
        return request

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        request = self.search_request(parameters, context)
        key, source = planet_api_key(self, parameters, context)
        base_url = planet_base_url()
        feedback.pushInfo(self.tr("Searching {} (key from {})").format(base_url, source))
        log = lambda line: feedback.pushInfo(redact(line, key))  # noqa: E731
        with core_errors_as_processing_errors():
            with open_planet(key, base_url, qgis_proxy(base_url), self.parameterAsDouble(parameters, "TIMEOUT",
                             context), feedback.isCanceled, key_source=source) as client:
                result = search_footprints(client, request, feedback.setProgress, feedback.isCanceled, log)
        feedback.pushInfo(self.tr("{} scene(s) returned in {} page(s); {} left out by the property filters, {} "
                                  "covering less than {:g} % of the area of interest; {} kept").format(
            result.returned, result.pages, result.dropped_filters, result.dropped_coverage, request.min_aoi_coverage,
            len(result.records)))
        fields = footprint_fields()
        with SinkGroup(self, parameters, context, feedback) as sinks:
            sink = sinks.open(self.OUTPUT, fields, QgsWkbTypes.MultiPolygon, QgsCoordinateReferenceSystem(WGS84))
            for record in result.records:
                feature = QgsFeature(fields)
                geometry = QgsGeometry.fromWkt(_geojson_wkt(record["geometry"]))
                geometry.convertToMultiType()
                feature.setGeometry(geometry)
                feature.setAttributes([record[name] for name, _, _ in FOOTPRINT_FIELDS])
                sink.add(feature)
            sink_id = sink.close()
        if context.willLoadLayerOnCompletion(sink_id):
            name = self.tr("Planet footprints {} → {} ({} scenes)").format(
                f"{request.start:%Y-%m-%d}", f"{request.end:%Y-%m-%d}", len(result.records))
            context.layerToLoadOnCompletionDetails(sink_id).setPostProcessor(
                StylePostProcessor.create("planet_footprints", layer_name=name))
        if not result.records:
            feedback.reportError(self.tr("No scene matches: widen the dates or the filters."), False)
        return {self.OUTPUT: sink_id, "N_SCENES": len(result.records)}


def _geojson_wkt(geometry: dict) -> str:
    from shapely.geometry import shape

    return shape(json.loads(json.dumps(geometry))).wkt
