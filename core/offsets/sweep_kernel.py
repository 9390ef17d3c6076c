"""Compiled kernel of the plain displacement sweep (:func:`core.offsets.sweep.sweep_volume`), numba when installed.

numba is imported lazily, on the first sweep; without it (or with
``USE_NUMBA = False``) :func:`sweep_volume_compiled` returns False and the
sweep runs its OpenCV/numpy implementation, which gives the same ZNCC (to
float32 rounding, ~1e-7). Per integer offset (v, u) the kernel fuses what the
OpenCV path does in several passes over the block: the product of the
demeaned reference with the shifted secondary, its sums over cells of
``cell`` x ``cell`` pixels (float32 products summed in float32 over the
cell's rows, as OpenCV's area resize does; single-pixel cells in float64),
a float64 summed-area table of the cells (or running sums), each chip's sum
from it and the normalisation

    ZNCC = (sum(a * s) - m_b * sum(s)) * inverse_deviation * inverse_norm_b (+ the exclusion penalty),

written straight into the contiguous row ``volume[v, u, :]`` of the
(2S+1, 2S+1, B) float32 volume of :mod:`core.offsets.peaks`. Offsets: dx = u - S,
dy = v - S px (+ right, + down).
"""
from __future__ import annotations

import numpy as np

from .jit import LazyKernel

#: Use the compiled kernel when numba is installed (tests switch it off to compare).
USE_NUMBA = True


def sweep_volume_compiled(a: np.ndarray, s: np.ndarray, first: int, chip: int, step: int, cell: int,
                          n_rows: int, n_cols: int, window_sums: np.ndarray, inverse_deviation: np.ndarray,
                          penalty: np.ndarray, template_mean: np.ndarray, inverse_norm: np.ndarray,
                          volume: np.ndarray) -> bool:
    """Fill ``volume`` (2S+1, 2S+1, B) float32 with the ZNCC of every chip at every offset; False
    (nothing done) without numba or with ``USE_NUMBA`` off.

    ``a``: the demeaned reference of the block's chips (float32, (n_rows-1)*step + chip rows,
    likewise columns); ``s``: the secondary (float32), chip (i, j) at offset (v, u) covering
    ``s[first + i*step + v:, first + j*step + u:]``; ``cell``: pixels per cell side (divides
    ``chip`` and ``step``); ``window_sums``, ``inverse_deviation`` (0 where excluded) and
    ``penalty`` (``EXCLUDED`` where excluded, else 0): float64 per chip-sized footprint of ``s``
    by its first pixel; ``template_mean`` (B,) the chips' mean of ``a`` and ``inverse_norm``
    (B,) 1 / ||a_b - mean|| (0 for flat chips), float64.
    """
    kernel = _kernel() if USE_NUMBA else None
    if kernel is None:
        return False
    kernel(np.ascontiguousarray(a, np.float32), np.ascontiguousarray(s, np.float32), int(first), int(chip),
           int(step), int(cell), int(n_rows), int(n_cols), np.ascontiguousarray(window_sums, np.float64),
           np.ascontiguousarray(inverse_deviation, np.float64), np.ascontiguousarray(penalty, np.float64),
           np.ascontiguousarray(template_mean, np.float64), np.ascontiguousarray(inverse_norm, np.float64),
           volume)
    return True


def _sweep(a, s, first, chip, step, cell, n_rows, n_cols, window_sums, inverse_deviation, penalty,
           template_mean, inverse_norm, volume):  # pragma: no cover (compiled)
    """Numba body of :func:`sweep_volume_compiled` (results written into ``volume``): cells of one
    pixel go to :func:`_sweep_pixels`, larger cells through a summed-area table of the cells."""
    if cell == 1:
        _sweep_pixels(a, s, first, chip, step, n_rows, n_cols, window_sums, inverse_deviation, penalty,
                      template_mean, inverse_norm, volume)
        return
    span = volume.shape[0]
    height, width = a.shape
    cell_rows = height // cell
    cell_cols = width // cell
    k = chip // cell
    stride = step // cell
    tables = np.zeros((span, cell_rows + 1, cell_cols + 1))
    line = np.empty(width, np.float32)
    for v in range(span):
        # cell rows outermost: the cell's reference and secondary rows stay in cache for every u
        for r in range(cell_rows):
            for u in range(span):
                line[:] = 0.0
                row0 = r * cell
                i = 0
                while i + 4 <= cell:  # four rows a pass: fewer loads and stores of ``line``
                    _add_four_products(line, a, s, row0 + i, first + v + row0 + i, first + u)
                    i += 4
                while i < cell:
                    a_row = a[row0 + i]
                    s_row = s[first + v + row0 + i, first + u:first + u + width]
                    c = 0
                    while c < width:  # (a while loop: numba's range loops do not vectorise here)
                        line[c] += a_row[c] * s_row[c]
                        c += 1
                    i += 1
                above = tables[u, r]
                below = tables[u, r + 1]
                running = 0.0
                for cc in range(cell_cols):
                    total = 0.0
                    for j in range(cell):
                        total += line[cc * cell + j]
                    running += total
                    below[cc + 1] = above[cc + 1] + running
        for u in range(span):
            table = tables[u]
            out = volume[v, u]
            for i in range(n_rows):
                r0 = i * stride
                row = first + v + i * step
                top_row = table[r0]
                bottom_row = table[r0 + k]
                sums_row = window_sums[row]
                inverse_row = inverse_deviation[row]
                penalty_row = penalty[row]
                for j in range(n_cols):
                    c0 = j * stride
                    col = first + u + j * step
                    box = bottom_row[c0 + k] - top_row[c0 + k] - bottom_row[c0] + top_row[c0]
                    b = i * n_cols + j
                    out[b] = ((box - sums_row[col] * template_mean[b]) * inverse_row[col] * inverse_norm[b]
                              + penalty_row[col])


def _add_four_products(line, a, s, a_row0, s_row0, s_col0):  # pragma: no cover (compiled)
    """Adds the products of reference rows a_row0 .. a_row0 + 3 with the secondary rows s_row0 ..
    s_row0 + 3 (from column ``s_col0``) to ``line`` (float32), column by column."""
    width = line.shape[0]
    a0 = a[a_row0]
    a1 = a[a_row0 + 1]
    a2 = a[a_row0 + 2]
    a3 = a[a_row0 + 3]
    s0 = s[s_row0, s_col0:s_col0 + width]
    s1 = s[s_row0 + 1, s_col0:s_col0 + width]
    s2 = s[s_row0 + 2, s_col0:s_col0 + width]
    s3 = s[s_row0 + 3, s_col0:s_col0 + width]
    c = 0
    while c < width:
        line[c] += a0[c] * s0[c] + a1[c] * s1[c] + a2[c] * s2[c] + a3[c] * s3[c]
        c += 1


def _sweep_pixels(a, s, first, chip, step, n_rows, n_cols, window_sums, inverse_deviation, penalty,
                  template_mean, inverse_norm, volume):  # pragma: no cover (compiled)
    """The sweep without cells (step 1, or a step that does not divide the chip): per offset the
    vertical chip sums of the products of every chip row (running: rows entering minus rows
    leaving), then horizontal prefix sums of four rows at a time (four independent chains)."""
    span = volume.shape[0]
    width = a.shape[1]
    column = np.zeros(width)
    boxes = np.empty((n_rows, width))
    prefix = np.zeros((4, width + 1))
    running = step < chip
    for v in range(span):
        for u in range(span):
            s0 = first + u
            column[:] = 0.0
            _add_rows(column, a, s, 0, chip, first + v, s0, 1.0)
            boxes[0, :] = column
            for i in range(1, n_rows):
                if running:
                    _add_rows(column, a, s, (i - 1) * step, i * step, first + v, s0, -1.0)
                    _add_rows(column, a, s, (i - 1) * step + chip, i * step + chip, first + v, s0, 1.0)
                else:
                    column[:] = 0.0
                    _add_rows(column, a, s, i * step, i * step + chip, first + v, s0, 1.0)
                boxes[i, :] = column
            out = volume[v, u]
            for i0 in range(0, n_rows, 4):
                rows = min(4, n_rows - i0)
                if rows == 4:
                    b0 = boxes[i0]
                    b1 = boxes[i0 + 1]
                    b2 = boxes[i0 + 2]
                    b3 = boxes[i0 + 3]
                    p0 = p1 = p2 = p3 = 0.0
                    for c in range(width):
                        p0 += b0[c]
                        p1 += b1[c]
                        p2 += b2[c]
                        p3 += b3[c]
                        prefix[0, c + 1] = p0
                        prefix[1, c + 1] = p1
                        prefix[2, c + 1] = p2
                        prefix[3, c + 1] = p3
                else:
                    for q in range(rows):
                        line = boxes[i0 + q]
                        total = 0.0
                        for c in range(width):
                            total += line[c]
                            prefix[q, c + 1] = total
                for q in range(rows):
                    _normalised_rows(out, prefix[q], i0 + q, first + v, s0, chip, step, n_cols, window_sums,
                                     inverse_deviation, penalty, template_mean, inverse_norm)


def _add_rows(column, a, s, start, stop, s_row0, s_col0, sign):  # pragma: no cover (compiled)
    """Adds ``sign`` x the products of reference rows start .. stop - 1 with the secondary rows
    ``s_row0`` + the same, from column ``s_col0``, to ``column`` (per column, float64)."""
    width = column.shape[0]
    for r in range(start, stop):
        a_row = a[r]
        s_row = s[s_row0 + r, s_col0:s_col0 + width]
        c = 0
        while c < width:  # (a while loop: numba's range loops do not vectorise here)
            column[c] += sign * (np.float64(a_row[c]) * np.float64(s_row[c]))
            c += 1


def _normalised_rows(out, prefix, i, s_row0, s_col0, chip, step, n_cols, window_sums, inverse_deviation, penalty,
                     template_mean, inverse_norm):  # pragma: no cover (compiled)
    """ZNCC of the chips of grid row ``i`` at one offset into ``out`` (B,), from the horizontal
    ``prefix`` sums of their vertical chip sums; the footprint of chip (i, j) starts at
    (``s_row0`` + i step, ``s_col0`` + j step)."""
    row = s_row0 + i * step
    sums_row = window_sums[row]
    inverse_row = inverse_deviation[row]
    penalty_row = penalty[row]
    base = i * n_cols
    for j in range(n_cols):
        c0 = j * step
        col = s_col0 + c0
        b = base + j
        out[b] = ((prefix[c0 + chip] - prefix[c0] - sums_row[col] * template_mean[b]) * inverse_row[col]
                  * inverse_norm[b] + penalty_row[col])


#: The helpers as written (``_kernel`` binds the module names to their compiled versions).
_add_rows_py = _add_rows
_normalised_rows_py = _normalised_rows
_sweep_pixels_py = _sweep_pixels
_add_four_products_py = _add_four_products

#: The kernel, compiled on first use.
_kernel = LazyKernel(globals(), _sweep, ("_add_rows", "_normalised_rows", "_sweep_pixels", "_add_four_products"), fastmath=True)
