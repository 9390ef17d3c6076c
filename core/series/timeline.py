"""Per-pair statistics inside AOI features (REFERENCE §6.4; surfacemotion:aoitimeline).

For every pair raster (:func:`core.series.network.read_pair`: velocity or disparity, converted to m/yr by
:meth:`PairRaster.read_velocity`) and every AOI feature: n_valid, mean, std (population, ddof 0), median, p25,
p75 (numpy linear percentiles) of speed, v_east and v_north over the feature's pixels where both components are
finite. A feature is rasterised once per distinct grid with ``rasterio.features.rasterize``, all_touched OFF: a
pixel belongs to the feature when its centre is inside. Only the rows and columns of the feature's bounding
window are read (bounded memory). Geometries come as GeoJSON in the CRS of the grid (the caller reprojects
and buffers points).

Columns (one row per feature and pair, sorted by feature then pair start/end): ``feature, pair, ref, sec,
id_ref, id_sec, date_ref, date_sec, mid_date, dt_days`` then ``<stat>_<quantity>``. ``ref``/``sec`` are the
scene ids (tags SM_REF_ID/SM_SEC_ID, else the PlanetScope ids of the file name, else empty); ``id_ref``/
``id_sec`` the 0-based index of the date among the network's sorted unique dates; dates are ISO 8601 UTC;
``dt_days`` = secondary minus reference (signed).
"""
from __future__ import annotations

import csv
import io
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from rasterio.windows import Window

from ..errors import UserInputError, check_canceled
from ..io import open_raster, write_text
from ..offsets.disparity import TAG_REF_ID, TAG_SEC_ID
from ..offsets.planetscope import find_scene_ids, iso_utc

QUANTITIES = ("speed", "v_east", "v_north")
STATISTICS = ("n_valid", "mean", "std", "median", "p25", "p75")
PAIR_COLUMNS = ("feature", "pair", "ref", "sec", "id_ref", "id_sec", "date_ref", "date_sec", "mid_date", "dt_days")
STAT_COLUMNS = tuple(f"{stat}_{quantity}" for quantity in QUANTITIES for stat in STATISTICS)
COLUMNS = PAIR_COLUMNS + STAT_COLUMNS

#: A feature on one grid: the window of its bounding box and the boolean mask (True = inside) on it.
FeatureMask = Optional[Tuple[Window, np.ndarray]]


def feature_mask(geometry: Optional[dict], grid) -> FeatureMask:
    """The window and mask of ``geometry`` (GeoJSON in the grid's CRS) on ``grid``; None if no pixel centre
    is inside (outside the grid, empty, or smaller than a pixel)."""
    if not geometry:
        return None
    left, bottom, right, top = rio_features.bounds(geometry)
    full = Window(0, 0, grid.width, grid.height)
    window = rio_windows.from_bounds(left, bottom, right, top, transform=grid.transform)
    window = window.round_offsets(op="floor").round_lengths(op="ceil")
    try:
        window = rio_windows.intersection(Window(window.col_off - 1, window.row_off - 1, window.width + 2,
                                                 window.height + 2), full)
    except rio_windows.WindowError:
        return None
    height, width = int(window.height), int(window.width)
    if height <= 0 or width <= 0:
        return None
    mask = rio_features.rasterize([(geometry, 1)], out_shape=(height, width), fill=0, all_touched=False,
                                  transform=rio_windows.transform(window, grid.transform), dtype="uint8")
    mask = mask.astype(bool)
    return (window, mask) if mask.any() else None


def region_statistics(values: np.ndarray) -> Dict[str, float]:
    """n_valid, mean, std (ddof 0), median, p25, p75 of the finite ``values`` (NaN stats when none)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"n_valid": 0, **{stat: float("nan") for stat in STATISTICS[1:]}}
    p25, median, p75 = np.percentile(values, [25.0, 50.0, 75.0])
    return {"n_valid": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
            "median": float(median), "p25": float(p25), "p75": float(p75)}


def _scene_ids(path: str) -> Tuple[str, str]:
    with open_raster(path) as ds:
        tags = ds.tags()
    if tags.get(TAG_REF_ID) and tags.get(TAG_SEC_ID):
        return tags[TAG_REF_ID], tags[TAG_SEC_ID]
    ids = find_scene_ids(os.path.basename(path))
    return (ids[0].scene_id, ids[1].scene_id) if len(ids) >= 2 else ("", "")


def _grid_key(grid) -> tuple:
    return (str(grid.crs), tuple(grid.transform)[:6], grid.width, grid.height)


def timeline_rows(pairs: Sequence, names: Sequence[str], geometries_in: Callable[[object], Sequence[Optional[dict]]],
                  dt_max: Optional[float] = None, progress: Optional[Callable[[float], None]] = None,
                  is_canceled: Optional[Callable[[], bool]] = None) -> List[dict]:
    """The per-pair statistics rows of every AOI feature (COLUMNS).

    ``pairs``: PairRaster objects; ``names``: one label per AOI feature; ``geometries_in(crs)``: the AOI
    features' GeoJSON geometries in ``crs`` (called once per distinct CRS, same order as ``names``);
    ``dt_max`` (days): pairs with |dt| above it are left out.
    """
    if not pairs:
        raise UserInputError("No pair raster was given: give velocity or disparity rasters, or a pair table.")
    if not names:
        raise UserInputError("The AOI layer has no feature: give polygons or points (with a buffer) to measure in.")
    kept = [p for p in pairs if dt_max is None or abs(p.dt_days) <= dt_max]
    if not kept:
        longest = min(abs(p.dt_days) for p in pairs)
        raise UserInputError(f"No pair is at most {dt_max:g} days long (the shortest spans {longest:.3f} days): "
                             "raise the maximum time separation or leave it empty.")
    kept = sorted(kept, key=lambda p: (p.start, p.end, p.path))
    dates = sorted({p.ref_date for p in kept} | {p.sec_date for p in kept})
    index_of = {date: index for index, date in enumerate(dates)}
    geometries_by_crs: Dict[str, Sequence[Optional[dict]]] = {}
    masks_by_grid: Dict[tuple, List[FeatureMask]] = {}
    per_feature: List[List[dict]] = [[] for _ in names]
    for number, pair in enumerate(kept):
        check_canceled(is_canceled)
        key = _grid_key(pair.grid)
        if key not in masks_by_grid:
            crs_key = str(pair.grid.crs)
            if crs_key not in geometries_by_crs:
                geometries_by_crs[crs_key] = list(geometries_in(pair.grid.crs))
            masks_by_grid[key] = [feature_mask(g, pair.grid) for g in geometries_by_crs[crs_key]]
        ref_id, sec_id = _scene_ids(pair.path)
        base = {"pair": os.path.basename(pair.path), "ref": ref_id, "sec": sec_id,
                "id_ref": index_of[pair.ref_date], "id_sec": index_of[pair.sec_date],
                "date_ref": iso_utc(pair.ref_date), "date_sec": iso_utc(pair.sec_date),
                "mid_date": iso_utc(pair.start + (pair.end - pair.start) / 2), "dt_days": float(pair.dt_days)}
        for feature, (name, fmask) in enumerate(zip(names, masks_by_grid[key])):
            row = {"feature": name, **base}
            row.update(_pair_statistics(pair, fmask))
            per_feature[feature].append(row)
        if progress is not None:
            progress(100.0 * (number + 1) / len(kept))
    if all(m is None for masks in masks_by_grid.values() for m in masks):
        raise UserInputError(
            "No AOI feature covers a pixel of the pair rasters: the features lie outside the rasters' extent or "
            "are smaller than a pixel (a pixel counts when its centre is inside). Check the AOI layer and its "
            "CRS, or give points a larger buffer.")
    return [row for rows in per_feature for row in rows]


def _pair_statistics(pair, fmask: FeatureMask) -> Dict[str, float]:
    if fmask is None:
        empty = region_statistics(np.empty(0))
        return {f"{stat}_{q}": empty[stat] for q in QUANTITIES for stat in STATISTICS}
    window, mask = fmask
    v_east, v_north = pair.read_velocity(window)
    inside = mask & np.isfinite(v_east) & np.isfinite(v_north)
    values = {"speed": np.hypot(v_east, v_north)[inside], "v_east": v_east[inside], "v_north": v_north[inside]}
    out = {}
    for quantity in QUANTITIES:
        stats = region_statistics(values[quantity])
        out.update({f"{stat}_{quantity}": stats[stat] for stat in STATISTICS})
    return out


def rows_as_csv(rows: Sequence[dict]) -> str:
    """CSV text (header COLUMNS, floats with repr precision, NaN empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and v != v else v) for k, v in row.items()})
    return buffer.getvalue()


def write_timeline_csv(path: str, rows: Sequence[dict], output_set=None) -> str:
    """Write ``rows`` to ``path`` atomically (core.io.write_text)."""
    return write_text(path, rows_as_csv(rows), output_set=output_set)
