"""Multi-temporal speckle filter of Quegan type (Quegan et al. 2000; REFERENCE §9.3).

For N co-registered intensities I_k (linear power) and a NaN-aware boxcar local mean
E[·] over w×w pixels (valid sum / valid count):

    J_k(x) = E[I_k](x) / N_x · Σ_{i valid at x} I_i(x) / E[I_i](x)

N_x = number of valid dates at x. The filter keeps the radiometry (E[J_k] ≈ E[I_k]) and,
for uncorrelated speckle, divides the variance of a homogeneous area by up to N.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Optional, Sequence

import numpy as np
from scipy.ndimage import uniform_filter

from ..errors import UserInputError, check_canceled
from ..io import OutputSet, row_blocks
from ..io import output_folder as run_folder
from .common import add_date_raster, add_time_series_vrt, date_file_names, join, time_series_vrt_name
from .stack import StackReader, collect_layers, require_plausible_unit, require_same_grid, require_stack
from .styles import backscatter_style
from .units import power_to_db


def local_mean(values: np.ndarray, window: int) -> np.ndarray:
    """NaN-aware boxcar mean over ``window``×``window`` (NaN where the window has no data)."""
    valid = np.isfinite(values)
    total = uniform_filter(np.where(valid, values, 0).astype(np.float64), size=window, mode="constant")
    count = uniform_filter(valid.astype(np.float64), size=window, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    mean[count < 0.5 / window ** 2] = np.nan
    return mean


def quegan_filter(power: np.ndarray, window: int = 7) -> np.ndarray:
    """Filter a stack ``(dates, rows, cols)`` of linear power (NaN = no data); returns a new array."""
    if window < 1 or window % 2 == 0:
        raise UserInputError(f"The filter window must be an odd number of pixels ≥ 1 (got {window}).")
    means = np.stack([local_mean(image, window) for image in power])
    valid = np.isfinite(power) & np.isfinite(means) & (means > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(valid, power / means, 0.0)
        count = valid.sum(axis=0)
        average_ratio = ratio.sum(axis=0) / count
        filtered = means * average_ratio[None]
    filtered[~np.isfinite(power)] = np.nan
    filtered[:, count == 0] = np.nan
    return filtered.astype(np.float32)


def mt_speckle_filter(inputs: Sequence[str], output_folder: str, unit: str = "db", window: int = 7,
                      memory_mb: float = 256.0, progress: Optional[Callable[[float], None]] = None,
                      is_canceled: Optional[Callable[[], bool]] = None) -> dict:
    """Filter one stack (files/folder of dated single-band rasters or a time-series VRT).

    Writes the time-series format (``NN.<YYYYMMDD>.<POL>.tif`` + ``Timeseries.<POL>.vrt``)
    as float32 in the input ``unit`` ("db" or "linear"), all files (with their sidecar
    styles) or none. Rows are processed in blocks with a halo of window//2 rows so the
    result equals filtering the whole image at once.
    """
    if window < 1 or window % 2 == 0:
        raise UserInputError(f"The filter window must be an odd number of pixels ≥ 1 (got {window}).")
    layers = collect_layers(inputs)
    polarisation = require_stack(layers)
    grid = require_same_grid(layers)
    require_plausible_unit(layers, unit)
    style = backscatter_style(unit)
    halo = window // 2
    rows = max(1, int(memory_mb * 2 ** 20 / (grid.width * len(layers) * 4 * 8)))
    blocks = list(row_blocks(grid.height, rows))
    with run_folder(output_folder) as folder, OutputSet() as outputs, StackReader(layers, unit) as reader:
        paths = join(folder, date_file_names(layers, polarisation))
        with contextlib.ExitStack() as open_writers:
            writers = [open_writers.enter_context(add_date_raster(
                outputs, path, grid, layer, polarisation, unit == "db", style,
                f"Its input '{os.path.basename(layer.path)}' (band {layer.band}) has no valid pixel; leave that "
                "date out of the stack.", SPECKLE_FILTER=f"Quegan {window}x{window}"))
                for layer, path in zip(layers, paths)]
            for done, (start, stop) in enumerate(blocks, start=1):
                check_canceled(is_canceled)
                first, last = max(0, start - halo), min(grid.height, stop + halo)
                filtered = quegan_filter(reader.read_rows(first, last), window)[:, start - first:stop - first]
                if unit == "db":
                    filtered = power_to_db(filtered)
                for writer, image in zip(writers, filtered):
                    writer.write(image, 1, grid.rows(start, stop))
                if progress:
                    progress(100.0 * done / len(blocks))
        vrt_path = add_time_series_vrt(outputs, os.path.join(folder, time_series_vrt_name(polarisation)), paths,
                                       layers, grid, "float32", style)
    return {"paths": paths, "vrt": vrt_path, "polarisation": polarisation,
            "dates": [layer.label for layer in layers], "style": style}
