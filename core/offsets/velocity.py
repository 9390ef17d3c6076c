"""Conversion of pixel offsets to velocities (REFERENCE §5.2, §6.2).

Offsets dx (columns, + right) and dy (rows, + down) are in *reference*
pixels. With the reference pixel geometry Affine(a, b, 0, d, e, 0) the
displacement in map units (metres) is::

    dX = a·dx + b·dy        (grid x, "east")
    dY = d·dx + e·dy        (grid y, "north")

so a north-up grid (e < 0) turns a positive dy (down) into a southward dY.
Velocities are dX / dt_yr and dY / dt_yr with dt_yr = dt_days / DAYS_PER_YEAR (core.dates),
signed: dt < 0 (secondary older than reference) flips the velocity so it
always points forward in time. The flow azimuth is the direction of the
velocity vector in degrees clockwise from *grid* north, 0-360 (not true
north: meridian convergence can be large, e.g. in polar stereographic).
"""
from __future__ import annotations

import math
import os
from typing import Callable, Dict, Optional, Tuple

import numpy as np
from affine import Affine
from rasterio.windows import Window

from .disparity import (PEAK, TAG_DT_DAYS, TAG_REF_DATE, TAG_REF_ID, TAG_SEC_DATE, TAG_SEC_ID,
                        describe_disparity, no_valid_offset_error, read_offsets, stable_ground_error)
from ..errors import UserInputError, check_canceled
from .planetscope import days_between, find_scene_ids, parse_iso_utc
from .polyfit import block_rows_for, check_grid_mask, lattice_stride
from ..dates import DAYS_PER_YEAR
from ..io import Grid, RasterWriter, band_index_by_description, open_raster, row_blocks

VELOCITY_DESCRIPTIONS = (
    "speed (m/yr)",
    "flow azimuth (deg clockwise from grid north)",
    "east velocity (m/yr, grid x)",
    "north velocity (m/yr, grid y)",
)
TAG_MEDIAN_SHIFT_DX = "SM_MEDIAN_SHIFT_DX"
TAG_MEDIAN_SHIFT_DY = "SM_MEDIAN_SHIFT_DY"
TAG_MIN_PEAK = "SM_MIN_PEAK"
#: Sidecar style of velocity rasters (speed view; the azimuth view is ``velocity_azimuth``).
VELOCITY_STYLE = "velocity_speed"
_NO_VELOCITY_HINT = ("The disparity raster has no valid offset (or none with a peak correlation above the "
                     "minimum); check the correlation output.")

#: Cells used at most for the median shift (regular lattice subsample beyond).
_MEDIAN_MAX_CELLS = 4_000_000


# --------------------------------------------------------------------------- arrays

def _check_dt(dt_days: float) -> float:
    dt_days = float(dt_days)
    if not math.isfinite(dt_days) or dt_days == 0.0:
        raise UserInputError(
            f"zero time separation between the images (dt = {dt_days} days): velocities are "
            "undefined. Give the correct DT_DAYS or acquisition dates."
        )
    return dt_days


def offsets_to_velocity(dx, dy, pixel_transform: Affine,
                        dt_days: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (speed, azimuth, v_east, v_north) from offsets in reference pixels.

    ``pixel_transform`` holds the reference pixel's linear terms (metres per
    pixel); ``dt_days`` = secondary minus reference time, signed. Speeds and
    velocities are in m/yr, azimuth in degrees clockwise from grid north
    (0-360, direction of the velocity; NaN where the speed is 0). NaN offsets give NaN everywhere.
    """
    dt_years = _check_dt(dt_days) / DAYS_PER_YEAR
    dx = np.asarray(dx, np.float64)
    dy = np.asarray(dy, np.float64)
    t = pixel_transform
    v_east = (t.a * dx + t.b * dy) / dt_years
    v_north = (t.d * dx + t.e * dy) / dt_years
    speed = np.hypot(v_east, v_north)
    azimuth = np.mod(np.degrees(np.arctan2(v_east, v_north)), 360.0)
    azimuth = np.where(azimuth >= 360.0, azimuth - 360.0, azimuth)  # -1e-17 mod 360 rounds to 360
    azimuth = np.where(speed > 0.0, azimuth, np.nan)  # no motion, no direction (not 0° = north)
    return speed, azimuth, v_east, v_north


# --------------------------------------------------------------------------- dt

def _days_between_dates(ref_date: str, sec_date: str) -> float:
    return days_between(parse_iso_utc(ref_date), parse_iso_utc(sec_date))


def _days_from_ids(ref_text: str, sec_text: str) -> Optional[float]:
    ref_ids, sec_ids = find_scene_ids(ref_text), find_scene_ids(sec_text)
    if ref_ids and sec_ids:
        return days_between(ref_ids[0].acquired, sec_ids[0].acquired)
    return None


def _days_from_file_name(path: str) -> Optional[float]:
    ids = find_scene_ids(os.path.basename(path))
    if len(ids) >= 2:
        return days_between(ids[0].acquired, ids[1].acquired)
    return None


def resolve_dt_days(disp_path: str, dt_days: Optional[float] = None, ref_date: Optional[str] = None,
                    sec_date: Optional[str] = None) -> float:
    """Time separation (days, secondary minus reference, signed) of a disparity raster.

    Priority: explicit ``dt_days``; explicit ISO dates; tags SM_DT_DAYS, then
    SM_REF_DATE + SM_SEC_DATE, then SM_REF_ID + SM_SEC_ID (PlanetScope ids);
    then the first two PlanetScope scene ids in the file name (reference first).
    """
    if dt_days is not None:
        return _check_dt(dt_days)
    if (ref_date is None) != (sec_date is None):
        raise UserInputError("Give both the reference and the secondary date (or DT_DAYS).")
    if ref_date is not None:
        return _check_dt(_days_between_dates(ref_date, sec_date))
    with open_raster(disp_path) as ds:
        tags = ds.tags()
    if tags.get(TAG_DT_DAYS):
        try:
            return _check_dt(float(tags[TAG_DT_DAYS]))
        except ValueError as exc:
            raise UserInputError(
                f"The tag {TAG_DT_DAYS}='{tags[TAG_DT_DAYS]}' of '{disp_path}' is not a number; "
                "give DT_DAYS explicitly."
            ) from exc
    if tags.get(TAG_REF_DATE) and tags.get(TAG_SEC_DATE):
        return _check_dt(_days_between_dates(tags[TAG_REF_DATE], tags[TAG_SEC_DATE]))
    candidates = []
    if tags.get(TAG_REF_ID) and tags.get(TAG_SEC_ID):
        candidates.append(_days_from_ids(tags[TAG_REF_ID], tags[TAG_SEC_ID]))
    candidates.append(_days_from_file_name(disp_path))
    for days in candidates:
        if days is not None:
            return _check_dt(days)
    raise UserInputError(
        f"Cannot find the time separation of '{os.path.basename(disp_path)}': give DT_DAYS or the "
        "reference and secondary dates, or keep both PlanetScope scene ids (e.g. "
        "20200101_101010_1014 and 20200301_101010_1014) in the file name."
    )


# --------------------------------------------------------------------------- file

def _peak_band(ds, info, min_peak: Optional[float]) -> Optional[int]:
    if min_peak is None:
        return None
    band = None if info.is_asp else band_index_by_description(ds, PEAK)
    if band is None:
        raise UserInputError(
            f"'{info.path}' has no '{PEAK}' band (ASP -F.tif files have none), so a minimum peak "
            "correlation cannot be applied; leave it empty."
        )
    return band


def _read_block(ds, info, window, peak_band, min_peak) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dy, valid) of a block with low-correlation cells set to NaN/invalid."""
    dx, dy, valid = read_offsets(ds, window=window, is_asp=info.is_asp)
    if peak_band is not None:
        peak = ds.read(peak_band, window=window)
        with np.errstate(invalid="ignore"):
            valid &= np.isfinite(peak) & (peak >= min_peak)
        dx[~valid] = np.nan
        dy[~valid] = np.nan
    return dx, dy, valid


def _stable_median(ds, info, stable_mask, peak_band, min_peak, progress, is_canceled) -> Tuple[float, float]:
    """NaN-median (px) of dx and dy over valid stable cells, on a lattice subsample if huge."""
    stride = lattice_stride(info.width * info.height, _MEDIAN_MAX_CELLS)
    parts_dx, parts_dy = [], []
    n_valid = 0
    for row0, row1 in row_blocks(info.height, block_rows_for(info.width)):
        check_canceled(is_canceled)
        dx, dy, valid = _read_block(ds, info, Window(0, row0, info.width, row1 - row0), peak_band, min_peak)
        n_valid += int(valid.sum())
        if stable_mask is not None:
            valid &= stable_mask[row0:row1]
        take = (slice((-row0) % stride, None, stride), slice(0, None, stride))
        parts_dx.append(dx[take][valid[take]].astype(np.float32))
        parts_dy.append(dy[take][valid[take]].astype(np.float32))
        if progress is not None:
            progress(40.0 * row1 / info.height)
    dx_all, dy_all = np.concatenate(parts_dx), np.concatenate(parts_dy)
    if n_valid == 0:
        raise no_valid_offset_error(info.path, min_peak)
    if dx_all.size == 0 and stable_mask is not None:
        raise stable_ground_error(info.path, n_valid)
    if dx_all.size == 0:
        raise UserInputError(
            "No valid offsets on stable ground for the median shift; check the stable-ground "
            "mask (True = stable) or switch the median shift off."
        )
    return float(np.median(dx_all.astype(np.float64))), float(np.median(dy_all.astype(np.float64)))


def velocity_file(disp_path: str, out_path: str, dt_days: Optional[float] = None, ref_date: Optional[str] = None,
                  sec_date: Optional[str] = None, median_shift: bool = False,
                  stable_mask: Optional[np.ndarray] = None, min_peak: Optional[float] = None,
                  progress: Optional[Callable[[float], None]] = None,
                  is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, float]:
    """Write a 4-band velocity GeoTIFF (speed, azimuth, v_east, v_north; m/yr, degrees).

    ``median_shift`` subtracts the median dx and dy over stable ground
    (``stable_mask`` True = stable, on the disparity grid; all valid cells
    when None) before conversion. ``min_peak`` drops cells whose peak ZNCC is
    below it (our format only). Returns dt_days, median_dx, median_dy (px,
    0 without shift) and n_valid (cells with a velocity).
    """
    info = describe_disparity(disp_path)
    dt = resolve_dt_days(disp_path, dt_days, ref_date, sec_date)
    stable_mask = check_grid_mask(stable_mask, info.height, info.width, "stable-ground mask")
    with open_raster(disp_path) as ds:
        peak_band = _peak_band(ds, info, min_peak)
        median_dx = median_dy = 0.0
        if median_shift:
            median_dx, median_dy = _stable_median(ds, info, stable_mask, peak_band, min_peak, progress, is_canceled)
        tags = dict(ds.tags())
        tags.update({TAG_DT_DAYS: repr(dt), TAG_MEDIAN_SHIFT_DX: repr(median_dx),
                     TAG_MEDIAN_SHIFT_DY: repr(median_dy)})
        if min_peak is not None:
            tags[TAG_MIN_PEAK] = repr(float(min_peak))
        start = 40.0 if median_shift else 0.0
        n_valid = 0
        grid = Grid(info.crs, info.transform, info.width, info.height)
        with RasterWriter(out_path, grid, VELOCITY_DESCRIPTIONS, tags=tags, style=VELOCITY_STYLE,
                          require_valid=_NO_VELOCITY_HINT) as dst:
            for row0, row1 in row_blocks(info.height, block_rows_for(info.width)):
                check_canceled(is_canceled)
                window = Window(0, row0, info.width, row1 - row0)
                dx, dy, _ = _read_block(ds, info, window, peak_band, min_peak)
                bands = offsets_to_velocity(dx - median_dx, dy - median_dy, info.pixel_transform, dt)
                for index, band in enumerate(bands, start=1):
                    dst.write(band, index, window=window)
                n_valid += int(np.isfinite(bands[0]).sum())
                if progress is not None:
                    progress(start + (100.0 - start) * row1 / info.height)
    return {"dt_days": dt, "median_dx": median_dx, "median_dy": median_dy, "n_valid": n_valid}
