"""Shared pieces of the stack writers: output naming, profiles and the time-series VRT."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

import numpy as np

from ..raster_io import FLOAT_GTIFF_PROFILE
from .stack import Layer
from .units import BACKSCATTER_DB_RANGE, DN_MAX, gdal_scale_offset, to_dn
from .vrt import VrtBand, write_band_vrt

OUTPUT_DTYPES = ("float32", "uint8", "uint16")


def date_file_names(layers: Sequence[Layer], polarisation: str) -> List[str]:
    """``NN.<YYYYMMDD>.<POL>.tif`` (NN counts from 01, widened beyond 99 dates)."""
    digits = max(2, len(str(len(layers))))
    return [f"{index:0{digits}d}.{layer.when:%Y%m%d}.{polarisation}.tif" for index, layer in enumerate(layers, 1)]


def time_series_vrt_name(polarisation: str) -> str:
    return f"Timeseries.{polarisation}.vrt"


def output_profile(width: int, height: int, crs, transform, output_dtype: str) -> dict:
    profile = dict(FLOAT_GTIFF_PROFILE, width=width, height=height, count=1, crs=crs, transform=transform)
    if output_dtype != "float32":
        profile.update(dtype=output_dtype, nodata=0, predictor=2)
    return profile


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
    from ..errors import UserInputError

    if output_dtype not in OUTPUT_DTYPES:
        raise UserInputError(f"Output type '{output_dtype}' is not one of {', '.join(OUTPUT_DTYPES)}.")
    if output_dtype in DN_MAX and not to_db:
        raise UserInputError("Integer output is scaled from −30…5 dB: it needs dB output (tick dB conversion).")


def write_time_series_vrt(path: str, date_paths: Sequence[str], layers: Sequence[Layer], profile: dict,
                          relative_to: Optional[str] = None) -> str:
    """Band k = file k, band descriptions = ISO acquisition times (YYYY-MM-DDTHH:MM:SS, UTC)."""
    scale, offset = (1.0, 0.0) if profile["dtype"] == "float32" else gdal_scale_offset(
        BACKSCATTER_DB_RANGE, profile["dtype"])
    bands = [VrtBand(p, layer.when.isoformat(), profile["dtype"], profile["nodata"], scale, offset)
             for p, layer in zip(date_paths, layers)]
    return write_band_vrt(path, bands, profile["width"], profile["height"], profile["crs"].to_wkt()
                          if hasattr(profile["crs"], "to_wkt") else str(profile["crs"]),
                          profile["transform"], relative_to=relative_to or path)


def join(folder: str, names: Sequence[str]) -> List[str]:
    return [os.path.join(folder, name) for name in names]
