"""Per-polarisation time-series stacks from single-date ARD GeoTIFFs of any source (REFERENCE §9.1–9.2).

Steps: date and polarisation from names (or band descriptions); one CRS required; common
grid = the first date's pixel grid cropped to the intersection of all footprints; each
date resampled (bilinear, NaN-aware) onto it; pixels not valid at every date of every
polarisation set to nodata (common valid extent); optional layover/shadow mask (union of
the masks, nonzero = layover or shadow; resampled nearest) removed; optional dB; optional
uint8/uint16. Resampling is :class:`core.io.GridResampler`'s: GDAL scale/offset applied,
declared nodata, NaN and, for integer inputs that declare no nodata, DN 0 are no data.
Outputs ``NN.<YYYYMMDD>.<POL>.tif`` + ``Timeseries.<POL>.vrt`` (band descriptions = ISO acquisition times).
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Callable, Dict, Optional, Sequence

import numpy as np
from rasterio.transform import Affine

from ..errors import UserInputError, check_canceled
from ..io import Grid, GridResampler, OutputSet, RasterWriter, open_raster, row_blocks
from ..io import output_folder as run_folder
from .common import (add_date_raster, add_time_series_vrt, check_output_dtype, date_file_names,
                     encode_backscatter, join, time_series_vrt_name)
from .naming import FROM_FILE_NAMES
from .stack import (Layer, by_polarisation, collect_layers, expand_inputs, require_plausible_unit, require_stack,
                    split_ls_masks, stored_nodata)
from .styles import backscatter_style
from .units import UNITS, clean_linear, db_to_power, power_to_db

#: Why a date file can come out empty, and what to do.
EMPTY_HINT = ("The common valid extent is empty: no pixel is valid at every date of every polarisation "
              "outside the layover/shadow mask. Check that all dates cover the same area, leave out dates "
              "without overlap, or untick 'Remove layover/shadow'.")


def common_grid(paths: Sequence[str]) -> Grid:
    """Grid of the first raster cropped to the intersection of all footprints (one CRS required)."""
    with open_raster(paths[0]) as ds:
        crs, transform = ds.crs, ds.transform
        if crs is None:
            raise UserInputError(f"'{paths[0]}' has no coordinate reference system; assign one first.")
    if transform.b != 0 or transform.d != 0:
        raise UserInputError(f"'{paths[0]}' is rotated; warp it to a north-up grid first.")
    left, bottom, right, top = -math.inf, -math.inf, math.inf, math.inf
    for path in paths:
        with open_raster(path) as ds:
            if ds.crs != crs:
                raise UserInputError(
                    f"Mixed coordinate reference systems: '{os.path.basename(paths[0])}' is in {crs.to_string()} "
                    f"but '{os.path.basename(path)}' in {ds.crs.to_string() if ds.crs else 'no CRS'}. Reproject all "
                    "dates of a track to one CRS; combine tracks with surfacemotion:s1mosaic.")
            b = ds.bounds
            left, bottom, right, top = max(left, b.left), max(bottom, b.bottom), min(right, b.right), min(top, b.top)
    xres, yres = transform.a, -transform.e
    col0 = math.ceil(round((left - transform.c) / xres, 6))
    col1 = math.floor(round((right - transform.c) / xres, 6))
    row0 = math.ceil(round((transform.f - top) / yres, 6))
    row1 = math.floor(round((transform.f - bottom) / yres, 6))
    if col1 <= col0 or row1 <= row0:
        raise UserInputError("The inputs do not overlap: their common extent is empty.")
    return Grid(crs, transform * Affine.translation(col0, row0), col1 - col0, row1 - row0)


def build_time_series(inputs: Sequence[str], output_folder: str, unit: str = "linear",
                      ls_masks: Sequence[str] = (), apply_ls_mask: bool = True, to_db: bool = True,
                      output_dtype: str = "float32", polarisation: Optional[str] = None, memory_mb: float = 256.0,
                      progress: Optional[Callable[[float], None]] = None,
                      is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, dict]:
    """Write the time series of every polarisation found in ``inputs`` (files or folders).

    ``unit``: how the inputs store backscatter (``"linear"`` power or ``"db"``); files whose
    name contains lsmask/ls_mask/layover are taken as layover/shadow masks (plus ``ls_masks``).
    ``polarisation`` forces the polarisation of inputs without one in their name (None or
    ``naming.FROM_FILE_NAMES``: from the names only). All files, with their sidecar styles,
    appear together or not at all.
    Returns ``{POL: {"paths": [...], "vrt": path, "dates": [...], "style": name}}``.
    """
    check_output_dtype(output_dtype, to_db)
    UNITS.check(unit, "backscatter unit")
    if polarisation == FROM_FILE_NAMES:
        polarisation = None
    files, found_masks = split_ls_masks(expand_inputs(inputs))
    masks = list(dict.fromkeys(list(ls_masks) + found_masks)) if apply_ls_mask else []
    if not files:
        raise UserInputError("No backscatter raster among the inputs (only layover/shadow masks).")
    groups = by_polarisation(collect_layers(files, polarisation))
    for layers in groups.values():
        require_stack(layers)
        require_plausible_unit(layers, unit)
    all_layers = [layer for layers in groups.values() for layer in layers]
    grid = common_grid([layer.path for layer in all_layers] + masks)
    rows = max(1, int(memory_mb * 2 ** 20 / (grid.width * 4 * 3 * len(all_layers))))
    blocks = list(row_blocks(grid.height, rows))
    style = backscatter_style("db" if to_db else "linear")
    results: Dict[str, dict] = {}
    with run_folder(output_folder) as folder, OutputSet() as outputs, GridResampler(grid, "bilinear") as reader:
        final_paths = {pol: join(folder, date_file_names(layers, pol)) for pol, layers in groups.items()}
        with contextlib.ExitStack() as open_writers:
            writers: Dict[int, RasterWriter] = {}
            for pol, layers in groups.items():
                for layer, path in zip(layers, final_paths[pol]):
                    writers[id(layer)] = open_writers.enter_context(add_date_raster(
                        outputs, path, grid, layer, pol, to_db, style, EMPTY_HINT, output_dtype))
            has_data = {id(layer): False for layer in all_layers}
            for done, (start, stop) in enumerate(blocks, start=1):
                check_canceled(is_canceled)
                block = {id(layer): _read_linear(reader, layer, unit, start, stop) for layer in all_layers}
                for key, values in block.items():
                    has_data[key] = has_data[key] or bool(np.isfinite(values).any())
                valid = np.logical_and.reduce([np.isfinite(v) for v in block.values()])
                for mask in masks:
                    layover = reader.read_rows(mask, start, stop, 1, resampling="nearest",
                                               src_nodata=stored_nodata(reader.source(mask), 1))
                    valid &= ~(np.nan_to_num(layover, nan=0.0) != 0)
                for layer in all_layers:
                    values = np.where(valid, block[id(layer)], np.float32(np.nan))
                    if to_db:
                        values = power_to_db(values)
                    writers[id(layer)].write(encode_backscatter(values, output_dtype), 1, grid.rows(start, stop))
                if progress:
                    progress(100.0 * done / len(blocks))
            _require_data(all_layers, has_data, unit)
        for pol, layers in groups.items():
            vrt_path = add_time_series_vrt(outputs, os.path.join(folder, time_series_vrt_name(pol)),
                                           final_paths[pol], layers, grid, output_dtype, style)
            results[pol] = {"paths": final_paths[pol], "vrt": vrt_path, "dates": [layer.label for layer in layers],
                            "style": style}
    return results


def _require_data(layers: Sequence[Layer], has_data: Dict[int, bool], unit: str) -> None:
    """Refuse inputs without a single valid pixel on the common grid (all NaN, nodata or, in linear
    power, 0), naming them: they would empty every date of the stack."""
    empty = [layer for layer in layers if not has_data[id(layer)]]
    if not empty:
        return
    names = ", ".join(f"'{os.path.basename(layer.path)}'" for layer in empty[:4]) + (" …" if len(empty) > 4 else "")
    zero = " or 0 (= nodata in linear power)" if unit == "linear" else ""
    raise UserInputError(
        f"{len(empty)} of the {len(layers)} inputs have no valid pixel on the common grid (every value is NaN, "
        f"nodata{zero}): {names}. Nothing was written. Leave them out, or check their nodata value and unit.")


def _read_linear(reader: GridResampler, layer: Layer, unit: str, start: int, stop: int) -> np.ndarray:
    """Linear power of ``layer`` on rows [start, stop) of the grid (bilinear; NaN = no data)."""
    values = reader.read_rows(layer.path, start, stop, layer.band,
                              src_nodata=stored_nodata(reader.source(layer.path), layer.band))
    return db_to_power(values) if unit == "db" else clean_linear(values)
