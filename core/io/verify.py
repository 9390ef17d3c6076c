"""Read-back checks of non-raster outputs, for :class:`core.io.AtomicFile` (``verify=``).

Each function returns a checker ``check(tmp_path)`` that raises OSError when the
file just written cannot be read back as expected.
"""
from __future__ import annotations

import csv
from typing import Callable, Optional, Sequence

Checker = Callable[[str], None]


def csv_rows(expected_rows: int, columns: Optional[Sequence[str]] = None) -> Checker:
    """A CSV with a header (``columns`` when given) and ``expected_rows`` data rows."""

    def check(path: str) -> None:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = sum(1 for _ in reader)
        if header is None:
            raise OSError("the CSV has no header")
        if columns is not None and list(header) != list(columns):
            raise OSError(f"the CSV header reads back as {header}")
        if rows != expected_rows:
            raise OSError(f"the CSV reads back with {rows} rows instead of {expected_rows}")

    return check


def netcdf_readable() -> Checker:
    """A NetCDF file whose every variable reads back."""

    def check(path: str) -> None:
        import netCDF4

        try:
            with netCDF4.Dataset(path) as ds:
                for variable in ds.variables.values():
                    variable[...]
        except (OSError, RuntimeError, ValueError) as exc:
            raise OSError(f"the NetCDF file does not read back: {exc}") from exc

    return check


def image_readable(frames: Optional[int] = None) -> Checker:
    """A PNG/GIF (any PIL format) that decodes, with ``frames`` frames when given."""

    def check(path: str) -> None:
        from PIL import Image

        try:
            with Image.open(path) as image:
                count = 0
                while True:
                    image.load()
                    count += 1
                    try:
                        image.seek(image.tell() + 1)
                    except EOFError:
                        break
        except (OSError, SyntaxError, ValueError) as exc:
            raise OSError(f"the image does not decode: {exc}") from exc
        if frames is not None and count != frames:
            raise OSError(f"the image has {count} frames instead of {frames}")

    return check


def vrt_readable(bands: int) -> Checker:
    """A VRT that GDAL opens with ``bands`` bands (its sources are renamed later, so not read)."""

    def check(path: str) -> None:
        import rasterio

        from .read import READ_ERRORS

        try:
            with rasterio.open(path) as ds:
                count = ds.count
        except READ_ERRORS as exc:
            raise OSError(f"the VRT does not open: {exc}") from exc
        if count != bands:
            raise OSError(f"the VRT has {count} bands instead of {bands}")

    return check


def npy_readable(shape=None) -> Checker:
    """A NumPy .npy/.npz file that loads (with ``shape`` for .npy when given)."""

    def check(path: str) -> None:
        import zipfile

        import numpy as np

        try:
            loaded = np.load(path, allow_pickle=False)
            if hasattr(loaded, "files"):
                for name in loaded.files:
                    loaded[name]
                loaded.close()
            elif shape is not None and tuple(loaded.shape) != tuple(shape):
                raise OSError(f"the array reads back with shape {loaded.shape}, not {tuple(shape)}")
        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
            raise OSError(f"the array file does not load: {exc}") from exc

    return check
