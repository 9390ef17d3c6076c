"""PlanetScope catalogue search (``surfacemotion:planetsearch``): a Data API quick search of
PSScene items through the ``planet`` SDK, all result pages, turned into footprint records with
the fields of :data:`core.planet.schema.FOOTPRINT_FIELDS`.

Conventions: dates are UTC, the end date is excluded; cloud cover is a fraction 0–1 (the
parameter is given in %), percentages 0–100, angles in degrees. The filters are sent to the
server and applied again to every item returned (so the result is exact whatever the server
does with a filter). ``aoi_coverage_pct`` = area(AOI ∩ footprint) / area(AOI) × 100 in a Lambert
azimuthal equal-area projection centred on the AOI (areas are exact there, unlike in degrees).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..choices import Choices
from ..errors import UserInputError, check_canceled
from .areas import densified, equal_area_projector
from .schema import FIELD_NAMES
from .view_angle import DEFAULT_SCAN_LINE_AZIMUTH, true_view_angle

ITEM_TYPE = "PSScene"
#: PlanetScope instruments: Dove Classic, Dove-R, SuperDove.
INSTRUMENTS = Choices(("PS2", "PS2 (Dove Classic)"), ("PS2.SD", "PS2.SD (Dove-R)"), ("PSB.SD", "PSB.SD (SuperDove)"))
#: Planet's publishing stages of an item, earliest first.
PUBLISHING_STAGES = Choices(("preview", "preview"), ("standard", "standard"), ("finalized", "finalized"))
#: Quality categories kept: standard only, or standard and test (empty tuple = any).
QUALITY = Choices(("standard", "Standard only"), ("any", "Standard and test"))
#: Ground control: either, with only, without only (SearchRequest.ground_control None / True / False).
GROUND_CONTROL = Choices(("either", "Either"), ("with", "With ground control only"),
                         ("without", "Without ground control only"))
GROUND_CONTROL_VALUES = {"either": None, "with": True, "without": False}


@dataclass
class SearchRequest:
    """What to search for. ``aoi``: GeoJSON Polygon/MultiPolygon in EPSG:4326 (lon, lat);
    ``start`` ≤ acquired < ``end`` (UTC); ``max_cloud_cover`` and ``min_clear_percent`` in %;
    ``view_angle_range`` (min, max) of the unsigned view angle in degrees; ``ground_control``
    None = either; ``quality_categories`` / ``publishing_stages`` empty = any;
    ``min_aoi_coverage`` in % of the AOI area."""

    aoi: dict
    start: dt.datetime
    end: dt.datetime
    instruments: Sequence[str] = tuple(INSTRUMENTS)
    max_cloud_cover: float = 100.0
    min_clear_percent: float = 0.0
    view_angle_range: Tuple[float, float] = (0.0, 30.0)
    ground_control: Optional[bool] = None
    quality_categories: Sequence[str] = ("standard",)
    publishing_stages: Sequence[str] = ()
    min_aoi_coverage: float = 0.0
    scan_line_azimuth: float = DEFAULT_SCAN_LINE_AZIMUTH

    def validate(self) -> None:
        """Raise :class:`UserInputError` for a request that cannot find anything."""
        from shapely.geometry import shape

        if not self.aoi or shape(self.aoi).is_empty or shape(self.aoi).area <= 0:
            raise UserInputError("The area of interest is empty: give an extent or a polygon layer with an area.")
        if self.end <= self.start:
            raise UserInputError(f"The end date ({self.end:%Y-%m-%d}) must be after the start date "
                                 f"({self.start:%Y-%m-%d}); the end date is excluded.")
        unknown = [name for name in self.instruments if name not in INSTRUMENTS]
        if not self.instruments or unknown:
            raise UserInputError(f"Instruments must be chosen among {', '.join(INSTRUMENTS)}"
                                 + (f" (got {', '.join(unknown)})." if unknown else "."))
        low, high = self.view_angle_range
        if low > high:
            raise UserInputError(f"The minimum view angle ({low:g}°) is larger than the maximum ({high:g}°).")
        for name, value in (("Maximum cloud cover", self.max_cloud_cover), ("Minimum clear percent",
                            self.min_clear_percent), ("Minimum AOI coverage", self.min_aoi_coverage)):
            if not 0.0 <= value <= 100.0:
                raise UserInputError(f"{name} must be between 0 and 100 % (got {value:g}).")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)


def search_filter(request: SearchRequest) -> dict:
    """The Data API filter (``planet.data_filter``) of ``request``."""
    from planet import data_filter as f

    low, high = request.view_angle_range
    filters = [
        f.geometry_filter(request.aoi),
        f.date_range_filter("acquired", gte=_utc(request.start), lt=_utc(request.end)),
        f.string_in_filter("instrument", list(request.instruments)),
        f.range_filter("cloud_cover", lte=request.max_cloud_cover / 100.0),
        f.range_filter("view_angle", gte=low, lte=high),
        f.permission_filter(),
    ]
    if request.min_clear_percent > 0:
        filters.append(f.range_filter("clear_percent", gte=request.min_clear_percent))
    if request.quality_categories:
        filters.append(f.string_in_filter("quality_category", list(request.quality_categories)))
    if request.publishing_stages:
        filters.append(f.string_in_filter("publishing_stage", list(request.publishing_stages)))
    return f.and_filter(filters)


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def item_passes(item: dict, request: SearchRequest) -> bool:
    """Whether an item's properties satisfy every property filter of ``request`` (not the AOI)."""
    p = item.get("properties", {})
    low, high = request.view_angle_range
    try:
        acquired = _parse_time(p["acquired"])
    except (KeyError, ValueError):
        return False
    checks = [
        _utc(request.start) <= acquired < _utc(request.end),
        p.get("instrument") in request.instruments,
        _number(p.get("cloud_cover")) <= request.max_cloud_cover / 100.0 + 1e-12,
        _number(p.get("clear_percent"), 100.0) >= request.min_clear_percent,
        low <= _number(p.get("view_angle")) <= high,
        request.ground_control is None or bool(p.get("ground_control")) == request.ground_control,
        not request.quality_categories or p.get("quality_category") in request.quality_categories,
        not request.publishing_stages or p.get("publishing_stage") in request.publishing_stages,
    ]
    return all(checks)


def _number(value, missing: float = float("nan")) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return missing


def coverage_percent(aoi: dict, footprints: Sequence[dict]) -> np.ndarray:
    """Percent of the AOI's area covered by each footprint (GeoJSON, lon/lat), in an equal-area CRS."""
    project = equal_area_projector([aoi])
    area = project(densified(aoi))
    total = area.area
    out = np.zeros(len(footprints))
    for k, footprint in enumerate(footprints):
        out[k] = 100.0 * area.intersection(project(densified(footprint))).area / total
    return out


def orbit_direction(acquired: dt.datetime, longitude: float) -> str:
    """``descending`` for a scene imaged in daylight (local solar time 06–18 h at its longitude),
    ``ascending`` otherwise: PlanetScope's sun-synchronous orbits cross the day side southbound."""
    hours = (acquired.hour + acquired.minute / 60.0 + acquired.second / 3600.0 + longitude / 15.0) % 24.0
    return "descending" if 6.0 <= hours < 18.0 else "ascending"


def footprint_record(item: dict, coverage: float, scan_line_azimuth: float = DEFAULT_SCAN_LINE_AZIMUTH) -> Dict:
    """One footprint record (keys :data:`FIELD_NAMES` plus ``geometry``, GeoJSON lon/lat) of an item."""
    from shapely.geometry import shape

    p = item["properties"]
    view, azimuth = _number(p.get("view_angle")), _number(p.get("satellite_azimuth"))
    acquired = _parse_time(p["acquired"])
    centre = shape(item["geometry"]).centroid
    record = {
        "id": str(item["id"]), "acquired": str(p["acquired"]), "instrument": p.get("instrument"),
        "satellite_id": p.get("satellite_id"), "view_angle": view,
        "true_view_angle": float(true_view_angle(view, azimuth, scan_line_azimuth)),
        "satellite_azimuth": azimuth, "sun_azimuth": _number(p.get("sun_azimuth")),
        "sun_elevation": _number(p.get("sun_elevation")), "cloud_cover": _number(p.get("cloud_cover")),
        "clear_percent": _number(p.get("clear_percent")), "gsd": _number(p.get("gsd")),
        "ground_control": bool(p.get("ground_control")), "quality_category": p.get("quality_category"),
        "publishing_stage": p.get("publishing_stage"), "aoi_coverage_pct": float(coverage),
        "orbit": orbit_direction(acquired, centre.x), "geometry": item["geometry"],
    }
    assert tuple(key for key in record if key != "geometry") == FIELD_NAMES
    return record


@dataclass
class SearchResult:
    """Footprint records sorted by acquisition time, and what the search saw."""

    records: List[Dict]
    pages: int
    returned: int
    dropped_coverage: int = 0
    dropped_filters: int = 0
    messages: List[str] = field(default_factory=list)


def search_footprints(client, request: SearchRequest, progress: Optional[Callable[[float], None]] = None,
                      is_canceled: Optional[Callable[[], bool]] = None,
                      log: Optional[Callable[[str], None]] = None) -> SearchResult:
    """Run ``request`` with ``client`` (a ``planet.Planet`` from :func:`client.open_planet`) through
    every result page; ``progress`` after each page (percent, approaching 95 as pages come in),
    ``log`` a line per page; ``is_canceled`` checked after every item (the client checks it before
    every request, so a cancel stops before the next page is asked for). Returns the footprints
    covering at least ``min_aoi_coverage`` % of the AOI."""
    request.validate()
    pages = _PageCounter(client)
    items: List[dict] = []
    reported = 0
    for item in client.data.search([ITEM_TYPE], search_filter(request), limit=0):
        while reported < pages.count:  # a page arrived: its first item is here
            reported += 1
            _report_page(reported, progress, log)
        items.append(item)
        check_canceled(is_canceled)
    while reported < pages.count:  # a last page without items
        reported += 1
        _report_page(reported, progress, log)
    unique = list({item["id"]: item for item in items}.values())
    kept = [item for item in unique if item_passes(item, request)]
    coverage = coverage_percent(request.aoi, [item["geometry"] for item in kept])
    records = [footprint_record(item, pct, request.scan_line_azimuth)
               for item, pct in zip(kept, coverage) if pct >= request.min_aoi_coverage]
    records.sort(key=lambda record: (_parse_time(record["acquired"]), record["id"]))
    if progress is not None:
        progress(100.0)
    return SearchResult(records, pages.count, len(items), dropped_coverage=len(kept) - len(records),
                        dropped_filters=len(unique) - len(kept))


def _report_page(page: int, progress, log) -> None:
    if log is not None:
        log(f"result page {page} received")
    if progress is not None:
        progress(95.0 * (1.0 - 0.5 ** page))


class _PageCounter:
    """Counts the successful result-page responses of ``client``'s session (quick-search and
    ``searches/<id>/results``), through an httpx response hook."""

    def __init__(self, client):
        self.count = 0
        hooks = client._session._client.event_hooks
        hooks["response"] = [*hooks.get("response", []), self._seen]

    async def _seen(self, response) -> None:
        path = response.request.url.path
        if response.status_code == 200 and (path.endswith("/quick-search") or path.endswith("/results")):
            self.count += 1
