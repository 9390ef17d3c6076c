"""Raster reading/writing helpers shared by every core module.

All writers go through :func:`atomic_output`: the file is written under a
temporary name in the destination folder and renamed only on success, so a
failure or a cancel never leaves a half-written output behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from .errors import UserInputError

#: Creation options for every float output (NaN nodata, tiled, compressed).
FLOAT_GTIFF_PROFILE = {
    "driver": "GTiff",
    "dtype": "float32",
    "nodata": float("nan"),
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "deflate",
    "predictor": 3,
    "BIGTIFF": "IF_SAFER",
}


def ensure_writable_dir(folder: str) -> str:
    """Create ``folder`` if needed and check that files can be written in it."""
    folder = os.path.abspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserInputError(
            f"Output folder '{folder}' is not writable ({exc.strerror or exc}). "
            "Choose a folder you have write permission for."
        ) from exc
    return folder


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception (including :class:`core.errors.Cancelled`) the temporary
    file is removed and an existing file at ``path`` is left untouched.
    """
    if not path or os.path.isdir(path):
        raise UserInputError(
            f"The output '{path}' is a folder or empty; give a file name (e.g. result.tif).")
    path = os.path.abspath(path)
    folder = ensure_writable_dir(os.path.dirname(path))
    stem, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".partial{ext}", dir=folder)
    os.close(fd)
    os.remove(tmp)  # GDAL drivers want to create the file themselves
    try:
        yield tmp
        os.replace(tmp, path)
        _move_sidecars(tmp, path)
    except BaseException:
        _remove_with_sidecars(tmp)
        raise


def _sidecars(path: str) -> Sequence[str]:
    return [path + ".aux.xml", path + ".msk", os.path.splitext(path)[0] + ".qml"]


def _move_sidecars(tmp: str, final: str) -> None:
    for src, dst in zip(_sidecars(tmp), _sidecars(final)):
        if os.path.exists(src):
            os.replace(src, dst)


def _remove_with_sidecars(path: str) -> None:
    for candidate in [path, *_sidecars(path)]:
        with contextlib.suppress(OSError):
            os.remove(candidate)


def open_raster(path: str) -> rasterio.io.DatasetReader:
    """Open a raster for reading, with a clear error if GDAL cannot read it."""
    if not os.path.exists(path):
        raise UserInputError(f"Raster '{path}' does not exist. Check the path.")
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise UserInputError(
            f"Cannot read raster '{path}': {exc}. It must be a GDAL-readable raster "
            "such as a GeoTIFF; check that the file is complete and not corrupt."
        ) from exc


def require_crs(ds: rasterio.io.DatasetReader, what: str = "raster") -> None:
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


def require_single_band(ds: rasterio.io.DatasetReader, what: str = "raster") -> None:
    """Raise if ``ds`` has more than one band."""
    if ds.count != 1:
        raise UserInputError(
            f"The {what} '{ds.name}' has {ds.count} bands; a single-band image is needed. "
            "Extract one band first (surfacemotion:extractband, default band 2 = green)."
        )


def row_blocks(height: int, block_rows: int) -> Iterator[Tuple[int, int]]:
    """Yield (start_row, stop_row) covering ``range(height)`` in blocks."""
    block_rows = max(1, int(block_rows))
    for start in range(0, height, block_rows):
        yield start, min(height, start + block_rows)


def set_band_descriptions(ds, descriptions: Sequence[str]) -> None:
    """Set band descriptions (1-based bands) on an open writable dataset."""
    for index, text in enumerate(descriptions, start=1):
        ds.set_band_description(index, text)


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
