"""Pixel sources: windows of one image, from an array or a raster, in a shifted pixel frame.

Every image the correlator reads — the input rasters, arrays, the coarse
levels of the pyramid (in memory or in temporary GeoTIFFs) — is a
:class:`PixelSource`, so all are read the same way. Rasters are read through
:class:`core.io.RasterReader`, whose reads raise a UserInputError naming the
file and window when the file is truncated or corrupt.

Coordinates: ``read(row0, row1, col0, col1)`` takes pixel rows/columns of the
source's *frame*, whose (0, 0) is pixel (``row_origin``, ``col_origin``) of the
image (see :meth:`PixelSource.in_frame`); pixels outside the image come back invalid.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import copy
from typing import Optional, Tuple

import numpy as np
from rasterio.windows import Window
from scipy import ndimage

from ...io import Grid, valid_mask_from_nodata


class PixelSource(ABC):
    """Windows of band 1 of an image (``height`` x ``width`` px, on ``grid`` when georeferenced)."""

    name: str = "image"
    grid: Optional[Grid] = None
    height: int = 0
    width: int = 0
    row_origin: int = 0
    col_origin: int = 0

    @abstractmethod
    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        """(values, valid) of image pixels [row0, row1) x [col0, col1) (inside the image, own
        pixel frame), values in their stored dtype; valid = finite, not nodata, not masked."""

    def in_frame(self, row_origin: int, col_origin: int) -> "PixelSource":
        """This source read in a frame whose pixel (0, 0) is image pixel (row_origin, col_origin)."""
        framed = copy.copy(self)
        framed.row_origin, framed.col_origin = int(row_origin), int(col_origin)
        return framed

    def inside(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """Which pixels [row0, row1) x [col0, col1) of the frame lie inside the image (bool): invalid
        pixels outside it are never matched, invalid ones inside it (nodata) may be masked out."""
        rows = np.arange(row0, row1) + self.row_origin
        cols = np.arange(col0, col1) + self.col_origin
        return ((rows >= 0) & (rows < self.height))[:, None] & ((cols >= 0) & (cols < self.width))[None, :]

    def read(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        """Pixels [row0, row1) x [col0, col1) of the frame as (float64 values, valid);
        outside the image = invalid; invalid pixels hold the nearest valid value (see ``pad_to_window``)."""
        a0, a1 = row0 + self.row_origin, row1 + self.row_origin
        b0, b1 = col0 + self.col_origin, col1 + self.col_origin
        r0, r1, c0, c1 = max(a0, 0), min(a1, self.height), max(b0, 0), min(b1, self.width)
        if r1 <= r0 or c1 <= c0:
            return np.zeros((a1 - a0, b1 - b0)), np.zeros((a1 - a0, b1 - b0), bool)
        values, valid = self.read_window(r0, r1, c0, c1)
        return pad_to_window(values, valid, a0, a1, b0, b1, r0, c0)


class ArraySource(PixelSource):
    """An in-memory image; ``valid`` (bool, same shape) flags usable pixels, non-finite
    values are always invalid. ``grid`` places it on the map (None for bare arrays)."""

    def __init__(self, values: np.ndarray, valid: Optional[np.ndarray] = None, grid: Optional[Grid] = None,
                 name: str = "array"):
        self.values = values
        self.valid = np.ones(values.shape, bool) if valid is None else np.asarray(valid, bool)
        if np.issubdtype(values.dtype, np.floating):
            self.valid = self.valid & np.isfinite(values)
        self.height, self.width = values.shape
        self.grid = grid
        self.name = name

    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        return self.values[row0:row1, col0:col1], self.valid[row0:row1, col0:col1]


class RasterSource(PixelSource):
    """Band 1 of an open raster (a :class:`core.io.RasterReader`): nodata and a per-dataset
    mask make pixels invalid."""

    def __init__(self, reader, name: Optional[str] = None):
        self.reader = reader
        self.grid = Grid.of(reader)
        self.height, self.width = reader.height, reader.width
        self.name = name or reader.name
        self.use_mask = any(flag.name == "per_dataset" for flag in reader.mask_flag_enums[0])

    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> Tuple[np.ndarray, np.ndarray]:
        window = Window(col0, row0, col1 - col0, row1 - row0)
        values = self.reader.read(1, window=window)
        valid = valid_mask_from_nodata(values, self.reader.nodata)
        if self.use_mask:
            valid &= self.reader.read_masks(1, window=window) != 0
        return values, valid


def pad_to_window(values: np.ndarray, valid: np.ndarray, row0: int, row1: int, col0: int, col1: int,
                  read_row0: int, read_col0: int) -> Tuple[np.ndarray, np.ndarray]:
    """Place a read at (read_row0, read_col0) into the window [row0, row1) x [col0, col1).

    Invalid pixels (nodata, NaN, outside the image) get the value of the
    nearest valid pixel: they are excluded from matching anyway, and
    continuous values keep them from ringing into valid pixels through the
    spline prefilter, whatever the block layout.
    """
    shape = (row1 - row0, col1 - col0)
    if values.size == 0 or not valid.any():
        return np.zeros(shape), np.zeros(shape, bool)
    values = values.astype(np.float64)
    if not valid.all():
        nearest = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
        values = values[tuple(nearest)]
    top, left = read_row0 - row0, read_col0 - col0
    pad = ((top, shape[0] - top - values.shape[0]), (left, shape[1] - left - values.shape[1]))
    if not any(pad[0] + pad[1]):
        return values, valid.copy()
    return np.pad(values, pad, mode="edge"), np.pad(valid, pad, mode="constant", constant_values=False)
