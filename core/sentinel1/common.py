"""Shared pieces of the stack writers: output types, naming, integer encoding, date files and the
time-series VRT."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

import numpy as np

from ..choices import Choices
from ..errors import UserInputError
from ..io import Grid, OutputSet, RasterWriter, default_nodata
from .stack import Layer
from .units import BACKSCATTER_DB_RANGE, DN_MAX, gdal_scale_offset, to_dn
from .vrt import VrtBand, add_band_vrt

#: Data types of stack and timescan outputs: float32 (NaN nodata) or integers scaled per §9.5 (0 = nodata).
OUTPUT_TYPES = Choices(("float32", "float32"), ("uint8", "uint8"), ("uint16", "uint16"))


def date_file_names(layers: Sequence[Layer], polarisation: str) -> List[str]:
    """``NN.<YYYYMMDD>.<POL>.tif`` (NN counts from 01, widened beyond 99 dates)."""
    digits = max(2, len(str(len(layers))))
    return [f"{index:0{digits}d}.{layer.when:%Y%m%d}.{polarisation}.tif" for index, layer in enumerate(layers, 1)]


def time_series_vrt_name(polarisation: str) -> str:
    return f"Timeseries.{polarisation}.vrt"


def encode_backscatter(values: np.ndarray, output_dtype: str) -> np.ndarray:
    """float32 as is; integers scaled from the backscatter dB range −30…5 dB (§9.5)."""
    if output_dtype == "float32":
        return values.astype(np.float32, copy=False)
    return to_dn(values, BACKSCATTER_DB_RANGE, output_dtype)


def backscatter_scale_offset(output_dtype: str):
    if output_dtype == "float32":
        return 1.0, 0.0
    return gdal_scale_offset(BACKSCATTER_DB_RANGE, output_dtype)


def check_output_dtype(output_dtype: str, to_db: bool) -> None:
    OUTPUT_TYPES.check(output_dtype, "output type")
    if output_dtype in DN_MAX and not to_db:
        raise UserInputError("Integer output is scaled from −30…5 dB: it needs dB output (tick dB conversion).")


def add_date_raster(outputs: OutputSet, path: str, grid: Grid, layer: Layer, polarisation: str, db: bool,
                    style: str, require_valid: Optional[str], output_dtype: str = "float32",
                    **tags) -> RasterWriter:
    """The writer of one date file of a stack (a member of ``outputs``): band description and
    ACQUISITION_DATETIME = the ISO acquisition time (UTC), POLARISATION, UNIT (dB or linear
    power) and ``tags``; integer types carry the GDAL scale/offset of the dB range."""
    scale, offset = backscatter_scale_offset(output_dtype)
    integer = output_dtype != "float32"
    return outputs.raster(
        path, grid, [layer.when.isoformat()], dtype=output_dtype, style=style, require_valid=require_valid,
        tags=dict(ACQUISITION_DATETIME=layer.when.isoformat(), POLARISATION=polarisation,
                  UNIT="dB" if db else "linear power", **tags),
        scales=(scale,) if integer else None, offsets=(offset,) if integer else None)


def add_time_series_vrt(outputs: OutputSet, path: str, date_paths: Sequence[str], layers: Sequence[Layer],
                        grid: Grid, output_dtype: str, style: str) -> str:
    """Add ``Timeseries.<POL>.vrt`` to ``outputs`` (after its date files): band k = file k,
    band descriptions = ISO acquisition times (YYYY-MM-DDTHH:MM:SS, UTC)."""
    scale, offset = backscatter_scale_offset(output_dtype)
    bands = [VrtBand(p, layer.when.isoformat(), output_dtype, default_nodata(output_dtype), scale, offset)
             for p, layer in zip(date_paths, layers)]
    return add_band_vrt(outputs, path, bands, grid, style)


def join(folder: str, names: Sequence[str]) -> List[str]:
    return [os.path.join(folder, name) for name in names]
