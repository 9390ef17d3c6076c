"""Download windows of ITS_LIVE cubes (REFERENCE §8.1-8.3): filter layers on the 1-D
variables first, then read only the chunks that hold the window, per cube in its own EPSG.

Outputs per cube (stem = cube name): ``<stem>.nc`` (CF NetCDF, dims mid_date/y/x, grid
mapping ``mapping`` with crs_wkt/spatial_ref/EPSG) and ``<stem>_<variable>.tif`` (float32,
one band per time step, band description = the layer's date YYYY-MM-DD; metadata
SM_MID_DATE / SM_DATE_DT_DAYS per band). With aggregation the time steps are the bin
starts and ``count_<variable>`` holds the number of values per cell.

One cube's NetCDF and GeoTIFFs appear together or not at all (:class:`core.io.OutputSet`);
a variable with no valid cell in the window is an error, not an empty output.

Resume: every (cube, variable) read is cached under ``<output>/.itslive_cache/<request
signature>/`` as soon as it is complete (:mod:`.cache`); a re-run of the same request skips
it, so an interrupted download re-reads only what was not finished. The cache is removed
after the outputs are written.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..choices import Choices
from ..errors import Cancelled, UserInputError, check_canceled
from ..io import Grid, OutputSet, require_memory, verify
from . import aggregate as agg
from .cache import clean_cache, load_part, remove_request_cache, request_cache, resumable_folder, save_part
from .interrupt import interruptible
from .cubes import DEFAULT_TIMEOUT, CubeInfo, NetworkError, aoi_in_epsg, cube_epsg, describe_failure, open_cube

VARIABLES = Choices(("vx", "vx"), ("vy", "vy"), ("v", "v"), ("v_error", "v_error"), ("vx_error", "vx_error"),
                    ("vy_error", "vy_error"))
ERROR_OF = {"v": "v_error", "vx": "vx_error", "vy": "vy_error"}
MISSIONS = Choices(("sentinel1", "Sentinel-1"), ("sentinel2", "Sentinel-2"), ("landsat", "Landsat 4-9"))
#: Mission filter: first character(s) of satellite_img1 (REFERENCE §2.3).
SATELLITE_PREFIXES = {"sentinel1": ("1",), "sentinel2": ("2",), "landsat": ("4", "5", "7", "8", "9")}
#: Sidecar style of the GeoTIFF of a variable (none for the errors and counts).
STYLE_FOR_VARIABLE = {"v": "itslive_speed", "vx": "itslive_component", "vy": "itslive_component"}
DAY_NS = 86400e9


#: What to change when no cube layer matches the request.
NO_MATCH_HINT = ("Widen START_DATE to END_DATE, lower MIN_ROI_VALID, or clear DT_MIN, DT_MAX and MISSIONS (the "
                 "layers kept are listed in the help).")


@dataclass
class DownloadRequest:
    """What to download: AOI (GeoJSON lon/lat), period [start, end), variables and filters."""

    aoi_lonlat: dict
    start: _dt.datetime
    end: _dt.datetime
    variables: Sequence[str] = ("vx", "vy")
    min_roi_valid: float = 0.0
    dt_min_days: Optional[float] = None
    dt_max_days: Optional[float] = None
    missions: Optional[Sequence[str]] = None
    aggregate_amount: int = 0
    aggregate_unit: str = "Y"
    aggregate_method: str = "mean"
    timeout: float = DEFAULT_TIMEOUT

    def validate(self) -> None:
        if self.end <= self.start:
            raise UserInputError(
                f"The end date {self.end:%Y-%m-%d} must be after the start date {self.start:%Y-%m-%d}: layers are "
                "kept when START_DATE ≤ mid_date < END_DATE, so no layer would match. Choose an end date after "
                "the start date.")
        unknown = [v for v in self.variables if v not in VARIABLES]
        if unknown or not self.variables:
            raise UserInputError(f"Unknown or no variables {unknown}; choose from {', '.join(VARIABLES)}.")
        for mission in self.missions or []:
            if mission not in MISSIONS:
                raise UserInputError(f"Unknown mission '{mission}'; use {', '.join(MISSIONS)}.")
        if self.dt_min_days is not None and self.dt_max_days is not None and self.dt_min_days > self.dt_max_days:
            raise UserInputError("The minimum date_dt is larger than the maximum.")

    def variables_to_read(self) -> List[str]:
        names = list(dict.fromkeys(self.variables))
        if self.aggregate_amount and self.aggregate_method == "weighted":
            names += [ERROR_OF[v] for v in self.variables if v in ERROR_OF and ERROR_OF[v] not in names]
        return names


@dataclass
class CubeWindow:
    """The part of one cube to read: layer indices (sorted by mid_date) and x/y index ranges."""

    cube: CubeInfo
    epsg: int
    layers: np.ndarray
    rows: slice
    cols: slice
    x: np.ndarray
    y: np.ndarray
    mid_date: np.ndarray
    date_dt_days: np.ndarray
    satellite: np.ndarray
    extras: Dict[str, np.ndarray] = field(default_factory=dict)


def _one_d(ds, name: str, layers=None) -> Optional[np.ndarray]:
    if name not in ds.variables:
        return None
    return ds[name].values if layers is None else ds[name].isel(mid_date=layers).values


def plan_window(ds, cube: CubeInfo, request: DownloadRequest) -> Optional[CubeWindow]:
    """Choose layers (filters on the 1-D variables) and the x/y window; None if nothing is left."""
    epsg = cube_epsg(ds, cube.epsg)
    aoi = aoi_in_epsg(request.aoi_lonlat, epsg)
    minx, miny, maxx, maxy = aoi.bounds
    x = ds["x"].values
    y = ds["y"].values
    cols = np.flatnonzero((x >= minx) & (x <= maxx))
    rows = np.flatnonzero((y >= miny) & (y <= maxy))
    if cols.size == 0 or rows.size == 0:
        return None
    mid_date = ds["mid_date"].values.astype("datetime64[ns]")
    keep = (mid_date >= np.datetime64(request.start, "ns")) & (mid_date < np.datetime64(request.end, "ns"))
    date_dt = _one_d(ds, "date_dt")
    dt_days = (date_dt.astype("timedelta64[ns]").astype(np.float64) / DAY_NS
               if date_dt is not None and np.issubdtype(date_dt.dtype, np.timedelta64)
               else (date_dt.astype(np.float64) if date_dt is not None else np.full(mid_date.size, np.nan)))
    if request.dt_min_days is not None:
        keep &= dt_days >= request.dt_min_days
    if request.dt_max_days is not None:
        keep &= dt_days <= request.dt_max_days
    if request.min_roi_valid > 0:
        roi = _one_d(ds, "roi_valid_percentage")
        if roi is None:
            raise UserInputError(f"Cube {cube.zarr_url} has no roi_valid_percentage; set the minimum to 0.")
        keep &= np.nan_to_num(roi.astype(np.float64), nan=-1) >= request.min_roi_valid
    satellite = _one_d(ds, "satellite_img1")
    satellite = satellite.astype(str) if satellite is not None else np.full(mid_date.size, "")
    if request.missions:
        prefixes = tuple(p for m in request.missions for p in SATELLITE_PREFIXES[m])
        keep &= np.array([s.startswith(prefixes) for s in satellite])
    layers = np.flatnonzero(keep)
    if layers.size == 0:
        return None
    layers = layers[np.argsort(mid_date[layers], kind="stable")]
    mission = _one_d(ds, "mission_img1")
    extras = {"mission_img1": mission[layers].astype(str)} if mission is not None else {}
    return CubeWindow(cube, epsg, layers, slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1),
                      x[cols[0]:cols[-1] + 1], y[rows[0]:rows[-1] + 1], mid_date[layers], dt_days[layers],
                      satellite[layers], extras)


def read_variable(ds, name: str, window: CubeWindow) -> np.ndarray:
    """(time, rows, cols) float64 of one variable; reads only the chunks of the window.

    The layer indices are read in increasing index order (zarr orthogonal selection) and
    then put in mid_date order.
    """
    order = np.argsort(window.layers, kind="stable")
    ascending = window.layers[order]
    array = ds[name].isel(mid_date=ascending, y=window.rows, x=window.cols).values.astype(np.float64)
    array[array == -32767] = np.nan
    result = np.empty_like(array)
    result[order] = array
    return result


def request_signature(request: DownloadRequest, cube: CubeInfo) -> str:
    text = json.dumps({"url": cube.zarr_url, "aoi": request.aoi_lonlat, "start": request.start.isoformat(),
                       "end": request.end.isoformat(), "roi": request.min_roi_valid, "dtmin": request.dt_min_days,
                       "dtmax": request.dt_max_days, "missions": sorted(request.missions or [])}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _cached_read(ds, name: str, window: CubeWindow, cache: str, log=None, is_canceled=None) -> np.ndarray:
    """One variable of the window: the cached copy when a complete one is there, else read and cached."""
    path = os.path.join(cache, f"{name}.npy")
    cached = load_part(path, log, shape=(window.layers.size, window.y.size, window.x.size))
    if cached is not None:
        return cached["data"]
    try:
        data = interruptible(lambda: read_variable(ds, name, window), is_canceled)
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 — transport errors of any kind
        raise NetworkError(describe_failure(window.cube.zarr_url, exc)) from exc
    save_part(path, data)
    return data


def download_cubes(cubes: Sequence[CubeInfo], request: DownloadRequest, output_folder: str,
                   progress: Optional[Callable[[float], None]] = None,
                   is_canceled: Optional[Callable[[], bool]] = None,
                   messages: Optional[list] = None) -> List[Dict[str, object]]:
    """Download every cube's window; returns per cube {name, netcdf, geotiffs, styles, n_layers, shape}.

    ``messages`` (optional list) receives notes: cubes skipped, cached parts discarded.
    """
    request.validate()
    if not cubes:
        raise UserInputError("No ITS_LIVE cube intersects the area of interest.")
    names = request.variables_to_read()
    log = messages.append if messages is not None else None
    results = []
    with resumable_folder(output_folder, log) as folder:
        clean_cache(folder, log)
        for index, cube in enumerate(cubes):
            check_canceled(is_canceled)
            base = 100.0 * index / len(cubes)
            share = 100.0 / len(cubes)
            ds = interruptible(lambda: open_cube(cube.zarr_url, request.timeout), is_canceled)
            try:
                window = interruptible(lambda: plan_window(ds, cube, request), is_canceled)
            except (UserInputError, Cancelled, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001
                raise NetworkError(describe_failure(cube.zarr_url, exc)) from exc
            if window is None:
                if log is not None:
                    log(f"{cube.name}: no layer or cell matches the request; skipped.")
                continue
            missing = [n for n in names if n not in ds.variables]
            if missing:
                raise UserInputError(f"Cube {cube.zarr_url} has no variable(s) {', '.join(missing)}.")
            cells = window.layers.size * window.y.size * window.x.size
            require_memory(8.0 * (len(names) + 2) * cells,
                           f"The window of {cube.name} ({window.layers.size} layers of {window.x.size} x "
                           f"{window.y.size} cells, {len(names)} variable(s))",
                           "Choose a smaller area or a shorter period (START_DATE, END_DATE), stricter filters "
                           "(MIN_ROI_VALID, DT_MIN/DT_MAX, MISSIONS), fewer variables, or aggregate "
                           "(AGGREGATE_AMOUNT).")
            cache = request_cache(folder, request_signature(request, cube))
            data = {}
            for k, name in enumerate(names):
                check_canceled(is_canceled)
                data[name] = _cached_read(ds, name, window, cache, log, is_canceled)
                if progress:
                    progress(base + share * 0.9 * (k + 1) / len(names))
            results.append(write_cube_outputs(window, data, request, folder))
            remove_request_cache(cache)
            if progress:
                progress(base + share)
        if not results:  # inside the folder's block: a folder this run created is removed again
            raise UserInputError("No layer matched the filters in any cube; nothing was written. " + NO_MATCH_HINT)
    return results


def _layers_for_output(window: CubeWindow, data: Dict[str, np.ndarray], request: DownloadRequest):
    """(dates, per-variable stacks, extra 2-D counts, 1-D per-layer variables)."""
    if not request.aggregate_amount:
        one_d = {"date_dt": window.date_dt_days, "satellite_img1": window.satellite, **window.extras}
        return list(window.mid_date.astype("datetime64[s]").tolist()), {v: data[v] for v in request.variables}, {}, one_d
    stacks, counts, labels = {}, {}, None
    for name in request.variables:
        errors = data.get(ERROR_OF.get(name, ""))
        labels, stacks[name], counts[f"count_{name}"] = agg.aggregate(
            data[name], window.mid_date, request.aggregate_amount, request.aggregate_unit,
            request.aggregate_method, request.start, errors)
    return labels, stacks, counts, {}


def write_cube_outputs(window: CubeWindow, data: Dict[str, np.ndarray], request: DownloadRequest,
                       folder: str) -> Dict[str, object]:
    """Write the CF NetCDF and one GeoTIFF per variable (and count) of one cube, all or none."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    dates, stacks, counts, one_d = _layers_for_output(window, data, request)
    crs = CRS.from_epsg(window.epsg)
    dx = float(window.x[1] - window.x[0]) if window.x.size > 1 else 120.0
    dy = float(window.y[0] - window.y[1]) if window.y.size > 1 else 120.0
    height, width = window.y.size, window.x.size
    grid = Grid(crs, from_origin(float(window.x[0]) - dx / 2, float(window.y[0]) + dy / 2, dx, dy), width, height)
    stem = window.cube.name
    netcdf = os.path.join(folder, f"{stem}.nc")
    descriptions = [d.strftime("%Y-%m-%d") for d in dates]
    band_tags = [{"SM_MID_DATE": moment.strftime("%Y-%m-%dT%H:%M:%S")} for moment in dates]
    if "date_dt" in one_d:
        for tags, days in zip(band_tags, one_d["date_dt"]):
            tags["SM_DATE_DT_DAYS"] = f"{days:.3f}"
    raster_options = {"band_tags": band_tags, "valid_bands": tuple(range(1, len(dates) + 1)),
                      # GDAL's 256 x 256 tiles would be mostly empty on a small window
                      "creation": {"tiled": False} if height < 256 or width < 256 else None}
    geotiffs, styles = [], {}
    with OutputSet() as outputs:
        with outputs.file(netcdf, verify=verify.netcdf_readable(),
                          needed_bytes=sum(a.size * 4 for a in list(stacks.values()) + list(counts.values()))) as tmp:
            _netcdf_dataset(window, dates, stacks, counts, one_d, crs).to_netcdf(tmp)
        for name, stack in list(stacks.items()) + list(counts.items()):
            path = os.path.join(folder, f"{stem}_{name}.tif")
            is_count = name.startswith("count_")
            hint = (f"The window of {stem} has no valid {name} value in the {len(dates)} layer(s) kept; widen "
                    "the area of interest, the period or the layer filters.")
            tags = {"SM_VARIABLE": name, "SM_UNITS": "count" if is_count else "m/yr",
                    "SM_SOURCE": window.cube.zarr_url, "SM_EPSG": window.epsg}
            with outputs.raster(path, grid, descriptions, tags=tags, style=STYLE_FOR_VARIABLE.get(name),
                                require_valid=None if is_count else hint, **raster_options) as out:
                out.write(stack)
            geotiffs.append(path)
            styles[path] = STYLE_FOR_VARIABLE.get(name)
    return {"name": stem, "netcdf": netcdf, "geotiffs": geotiffs, "styles": styles, "n_layers": len(dates),
            "shape": (height, width), "epsg": window.epsg, "dates": [d.strftime("%Y-%m-%dT%H:%M:%S") for d in dates]}


def _netcdf_dataset(window, dates, stacks, counts, one_d, crs):
    """The CF dataset (xarray) of one cube window: mid_date/y/x variables and the grid mapping."""
    import xarray as xr

    coords = {"mid_date": np.array(dates, dtype="datetime64[ns]"), "y": window.y, "x": window.x}
    variables = {}
    for name, stack in stacks.items():
        variables[name] = (("mid_date", "y", "x"), stack.astype(np.float32),
                           {"units": "m/yr", "grid_mapping": "mapping", "_FillValue": np.float32(np.nan)})
    for name, stack in counts.items():
        variables[name] = (("mid_date", "y", "x"), stack.astype(np.int32), {"grid_mapping": "mapping"})
    for name, values in one_d.items():
        attrs = {"units": "days"} if name == "date_dt" else {}
        variables[name] = (("mid_date",), np.asarray(values), attrs)
    wkt = crs.to_wkt()
    variables["mapping"] = ((), np.int32(0), {"crs_wkt": wkt, "spatial_ref": wkt, "spatial_epsg": window.epsg})
    ds = xr.Dataset(variables, coords=coords)
    ds["x"].attrs.update(units="m", standard_name="projection_x_coordinate")
    ds["y"].attrs.update(units="m", standard_name="projection_y_coordinate")
    ds.attrs.update(Conventions="CF-1.8", source=window.cube.zarr_url,
                    title="ITS_LIVE velocity window (Surface Motion Toolbox)")
    return ds
