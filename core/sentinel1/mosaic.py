"""Mosaics of several tracks without Orfeo ToolBox (REFERENCE §9.7).

1. Common grid: the CRS and pixel size of the first input (or given), union extent; every
   input band is resampled onto it with :class:`core.io.GridResampler` (bilinear; NaN,
   declared nodata and, for integer bands that declare none, DN 0 are no data; GDAL
   scale/offset applied).
2. Optional harmonisation of dB-level bands: mean dB difference d_ij on each overlap; offsets
   o_i minimising Σ (d_ij + o_i − o_j)² with Σ o_i = 0 (a dB offset is a linear gain).
3. Feathering: weight = distance in pixels to the nearest invalid pixel, capped at the
   feather width; blend Σ w·x / Σ w in linear power for dB-level bands, then back to dB.
4. Time series are grouped by date window (all acquisitions within ``date_window_days`` of
   the window's first date form one mosaic dated by that first date), never by file index.

Inputs are time-series VRTs (band descriptions = dates) or timescans (band descriptions =
metric names) or single-band rasters; a timescan mosaic is made per metric present in all inputs.
Each band of the output grid is held in memory once per track. All output files (with their
sidecar styles) appear together or not at all.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from scipy.ndimage import distance_transform_edt

from ..errors import UserInputError, check_canceled
from ..io import Grid, GridResampler, OutputSet, open_raster
from ..io import output_folder as run_folder
from .naming import parse_datetime, parse_polarisation
from ..io.memory import USABLE_SHARE, available_memory_bytes, require_memory
from .stack import expand_inputs, sample_stored, stored_nodata
from .styles import backscatter_style, metric_style
from .units import UNITS, db_to_power, power_to_db, unit_problem
from .vrt import VrtBand, add_band_vrt

#: Band names that are backscatter levels in dB (blended in linear power, harmonised).
DB_LEVEL_NAMES = ("avg", "max", "min", "median", "model_mean")
MIN_OVERLAP_PIXELS = 50


def is_db_level(name: str) -> bool:
    return name in DB_LEVEL_NAMES or (name.startswith("p") and name[1:].replace(".", "", 1).isdigit())


def union_grid(paths: Sequence[str], crs: Optional[str] = None, resolution: Optional[float] = None) -> Grid:
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
    return Grid(target, from_origin(left, top, res, res), width, height)


#: Bytes per output pixel of one mosaic band: per track the warped image (float32), its distance
#: transform (float64) and weights (float32); the float64 sums and the float32 result once.
BYTES_PER_TRACK_PIXEL = 16
BYTES_PER_PIXEL = 20


def require_mosaic_memory(grid: Grid, tracks: int) -> None:
    """Refuse a mosaic grid whose band (``tracks`` inputs held at once) would not fit in memory, with a
    coarser resolution that would."""
    needed = grid.width * grid.height * (BYTES_PER_TRACK_PIXEL * tracks + BYTES_PER_PIXEL)
    available = available_memory_bytes()
    if available is None or needed <= USABLE_SHARE * available:
        return
    res = abs(grid.transform.a)
    coarser = res * math.sqrt(needed / (USABLE_SHARE * available)) * 1.1
    require_memory(needed, f"The mosaic grid of {grid.width:,} × {grid.height:,} pixels at {res:g} CRS units "
                   f"({tracks} tracks per band)",
                   f"Give a coarser resolution: a pixel size (RESOLUTION) of at least {coarser:.3g} CRS units, "
                   "or 0 for the first input's.")


def resample_band(resampler: GridResampler, path: str, band: int) -> np.ndarray:
    """Band ``band`` of ``path`` on the mosaic grid (float32, bilinear, NaN = no data)."""
    return resampler.read(path, band, src_nodata=stored_nodata(resampler.source(path), band))


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
    """Mosaic tracks; returns {"kind": "timeseries"|"timescan", "paths", "vrt", "names", "styles", "offsets"}.

    ``unit``: ``"db"`` when time-series values are dB (levels are then blended in linear
    power and harmonised), ``"linear"`` for linear power (blended as is, no harmonisation).
    """
    UNITS.check(unit, "backscatter unit")
    paths = expand_inputs(inputs)
    if len(paths) < 2:
        raise UserInputError("A mosaic needs at least two inputs (one per track).")
    bands = {path: _bands_of(path) for path in paths}
    dated = {path: [(b, _band_date(path, b, d)) for b, d in items] for path, items in bands.items()}
    is_series = all(when is not None for items in dated.values() for _, when in items)
    grid = union_grid(paths, crs, resolution)
    if is_series:
        for path in paths:
            problem = unit_problem(sample_stored(path, 1), unit, os.path.basename(path))
            if problem:
                raise UserInputError(problem)
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
        styles = [backscatter_style(unit)] * len(jobs)
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
        styles = [metric_style(name) for name in common]
    require_mosaic_memory(grid, max(len(members) for _, members in jobs))
    offsets_report = {}
    with run_folder(output_folder) as folder, OutputSet() as outputs, GridResampler(grid, "bilinear") as resampler:
        out_paths = [os.path.join(folder, name) for name in files]
        steps = sum(len(members) + 1 for _, members in jobs)  # every input image resampled, every output written
        done = 0
        for (key, members), path, name, db_level, style in zip(jobs, out_paths, names, level, styles):
            images = []
            for member, band in members:
                check_canceled(is_canceled)
                images.append(resample_band(resampler, member, band))
                done += 1
                if progress:
                    progress(100.0 * done / steps)
            result, offsets = blend(images, feather_px, db_level, harmonise and unit == "db")
            offsets_report[name] = [round(float(o), 4) for o in offsets]
            with outputs.raster(path, grid, [name], style=style, require_valid=(
                    f"No input has a valid pixel for '{name}' on the mosaic grid: check the inputs "
                    f"({', '.join(os.path.basename(p) for p, _ in members)}) and the output CRS.")) as out:
                out.write(result, 1)
            done += 1
            if progress:
                progress(100.0 * done / steps)
        vrt_path = add_band_vrt(outputs, os.path.join(folder, vrt_name),
                                [VrtBand(p, n) for p, n in zip(out_paths, names)], grid, styles[0])
    return {"kind": "timeseries" if is_series else "timescan", "paths": out_paths, "vrt": vrt_path, "names": names,
            "styles": styles, "offsets": offsets_report}


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
