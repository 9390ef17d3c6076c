"""surfacemotion:planetorder — order PlanetScope scenes (Orders API) and download them, verified, for the
offset-tracking chain (core/planet/orders.py does the work)."""
import json
import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ..core.errors import Cancelled
from ..core.itslive.cubes import union_lonlat
from ..core.planet.client import open_planet, redact
from ..core.planet.orders import BUNDLES, ORDER_FILE, is_clipped, run_order
from ..core.planet.schema import FIELD_NAMES
from .base import (SurfaceMotionAlgorithm, core_errors_as_processing_errors, enum_parameter, enum_value,
                   output_folder_for, polygons_in_crs, require_geometry)
from .planet import (API_KEY_HELP, API_KEY_PARAMETER, add_api_key_parameter, planet_api_key, planet_base_url,
                     qgis_proxy)

WGS84 = "EPSG:4326"
#: Seconds between two order polls; SURFACEMOTION_PLANET_POLL_SECONDS overrides it (tests, debugging).
POLL_SECONDS = 10.0


def poll_seconds() -> float:
    """The order poll interval (s)."""
    try:
        return max(0.01, float(os.environ.get("SURFACEMOTION_PLANET_POLL_SECONDS", POLL_SECONDS)))
    except ValueError:
        return POLL_SECONDS


def is_temporary(folder: str) -> bool:
    """True for a folder inside Processing's temporary folder (removed when QGIS exits)."""
    from qgis.core import QgsProcessingUtils

    temporary = os.path.realpath(QgsProcessingUtils.tempFolder())
    return os.path.realpath(folder).startswith(temporary + os.sep)


class PlanetOrderAlgorithm(SurfaceMotionAlgorithm):
    """Ids (selected footprints or a list) + bundle → estimate, confirmed order, verified download."""

    group_id = "planet"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    PARAMETER_HELP = {
        API_KEY_PARAMETER: API_KEY_HELP,
        "FOOTPRINTS": "The footprints layer of 'Search the PlanetScope catalogue' (field id); tick 'Selected "
                      "features only' to order the selected scenes. Their footprints give the quota estimate.",
        "IDS": "Item ids to order, comma-separated (e.g. 20210718_151502_62_2455), instead of or in addition to "
               "the footprints; their footprints are looked up in the Data API.",
        "BUNDLE": "analytic_sr_udm2 / analytic_8b_sr_udm2: L3B surface reflectance clipped to the area of "
                  "interest; basic_analytic_udm2: full L1B scenes with RPC and XML metadata (no clip).",
        "AOI": "Polygons (any CRS) the L3B scenes are clipped to; their union is used. Required for the L3B "
               "bundles, ignored for L1B.",
        "CONFIRM": "Unticked: only the estimated quota (km²) is reported and nothing is ordered or written. "
                   "Ticked: the order is placed and uses your Planet quota.",
        "OUTPUT_FOLDER": "Folder of the delivered files (flat, ready for 'Extract band') and of planet_order.json, "
                         "the order id: a later run with this folder resumes that order.",
    }

    def name(self):
        return "planetorder"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Order and download PlanetScope scenes")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Orders PlanetScope scenes (PSScene) with the Planet Orders API and downloads them.\n"
            "Scenes: the (selected) features of a footprints layer and/or a list of item ids. Bundles: L3B "
            "surface reflectance with UDM2, 4 or 8 bands, clipped to the area of interest; or L1B "
            "basic_analytic_udm2, full scenes with RPC and XML metadata.\n"
            "Quota: the estimate in km² (footprint ∩ area of interest for clipped bundles, whole footprints "
            "otherwise, computed in an equal-area projection) is reported first. Nothing is ordered unless "
            "'Place the order (uses quota)' is ticked; an order cannot be undone once Planet processes it.\n"
            "The order is polled every 10 s for up to 2 days (progress; cancel stops within about a second and "
            "cancels a still queued order). Every file is checked against the MD5 of Planet's manifest before it gets "
            "its name; a file already there with the right MD5 is not downloaded again. The order id is kept "
            "in planet_order.json: running again with the same output folder resumes the order instead of "
            "placing a new one.\n"
            "Outputs: the folder, the scene rasters (input of 'Extract band'; the UDM2 masks lie next to "
            "them), the order id, the estimated quota (km²) and the ids Planet did not deliver.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFeatureSource(
            "FOOTPRINTS", self.tr("Footprints (selected features)"), [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterString("IDS", self.tr("Item ids"), optional=True))
        self.addParameter(enum_parameter(self, "BUNDLE", "Bundle", BUNDLES, default="analytic_sr_udm2"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "AOI", self.tr("Area of interest (clip)"), [QgsProcessing.TypeVectorPolygon], optional=True))
        add_api_key_parameter(self)
        self.addParameter(QgsProcessingParameterBoolean(
            "CONFIRM", self.tr("Place the order (uses quota)"), defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers("SCENES", self.tr("Scene rasters")))
        self.addOutput(QgsProcessingOutputString("ORDER_ID", self.tr("Planet order id")))
        self.addOutput(QgsProcessingOutputNumber("QUOTA_KM2", self.tr("Estimated quota (km²)")))
        self.addOutput(QgsProcessingOutputString("FAILED_IDS", self.tr("Ids not delivered (comma-separated)")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        ids, footprints = self._scenes(parameters, context)
        bundle = enum_value(self, parameters, "BUNDLE", context, BUNDLES)
        aoi = self._aoi(parameters, context) if is_clipped(bundle) else None
        confirm = self.parameterAsBool(parameters, "CONFIRM", context)
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        key, source = planet_api_key(self, parameters, context)
        scrub = lambda text: redact(text, key)  # noqa: E731
        base_url = planet_base_url()
        resumable = os.path.isfile(os.path.join(folder, ORDER_FILE))
        result = None

        def run(target):
            try:
                return order_into(target)
            except Cancelled as exc:  # the core says what happened to the order and the files
                raise QgsProcessingException(scrub(str(exc))) from None

        def order_into(target):
            with open_planet(key, base_url, qgis_proxy(base_url), is_canceled=feedback.isCanceled,
                             key_source=source) as client:
                return run_order(client, ids, bundle, aoi, target, confirm, footprints, poll_seconds=poll_seconds(),
                                 progress=feedback.setProgress, is_canceled=feedback.isCanceled,
                                 log=lambda text: feedback.pushInfo(scrub(text)),
                                 warn=lambda text: feedback.reportError(scrub(text), False), scrub=scrub)

        if confirm and not resumable and is_temporary(folder):
            feedback.reportError(self.tr(
                "The output folder is a temporary folder: QGIS removes it on exit, and with it planet_order.json, "
                "which a later run needs to resume this order. Choose a folder of your own to be able to resume."),
                False)
        if not confirm and not resumable:  # the estimate only: no folder is made, nothing written
            with core_errors_as_processing_errors():
                result = run(folder)
        else:
            with output_folder_for(folder, keep_on_failure=True, feedback=feedback) as target:
                with core_errors_as_processing_errors():
                    result = run(target)
        feedback.setProgress(100)
        return {self.OUTPUT_FOLDER: folder if result.order_id else "", "SCENES": result.scenes,
                "ORDER_ID": result.order_id, "QUOTA_KM2": result.quota_km2,
                "FAILED_IDS": ",".join(result.failed_ids)}

    def _scenes(self, parameters, context):
        """(ids, {id: lon/lat GeoJSON footprint}) from the footprints layer and the id list."""
        ids, footprints = [], {}
        source = self.parameterAsSource(parameters, "FOOTPRINTS", context)
        if source is not None:
            label = self.parameterDefinition("FOOTPRINTS").description()
            require_geometry(source, [QgsWkbTypes.PolygonGeometry], label)
            if source.fields().indexOf("id") < 0:
                raise QgsProcessingException(
                    f"{label}: '{source.sourceName()}' has no field 'id'; give the footprints layer of 'Search the "
                    f"Planet catalogue' (fields {', '.join(FIELD_NAMES[:4])}, …).")
            transform = QgsCoordinateTransform(source.sourceCrs(), QgsCoordinateReferenceSystem(WGS84),
                                               context.transformContext())
            for feature in source.getFeatures():
                item = str(feature["id"] or "").strip()
                geometry = feature.geometry()
                if item and not geometry.isEmpty():
                    geometry.transform(transform)
                    footprints[item] = json.loads(geometry.asJson())
                ids.append(item)
        ids += [part for part in self.parameterAsString(parameters, "IDS", context).replace(";", ",").split(",")]
        return [item for item in ids if item.strip()], footprints

    def _aoi(self, parameters, context):
        """The AOI polygons' union as lon/lat GeoJSON, or None."""
        source = self.parameterAsSource(parameters, "AOI", context)
        if source is None:
            return None
        geometries = polygons_in_crs(source, QgsCoordinateReferenceSystem(WGS84).toWkt(), context,
                                     self.parameterDefinition("AOI").description())
        with core_errors_as_processing_errors():
            return union_lonlat(geometries)
