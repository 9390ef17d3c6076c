"""The footprints layer of ``surfacemotion:planetsearch``: one polygon per scene (EPSG:4326), with
the fields every later step reads (``planetgroups``, ``buildpairs``, ``planetorder``). Defined once
here; the algorithms build their QGIS fields from it."""
from __future__ import annotations

from typing import Tuple

#: (field name, type, description with units). Types: "string", "double", "int", "bool".
#: ``acquired`` is ISO 8601 UTC text (``2021-07-18T15:15:02.450Z``); angles in degrees
#: (azimuths clockwise from north), percentages 0–100, cloud_cover 0–1, gsd in metres.
FOOTPRINT_FIELDS: Tuple[Tuple[str, str, str], ...] = (
    ("id", "string", "Planet item id (PS2 YYYYMMDD_HHMMSS_SSSS, SuperDove YYYYMMDD_HHMMSS_FF_SSSS)"),
    ("acquired", "string", "acquisition time, ISO 8601 UTC"),
    ("instrument", "string", "PS2, PS2.SD or PSB.SD"),
    ("satellite_id", "string", "satellite id"),
    ("view_angle", "double", "unsigned off-nadir view angle (deg)"),
    ("true_view_angle", "double", "signed view angle (deg), negative = satellite west of the scan line"),
    ("satellite_azimuth", "double", "azimuth from the scene towards the satellite (deg from north)"),
    ("sun_azimuth", "double", "sun azimuth (deg from north)"),
    ("sun_elevation", "double", "sun elevation (deg)"),
    ("cloud_cover", "double", "cloud cover fraction 0-1"),
    ("clear_percent", "double", "clear pixels (%)"),
    ("gsd", "double", "ground sample distance (m)"),
    ("ground_control", "bool", "orthorectified with ground control"),
    ("quality_category", "string", "standard or test"),
    ("publishing_stage", "string", "preview, standard or finalized"),
    ("aoi_coverage_pct", "double", "area(AOI ∩ footprint) / area(AOI) x 100, in an equal-area CRS (%)"),
    ("orbit", "string", "orbit direction: descending (imaged in daylight, local solar time 06-18 h: "
                        "PlanetScope's sun-synchronous day side) or ascending"),
)
#: Added by ``surfacemotion:planetgroups`` (NULL / -1 = in no group).
GROUP_FIELD = "group_id"
FIELD_NAMES = tuple(name for name, _, _ in FOOTPRINT_FIELDS)
