"""Finding and opening ITS_LIVE velocity cubes (REFERENCE §8.1).

Cubes are found through the STAC API (collection ``itslive-cubes``, pystac-client) with
the legacy ``catalog_v02.json`` as fallback; each is opened lazily with xarray + zarr over
HTTP(S) (fsspec, consolidated metadata) and sliced **in its own EPSG**, y from max to
min, so only the chunks that hold the requested window and dates are read.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ..dependencies import INSTALL_ACTION
from ..errors import UserInputError

COLLECTION = "itslive-cubes"
_EPSG_IN_NAME = re.compile(r"EPSG(\d{4,5})")
#: Seconds before an HTTP request is abandoned.
DEFAULT_TIMEOUT = 60.0


@dataclass
class CubeInfo:
    """One cube: its Zarr URL, EPSG code and footprint (GeoJSON, lon/lat)."""

    zarr_url: str
    epsg: int
    footprint: dict
    cube_id: str

    @property
    def name(self) -> str:
        stem = self.zarr_url.rstrip("/").rsplit("/", 1)[-1]
        return stem[:-5] if stem.endswith(".zarr") else stem


class NetworkError(UserInputError):
    """A server could not be reached or answered with an error (message names the URL)."""


class StacClientMissing(UserInputError):
    """pystac-client is not installed: STAC search is impossible (the legacy catalogue still works)."""


STAC_CLIENT_MISSING = (f"pystac-client is not installed, so the STAC API cannot be searched: install it with "
                       f"{INSTALL_ACTION} (or the QPIP plugin), no restart needed")


def epsg_from(value, fallback_text: str = "") -> Optional[int]:
    """EPSG code from an int/str ('EPSG:3413', '3413') or from a cube name (…EPSG32643…)."""
    for text in (value, fallback_text):
        if text in (None, ""):
            continue
        match = re.search(r"(\d{4,5})", str(text)) if text is value else _EPSG_IN_NAME.search(str(text))
        if match:
            return int(match.group(1))
    return None


# --------------------------------------------------------------------------- finding

def _zarr_asset_href(item: dict) -> Optional[str]:
    assets = item.get("assets") or {}
    for asset in assets.values():
        href = asset.get("href", "")
        media = asset.get("type", "") or ""
        if href.rstrip("/").endswith(".zarr") or "zarr" in media:
            return href
    properties = item.get("properties") or {}
    return properties.get("zarr_url")


def cubes_from_stac(stac_url: str, aoi_lonlat: dict, timeout: float = DEFAULT_TIMEOUT) -> List[CubeInfo]:
    """Cubes of collection ``itslive-cubes`` intersecting the AOI (GeoJSON geometry, lon/lat)."""
    try:
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO
    except ImportError as exc:
        raise StacClientMissing(STAC_CLIENT_MISSING + ".") from exc

    io = StacApiIO()
    original_send = io.session.send

    def send_with_timeout(*args, **kwargs):  # pystac-client 0.6 sends without a timeout
        kwargs.setdefault("timeout", timeout)
        return original_send(*args, **kwargs)

    io.session.send = send_with_timeout
    try:
        client = Client.open(stac_url.rstrip("/") + "/", stac_io=io)
        search = client.search(collections=[COLLECTION], intersects=aoi_lonlat, max_items=10000)
        items = [item.to_dict() for item in search.items()]
    except Exception as exc:  # noqa: BLE001 — pystac-client raises many types; all mean "STAC unusable"
        raise NetworkError(f"STAC search at {stac_url} failed: {type(exc).__name__}: {exc}") from exc
    cubes = []
    for item in items:
        href = _zarr_asset_href(item)
        if not href:
            continue
        properties = item.get("properties") or {}
        epsg = epsg_from(properties.get("proj:epsg") or properties.get("epsg"), href)
        if epsg is None:
            continue
        cubes.append(CubeInfo(href, epsg, item.get("geometry"), item.get("id", href)))
    return cubes


def cubes_from_catalog(catalog_url: str, aoi_lonlat: dict, timeout: float = DEFAULT_TIMEOUT) -> List[CubeInfo]:
    """Cubes of the legacy catalogue (GeoJSON FeatureCollection with zarr_url, epsg) intersecting the AOI."""
    from shapely.geometry import shape

    catalog = _get_json(catalog_url, timeout)
    aoi = shape(aoi_lonlat)
    cubes = []
    for feature in catalog.get("features", []):
        properties = feature.get("properties") or {}
        href = properties.get("zarr_url")
        geometry = feature.get("geometry")
        if not href or not geometry or not shape(geometry).intersects(aoi):
            continue
        epsg = epsg_from(properties.get("epsg"), href)
        if epsg is not None:
            cubes.append(CubeInfo(href, epsg, geometry, href.rstrip("/").rsplit("/", 1)[-1]))
    return cubes


def _get_json(url: str, timeout: float) -> dict:
    import requests

    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise NetworkError(f"Cannot reach {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise NetworkError(f"{url} answered HTTP {response.status_code} {response.reason}.")
    try:
        return response.json()
    except ValueError as exc:
        raise NetworkError(f"{url} did not return JSON (truncated or wrong URL): {exc}") from exc


def find_cubes(aoi_lonlat: dict, stac_url: Optional[str], catalog_url: Optional[str] = None,
               timeout: float = DEFAULT_TIMEOUT, messages: Optional[list] = None) -> List[CubeInfo]:
    """Cubes intersecting the AOI: STAC first, then the legacy catalogue if STAC fails or
    pystac-client is not installed.

    ``messages`` (optional list) receives a note when the fallback was used.
    """
    errors = []
    if stac_url:
        try:
            return _unique(cubes_from_stac(stac_url, aoi_lonlat, timeout))
        except (NetworkError, StacClientMissing) as exc:
            errors.append(str(exc))
            if messages is not None:
                messages.append(f"{exc} — using the legacy catalogue instead.")
    if catalog_url:
        try:
            return _unique(cubes_from_catalog(catalog_url, aoi_lonlat, timeout))
        except NetworkError as exc:
            errors.append(str(exc))
    raise NetworkError("No ITS_LIVE cube service answered: " + " | ".join(errors or ["no URL given"]) +
                       ". Check the network or the service URLs (Processing options → Providers → "
                       "Surface Motion Toolbox).")


def _unique(cubes: Sequence[CubeInfo]) -> List[CubeInfo]:
    seen, result = set(), []
    for cube in cubes:
        if cube.zarr_url not in seen:
            seen.add(cube.zarr_url)
            result.append(cube)
    return result


# --------------------------------------------------------------------------- opening

_METADATA_KEYS = (".zmetadata", ".zarray", ".zattrs", ".zgroup")


def http_store(url: str, timeout: float = DEFAULT_TIMEOUT):
    """Read-only Zarr store over HTTP(S) with fsspec (aiohttp).

    Unlike fsspec's mapper (whose ``getitems`` silently drops failed chunks, so zarr fills
    them with the fill value), any failed chunk read raises; only missing *metadata* keys
    read as absent, which zarr needs to probe groups and arrays.
    """
    import aiohttp
    import fsspec
    import zarr

    fs = fsspec.filesystem("http", client_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)})
    root = url.rstrip("/")

    class HTTPStore(zarr.storage.Store):
        _erasable = False
        _writeable = False

        def _url(self, key):
            return f"{root}/{key}"

        @staticmethod
        def _is_metadata(key):
            return key.rsplit("/", 1)[-1] in _METADATA_KEYS

        def __getitem__(self, key):
            try:
                return fs.cat(self._url(key))
            except FileNotFoundError as exc:
                if self._is_metadata(key):
                    raise KeyError(key) from exc
                raise

        def getitems(self, keys, **kwargs):
            results = fs.cat([self._url(k) for k in keys], on_error="return")
            found = {}
            for key in keys:
                value = results.get(self._url(key))
                if isinstance(value, FileNotFoundError) and self._is_metadata(key):
                    continue
                if isinstance(value, BaseException):
                    raise value
                found[key] = value
            return found

        def __contains__(self, key):
            try:
                self[key]
                return True
            except KeyError:
                return False

        def __setitem__(self, key, value):
            raise PermissionError("ITS_LIVE cubes are read-only")

        def __delitem__(self, key):
            raise PermissionError("ITS_LIVE cubes are read-only")

        def __iter__(self):
            return iter(())

        def __len__(self):
            return 0

    return HTTPStore()


def open_cube(url: str, timeout: float = DEFAULT_TIMEOUT):
    """The cube as a lazy xarray Dataset (no dask; reads happen on ``.values``)."""
    import fsspec
    import xarray as xr

    store = http_store(url, timeout) if url.startswith(("http://", "https://")) else fsspec.get_mapper(url)
    try:
        return xr.open_zarr(store, consolidated=True, chunks=None)
    except Exception as exc:  # noqa: BLE001 — every transport/format failure becomes one clear message
        raise NetworkError(describe_failure(url, exc)) from exc


def http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status code carried by ``exc`` or the exceptions it was raised from, if any.

    Read from the exceptions' ``status`` attribute (aiohttp) or from "NNN, message=" /
    "HTTP NNN" / GDAL's "HTTP response code: NNN" in their text with URLs removed, so a port such as :40447 is never mistaken for 404.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        status = getattr(exc, "status", None)
        if isinstance(status, int):
            return status
        text = re.sub(r"\w+://\S+", "", str(exc))
        match = re.search(r"\b([45]\d\d), message=|HTTP (?:status |response code: ?)?([45]\d\d)\b", text)
        if match:
            return int(match.group(1) or match.group(2))
        exc = exc.__cause__ or exc.__context__
    return None


def describe_failure(url: str, exc: BaseException) -> str:
    """A user-facing sentence for a failed cube read."""
    text = f"{type(exc).__name__}: {exc}"
    status = http_status(exc)
    if status == 404 or (status is None and isinstance(exc, (FileNotFoundError, KeyError))):
        reason = "not found (HTTP 404) — the cube or one of its chunks is missing on the server"
    elif status is not None and status >= 500:
        reason = "server error (HTTP 5xx) — try again later"
    elif "Timeout" in text or "timed out" in text.lower():
        reason = "timed out — the server is slow or unreachable; retry (finished parts are kept)"
    elif "payload" in text.lower() or "decompress" in text.lower() or "Content-Length" in text:
        reason = "incomplete (truncated) response — retry (finished parts are kept)"
    else:
        reason = "could not be read"
    return f"ITS_LIVE cube {url}: {reason} ({text[:300]})."


def cube_epsg(ds, fallback: Optional[int]) -> int:
    """EPSG of an opened cube from its ``mapping`` variable, else ``fallback``."""
    if "mapping" in ds.variables:
        attrs = ds["mapping"].attrs
        for key in ("spatial_epsg", "epsg"):
            if key in attrs:
                return int(attrs[key])
    if fallback is None:
        raise UserInputError("The cube has no EPSG (no 'mapping' variable and none in the catalogue).")
    return int(fallback)


def transformer(source_epsg: int, target_epsg: int):
    """pyproj Transformer (x/y order); points pyproj at the system PROJ data inside virtualenvs."""
    import os
    import warnings

    import pyproj
    from pyproj import datadir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            datadir.get_data_dir()
        except pyproj.exceptions.DataDirError:
            for candidate in ("/usr/share/proj", "/usr/local/share/proj"):
                if os.path.exists(os.path.join(candidate, "proj.db")):
                    datadir.set_data_dir(candidate)
                    break
    return pyproj.Transformer.from_crs(source_epsg, target_epsg, always_xy=True)


def aoi_in_epsg(aoi_lonlat: dict, epsg: int):
    """The AOI (GeoJSON, lon/lat) as a shapely geometry in EPSG ``epsg``."""
    from shapely.geometry import shape
    from shapely.ops import transform

    to_cube = transformer(4326, epsg)
    return transform(lambda xs, ys, zs=None: to_cube.transform(xs, ys), shape(aoi_lonlat))


def union_lonlat(geometries: Sequence[dict]) -> dict:
    """One GeoJSON geometry (lon/lat) covering all AOI geometries."""
    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    shapes = [shape(g) for g in geometries if g]
    if not shapes:
        raise UserInputError("The area of interest is empty: give an extent or a polygon layer with features.")
    merged = unary_union(shapes)
    if merged.is_empty or merged.area == 0:
        raise UserInputError("The area of interest has no area; draw a rectangle or give polygons.")
    return json.loads(json.dumps(mapping(merged)))
