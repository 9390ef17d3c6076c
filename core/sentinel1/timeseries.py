"""Per-polarisation time-series stacks from single-date ARD GeoTIFFs of any source (REFERENCE §9.1–9.2).

Steps: date and polarisation from names (or band descriptions); one CRS required; common
grid = the first date's pixel grid cropped to the intersection of all footprints; each
date resampled (bilinear, NaN-aware) onto it; pixels not valid at every date of every
polarisation set to nodata (common valid extent); optional layover/shadow mask (union of
the masks, nonzero = layover or shadow) removed; optional dB; optional uint8/uint16.
Outputs ``NN.<YYYYMMDD>.<POL>.tif`` + ``Timeseries.<POL>.vrt`` (band descriptions = ISO acquisition times).
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..errors import UserInputError, check_canceled
from ..raster_io import atomic_output, ensure_writable_dir, open_raster, row_blocks
from .common import (backscatter_scale_offset, check_output_dtype, date_file_names, encode_backscatter, join,
                     output_profile, time_series_vrt_name, write_time_series_vrt)
from .stack import (Layer, by_polarisation, collect_layers, expand_inputs, require_stack, split_ls_masks)
from .units import clean_linear, db_to_power, power_to_db


def common_grid(paths: Sequence[str]) -> dict:
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
    grid_transform = transform * Affine.translation(col0, row0)
    return {"crs": crs, "transform": grid_transform, "width": col1 - col0, "height": row1 - row0}


class GridReader:
    """Reads row windows of rasters resampled onto a common grid (NaN outside/nodata)."""

    def __init__(self, grid: dict, resampling: Resampling = Resampling.bilinear):
        self.grid = grid
        self.resampling = resampling
        self._open: Dict[str, tuple] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for ds, vrt in self._open.values():
            vrt.close()
            ds.close()
        self._open.clear()

    def read(self, path: str, band: int, start: int, stop: int, resampling: Optional[Resampling] = None) -> np.ndarray:
        key = f"{path}|{(resampling or self.resampling).name}"
        if key not in self._open:
            ds = open_raster(path)
            nodata = ds.nodata
            if nodata is None and np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
                nodata = 0
            vrt = WarpedVRT(ds, crs=self.grid["crs"], transform=self.grid["transform"], width=self.grid["width"],
                            height=self.grid["height"], resampling=resampling or self.resampling,
                            src_nodata=nodata, nodata=np.nan if np.issubdtype(np.dtype(ds.dtypes[0]), np.floating)
                            else nodata, dtype=ds.dtypes[0])
            self._open[key] = (ds, vrt)
        ds, vrt = self._open[key]
        window = Window(0, start, self.grid["width"], stop - start)
        raw = vrt.read(band, window=window)
        values = raw.astype(np.float32)
        if np.issubdtype(raw.dtype, np.integer):
            scale = ds.scales[band - 1] or 1.0
            offset = ds.offsets[band - 1] or 0.0
            values = values * np.float32(scale) + np.float32(offset)
            values[raw == (vrt.nodata if vrt.nodata is not None else 0)] = np.nan
        return values


def build_time_series(inputs: Sequence[str], output_folder: str, unit: str = "linear",
                      ls_masks: Sequence[str] = (), apply_ls_mask: bool = True, to_db: bool = True,
                      output_dtype: str = "float32", polarisation: Optional[str] = None, memory_mb: float = 256.0,
                      progress: Optional[Callable[[float], None]] = None,
                      is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, dict]:
    """Write the time series of every polarisation found in ``inputs`` (files or folders).

    ``unit``: how the inputs store backscatter (``"linear"`` power or ``"db"``); files whose
    name contains lsmask/ls_mask/layover are taken as layover/shadow masks (plus ``ls_masks``).
    ``polarisation`` forces the polarisation of inputs without one in their name.
    Returns ``{POL: {"paths": [...], "vrt": path, "dates": [...]}}``.
    """
    check_output_dtype(output_dtype, to_db)
    if unit not in ("linear", "db"):
        raise UserInputError(f"Unknown backscatter unit '{unit}'; use 'linear' or 'db'.")
    files, found_masks = split_ls_masks(expand_inputs(inputs))
    masks = list(dict.fromkeys(list(ls_masks) + found_masks)) if apply_ls_mask else []
    if not files:
        raise UserInputError("No backscatter raster among the inputs (only layover/shadow masks).")
    groups = by_polarisation(collect_layers(files, polarisation))
    for layers in groups.values():
        require_stack(layers)
    all_layers = [layer for layers in groups.values() for layer in layers]
    grid = common_grid([layer.path for layer in all_layers] + masks)
    folder = ensure_writable_dir(output_folder)
    profile = output_profile(grid["width"], grid["height"], grid["crs"], grid["transform"], output_dtype)
    rows = max(1, int(memory_mb * 2 ** 20 / (grid["width"] * 4 * 3 * len(all_layers))))
    blocks = list(row_blocks(grid["height"], rows))
    results: Dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(GridReader(grid))
        writers: Dict[int, rasterio.io.DatasetWriter] = {}
        final_paths: Dict[str, List[str]] = {}
        scale, offset = backscatter_scale_offset(output_dtype)
        for pol, layers in groups.items():
            final_paths[pol] = join(folder, date_file_names(layers, pol))
            for layer, path in zip(layers, final_paths[pol]):
                tmp = stack.enter_context(atomic_output(path))
                ds = stack.enter_context(rasterio.open(tmp, "w", **profile))
                ds.set_band_description(1, layer.when.isoformat())
                ds.update_tags(ACQUISITION_DATETIME=layer.when.isoformat(), POLARISATION=pol,
                               UNIT="dB" if to_db else "linear power")
                if output_dtype != "float32":
                    ds.scales, ds.offsets = (scale,), (offset,)
                writers[id(layer)] = ds
        for done, (start, stop) in enumerate(blocks, start=1):
            check_canceled(is_canceled)
            block = {id(layer): _read_linear(reader, layer, unit, start, stop) for layer in all_layers}
            valid = np.logical_and.reduce([np.isfinite(v) for v in block.values()])
            for mask in masks:
                layover = reader.read(mask, 1, start, stop, Resampling.nearest)
                valid &= ~(np.nan_to_num(layover, nan=0.0) != 0)
            for layer in all_layers:
                values = np.where(valid, block[id(layer)], np.float32(np.nan))
                if to_db:
                    values = power_to_db(values)
                writers[id(layer)].write(encode_backscatter(values, output_dtype), 1,
                                         window=Window(0, start, grid["width"], stop - start))
            if progress:
                progress(100.0 * done / len(blocks))
        for ds in writers.values():
            ds.close()
        for pol, layers in groups.items():
            vrt_path = os.path.join(folder, time_series_vrt_name(pol))
            tmp = stack.enter_context(atomic_output(vrt_path))
            write_time_series_vrt(tmp, final_paths[pol], layers, profile, relative_to=vrt_path)
            results[pol] = {"paths": final_paths[pol], "vrt": vrt_path, "dates": [layer.label for layer in layers]}
    return results


def _read_linear(reader: GridReader, layer: Layer, unit: str, start: int, stop: int) -> np.ndarray:
    values = reader.read(layer.path, layer.band, start, stop)
    return db_to_power(values) if unit == "db" else clean_linear(values)
