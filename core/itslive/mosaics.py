"""ITS_LIVE annual velocity mosaics (REFERENCE §8.2): windows of the v2 annual Cloud-Optimised
GeoTIFFs read over HTTP with GDAL ``/vsicurl/`` (range requests, only the AOI's tiles).

One COG per (region, year, variable); the URL comes from a template with ``{region}``
(RGI region number, two digits), ``{year}`` and ``{variable}``. The outputs have the same
layout as :mod:`.download` (one band per year, band description YYYY-01-01; a CF NetCDF).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from typing import Callable, Dict, List, Optional

import numpy as np

from ..choices import Choices
from ..dates import DAYS_PER_YEAR
from ..errors import UserInputError, check_canceled
from ..io import open_raster
from .cache import clean_cache, load_part, remove_request_cache, request_cache, resumable_folder, save_part
from .interrupt import interruptible
from .cubes import CubeInfo, NetworkError, http_status
from .download import CubeWindow, DownloadRequest, write_cube_outputs

MOSAIC_URL_TEMPLATE = ("https://its-live-data.s3-us-west-2.amazonaws.com/velocity_mosaic/v2/annual/cog/"
                       "ITS_LIVE_velocity_120m_RGI{region}A_{year}_v02_{variable}.tif")
MOSAIC_VARIABLES = ("v", "vx", "vy", "v_error", "vx_error", "vy_error", "count")
#: Where itslivedownload reads: the image-pair cubes (:mod:`.download`) or these annual mosaics.
SOURCES = Choices(("cubes", "Image-pair velocity cubes (Zarr)"),
                  ("mosaics", "Annual mosaics (v2 Cloud-Optimised GeoTIFFs)"))


def mosaic_years(start: _dt.datetime, end: _dt.datetime) -> List[int]:
    """Years whose 1 January lies in [start, end) (at least the start year)."""
    years = [y for y in range(start.year, end.year + 1) if start <= _dt.datetime(y, 1, 1) < end]
    return years or [start.year]


def mosaic_url(template: str, region: str, year: int, variable: str) -> str:
    return template.format(region=str(region).zfill(2), year=year, variable=variable)


def check_url_template(template: str) -> None:
    """Refuse a mosaic URL template that does not name one file per year and variable."""
    try:
        mosaic_url(template, "01", 2000, "v")
    except (KeyError, IndexError, ValueError) as exc:
        problem = f"unknown placeholder {{{exc.args[0]}}}" if isinstance(exc, KeyError) else str(exc)
        raise UserInputError(
            f"The mosaic URL template '{template}' is not valid ({problem}): it may use only {{region}}, {{year}} "
            f"and {{variable}} (write a literal brace as {{{{ or }}}}), e.g. {MOSAIC_URL_TEMPLATE}.") from exc
    missing = [name for name in ("{year}", "{variable}") if name not in template]
    if missing:
        raise UserInputError(
            f"The mosaic URL template '{template}' lacks {' and '.join(missing)}: every year and variable is a "
            f"file of its own, e.g. {MOSAIC_URL_TEMPLATE}.")


def _gdal_env(timeout: float):
    import rasterio

    return rasterio.Env(GDAL_HTTP_TIMEOUT=str(int(max(1, round(timeout)))), GDAL_HTTP_MAX_RETRY="0",
                        GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif",
                        VSI_CACHE="FALSE", GDAL_HTTP_MULTIRANGE="SINGLE_GET")


def _forget_cached_http(path: str) -> None:
    """Drop GDAL's process-wide /vsicurl/ cache of this file, so every download sees the server's state."""
    if not path.startswith("/vsicurl/"):
        return
    try:
        from osgeo import gdal
    except ImportError:  # rasterio without the GDAL Python bindings: its cache lives for the process
        return
    gdal.VSICurlPartialClearCache(path)


def _read_window(url: str, aoi_lonlat: dict, timeout: float):
    """(array float64 with NaN, window transform, crs) of the AOI's cells in one COG."""
    from rasterio.warp import transform_geom
    from rasterio.windows import Window
    from shapely.geometry import shape

    path = "/vsicurl/" + url if url.startswith(("http://", "https://")) else url
    _forget_cached_http(path)
    try:
        with _gdal_env(timeout), open_raster(path) as ds:
            aoi = shape(transform_geom("EPSG:4326", ds.crs, aoi_lonlat))
            left, bottom, right, top = aoi.bounds
            # cells whose centres fall inside the AOI's bounds (same rule as the cubes)
            col0 = int(np.ceil((left - ds.transform.c) / ds.transform.a - 0.5))
            col1 = int(np.floor((right - ds.transform.c) / ds.transform.a - 0.5))
            row0 = int(np.ceil((top - ds.transform.f) / ds.transform.e - 0.5))
            row1 = int(np.floor((bottom - ds.transform.f) / ds.transform.e - 0.5))
            col0, row0 = max(col0, 0), max(row0, 0)
            col1, row1 = min(col1, ds.width - 1), min(row1, ds.height - 1)
            if col1 < col0 or row1 < row0:
                return None
            window = Window(col0, row0, col1 - col0 + 1, row1 - row0 + 1)
            return ds.read_float(1, window), ds.window_transform(window), ds.crs
    except UserInputError as exc:  # open_raster / read_float: the GDAL error is the cause
        raise _mosaic_failure(url, exc) from exc


def _mosaic_failure(url: str, exc: UserInputError) -> NetworkError:
    """The network error for a mosaic GDAL could not open or read (HTTP status from the exception chain)."""
    text = str(exc.__cause__ or exc)
    status = http_status(exc)
    if status == 404:
        reason = "not found (HTTP 404)"
    elif status is not None and status >= 500:
        reason = "server error (HTTP 5xx) — try again later"
    elif "timed out" in text.lower() or "timeout" in text.lower():
        reason = "timed out — retry (finished parts are kept)"
    else:
        reason = "could not be read (truncated, wrong URL or network failure)"
    return NetworkError(f"ITS_LIVE annual mosaic {url}: {reason} ({text[:300]}).")


def _cache_key(request: DownloadRequest, region: str, template: str) -> str:
    """The cache folder of a mosaic request: region, area of interest and URL template."""
    text = json.dumps({"aoi": request.aoi_lonlat, "template": template}, sort_keys=True)
    return f"mosaic_RGI{str(region).zfill(2)}_{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def download_mosaics(request: DownloadRequest, region: str, output_folder: str,
                     url_template: str = MOSAIC_URL_TEMPLATE,
                     progress: Optional[Callable[[float], None]] = None,
                     is_canceled: Optional[Callable[[], bool]] = None,
                     messages: Optional[list] = None) -> List[Dict[str, object]]:
    """Download the AOI window of the annual mosaics of every year in [start, end).

    Each (variable, year) window is cached as soon as it is read (see :mod:`.cache`).
    """
    request.validate()
    check_url_template(url_template)
    unknown = [v for v in request.variables if v not in MOSAIC_VARIABLES]
    if unknown:
        raise UserInputError(f"The annual mosaics have no variable(s) {unknown}; use {', '.join(MOSAIC_VARIABLES)}.")
    years = mosaic_years(request.start, request.end)
    log = messages.append if messages is not None else None
    with resumable_folder(output_folder, log) as folder:
        clean_cache(folder, log)
        cache = request_cache(folder, _cache_key(request, region, url_template))
        stacks: Dict[str, list] = {v: [] for v in request.variables}
        transform = crs = None
        total = len(years) * len(request.variables)
        for i, variable in enumerate(request.variables):
            for j, year in enumerate(years):
                check_canceled(is_canceled)
                cached_path = os.path.join(cache, f"{variable}_{year}.npz")
                url = mosaic_url(url_template, region, year, variable)
                cached = load_part(cached_path, log)
                if cached is not None:
                    data = cached["data"]
                    if transform is None:
                        transform, crs = _transform_from(cached), str(cached["crs"])
                else:
                    result = interruptible(lambda: _read_window(url, request.aoi_lonlat, request.timeout), is_canceled)
                    if result is None:
                        raise UserInputError(f"The area of interest does not overlap the mosaic {url}.")
                    data, window_transform, window_crs = result
                    transform, crs = window_transform, window_crs.to_wkt()
                    save_part(cached_path, data, transform=np.array(tuple(window_transform)[:6]), crs=np.array(crs))
                stacks[variable].append(data)
                if progress:
                    progress(90.0 * (i * len(years) + j + 1) / total)
        shapes = {a.shape for s in stacks.values() for a in s}
        if len(shapes) != 1:
            raise UserInputError(
                f"The mosaics of different years have different grids ({shapes}); download them separately.")
        result = write_cube_outputs(
            _mosaic_window(request, region, url_template, years, transform, crs, shapes.pop()),
            {v: np.stack(s) for v, s in stacks.items()},
            DownloadRequest(request.aoi_lonlat, request.start, request.end, request.variables), folder)
        remove_request_cache(cache)
    if progress:
        progress(100.0)
    return [result]


def _transform_from(saved):
    from affine import Affine

    return Affine(*[float(v) for v in saved["transform"]])


def _mosaic_window(request, region, template, years, transform, crs_wkt, shape) -> CubeWindow:
    from rasterio.crs import CRS

    epsg = CRS.from_wkt(crs_wkt).to_epsg()
    if epsg is None:
        raise UserInputError("The mosaic CRS has no EPSG code; the outputs need one.")
    height, width = shape
    x = transform.c + transform.a * (np.arange(width) + 0.5)
    y = transform.f + transform.e * (np.arange(height) + 0.5)
    name = f"ITS_LIVE_velocity_120m_RGI{str(region).zfill(2)}A_{years[0]}_{years[-1]}_annual"
    cube_name_override = name

    class NamedCube(CubeInfo):
        @property
        def name(self) -> str:
            return cube_name_override

    cube = NamedCube(template, epsg, {}, name)
    dates = np.array([np.datetime64(f"{y}-01-01", "ns") for y in years])
    return CubeWindow(cube, epsg, np.arange(len(years)), slice(0, height), slice(0, width), x, y, dates,
                      np.full(len(years), DAYS_PER_YEAR), np.full(len(years), ""), {})
