"""Reading rasters: one guarded way in.

Every core module opens rasters with :func:`open_raster`. The returned
:class:`RasterReader` behaves like the rasterio dataset it wraps (same
attributes), but every pixel read (``read``, ``read_masks``, ``read_float``)
turns a GDAL/rasterio failure into :class:`core.errors.UserInputError` naming
the file and the window: a GeoTIFF whose header opens but whose blocks are cut
off, a compressed block that does not decompress, a file that vanished.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ..errors import UserInputError
from .grid import window_text

#: What GDAL/rasterio raise on unreadable data (CPLE_* errors derive from CPLE_BaseError).
try:
    from rasterio._err import CPLE_BaseError as _CPLE_BaseError
except ImportError:  # pragma: no cover - rasterio always has it; keep the reader importable anyway
    _CPLE_BaseError = RasterioError
READ_ERRORS = (RasterioError, _CPLE_BaseError, OSError)


def read_failure(path: str, exc: BaseException, window=None, band=None) -> UserInputError:
    """The user-facing error for a failed pixel read of ``path``."""
    where = [f"band {band}"] if isinstance(band, (int, np.integer)) else []
    where.append(window_text(window))
    detail = " ".join(str(exc).split())[:300]
    return UserInputError(
        f"Cannot read the pixels of '{path}' ({', '.join(where)}): {detail}. The file is truncated "
        "or corrupt (e.g. an interrupted download or copy); download or export it again.")


class RasterReader:
    """A rasterio dataset opened for reading, whose pixel reads raise clear errors.

    Attributes not defined here (crs, transform, width, height, count, nodata,
    nodatavals, dtypes, descriptions, tags(), scales, offsets, units, gcps, rpcs,
    block_shapes, bounds, profile, mask_flag_enums, ...) are the dataset's.
    ``dataset`` is the raw rasterio dataset, for GDAL machinery that needs it
    (use :class:`core.io.GridResampler` rather than warping it yourself).
    """

    def __init__(self, path: str, dataset):
        self.path = path
        self.dataset = dataset

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def __enter__(self) -> "RasterReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.dataset.close()

    def read(self, indexes=None, window=None, **kwargs) -> np.ndarray:
        """``dataset.read`` with a clear error on unreadable pixels."""
        try:
            return self.dataset.read(indexes, window=window, **kwargs)
        except READ_ERRORS as exc:
            raise read_failure(self.path, exc, window, indexes) from exc

    def read_masks(self, indexes=None, window=None, **kwargs) -> np.ndarray:
        """``dataset.read_masks`` with a clear error on unreadable pixels."""
        try:
            return self.dataset.read_masks(indexes, window=window, **kwargs)
        except READ_ERRORS as exc:
            raise read_failure(self.path, exc, window, indexes) from exc

    def read_float(self, band: int = 1, window=None, dtype=np.float64) -> np.ndarray:
        """One band as floats with nodata (and NaN) as NaN."""
        values = self.read(band, window=window).astype(dtype)
        values[~valid_mask_from_nodata(values, self.nodatavals[band - 1])] = np.nan
        return values


def open_raster(path: str) -> RasterReader:
    """Open a raster for reading, with a clear error if GDAL cannot open it."""
    path = str(path)
    if not path.startswith("/vsi") and not os.path.exists(path):
        raise UserInputError(f"Raster '{path}' does not exist. Check the path.")
    try:
        return RasterReader(path, rasterio.open(path))
    except READ_ERRORS as exc:
        raise UserInputError(
            f"Cannot read raster '{path}': {' '.join(str(exc).split())[:300]}. It must be a "
            "GDAL-readable raster such as a GeoTIFF; check that the file is complete and not corrupt."
        ) from exc


def require_crs(ds, what: str = "raster") -> None:
    """Raise if ``ds`` has no CRS or a geographic (degree) CRS."""
    if ds.crs is None:
        raise UserInputError(
            f"The {what} '{ds.name}' has no coordinate reference system. Assign its CRS "
            "(e.g. with 'Assign projection' in QGIS) before using it."
        )
    if ds.crs.is_geographic:
        raise UserInputError(
            f"The {what} '{ds.name}' is in a geographic CRS ({ds.crs.to_string()}); "
            "offsets and velocities need metres. Reproject it to a projected CRS such as UTM."
        )


def require_single_band(ds, what: str = "raster") -> None:
    """Raise if ``ds`` has more than one band."""
    if ds.count != 1:
        raise UserInputError(
            f"The {what} '{ds.name}' has {ds.count} bands; a single-band image is needed. "
            "Extract one band first (surfacemotion:extractband, default band 2 = green)."
        )


def band_index_by_description(ds, description: str) -> Optional[int]:
    """Return the 1-based index of the band whose description equals ``description``."""
    for index, text in enumerate(ds.descriptions, start=1):
        if text == description:
            return index
    return None


def valid_mask_from_nodata(array: np.ndarray, nodata) -> np.ndarray:
    """Boolean mask of pixels that are finite and differ from ``nodata``."""
    valid = np.isfinite(array) if np.issubdtype(array.dtype, np.floating) else np.ones(array.shape, bool)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        valid &= array != nodata
    return valid


#: Pixels of the decimated overview read first by :func:`band_value_range` (then every pixel if needed).
_SAMPLE_SIDE = 1024
#: Pixels per block when every pixel is scanned.
_SCAN_BLOCK_PIXELS = 1 << 22


def band_value_range(ds, band: int = 1) -> Tuple[int, float, float]:
    """(valid pixel count, minimum, maximum) of a band, nodata and NaN excluded.

    A decimated read (at most ~1024 x 1024 px) answers when it already shows two different valid
    values; otherwise every pixel is scanned block by block, so an image that is all nodata or
    constant is never misjudged from a sample. The count is then exact; otherwise it is the sample's.
    """
    stride = max(1, -(-max(ds.height, ds.width) // _SAMPLE_SIDE))
    shape = (-(-ds.height // stride), -(-ds.width // stride))
    sample = ds.read(band, out_shape=shape)
    valid = valid_mask_from_nodata(sample, ds.nodatavals[band - 1])
    if valid.any() and sample[valid].min() != sample[valid].max():
        return int(valid.sum()), float(sample[valid].min()), float(sample[valid].max())
    count, low, high = 0, np.inf, -np.inf
    rows = max(1, _SCAN_BLOCK_PIXELS // max(1, ds.width))
    for row0 in range(0, ds.height, rows):
        window = Window(0, row0, ds.width, min(rows, ds.height - row0))
        values = ds.read(band, window=window)
        ok = valid_mask_from_nodata(values, ds.nodatavals[band - 1])
        if ok.any():
            count += int(ok.sum())
            low, high = min(low, float(values[ok].min())), max(high, float(values[ok].max()))
    return count, low, high


def require_content(ds, what: str = "raster", band: int = 1, texture: bool = True,
                    error: type = UserInputError) -> None:
    """Raise ``error`` (a UserInputError class) saying why when band ``band`` of ``ds`` holds no valid
    pixel (all nodata) or, with ``texture``, one value only (a constant image has no texture to match).
    Unreadable pixels raise the reader's UserInputError."""
    count, low, high = band_value_range(ds, band)
    name = os.path.basename(str(ds.name))
    if count == 0:
        nodata = ds.nodatavals[band - 1]
        declared = "" if nodata is None else f" (nodata = {nodata:g})"
        raise error(
            f"The {what} '{name}' is all nodata{declared}: band {band} has no valid pixel. Check the file "
            "(a failed export, or a scene masked entirely by clouds) and choose one with data.")
    if texture and low == high:
        raise error(
            f"The {what} '{name}' is constant (every valid pixel of band {band} is {low:g}): it has no "
            "texture to match. Choose an image that shows the ground (not a blank, fill or saturated one).")


def gdal_call(function, *args, **kwargs):
    """``function(*args, **kwargs)`` of GDAL's Python API, None when it fails — whether GDAL raises
    (``gdal.UseExceptions()``, which other code in the QGIS process may have turned on, and GDAL 4's
    default) or returns None; ``gdal.GetLastErrorMsg()`` says why in both cases."""
    try:
        return function(*args, **kwargs)
    except RuntimeError:
        return None
