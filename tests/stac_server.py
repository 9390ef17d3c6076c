"""A local Sentinel-1 catalogue and download look-alike for the tests (threaded HTTP on 127.0.0.1):

* ``POST /v1/search``: a STAC API search (collections, intersects, datetime "start/end") answering
  ``page_size`` items per page with a ``next`` link (POST, ``{"token": …}``, ``merge: true``, as
  pgstac / the Copernicus Data Space do), items as CDSE writes them (``sat:*``, ``sar:*``,
  ``product:type``, a ``Product`` asset with ``file:checksum`` multihash and ``file:size``);
  ``get_paging=True`` gives GET next links instead;
* ``GET /asf``: ASF's search API (``output=geojson``: sceneName, pathNumber, flightDirection, …);
* ``POST /token``: OAuth2 password grant (client_id cdse-public) → ``access_token``;
* ``GET /download/<id>.zip``: the product archive (a real zip holding ``<id>.SAFE/manifest.safe``,
  made from the manifest of the test product in tests/data/s1, and a measurement file), only
  with ``Authorization: Bearer <token>`` or Basic user:password; ``Range`` answered with 206;
* faults per path prefix: ``inject(prefix, status, count)``, ``stall(prefix, seconds, count)``,
  ``truncate(prefix, bytes, count)`` (announce the whole length, close after ``bytes``),
  ``ignore_range`` (answer 200 with everything to a Range request);
* ``GET /redirect/<id>.zip`` (authorised) → 302 to ``http://localhost:<port>/storage/<id>.zip``, which
  refuses any Authorization header (as a signed S3 URL does); ``GET /login-redirect/<id>.zip`` → 302 to
  ``localhost …/login/<id>.zip``, which answers 401 with a Basic challenge until given the account
  (NASA Earthdata's login host).

Every request is logged (method, path, headers, body, Range).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import re
import threading
import time
import urllib.parse
import zipfile

from loopback_http import LoopbackServer

USER, PASSWORD = "s1tester@example.org", "p4ss:wörd"
TOKEN = "eyJTESTTOKEN0123456789"
PAGE_SIZE = 4
#: Area of interest of the tests (lon/lat box): 11.0-11.4 E, 45.0-45.3 N.
AOI_BOX = (11.0, 45.0, 11.4, 45.3)
AOI = {"type": "Polygon", "coordinates": [[[11.0, 45.0], [11.4, 45.0], [11.4, 45.3], [11.0, 45.3], [11.0, 45.0]]]}
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "s1")
MANIFEST = os.path.join(DATA, "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE",
                        "manifest.safe")
#: Size of the measurement member of each archive (bytes): several 64 KiB chunks, so truncation bites.
MEASUREMENT_BYTES = 300_000


def box(west, south, east, north) -> dict:
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                [west, south]]]}


#: (platform, start, relative orbit, direction, slice, polarisations, footprint box (w, s, e, n)).
#: Track 117 ascending VV VH: two slices (south, north) each day, one day with the north slice only;
#: track 95 descending VV VH: one slice covering the AOI, two days; track 168 ascending VV only;
#: one product outside the AOI; one HH HV product; one product after the test period.
PRODUCTS = (
    ("S1A", "2021-06-03T17:20:10", 117, "ASCENDING", 4, "VV VH", (10.6, 44.70, 11.9, 45.16)),
    ("S1A", "2021-06-03T17:20:35", 117, "ASCENDING", 5, "VV VH", (10.6, 45.12, 11.9, 45.60)),
    ("S1A", "2021-06-15T17:20:10", 117, "ASCENDING", 4, "VV VH", (10.6, 44.70, 11.9, 45.16)),
    ("S1A", "2021-06-15T17:20:35", 117, "ASCENDING", 5, "VV VH", (10.6, 45.12, 11.9, 45.60)),
    ("S1A", "2021-06-27T17:20:35", 117, "ASCENDING", 5, "VV VH", (10.6, 45.15, 11.9, 45.60)),
    ("S1B", "2021-06-09T17:20:10", 117, "ASCENDING", 4, "VV VH", (10.6, 44.70, 11.9, 45.16)),
    ("S1B", "2021-06-09T17:20:35", 117, "ASCENDING", 5, "VV VH", (10.6, 45.12, 11.9, 45.60)),
    ("S1A", "2021-06-05T05:30:00", 95, "DESCENDING", 9, "VV VH", (10.5, 44.60, 12.0, 45.70)),
    ("S1B", "2021-06-11T05:30:00", 95, "DESCENDING", 9, "VV VH", (10.5, 44.60, 12.0, 45.70)),
    ("S1A", "2021-06-08T17:12:00", 168, "ASCENDING", 3, "VV", (11.2, 44.60, 12.5, 45.70)),
    ("S1A", "2021-06-20T17:30:00", 44, "ASCENDING", 7, "VV VH", (13.0, 44.60, 14.5, 45.70)),
    ("S1B", "2021-06-21T05:40:00", 22, "DESCENDING", 2, "HH HV", (10.5, 44.60, 12.0, 45.70)),
    ("S1A", "2021-07-09T17:20:10", 117, "ASCENDING", 4, "VV VH", (10.6, 44.70, 11.9, 45.60)),
)
_OFFSETS = {"S1A": 73, "S1B": 27}


def absolute_orbit(platform: str, relative: int, start: dt.datetime) -> int:
    """An absolute orbit consistent with ESA's relative orbit formula (and growing with time)."""
    cycle = 170 + (start - dt.datetime(2021, 1, 1)).days // 12
    return cycle * 175 + _OFFSETS[platform] + relative - 1


def product_name(platform: str, start: dt.datetime, absolute: int, polarisations: str, number: int) -> str:
    stop = start + dt.timedelta(seconds=25)
    code = "1SDV" if polarisations == "VV VH" else "1SDH" if polarisations == "HH HV" else "1SSV"
    return (f"{platform}_IW_GRDH_{code}_{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{absolute:06d}_"
            f"{(0x39000 + number):06X}_{(0xA000 + number * 37) % 0xFFFF:04X}")


def manifest_text(start: dt.datetime, absolute: int, relative: int, direction: str, slice_number: int,
                  polarisations: str, footprint) -> str:
    """The test product's manifest.safe with this product's times, orbits, pass, slice, polarisations, footprint."""
    with open(MANIFEST, encoding="utf-8") as handle:
        text = handle.read()
    stop = start + dt.timedelta(seconds=25)
    west, south, east, north = footprint
    corners = f"{south:.6f},{west:.6f} {south:.6f},{east:.6f} {north:.6f},{east:.6f} {north:.6f},{west:.6f}"
    pols = "".join(f"<s1sarl1:transmitterReceiverPolarisation>{p}</s1sarl1:transmitterReceiverPolarisation>"
                   for p in polarisations.split())
    replacements = [
        (r"(<safe:startTime>)[^<]+", rf"\g<1>{start:%Y-%m-%dT%H:%M:%S}.000000"),
        (r"(<safe:stopTime>)[^<]+", rf"\g<1>{stop:%Y-%m-%dT%H:%M:%S}.000000"),
        (r'(<safe:orbitNumber type="(start|stop)">)\d+', rf"\g<1>{absolute}"),
        (r'(<safe:relativeOrbitNumber type="(start|stop)">)\d+', rf"\g<1>{relative}"),
        (r"(<s1:pass>)\w+", rf"\g<1>{direction}"),
        (r"(<s1sarl1:sliceNumber>)\d+", rf"\g<1>{slice_number}"),
        (r"(<gml:coordinates>)[^<]+", rf"\g<1>{corners}"),
        (r"(<s1sarl1:transmitterReceiverPolarisation>\w+</s1sarl1:transmitterReceiverPolarisation>\s*)+",
         pols),
    ]
    for pattern, replacement in replacements:
        text = re.sub(pattern, replacement, text)
    return text


def archive_bytes(name: str, manifest: str, seed: int) -> bytes:
    """A zip of ``<name>.SAFE`` with its manifest and a deterministic measurement file."""
    buffer = io.BytesIO()
    payload = hashlib.sha256(str(seed).encode()).digest() * (MEASUREMENT_BYTES // 32)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{name}.SAFE/manifest.safe", manifest)
        archive.writestr(f"{name}.SAFE/measurement/{name.lower()}-vv.tiff", payload)
    return buffer.getvalue()


def build_catalogue():
    """[{name, item (STAC), asf (GeoJSON feature), archive (bytes), truth (expected record values)}]."""
    products = []
    for number, (platform, start_text, relative, direction, slice_number, pols, footprint) in enumerate(PRODUCTS):
        start = dt.datetime.fromisoformat(start_text)
        stop = start + dt.timedelta(seconds=25)
        absolute = absolute_orbit(platform, relative, start)
        name = product_name(platform, start, absolute, pols, number)
        archive = archive_bytes(name, manifest_text(start, absolute, relative, direction, slice_number, pols,
                                                    footprint), number)
        md5 = hashlib.md5(archive).hexdigest()
        geometry = box(*footprint)
        item = {
            "type": "Feature", "stac_version": "1.1.0", "id": name, "collection": "sentinel-1-grd",
            "geometry": geometry, "bbox": list(footprint),
            "properties": {
                "datetime": f"{start:%Y-%m-%dT%H:%M:%S}.000000Z", "start_datetime": f"{start:%Y-%m-%dT%H:%M:%S}.000000Z",
                "end_datetime": f"{stop:%Y-%m-%dT%H:%M:%S}.000000Z", "platform": f"sentinel-1{platform[-1].lower()}",
                "constellation": "sentinel-1", "sar:instrument_mode": "IW", "sar:polarizations": pols.split(),
                "sat:orbit_state": direction.lower(), "sat:relative_orbit": relative, "sat:absolute_orbit": absolute,
                "product:type": "IW_GRDH_1S", "processing:level": "L1"},
            "assets": {"Product": {"href": f"/download/{name}.zip", "title": "Product package",
                                   "type": "application/zip", "file:checksum": "d50110" + md5,
                                   "file:size": len(archive)}},
            "links": []}
        asf = {"type": "Feature", "geometry": geometry, "properties": {
            "sceneName": name, "fileID": f"{name}-GRD_HD", "startTime": f"{start:%Y-%m-%dT%H:%M:%S}.000Z",
            "stopTime": f"{stop:%Y-%m-%dT%H:%M:%S}.000Z", "platform": f"Sentinel-1{platform[-1]}",
            "pathNumber": relative, "frameNumber": 140 + slice_number, "orbit": absolute,
            "flightDirection": direction, "polarization": "+".join(pols.split()), "beamModeType": "IW",
            "processingLevel": "GRD_HD", "url": f"/download/{name}.zip", "md5sum": md5, "bytes": len(archive)}}
        products.append({"name": name, "item": item, "asf": asf, "archive": archive, "md5": md5, "start": start,
                         "truth": {"relative_orbit": relative, "absolute_orbit": absolute,
                                   "orbit_direction": direction, "slice_number": slice_number, "polarisations": pols,
                                   "footprint": footprint, "platform": platform}})
    return products


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


class StacServer(LoopbackServer):
    """Threaded loopback catalogue; ``url`` its base (STAC root ``url + '/v1'``), ``log`` the requests."""

    def __init__(self, page_size: int = PAGE_SIZE, get_paging: bool = False, require_auth_search: bool = False):
        self.products = build_catalogue()
        self.by_name = {p["name"]: p for p in self.products}
        self.page_size = page_size
        self.get_paging = get_paging
        self.require_auth_search = require_auth_search
        self.log = []
        self.faults, self.stalls, self.truncations = [], [], []
        self.ignore_range = False
        self.token = TOKEN
        self.searches = {}
        self.lock = threading.Lock()
        super().__init__()

    @property
    def stac_url(self) -> str:
        return self.url + "/v1"

    # ----- faults
    def inject(self, prefix: str, status: int, count: int = 1, headers=None) -> None:
        self.faults.append([prefix, status, count, dict(headers or {})])

    def stall(self, prefix: str, seconds: float, count: int = 1) -> None:
        self.stalls.append([prefix, seconds, count])

    def expire_token(self) -> None:
        """The token given so far is refused from now on; the token endpoint hands out a new one."""
        self.token = self.token + "-renewed"

    def truncate(self, prefix: str, after_bytes: int, count: int = 1) -> None:
        self.truncations.append([prefix, after_bytes, count])

    def _take(self, table, path):
        with self.lock:
            for entry in table:
                if path.startswith(entry[0]) and entry[2] > 0:
                    entry[2] -= 1
                    return entry
        return None

    # ----- auth
    def authorised(self, header: str) -> bool:
        if header == f"Bearer {self.token}":
            return True
        if header.startswith("Basic "):
            return base64.b64decode(header[6:]).decode("utf-8", "replace") == f"{USER}:{PASSWORD}"
        return False

    # ----- search
    def matching(self, request: dict) -> list:
        from shapely.geometry import shape

        if request.get("collections") != ["sentinel-1-grd"]:
            return []
        area = shape(request["intersects"]) if request.get("intersects") else None
        start, end = (request.get("datetime") or "../..").split("/")
        kept = []
        for product in self.products:
            item = product["item"]
            moment = _time(item["properties"]["start_datetime"])
            if start not in ("", "..") and moment < _time(start):
                continue
            if end not in ("", "..") and moment > _time(end):
                continue
            if area is not None and not area.intersects(shape(item["geometry"])):
                continue
            kept.append(item)
        return kept

    def page(self, search_id: str, start: int, base: str) -> dict:
        matching = self.searches[search_id]
        features = [self._absolute(item, base) for item in matching[start:start + self.page_size]]
        links = [{"rel": "root", "href": f"{base}/v1"}]
        if start + self.page_size < len(matching):
            token = f"next:{search_id}:{start + self.page_size}"
            if self.get_paging:
                links.append({"rel": "next", "href": f"{base}/v1/search?token={urllib.parse.quote(token)}",
                              "method": "GET"})
            else:
                links.append({"rel": "next", "href": f"{base}/v1/search", "method": "POST",
                              "body": {"token": token}, "merge": True})
        return {"type": "FeatureCollection", "features": features, "links": links,
                "numberMatched": len(matching), "numberReturned": len(features)}

    @staticmethod
    def _absolute(item: dict, base: str) -> dict:
        item = json.loads(json.dumps(item))
        item["assets"]["Product"]["href"] = base + item["assets"]["Product"]["href"]
        return item

    def route_search(self, method: str, query: dict, body: bytes, base: str):
        request = json.loads(body or b"{}") if method == "POST" else {}
        token = request.get("token") or (query.get("token") or [None])[0]
        if token:
            _, search_id, start = token.split(":")
            if search_id not in self.searches:
                return 400, {"code": "BadRequest", "description": "unknown token"}
            return 200, self.page(search_id, int(start), base)
        if "limit" in request:
            self.page_size = min(self.page_size, int(request["limit"]))
        search_id = f"s{len(self.searches)}"
        self.searches[search_id] = self.matching(request)
        return 200, self.page(search_id, 0, base)

    def route_asf(self, query: dict, base: str):
        from shapely import wkt

        area = wkt.loads(query["intersectsWith"][0])
        start, end = _time(query["start"][0]), _time(query["end"][0])
        features = []
        for product in self.products:
            p = product["asf"]["properties"]
            if not start <= _time(p["startTime"]) <= end:
                continue
            if "flightDirection" in query and p["flightDirection"] != query["flightDirection"][0]:
                continue
            if "relativeOrbit" in query and str(p["pathNumber"]) not in query["relativeOrbit"][0].split(","):
                continue
            from shapely.geometry import shape

            if not area.intersects(shape(product["asf"]["geometry"])):
                continue
            feature = json.loads(json.dumps(product["asf"]))
            feature["properties"]["url"] = base + feature["properties"]["url"]
            features.append(feature)
        return 200, {"type": "FeatureCollection", "features": features[: int(query.get("maxResults", ["250"])[0])]}

    # ----- dispatch
    def handle(self, handler, method: str) -> None:
        parsed = urllib.parse.urlparse(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.log.append({"method": method, "path": parsed.path, "query": parsed.query,
                             "headers": dict(handler.headers.items()), "body": body.decode("utf-8", "replace"),
                             "range": handler.headers.get("Range")})
        stall = self._take(self.stalls, parsed.path)
        if stall:
            time.sleep(stall[1])
        fault = self._take(self.faults, parsed.path)
        base = f"http://{handler.headers.get('Host')}"
        query = urllib.parse.parse_qs(parsed.query)
        auth = handler.headers.get("Authorization", "")
        if fault:
            return self._json(handler, fault[1], {"detail": f"injected {fault[1]}"}, fault[3])
        if parsed.path == "/token" and method == "POST":
            form = urllib.parse.parse_qs(body.decode())
            good = (form.get("grant_type") == ["password"] and form.get("client_id") == ["cdse-public"]
                    and form.get("username") == [USER] and form.get("password") == [PASSWORD])
            return self._json(handler, 200 if good else 401, {"access_token": self.token, "expires_in": 600} if good
                              else {"error": "invalid_grant", "error_description": "Invalid user credentials"})
        if parsed.path.startswith("/v1/search"):
            if self.require_auth_search and not self.authorised(auth):
                return self._json(handler, 401, {"detail": "Not authenticated"})
            return self._json(handler, *self.route_search(method, query, body, base))
        if parsed.path == "/asf" and method == "GET":
            return self._json(handler, *self.route_asf(query, base))
        if parsed.path.startswith("/download/") and method == "GET":
            if not self.authorised(auth):
                return self._json(handler, 401, {"detail": "Expired signature or invalid credentials"})
            name = parsed.path[len("/download/"):-len(".zip")]
            if name not in self.by_name:
                return self._json(handler, 404, {"detail": "product not found"})
            return self._archive(handler, parsed.path, self.by_name[name]["archive"])
        if parsed.path.startswith("/relay/") and method == "GET":  # a redirect within the same host
            return self._json(handler, 302, {}, {"Location": "/download/" + parsed.path.split("/", 2)[2]})
        if parsed.path.startswith(("/redirect/", "/login-redirect/")) and method == "GET":
            # the product host sends the client to another host (localhost instead of 127.0.0.1): a signed
            # storage URL that refuses any Authorization header, or a login host that asks for Basic
            if parsed.path.startswith("/redirect/") and not self.authorised(auth):
                return self._json(handler, 401, {"detail": "not authenticated"})
            port = self.url.rsplit(":", 1)[1]
            target = "storage" if parsed.path.startswith("/redirect/") else "login"
            name = parsed.path.split("/", 2)[2]
            return self._json(handler, 302, {}, {"Location": f"http://localhost:{port}/{target}/{name}"})
        if parsed.path.startswith(("/storage/", "/login/")) and method == "GET":
            if parsed.path.startswith("/storage/") and auth:
                return self._json(handler, 400, {"detail": "Only one auth mechanism allowed"})
            if parsed.path.startswith("/login/") and not auth.startswith("Basic ") or (auth and not
                                                                                      self.authorised(auth)):
                return self._json(handler, 401, {"detail": "login required"},
                                  {"WWW-Authenticate": 'Basic realm="login"'})
            name = parsed.path.split("/", 2)[2][:-len(".zip")]
            return self._archive(handler, parsed.path, self.by_name[name]["archive"])
        return self._json(handler, 404, {"detail": f"{parsed.path} not found"})

    def _archive(self, handler, path: str, data: bytes) -> None:
        offset = 0
        match = re.match(r"bytes=(\d+)-$", handler.headers.get("Range") or "")
        if match and not self.ignore_range:
            offset = int(match.group(1))
            if offset >= len(data):
                return self._json(handler, 416, {"detail": "range not satisfiable"},
                                  {"Content-Range": f"bytes */{len(data)}"})
        cut = self._take(self.truncations, path)
        part = data[offset:]
        try:
            handler.send_response(206 if offset else 200)
            handler.send_header("Content-Type", "application/zip")
            handler.send_header("Content-Length", str(len(part)))
            handler.send_header("Accept-Ranges", "bytes")
            if offset:
                handler.send_header("Content-Range", f"bytes {offset}-{len(data) - 1}/{len(data)}")
            handler.end_headers()
            handler.wfile.write(part[: cut[1]] if cut else part)
            handler.wfile.flush()
            if cut:
                handler.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _json(handler, status: int, payload, headers=None) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def requests_to(self, prefix: str) -> list:
        return [entry for entry in self.log if entry["path"].startswith(prefix)]
