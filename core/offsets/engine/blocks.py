"""Block scheduling: the chip grid cut into blocks, computed two at a time, assembled into strips.

Images are processed in blocks of output cells (reference rows/columns plus a
margin, secondary plus the search halo), ``THREADS`` blocks at a time in
threads (numpy, scipy, OpenCV and the numba kernels release the GIL; OpenBLAS runs one
thread meanwhile, :mod:`core.offsets.blas`), so memory stays bounded (a
few hundred MB whatever the image size); the block layout changes only the
float32 rounding of the correlation products (< 1e-4 px). Reading and the
sink stay in the calling thread; finished blocks are joined into full-width
strips of cells, which get the outlier tests — the normalised median test (one
row of context above and below) and the displacement coherence test (about two
chips of context) — each recording its rejection code. Each block is read with
the margin of the fallback chip ladder (:mod:`.ladder`) and the nodata mask
(invalid pixels inside the images) for masked ZNCC. Block a-priori callables
give (dx, dy) px per cell.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Deque, Iterator, List, Optional, Tuple

import numpy as np

from ...errors import check_canceled
from ..blas import single_threaded_blas
from ..disparity import REASON_COHERENCE_TEST, REASON_MEDIAN_TEST
from ..sweep import integer_engine
from .ladder import BlockPixels, compute_cells, ladder_margin
from .params import SPLINE_MARGIN, THREADS, CorrelationResult, Params
from .quality import coherence_geometry, displacement_coherence_test, normalised_median_test
from .sources import PixelSource

#: Working-memory budget of one block of chips (bytes); the block size follows from it.
_BLOCK_MEMORY_BYTES = 120_000_000

Sink = Callable[[slice, slice, CorrelationResult], None]
CellMask = Callable[[slice, slice], np.ndarray]
#: (rows, cols) of output cells -> their expected (dx, dy) offsets (px, NaN = unknown).
BlockApriori = Callable[[slice, slice], Tuple[np.ndarray, np.ndarray]]


def _chips_per_block(params: Params, sweep: bool = False) -> int:
    """Chips per block so the working memory stays near ``_BLOCK_MEMORY_BYTES``.

    Per chip: the float32 ZNCC volume and its reductions; the per-chip FFT
    windows, spectra and templates (FFT engine) or the sweep's product rows
    (step^2 pixels per chip). Lucas-Kanade works on ``subpixel._LK_CHUNK`` chips at a
    time (about 120 x chip^2 bytes each) whatever the block size.
    """
    span = 2 * params.search + 1
    bytes_per_chip = 6 * span ** 2 + 64 * span + 80 * params.step ** 2
    if sweep:
        bytes_per_chip += 12 * span * params.step ** 2
    else:
        bytes_per_chip += 40 * params.window ** 2 + 4 * params.chip ** 2
    return max(1, int(_BLOCK_MEMORY_BYTES // bytes_per_chip))


def _blocks(n_rows: int, n_cols: int, chips: int, min_rows: int = 1) -> Iterator[Tuple[slice, slice]]:
    """Blocks of about ``chips`` cells, full-width strips unless that leaves fewer than
    ``min_rows`` rows (the displacement sweep wants compact blocks: less halo); rows and columns
    are shared evenly among the blocks (see :func:`_parts`), so no sliver of a last block is left
    to run alone after the others (an image's share per thread: ``THREADS`` blocks, not two and a
    sliver)."""
    block_cols = min(n_cols, max(1, chips // max(1, min(min_rows, n_rows))))
    col_parts = _parts(n_cols, block_cols)
    block_rows = max(1, chips // max(stop - start for start, stop in col_parts))
    for i0, i1 in _parts(n_rows, block_rows):
        for j0, j1 in col_parts:
            yield slice(i0, i1), slice(j0, j1)


#: Largest share by which an even split may make blocks larger than asked, to save a block.
_BLOCK_SLACK = 0.1


def _parts(total: int, size: int) -> List[Tuple[int, int]]:
    """[start, stop) of the fewest near-equal parts of ``total`` no larger than ``size`` (or than
    ``size`` x (1 + ``_BLOCK_SLACK``) when that saves a part); sizes differ by at most one."""
    count = -(-total // size)
    if count > 1 and total <= (count - 1) * size * (1 + _BLOCK_SLACK):
        count -= 1
    bounds = [total * k // count for k in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def correlate_into_result(ref: PixelSource, sec: PixelSource, shape: Tuple[int, int], params: Params,
                          progress=None, is_canceled=None, cell_mask: Optional[CellMask] = None,
                          apriori: Optional[BlockApriori] = None) -> CorrelationResult:
    """:func:`run_blocks` into an in-memory result of the grid ``shape`` (rows, columns)."""
    result = CorrelationResult.empty(shape, params.forward_backward > 0, params.strain_bands)

    def store(rows: slice, cols: slice, block: CorrelationResult) -> None:
        for name, values in block.arrays().items():
            getattr(result, name)[rows, cols] = values

    run_blocks(ref, sec, shape[0], shape[1], params, store, progress, is_canceled, cell_mask, apriori)
    return result


def run_blocks(ref_source: PixelSource, sec_source: PixelSource, n_rows: int, n_cols: int, params: Params,
               sink: Sink, progress=None, is_canceled=None, cell_mask: Optional[CellMask] = None,
               apriori: Optional[BlockApriori] = None) -> None:
    """Read, correlate and hand over every block; ``THREADS`` blocks are computed at once.

    ``apriori(rows, cols)`` gives the expected (dx, dy) offsets (px, NaN =
    unknown) of a block's cells: the search windows are centred on their
    rounded values and the secondary is read with a halo covering them.

    Reading and the ``sink`` stay in the calling thread (rasterio datasets
    are not shared between threads); results reach the sink in block order,
    assembled into full-width strips (see ``_StripAssembler``).
    """
    # the displacement sweep shares work between overlapping chips: with small steps it wants
    # larger, square blocks (the least halo per chip: at step 1 about 24 % less sweep work than
    # strips one chip high); with steps of a quarter chip or more, full-width strips of the FFT
    # engine's size serve it well
    sweep = apriori is None and integer_engine(params.chip, params.search, params.step) == "sweep"
    dense = sweep and 4 * params.step < params.chip
    # every thread gets a block, even on small images
    chips = min(_chips_per_block(params, sweep), max(64, -(-n_rows * n_cols // THREADS)))
    min_rows = int(np.sqrt(chips)) if dense else 1
    blocks = list(_blocks(n_rows, n_cols, chips, min_rows))
    strips = _StripAssembler(n_rows, n_cols, params, sink)
    pending: deque = deque()
    done = 0
    with single_threaded_blas(), ThreadPoolExecutor(THREADS) as pool:
        try:
            for index, (rows, cols) in enumerate(blocks):
                check_canceled(is_canceled)
                mask = None if cell_mask is None else np.asarray(cell_mask(rows, cols), bool)
                if mask is not None and not mask.any():
                    pending.append((rows, cols, None))
                else:
                    centres, block_params = _block_centres(apriori, rows, cols, params)
                    data = _read_block(ref_source, sec_source, rows, cols, block_params)
                    pending.append((rows, cols, pool.submit(compute_cells, data, block_params, mask, centres)))
                while pending and (len(pending) >= THREADS or index == len(blocks) - 1):
                    rows_done, cols_done, future = pending.popleft()
                    shape = (rows_done.stop - rows_done.start, cols_done.stop - cols_done.start)
                    empty = future is None
                    strips.add(rows_done, cols_done, CorrelationResult.empty(
                        shape, params.forward_backward > 0, params.strain_bands) if empty else future.result())
                    done += 1
                    if progress is not None:
                        progress(100.0 * done / len(blocks))
        finally:
            for _, _, future in pending:
                if future is not None:
                    future.cancel()
    strips.finish()


def _block_centres(apriori: Optional[BlockApriori], rows: slice, cols: slice, params: Params
                   ) -> Tuple[Optional[np.ndarray], Params]:
    """Integer search centres (B, 2) as (dx, dy) of a block's chips (NaN a-priori -> 0) and
    the block's parameters with the secondary halo widened to cover them."""
    if apriori is None:
        return None, params
    dx, dy = apriori(rows, cols)
    expected = np.stack([np.ravel(dx), np.ravel(dy)], axis=1)
    centres = np.where(np.isfinite(expected), np.round(expected), 0.0).astype(np.intp)
    reach = int(np.abs(centres).max()) if centres.size else 0
    return centres, replace(params, apriori_halo=reach)


def _read_block(ref_source: PixelSource, sec_source: PixelSource, rows: slice, cols: slice,
                params: Params) -> BlockPixels:
    """Reference with ``SPLINE_MARGIN`` (the search halo with forward-backward) and the
    secondary with the search halo, plus the pre-filter margin and the chip ladder's margin,
    around a block of cells; with masking (``min_valid_fraction`` < 1) also their nodata."""
    row0, col0 = rows.start * params.step, cols.start * params.step
    row1 = (rows.stop - 1) * params.step + params.chip
    col1 = (cols.stop - 1) * params.step + params.chip
    m = params.filter_margin + ladder_margin(params)
    g = (params.halo if params.forward_backward > 0 else SPLINE_MARGIN) + m
    h = params.halo + m
    ref_window = (row0 - g, row1 + g, col0 - g, col1 + g)
    sec_window = (row0 - h, row1 + h, col0 - h, col1 + h)
    ref, ref_valid = ref_source.read(*ref_window)
    sec, sec_valid = sec_source.read(*sec_window)
    ref_nodata = sec_nodata = None
    if params.min_valid_fraction < 1:
        ref_nodata = ref_source.inside(*ref_window) & ~ref_valid
        sec_nodata = sec_source.inside(*sec_window) & ~sec_valid
    return BlockPixels(ref, ref_valid, ref_nodata, sec, sec_valid, sec_nodata)


class _StripAssembler:
    """Joins blocks into full-width strips of cells, applies the outlier tests of ``params`` —
    the normalised median test (``median_test``, 8 neighbours) and the displacement coherence test
    (``coherence``, :func:`quality.coherence_geometry` neighbourhood) — with the rows of context
    they need from the strips above and below, and hands each strip to ``sink`` once enough rows
    below it have arrived. Every cell is tested against unfiltered neighbours; rejected cells get
    the code of the first test they fail."""

    def __init__(self, n_rows: int, n_cols: int, params: Params, sink: Sink):
        self.n_cols = n_cols
        self.median = params.median_test
        self.coherence = params.coherence
        self.spacing, self.reach = coherence_geometry(params.chip, params.step)
        self.context = max(1 if self.median > 0 else 0, self.spacing * self.reach if self.coherence > 0 else 0)
        self.sink = sink
        self.parts: List[CorrelationResult] = []
        self.width = 0
        self.held: Deque[Tuple[slice, CorrelationResult]] = deque()
        self.above: Optional[CorrelationResult] = None  # up to ``context`` unfiltered rows above ``held``

    def add(self, rows: slice, cols: slice, block: CorrelationResult) -> None:
        self.parts.append(block)
        self.width += cols.stop - cols.start
        if self.width < self.n_cols:
            return
        strip = CorrelationResult.side_by_side(self.parts)
        self.parts, self.width = [], 0
        if self.context == 0:
            self.sink(rows, slice(0, self.n_cols), strip)
            return
        self.held.append((rows, strip))
        self._release(final=False)

    def finish(self) -> None:
        self._release(final=True)

    def _release(self, final: bool) -> None:
        """Filter and hand over the held strips that have ``context`` rows below them (all when ``final``)."""
        while self.held:
            below = sum(strip.dx.shape[0] for _, strip in list(self.held)[1:])
            if not final and below < self.context:
                return
            rows, strip = self.held.popleft()
            stack = [self.above] if self.above is not None else []
            stack += [strip] + [later for _, later in self.held]
            dx = np.concatenate([part.dx for part in stack])
            dy = np.concatenate([part.dy for part in stack])
            first = 0 if self.above is None else self.above.dx.shape[0]
            own = slice(first, first + strip.dx.shape[0])
            # before filtering: every cell is tested against unfiltered neighbours
            self.above = _last_rows(CorrelationResult.stacked(
                [part for part in (self.above, strip) if part is not None]), self.context)
            if self.median > 0:
                strip.reject(normalised_median_test(dx, dy, self.median)[own], REASON_MEDIAN_TEST)
            if self.coherence > 0:
                strip.reject(displacement_coherence_test(dx, dy, self.coherence, self.spacing, self.reach)[own],
                             REASON_COHERENCE_TEST)
            strip.blank_invalid()
            self.sink(rows, slice(0, self.n_cols), strip)


def _last_rows(result: CorrelationResult, count: int) -> CorrelationResult:
    """A copy of the last ``count`` rows of cells."""
    return CorrelationResult(**{name: values[-count:].copy() for name, values in result.arrays().items()})
