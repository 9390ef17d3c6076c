"""The Orders API (and the Data API item look-up) of the loopback Planet server, for ``planetorder``.

Extends :class:`planet_server.PlanetServer` (same authentication, request log, ``inject`` / ``stall``
faults) with

* ``POST /compute/ops/orders/v2`` (create), ``GET …/orders/v2/<id>`` (the order; its state advances
  one step per GET through ``lifecycle``: queued → running → success by default; ``failed``,
  ``partial`` (the first item fails), ``cancelled`` (cancelled at Planet), ``stall`` (queued for ever) or
  ``running`` (running for ever)), ``PUT …/orders/v2/<id>``
  (cancel, only while queued);
* ``GET /data/v1/item-types/PSScene/items/<id>`` (an item with its footprint);
* ``GET /download/<order>/<path>`` the delivered files, Planet's layout: per item the scene, the
  UDM2 and the metadata (L3B ``_3B_AnalyticMS_SR_clip.tif`` …, L1B ``_1B_AnalyticMS.tif`` with
  ``_RPC.TXT`` and ``_metadata.xml``) plus ``manifest.json`` with their MD5s. The scene and UDM2
  files are small real GeoTIFFs.

Download faults by file name: ``corrupt(name)`` serves other bytes than the manifest's MD5,
``truncate(name, count)`` closes the connection half-way through the next ``count`` downloads
(Content-Length announced in full).
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid

from planet_server import API_KEY, PlanetServer, build_items  # noqa: F401 (API_KEY re-exported)

ORDERS = "/compute/ops/orders/v2"
#: Files per item and bundle: (suffix, kind) with kind "scene", "udm2" or "text".
BUNDLE_FILES = {
    "analytic_sr_udm2": (("_3B_AnalyticMS_SR_clip.tif", "scene"), ("_3B_udm2_clip.tif", "udm2"),
                         ("_3B_AnalyticMS_metadata_clip.xml", "text"), ("_metadata.json", "text")),
    "analytic_8b_sr_udm2": (("_3B_AnalyticMS_SR_8b_clip.tif", "scene8"), ("_3B_udm2_clip.tif", "udm2"),
                            ("_3B_AnalyticMS_8b_metadata_clip.xml", "text"), ("_metadata.json", "text")),
    "basic_analytic_udm2": (("_1B_AnalyticMS.tif", "scene"), ("_1B_udm2.tif", "udm2"),
                            ("_1B_AnalyticMS_RPC.TXT", "text"), ("_1B_AnalyticMS_metadata.xml", "text"),
                            ("_metadata.json", "text")),
}
LIFECYCLES = {"success": ("queued", "running", "success"), "failed": ("queued", "running", "failed"),
              "partial": ("queued", "running", "partial"), "stall": ("queued",),
              "running": ("queued", "running"), "cancelled": ("queued", "cancelled")}


def tiny_tiff(seed: int, bands: int, dtype: str = "uint16") -> bytes:
    """A 32 x 24 GeoTIFF (EPSG:32606, 3 m pixels) of ``bands`` bands, deterministic in ``seed``."""
    import numpy as np
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    data = (rng.integers(1, 4000, (bands, 24, 32)) if dtype == "uint16" else
            np.where(np.arange(bands)[:, None, None] == 0, 1, 0) * np.ones((bands, 24, 32))).astype(dtype)
    profile = dict(driver="GTiff", width=32, height=24, count=bands, dtype=dtype, crs="EPSG:32606",
                   transform=from_origin(500000.0, 7020000.0, 3.0, 3.0))
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), MemoryFile() as memory:
        with memory.open(**profile) as dataset:
            dataset.write(data)
        return memory.read()


def file_bytes(item_id: str, suffix: str, kind: str, seed: int) -> bytes:
    if kind == "scene":
        return tiny_tiff(seed, 4)
    if kind == "scene8":
        return tiny_tiff(seed, 8)
    if kind == "udm2":
        return tiny_tiff(seed + 1000, 8, "uint8")
    return json.dumps({"id": item_id, "file": suffix, "note": "metadata"}).encode() + b"\n" * (seed % 7)


class PlanetOrdersServer(PlanetServer):
    """The loopback Planet server with orders and downloads; ``lifecycle`` applies to new orders."""

    METHODS = ("GET", "POST", "PUT")

    def __init__(self, items=None, api_key: str = API_KEY):
        super().__init__(items, api_key)
        self.orders = {}
        self.files = {}  # (order id, path) -> bytes
        self.lifecycle = "success"
        self.zip_delivery = False  # True: one zip per item (Planet's archive delivery) instead of single files
        self.corrupted = set()
        self.truncations = {}  # file name -> remaining count
        self.by_id = {item["id"]: item for item in self.items}

    # ----- faults of downloads
    def corrupt(self, name: str) -> None:
        self.corrupted.add(name)

    def truncate(self, name: str, count: int = 1) -> None:
        self.truncations[name] = count

    # ----- helpers for the tests
    def order_posts(self) -> list:
        return [entry for entry in self.log if entry["method"] == "POST" and entry["path"] == ORDERS]

    def downloads(self, name: str = "") -> list:
        return [entry for entry in self.log if entry["path"].startswith("/download/") and
                entry["path"].endswith(name)]

    # ----- API
    def _order_json(self, order: dict) -> dict:
        state = order["states"][min(order["step"], len(order["states"]) - 1)]
        body = {"id": order["id"], "name": order["name"], "state": state, "products": order["products"],
                "tools": order["tools"], "created_on": order["created"], "last_message": f"order {state}",
                "error_hints": [], "_links": {"_self": f"{self.url}{ORDERS}/{order['id']}"}}
        if state in ("success", "partial"):
            body["_links"]["results"] = self._results(order, state)
        if state in ("failed", "partial"):
            body["error_hints"] = ["the item could not be clipped to the area of interest"]
        return body

    def _results(self, order: dict, state: str) -> list:
        ids = order["products"][0]["item_ids"]
        bundle = order["products"][0]["product_bundle"]
        delivered = ids[1:] if state == "partial" else ids
        results, manifest = [], []
        for seed, item_id in enumerate(ids):
            if item_id not in delivered:
                continue
            for path, content in self._item_files(order["id"], item_id, bundle, seed):
                manifest.append({"path": path, "size": len(content), "media_type": "image/tiff",
                                 "digests": {"md5": hashlib.md5(content).hexdigest(),
                                             "sha256": hashlib.sha256(content).hexdigest()},
                                 "annotations": {"planet/item_id": item_id, "planet/item_type": "PSScene"}})
                results.append(self._result(order["id"], path))
        self.files[(order["id"], "manifest.json")] = json.dumps({"name": order["name"], "files": manifest}).encode()
        results.append(self._result(order["id"], "manifest.json"))
        return results

    def _item_files(self, order_id: str, item_id: str, bundle: str, seed: int) -> list:
        """(path, bytes) delivered for one item: its files, or one zip of them."""
        files = []
        for suffix, kind in BUNDLE_FILES[bundle]:
            key = (order_id, f"PSScene/{item_id}{suffix}")
            if key not in self.files:
                self.files[key] = file_bytes(item_id, suffix, kind, seed)
            files.append((key[1], self.files[key]))
        if not self.zip_delivery:
            return files
        import io
        import zipfile

        key = (order_id, f"{item_id}_psscene_{bundle}.zip")
        if key not in self.files:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path, content in files:
                    archive.writestr(f"files/{path}", content)
                archive.writestr("manifest.json", b"{}")
            self.files[key] = buffer.getvalue()
        return [(key[1], self.files[key])]

    def _result(self, order_id: str, path: str) -> dict:
        return {"name": f"{order_id}/{path}", "location": f"{self.url}/download/{order_id}/{path}?token=t0k",
                "delivery": "success", "expires_at": "2099-01-01T00:00:00Z"}

    def route(self, method: str, path: str, query: dict, body: bytes, base: str = ""):
        if method == "POST" and path == ORDERS:
            request = json.loads(body or b"{}")
            order_id = str(uuid.uuid4())
            self.orders[order_id] = {"id": order_id, "name": request.get("name", ""), "step": 0,
                                     "products": request["products"], "tools": request.get("tools", []),
                                     "states": LIFECYCLES[self.lifecycle],
                                     "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
            return 202, self._order_json(self.orders[order_id])
        if path.startswith(ORDERS + "/"):
            order = self.orders.get(path.split("/")[-1])
            if order is None:
                return 404, {"message": "order not found"}
            if method == "PUT":
                if self._order_json(order)["state"] != "queued":
                    return 409, {"message": "only queued orders can be cancelled"}
                order["states"] = ("cancelled",)
                order["step"] = 0
                return 200, self._order_json(order)
            answer = self._order_json(order)
            order["step"] += 1
            return 200, answer
        if method == "GET" and path.startswith("/data/v1/item-types/PSScene/items/"):
            item = self.by_id.get(path.rstrip("/").split("/")[-1])
            return (200, item) if item else (404, {"message": "item not found"})
        return super().route(method, path, query, body, base or self.url)

    def handle(self, handler, method: str) -> None:
        import urllib.parse

        parsed = urllib.parse.urlparse(handler.path)
        if not parsed.path.startswith("/download/"):
            return super().handle(handler, method)
        with self.lock:
            self.log.append({"method": method, "path": parsed.path, "query": parsed.query,
                             "host": handler.headers.get("Host", ""), "headers": dict(handler.headers.items()),
                             "body": "", "time": time.monotonic()})
        stall = self._take(self.stalls, parsed.path)
        if stall:
            time.sleep(stall[1])
        fault = self._take(self.faults, parsed.path)
        _, _, order_id, path = parsed.path.split("/", 3)
        content = self.files.get((order_id, path))
        if fault:
            return self._send(handler, fault[1], json.dumps({"message": f"injected {fault[1]}"}).encode(),
                              "application/json", fault[3])
        if content is None:
            return self._send(handler, 404, b'{"message": "no such file"}', "application/json")
        name = path.rsplit("/", 1)[-1]
        if name in self.corrupted:
            content = content[:-1] + bytes([content[-1] ^ 0xFF])
        cut = None
        with self.lock:
            if self.truncations.get(name, 0) > 0:
                self.truncations[name] -= 1
                cut = len(content) // 2
        self._send(handler, 200, content, "application/octet-stream",
                   {"Content-Disposition": f'attachment; filename="{name}"'}, cut)

    @staticmethod
    def _send(handler, status, content: bytes, kind: str, headers=None, cut=None) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(content)))
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(content if cut is None else content[:cut])
            if cut is not None:
                handler.wfile.flush()
                handler.close_connection = True
                import socket

                handler.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass


def start_server(**options) -> PlanetOrdersServer:
    return PlanetOrdersServer(**options).start()


__all__ = ["API_KEY", "PlanetOrdersServer", "build_items", "start_server"]
