"""Blockwise inversion of a pair network on its common grid into time-series GeoTIFFs (issue 14 contract).

Reads one tile-aligned window of every pair at a time (each tile once; bounded memory), inverts east and north velocity
(m/yr, grid x / grid y) with :func:`core.series.inversion.invert`, and writes in one
:class:`core.io.OutputSet` (all or nothing):

* ``<prefix>_velocity_east.tif``, ``_velocity_north.tif``, ``_speed.tif``: m/yr per step, one band per step
  dated at the step centre;
* ``<prefix>_displacement_east.tif``, ``_displacement_north.tif``: cumulative displacement (m) since the first
  date, one band per step dated at the step end;
* ``<prefix>_quality.tif``: residual RMS (m/yr, of the pair velocities, east and north pooled), number of
  pairs used (after robust reweighting: weight > 0), number of steps no used pair overlaps.

Band descriptions ``YYYY-MM-DD (unit)``; tags ``SM_SERIES_KIND``, ``SM_SERIES_UNIT``, ``SM_SERIES_DATES``,
``SM_SERIES_SOURCES`` (JSON), ``SM_SERIES_LAMBDA``, ``SM_SERIES_UNCOVERED`` (dates of steps no pair of the
network overlaps: they come from the regularisation only; absent when every step is covered; also band
tag ``SM_COVERED`` = 0/1).
"""
from __future__ import annotations

import contextlib
import os
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.windows import Window

from ..dates import DAYS_PER_YEAR
from ..errors import UserInputError, check_canceled
from ..io import OutputSet, aligned_windows, open_raster, output_folder
from . import inversion
from .network import PairRaster, check_common_grid, sources_tag

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Pixels per block: windows aligned to the first pair's internal blocks (256 × 256 tiles for the pairs of
#: this plugin, the tiles of the shared writer), so that every tile of every pair is decompressed once and
#: every output tile is written whole.
BLOCK_PIXELS = 256 * 256
#: Bytes the solve of one chunk of pixel columns may use: the inversion's working copies measured at
#: about 12 float64 values per pair and column (tracemalloc, 200 pairs × 39 steps).
CHUNK_BUDGET_BYTES = 256 * 1024 * 1024
_WORK_COPIES = 12
#: GDAL block cache (bytes) while a network is inverted: GDAL's default (5 % of the RAM) would hold
#: decompressed tiles of every pair file and grow with the network; this bound keeps the peak memory
#: independent of the number of pairs (rasterio restores the previous size afterwards).
GDAL_CACHE_BYTES = 256 * 1024 * 1024
#: Side (pixels) of the window at the grid's centre read to choose λ by GCV.
GCV_WINDOW = 128
QUANTITIES = (
    ("velocity_east", "m/yr", "itslive_component"),
    ("velocity_north", "m/yr", "itslive_component"),
    ("speed", "m/yr", "itslive_speed"),
    ("displacement_east", "m", "itslive_component"),
    ("displacement_north", "m", "itslive_component"),
)
QUALITY_DESCRIPTIONS = ("residual RMS (m/yr)", "pairs used (count)", "uncovered steps (count)")


def _days(moment: datetime) -> float:
    return (moment - _EPOCH) / timedelta(days=1)


def _iso_day(days: float) -> str:
    return (_EPOCH + timedelta(days=float(days))).strftime("%Y-%m-%d")


def chunk_columns_for(n_pairs: int, budget: int = CHUNK_BUDGET_BYTES) -> int:
    """Pixel columns (pixel × component) inverted at once so that their working copies fit ``budget``."""
    return max(256, budget // max(n_pairs * 8 * _WORK_COPIES, 1))


def block_windows(pairs: Sequence[PairRaster], grid, block_rows: Optional[int] = None) -> List[Window]:
    """The blocks, row-major: windows of about BLOCK_PIXELS aligned to the first pair's internal blocks,
    or full-width strips of ``block_rows`` rows."""
    if block_rows:
        return [grid.rows(start, min(grid.height, start + int(block_rows)))
                for start in range(0, grid.height, int(block_rows))]
    with open_raster(pairs[0].path) as ds:
        block_shape = ds.block_shapes[0]
    return aligned_windows(grid.height, grid.width, block_shape, BLOCK_PIXELS)


def _read_block(pairs: Sequence[PairRaster], window: Window) -> np.ndarray:
    """(n_pairs, 2, rows, cols) float32 velocities (m/yr), NaN where either component is missing."""
    out = np.empty((len(pairs), 2, int(window.height), int(window.width)), np.float32)
    for j, pair in enumerate(pairs):
        east, north = pair.read_velocity(window)
        bad = ~(np.isfinite(east) & np.isfinite(north))
        east[bad] = np.nan
        north[bad] = np.nan
        out[j, 0], out[j, 1] = east, north
    return out


def _validate(pairs: Sequence[PairRaster], min_pairs: int) -> None:
    if len(pairs) < 2:
        raise UserInputError(
            f"The network has {len(pairs)} pair: an inversion needs at least two (redundant) pairs; give more "
            "disparity or velocity rasters.")
    if not 1 <= min_pairs <= len(pairs):
        raise UserInputError(f"The minimum number of pairs per pixel must be between 1 and {len(pairs)} "
                             f"(the pairs given); got {min_pairs}.")


def invert_network(pairs: Sequence[PairRaster], out_folder: str, prefix: str = "series", step_days: float = 0.0,
                   lam: Optional[float] = None, robust: bool = True, min_pairs: int = 2,
                   progress: Optional[Callable[[float], None]] = None, is_canceled=None,
                   log: Optional[Callable[[str], None]] = None, block_rows: Optional[int] = None) -> Dict[str, str]:
    """Invert ``pairs`` (one grid) into the time-series rasters; returns {quantity: path} (+ "quality").

    ``step_days`` 0: steps between consecutive unique acquisition dates; ``lam`` None or 0: GCV.
    GDAL's block cache is bounded to :data:`GDAL_CACHE_BYTES` meanwhile.
    """
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        return _invert_network(pairs, out_folder, prefix, step_days, lam, robust, min_pairs, progress,
                               is_canceled, log, block_rows)


def _invert_network(pairs, out_folder, prefix, step_days, lam, robust, min_pairs, progress, is_canceled, log,
                    block_rows) -> Dict[str, str]:
    log = log or (lambda message: None)
    pairs = list(pairs)
    _validate(pairs, int(min_pairs))
    grid = check_common_grid(pairs)
    starts = np.array([_days(p.start) for p in pairs])
    ends = np.array([_days(p.end) for p in pairs])
    edges = inversion.time_edges(starts, ends, float(step_days or 0.0))
    a = inversion.design_matrix(starts, ends, edges)
    d = inversion.difference_operator(edges)
    coverage = inversion.step_coverage(a)
    centres = [_iso_day(t) for t in inversion.labels(edges)]
    step_ends = [_iso_day(t) for t in edges[1:]]
    uncovered = [centres[k] for k in np.flatnonzero(coverage == 0)]
    if uncovered:
        log(f"{len(uncovered)} of {len(centres)} steps are covered by no pair (regularisation only): "
            + ", ".join(uncovered[:10]) + (" …" if len(uncovered) > 10 else ""))
    if not lam:
        lam = _choose_lambda(pairs, grid, a, d, robust)
        log(f"λ chosen by generalised cross-validation: {lam:g}")
    common = {"SM_SERIES_SOURCES": sources_tag(pairs), "SM_SERIES_LAMBDA": repr(float(lam)),
              "SM_SERIES_UNCOVERED": ",".join(uncovered), "SM_SERIES_ROBUST": str(bool(robust))}
    band_tags = [{"SM_COVERED": str(int(c > 0)), "SM_PAIRS_OVERLAPPING": str(int(c))} for c in coverage]
    blocks = block_windows(pairs, grid, block_rows)
    chunk = chunk_columns_for(len(pairs))
    paths = {}
    with output_folder(out_folder) as folder, OutputSet() as outputs, contextlib.ExitStack() as stack:
        writers = {}
        for kind, unit, style in QUANTITIES:
            dates = step_ends if kind.startswith("displacement") else centres
            path = os.path.join(folder, f"{prefix}_{kind}.tif")
            tags = dict(common, SM_SERIES_KIND=kind, SM_SERIES_UNIT=unit, SM_SERIES_DATES=",".join(dates))
            writers[kind] = stack.enter_context(outputs.raster(
                path, grid, [f"{date} ({unit})" for date in dates], tags=tags, band_tags=band_tags, style=style,
                require_valid=_EMPTY_HINT if kind == "speed" else None))
            paths[kind] = path
        paths["quality"] = os.path.join(folder, f"{prefix}_quality.tif")
        writers["quality"] = stack.enter_context(outputs.raster(
            paths["quality"], grid, QUALITY_DESCRIPTIONS, style="velocity_speed", require_valid=None,
            tags=dict(common, SM_SERIES_KIND="quality")))
        for done, window in enumerate(blocks, start=1):
            check_canceled(is_canceled)
            _invert_block(pairs, a, d, edges, float(lam), robust, int(min_pairs), window, chunk, writers)
            if progress is not None:
                progress(100.0 * done / len(blocks))
    return paths


_EMPTY_HINT = ("No pixel has enough valid pairs: check that the pair rasters overlap and hold valid offsets, "
               "or lower the minimum number of pairs per pixel.")


def _choose_lambda(pairs, grid, a, d, robust) -> float:
    """GCV λ on a GCV_WINDOW² window at the grid's centre (east and north columns pooled)."""
    h, w = min(GCV_WINDOW, grid.height), min(GCV_WINDOW, grid.width)
    window = Window((grid.width - w) // 2, (grid.height - h) // 2, w, h)
    y = _read_block(pairs, window).reshape(len(pairs), -1).astype(np.float64)
    keep = np.isfinite(y).sum(axis=0) >= 3
    if not keep.any():
        return 1.0
    y = y[:, keep]
    first = inversion.solve_grouped(a, y, np.ones(len(pairs)), 1.0, d, 2)
    w_pair = inversion.weights_from_sigmas(inversion.pair_sigmas(a, y, first))
    return inversion.choose_lambda(a, y, d, w_pair, robust)


def _invert_columns(a, y, d, lam, robust, min_pairs, chunk) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v, pairs used, residual RMS) of :func:`inversion.invert` run on ``chunk`` columns of y at a time
    (bounded working memory)."""
    k, n = a.shape[1], y.shape[1]
    v, n_used, rms = np.empty((k, n)), np.empty(n, np.int64), np.empty(n)
    for c0 in range(0, n, chunk):
        part = inversion.invert(a, y[:, c0:c0 + chunk].astype(np.float64), d, lam=lam, robust=robust,
                                min_pairs=min_pairs)
        v[:, c0:c0 + chunk], n_used[c0:c0 + chunk], rms[c0:c0 + chunk] = part.v, part.n_used, part.residual_rms
    return v, n_used, rms


def _invert_block(pairs, a, d, edges, lam, robust, min_pairs, window, chunk, writers) -> None:
    block = _read_block(pairs, window)
    n_pairs, _, n_rows, n_cols = block.shape
    y = block.reshape(n_pairs, 2 * n_rows * n_cols)
    v_all, n_used_all, rms_all = _invert_columns(a, y, d, lam, robust, min_pairs, chunk)
    k = a.shape[1]
    v = v_all.reshape(k, 2, n_rows, n_cols)
    east, north = v[:, 0], v[:, 1]
    writers["velocity_east"].write(east.astype(np.float32), window=window)
    writers["velocity_north"].write(north.astype(np.float32), window=window)
    writers["speed"].write(np.hypot(east, north).astype(np.float32), window=window)
    disp = inversion.cumulative_displacement(v_all, edges, DAYS_PER_YEAR).reshape(k, 2, n_rows, n_cols)
    writers["displacement_east"].write(disp[:, 0].astype(np.float32), window=window)
    writers["displacement_north"].write(disp[:, 1].astype(np.float32), window=window)
    rms = rms_all.reshape(2, n_rows, n_cols)
    n_used = n_used_all.reshape(2, n_rows, n_cols)
    valid = np.isfinite(y[:, : n_rows * n_cols])
    gaps = inversion.uncovered_steps(a, valid).reshape(n_rows, n_cols).astype(np.float32)
    finite = np.isfinite(rms)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.sqrt(np.where(finite, rms ** 2, 0.0).sum(axis=0) / finite.sum(axis=0))
    solved = np.isfinite(pooled)
    quality = np.stack([pooled, np.where(solved, n_used.min(axis=0), np.nan),
                        np.where(solved, gaps, np.nan)]).astype(np.float32)
    writers["quality"].write(quality, window=window)


def series_dates(path: str) -> List[str]:
    """The ``SM_SERIES_DATES`` of a time-series raster written here."""
    from ..io import open_raster

    with open_raster(path) as ds:
        return [d for d in ds.tags().get("SM_SERIES_DATES", "").split(",") if d]
