"""Reading a pair network: the rasters of many image pairs on one grid, with their dates.

A pair raster is one of

* ``'disparity'``: the output of surfacemotion:correlatepair(s) (bands ``dx``, ``dy`` in reference
  pixels, + right / + down, then ``valid``); dates from its tags ``SM_REF_DATE`` / ``SM_SEC_DATE``,
  else ``SM_REF_ID`` / ``SM_SEC_ID`` (PlanetScope ids), else the two ids of the file name
  ``<ref_id>_<sec_id>_disp.tif``;
* ``'velocity'``: the output of surfacemotion:velocity (bands speed, azimuth, east, north velocity in
  m/yr); it keeps the disparity's tags, so its dates are found the same way;
* ``'asp'``: an Ames Stereo Pipeline ``-F.tif`` (3 bands without descriptions); its dates must be given.

Dates are timezone-aware UTC datetimes; ``dt_days`` = secondary minus reference (signed, days).
:meth:`PairRaster.read_velocity` gives the pair's mean velocity (m/yr, east = grid x, north = grid y,
pointing forward in time, years of 365.25 days, REFERENCE §5, §6.2) over any window of rows.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from rasterio.windows import Window

from ..dates import DAYS_PER_YEAR
from ..errors import UserInputError
from ..io import Grid, band_index_by_description, open_raster
from ..offsets.disparity import (DX, DY, TAG_REF_DATE, TAG_REF_ID, TAG_SEC_DATE, TAG_SEC_ID, TAG_STEP,
                                 read_offsets, reference_pixel_transform)
from ..offsets.planetscope import days_between, find_scene_ids, iso_utc, parse_iso_utc

KIND_VELOCITY = "velocity"
KIND_DISPARITY = "disparity"
KIND_ASP = "asp"
#: Band descriptions of a velocity raster (core.offsets.velocity.VELOCITY_DESCRIPTIONS) used here.
_V_EAST = "east velocity (m/yr, grid x)"
_V_NORTH = "north velocity (m/yr, grid y)"
#: Pair-table columns that may hold the pair raster's path (first found wins).
PATH_COLUMNS = ("path", "output", "velocity", "disparity", "file")


@dataclass(frozen=True)
class PairRaster:
    """One pair raster of a network: where it is, when its images were taken, on what grid."""

    path: str
    ref_date: datetime      # UTC, timezone-aware
    sec_date: datetime      # UTC, timezone-aware
    dt_days: float          # sec_date - ref_date (days, signed, never 0)
    grid: Grid
    kind: str               # 'velocity' | 'disparity' | 'asp'
    step: int = 1           # disparity grids: reference pixels per output pixel

    @property
    def start(self) -> datetime:
        """The earlier of the two dates."""
        return min(self.ref_date, self.sec_date)

    @property
    def end(self) -> datetime:
        """The later of the two dates."""
        return max(self.ref_date, self.sec_date)

    def source_record(self) -> dict:
        """{"path", "ref_date", "sec_date"} (ISO UTC) for the ``SM_SERIES_SOURCES`` tag."""
        return {"path": self.path, "ref_date": iso_utc(self.ref_date), "sec_date": iso_utc(self.sec_date)}

    def read_velocity(self, window: Optional[Window] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(v_east, v_north) in m/yr (float64, NaN where invalid) over ``window`` (None: everything).

        Disparities (dx + right, dy + down, reference pixels) become metres through the reference pixel
        geometry (a north-up grid turns + down into south: north = -dy · |pixel height|), then are
        divided by dt in years; the sign of dt makes the velocity point forward in time.
        """
        with open_raster(self.path) as ds:
            if self.kind == KIND_VELOCITY:
                east = ds.read_float(band_index_by_description(ds, _V_EAST), window=window)
                north = ds.read_float(band_index_by_description(ds, _V_NORTH), window=window)
                bad = ~(np.isfinite(east) & np.isfinite(north))
                east[bad] = np.nan
                north[bad] = np.nan
                return east, north
            dx, dy, _ = read_offsets(ds, window=window, is_asp=self.kind == KIND_ASP)
        px = reference_pixel_transform(self.grid.transform, self.step)
        dt_yr = self.dt_days / DAYS_PER_YEAR
        east = (px.a * dx + px.b * dy) / dt_yr
        north = (px.d * dx + px.e * dy) / dt_yr
        return east, north


# --------------------------------------------------------------------------- one pair

def _kind_of(ds, path: str) -> Tuple[str, int]:
    descriptions = tuple(d or "" for d in ds.descriptions)
    if band_index_by_description(ds, _V_EAST) and band_index_by_description(ds, _V_NORTH):
        return KIND_VELOCITY, 1
    if ds.count >= 3 and descriptions[0] == DX and descriptions[1] == DY:
        return KIND_DISPARITY, int(float(ds.tags().get(TAG_STEP, 1)))
    if ds.count == 3 and not any(descriptions):
        return KIND_ASP, 1
    raise UserInputError(
        f"'{path}' is neither a velocity raster (output of surfacemotion:velocity, bands speed, azimuth, "
        "east and north velocity) nor a disparity raster (output of surfacemotion:correlatepair, bands dx, "
        f"dy, valid, or an Ames Stereo Pipeline -F.tif with 3 bands); it has {ds.count} band(s)"
        + (f" described {list(descriptions)}." if any(descriptions) else "."))


def _dates_from(tags: dict, path: str) -> Optional[Tuple[datetime, datetime]]:
    """(ref, sec) from the tags (dates, then PlanetScope ids), else from the file name's two ids."""
    if tags.get(TAG_REF_DATE) and tags.get(TAG_SEC_DATE):
        return parse_iso_utc(tags[TAG_REF_DATE]), parse_iso_utc(tags[TAG_SEC_DATE])
    if tags.get(TAG_REF_ID) and tags.get(TAG_SEC_ID):
        ref_ids, sec_ids = find_scene_ids(tags[TAG_REF_ID]), find_scene_ids(tags[TAG_SEC_ID])
        if ref_ids and sec_ids:
            return ref_ids[0].acquired, sec_ids[0].acquired
    ids = find_scene_ids(os.path.basename(path))
    if len(ids) >= 2:
        return ids[0].acquired, ids[1].acquired
    return None


def _as_date(value: Union[str, datetime, None]) -> Optional[datetime]:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return None
    if isinstance(value, datetime):
        return parse_iso_utc(iso_utc(value))
    return parse_iso_utc(str(value))


def read_pair(path: str, ref_date: Union[str, datetime, None] = None,
              sec_date: Union[str, datetime, None] = None) -> PairRaster:
    """Inspect one pair raster: its kind, grid and dates (given dates win over tags and names)."""
    path = os.path.abspath(str(path))
    if not os.path.isfile(path):
        raise UserInputError(f"The pair raster '{path}' does not exist. Check the path.")
    with open_raster(path) as ds:
        kind, step = _kind_of(ds, path)
        grid = Grid.of(ds)
        if grid.crs is None:
            raise UserInputError(f"'{path}' has no coordinate reference system; the pairs need a map grid.")
        tags = dict(ds.tags())
    ref, sec = _as_date(ref_date), _as_date(sec_date)
    if (ref is None) != (sec is None):
        raise UserInputError(f"Give both the reference and the secondary date of '{path}' (or neither).")
    if ref is None:
        found = _dates_from(tags, path)
        if found is None:
            raise UserInputError(
                f"Cannot find the dates of '{os.path.basename(path)}': it has no SM_REF_DATE/SM_SEC_DATE tags "
                "and no two PlanetScope scene ids in its name. Give its dates in a pair table (columns path, "
                "ref_date, sec_date), e.g. for an ASP -F.tif.")
        ref, sec = found
    dt_days = days_between(ref, sec)
    if dt_days == 0.0:
        raise UserInputError(
            f"The two dates of '{os.path.basename(path)}' are the same ({iso_utc(ref)}): a pair needs two "
            "acquisition times.")
    return PairRaster(path, ref, sec, dt_days, grid, kind, step)


# --------------------------------------------------------------------------- a network

def _rows_of(source: Union[Sequence[str], pd.DataFrame, str]) -> List[Tuple[str, object, object]]:
    """(path, ref_date, sec_date) rows from paths, a pair table or a CSV path."""
    if isinstance(source, str) and source.lower().endswith(".csv"):
        folder = os.path.dirname(os.path.abspath(source))
        try:
            table = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise UserInputError(f"Cannot read the pair table '{source}' as CSV: {exc}") from exc
        return _rows_of_table(table, folder, f"The pair table '{source}'")
    if isinstance(source, pd.DataFrame):
        return _rows_of_table(source, os.getcwd(), "The pair table")
    if isinstance(source, str):
        source = [source]
    return [(str(path), None, None) for path in source]


def _rows_of_table(table: pd.DataFrame, folder: str, what: str) -> List[Tuple[str, object, object]]:
    columns = [str(c).strip() for c in table.columns]
    table = table.set_axis(columns, axis=1)
    column = next((c for c in PATH_COLUMNS if c in columns), None)
    if column is None:
        raise UserInputError(
            f"{what} has no column with the pair rasters' paths (one of {list(PATH_COLUMNS)}); columns found: "
            f"{columns}. Add a 'path' column (and 'ref_date', 'sec_date' for rasters without date tags).")
    rows = []
    for _, row in table.iterrows():
        path = os.path.expanduser(str(row[column]).strip())
        if not path:
            continue
        path = path if os.path.isabs(path) else os.path.join(folder, path)
        rows.append((path, row.get("ref_date"), row.get("sec_date")))
    return rows


def read_network(source: Union[Sequence[str], pd.DataFrame, str]) -> List[PairRaster]:
    """Every pair raster of ``source`` (paths, a pair table or its CSV), checked to share one grid.

    Pairs come back sorted by (start, end) date; the same file twice is read once.
    """
    pairs, seen = [], set()
    for path, ref, sec in _rows_of(source):
        pair = read_pair(path, ref, sec)
        if pair.path not in seen:
            seen.add(pair.path)
            pairs.append(pair)
    if not pairs:
        raise UserInputError("No pair raster given: the network needs at least two pairs.")
    check_common_grid(pairs)
    return sorted(pairs, key=lambda p: (p.start, p.end, p.path))


def check_common_grid(pairs: Sequence[PairRaster]) -> Grid:
    """The grid shared by every pair; a clear error naming the first pair that differs."""
    first = pairs[0]
    for pair in pairs[1:]:
        same = (pair.grid.width == first.grid.width and pair.grid.height == first.grid.height
                and pair.grid.crs == first.grid.crs and pair.grid.transform.almost_equals(first.grid.transform))
        if not same:
            raise UserInputError(
                f"The pair rasters are not on one grid: '{os.path.basename(pair.path)}' is "
                f"{pair.grid.width}×{pair.grid.height} px, {pair.grid.crs}, origin "
                f"({pair.grid.transform.c:g}, {pair.grid.transform.f:g}), pixel {pair.grid.transform.a:g} m, "
                f"but '{os.path.basename(first.path)}' is {first.grid.width}×{first.grid.height} px, "
                f"{first.grid.crs}, origin ({first.grid.transform.c:g}, {first.grid.transform.f:g}), pixel "
                f"{first.grid.transform.a:g} m. Correlate every pair with the same reference grid, chip "
                "step and area (or resample them onto one grid with gdalwarp first).")
    return first.grid


def sources_tag(pairs: Sequence[PairRaster]) -> str:
    """The ``SM_SERIES_SOURCES`` tag: JSON list of {"path", "ref_date", "sec_date"}."""
    return json.dumps([pair.source_record() for pair in pairs])
