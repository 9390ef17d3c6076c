"""Pixel grids: CRS, geotransform and size of a raster, and row blocks or block-aligned windows over them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window


@dataclass(frozen=True)
class Grid:
    """A raster grid: ``transform`` maps (col, row) pixel-corner coordinates to map x, y in ``crs``.

    ``crs`` is a rasterio CRS or None (a raster georeferenced only by GCPs or RPCs);
    WKT, EPSG codes and "EPSG:xxxx" texts are accepted and converted.
    """

    crs: Optional[CRS]
    transform: Affine
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.crs is not None and not isinstance(self.crs, CRS):
            object.__setattr__(self, "crs", CRS.from_user_input(self.crs))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def of(cls, dataset) -> "Grid":
        """The grid of an open raster (rasterio dataset or :class:`core.io.RasterReader`)."""
        return cls(dataset.crs, dataset.transform, dataset.width, dataset.height)

    @property
    def shape(self) -> Tuple[int, int]:
        """(rows, columns)."""
        return self.height, self.width

    def rows(self, start: int, stop: int) -> Window:
        """The full-width window of rows [start, stop)."""
        return Window(0, start, self.width, stop - start)

    def subgrid(self, col_off: int, row_off: int, width: int, height: int) -> "Grid":
        """The grid of a window of this grid."""
        return Grid(self.crs, self.transform * Affine.translation(col_off, row_off), width, height)


def row_blocks(height: int, block_rows: int) -> Iterator[Tuple[int, int]]:
    """Yield (start_row, stop_row) covering ``range(height)`` in blocks of ``block_rows``."""
    block_rows = max(1, int(block_rows))
    for start in range(0, height, block_rows):
        yield start, min(height, start + block_rows)


def window_text(window) -> str:
    """'rows 256-511, columns 0-1023' for a rasterio Window (or None: the whole raster)."""
    if window is None:
        return "the whole raster"
    if not isinstance(window, Window):
        window = Window.from_slices(*window) if len(window) == 2 else Window(*window)
    row0, col0 = int(window.row_off), int(window.col_off)
    return (f"rows {row0}-{row0 + int(window.height) - 1}, "
            f"columns {col0}-{col0 + int(window.width) - 1}")


def aligned_windows(height: int, width: int, block_shape: Tuple[int, int], max_pixels: int) -> List[Window]:
    """Row-major windows covering the grid, aligned to a raster's internal blocks ``block_shape`` (rows,
    cols) so that every tile or strip is decompressed once, each of at most about ``max_pixels`` pixels
    (at least one block): full-width strips when the raster is striped or whole rows of tiles fit,
    else windows of whole tiles."""
    block_rows, block_cols = max(1, block_shape[0]), max(1, block_shape[1])
    max_pixels = max(1, int(max_pixels))
    if block_cols >= width or max_pixels >= block_rows * width:
        rows = max(1, max_pixels // width)
        if rows >= block_rows:
            rows -= rows % block_rows
        cols = width
    else:
        rows = min(block_rows, max(1, max_pixels // block_cols))
        cols = max(block_cols, (max_pixels // rows) // block_cols * block_cols)
    return [Window(col, row, min(cols, width - col), min(rows, height - row))
            for row in range(0, height, rows) for col in range(0, width, cols)]
