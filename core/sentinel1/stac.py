"""Catalogue searches for Sentinel-1 products: a STAC API (Copernicus Data Space,
``POST <root>/search`` on collection ``sentinel-1-grd``, every page through the ``next`` links)
or ASF's search API (``GET …/services/search/param?…&output=geojson``, one answer of up to
``max_results`` products: ASF does not page). Both become the records of
:data:`core.sentinel1.inventory.INVENTORY_FIELDS`.

STAC properties read (STAC sat/sar/product extensions as CDSE writes them): ``start_datetime``
/ ``end_datetime`` (else ``datetime``), ``platform`` (sentinel-1a …), ``sat:relative_orbit``,
``sat:absolute_orbit``, ``sat:orbit_state`` (ascending/descending), ``sar:polarizations``,
``sar:instrument_mode``, ``product:type`` (IW_GRDH_1S) or ``sar:product_type``; the slice number
from ``s1:slice_number`` / ``sat:slice_number`` when present. The download URL is the ``product``
asset (any case; its ``alternate.https`` when the main href is not http), its checksum
``file:checksum`` (multihash hex: md5 ``d5 01 10 …``, sha256 ``12 20 …``) and size ``file:size``.
ASF properties: ``sceneName``, ``startTime``, ``stopTime``, ``platform``, ``pathNumber``,
``orbit``, ``flightDirection``, ``polarization``, ``beamModeType``, ``processingLevel``, ``url``,
``md5sum``, ``bytes``. The property filters are applied again to every product returned.
"""
from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from ..choices import Choices
from ..errors import UserInputError, check_canceled
from .http import Session
from .inventory import InventoryRequest, iso_utc, new_record, normalise_polarisations, passes, relative_orbit_of

SOURCES = Choices(("stac", "STAC API (Copernicus Data Space)"), ("asf", "ASF search API"),
                  ("folder", "Local folder of downloaded products (offline)"))
DEFAULT_STAC_URL = "https://stac.dataspace.copernicus.eu/v1"
DEFAULT_ASF_URL = "https://api.daac.asf.alaska.edu/services/search/param"
STAC_COLLECTION = "sentinel-1-grd"
PAGE_SIZE = 100
#: Pages read at most (a server repeating its next link would otherwise never end).
MAX_PAGES = 1000
MAX_ASF_RESULTS = 5000
#: ASF processing levels of a product type.
ASF_LEVELS = {"GRD": "GRD_HD,GRD_HS,GRD_MD,GRD_MS,GRD_FD"}
#: Multihash prefixes (code, length) → checksum algorithm.
_MULTIHASH = {"d50110": "md5", "1220": "sha256", "1114": "sha1"}


@dataclass
class SearchResult:
    """Records kept (sorted by start time), pages read, products returned and dropped."""

    records: List[Dict]
    pages: int = 0
    returned: int = 0
    dropped: int = 0
    messages: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------- STAC


def _platform(text: str) -> str:
    """'sentinel-1a' / 'Sentinel-1A' / 'S1A' → 'S1A'."""
    text = str(text or "").strip().upper()
    return "S1" + text[-1] if text and text[-1] in "ABCD" else text


def multihash_checksum(value: Optional[str]) -> str:
    """'md5:<hex>' / 'sha256:<hex>' of a multihash hex string (file:checksum), '' when unknown."""
    text = str(value or "").strip().lower()
    for prefix, name in _MULTIHASH.items():
        if text.startswith(prefix) and len(text) > len(prefix):
            return f"{name}:{text[len(prefix):]}"
    return ""


def _product_asset(item: dict) -> dict:
    assets = {str(k).lower(): v for k, v in (item.get("assets") or {}).items() if isinstance(v, dict)}
    return assets.get("product") or {}


def _asset_href(asset: dict) -> str:
    href = str(asset.get("href") or "")
    if not href.startswith(("http://", "https://")):
        href = str(((asset.get("alternate") or {}).get("https") or {}).get("href") or "")
    return href


def _product_type(properties: dict) -> str:
    text = str(properties.get("product:type") or properties.get("sar:product_type") or "").upper()
    return "GRD" if "GRD" in text else text


def _name_of(item: dict) -> str:
    """The product name of a STAC item: its id without CDSE's _COG / .SAFE suffixes."""
    name = str(item.get("id") or "")
    for suffix in (".SAFE", "_COG"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def stac_record(item: dict) -> Dict:
    """The inventory record of one STAC item."""
    p = item.get("properties") or {}
    name = _name_of(item)
    platform = _platform(p.get("platform") or name[:3])
    absolute = p.get("sat:absolute_orbit")
    relative = p.get("sat:relative_orbit")
    if relative is None and absolute is not None:
        relative = relative_orbit_of(platform, int(absolute))
    start = p.get("start_datetime") or p.get("datetime")
    stop = p.get("end_datetime") or start
    asset = _product_asset(item)
    slice_number = p.get("s1:slice_number", p.get("sat:slice_number"))
    size = asset.get("file:size")
    return new_record(
        id=name, platform=platform, start_time=iso_utc(_parse(start)), stop_time=iso_utc(_parse(stop)),
        relative_orbit=int(relative) if relative is not None else None,
        absolute_orbit=int(absolute) if absolute is not None else None,
        orbit_direction=str(p.get("sat:orbit_state") or "").upper(),
        slice_number=int(slice_number) if slice_number is not None else None,
        polarisations=" ".join(normalise_polarisations(p.get("sar:polarizations") or [])),
        product_type=_product_type(p), mode=str(p.get("sar:instrument_mode") or name[4:6]).upper(),
        download_url=_asset_href(asset), checksum=multihash_checksum(asset.get("file:checksum")),
        size_bytes=float(size) if size is not None else None, geometry=item.get("geometry"))


def _parse(text):
    from .inventory import parse_time

    if not text:
        raise UserInputError("A catalogue item has no datetime.")
    return parse_time(text)


def stac_search_body(request: InventoryRequest, collection: str = STAC_COLLECTION, limit: int = PAGE_SIZE) -> dict:
    """The first ``POST /search`` body: collection, AOI (intersects), period, page size."""
    start = request.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    end = request.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"collections": [collection], "intersects": request.aoi, "datetime": f"{start}/{end}", "limit": limit}


def _next_link(answer: dict) -> Optional[dict]:
    for link in answer.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            return link
    return None


def stac_pages(session: Session, root: str, body: dict, progress=None, log=None, is_canceled=None):
    """Yield the features of every result page: ``POST <root>/search``, then each ``next`` link (POST
    with its body — merged into the previous one when ``merge`` — or GET)."""
    url, method, page_body = root.rstrip("/") + "/search", "POST", dict(body)
    seen = set()
    for page in range(1, MAX_PAGES + 1):
        check_canceled(is_canceled)
        answer = session.json(url, page_body if method == "POST" else None, what=f"search (page {page})")
        features = answer.get("features")
        if not isinstance(features, list):
            raise UserInputError(f"{urllib.parse.urlsplit(url).netloc} answered without 'features': not a STAC "
                                 "API search. Check the STAC URL setting (e.g. " + DEFAULT_STAC_URL + ").")
        if log is not None:
            log(f"result page {page}: {len(features)} product(s)")
        if progress is not None:
            progress(95.0 * (1.0 - 0.5 ** page))
        yield page, features
        link = _next_link(answer)
        if link is None or not features:
            return
        method = str(link.get("method") or "GET").upper()
        if method == "POST":
            next_body = link.get("body") or {}
            page_body = {**page_body, **next_body} if link.get("merge") else (next_body or page_body)
        url = link["href"]
        signature = (url, json.dumps(page_body, sort_keys=True) if method == "POST" else "")
        if signature in seen:
            raise UserInputError(f"The STAC API repeats its next-page link ({url}); the search stopped at page "
                                 f"{page}. Try again later or report it to the catalogue.")
        seen.add(signature)
    raise UserInputError(f"The search has more than {MAX_PAGES} pages; narrow the dates or the area of interest.")


def search_stac(session: Session, root: str, request: InventoryRequest, collection: str = STAC_COLLECTION,
                progress: Optional[Callable[[float], None]] = None, log=None, is_canceled=None) -> SearchResult:
    """Every product of ``collection`` over the AOI in the period, filtered by ``request``."""
    request.validate()
    result = SearchResult([])
    found: Dict[str, Dict] = {}
    for page, features in stac_pages(session, root, stac_search_body(request, collection), progress, log,
                                     is_canceled):
        result.pages = page
        result.returned += len(features)
        for item in features:
            try:
                record = stac_record(item)
            except (UserInputError, ValueError, TypeError) as exc:
                result.messages.append(f"Skipped item {item.get('id')}: {exc}")
                continue
            found[record["id"]] = record
    return _filtered(result, found, request)


def _filtered(result: SearchResult, found: Dict[str, Dict], request: InventoryRequest) -> SearchResult:
    kept = [r for r in found.values() if passes(r, request)]
    result.dropped = len(found) - len(kept)
    result.records = sorted(kept, key=lambda r: (r["start_time"], r["id"]))
    return result


# --------------------------------------------------------------------------- ASF


def asf_query(request: InventoryRequest, max_results: int = MAX_ASF_RESULTS) -> Dict[str, str]:
    """The query parameters of ASF's search API for ``request`` (AOI as WKT, simplified to ≤ 300 points)."""
    from shapely.geometry import shape

    geometry = shape(request.aoi).buffer(0)
    tolerance = 0.0
    while len(getattr(geometry.convex_hull.exterior, "coords", [])) > 300 and tolerance < 1.0:
        tolerance = tolerance * 2 or 1e-4
        geometry = geometry.simplify(tolerance)
    query = {"platform": "SENTINEL-1", "processingLevel": ASF_LEVELS[request.product_type],
             "beamMode": request.mode, "intersectsWith": geometry.wkt,
             "start": request.start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": request.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "output": "geojson", "maxResults": str(int(max_results))}
    if request.orbit_direction != "any":
        query["flightDirection"] = request.orbit_direction
    if request.relative_orbits:
        query["relativeOrbit"] = ",".join(str(o) for o in request.relative_orbits)
    return query


def asf_record(feature: dict) -> Dict:
    """The inventory record of one feature of ASF's GeoJSON answer."""
    p = feature.get("properties") or {}
    name = str(p.get("sceneName") or p.get("fileID") or "")
    for suffix in ("-GRD_HD", "-GRD_HS", "-GRD_MD", "-GRD_MS", "-GRD_FD"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    platform = _platform(p.get("platform") or name[:3])
    md5 = str(p.get("md5sum") or "").strip().lower()
    size = p.get("bytes")
    return new_record(
        id=name, platform=platform, start_time=iso_utc(_parse(p.get("startTime"))),
        stop_time=iso_utc(_parse(p.get("stopTime") or p.get("startTime"))),
        relative_orbit=int(p["pathNumber"]) if p.get("pathNumber") is not None else None,
        absolute_orbit=int(p["orbit"]) if p.get("orbit") is not None else None,
        orbit_direction=str(p.get("flightDirection") or "").upper(), slice_number=None,
        polarisations=" ".join(normalise_polarisations(p.get("polarization"))),
        product_type=_product_type({"product:type": p.get("processingLevel")}),
        mode=str(p.get("beamModeType") or name[4:6]).upper(), download_url=str(p.get("url") or ""),
        checksum=f"md5:{md5}" if md5 else "", size_bytes=float(size) if size not in (None, "") else None,
        geometry=feature.get("geometry"))


def search_asf(session: Session, url: str, request: InventoryRequest, max_results: int = MAX_ASF_RESULTS,
               progress=None, log=None, is_canceled=None) -> SearchResult:
    """ASF's search API for ``request`` (one request; a full answer of ``max_results`` is reported)."""
    request.validate()
    check_canceled(is_canceled)
    answer = session.json(url + "?" + urllib.parse.urlencode(asf_query(request, max_results)), what="ASF search")
    features = answer.get("features")
    if not isinstance(features, list):
        raise UserInputError(f"{urllib.parse.urlsplit(url).netloc} answered without 'features': check the ASF "
                             f"URL setting (e.g. {DEFAULT_ASF_URL}).")
    result = SearchResult([], pages=1, returned=len(features))
    if log is not None:
        log(f"ASF answered {len(features)} product(s)")
    if len(features) >= max_results:
        result.messages.append(f"ASF returned the maximum of {max_results} products: there may be more; narrow the "
                               "dates, the area or the orbits.")
    found = {}
    for feature in features:
        try:
            record = asf_record(feature)
        except (UserInputError, ValueError, TypeError, KeyError) as exc:
            result.messages.append(f"Skipped {feature.get('properties', {}).get('sceneName')}: {exc}")
            continue
        found[record["id"]] = record
    if progress is not None:
        progress(95.0)
    return _filtered(result, found, request)
