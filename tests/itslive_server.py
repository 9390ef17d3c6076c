"""A local ITS_LIVE look-alike for the tests: a threaded HTTP server on 127.0.0.1 serving

* a Zarr v2 cube (consolidated) built from the real Alaska annual mosaics in
  tests/data/itslive, with ITS_LIVE variable names/attributes, dims (mid_date, y, x),
  chunked long in time and small in space;
* a STAC API subset: landing page, /stac/collections/itslive-cubes, /stac/search (GET, POST);
* the legacy catalogue /catalog_v02.json.

Every request is logged with the bytes sent; faults (404, 500, slow, truncated body) can be
injected per path prefix.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import urllib.parse

import numpy as np
from loopback_http import LoopbackServer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "itslive")
CUBE_NAME = "ITS_LIVE_vel_EPSG3413_G0120_X-3250000_Y250000.zarr"
CHUNK_XY = 40
#: Per-year pseudo image pairs: (day of year of mid_date, date_dt days, satellite, mission, roi %, error, factor)
PAIRS = [(45, 16, "8", "L", 85.0, 5.0, 1.00), (135, 48, "2A", "S", 30.0, 20.0, 1.02),
         (225, 96, "1A", "S", 60.0, 10.0, 0.98), (315, 365, "9", "L", 95.0, 3.0, 1.01)]
YEARS = list(range(2010, 2019))


def build_cube(folder: str) -> str:
    """Write the test cube under ``folder`` and return its path."""
    import rasterio
    import xarray as xr

    with rasterio.open(os.path.join(DATA, "alaska_vx_2010_2018.tif")) as ds:
        vx_years, transform = ds.read().astype(np.float64), ds.transform
    with rasterio.open(os.path.join(DATA, "alaska_vy_2010_2018.tif")) as ds:
        vy_years = ds.read().astype(np.float64)
    height, width = vx_years.shape[1:]
    x = transform.c + transform.a * (np.arange(width) + 0.5)
    y = transform.f + transform.e * (np.arange(height) + 0.5)
    layers = []
    for year_index, year in enumerate(YEARS):
        for day, date_dt, satellite, mission, roi, error, factor in PAIRS:
            mid = dt.datetime(year, 1, 1) + dt.timedelta(days=day, hours=12)
            layers.append((mid, date_dt, satellite, mission, roi, error, factor, year_index))
    # ITS_LIVE cubes are not sorted by mid_date: store the layers in a scrambled order
    order = np.random.default_rng(7).permutation(len(layers))
    layers = [layers[k] for k in order]
    n = len(layers)

    def stack(fn):
        return np.stack([fn(layer) for layer in layers])

    vx = stack(lambda l: vx_years[l[7]] * l[6])
    vy = stack(lambda l: vy_years[l[7]] * l[6])
    velocity_attrs = {"units": "meter/year", "grid_mapping": "mapping"}
    data_vars = {
        "vx": (("mid_date", "y", "x"), vx, dict(velocity_attrs, description="velocity component in x direction")),
        "vy": (("mid_date", "y", "x"), vy, dict(velocity_attrs, description="velocity component in y direction")),
        "v": (("mid_date", "y", "x"), np.hypot(vx, vy), dict(velocity_attrs, description="velocity magnitude")),
    }
    for name in ("v_error", "vx_error", "vy_error"):
        errors = stack(lambda l: np.where(np.isfinite(vx_years[l[7]]), l[5], np.nan))
        data_vars[name] = (("mid_date", "y", "x"), errors, dict(velocity_attrs, description=f"{name} (1-sigma)"))
    data_vars["date_dt"] = (("mid_date",), np.array([np.timedelta64(int(l[1] * 86400), "s") for l in layers],
                                                    dtype="timedelta64[ns]"), {"description": "time separation"})
    data_vars["roi_valid_percentage"] = (("mid_date",), np.array([l[4] for l in layers], np.float32),
                                         {"description": "percentage of pixels with a valid velocity"})
    data_vars["satellite_img1"] = (("mid_date",), np.array([l[2] for l in layers], dtype="<U2"), {})
    data_vars["mission_img1"] = (("mid_date",), np.array([l[3] for l in layers], dtype="<U1"), {})
    from rasterio.crs import CRS

    wkt = CRS.from_epsg(3413).to_wkt()
    data_vars["mapping"] = ((), np.array(b"", dtype="S1"), {
        "grid_mapping_name": "polar_stereographic", "spatial_epsg": 3413, "crs_wkt": wkt, "spatial_ref": wkt,
        "GeoTransform": " ".join(str(v) for v in (transform.c, transform.a, 0, transform.f, 0, transform.e))})
    mid_date = np.array([l[0] for l in layers], dtype="datetime64[ns]")
    cube = xr.Dataset(data_vars, coords={"mid_date": mid_date, "y": y, "x": x})
    cube["x"].attrs.update(units="meter", standard_name="projection_x_coordinate")
    cube["y"].attrs.update(units="meter", standard_name="projection_y_coordinate")
    cube.attrs.update(title="ITS_LIVE datacube of image pair velocities (test subset)", projection="3413")
    encoding = {name: {"dtype": "int16", "_FillValue": -32767, "chunks": (n, CHUNK_XY, CHUNK_XY)}
                for name in ("vx", "vy", "v", "v_error", "vx_error", "vy_error")}
    encoding["mid_date"] = {"chunks": (n,), "units": "days since 1970-01-01", "dtype": "float64"}
    encoding["date_dt"] = {"chunks": (n,), "units": "days", "dtype": "float64"}
    path = os.path.join(folder, "cubes", CUBE_NAME)
    cube.to_zarr(path, mode="w", consolidated=True, encoding=encoding)
    return path


def build_mosaics(folder: str) -> str:
    """Annual mosaic GeoTIFFs (tiled, like the v2 COGs) of RGI region 01 from the Alaska stacks:
    mosaics/ITS_LIVE_velocity_120m_RGI01A_<year>_v02_<variable>.tif for v, vx, vy."""
    import rasterio

    target = os.path.join(folder, "mosaics")
    os.makedirs(target, exist_ok=True)
    with rasterio.open(os.path.join(DATA, "alaska_vx_2010_2018.tif")) as ds:
        vx, profile = ds.read(), ds.profile
    with rasterio.open(os.path.join(DATA, "alaska_vy_2010_2018.tif")) as ds:
        vy = ds.read()
    profile.update(count=1, tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    for k, year in enumerate(YEARS):
        for name, array in (("vx", vx[k]), ("vy", vy[k]), ("v", np.hypot(vx[k], vy[k]))):
            with rasterio.open(os.path.join(target, f"ITS_LIVE_velocity_120m_RGI01A_{year}_v02_{name}.tif"), "w",
                               **profile) as out:
                out.write(array.astype(np.float32), 1)
    return target


def footprint(epsg: int, bounds) -> dict:
    from pyproj import Transformer

    left, bottom, right, top = bounds
    t = np.linspace(0, 1, 9)
    xs = np.concatenate([left + (right - left) * t, np.full(9, right), right - (right - left) * t, np.full(9, left)])
    ys = np.concatenate([np.full(9, bottom), bottom + (top - bottom) * t, np.full(9, top), top - (top - bottom) * t])
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(xs, ys)
    ring = [[float(a), float(b)] for a, b in zip(lon, lat)]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


class ITSLiveServer(LoopbackServer):
    """Threaded loopback server; ``url`` is its base, ``log`` the request log, ``faults`` the injections."""

    METHODS = ("HEAD", "GET", "POST")

    def __init__(self, root: str):
        self.root = root
        self.log = []
        self.faults = {}  # path prefix -> "404" | "500" | "slow" | "truncate"
        self.slow_seconds = 3.0
        self.lock = threading.Lock()
        super().__init__()
        bounds = self._cube_bounds()
        self.items = [
            self._item("alaska-cube", f"{self.url}/cubes/{CUBE_NAME}", 3413, footprint(3413, bounds)),
            # a cube elsewhere (Karakoram, UTM 43N): must not match an Alaska AOI
            self._item("karakoram-cube", f"{self.url}/cubes/ITS_LIVE_vel_EPSG32643_G0120_X450000_Y4050000.zarr",
                       32643, footprint(32643, (400000, 4000000, 500000, 4100000))),
        ]

    # ------------------------------------------------------------------ content
    def _cube_bounds(self):
        import zarr

        group = zarr.open_consolidated(os.path.join(self.root, "cubes", CUBE_NAME), mode="r")
        x, y = group["x"][:], group["y"][:]
        return float(x.min() - 60), float(y.min() - 60), float(x.max() + 60), float(y.max() + 60)

    def _item(self, item_id, href, epsg, geometry):
        from shapely.geometry import shape

        return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "geometry": geometry,
                "bbox": list(shape(geometry).bounds), "collection": "itslive-cubes",
                "properties": {"datetime": "2020-01-01T00:00:00Z", "proj:epsg": epsg},
                "links": [], "assets": {"zarr": {"href": href, "type": "application/x-zarr", "roles": ["data"]}},
                "stac_extensions": []}

    def landing(self):
        base = self.url + "/stac"
        return {"type": "Catalog", "id": "itslive-test", "description": "ITS_LIVE test STAC", "stac_version": "1.0.0",
                "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                               "https://api.stacspec.org/v1.0.0/collections"],
                "links": [{"rel": "self", "href": base + "/", "type": "application/json"},
                          {"rel": "root", "href": base + "/", "type": "application/json"},
                          {"rel": "data", "href": base + "/collections", "type": "application/json"},
                          {"rel": "search", "href": base + "/search", "type": "application/geo+json", "method": "GET"},
                          {"rel": "search", "href": base + "/search", "type": "application/geo+json", "method": "POST"}]}

    def collection(self):
        return {"type": "Collection", "id": "itslive-cubes", "stac_version": "1.0.0", "description": "cubes",
                "license": "CC-BY-4.0", "links": [],
                "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                           "temporal": {"interval": [["1984-01-01T00:00:00Z", None]]}}}

    def search(self, params):
        from shapely.geometry import box, shape

        geometry = params.get("intersects")
        if isinstance(geometry, str):
            geometry = json.loads(geometry)
        bbox = params.get("bbox")
        if isinstance(bbox, str):
            bbox = [float(v) for v in bbox.split(",")]
        region = shape(geometry) if geometry else (box(*bbox) if bbox else None)
        collections = params.get("collections") or ["itslive-cubes"]
        if isinstance(collections, str):
            collections = collections.split(",")
        features = [item for item in self.items if item["collection"] in collections
                    and (region is None or shape(item["geometry"]).intersects(region))]
        return {"type": "FeatureCollection", "features": features, "links": [],
                "numberMatched": len(features), "numberReturned": len(features)}

    def catalog(self):
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": item["geometry"],
             "properties": {"zarr_url": item["assets"]["zarr"]["href"], "epsg": item["properties"]["proj:epsg"],
                            "geometry_epsg": item["geometry"]}} for item in self.items]}

    # ------------------------------------------------------------------ serving
    def route(self, path, method, body):
        parsed = urllib.parse.urlparse(path)
        route = parsed.path
        if route in ("/stac", "/stac/"):
            return 200, "application/json", json.dumps(self.landing()).encode()
        if route == "/stac/collections/itslive-cubes":
            return 200, "application/json", json.dumps(self.collection()).encode()
        if route == "/stac/collections":
            return 200, "application/json", json.dumps({"collections": [self.collection()], "links": []}).encode()
        if route == "/stac/search":
            params = json.loads(body or b"{}") if method == "POST" else {
                k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
            return 200, "application/geo+json", json.dumps(self.search(params)).encode()
        if route == "/catalog_v02.json":
            return 200, "application/json", json.dumps(self.catalog()).encode()
        local = os.path.normpath(os.path.join(self.root, urllib.parse.unquote(route).lstrip("/")))
        if local.startswith(self.root) and os.path.isfile(local):
            with open(local, "rb") as handle:
                return 200, "application/octet-stream", handle.read()
        return 404, "text/plain", b"not found"

    def fault_for(self, path):
        for prefix, kind in self.faults.items():
            if path.startswith(prefix):
                return kind
        return None

    def handle(self, handler, method):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        fault = self.fault_for(handler.path)
        if fault == "slow":
            time.sleep(self.slow_seconds)
        if fault in ("404", "500"):
            status, kind, payload = int(fault), "text/plain", f"injected {fault}".encode()
        else:
            status, kind, payload = self.route(handler.path, method, body)
        extra_headers = {"Accept-Ranges": "bytes"} if status == 200 else {}
        byte_range = handler.headers.get("Range")
        if byte_range and status == 200 and byte_range.startswith("bytes="):
            first, _, last = byte_range[6:].split(",")[0].partition("-")
            first, last = int(first), min(int(last) if last else len(payload) - 1, len(payload) - 1)
            extra_headers["Content-Range"] = f"bytes {first}-{last}/{len(payload)}"
            status, payload = 206, payload[first:last + 1]
        sent = payload if method != "HEAD" else b""
        if fault == "truncate" and status in (200, 206):
            sent = payload[: len(payload) // 2]
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(payload)))
            for key, value in extra_headers.items():
                handler.send_header(key, value)
            if fault == "truncate":
                handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(sent)
            handler.wfile.flush()
            if fault == "truncate":
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self.lock:
            self.log.append({"method": method, "path": urllib.parse.urlparse(handler.path).path,
                             "status": status, "bytes": len(sent)})

    def chunk_bytes(self, since: int = 0) -> int:
        """Bytes sent for Zarr chunk files (not .zmetadata/.zarray/.zattrs/.zgroup) after log entry ``since``."""
        with self.lock:
            entries = self.log[since:]
        return sum(e["bytes"] for e in entries
                   if e["path"].startswith("/cubes/") and not os.path.basename(e["path"]).startswith(".z"))
