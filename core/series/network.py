"""Reading a pair network: the rasters of many image pairs on one grid, with their dates.

A pair raster is one of

* ``'disparity'``: the output of surfacemotion:correlatepair(s) (bands ``dx``, ``dy`` in reference
  pixels, + right / + down, then ``valid``, optionally ``uncertainty (px, 1 sigma)``); dates from its tags
  ``SM_REF_DATE`` / ``SM_SEC_DATE``, else ``SM_REF_ID`` / ``SM_SEC_ID`` (PlanetScope ids), else the two ids
  of the file name ``<ref_id>_<sec_id>_disp.tif``;
* ``'velocity'``: the output of surfacemotion:velocity (bands speed, azimuth, east, north velocity in
  m/yr, optionally a band described ``uncertainty ...`` in m/yr); it keeps the disparity's tags, so its
  dates are found the same way;
* ``'asp'``: an Ames Stereo Pipeline ``-F.tif`` (3 bands without descriptions); its dates must be given;
* ``'itslive'``: an ITS_LIVE cube download of surfacemotion:itslivedownload (``<stem>_vx.tif`` and
  ``<stem>_vy.tif``, m/yr, vx = east = grid x, vy = north = grid y, one band per image pair with band
  tags ``SM_MID_DATE`` and ``SM_DATE_DT_DAYS``): ONE file holding many pairs, expanded into one
  :class:`PairRaster` per band (``band``), dates mid_date ∓ date_dt / 2 (reference = the earlier).
  Its 1-sigma errors are ``<stem>_vx_error.tif`` / ``<stem>_vy_error.tif`` when both were downloaded.
  A download aggregated into time bins (no ``SM_DATE_DT_DAYS``) holds composites, not pairs: refused.

Dates are timezone-aware UTC datetimes; ``dt_days`` = secondary minus reference (signed, days).
:meth:`PairRaster.read_velocity` gives the pair's mean velocity (m/yr, east = grid x, north = grid y,
pointing forward in time, years of 365.25 days, REFERENCE §5, §6.2) over any window of rows;
:meth:`PairRaster.read_sigma` its 1-sigma uncertainty (m/yr, per component), or None.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from rasterio.windows import Window

from ..dates import DAYS_PER_YEAR
from ..errors import UserInputError
from ..io import Grid, band_index_by_description, open_raster, valid_mask_from_nodata
from ..offsets.disparity import (DX, DY, TAG_REF_DATE, TAG_REF_ID, TAG_SEC_DATE, TAG_SEC_ID, TAG_STEP,
                                 UNCERTAINTY, read_offsets, reference_pixel_transform)
from ..offsets.planetscope import days_between, find_scene_ids, iso_utc, parse_iso_utc

KIND_VELOCITY = "velocity"
KIND_DISPARITY = "disparity"
KIND_ASP = "asp"
KIND_ITSLIVE = "itslive"
#: Band descriptions of a velocity raster (core.offsets.velocity.VELOCITY_DESCRIPTIONS) used here.
_V_EAST = "east velocity (m/yr, grid x)"
_V_NORTH = "north velocity (m/yr, grid y)"
#: Velocity rasters: the uncertainty band's description starts with this (m/yr).
_V_UNCERTAINTY_PREFIX = "uncertainty"
#: Pair-table columns that may hold the pair raster's path (first found wins).
PATH_COLUMNS = ("path", "output", "velocity", "disparity", "file")
#: Tags of an ITS_LIVE download GeoTIFF (core.itslive.download.write_cube_outputs): dataset tag naming the
#: cube variable; per-band mid date (ISO) and time separation of the pair (days; absent when aggregated).
TAG_CUBE_VARIABLE = "SM_VARIABLE"
TAG_MID_DATE = "SM_MID_DATE"
TAG_DATE_DT_DAYS = "SM_DATE_DT_DAYS"
#: The cube variables itslivedownload writes; vx and vy are the pair components, the errors their 1 sigma.
CUBE_VARIABLES = ("vx", "vy", "v", "vx_error", "vy_error", "v_error")
CUBE_EAST, CUBE_NORTH = "vx", "vy"
CUBE_ERRORS = ("vx_error", "vy_error")
#: Given dates select the bands of a cube whose dates are within this of them (seconds).
_DATE_MATCH_SECONDS = 1.0


@dataclass(frozen=True)
class PairRaster:
    """One pair of a network: where it is, when its images were taken, on what grid.

    ``band`` > 0: the pair is band ``band`` (1-based) of a multi-pair file (an ITS_LIVE download: ``path`` is
    its ``_vx.tif``, ``north_path`` its ``_vy.tif``); 0: the file is the one pair. ``sigma_band``: the
    uncertainty band of a velocity / disparity raster (0: none); ``sigma_paths``: the ITS_LIVE
    ``(_vx_error.tif, _vy_error.tif)`` (empty: none).
    """

    path: str
    ref_date: datetime      # UTC, timezone-aware
    sec_date: datetime      # UTC, timezone-aware
    dt_days: float          # sec_date - ref_date (days, signed, never 0)
    grid: Grid
    kind: str               # 'velocity' | 'disparity' | 'asp' | 'itslive'
    step: int = 1           # disparity grids: reference pixels per output pixel
    band: int = 0
    north_path: str = ""
    sigma_band: int = 0
    sigma_paths: Tuple[str, ...] = ()

    @property
    def start(self) -> datetime:
        """The earlier of the two dates."""
        return min(self.ref_date, self.sec_date)

    @property
    def end(self) -> datetime:
        """The later of the two dates."""
        return max(self.ref_date, self.sec_date)

    @property
    def key(self) -> Tuple[str, int]:
        """(path, band): identifies the pair (one file may hold many pairs)."""
        return self.path, self.band

    @property
    def has_sigma(self) -> bool:
        """True when :meth:`read_sigma` gives an uncertainty (known without reading pixels)."""
        return bool(self.sigma_band or self.sigma_paths)

    def source_record(self) -> dict:
        """{"path", "ref_date", "sec_date"} (ISO UTC; + "band" for a multi-pair file) for ``SM_SERIES_SOURCES``."""
        record = {"path": self.path, "ref_date": iso_utc(self.ref_date), "sec_date": iso_utc(self.sec_date)}
        if self.band:
            record["band"] = self.band
        return record

    def read_velocity(self, window: Optional[Window] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(v_east, v_north) in m/yr (float64, NaN where invalid) over ``window`` (None: everything).

        Disparities (dx + right, dy + down, reference pixels) become metres through the reference pixel
        geometry (a north-up grid turns + down into south: north = -dy · |pixel height|), then are
        divided by dt in years; the sign of dt makes the velocity point forward in time.
        """
        if self.kind == KIND_ITSLIVE:
            return _both_valid(_read_band(self.path, self.band, window),
                               _read_band(self.north_path, self.band, window))
        with open_raster(self.path) as ds:
            if self.kind == KIND_VELOCITY:
                return _both_valid(ds.read_float(band_index_by_description(ds, _V_EAST), window=window),
                                   ds.read_float(band_index_by_description(ds, _V_NORTH), window=window))
            dx, dy, _ = read_offsets(ds, window=window, is_asp=self.kind == KIND_ASP)
        px = reference_pixel_transform(self.grid.transform, self.step)
        dt_yr = self.dt_days / DAYS_PER_YEAR
        east = (px.a * dx + px.b * dy) / dt_yr
        north = (px.d * dx + px.e * dy) / dt_yr
        return east, north

    def read_sigma(self, window: Optional[Window] = None) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """(σ_east, σ_north): 1-sigma uncertainty of :meth:`read_velocity` in m/yr (float64, NaN where
        unknown) over ``window``; None when the pair has no uncertainty (see :attr:`has_sigma`).

        ITS_LIVE: band ``band`` of the vx / vy error files. Velocity rasters: their uncertainty band (m/yr)
        for both components. Disparity rasters: the uncertainty σ_px (reference px, the same for dx and dy,
        independent) propagated through the reference pixel geometry (a, b, d, e) and divided by |dt| in
        years: σ_east = σ_px · √(a² + b²) / |dt|, σ_north = σ_px · √(d² + e²) / |dt| (= pixel size · σ_px / |dt|
        for square pixels). ASP -F.tif: None.
        """
        if not self.has_sigma:
            return None
        if self.kind == KIND_ITSLIVE:
            return (_read_band(self.sigma_paths[0], self.band, window),
                    _read_band(self.sigma_paths[1], self.band, window))
        sigma = _read_band(self.path, self.sigma_band, window)
        if self.kind == KIND_VELOCITY:
            return sigma, sigma.copy()
        px = reference_pixel_transform(self.grid.transform, self.step)
        per_year = abs(self.dt_days) / DAYS_PER_YEAR
        return sigma * (math.hypot(px.a, px.b) / per_year), sigma * (math.hypot(px.d, px.e) / per_year)


def _read_band(path: str, band: int, window: Optional[Window]) -> np.ndarray:
    with open_raster(path) as ds:
        return ds.read_float(band, window=window)


def _both_valid(east: np.ndarray, north: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The two components, NaN where either is missing."""
    bad = ~(np.isfinite(east) & np.isfinite(north))
    east[bad] = np.nan
    north[bad] = np.nan
    return east, north


# --------------------------------------------------------------------------- one pair per file

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
        "dy, valid, or an Ames Stereo Pipeline -F.tif with 3 bands) nor an ITS_LIVE download (<cube>_vx.tif "
        f"or <cube>_vy.tif of surfacemotion:itslivedownload); it has {ds.count} band(s)"
        + (f" described {list(descriptions)}." if any(descriptions) else "."))


def _sigma_band_of(ds, kind: str) -> int:
    """The uncertainty band of a velocity or disparity raster (0: none)."""
    if kind == KIND_DISPARITY:
        return band_index_by_description(ds, UNCERTAINTY) or 0
    if kind == KIND_VELOCITY:
        for index, text in enumerate(ds.descriptions, start=1):
            if (text or "").lower().startswith(_V_UNCERTAINTY_PREFIX):
                return index
    return 0


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


def _given_dates(path: str, ref_date, sec_date) -> Tuple[Optional[datetime], Optional[datetime]]:
    ref, sec = _as_date(ref_date), _as_date(sec_date)
    if (ref is None) != (sec is None):
        raise UserInputError(f"Give both the reference and the secondary date of '{path}' (or neither).")
    return ref, sec


def _existing(path) -> str:
    path = os.path.abspath(str(path))
    if not os.path.isfile(path):
        raise UserInputError(f"The pair raster '{path}' does not exist. Check the path.")
    return path


def _grid_of(ds, path: str) -> Grid:
    grid = Grid.of(ds)
    if grid.crs is None:
        raise UserInputError(f"'{path}' has no coordinate reference system; the pairs need a map grid.")
    return grid


def _check_two_dates(path: str, ref: datetime, sec: datetime) -> float:
    dt_days = days_between(ref, sec)
    if dt_days == 0.0:
        raise UserInputError(
            f"The two dates of '{os.path.basename(path)}' are the same ({iso_utc(ref)}): a pair needs two "
            "acquisition times.")
    return dt_days


def _single_pair(path: str, ds, ref: Optional[datetime], sec: Optional[datetime]) -> PairRaster:
    """The pair of a one-pair file (velocity, disparity, ASP) open as ``ds``."""
    kind, step = _kind_of(ds, path)
    grid = _grid_of(ds, path)
    if ref is None:
        found = _dates_from(dict(ds.tags()), path)
        if found is None:
            raise UserInputError(
                f"Cannot find the dates of '{os.path.basename(path)}': it has no SM_REF_DATE/SM_SEC_DATE tags "
                "and no two PlanetScope scene ids in its name. Give its dates in a pair table (columns path, "
                "ref_date, sec_date), e.g. for an ASP -F.tif.")
        ref, sec = found
    return PairRaster(path, ref, sec, _check_two_dates(path, ref, sec), grid, kind, step,
                      sigma_band=_sigma_band_of(ds, kind))


# --------------------------------------------------------------------------- ITS_LIVE downloads (many pairs)

@dataclass(frozen=True)
class _CubeFile:
    """What a pair network needs of one GeoTIFF of an ITS_LIVE download."""

    path: str
    grid: Grid
    band_dates: Tuple[Tuple[str, str], ...]   # (SM_MID_DATE, SM_DATE_DT_DAYS) text per band


def _cube_variable(ds) -> Optional[str]:
    variable = str(ds.tags().get(TAG_CUBE_VARIABLE, ""))
    return variable if variable in CUBE_VARIABLES else None


def _cube_stem(path: str, variable: str) -> str:
    suffix = f"_{variable}.tif"
    if not path.lower().endswith(suffix):
        raise UserInputError(
            f"'{os.path.basename(path)}' is the ITS_LIVE {variable} of a cube download, but its name does not "
            f"end with '{suffix}', so its companion files cannot be found. Keep the names itslivedownload "
            "gave: <cube>_vx.tif, <cube>_vy.tif (and <cube>_vx_error.tif, <cube>_vy_error.tif).")
    return path[: -len(suffix)]


def _read_cube_file(path: str) -> _CubeFile:
    with open_raster(path) as ds:
        grid = _grid_of(ds, path)
        band_dates = []
        for band in range(1, ds.count + 1):
            tags = ds.tags(band)
            band_dates.append((str(tags.get(TAG_MID_DATE, "")).strip(), str(tags.get(TAG_DATE_DT_DAYS, "")).strip()))
    return _CubeFile(path, grid, tuple(band_dates))


def _same_download(first: _CubeFile, other: _CubeFile) -> None:
    same_grid = (other.grid.width == first.grid.width and other.grid.height == first.grid.height
                 and other.grid.crs == first.grid.crs and other.grid.transform.almost_equals(first.grid.transform))
    if not (same_grid and other.band_dates == first.band_dates):
        raise UserInputError(
            f"'{os.path.basename(other.path)}' does not match '{os.path.basename(first.path)}' (grid, number of "
            f"bands or band dates differ: {len(other.band_dates)} vs {len(first.band_dates)} bands): they are not "
            "from the same ITS_LIVE download. Download the variables together (one run of itslivedownload).")


def _cube_pair_dates(cube: _CubeFile) -> List[Tuple[datetime, datetime]]:
    """(ref, sec) of every band: mid_date ∓ date_dt / 2 (ref the earlier)."""
    name = os.path.basename(cube.path)
    if not cube.band_dates:
        raise UserInputError(f"The ITS_LIVE download '{name}' has no band: it holds no image pair.")
    dates = []
    for band, (mid_text, dt_text) in enumerate(cube.band_dates, start=1):
        if not mid_text:
            raise UserInputError(
                f"Band {band} of the ITS_LIVE download '{name}' has no {TAG_MID_DATE} tag; download the cube "
                "again with surfacemotion:itslivedownload.")
        try:
            dt_days = abs(float(dt_text)) if dt_text else math.nan
        except ValueError:
            dt_days = math.nan
        if not math.isfinite(dt_days):
            raise UserInputError(
                f"'{name}' has no image-pair time separation ({TAG_DATE_DT_DAYS}) in band {band}: it is an "
                "ITS_LIVE download aggregated into time bins (composites of many pairs, not pairs), or its cube "
                "has no date_dt. Download the cube again without aggregation (AGGREGATE_AMOUNT 0) to use its "
                "layers as a pair network.")
        if dt_days == 0.0:
            raise UserInputError(f"Band {band} of '{name}' has a time separation of 0 days: not an image pair.")
        mid = parse_iso_utc(mid_text)
        half = timedelta(days=dt_days / 2.0)
        dates.append((mid - half, mid + half))
    return dates


def _cube_error_paths(stem: str, east: _CubeFile) -> Tuple[str, ...]:
    """(vx_error, vy_error) paths when both were downloaded (checked to match), else ()."""
    paths = [f"{stem}_{name}.tif" for name in CUBE_ERRORS]
    if not all(os.path.isfile(path) for path in paths):
        return ()
    for path in paths:
        _same_download(east, _read_cube_file(path))
    return tuple(paths)


def _cube_pairs(path: str, variable: str) -> List[PairRaster]:
    """Every band of an ITS_LIVE download as a PairRaster (``path`` its _vx.tif or _vy.tif)."""
    if variable not in (CUBE_EAST, CUBE_NORTH):
        raise UserInputError(
            f"'{os.path.basename(path)}' is the ITS_LIVE variable {variable}; a pair network needs the velocity "
            f"components: give the download's <cube>_{CUBE_EAST}.tif or <cube>_{CUBE_NORTH}.tif.")
    stem = _cube_stem(path, variable)
    east_path, north_path = f"{stem}_{CUBE_EAST}.tif", f"{stem}_{CUBE_NORTH}.tif"
    for component in (east_path, north_path):
        if not os.path.isfile(component):
            raise UserInputError(
                f"The ITS_LIVE download '{os.path.basename(path)}' has no companion "
                f"'{os.path.basename(component)}' next to it: a pair needs both vx (east) and vy (north). "
                "Download both variables (VARIABLES vx and vy) into one folder.")
    east, north = _read_cube_file(east_path), _read_cube_file(north_path)
    _same_download(east, north)
    sigma_paths = _cube_error_paths(stem, east)
    return [PairRaster(east_path, ref, sec, _check_two_dates(east_path, ref, sec), east.grid, KIND_ITSLIVE,
                       band=band, north_path=north_path, sigma_paths=sigma_paths)
            for band, (ref, sec) in enumerate(_cube_pair_dates(east), start=1)]


def _matching(pairs: List[PairRaster], ref: datetime, sec: datetime, path: str) -> List[PairRaster]:
    """The pairs of a multi-pair file whose dates are ``ref`` and ``sec`` (within a second)."""
    def near(a: datetime, b: datetime) -> bool:
        return abs(days_between(a, b)) * 86400.0 <= _DATE_MATCH_SECONDS

    found = [p for p in pairs if near(p.ref_date, ref) and near(p.sec_date, sec)]
    if not found:
        raise UserInputError(
            f"No pair of '{os.path.basename(path)}' ({len(pairs)} pairs, dates from its band tags) is "
            f"{iso_utc(ref)} to {iso_utc(sec)}. Leave its ref_date and sec_date empty to use every pair.")
    return found


# --------------------------------------------------------------------------- reading pairs

def read_pairs(path: str, ref_date: Union[str, datetime, None] = None,
               sec_date: Union[str, datetime, None] = None) -> List[PairRaster]:
    """Every pair of one file: one for a velocity / disparity / ASP raster (given dates win over tags and
    names), one per band for an ITS_LIVE download (given dates select the bands with those dates)."""
    path = _existing(path)
    ref, sec = _given_dates(path, ref_date, sec_date)
    with open_raster(path) as ds:
        variable = _cube_variable(ds)
        if variable is None:
            return [_single_pair(path, ds, ref, sec)]
    pairs = _cube_pairs(path, variable)
    return pairs if ref is None else _matching(pairs, ref, sec, path)


def read_pair(path: str, ref_date: Union[str, datetime, None] = None,
              sec_date: Union[str, datetime, None] = None, band: int = 0) -> PairRaster:
    """One pair: the pair of a one-pair raster, or of an ITS_LIVE download the pair of ``band`` (1-based)
    or the one with the given dates (:func:`read_network` reads every pair of a download)."""
    pairs = read_pairs(path, ref_date, sec_date)
    if band:
        pairs = [p for p in pairs if p.band == int(band)]
        if not pairs:
            raise UserInputError(f"'{os.path.basename(str(path))}' has no pair in band {band}.")
    if len(pairs) > 1:
        raise UserInputError(
            f"'{os.path.basename(str(path))}' holds {len(pairs)} pairs (an ITS_LIVE download, one per band): "
            "read it as a network (surfacemotion:invertpairs or stackvelocity), or choose one band.")
    return pairs[0]


# --------------------------------------------------------------------------- many pairs at once

#: Bytes of one read of many bands of a multi-pair file (bounds the temporary copy of a block read).
BAND_GROUP_BYTES = 64 << 20


def read_velocity_block(pairs: Sequence[PairRaster], window: Optional[Window] = None,
                        dtype=np.float32) -> np.ndarray:
    """(n_pairs, 2, rows, cols): :meth:`PairRaster.read_velocity` of every pair over ``window`` ([:, 0] east,
    [:, 1] north, m/yr, NaN where either is missing).

    The bands of one multi-pair file (ITS_LIVE download) are read together, a few hundred per call: its
    GeoTIFFs are pixel-interleaved, so a band read alone decompresses the tiles of every band (300 bands of
    256 × 256: 0.29 s per band read alone).
    """
    block = _read_block(pairs, window, dtype, sigma=False)
    _both_valid(block[:, 0], block[:, 1])
    return block


def read_sigma_block(pairs: Sequence[PairRaster], window: Optional[Window] = None,
                     dtype=np.float32) -> np.ndarray:
    """(n_pairs, 2, rows, cols): :meth:`PairRaster.read_sigma` (σ_east, σ_north, m/yr) of every pair over
    ``window``; all NaN for a pair without uncertainty (see :attr:`PairRaster.has_sigma`)."""
    return _read_block(pairs, window, dtype, sigma=True)


def _read_block(pairs: Sequence[PairRaster], window: Optional[Window], dtype, sigma: bool) -> np.ndarray:
    grid = pairs[0].grid
    rows, cols = (grid.height, grid.width) if window is None else (int(window.height), int(window.width))
    block = np.full((len(pairs), 2, rows, cols), np.nan, dtype)
    shared = {}  # (east file, north file) -> [(pair index, band)]
    for index, pair in enumerate(pairs):
        files = (pair.sigma_paths if sigma else (pair.path, pair.north_path)) if pair.band else ()
        if files:
            shared.setdefault(tuple(files), []).append((index, pair.band))
            continue
        values = pair.read_sigma(window) if sigma else pair.read_velocity(window)
        if values is not None:
            block[index, 0], block[index, 1] = values
    for files, members in shared.items():
        for component, path in enumerate(files):
            _read_bands_into(block, component, path, members, window, rows * cols)
    return block


def _read_bands_into(block: np.ndarray, component: int, path: str, members: List[Tuple[int, int]],
                     window: Optional[Window], cells: int) -> None:
    """block[index, component] = band ``band`` of ``path`` for every (index, band) of ``members``."""
    per_call = max(1, BAND_GROUP_BYTES // (cells * 4))
    with open_raster(path) as ds:
        for start in range(0, len(members), per_call):
            part = members[start:start + per_call]
            bands = [band for _, band in part]
            values = ds.read(bands, window=window).astype(block.dtype, copy=False)
            for k, (index, band) in enumerate(part):
                block[index, component] = np.where(valid_mask_from_nodata(values[k], ds.nodatavals[band - 1]),
                                                   values[k], np.nan)


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

    An ITS_LIVE download (its _vx.tif, its _vy.tif or both) gives one pair per band. Pairs come back sorted
    by (start, end) date; the same pair twice (same file and band) is read once.
    """
    pairs = [pair for path, ref, sec in _rows_of(source) for pair in read_pairs(path, ref, sec)]
    if not pairs:
        raise UserInputError("No pair raster given: the network needs at least two pairs.")
    return merge_networks(pairs)


def merge_networks(*networks: Sequence[PairRaster]) -> List[PairRaster]:
    """The pairs of ``networks`` (e.g. the layers and the pair table of a dialog), each pair once (same file
    and band; the first occurrence wins, with its dates), checked to share one grid, sorted by date."""
    pairs, seen = [], set()
    for pair in (pair for network in networks for pair in network):
        if pair.key not in seen:
            seen.add(pair.key)
            pairs.append(pair)
    if pairs:
        check_common_grid(pairs)
    return sorted(pairs, key=lambda p: (p.start, p.end, p.path, p.band))


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
    """The ``SM_SERIES_SOURCES`` tag: JSON list of :meth:`PairRaster.source_record`."""
    return json.dumps([pair.source_record() for pair in pairs])
