"""Date stacks of single-date backscatter rasters: discovery, dates, polarisation, reading.

A stack is a list of :class:`Layer` (one file band per date) sharing one grid; reading a
row window returns a float32 array ``(dates, rows, cols)`` in linear power with NaN
where there is no data (nodata, NaN, integer DN 0, exact linear 0).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
from rasterio.windows import Window

from ..errors import UserInputError
from ..io import SOURCE_NODATA, Grid, RasterReader, open_raster
from .naming import parse_datetime, parse_polarisation
from .units import UNITS, clean_linear, db_to_power, unit_problem

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt")
LS_MASK_TOKENS = ("lsmask", "ls_mask", "layover")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One date of a stack: ``band`` (1-based) of ``path`` acquired at ``when`` (UTC)."""
    path: str
    band: int
    when: dt.datetime
    polarisation: Optional[str]

    @property
    def label(self) -> str:
        return self.when.strftime("%Y-%m-%d")


def is_ls_mask_name(path: str) -> bool:
    name = os.path.basename(path).lower()
    return any(token in name for token in LS_MASK_TOKENS)


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """Files of ``inputs``: folders expand to their .tif/.tiff/.vrt files (sorted, not recursive)."""
    paths: List[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(p for p in glob.glob(os.path.join(item, "*"))
                           if p.lower().endswith(RASTER_SUFFIXES))
            if not found:
                raise UserInputError(f"The folder '{item}' contains no .tif, .tiff or .vrt file.")
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(item)
        else:
            raise UserInputError(f"Input '{item}' does not exist. Check the path.")
    return paths


def split_ls_masks(paths: Sequence[str]):
    """(backscatter paths, layover/shadow mask paths) by file name (lsmask, ls_mask, layover)."""
    masks = [p for p in paths if is_ls_mask_name(p)]
    return [p for p in paths if p not in masks], masks


def layers_of(path: str, polarisation: Optional[str] = None) -> List[Layer]:
    """The dated layers of one file: a single-band file is dated by its name; a multi-band
    file (e.g. a time-series VRT) by its band descriptions."""
    with open_raster(path) as ds:
        descriptions = list(ds.descriptions)
        count = ds.count
    pol = polarisation or parse_polarisation(path)
    name = os.path.basename(path)
    if count == 1:
        when = parse_datetime(descriptions[0] or "") or parse_datetime(name)
        if when is None:
            raise UserInputError(
                f"No acquisition date in the file name '{name}'. Names must contain YYYYMMDDTHHMMSS, "
                "YYYY-MM-DD, YYYYMMDD or the OST form .YYMMDD. (e.g. S1A_IW_GRDH_1SDV_20230105T053012_"
                "..._VV.tif); rename the file.")
        return [Layer(path, 1, when, pol)]
    layers = []
    for band, text in enumerate(descriptions, start=1):
        when = parse_datetime(text or "")
        if when is None:
            raise UserInputError(
                f"Band {band} of the multi-band file '{name}' has no date in its description "
                f"('{text or ''}'); use a time-series VRT from surfacemotion:s1timeseries or single-date files.")
        layers.append(Layer(path, band, when, pol))
    return layers


def collect_layers(inputs: Sequence[str], polarisation: Optional[str] = None) -> List[Layer]:
    """Dated layers of all inputs (folders expanded, LS masks left out), sorted by time."""
    paths, _ = split_ls_masks(expand_inputs(inputs))
    layers = [layer for path in paths for layer in layers_of(path, polarisation)]
    return sorted(layers, key=lambda layer: layer.when)


def by_polarisation(layers: Sequence[Layer]) -> Dict[str, List[Layer]]:
    """Group layers per polarisation; a layer without one is an error naming the file."""
    groups: Dict[str, List[Layer]] = {}
    for layer in layers:
        if layer.polarisation is None:
            raise UserInputError(
                f"No polarisation (VV, VH, HH or HV) in the name of '{os.path.basename(layer.path)}'. "
                "Rename the file or set the polarisation parameter.")
        groups.setdefault(layer.polarisation, []).append(layer)
    return groups


def require_stack(layers: Sequence[Layer], minimum_dates: int = 2) -> str:
    """Check a single-polarisation stack of distinct dates; return its polarisation (or 'bs')."""
    if len(layers) < minimum_dates:
        raise UserInputError(
            f"The stack has {len(layers)} date(s); at least {minimum_dates} dates are needed. "
            "Give more acquisitions of the same track and polarisation.")
    pols = sorted({layer.polarisation for layer in layers if layer.polarisation})
    if len(pols) > 1:
        raise UserInputError(
            f"The stack mixes polarisations ({', '.join(pols)}); run once per polarisation "
            "(surfacemotion:s1timeseries writes one stack per polarisation).")
    seen = {}
    for layer in layers:
        if layer.when in seen:
            raise UserInputError(
                f"Two inputs have the same acquisition time {layer.when:%Y-%m-%dT%H:%M:%S}: "
                f"'{os.path.basename(seen[layer.when].path)}' and '{os.path.basename(layer.path)}'.")
        seen[layer.when] = layer
    return pols[0] if pols else "bs"


def require_same_grid(layers: Sequence[Layer]) -> Grid:
    """The grid all ``layers`` share; clear errors for a missing CRS, a CRS or a grid mismatch."""
    reference: Optional[Grid] = None
    for layer in layers:
        with open_raster(layer.path) as ds:
            grid = Grid.of(ds)
        if reference is None:
            if grid.crs is None:
                raise UserInputError(f"'{layer.path}' has no coordinate reference system; assign one first.")
            reference = grid
        elif grid.crs != reference.crs:
            raise UserInputError(
                f"Mixed coordinate reference systems: '{os.path.basename(layers[0].path)}' is in "
                f"{reference.crs.to_string()} but '{os.path.basename(layer.path)}' in "
                f"{grid.crs.to_string() if grid.crs else 'no CRS'}. "
                "Reproject all dates to one CRS, or mosaic different tracks with surfacemotion:s1mosaic.")
        elif grid != reference:
            raise UserInputError(
                f"'{os.path.basename(layer.path)}' is not on the grid of '{os.path.basename(layers[0].path)}' "
                "(extent, size or pixel size differ). Build an aligned stack first with surfacemotion:s1timeseries.")
    return reference


def sample_stored(path: str, band: int = 1, max_side: int = 256) -> np.ndarray:
    """Band ``band`` of ``path`` read with nearest decimation to at most ``max_side`` pixels a side,
    in its stored physical unit (GDAL scale/offset applied), float32, NaN = no data (declared
    nodata, NaN, integer DN 0)."""
    from rasterio.enums import Resampling

    with open_raster(path) as ds:
        factor = max(1.0, max(ds.width, ds.height) / float(max_side))
        shape = (max(1, int(ds.height / factor)), max(1, int(ds.width / factor)))
        raw = ds.read(band, out_shape=shape, resampling=Resampling.nearest)
        nodata = ds.nodatavals[band - 1]
        scale, offset = ds.scales[band - 1] or 1.0, ds.offsets[band - 1] or 0.0
    values = raw.astype(np.float32) * np.float32(scale) + np.float32(offset)
    invalid = ~np.isfinite(values)
    if nodata is not None and not np.isnan(nodata):
        invalid |= raw == nodata
    if np.issubdtype(raw.dtype, np.integer):
        invalid |= raw == 0
    values[invalid] = np.nan
    return values


def require_plausible_unit(layers: Sequence[Layer], unit: str) -> None:
    """Refuse a stack whose values cannot be in the declared ``unit`` (dB declared linear, DN declared
    dB; :func:`units.unit_problem`), from a decimated sample of its first, middle and last date."""
    picks = {id(layer): layer for layer in (layers[0], layers[len(layers) // 2], layers[-1])} if layers else {}
    for layer in picks.values():
        problem = unit_problem(sample_stored(layer.path, layer.band), unit, os.path.basename(layer.path))
        if problem:
            raise UserInputError(problem)


def stored_nodata(ds: RasterReader, band: int):
    """Nodata of a stored backscatter band, for :class:`core.io.GridResampler` (``src_nodata``):
    the declared nodata, else DN 0 for integer bands (the convention of scaled integer
    backscatter, §9.5), else the source default (NaN for float bands)."""
    declared = ds.nodatavals[band - 1]
    if declared is None and np.issubdtype(np.dtype(ds.dtypes[band - 1]), np.integer):
        return 0
    return SOURCE_NODATA


class StackReader:
    """Reads row windows of a stack as linear power (float32, NaN = no data).

    ``unit`` declares how the files store backscatter: ``"db"`` or ``"linear"``. Integer
    files are converted with their GDAL scale/offset and DN 0 is nodata.
    """

    def __init__(self, layers: Sequence[Layer], unit: str):
        self.layers = list(layers)
        self.unit = UNITS.check(unit, "backscatter unit")
        self._datasets: Dict[str, RasterReader] = {}

    def __enter__(self) -> "StackReader":
        for layer in self.layers:
            if layer.path not in self._datasets:
                self._datasets[layer.path] = open_raster(layer.path)
        first = self._datasets[self.layers[0].path]
        self.width, self.height = first.width, first.height
        return self

    def __exit__(self, *exc) -> None:
        for ds in self._datasets.values():
            ds.close()
        self._datasets.clear()

    def block_shape(self) -> tuple:
        """(rows, cols) of the first file's internal blocks (tiles or strips)."""
        return self._datasets[self.layers[0].path].block_shapes[self.layers[0].band - 1]

    def read_window_stored(self, window: Window) -> np.ndarray:
        """``(dates, rows, cols)`` float32 in the stored unit (dB or linear), NaN = no data."""
        out = np.empty((len(self.layers), int(window.height), int(window.width)), dtype=np.float32)
        for index, layer in enumerate(self.layers):
            out[index] = self._read_physical(layer, window)
        return out

    def read_rows(self, start: int, stop: int, as_db: bool = False) -> np.ndarray:
        """``(dates, stop-start, width)`` float32: linear power, or dB with ``as_db``."""
        out = self.read_window_stored(Window(0, start, self.width, stop - start))
        if self.unit == "db" and not as_db:
            return db_to_power(out)
        if self.unit == "linear":
            out = clean_linear(out)
            if as_db:
                from .units import power_to_db
                return power_to_db(out)
        return out

    def _read_physical(self, layer: Layer, window: Window) -> np.ndarray:
        ds = self._datasets[layer.path]
        raw = ds.read(layer.band, window=window)
        nodata = ds.nodatavals[layer.band - 1]
        if np.issubdtype(raw.dtype, np.integer):
            scale = ds.scales[layer.band - 1] or 1.0
            offset = ds.offsets[layer.band - 1] or 0.0
            values = raw.astype(np.float32) * np.float32(scale) + np.float32(offset)
            values[raw == 0] = np.nan
            if nodata is not None:
                values[raw == nodata] = np.nan
            return values
        values = raw.astype(np.float32, copy=False)
        if nodata is not None and not np.isnan(nodata):
            values = np.where(values == nodata, np.float32(np.nan), values)
        return values
