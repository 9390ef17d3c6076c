"""Mosaics of several tracks without Orfeo ToolBox (REFERENCE §9.7).

1. Common grid: the CRS and pixel size of the first input (or given), union extent; every
   input band is warped onto it (bilinear, NaN nodata).
2. Optional harmonisation of dB-level bands: mean dB difference d_ij on each overlap; offsets
   o_i minimising Σ (d_ij + o_i − o_j)² with Σ o_i = 0 (a dB offset is a linear gain).
3. Feathering: weight = distance in pixels to the nearest invalid pixel, capped at the
   feather width; blend Σ w·x / Σ w in linear power for dB-level bands, then back to dB.
4. Time series are grouped by date window (all acquisitions within ``date_window_days`` of
   the window's first date form one mosaic dated by that first date), never by file index.

Inputs are time-series VRTs (band descriptions = dates) or timescans (band descriptions =
metric names) or single-band rasters; a timescan mosaic is made per metric present in all inputs.
Each band of the output grid is held in memory once per track.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject, transform_bounds
from scipy.ndimage import distance_transform_edt

from ..errors import UserInputError, check_canceled
from ..raster_io import FLOAT_GTIFF_PROFILE, atomic_output, ensure_writable_dir, open_raster
from .naming import parse_datetime, parse_polarisation
from .stack import expand_inputs
from .units import db_to_power, power_to_db
from .vrt import VrtBand, write_band_vrt

#: Band names that are backscatter levels in dB (blended in linear power, harmonised).
DB_LEVEL_NAMES = ("avg", "max", "min", "median", "model_mean")
MIN_OVERLAP_PIXELS = 50


def is_db_level(name: str) -> bool:
    return name in DB_LEVEL_NAMES or (name.startswith("p") and name[1:].replace(".", "", 1).isdigit())


def union_grid(paths: Sequence[str], crs: Optional[str] = None, resolution: Optional[float] = None) -> dict:
    """Grid covering all inputs in ``crs`` (default: the first input's) at ``resolution``
    (default: the first input's pixel width), aligned to multiples of the resolution."""
    with open_raster(paths[0]) as ds:
        if ds.crs is None:
            raise UserInputError(f"'{paths[0]}' has no coordinate reference system; assign one first.")
        target = CRS.from_user_input(crs) if crs else ds.crs
        if not resolution and target.is_geographic != ds.crs.is_geographic:
            raise UserInputError("The output CRS has other units than the first input; give the resolution.")
        res = float(resolution) if resolution else abs(ds.transform.a)
    left = bottom = math.inf
    right = top = -math.inf
    for path in paths:
        with open_raster(path) as ds:
            if ds.crs is None:
                raise UserInputError(f"'{path}' has no coordinate reference system; assign one first.")
            b = transform_bounds(ds.crs, target, *ds.bounds, densify_pts=21)
        left, bottom, right, top = min(left, b[0]), min(bottom, b[1]), max(right, b[2]), max(top, b[3])
    left, top = math.floor(left / res) * res, math.ceil(top / res) * res
    width, height = int(math.ceil((right - left) / res)), int(math.ceil((top - bottom) / res))
    return {"crs": target, "transform": from_origin(left, top, res, res), "width": width, "height": height}


def warp_band(path: str, band: int, grid: dict) -> np.ndarray:
    """Band ``band`` of ``path`` on ``grid`` (float32, NaN = no data; integer DN through scale/offset)."""
    out = np.full((grid["height"], grid["width"]), np.nan, np.float32)
    with open_raster(path) as ds:
        raw = ds.read(band)
        scale, offset = ds.scales[band - 1] or 1.0, ds.offsets[band - 1] or 0.0
        values = raw.astype(np.float32) * np.float32(scale) + np.float32(offset)
        if np.issubdtype(raw.dtype, np.integer):
            values[raw == 0] = np.nan
        if ds.nodatavals[band - 1] is not None and not np.isnan(ds.nodatavals[band - 1]):
            values[raw == ds.nodatavals[band - 1]] = np.nan
        reproject(values, out, src_transform=ds.transform, src_crs=ds.crs, src_nodata=np.nan,
                  dst_transform=grid["transform"], dst_crs=grid["crs"], dst_nodata=np.nan,
                  resampling=Resampling.bilinear)
    return out


def feather_weights(valid: np.ndarray, feather_px: float) -> np.ndarray:
    """min(distance to the nearest invalid pixel, feather) / feather; 0 where invalid."""
    if feather_px <= 0:
        return valid.astype(np.float32)
    distance = distance_transform_edt(np.pad(valid, 1, constant_values=False))[1:-1, 1:-1]
    return (np.minimum(distance, feather_px) / feather_px).astype(np.float32)


def harmonisation_offsets(images_db: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[tuple]]:
    """dB offsets o_i (Σ o_i = 0) from the mean differences on overlaps; also the overlaps used."""
    n = len(images_db)
    rows, rhs, used = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            both = np.isfinite(images_db[i]) & np.isfinite(images_db[j])
            if both.sum() < MIN_OVERLAP_PIXELS:
                continue
            difference = float(np.mean(images_db[i][both] - images_db[j][both]))
            row = np.zeros(n)
            row[i], row[j] = 1.0, -1.0
            rows.append(row)
            rhs.append(-difference)  # want d_ij + o_i − o_j = 0
            used.append((i, j, difference, int(both.sum())))
    if not rows:
        return np.zeros(n), used
    rows.append(np.ones(n))
    rhs.append(0.0)
    offsets, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return offsets, used


def blend(images: Sequence[np.ndarray], feather_px: float, db_level: bool, harmonise: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Feathered blend of warped images; returns (mosaic, dB offsets applied)."""
    offsets = np.zeros(len(images))
    if db_level and harmonise and len(images) > 1:
        offsets, _ = harmonisation_offsets(images)
    total = np.zeros(images[0].shape, np.float64)
    weight_sum = np.zeros(images[0].shape, np.float64)
    for image, offset in zip(images, offsets):
        valid = np.isfinite(image)
        weights = feather_weights(valid, feather_px)
        values = db_to_power(image + np.float32(offset)) if db_level else image
        total += np.where(valid, values, 0.0) * weights
        weight_sum += weights
    with np.errstate(invalid="ignore", divide="ignore"):
        mosaic = (total / weight_sum).astype(np.float32)
    mosaic[weight_sum == 0] = np.nan
    return (power_to_db(mosaic) if db_level else mosaic), offsets


def _bands_of(path: str) -> List[Tuple[int, str]]:
    with open_raster(path) as ds:
        return [(b, (text or "").strip()) for b, text in enumerate(ds.descriptions, start=1)]


def _band_date(path: str, band: int, description: str):
    return parse_datetime(description) or (parse_datetime(os.path.basename(path)) if band == 1 else None)


def mosaic(inputs: Sequence[str], output_folder: str, unit: str = "db", harmonise: bool = True,
           feather_px: float = 50.0, date_window_days: float = 6.0, crs: Optional[str] = None,
           resolution: Optional[float] = None, progress: Optional[Callable[[float], None]] = None,
           is_canceled: Optional[Callable[[], bool]] = None) -> dict:
    """Mosaic tracks; returns {"kind": "timeseries"|"timescan", "paths", "vrt", "names", "offsets"}.

    ``unit``: ``"db"`` when time-series values are dB (levels are then blended in linear
    power and harmonised), ``"linear"`` for linear power (blended as is, no harmonisation).
    """
    paths = expand_inputs(inputs)
    if len(paths) < 2:
        raise UserInputError("A mosaic needs at least two inputs (one per track).")
    bands = {path: _bands_of(path) for path in paths}
    dated = {path: [(b, _band_date(path, b, d)) for b, d in items] for path, items in bands.items()}
    is_series = all(when is not None for items in dated.values() for _, when in items)
    grid = union_grid(paths, crs, resolution)
    folder = ensure_writable_dir(output_folder)
    if is_series:
        jobs = _date_windows(dated, date_window_days)
        pols = sorted({p for p in (parse_polarisation(path) for path in paths) if p})
        if len(pols) > 1:
            raise UserInputError(f"The inputs mix polarisations ({', '.join(pols)}); mosaic one polarisation at a time.")
        suffix = pols[0] if pols else "bs"
        digits = max(2, len(str(len(jobs))))
        names = [when.strftime("%Y-%m-%dT%H:%M:%S") for when, _ in jobs]
        files = [f"{k:0{digits}d}.{when:%Y%m%d}.{suffix}.mosaic.tif" for k, (when, _) in enumerate(jobs, 1)]
        vrt_name = f"Timeseries.{suffix}.mosaic.vrt"
        level = [unit == "db"] * len(jobs)
    else:
        common = [name for _, name in bands[paths[0]] if name and all(
            name in [n for _, n in bands[p]] for p in paths[1:])]
        if not common:
            raise UserInputError("The inputs share no band description (metric name or date); give time-series "
                                 "VRTs or timescans of the same metrics.")
        jobs = [(name, [(p, next(b for b, n in bands[p] if n == name)) for p in paths]) for name in common]
        names = common
        files = [f"{k:02d}.mosaic.{name}.tif" for k, name in enumerate(common, 1)]
        vrt_name = "Timescan.mosaic.vrt"
        level = [is_db_level(name) for name in common]
    profile = dict(FLOAT_GTIFF_PROFILE, width=grid["width"], height=grid["height"], count=1, crs=grid["crs"],
                   transform=grid["transform"])
    out_paths = [os.path.join(folder, name) for name in files]
    offsets_report = {}
    with contextlib.ExitStack() as stack:
        for index, ((key, members), path, name, db_level) in enumerate(zip(jobs, out_paths, names, level), start=1):
            check_canceled(is_canceled)
            images = [warp_band(p, b, grid) for p, b in members]
            result, offsets = blend(images, feather_px, db_level, harmonise and unit == "db")
            offsets_report[name] = [round(float(o), 4) for o in offsets]
            with rasterio.open(stack.enter_context(atomic_output(path)), "w", **profile) as ds:
                ds.write(result, 1)
                ds.set_band_description(1, name)
            if progress:
                progress(100.0 * index / len(jobs))
        vrt_path = os.path.join(folder, vrt_name)
        write_band_vrt(stack.enter_context(atomic_output(vrt_path)), [VrtBand(p, n) for p, n in zip(out_paths, names)],
                       grid["width"], grid["height"], grid["crs"].to_wkt(), grid["transform"], relative_to=vrt_path)
    return {"kind": "timeseries" if is_series else "timescan", "paths": out_paths, "vrt": vrt_path, "names": names,
            "offsets": offsets_report}


def _date_windows(dated: Dict[str, list], window_days: float) -> List[tuple]:
    """[(window start, [(path, band), ...])] grouping all dated bands by date window; one
    layer per input and window (the first), so a track never blends with itself."""
    entries = sorted(((when, path, band) for path, items in dated.items() for band, when in items),
                     key=lambda entry: entry[0])
    windows: List[tuple] = []
    for when, path, band in entries:
        if windows and (when - windows[-1][0]).total_seconds() <= window_days * 86400:
            if all(p != path for p, _ in windows[-1][1]):
                windows[-1][1].append((path, band))
        else:
            windows.append((when, [(path, band)]))
    return windows
