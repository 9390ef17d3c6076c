"""Coarse-to-fine: a driver that runs a single-level solver from the coarsest pyramid level down.

Level k holds both images at 1/2**k resolution: the finer level smoothed by a
nodata-aware Gaussian (sigma 1 px), then every second pixel; the secondary
keeps the pixels whose reference-frame index is even, like the reference, so
the coarse grids stay aligned to whole pixels. The top level searches
+-``search_range`` of its pixels around the a-priori (scaled), i.e. motions up
to 2**levels x ``search_range`` full-resolution pixels; each finer level
searches +-``PYRAMID_REFINE_SEARCH`` px around the offsets of the level above
(median-filtered over 5 x 5 cells, holes filled from the nearest valid cell,
doubled). :func:`coarse_to_fine` returns the a-priori field for the
full-resolution level, which the caller then solves once (the driver is
handed the solver, as in skimage's registration code, and never writes outputs).

Storage: a level whose two images fit ``PYRAMID_MEMORY_BYTES`` as float32 is
held in memory; a larger one goes into temporary GeoTIFFs (core.io.RasterWriter)
in a scratch folder next to the output (core.io.temporary_folder, named so a
killed run's is recognised), read back through the same :class:`RasterSource`
as the inputs. Coarse results (dx, dy) stay in memory.

Offsets are (dx, dy) in pixels of each level, dx + right, dy + down; a field
of level k is doubled to serve level k - 1.
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np
from affine import Affine
from scipy import ndimage

from ...errors import UserInputError, check_canceled
from ...io import Grid, RasterWriter, open_raster, row_blocks, temporary_folder
from ..apriori import GridOffsetField, OffsetField
from ..disparity import NO_MATCH_HINT
from .frame import secondary_position
from .params import CorrelationResult
from .sources import ArraySource, PixelSource, RasterSource

#: Search radius (px) at the pyramid levels below the top, around the upsampled coarser offsets.
PYRAMID_REFINE_SEARCH = 4
#: Largest size (bytes, float32) of both images of a level held in memory; larger levels go to disk.
PYRAMID_MEMORY_BYTES = 256 * 2 ** 20
#: Share of the progress bar given to the coarse levels.
COARSE_PROGRESS_SHARE = 0.3
#: Gaussian sigma (px of the finer level) applied before keeping every second pixel.
_PYRAMID_SIGMA = 1.0
#: Fraction of valid weight a coarse pixel needs to count as valid.
_PYRAMID_MIN_WEIGHT = 0.9
#: Side (cells) of the NaN-aware median filter applied to a coarse offset field.
_MEDIAN_SIZE = 5
#: Pixels of the finer level read per block while downsampling.
_DOWNSAMPLE_BLOCK_PIXELS = 2_000_000

Progress = Optional[Callable[[float], None]]
#: solve(ref, sec, search_range, apriori, progress, is_canceled) -> (result, output grid transform):
#: one level correlated (sources on the level's own grids; a-priori and result in that level's px).
LevelSolver = Callable[[PixelSource, PixelSource, int, Optional[OffsetField], Progress, Optional[Callable]],
                       Tuple[CorrelationResult, Affine]]


def coarse_to_fine(ref: PixelSource, sec: PixelSource, solve: LevelSolver, levels: int, search_range: int,
                   apriori: Optional[OffsetField] = None, scratch_near: str = ".", progress: Progress = None,
                   is_canceled=None) -> Optional[OffsetField]:
    """The a-priori offset field for the full-resolution level after ``levels`` coarse levels.

    ``ref`` and ``sec`` are the full-resolution images (georeferenced sources);
    ``apriori`` (full-resolution px, or None) guides the top level; ``solve``
    correlates one level (see :data:`LevelSolver`). ``progress`` runs from 0 to
    ``100 * COARSE_PROGRESS_SHARE``. With ``levels == 0`` returns ``apriori``.
    Temporary GeoTIFFs of large levels go into a scratch folder next to
    ``scratch_near``, removed on return (or failure).
    """
    if levels == 0:
        return apriori
    with LevelStore(scratch_near) as store:
        pyramid: List[Optional[Tuple[PixelSource, PixelSource]]] = [(ref, sec)]
        for level in range(1, levels + 1):
            check_canceled(is_canceled)
            pyramid.append(store.half_pair(*pyramid[-1], level, is_canceled))
        field = apriori.scaled(1.0 / 2 ** levels) if apriori is not None else None
        share = 100.0 * COARSE_PROGRESS_SHARE / levels
        for position, level in enumerate(range(levels, 0, -1)):
            check_canceled(is_canceled)
            search = search_range if level == levels else PYRAMID_REFINE_SEARCH
            result, transform = solve(*pyramid[level], search, field,
                                      progress_range(progress, position * share, share), is_canceled)
            pyramid[level] = None  # its images are no longer needed
            if not result.valid.any():
                raise UserInputError(f"Pyramid level {level} (1/{2 ** level} resolution) matched no chip. "
                                     + NO_MATCH_HINT)
            field = coarse_offset_field(result.dx, result.dy, result.valid, transform, 2.0)
        return field


def progress_range(progress: Progress, start: float, span: float) -> Progress:
    """``progress`` mapped so that 0-100 % reports ``start`` .. ``start + span``."""
    if progress is None:
        return None
    return lambda percent: progress(start + span / 100.0 * percent)


class LevelStore:
    """Makes pyramid levels, in memory or — when both images of a level exceed
    ``PYRAMID_MEMORY_BYTES`` as float32 — in temporary GeoTIFFs of one scratch folder next to
    ``scratch_near`` (created when first needed). A context manager: leaving it closes the
    temporary rasters and removes the folder."""

    def __init__(self, scratch_near: str):
        self.resources = ExitStack()
        self.scratch_near = os.path.abspath(scratch_near)
        self.names: Optional[Tuple[str, str]] = None
        self.folder: Optional[str] = None

    def __enter__(self) -> "LevelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.resources.close()

    def half_pair(self, ref: PixelSource, sec: PixelSource, level: int, is_canceled=None
                  ) -> Tuple[PixelSource, PixelSource]:
        """Both images of level ``level`` from those of level ``level - 1`` (sources on their
        own grids); the secondary keeps the pixels whose reference-frame index is even."""
        self.names = self.names or (ref.name, sec.name)
        col, row = secondary_position(ref.grid, sec.grid)
        phases = ((0, 0), (int(round(row)) % 2, int(round(col)) % 2))
        sizes = [_half_shape(source, *phase) for source, phase in zip((ref, sec), phases)]
        in_memory = 4 * sum(h * w for h, w in sizes) <= PYRAMID_MEMORY_BYTES
        return tuple(self._half(source, phase, f"{role}_{level}", f"{name} at 1/{2 ** level} resolution",
                                in_memory, is_canceled)
                     for source, phase, role, name in zip((ref, sec), phases, ("ref", "sec"), self.names))

    def _half(self, source: PixelSource, phase: Tuple[int, int], stem: str, name: str, in_memory: bool,
              is_canceled) -> PixelSource:
        """One image at half the resolution of ``source``, named ``name`` (``stem``.tif on disk)."""
        row_phase, col_phase = phase
        height, width = _half_shape(source, row_phase, col_phase)
        transform = source.grid.transform * Affine.translation(col_phase - 0.5, row_phase - 0.5) * Affine.scale(2)
        grid = Grid(source.grid.crs, transform, width, height)
        rows = _downsampled_rows(source, row_phase, col_phase, height, is_canceled)
        if in_memory:
            values = np.empty((height, width), np.float32)
            for start, stop, coarse in rows:
                values[start:stop] = coarse
            return ArraySource(values, None, grid, name)
        if self.folder is None:
            self.folder = self.resources.enter_context(temporary_folder(self.scratch_near, "pyramid"))
        path = os.path.join(self.folder, f"{stem}.tif")
        with RasterWriter(path, grid, ["band 1 (Gaussian, decimated by 2)"], require_valid=None) as out:
            for start, stop, coarse in rows:
                out.write(coarse, 1, window=grid.rows(start, stop))
        return RasterSource(self.resources.enter_context(open_raster(path)), name)


def _half_shape(source: PixelSource, row_phase: int, col_phase: int) -> Tuple[int, int]:
    return (source.height - row_phase + 1) // 2, (source.width - col_phase + 1) // 2


def _downsampled_rows(source: PixelSource, row_phase: int, col_phase: int, height: int, is_canceled=None
                      ) -> Iterator[Tuple[int, int, np.ndarray]]:
    """(start, stop, rows) of the coarser image, block by block: band 1 smoothed (sigma
    ``_PYRAMID_SIGMA``, nodata-aware) and decimated by 2 (float64, NaN where invalid); pixel k
    of the coarse image is pixel 2k + phase of ``source``."""
    margin = int(np.ceil(4 * _PYRAMID_SIGMA)) + 1
    for start, stop in row_blocks(height, max(1, _DOWNSAMPLE_BLOCK_PIXELS // max(source.width, 1))):
        check_canceled(is_canceled)
        first = 2 * start + row_phase
        last = 2 * (stop - 1) + row_phase + 1
        r0, r1 = max(first - margin, 0), min(last + margin, source.height)
        values, valid = source.read_window(r0, r1, 0, source.width)
        values = values.astype(np.float64)
        weight = ndimage.gaussian_filter(valid.astype(np.float64), _PYRAMID_SIGMA, mode="nearest")
        total = ndimage.gaussian_filter(np.where(valid, values, 0.0), _PYRAMID_SIGMA, mode="nearest")
        keep = (slice(first - r0, last - r0, 2), slice(col_phase, None, 2))
        weight, total = weight[keep], total[keep]
        yield start, stop, np.where(weight >= _PYRAMID_MIN_WEIGHT, total / np.maximum(weight, 1e-12), np.nan)


def coarse_offset_field(dx: np.ndarray, dy: np.ndarray, valid: np.ndarray, transform: Affine,
                        factor: float = 2.0) -> GridOffsetField:
    """The offsets (dx, dy) of a coarse level on its output grid (``transform``), invalid cells
    dropped, median-filtered (NaN-aware, 5 x 5 cells), holes filled from the nearest valid cell,
    scaled by ``factor`` (coarse -> fine pixels)."""
    dx, dy = (np.where(valid, np.asarray(component, np.float64), np.nan) for component in (dx, dy))
    dx, dy = (_fill_nearest(_nan_median(component)) * factor for component in (dx, dy))
    return GridOffsetField(dx, dy, transform)


def _nan_median(values: np.ndarray, size: int = _MEDIAN_SIZE) -> np.ndarray:
    """Median of the finite values in the size x size neighbourhood of every cell (NaN if none),
    computed row by row so memory stays at size^2 x one row of cells."""
    half = size // 2
    padded = np.pad(values, half, constant_values=np.nan)
    out = np.full(values.shape, np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    for i in range(values.shape[0]):
        row = windows[i].reshape(values.shape[1], -1)
        counts = np.isfinite(row).sum(axis=1)
        if counts.any():
            with np.errstate(all="ignore"):
                out[i, counts > 0] = np.nanmedian(row[counts > 0], axis=1)
    return out


def _fill_nearest(values: np.ndarray) -> np.ndarray:
    missing = ~np.isfinite(values)
    if not missing.any() or missing.all():
        return values
    index = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
    return values[tuple(index)]
