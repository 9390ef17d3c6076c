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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.windows import Window

from ..choices import Choices
from ..cluster import connect, run_tasks
from ..dates import DAYS_PER_YEAR
from ..errors import UserInputError, check_canceled
from ..io import OutputSet, aligned_windows, open_raster, output_folder
from . import inversion
from .network import PairRaster, check_common_grid, read_sigma_block, read_velocity_block, sources_tag

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Pixels per block: windows aligned to the first pair's internal blocks (256 × 256 tiles for the pairs of
#: this plugin, the tiles of the shared writer), so that every tile of every pair is decompressed once and
#: every output tile is written whole.
BLOCK_PIXELS = 256 * 256
#: Bytes the solve of one chunk of pixel columns may use: the inversion's working copies measured at
#: about 12 float64 values per pair and column (tracemalloc, 200 pairs × 39 steps).
CHUNK_BUDGET_BYTES = 128 * 1024 * 1024
_WORK_COPIES = 12
#: Pixel columns of a block (evenly spaced) whose residual spread gives the pair weights of the whole block.
SIGMA_SAMPLE_COLUMNS = 4096
#: GDAL block cache (bytes) while a network is inverted: GDAL's default (5 % of the RAM) would hold
#: decompressed tiles of every pair file and grow with the network; this bound keeps the peak memory
#: independent of the number of pairs (rasterio restores the previous size afterwards).
GDAL_CACHE_BYTES = 64 * 1024 * 1024
#: The time-series outputs are band-interleaved: each band's tiles are written (and drawn by QGIS, one band
#: at a time) on their own; pixel-interleaved tiles of many bands would be re-read and re-compressed for
#: every band written once the small GDAL cache above cannot hold a window of all bands (500 pairs, 59
#: steps: 3.4 times slower).
SERIES_CREATION = {"interleave": "band"}
#: Side (pixels) of the window at the grid's centre read to choose λ by GCV.
GCV_WINDOW = 128
QUANTITIES = (
    ("velocity_east", "m/yr", "itslive_component"),
    ("velocity_north", "m/yr", "itslive_component"),
    ("speed", "m/yr", "itslive_speed"),
    ("displacement_east", "m", "itslive_component"),
    ("displacement_north", "m", "itslive_component"),
)
WEIGHT_RESIDUALS = "residuals"
WEIGHT_UNCERTAINTY = "uncertainty"
#: How the observations are weighted: 1/σ_j² per pair from the spread of its residuals over the block, or
#: (σ_ref/σ)² per observation from the pairs' uncertainty bands (σ_ref: their median over the λ window).
WEIGHTS = Choices((WEIGHT_RESIDUALS, "from the residual spread of each pair"),
                  (WEIGHT_UNCERTAINTY, "from the uncertainty band of each pair"))
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
    return read_velocity_block(pairs, window)


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
                   log: Optional[Callable[[str], None]] = None, block_rows: Optional[int] = None,
                   weights: str = WEIGHT_RESIDUALS, scheduler: Optional[str] = None) -> Dict[str, str]:
    """Invert ``pairs`` (one grid) into the time-series rasters; returns {quantity: path} (+ "quality").

    ``step_days`` 0: steps between consecutive unique acquisition dates; ``lam`` None or 0: GCV;
    ``weights``: one of :data:`WEIGHTS`; ``scheduler``: a dask.distributed address to invert the blocks
    on a cluster (its workers read the pairs by the same paths). GDAL's block cache is bounded to
    :data:`GDAL_CACHE_BYTES` meanwhile.
    """
    weights = WEIGHTS.check(weights, "weighting")
    client = connect(scheduler) if scheduler else None
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            return _invert_network(pairs, out_folder, prefix, step_days, lam, robust, min_pairs, progress,
                                   is_canceled, log or (lambda message: None), block_rows, weights, client)
    finally:
        if client is not None:
            client.close()


@dataclass(frozen=True)
class BlockJob:
    """Everything a block's inversion needs (picklable: Dask ships it to the workers)."""

    pairs: Tuple[PairRaster, ...]
    a: np.ndarray
    d: np.ndarray
    edges: np.ndarray
    lam: float
    robust: bool
    min_pairs: int
    chunk: int
    sigma_ref: Optional[float] = None     # m/yr; None: weights from the residual spread


def _invert_network(pairs, out_folder, prefix, step_days, lam, robust, min_pairs, progress, is_canceled, log,
                    block_rows, weights, client) -> Dict[str, str]:
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
    sigma_ref = _reference_sigma(pairs, grid, log) if weights == WEIGHT_UNCERTAINTY else None
    if not lam:
        lam = _choose_lambda(pairs, grid, a, d, robust, sigma_ref)
        log(f"λ chosen by generalised cross-validation: {lam:g}")
    common = {"SM_SERIES_SOURCES": sources_tag(pairs), "SM_SERIES_LAMBDA": repr(float(lam)),
              "SM_SERIES_UNCOVERED": ",".join(uncovered), "SM_SERIES_ROBUST": str(bool(robust)),
              "SM_SERIES_WEIGHTS": weights}
    band_tags = [{"SM_COVERED": str(int(c > 0)), "SM_PAIRS_OVERLAPPING": str(int(c))} for c in coverage]
    blocks = block_windows(pairs, grid, block_rows)
    job = BlockJob(tuple(pairs), a, d, edges, float(lam), bool(robust), int(min_pairs),
                   chunk_columns_for(len(pairs)), sigma_ref)
    paths = {}
    with output_folder(out_folder) as folder, OutputSet() as outputs, contextlib.ExitStack() as stack:
        writers = {}
        for kind, unit, style in QUANTITIES:
            dates = step_ends if kind.startswith("displacement") else centres
            path = os.path.join(folder, f"{prefix}_{kind}.tif")
            tags = dict(common, SM_SERIES_KIND=kind, SM_SERIES_UNIT=unit, SM_SERIES_DATES=",".join(dates))
            writers[kind] = stack.enter_context(outputs.raster(
                path, grid, [f"{date} ({unit})" for date in dates], tags=tags, band_tags=band_tags, style=style,
                require_valid=_EMPTY_HINT if kind == "speed" else None, creation=SERIES_CREATION))
            paths[kind] = path
        paths["quality"] = os.path.join(folder, f"{prefix}_quality.tif")
        writers["quality"] = stack.enter_context(outputs.raster(
            paths["quality"], grid, QUALITY_DESCRIPTIONS, style="velocity_speed", require_valid=None,
            tags=dict(common, SM_SERIES_KIND="quality")))
        for done, (window, arrays) in enumerate(_blocks_inverted(job, blocks, client, is_canceled), start=1):
            for kind, values in arrays.items():
                writers[kind].write(values, window=window)
            if progress is not None:
                progress(100.0 * done / len(blocks))
    return paths


def _blocks_inverted(job: BlockJob, blocks: Sequence[Window], client, is_canceled):
    """(window, {output: float32 array}) of every block: here one after the other, or on the Dask cluster
    of ``client`` as its workers finish them (a bounded number in flight)."""
    if client is None:
        for window in blocks:
            check_canceled(is_canceled)
            yield window, invert_block(job, window)
        return
    for index, arrays, error in run_tasks(client, invert_block, [(job, w) for w in blocks], is_canceled):
        if isinstance(error, UserInputError):
            raise error
        if error is not None:
            raise UserInputError(f"A Dask worker failed on block {index + 1} of {len(blocks)}: {error}. "
                                 "The workers must see the pair rasters by the same paths as QGIS and "
                                 "import this plugin's package (same version).") from error
        yield blocks[index], arrays


_EMPTY_HINT = ("No pixel has enough valid pairs: check that the pair rasters overlap and hold valid offsets, "
               "or lower the minimum number of pairs per pixel.")


def _centre_window(grid) -> Window:
    h, w = min(GCV_WINDOW, grid.height), min(GCV_WINDOW, grid.width)
    return Window((grid.width - w) // 2, (grid.height - h) // 2, w, h)


def _reference_sigma(pairs, grid, log) -> float:
    """σ_ref (m/yr) of the uncertainty weights: the median uncertainty of the pairs over the λ window."""
    with_sigma = [pair for pair in pairs if pair.has_sigma]
    if not with_sigma:
        raise UserInputError(
            "Weights from the uncertainty band were asked, but none of the pair rasters has an uncertainty band "
            "(disparity rasters of surfacemotion:correlatepair with 'uncertainty (px, 1 sigma)', velocity "
            "rasters with an 'uncertainty' band, or ITS_LIVE downloads with vx_error/vy_error). Choose weights "
            "from the residual spread instead.")
    if len(with_sigma) < len(pairs):
        log(f"{len(pairs) - len(with_sigma)} of {len(pairs)} pairs have no uncertainty band: their observations "
            "get the median uncertainty of the others.")
    sigmas = read_sigma_block(pairs, _centre_window(grid))
    finite = sigmas[np.isfinite(sigmas) & (sigmas > 0)]
    if not finite.size:
        sigmas = np.concatenate([read_sigma_block(with_sigma, w).ravel()
                                 for w in block_windows(with_sigma, grid)[:4]])
        finite = sigmas[np.isfinite(sigmas) & (sigmas > 0)]
    if not finite.size:
        raise UserInputError("The uncertainty bands of the pairs hold no positive value; choose weights from the "
                             "residual spread instead.")
    reference = float(np.median(finite))
    log(f"Uncertainty weights: w = (σ_ref/σ)², σ_ref = {reference:.4g} m/yr (median uncertainty).")
    return reference


def _choose_lambda(pairs, grid, a, d, robust, sigma_ref=None) -> float:
    """GCV λ on a GCV_WINDOW² window at the grid's centre (east and north columns pooled)."""
    window = _centre_window(grid)
    y = _read_block(pairs, window).reshape(len(pairs), -1).astype(np.float64)
    keep = np.isfinite(y).sum(axis=0) >= 3
    if not keep.any():
        return 1.0
    y = y[:, keep]
    if sigma_ref is not None:
        w_obs = inversion.weights_from_obs_sigmas(
            read_sigma_block(pairs, window).reshape(len(pairs), -1)[:, keep], sigma_ref)
        w_pair = np.median(w_obs, axis=1)
    else:
        first = inversion.solve_grouped(a, y, np.ones(len(pairs)), 1.0, d, 2)
        w_pair = inversion.weights_from_sigmas(inversion.pair_sigmas(a, y, first))
    return inversion.choose_lambda(a, y, d, w_pair, robust)


def _block_pair_sigmas(job: BlockJob, y) -> np.ndarray:
    """σ_j of every pair from the spread of its residuals over the block (an unweighted solve of at most
    :data:`SIGMA_SAMPLE_COLUMNS` columns taken evenly across the block), the same for every chunk."""
    sample = y[:, ::max(1, -(-y.shape[1] // SIGMA_SAMPLE_COLUMNS))].astype(np.float64)
    first = inversion.solve_grouped(job.a, sample, np.ones(len(job.a)), job.lam, job.d, job.min_pairs)
    return inversion.pair_sigmas(job.a, sample, first)


def _invert_columns(job: BlockJob, y, obs_weights) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v, pairs used, residual RMS) of :func:`inversion.invert` run on ``job.chunk`` columns of y at a time
    (bounded working memory), with the pair weights of the whole block."""
    k, n = job.a.shape[1], y.shape[1]
    v, n_used, rms = np.empty((k, n)), np.empty(n, np.int64), np.empty(n)
    sigmas = _block_pair_sigmas(job, y) if obs_weights is None else None
    for c0 in range(0, n, job.chunk):
        part = inversion.invert(job.a, y[:, c0:c0 + job.chunk].astype(np.float64), job.d, lam=job.lam,
                                sigmas=sigmas, robust=job.robust, min_pairs=job.min_pairs,
                                obs_weights=None if obs_weights is None else obs_weights[:, c0:c0 + job.chunk])
        v[:, c0:c0 + job.chunk], n_used[c0:c0 + job.chunk], rms[c0:c0 + job.chunk] = (
            part.v, part.n_used, part.residual_rms)
    return v, n_used, rms


def invert_block(job: BlockJob, window: Window) -> Dict[str, np.ndarray]:
    """The outputs of one window ({quantity or "quality": float32 bands × rows × cols}); runs on a Dask
    worker too (GDAL's cache bounded there as well)."""
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        block = _read_block(job.pairs, window)
        n_pairs, _, n_rows, n_cols = block.shape
        y = block.reshape(n_pairs, 2 * n_rows * n_cols)
        obs_weights = None
        if job.sigma_ref is not None:
            obs_weights = inversion.weights_from_obs_sigmas(
                read_sigma_block(job.pairs, window).reshape(n_pairs, -1), job.sigma_ref)
    v_all, n_used_all, rms_all = _invert_columns(job, y, obs_weights)
    k = job.a.shape[1]
    v = v_all.reshape(k, 2, n_rows, n_cols)
    east, north = v[:, 0], v[:, 1]
    disp = inversion.cumulative_displacement(v_all, job.edges, DAYS_PER_YEAR).reshape(k, 2, n_rows, n_cols)
    rms = rms_all.reshape(2, n_rows, n_cols)
    n_used = n_used_all.reshape(2, n_rows, n_cols)
    valid = np.isfinite(y[:, : n_rows * n_cols])
    gaps = inversion.uncovered_steps(job.a, valid).reshape(n_rows, n_cols).astype(np.float32)
    finite = np.isfinite(rms)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.sqrt(np.where(finite, rms ** 2, 0.0).sum(axis=0) / finite.sum(axis=0))
    solved = np.isfinite(pooled)
    quality = np.stack([pooled, np.where(solved, n_used.min(axis=0), np.nan), np.where(solved, gaps, np.nan)])
    return {"velocity_east": east.astype(np.float32), "velocity_north": north.astype(np.float32),
            "speed": np.hypot(east, north).astype(np.float32),
            "displacement_east": disp[:, 0].astype(np.float32), "displacement_north": disp[:, 1].astype(np.float32),
            "quality": quality.astype(np.float32)}


def series_dates(path: str) -> List[str]:
    """The ``SM_SERIES_DATES`` of a time-series raster written here."""
    from ..io import open_raster

    with open_raster(path) as ds:
        return [d for d in ds.tags().get("SM_SERIES_DATES", "").split(",") if d]
