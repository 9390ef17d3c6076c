"""Writing the results of a co-registration in row blocks: the shifted DEM on the DEM's own grid and
the elevation differences DEM − reference before and after, on the same grid.

The shifted DEM at a cell centre x is DEM(x + o) − trend(x): the DEM read on its grid translated by
the fitted offset o (GDAL's warper, the chosen resampling), minus the fitted vertical part
(median, or plane with the tilt option). Memory follows one block of rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from affine import Affine

from ..errors import check_canceled
from ..io import Grid, GridResampler, row_blocks
from .nuth_kaab import Trend

#: Cells per written block (whole rows, a multiple of the 256-row tiles).
BLOCK_CELLS = 1 << 20
DH_STYLE = "dem_dh"


@dataclass(frozen=True)
class Correction:
    """The fitted DEM offset (``offset_x``, ``offset_y``, map units) and vertical part ``trend``, whose x, y
    are relative to the grid centre (``x0``, ``y0``)."""

    offset_x: float
    offset_y: float
    trend: Trend
    x0: float
    y0: float


def grid_centre(grid: Grid):
    """Map coordinates of the centre of ``grid``."""
    return grid.transform * (grid.width / 2.0, grid.height / 2.0)


def cell_centres(grid: Grid, start: int, stop: int):
    """(x, y) map coordinates of the cell centres of rows [start, stop)."""
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(start, stop) + 0.5)
    t = grid.transform
    return t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f


def block_rows(grid: Grid) -> int:
    return max(256, (BLOCK_CELLS // max(1, grid.width)) // 256 * 256)


def write_corrected(dem_path: str, reference_path: str, grid: Grid, correction: Correction, resampling: str,
                    shifted_out, before_out, after_out, progress: Optional[Callable[[float], None]] = None,
                    is_canceled=None) -> None:
    """Write the shifted DEM and dh before/after block by block into the open RasterWriters."""
    shifted_grid = Grid(grid.crs, Affine.translation(correction.offset_x, correction.offset_y) * grid.transform,
                        grid.width, grid.height)
    with GridResampler(shifted_grid, resampling) as shifted_reader, GridResampler(grid, "cubic") as reader:
        blocks = list(row_blocks(grid.height, block_rows(grid)))
        for number, (start, stop) in enumerate(blocks, start=1):
            check_canceled(is_canceled)
            window = grid.rows(start, stop)
            x, y = cell_centres(grid, start, stop)
            vertical = correction.trend(x - correction.x0, y - correction.y0)
            shifted = shifted_reader.read(dem_path, 1, window, dtype=np.float64) - vertical
            original = reader.read(dem_path, 1, window, resampling="nearest", dtype=np.float64)
            reference = reader.read(reference_path, 1, window, dtype=np.float64)
            shifted_out.write(shifted.astype(np.float32), 1, window)
            before_out.write((original - reference).astype(np.float32), 1, window)
            after_out.write((shifted - reference).astype(np.float32), 1, window)
            if progress is not None:
                progress(100.0 * number / len(blocks))
