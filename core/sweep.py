"""Displacement-sweep numerator of the ZNCC: one pass per integer offset shared by all chips.

For every integer offset (dy, dx) = (v - S, u - S) in the search range the
product of the (globally demeaned) reference with the secondary shifted by
(v, u) is box-summed over the chip footprint for all chips of a block at once
(OpenCV's SIMD box filter / area resize). Overlapping chips (step < chip)
share this work, which the per-chip FFT engine (core.correlate) repeats for
every chip. With the chip's template mean m_b and norm ||t_b - m_b||, the
cross-correlation of the zero-mean unit template with the secondary window is

    (sum(a * s) - m_b * sum(s)) / ||t_b - m_b||,

where ``a`` is the demeaned reference and the window sum ``sum(s)`` comes from
the summed-area tables the engine already computes for the ZNCC denominator.
The result is the same (B, 2S+1, 2S+1) volume as the FFT engine's, so the
integer peak, quality bands, sub-pixel fits and validity rules stay those of
core.correlate.
"""
from __future__ import annotations

import importlib.util
import threading
from contextlib import contextmanager
from typing import Optional

import numpy as np

#: Relative cost of the two integer-search engines per chip, calibrated on this
#: project's bench (2-core x86-64, OpenCV 4.6, scipy.fft): the sweep costs about
#: (2S+1)^2 * step^2 pixel operations per chip, the FFT about 3 transforms of the
#: padded search window; the sweep is chosen when its estimate is smaller.
_SWEEP_COST_PER_PIXEL = 1.0
_FFT_COST_PER_PIXEL = 0.85

#: Integer-search engine: "auto" (the cheaper one, see ``sweep_is_cheaper``), "fft" or "sweep".
ENGINES = ("auto", "fft", "sweep")
ENGINE = "auto"


def integer_engine(chip: int, search: int, step: int, engine: str = "") -> str:
    """The engine ("fft" or "sweep") used for this chip size, search range (px) and step (px).

    ``engine`` (default: the module setting ``ENGINE``) forces "fft" or "sweep";
    "auto" picks the cheaper. The sweep needs OpenCV; without it the FFT is used.
    """
    engine = engine or ENGINE
    if engine not in ENGINES:
        raise ValueError(f"Unknown correlation engine '{engine}'; use one of {', '.join(ENGINES)}.")
    if engine == "auto":
        engine = "sweep" if sweep_is_cheaper(chip, search, step) else "fft"
    if engine == "sweep" and importlib.util.find_spec("cv2") is None:
        return "fft"
    return engine


def sweep_is_cheaper(chip: int, search: int, step: int) -> bool:
    """True when the displacement sweep is expected to beat the per-chip FFT.

    Sweep: (2S+1)^2 shifts, each touching ~max(step, 1)^2 product pixels per
    chip (a chip per step^2 image pixels). FFT: three transforms of an N x N
    window (N = chip + 2S) per chip, ~N^2 log2 N each.
    """
    window = chip + 2 * search
    sweep = _SWEEP_COST_PER_PIXEL * (2 * search + 1) ** 2 * step * step
    fft = _FFT_COST_PER_PIXEL * 3 * window * window * np.log2(window)
    return sweep < fft


def sweep_numerator(ref: np.ndarray, sec: np.ndarray, first: int, chip: int, search: int, step: int,
                    n_rows: int, n_cols: int, window_sums: Optional[np.ndarray] = None) -> np.ndarray:
    """Cross-correlation of each chip's zero-mean unit template with its search window.

    ``ref``: the block's reference pixels, chip (i, j) at ``ref[i*step:, j*step:]``
    (at least ``(n_rows-1)*step + chip`` rows and the matching columns);
    ``sec``: the secondary, chip (i, j) at offset (v, u) (v, u in [0, 2S])
    covering ``sec[first + i*step + v:, first + j*step + u:]``. Offsets are
    (dy, dx) = (v - S, u - S) px, + down / + right. Returns float64 (so results do not
    depend on the block layout through float32 rounding)
    (n_rows*n_cols, 2S+1, 2S+1); chips without texture get 0 (the caller
    flags them from the template energy). ``window_sums``: the sums of ``sec``
    over every chip-sized footprint, indexed by its first pixel, when the
    caller has them already.
    """
    import cv2

    height = (n_rows - 1) * step + chip
    width = (n_cols - 1) * step + chip
    a = np.asarray(ref[:height, :width], np.float64)
    a = (a - a.mean())
    s = np.ascontiguousarray(sec, np.float64)
    span = 2 * search + 1
    # chip sums = sums of k x k cells of cell x cell pixels (cell = step when it divides the chip)
    cell = step if step > 1 and chip % step == 0 else 1
    k = chip // cell
    cells = (height // cell, width // cell)
    area = float(cell * cell)

    def cell_sums(image: np.ndarray, out: np.ndarray) -> None:
        if cell > 1:
            cv2.resize(image, cells[::-1], dst=out, interpolation=cv2.INTER_AREA)
        else:
            out[...] = image

    def chip_sums(sums: np.ndarray) -> np.ndarray:
        """(..., cells) -> (..., n_rows, n_cols) chip sums, with one box filter over all panels."""
        lead = sums.shape[:-2]
        stacked = sums.reshape(-1, cells[1])
        boxed = cv2.boxFilter(stacked, -1, (k, k), normalize=False, anchor=(0, 0),
                              borderType=cv2.BORDER_CONSTANT)
        boxed = boxed.reshape(lead + cells)  # a footprint never crosses panels: they are as tall as needed
        reach_r, reach_c = (n_rows - 1) * step // cell + 1, (n_cols - 1) * step // cell + 1
        return boxed[..., :reach_r:step // cell, :reach_c:step // cell] * area

    with _single_threaded_opencv():
        moments = np.empty((2,) + cells, np.float64)
        cell_sums(a, moments[0])
        cell_sums(a * a, moments[1])
        template_sum, template_energy = chip_sums(moments).astype(np.float64)
        crosses = np.empty((span, span) + cells, np.float64)
        product = np.empty((height, width), np.float64)
        for v in range(span):
            for u in range(span):
                shifted = s[first + v:first + v + height, first + u:first + u + width]
                if cell > 1:
                    cv2.multiply(a, shifted, dst=product)
                    cell_sums(product, crosses[v, u])
                else:
                    cv2.multiply(a, shifted, dst=crosses[v, u])
        crosses = chip_sums(crosses)
    n = chip * chip
    centred_energy = template_energy - template_sum * template_sum / n
    inverse_norm = np.where(centred_energy > 0, 1.0 / np.sqrt(np.maximum(centred_energy, 1e-300)), 0.0)
    template_mean = (template_sum / n)
    # window sums of every chip at every offset, as a (span, span, n_rows, n_cols) view
    if window_sums is None:
        window_sums = _window_sums(s, chip)
    origin = window_sums[first:, first:]
    row_stride, col_stride = origin.strides
    sums = np.lib.stride_tricks.as_strided(
        origin, (span, span, n_rows, n_cols), (row_stride, col_stride, row_stride * step, col_stride * step),
        writeable=False)
    crosses -= template_mean * sums
    crosses *= inverse_norm
    return np.ascontiguousarray(crosses.reshape(span, span, n_rows * n_cols).transpose(2, 0, 1))


_opencv_threads_lock = threading.Lock()
_opencv_single_users = 0
_opencv_threads_before = 0


@contextmanager
def _single_threaded_opencv():
    """OpenCV's own thread pool costs more than it gains on these small images (and the
    engine already runs blocks in parallel): one thread while any sweep runs, then restored."""
    import cv2

    global _opencv_single_users, _opencv_threads_before
    with _opencv_threads_lock:
        if _opencv_single_users == 0:
            _opencv_threads_before = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _opencv_single_users += 1
    try:
        yield
    finally:
        with _opencv_threads_lock:
            _opencv_single_users -= 1
            if _opencv_single_users == 0:
                cv2.setNumThreads(_opencv_threads_before)


def _window_sums(image: np.ndarray, size: int) -> np.ndarray:
    """Float64 sums over every size x size footprint, indexed by its first pixel."""
    table = np.zeros((image.shape[0] + 1, image.shape[1] + 1), np.float64)
    np.cumsum(image, axis=0, dtype=np.float64, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
