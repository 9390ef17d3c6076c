"""Displacement-sweep integer search: one pass per integer offset shared by all chips.

For every integer offset dx = u - S, dy = v - S (px, + right, + down) in the
search range the product of the (block-demeaned) reference with the secondary
shifted by v rows and u columns is box-summed over the chip footprint for all
chips of a block at once (OpenCV's SIMD multiply, area resize and box filter,
float32). Overlapping chips (step < chip) share this work, which the per-chip
FFT engine (core.offsets.engine.search) repeats for every chip. With the
chip's template mean m_b and norm ||t_b - m_b|| and the footprint's norm
||s - m_s|| (from the secondary's summed-area tables),

    ZNCC = (sum(a * s) - m_b * sum(s)) / (||t_b - m_b|| ||s - m_s||),

where ``a`` is the demeaned reference. Each row of offsets is normalised as
soon as it is summed, straight into the (2S+1, 2S+1, B) float32 volume of
core.offsets.peaks, so the integer peak, quality bands, sub-pixel fits and
validity rules are those of the FFT engine.
"""
from __future__ import annotations

import importlib.util
import threading
from contextlib import contextmanager
from typing import Callable, Tuple

import numpy as np

from ..choices import Choices
from .peaks import EXCLUDED
from .sweep_kernel import sweep_volume_compiled

#: Relative cost of the two integer-search engines per chip, calibrated on this
#: project's bench (2-core x86-64, OpenCV 4.6, scipy.fft): the sweep costs about
#: (2S+1)^2 * step^2 pixel operations per chip, the FFT about 3 transforms of the
#: padded search window; the sweep is chosen when its estimate is smaller.
_SWEEP_COST_PER_PIXEL = 1.0
_FFT_COST_PER_PIXEL = 0.85

#: Relative variance below which a template or footprint counts as texture-less.
FLAT_RELATIVE_VARIANCE = 1e-10

#: Integer-search engines (value, label); "auto" picks the cheaper one (see ``sweep_is_cheaper``).
ENGINES = Choices(("auto", "Automatic (the cheaper for the chip overlap)"), ("fft", "Per-chip FFT"),
                  ("sweep", "Displacement sweep (shared by overlapping chips)"))
#: The engine used (one of ``ENGINES``).
ENGINE = "auto"


def integer_engine(chip: int, search: int, step: int, engine: str = "") -> str:
    """The engine ("fft" or "sweep") used for this chip size, search range (px) and step (px).

    ``engine`` (default: the module setting ``ENGINE``) forces "fft" or "sweep";
    "auto" picks the cheaper. The sweep needs OpenCV; without it the FFT is used.
    """
    engine = ENGINES.check(engine or ENGINE, "correlation engine")
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


def sweep_volume(ref: np.ndarray, sec: np.ndarray, first: int, chip: int, search: int, step: int,
                 n_rows: int, n_cols: int, window_sums: np.ndarray, inverse_deviation: np.ndarray,
                 excluded: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZNCC of every chip at every integer offset, in the layout of ``core.offsets.peaks``.

    ``ref``: the block's reference pixels, chip (i, j) at ``ref[i*step:, j*step:]``
    (at least ``(n_rows-1)*step + chip`` rows and the matching columns);
    ``sec``: the secondary, chip (i, j) at offset (v, u) (v, u in [0, 2S])
    covering ``sec[first + i*step + v:, first + j*step + u:]``, i.e. the offset
    dx = u - S, dy = v - S px (+ right, + down). ``window_sums``,
    ``inverse_deviation`` and ``excluded``: per chip-sized footprint of ``sec``
    (indexed by its first pixel) the sum, 1 / sqrt(sum of squared deviations
    from its mean) and whether it is unusable (nodata, flat).

    Returns the float32 volume (2S+1, 2S+1, n_rows*n_cols) with excluded
    positions at ``core.offsets.peaks.EXCLUDED``, which chips have texture (B,) and the
    number of excluded positions per chip (B,). Products are float32 (OpenCV's
    box filter accumulates them in float64); template moments are float64.
    """
    import cv2

    height = (n_rows - 1) * step + chip
    width = (n_cols - 1) * step + chip
    reference = np.asarray(ref[:height, :width], np.float64)
    a64 = reference - reference.mean()
    a = a64.astype(np.float32)
    s = np.ascontiguousarray(sec, np.float32)
    span = 2 * search + 1
    count = n_rows * n_cols
    cell, cells, area, chip_sums = _chip_summer(chip, step, n_rows, n_cols)

    with single_threaded_opencv():
        moments = np.stack([a64, a64 * a64, reference * reference])
        if cell > 1:
            moments = moments.reshape(3, cells[0], cell, cells[1], cell).sum(axis=(2, 4))
        template_sum, template_energy, raw_energy = chip_sums(moments).reshape(3, count)
        n = chip * chip
        centred_energy = template_energy - template_sum * template_sum / n
        textured = centred_energy > FLAT_RELATIVE_VARIANCE * raw_energy
        with np.errstate(divide="ignore", over="ignore"):  # flat chips of a zero image
            inverse_norm = np.where(textured, 1.0 / np.sqrt(np.where(textured, centred_energy, 1.0)), 0.0)
        inverse_norm[~np.isfinite(inverse_norm)] = 0.0
        any_excluded = bool(excluded[first:, first:].any())
        volume = np.empty((span, span, count), np.float32)
        if sweep_volume_compiled(a, s, first, chip, step, cell, n_rows, n_cols, window_sums,
                                 np.where(excluded, 0.0, inverse_deviation), np.where(excluded, EXCLUDED, 0.0),
                                 template_sum / n, inverse_norm, volume):
            return volume, textured, _excluded_counts(excluded, any_excluded, first, span, step, n_rows, n_cols)
        sums32 = np.asarray(window_sums, np.float32)
        inverse32 = np.where(excluded, 0.0, inverse_deviation).astype(np.float32)
        penalty = np.where(excluded, EXCLUDED, 0.0).astype(np.float32) if any_excluded else None
        # cell sums are INTER_AREA means (sum / area): scale the template terms instead of every product
        template_mean = (template_sum / n / area).astype(np.float32).reshape(n_rows, n_cols)
        inverse_norm = (inverse_norm * area).astype(np.float32).reshape(n_rows, n_cols)
        crosses = np.empty((span,) + cells, np.float32)
        product = np.empty((height, width), np.float32) if cell > 1 else None
        centred = np.empty((span, n_rows, n_cols), np.float32)
        for v in range(span):
            for u in range(span):
                shifted = s[first + v:first + v + height, first + u:first + u + width]
                if cell > 1:
                    cv2.multiply(a, shifted, dst=product)
                    cv2.resize(product, cells[::-1], dst=crosses[u], interpolation=cv2.INTER_AREA)
                else:
                    cv2.multiply(a, shifted, dst=crosses[u])
            # (sum(a s) - m_t sum(s)) / ||t - m_t|| / ||s - m_s||, for the 2S+1 offsets u of row v
            row = volume[v].reshape(span, n_rows, n_cols)
            np.multiply(_offset_view(sums32, first + v, first, span, n_rows, n_cols, step), template_mean,
                        out=centred)
            np.copyto(row, chip_sums(crosses))
            row -= centred
            row *= _offset_view(inverse32, first + v, first, span, n_rows, n_cols, step)
            row *= inverse_norm
            if penalty is not None:
                row += _offset_view(penalty, first + v, first, span, n_rows, n_cols, step)
    return volume, textured, _excluded_counts(excluded, any_excluded, first, span, step, n_rows, n_cols)


def _excluded_counts(excluded: np.ndarray, any_excluded: bool, first: int, span: int, step: int, n_rows: int,
                     n_cols: int) -> np.ndarray:
    """Excluded positions per chip (B,) int64 of the sweep's search windows (``excluded``: per
    footprint by its first pixel; the windows of chip (i, j) start at ``first + (i, j) * step``)."""
    if not any_excluded:
        return np.zeros(n_rows * n_cols, np.int64)
    totals = box_sums(excluded, span)
    return totals[first:first + (n_rows - 1) * step + 1:step,
                  first:first + (n_cols - 1) * step + 1:step].astype(np.int64).ravel()


def masked_sweep_volume(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray,
                        hard: np.ndarray, first: int, chip: int, search: int, step: int, n_rows: int,
                        n_cols: int, min_count: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`sweep_volume` over the pixels valid in both the template and each shifted footprint.

    Masked ZNCC (Padfield 2012): for every offset the products of the reference
    mask, masked reference a and a^2 with the shifted secondary mask, masked
    secondary s and s^2 (six products) are box-summed per chip, giving the overlap
    count N and the sums of a, a^2, s, s^2 and a s over the overlap, and

        ZNCC = (sum as - sum a sum s / N) / sqrt((sum a^2 - (sum a)^2 / N) (sum s^2 - (sum s)^2 / N)).

    ``ref_valid`` / ``sec_valid`` flag the pixels used (bool, shapes of ``ref`` / ``sec``);
    ``hard`` (bool, per chip-sized footprint of ``sec`` by its first pixel) the footprints
    touching pixels outside the image, which are excluded, as are positions with N below
    ``min_count`` or a flat overlap. Same layout and returns as :func:`sweep_volume`;
    products and sums are float64 (six times the work of the plain sweep).
    """
    import cv2

    height = (n_rows - 1) * step + chip
    width = (n_cols - 1) * step + chip
    mask = np.asarray(ref_valid[:height, :width], bool)
    reference = np.asarray(ref[:height, :width], np.float64)
    mean = reference[mask].mean() if mask.any() else 0.0
    m_r = mask.astype(np.float64)
    a = (reference - mean) * m_r
    a2 = a * a
    m_s = np.ascontiguousarray(sec_valid, np.float64)
    s1 = np.asarray(sec, np.float64) * m_s
    s2 = s1 * s1
    span = 2 * search + 1
    count = n_rows * n_cols
    cell, cells, area, chip_sums = _chip_summer(chip, step, n_rows, n_cols)

    def at_chips(image: np.ndarray) -> np.ndarray:
        return box_sums(image, chip)[::step, ::step][:n_rows, :n_cols].ravel()

    n_t = at_chips(m_r)
    centred_energy = at_chips(a2) - at_chips(a) ** 2 / np.maximum(n_t, 1.0)
    textured = (n_t > 0) & (centred_energy > FLAT_RELATIVE_VARIANCE * at_chips(reference * reference * m_r))
    # pairs (reference image, secondary image) whose shifted products are summed
    pairs = ((m_r, m_s), (a, m_s), (a2, m_s), (m_r, s1), (m_r, s2), (a, s1))
    volume = np.empty((span, span, count), np.float32)
    crosses = np.empty((len(pairs), span) + cells, np.float64)
    product = np.empty((height, width), np.float64)
    hard_u8 = hard.astype(np.uint8)
    with single_threaded_opencv():
        for v in range(span):
            for u in range(span):
                window = (slice(first + v, first + v + height), slice(first + u, first + u + width))
                for q, (left, right) in enumerate(pairs):
                    cv2.multiply(left, right[window], dst=product)
                    if cell > 1:
                        cv2.resize(product, cells[::-1], dst=crosses[q, u], interpolation=cv2.INTER_AREA)
                    else:
                        crosses[q, u] = product
            n, sum_a, sum_aa, sum_s, sum_ss, sum_as = chip_sums(crosses)
            n = np.round(n * area)
            with np.errstate(divide="ignore", invalid="ignore"):
                safe = np.maximum(n, 1.0) / area
                var_a = sum_aa - sum_a * sum_a / safe
                var_s = sum_ss - sum_s * sum_s / safe
                zncc = (sum_as - sum_a * sum_s / safe) / np.sqrt(var_a * var_s)
            excluded = (_offset_view(hard_u8, first + v, first, span, n_rows, n_cols, step) > 0) | (n < min_count)
            excluded |= ~(var_a > FLAT_RELATIVE_VARIANCE * sum_aa) | ~(var_s > FLAT_RELATIVE_VARIANCE * sum_ss)
            volume[v] = np.where(excluded, EXCLUDED, np.clip(zncc, -1.0, 1.0)).reshape(span, count)
    n_excluded = (volume < EXCLUDED / 2).sum(axis=(0, 1)).astype(np.int64)
    return volume, textured, n_excluded


def _chip_summer(chip: int, step: int, n_rows: int, n_cols: int
                 ) -> Tuple[int, Tuple[int, int], float, Callable[[np.ndarray], np.ndarray]]:
    """How a sweep sums products over chips: products are first reduced to cells of cell x cell
    pixels (cell = step when it divides the chip, INTER_AREA means of ``area`` pixels), then
    ``chip_sums`` maps (..., cells) panels to (..., n_rows, n_cols) chip sums (of cell means) with
    one box filter over all panels. Returns (cell, cells shape, area, chip_sums)."""
    import cv2

    height = (n_rows - 1) * step + chip
    width = (n_cols - 1) * step + chip
    cell = step if step > 1 and chip % step == 0 else 1
    k = chip // cell
    reach_r, reach_c = (n_rows - 1) * step // cell + 1, (n_cols - 1) * step // cell + 1

    def chip_sums(sums: np.ndarray) -> np.ndarray:
        lead = sums.shape[:-2]
        boxed = cv2.boxFilter(sums.reshape(-1, sums.shape[-1]), -1, (k, k), normalize=False, anchor=(0, 0),
                              borderType=cv2.BORDER_CONSTANT)
        boxed = boxed.reshape(lead + sums.shape[-2:])  # a footprint never crosses panels
        return boxed[..., :reach_r:step // cell, :reach_c:step // cell]

    return cell, (height // cell, width // cell), float(cell * cell), chip_sums


def _offset_view(values: np.ndarray, row: int, col: int, span: int, n_rows: int, n_cols: int,
                 step: int) -> np.ndarray:
    """(span, n_rows, n_cols) view of ``values[row + i*step, col + j*step + u]`` for u in [0, span)."""
    origin = values[row:, col:]
    row_stride, col_stride = origin.strides
    return np.lib.stride_tricks.as_strided(origin, (span, n_rows, n_cols),
                                           (col_stride, row_stride * step, col_stride * step), writeable=False)


_opencv_threads_lock = threading.Lock()
_opencv_single_users = 0
_opencv_threads_before = 0


@contextmanager
def single_threaded_opencv():
    """OpenCV's own thread pool costs more than it gains on these small images (and the
    engine already runs blocks in parallel): one thread while any block runs, then restored.
    Re-entrant; does nothing without OpenCV."""
    try:
        import cv2
    except ImportError:
        yield
        return

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


def box_sums(image: np.ndarray, size: int) -> np.ndarray:
    """Sums over every size x size footprint, indexed by its first pixel: shape (H - size + 1, W - size + 1).

    From a summed-area table: float64 (int32 counts for a bool image), by
    OpenCV's ``integral`` when it is installed (numpy's two cumulative sums otherwise).
    """
    image = np.asarray(image)
    counting = image.dtype == bool
    if counting and not image.any():
        return np.zeros((image.shape[0] - size + 1, image.shape[1] - size + 1), np.int32)
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        if counting:
            table = cv2.integral(image.view(np.uint8), sdepth=cv2.CV_32S)
        else:
            table = cv2.integral(np.asarray(image, np.float64), sdepth=cv2.CV_64F)
    else:
        table = np.zeros((image.shape[0] + 1, image.shape[1] + 1), np.int32 if counting else np.float64)
        np.cumsum(image, axis=0, out=table[1:, 1:])
        np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
