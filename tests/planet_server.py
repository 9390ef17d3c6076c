"""A local Planet Data API look-alike for the tests: a threaded HTTP server on 127.0.0.1 with

* ``POST /data/v1/quick-search`` (filters evaluated as the real API does: And/Or/Not, DateRange,
  Range, StringIn, Geometry (intersects), Permission) and ``GET /data/v1/searches/<id>/results``
  pages (``PAGE_SIZE`` items each, linked by ``_links._next``);
* realistic PSScene items (every property the Data API returns, PS2 / PS2.SD / PSB.SD ids and
  satellite ids, footprints as rotated quadrilaterals), built deterministically by :func:`build_items`;
* authentication as Planet: ``Authorization: api-key <key>`` or HTTP Basic with the key as user
  name; anything else → 401 with Planet's JSON answer;
* faults per path prefix: ``inject(prefix, status, count, headers)`` answers ``status`` to the
  next ``count`` requests (429 with Retry-After, 500 …); ``stall(prefix, seconds, count)`` waits
  before answering (timeouts).

It also serves as an HTTP proxy for ``http://`` URLs of any host (the request target is then the absolute
URL, recorded as ``target``), so proxy support is tested without leaving loopback.

Every request is recorded (method, path, Host, headers, body) in ``log`` so tests can assert the
API key never shows up elsewhere and only loopback was contacted.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import math
import threading
import time
import urllib.parse
import uuid
from loopback_http import LoopbackServer

API_KEY = "PLAK0123456789abcdefTESTKEY"
PAGE_SIZE = 5
#: Centre of the test scenes (lon, lat): a glacier in the Alaska Range.
CENTRE = (-147.40, 63.30)
#: Instruments cycled through by the items, with their satellite ids.
INSTRUMENTS = (("PS2", "1005"), ("PS2.SD", "2212"), ("PSB.SD", "2455"), ("PSB.SD", "241c"))


def scene_footprint(lon: float, lat: float, heading: float = 10.0, width_km: float = 24.0,
                    height_km: float = 8.0) -> dict:
    """A PlanetScope-like footprint: a ``width_km`` x ``height_km`` rectangle centred on
    (lon, lat), its long side rotated ``heading`` degrees from east, as a GeoJSON Polygon."""
    km_lon = 111.32 * math.cos(math.radians(lat))
    angle = math.radians(heading)
    corners = []
    for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        x, y = dx * width_km / 2, dy * height_km / 2
        xr, yr = x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)
        corners.append([round(lon + xr / km_lon, 6), round(lat + yr / 110.57, 6)])
    corners.append(corners[0])
    return {"type": "Polygon", "coordinates": [corners]}


def build_items(count: int = 17) -> list:
    """``count`` PSScene items, acquired every 3 days from 2021-07-02, shifted across the AOI so
    their AOI coverage differs, with varied view angles, cloud cover and quality."""
    items = []
    start = dt.datetime(2021, 7, 2, 20, 5, 11, 450000)
    for k in range(count):
        instrument, satellite = INSTRUMENTS[k % len(INSTRUMENTS)]
        moment = start + dt.timedelta(days=3 * k, minutes=7 * k, seconds=13 * k)
        stamp = moment.strftime("%Y%m%d_%H%M%S")
        item_id = f"{stamp}_{satellite}" if instrument == "PS2" else f"{stamp}_{(k * 7) % 100:02d}_{satellite}"
        lon = CENTRE[0] + 0.09 * ((k % 5) - 2)
        lat = CENTRE[1] + 0.035 * ((k % 3) - 1)
        satellite_azimuth = (95.0 + 37.0 * k) % 360.0
        view_angle = round(0.4 + (k * 0.61) % 5.0, 2)
        cloud = round(((k * 0.13) % 0.6), 2)
        clear = round(100.0 - cloud * 100.0 - (k % 4) * 2.5, 1)
        acquired = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        published = (moment + dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        properties = {
            "acquired": acquired, "anomalous_pixels": 0, "clear_confidence_percent": 90 + k % 9,
            "clear_percent": clear, "cloud_cover": cloud, "cloud_percent": int(cloud * 100),
            "ground_control": k % 6 != 5, "gsd": round(3.7 + 0.05 * (k % 5), 2),
            "heavy_haze_percent": 0, "instrument": instrument, "item_type": "PSScene",
            "light_haze_percent": k % 3, "pixel_resolution": 3, "provider": "planetscope",
            "published": published,
            "publishing_stage": "preview" if k % 7 == 6 else "standard" if k % 5 == 4 else "finalized",
            "quality_category": "test" if k % 8 == 7 else "standard",
            "satellite_azimuth": round(satellite_azimuth, 1), "satellite_id": satellite,
            "shadow_percent": k % 2, "snow_ice_percent": 35 + k % 20, "strip_id": str(5000000 + 37 * k),
            "sun_azimuth": round(150.0 + 1.5 * k, 1), "sun_elevation": round(48.0 - 0.8 * k, 1),
            "updated": published, "view_angle": view_angle, "visible_confidence_percent": 80 + k % 11,
            "visible_percent": 100 - k % 5,
        }
        items.append({
            "_links": {"_self": f"/data/v1/item-types/PSScene/items/{item_id}",
                       "assets": f"/data/v1/item-types/PSScene/items/{item_id}/assets/",
                       "thumbnail": f"/data/v1/item-types/PSScene/items/{item_id}/thumb"},
            "_permissions": ["assets.basic_analytic_4b:download", "assets.ortho_analytic_4b_sr:download",
                             "assets.ortho_udm2:download"],
            "assets": ["basic_analytic_4b", "basic_analytic_4b_rpc", "basic_analytic_4b_xml", "basic_udm2",
                       "ortho_analytic_4b", "ortho_analytic_4b_sr", "ortho_analytic_4b_xml", "ortho_udm2"],
            "geometry": scene_footprint(lon, lat), "id": item_id, "properties": properties, "type": "Feature",
        })
    return items


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def matches(item: dict, search_filter: dict) -> bool:
    """Whether ``item`` passes a Data API filter (the subset the plugin sends)."""
    kind, config = search_filter["type"], search_filter.get("config")
    if kind == "AndFilter":
        return all(matches(item, nested) for nested in config)
    if kind == "OrFilter":
        return any(matches(item, nested) for nested in config)
    if kind == "NotFilter":
        return not matches(item, config)
    if kind == "PermissionFilter":
        return True
    if kind == "GeometryFilter":
        from shapely.geometry import shape

        return shape(item["geometry"]).intersects(shape(config))
    value = item["properties"].get(search_filter["field_name"])
    if kind == "StringInFilter":
        return value in config
    if kind in ("RangeFilter", "DateRangeFilter"):
        convert = _time if kind == "DateRangeFilter" else float
        actual = convert(value) if kind == "DateRangeFilter" else float(value)
        for bound, test in (("gte", lambda a, b: a >= b), ("gt", lambda a, b: a > b),
                            ("lte", lambda a, b: a <= b), ("lt", lambda a, b: a < b)):
            if bound in config and not test(actual, convert(config[bound])):
                return False
        return True
    raise ValueError(f"filter type {kind} not supported by the fake server")


class PlanetServer(LoopbackServer):
    """Threaded loopback Planet Data API; ``url`` its base, ``log`` the requests, ``items`` the catalogue."""

    def __init__(self, items=None, api_key: str = API_KEY, page_size: int = PAGE_SIZE):
        self.items = build_items() if items is None else items
        self.api_key = api_key
        self.page_size = page_size
        self.log = []
        self.searches = {}  # search id -> matching items
        self.faults = []  # [prefix, status, count, headers]
        self.stalls = []  # [prefix, seconds, count]
        self.lock = threading.Lock()
        super().__init__()

    # ----- faults
    def inject(self, prefix: str, status: int, count: int = 1, headers=None) -> None:
        """Answer ``status`` to the next ``count`` requests whose path starts with ``prefix``."""
        self.faults.append([prefix, status, count, dict(headers or {})])

    def stall(self, prefix: str, seconds: float, count: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``count`` requests under ``prefix``."""
        self.stalls.append([prefix, seconds, count])

    def _take(self, table, path):
        with self.lock:
            for entry in table:
                if path.startswith(entry[0]) and entry[2] > 0:
                    entry[2] -= 1
                    return entry
        return None

    # ----- API
    def authorised(self, header: str) -> bool:
        if header.startswith("api-key "):
            return header[len("api-key "):] == self.api_key
        if header.startswith("Basic "):
            user = base64.b64decode(header[6:]).decode(errors="replace").split(":", 1)[0]
            return user == self.api_key
        return False

    def page(self, search_id: str, start: int, base: str) -> dict:
        """Page of results from item ``start``; links on ``base`` (the URL the client used, as Planet does)."""
        matching = self.searches[search_id]
        features = matching[start:start + self.page_size]
        links = {"_self": f"{base}/data/v1/searches/{search_id}/results?_page={start}",
                 "_first": f"{base}/data/v1/searches/{search_id}/results?_page=0"}
        if start + self.page_size < len(matching):
            links["_next"] = f"{base}/data/v1/searches/{search_id}/results?_page={start + self.page_size}"
        return {"_links": links, "features": features, "type": "FeatureCollection"}

    def route(self, method: str, path: str, query: dict, body: bytes, base: str):
        if method == "POST" and path == "/data/v1/quick-search":
            request = json.loads(body or b"{}")
            if request.get("item_types") != ["PSScene"]:
                return 400, {"general": [{"message": "item_types must be ['PSScene'] here"}], "field": {}}
            search_id = uuid.uuid4().hex
            self.searches[search_id] = [item for item in self.items if matches(item, request["filter"])]
            return 200, self.page(search_id, 0, base)
        if method == "GET" and path.startswith("/data/v1/searches/") and path.endswith("/results"):
            search_id = path.split("/")[4]
            if search_id not in self.searches:
                return 404, {"message": "search not found"}
            return 200, self.page(search_id, int(query.get("_page", ["0"])[0]), base)
        return 404, {"message": f"{path} not found"}

    def handle(self, handler, method: str) -> None:
        parsed = urllib.parse.urlparse(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.log.append({"method": method, "path": parsed.path, "query": parsed.query, "target": handler.path,
                             "host": handler.headers.get("Host", ""), "headers": dict(handler.headers.items()),
                             "body": body.decode(errors="replace"), "time": time.monotonic()})
        stall = self._take(self.stalls, parsed.path)
        if stall:
            time.sleep(stall[1])
        headers = {}
        fault = self._take(self.faults, parsed.path)
        if fault:
            status, headers = fault[1], fault[3]
            payload = {"message": f"injected {status}"}
        elif not self.authorised(handler.headers.get("Authorization", "")):
            status, payload = 401, {"message": "Please enter your API key, or email and password.",
                                    "errors": []}
        else:
            base = f"http://{handler.headers.get('Host') or self.url.split('//')[1]}"
            status, payload = self.route(method, parsed.path, urllib.parse.parse_qs(parsed.query), body, base)
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def requests_to(self, prefix: str) -> list:
        """Logged requests whose path starts with ``prefix``."""
        return [entry for entry in self.log if entry["path"].startswith(prefix)]
