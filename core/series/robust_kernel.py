"""Compiled robust loop of the network inversion (:func:`core.series.inversion.invert`), numba when installed.

One pixel column at a time: Tukey weights from the column's standardised residuals, the column's normal
matrix built from the pairs' spans only (a pair's row of A is zero outside the steps it overlaps), a
Cholesky solve, until the column's own mean |change| is below the tolerance times its mean |v| (the numpy loop of
:func:`core.series.inversion.robust_loop` does the same with batched solves). Without numba (or with
``USE_NUMBA = False``) :func:`robust_loop_compiled` returns None and the numpy loop runs.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import numpy as np

from ..offsets.jit import LazyKernel

#: Use the compiled loop when numba is installed (tests switch it off to compare).
USE_NUMBA = True
#: Fewest columns per thread (the columns are split evenly over the cores).
_MIN_TASK_COLUMNS = 256


def spans(a: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(first, last + 1) step index of each row's non-zero entries (a pair overlaps contiguous steps)."""
    nonzero = a > 0
    first = np.argmax(nonzero, axis=1)
    last = a.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    empty = ~nonzero.any(axis=1)
    first[empty], last[empty] = 0, 0
    return first.astype(np.int64), last.astype(np.int64)


def robust_loop_compiled(a: np.ndarray, y: np.ndarray, v: np.ndarray, weights: np.ndarray,
                         reg: np.ndarray, tolerance: float, max_iterations: int, c: float, mad_to_sigma: float,
                         threads: Optional[int] = None) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(v, final observation weights, iterations per column) of the robust loop, None without numba.

    ``y`` n_pairs × n (NaN = no observation), ``v`` K × n the starting solution, ``weights`` n_pairs × n
    the observations' weights; the returned weights are the Tukey weights of the final v times those (0
    where y is NaN).
    """
    kernel = _kernel() if USE_NUMBA else None
    if kernel is None:
        return None
    a = np.ascontiguousarray(a, np.float64)
    lo, hi = spans(a)
    y = np.ascontiguousarray(y, np.float64)
    v_out = np.ascontiguousarray(v, np.float64).copy()
    final_weights = np.zeros(y.shape)
    iterations = np.zeros(y.shape[1], np.int64)
    weights_in = np.ascontiguousarray(weights, np.float64)
    reg = np.ascontiguousarray(reg, np.float64)

    def run(start: int) -> None:
        stop = min(start + task, y.shape[1])
        kernel(a, lo, hi, y, weights_in, reg, float(tolerance), int(max_iterations), float(c),
               float(mad_to_sigma), v_out, final_weights, iterations, start, stop)

    workers = max(1, min(threads or os.cpu_count() or 1, -(-y.shape[1] // _MIN_TASK_COLUMNS)))
    task = -(-y.shape[1] // workers)
    starts = range(0, y.shape[1], task)
    if workers == 1:
        for start in starts:
            run(start)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, starts))
    return v_out, final_weights, iterations


def _column_weights(a, lo, hi, y, col, base, v, c, mad_to_sigma, residual, scratch, out):
    """Tukey weight × base weight of each observation of column ``col`` for the solution ``v`` (K)."""
    n_pairs = a.shape[0]
    m = 0
    for j in range(n_pairs):
        out[j] = 0.0
        value = y[j, col]
        if value != value:
            residual[j] = np.nan
            continue
        predicted = 0.0
        for k in range(lo[j], hi[j]):
            predicted += a[j, k] * v[k]
        residual[j] = (value - predicted) * np.sqrt(base[j, col])
        scratch[m] = residual[j]
        m += 1
    if m == 0:
        return
    median = np.median(scratch[:m])
    for i in range(m):
        scratch[i] = abs(scratch[i] - median)
    scale = np.median(scratch[:m]) / mad_to_sigma
    for j in range(n_pairs):
        r = residual[j]
        if r != r:
            continue
        u = r / scale if scale > 0 else 0.0
        if abs(u) < c:
            t = 1.0 - (u / c) ** 2
            out[j] = t * t * base[j, col]


def _solve_column(a, lo, hi, y, col, w, reg, normal, rhs, out):
    """``out`` = (Aᵀ W A + reg)⁻¹ Aᵀ W y of column ``col`` by Cholesky (the upper part built per span)."""
    n_pairs, k_steps = a.shape
    for i in range(k_steps):
        rhs[i] = 0.0
        for k in range(k_steps):
            normal[i, k] = reg[i, k]
    for j in range(n_pairs):
        wj = w[j]
        if wj <= 0.0:
            continue
        yj = y[j, col]
        for k in range(lo[j], hi[j]):
            ak = a[j, k] * wj
            rhs[k] += ak * yj
            for m in range(k, hi[j]):
                normal[k, m] += ak * a[j, m]
    for i in range(k_steps):            # Cholesky, upper factor U with N = Uᵀ U, in place
        s = normal[i, i]
        for p in range(i):
            s -= normal[p, i] * normal[p, i]
        s = np.sqrt(s) if s > 0.0 else 1e-300
        normal[i, i] = s
        for k in range(i + 1, k_steps):
            t = normal[i, k]
            for p in range(i):
                t -= normal[p, i] * normal[p, k]
            normal[i, k] = t / s
    for i in range(k_steps):            # Uᵀ z = rhs
        t = rhs[i]
        for p in range(i):
            t -= normal[p, i] * out[p]
        out[i] = t / normal[i, i]
    for i in range(k_steps - 1, -1, -1):  # U x = z
        t = out[i]
        for p in range(i + 1, k_steps):
            t -= normal[i, p] * out[p]
        out[i] = t / normal[i, i]


def _robust(a, lo, hi, y, base, reg, tolerance, max_iterations, c, mad_to_sigma, v, weights, iterations,
            start, stop):  # pragma: no cover (compiled)
    """Numba body of :func:`robust_loop_compiled` over columns [start, stop)."""
    n_pairs, k_steps = a.shape
    residual = np.empty(n_pairs)
    scratch = np.empty(n_pairs)
    w = np.empty(n_pairs)
    normal = np.empty((k_steps, k_steps))
    rhs = np.empty(k_steps)
    current = np.empty(k_steps)
    new = np.empty(k_steps)
    for col in range(start, stop):
        for k in range(k_steps):
            current[k] = v[k, col]
        done = 0
        for it in range(1, max_iterations + 1):
            _column_weights(a, lo, hi, y, col, base, current, c, mad_to_sigma, residual, scratch, w)
            _solve_column(a, lo, hi, y, col, w, reg, normal, rhs, new)
            change = 0.0
            size = 0.0
            for k in range(k_steps):
                change += abs(new[k] - current[k])
                size += abs(current[k])
                current[k] = new[k]
            done = it
            if change < tolerance * max(size, 1e-300 * k_steps):
                break
        _column_weights(a, lo, hi, y, col, base, current, c, mad_to_sigma, residual, scratch, w)
        for k in range(k_steps):
            v[k, col] = current[k]
        for j in range(n_pairs):
            weights[j, col] = w[j]
        iterations[col] = done


#: The helpers as written (the kernel binds the module names to their compiled versions).
_column_weights_py = _column_weights
_solve_column_py = _solve_column

#: The kernel, compiled on first use (IEEE NaN semantics: no fastmath).
_kernel = LazyKernel(globals(), _robust, ("_column_weights", "_solve_column"))
