"""Where a reference/secondary pair overlaps on one pixel grid, and the chip grid laid over it.

Both images must share CRS and pixel size and be aligned to whole pixels; the
overlap (in reference pixels, starting at reference pixel (col0, row0)) is
correlated. Chip (i, j) covers overlap pixels [i*step, i*step + chip) x
[j*step, j*step + chip); the output grid is centred on the chips
(``core.offsets.disparity.grid_transform``), one cell per ``step`` px.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Tuple

import numpy as np
from affine import Affine

from ...errors import UserInputError
from ...io import Grid
from ..disparity import grid_transform
from .params import Params, grid_shape
from .sources import PixelSource


@dataclass(frozen=True)
class PairFrame:
    """A pair on one grid: both sources in the overlap's frame ((0, 0) = its first reference
    pixel (col0, row0)), the overlap size (px) and the chip-centre output ``grid``."""

    ref: PixelSource
    sec: PixelSource
    col0: int
    row0: int
    width: int
    height: int
    grid: Grid

    @property
    def shape(self) -> Tuple[int, int]:
        """(rows, columns) of the chip grid."""
        return self.grid.height, self.grid.width


def pair_frame(ref: PixelSource, sec: PixelSource, params: Params) -> PairFrame:
    """The frame of a georeferenced pair, or a UserInputError saying how to make them fit."""
    require_common_grid(ref.grid, sec.grid)
    _require_overlap(ref, sec)
    col_off, row_off = _secondary_offset(ref.grid, sec.grid)
    col0, row0, width, height = _overlap(ref, sec, col_off, row_off, params)
    n_rows, n_cols = grid_shape(height, width, params)
    transform = grid_transform(ref.grid.transform, col0, row0, params.chip, params.step)
    return PairFrame(ref.in_frame(row0, col0), sec.in_frame(row0 - row_off, col0 - col_off), col0, row0,
                     width, height, Grid(ref.grid.crs, transform, n_cols, n_rows))


def require_common_grid(ref: Grid, sec: Grid) -> None:
    """Same CRS and pixel size (the alignment is checked by the frame)."""
    if ref.crs != sec.crs:
        raise UserInputError(
            f"The reference is in {ref.crs.to_string()} but the secondary is in "
            f"{sec.crs.to_string()}. Reproject the secondary onto the reference grid, "
            "e.g. with gdalwarp -t_srs <reference CRS> -tr <reference pixel size> -tap.")
    ref_terms = np.array([ref.transform.a, ref.transform.b, ref.transform.d, ref.transform.e])
    sec_terms = np.array([sec.transform.a, sec.transform.b, sec.transform.d, sec.transform.e])
    if not np.allclose(ref_terms, sec_terms, rtol=0.0, atol=1e-6 * np.abs(ref_terms).max()):
        raise UserInputError(
            f"The reference pixel size is {_pixel_size_text(ref.transform)} but the secondary's is "
            f"{_pixel_size_text(sec.transform)}. Resample the secondary onto the reference grid, e.g. with "
            "gdalwarp -tr <reference pixel size> -tap.")


def _pixel_size_text(t: Affine) -> str:
    text = f"{abs(t.a):g} x {abs(t.e):g}"
    if t.b or t.d:
        text += f" (rotated grid, terms {t.a:g}, {t.b:g}, {t.d:g}, {t.e:g})"
    return text


def secondary_position(ref: Grid, sec: Grid) -> Tuple[float, float]:
    """Position (col, row) of the secondary's first pixel in reference pixels."""
    return ~ref.transform * (sec.transform.c, sec.transform.f)


def _secondary_offset(ref: Grid, sec: Grid) -> Tuple[int, int]:
    """:func:`secondary_position`, which must be whole pixels."""
    col, row = secondary_position(ref, sec)
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        raise UserInputError(
            f"The secondary grid is shifted by ({col - round(col):+.3f}, {row - round(row):+.3f}) px "
            "from the reference grid: the pixels are not aligned. Resample the secondary onto the "
            "reference grid, e.g. with gdalwarp -tr <reference pixel size> -tap.")
    return int(round(col)), int(round(row))


def _require_overlap(ref: PixelSource, sec: PixelSource) -> None:
    """Refuse images that do not overlap at all (before their alignment is judged: a far-away
    secondary is not "shifted by a fraction of a pixel")."""
    col, row = secondary_position(ref.grid, sec.grid)
    if min(ref.width, col + sec.width) <= max(0.0, col) or min(ref.height, row + sec.height) <= max(0.0, row):
        raise UserInputError(
            f"The reference '{ref.name}' and secondary '{sec.name}' do not overlap. "
            "Choose two images of the same area.")


def require_mask_overlap(geometries: Sequence[dict], grid: Grid) -> None:
    """Refuse an area to correlate (GeoJSON, grid CRS) whose polygons all lie outside the output grid."""
    from rasterio.features import bounds

    west, north = grid.transform * (0, 0)
    east, south = grid.transform * (grid.width, grid.height)
    left, right, bottom, top = min(west, east), max(west, east), min(north, south), max(north, south)
    for geometry in geometries:
        x0, y0, x1, y1 = bounds(geometry)
        if x0 < right and x1 > left and y0 < top and y1 > bottom:
            return
    raise UserInputError(
        "The area to correlate (MASK) does not overlap the images: its polygons lie outside their common "
        "area. Check the layer's CRS, or draw the polygons over the images.")


def _overlap(ref: PixelSource, sec: PixelSource, col_off: int, row_off: int, params: Params
             ) -> Tuple[int, int, int, int]:
    """(col0, row0, width, height) of the overlap in reference pixels."""
    col0, col1 = max(0, col_off), min(ref.width, col_off + sec.width)
    row0, row1 = max(0, row_off), min(ref.height, row_off + sec.height)
    if col1 <= col0 or row1 <= row0:
        raise UserInputError(
            f"The reference '{ref.name}' and secondary '{sec.name}' do not overlap. "
            "Choose two images of the same area.")
    needed = params.window
    if col1 - col0 < needed or row1 - row0 < needed:
        raise UserInputError(
            f"The images overlap by only {col1 - col0} x {row1 - row0} px; at least chip size + "
            f"2 x search range = {needed} px is needed in each direction. Use images that overlap "
            "more, or a smaller chip size or search range.")
    return col0, row0, col1 - col0, row1 - row0


def geometry_cell_mask(geometries: Sequence[dict], transform: Affine) -> Callable[[slice, slice], np.ndarray]:
    """Callable (rows, cols) -> bool cells of the output grid (``transform``) whose centre lies
    inside any of ``geometries`` (GeoJSON, in the grid's CRS)."""
    from rasterio.features import geometry_mask

    geometries = list(geometries)

    def mask(rows: slice, cols: slice) -> np.ndarray:
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        if not geometries:
            return np.zeros(shape, bool)
        window_transform = transform * Affine.translation(cols.start, rows.start)
        return geometry_mask(geometries, out_shape=shape, transform=window_transform, invert=True)

    return mask
