"""Compiled kernel of stages 1 and 2 of the affine refinement (:mod:`.affine`), numba when installed.

numba is imported lazily, on the first refinement; without it (or with
``USE_NUMBA = False``) :func:`translation_and_strain_test` runs the numpy
implementation :func:`.affine.translation_and_strain_test_numpy`, which gives
the same numbers (to float rounding, ~1e-6 px: the kernel accumulates in
float64 where numpy sums float32 products). The kernel loops over the chips of
a chunk, one chip at a time (the chip's arrays stay in cache), with the
arithmetic of the numpy version: the orthogonalised LK basis, the separable
quintic-spline sampling at one shift per chip, the LK iterations with their
convergence and departure rules, then the strain test on the last sample.
Units and conventions: see :mod:`.affine` (offsets (dx, dy) px, dx + right, dy + down).
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Tuple

import numpy as np

from ..jit import numba_available
from .params import SPLINE_ORDER
from .subpixel import (_LK_MAX_DEPARTURE_PX, _LK_MAX_ITERATIONS, _LK_NOT_CONVERGED_PX, _LK_TOLERANCE_PX,
                       _SINGULAR_EIGEN_RATIO)

#: Use the compiled kernel when numba is installed (tests switch it off to compare).
USE_NUMBA = True

_compiled: Optional[Callable] = None
_compiled_points: Optional[Callable] = None
_compile_lock = threading.Lock()


def translation_and_strain_test(coefficients: np.ndarray, invalid_sums: np.ndarray, reference: np.ndarray,
                                grad_x: np.ndarray, grad_y: np.ndarray, first_row: np.ndarray,
                                first_col: np.ndarray, top: np.ndarray, left: np.ndarray, start: np.ndarray,
                                integer_peak: np.ndarray, chip: int, correlation: float):
    """Stages 1 and 2 for one chunk of chips: see :func:`.affine.translation_and_strain_test_numpy`
    (same arguments and results); compiled when numba is installed and ``USE_NUMBA``."""
    kernel = _kernel() if USE_NUMBA else None
    if kernel is None:
        from .affine import translation_and_strain_test_numpy
        return translation_and_strain_test_numpy(coefficients, invalid_sums, reference, grad_x, grad_y, first_row,
                                                 first_col, top, left, start, integer_peak, chip, correlation)
    count = len(first_row)
    converged = np.zeros(count, np.bool_)
    offset = np.ascontiguousarray(start, np.float64).copy()
    peak = np.full(count, np.nan)
    chi2 = np.zeros(count)
    joint_shift = np.full((count, 2), np.nan)
    joint_strain = np.full((count, 4), np.nan)
    sample_at = offset.copy()
    kernel(np.ascontiguousarray(coefficients, np.float32), np.ascontiguousarray(invalid_sums),
           np.ascontiguousarray(reference, np.float32), np.ascontiguousarray(grad_x, np.float32),
           np.ascontiguousarray(grad_y, np.float32), np.asarray(first_row, np.int64),
           np.asarray(first_col, np.int64), np.asarray(top, np.int64), np.asarray(left, np.int64),
           np.ascontiguousarray(integer_peak, np.float64), int(chip), float(correlation),
           converged, offset, peak, chi2, joint_shift, joint_strain, sample_at)
    return converged, offset, peak, chi2, joint_shift, joint_strain, sample_at


def sample_affine(coefficients: np.ndarray, top: np.ndarray, left: np.ndarray, shift: np.ndarray,
                  strain: np.ndarray, chip: int) -> np.ndarray:
    """The quintic spline with ``coefficients`` (2-D) sampled at the affine-warped chips (B, n)
    (positions: :func:`.affine.warped_positions`), as ``ndimage.map_coordinates(order=5,
    prefilter=False, mode="mirror")``; compiled when numba is installed and ``USE_NUMBA``."""
    kernel = _points_kernel() if USE_NUMBA else None
    if kernel is None:
        from scipy import ndimage

        from .affine import warped_positions
        rows, cols = warped_positions(top, left, shift, strain, chip)
        return ndimage.map_coordinates(coefficients, [rows.ravel(), cols.ravel()], order=SPLINE_ORDER,
                                       prefilter=False, mode="mirror", output=np.float64).reshape(rows.shape)
    values = np.empty((len(top), chip * chip))
    kernel(np.ascontiguousarray(coefficients, np.float32), np.asarray(top, np.float64),
           np.asarray(left, np.float64), np.ascontiguousarray(shift, np.float64),
           np.ascontiguousarray(strain, np.float64).reshape(-1, 4), chip, values)
    return values


def _points_kernel() -> Optional[Callable]:
    """The compiled point sampler, None without numba."""
    return _compile()[1]


def _kernel() -> Optional[Callable]:
    """The compiled stages 1-2 kernel, None without numba."""
    return _compile()[0]


def _compile() -> Tuple[Optional[Callable], Optional[Callable]]:
    """Both kernels, compiled once per process (and cached on disk by numba); (None, None) without
    numba. The helpers are compiled first and bound in this module, where the kernels find them."""
    global _compiled, _compiled_points
    if not numba_available():
        return None, None
    if _compiled is None:
        with _compile_lock:
            if _compiled is None:
                import numba
                options = dict(nogil=True, cache=True, fastmath=True)
                for name, function in (("_quintic_weights", _quintic_weights_py), ("_add_row", _add_row_py),
                                       ("_strain_test", _strain_test_py), ("_mirrored", _mirrored_py)):
                    globals()[name] = numba.njit(**options)(function)
                _compiled_points = numba.njit(**options)(_points)
                _compiled = numba.njit(**options)(_chips)
    return _compiled, _compiled_points


def _chips(coefficients, invalid_sums, reference, grad_x, grad_y, first_row, first_col, top, left, integer_peak,
           chip, correlation, converged, offset, peak, chi2, joint_shift, joint_strain,
           sample_at):  # pragma: no cover (compiled)
    """Stages 1 and 2 of every chip (numba nopython body; results written into the last 7 arrays).

    Written for the compiler: the loops over columns are ``while`` loops over row views (numba
    0.56's range loops do not vectorise their reductions; these do, 15-25x faster), explicit
    6-tap passes, scalar accumulators, the chip's arrays in small reused buffers. The basis
    and the strain test use sums (the identities in the comments) instead of the arrays of the
    numpy version; both are the same least-squares quantities.
    """
    count = first_row.shape[0]
    n = chip * chip
    span = chip + 5
    height, width = coefficients.shape
    op_x = np.empty((chip, chip), np.float32)
    op_y = np.empty((chip, chip), np.float32)
    unit = np.empty((chip, chip), np.float32)
    sample = np.empty((chip, chip), np.float32)
    rows_pass = np.empty((chip, span), np.float32)
    weights = np.empty(6)
    work = np.empty((11, 4))
    gram = np.empty((4, 4))
    half = (chip - 1) / 2.0
    for b in range(count):
        row0 = first_row[b]
        col0 = first_col[b]
        # ---- the orthogonalised basis (``subpixel._lk_basis``) from the chip's sums
        s_t = 0.0
        s_tt = 0.0
        s_x = 0.0
        s_y = 0.0
        s_xt = 0.0
        s_yt = 0.0
        s_xx = 0.0
        s_yy = 0.0
        s_xy = 0.0
        for r in range(chip):
            t_row = reference[row0 + r, col0:col0 + chip]
            x_row = grad_x[row0 + r, col0:col0 + chip]
            y_row = grad_y[row0 + r, col0:col0 + chip]
            c = 0
            while c < chip:  # (a while loop: numba's range loops do not vectorise here)
                t = np.float64(t_row[c])
                x = np.float64(x_row[c])
                y = np.float64(y_row[c])
                s_t += t
                s_tt += t * t
                s_x += x
                s_y += y
                s_xt += x * t
                s_yt += y * t
                s_xx += x * x
                s_yy += y * y
                s_xy += x * y
                c += 1
        mean_t = s_t / n
        mean_x = s_x / n
        mean_y = s_y / n
        norm = np.sqrt(max(s_tt - n * mean_t * mean_t, 0.0))
        if not norm > 0:
            continue
        along_x = (s_xt - mean_t * s_x) / norm  # g_x . t, t = (T - mean) / norm
        along_y = (s_yt - mean_t * s_y) / norm
        # o = g - mean(g) - (g . t) t: o_x . o_x = sum g_x^2 - n mean^2 - (g_x . t)^2, and so on
        h_xx = s_xx - n * mean_x * mean_x - along_x * along_x
        h_yy = s_yy - n * mean_y * mean_y - along_y * along_y
        h_xy = s_xy - n * mean_x * mean_y - along_x * along_y
        det = h_yy * h_xx - h_xy * h_xy
        trace = h_yy + h_xx
        if not (np.isfinite(det) and det > _SINGULAR_EIGEN_RATIO * trace * trace):
            continue
        inverse_norm = 1.0 / norm
        xx_det = h_xx / det
        yy_det = h_yy / det
        xy_det = h_xy / det
        for r in range(chip):
            t_row = reference[row0 + r, col0:col0 + chip]
            x_row = grad_x[row0 + r, col0:col0 + chip]
            y_row = grad_y[row0 + r, col0:col0 + chip]
            px_row = op_x[r]
            py_row = op_y[r]
            u_row = unit[r]
            c = 0
            while c < chip:
                t = (np.float64(t_row[c]) - mean_t) * inverse_norm
                o_x = x_row[c] - mean_x - along_x * t
                o_y = y_row[c] - mean_y - along_y * t
                px_row[c] = yy_det * o_x - xy_det * o_y
                py_row[c] = xx_det * o_y - xy_det * o_x
                u_row[c] = t
                c += 1
        coupling_x = along_x / norm
        coupling_y = along_y / norm
        # ---- the LK iterations (``affine.translation_and_strain_test_numpy``)
        ok = True
        last_update = 0.0
        total = 0.0
        t_s = 0.0
        s_s = 0.0
        for _ in range(_LK_MAX_ITERATIONS):
            rows = top[b] + offset[b, 1]
            cols = left[b] + offset[b, 0]
            base_rows = np.floor(rows)
            base_cols = np.floor(cols)
            sample_row = min(max(int(base_rows) - 2, 0), height - span)
            sample_col = min(max(int(base_cols) - 2, 0), width - span)
            _quintic_weights(rows - base_rows, weights)
            w0 = np.float32(weights[0])
            w1 = np.float32(weights[1])
            w2 = np.float32(weights[2])
            w3 = np.float32(weights[3])
            w4 = np.float32(weights[4])
            w5 = np.float32(weights[5])
            last_col = sample_col + span
            for r in range(chip):
                c0 = coefficients[sample_row + r, sample_col:last_col]
                c1 = coefficients[sample_row + r + 1, sample_col:last_col]
                c2 = coefficients[sample_row + r + 2, sample_col:last_col]
                c3 = coefficients[sample_row + r + 3, sample_col:last_col]
                c4 = coefficients[sample_row + r + 4, sample_col:last_col]
                c5 = coefficients[sample_row + r + 5, sample_col:last_col]
                line = rows_pass[r]
                c = 0
                while c < span:
                    line[c] = w0 * c0[c] + w1 * c1[c] + w2 * c2[c] + w3 * c3[c] + w4 * c4[c] + w5 * c5[c]
                    c += 1
            _quintic_weights(cols - base_cols, weights)
            w0 = np.float32(weights[0])
            w1 = np.float32(weights[1])
            w2 = np.float32(weights[2])
            w3 = np.float32(weights[3])
            w4 = np.float32(weights[4])
            w5 = np.float32(weights[5])
            q_x = 0.0
            q_y = 0.0
            t_s = 0.0
            total = 0.0
            s_s = 0.0
            for r in range(chip):
                line = rows_pass[r]
                out = sample[r]
                px_row = op_x[r]
                py_row = op_y[r]
                u_row = unit[r]
                c = 0
                while c < chip:
                    value = (w0 * line[c] + w1 * line[c + 1] + w2 * line[c + 2] + w3 * line[c + 3]
                             + w4 * line[c + 4] + w5 * line[c + 5])
                    out[c] = value
                    q_x += px_row[c] * value
                    q_y += py_row[c] * value
                    t_s += u_row[c] * value
                    total += value
                    s_s += value * value
                    c += 1
            sample_at[b, 0] = offset[b, 0]
            sample_at[b, 1] = offset[b, 1]
            energy = s_s - total * total / n
            peak[b] = t_s / np.sqrt(energy) if energy > 0 else 0.0
            gain = t_s / norm - (coupling_x * q_x + coupling_y * q_y)
            if not (gain > 0 and np.isfinite(q_x) and np.isfinite(q_y)):
                ok = False
                last_update = np.inf
                break
            update_x = q_x / gain
            update_y = q_y / gain
            offset[b, 0] -= update_x
            offset[b, 1] -= update_y
            last_update = np.hypot(update_x, update_y)
            if (abs(offset[b, 0] - integer_peak[b, 0]) > _LK_MAX_DEPARTURE_PX
                    or abs(offset[b, 1] - integer_peak[b, 1]) > _LK_MAX_DEPARTURE_PX):
                ok = False
                break
            if last_update < _LK_TOLERANCE_PX:
                break
        ok = ok and last_update <= _LK_NOT_CONVERGED_PX
        # the spline support of the final footprint (``subpixel._spline_support_valid``)
        support_row = int(np.floor(top[b] + offset[b, 1])) - 2
        support_col = int(np.floor(left[b] + offset[b, 0])) - 2
        rows_sums, cols_sums = invalid_sums.shape
        for dr in range(6):
            for dc in range(6):
                rr = support_row + dr
                cc = support_col + dc
                if rr < 0 or rr >= rows_sums or cc < 0 or cc >= cols_sums or invalid_sums[rr, cc] != 0:
                    ok = False
        converged[b] = ok
        # ---- the strain test on the last sample (``affine._strain_test``), from row sums
        _strain_test(b, reference, grad_x, grad_y, sample, row0, col0, chip, half, mean_t, mean_x, mean_y, norm,
                     along_x, along_y, h_xx, h_yy, h_xy, total, t_s, s_s, correlation, chi2, joint_shift,
                     joint_strain, work, gram)


def _points(coefficients, top, left, shift, strain, chip, values):  # pragma: no cover (compiled)
    """Numba body of ``sample_affine``: per chip and pixel the warped position, then the
    quintic spline from the 6 x 6 coefficients floor - 2 .. floor + 3, mirrored at the edges."""
    height, width = coefficients.shape
    w_rows = np.empty(6)
    w_cols = np.empty(6)
    half = (chip - 1) / 2.0
    for b in range(top.shape[0]):
        for a in range(chip):
            v = a - half
            for c in range(chip):
                u = c - half
                col = left[b] + c + shift[b, 0] + strain[b, 0] * u + strain[b, 1] * v
                row = top[b] + a + shift[b, 1] + strain[b, 2] * u + strain[b, 3] * v
                base_row = np.floor(row)
                base_col = np.floor(col)
                _quintic_weights(row - base_row, w_rows)
                _quintic_weights(col - base_col, w_cols)
                first_row = int(base_row) - 2
                first_col = int(base_col) - 2
                total = 0.0
                if first_row >= 0 and first_col >= 0 and first_row + 6 <= height and first_col + 6 <= width:
                    for i in range(6):
                        line = coefficients[first_row + i]
                        acc = 0.0
                        for j in range(6):
                            acc += w_cols[j] * line[first_col + j]
                        total += w_rows[i] * acc
                else:
                    for i in range(6):
                        line = coefficients[_mirrored(first_row + i, height)]
                        acc = 0.0
                        for j in range(6):
                            acc += w_cols[j] * line[_mirrored(first_col + j, width)]
                        total += w_rows[i] * acc
                values[b, a * chip + c] = total


def _mirrored(index, size):  # pragma: no cover (compiled)
    """``index`` reflected into [0, size) about the edge pixels (scipy's "mirror" mode)."""
    if size == 1:
        return 0
    period = 2 * size - 2
    index = abs(index) % period
    return period - index if index >= size else index


def _quintic_weights(t, weights):  # pragma: no cover (compiled)
    """Quintic B-spline weights of the coefficients at floor-2 .. floor+3 for the fraction ``t``
    (as ``subpixel._bspline_weights``)."""
    t2 = t * t
    t3 = t2 * t
    t4 = t3 * t
    t5 = t4 * t
    weights[0] = (1 - t) ** 5 / 120.0
    weights[1] = (26 - 50 * t + 20 * t2 + 20 * t3 - 20 * t4 + 5 * t5) / 120.0
    weights[2] = (66 - 60 * t2 + 30 * t4 - 10 * t5) / 120.0
    weights[3] = (26 + 50 * t + 20 * t2 - 20 * t3 - 20 * t4 + 10 * t5) / 120.0
    weights[4] = (1 + 5 * t + 10 * t2 + 10 * t3 + 5 * t4 - 5 * t5) / 120.0
    weights[5] = t5 / 120.0


def _add_row(z, x_u, x, y_u, y, v):  # pragma: no cover (compiled)
    """Adds one chip row to sums over z = (g_x u, g_x v, g_y u, g_y v) times some f: ``x_u``, ``x``
    are the row's sums of f g_x u and f g_x, ``y_u``, ``y`` of f g_y u and f g_y, ``v`` its v."""
    z[0] += x_u
    z[1] += v * x
    z[2] += y_u
    z[3] += v * y


def _strain_test(b, reference, grad_x, grad_y, sample, row0, col0, chip, half, mean_t, mean_x, mean_y, norm,
                 along_x, along_y, h_xx, h_yy, h_xy, total, t_s, s_s, correlation, chi2, joint_shift,
                 joint_strain, work, g):  # pragma: no cover (compiled, inlined into ``_chips``)
    """Stage 2 of chip ``b``: the strain columns are z = (g_x u, g_x v, g_y u, g_y v); their sums
    against 1, t, o_x, o_y, s and each other come from row sums of products with 1, u (and u^2)
    weighted per row by 1, v (and v^2); o_x = g_x - mean - (g_x.t) t gives z.o_x = z.g_x -
    mean z.1 - (g_x.t) z.t, and likewise o_y; ``total``, ``t_s``, ``s_s`` are 1.s, t.s, s.s.
    ``work`` (11, 4) and ``g`` (4, 4) are scratch buffers (no allocation per chip)."""
    n = chip * chip
    work[:] = 0.0
    g[:] = 0.0
    zo = work[0]    # z.1
    ztt = work[1]   # z.T (raw template)
    zs = work[2]    # z.s
    zgx = work[3]   # z.g_x
    zgy = work[4]   # z.g_y
    zt = work[5]
    zx = work[6]
    zy = work[7]
    score = work[8]
    gamma = work[9]
    x_s = 0.0
    y_s = 0.0
    for r in range(chip):
        v = r - half
        t_row = reference[row0 + r, col0:col0 + chip]
        x_row = grad_x[row0 + r, col0:col0 + chip]
        y_row = grad_y[row0 + r, col0:col0 + chip]
        s_row = sample[r]
        a_x = a_y = a_xt = a_yt = a_xs = a_ys = 0.0
        u_x = u_y = u_xt = u_yt = u_xs = u_ys = 0.0
        p_xx = p_xy = p_yy = 0.0
        pu_xx = pu_xy = pu_yy = 0.0
        puu_xx = puu_xy = puu_yy = 0.0
        c = 0
        while c < chip:
            u = c - half
            t = np.float64(t_row[c])
            x = np.float64(x_row[c])
            y = np.float64(y_row[c])
            s = np.float64(s_row[c])
            a_x += x
            a_y += y
            a_xt += x * t
            a_yt += y * t
            a_xs += x * s
            a_ys += y * s
            u_x += x * u
            u_y += y * u
            u_xt += x * t * u
            u_yt += y * t * u
            u_xs += x * s * u
            u_ys += y * s * u
            xx = x * x
            xy = x * y
            yy = y * y
            p_xx += xx
            p_xy += xy
            p_yy += yy
            pu_xx += xx * u
            pu_xy += xy * u
            pu_yy += yy * u
            puu_xx += xx * u * u
            puu_xy += xy * u * u
            puu_yy += yy * u * u
            c += 1
        _add_row(zo, u_x, a_x, u_y, a_y, v)
        _add_row(ztt, u_xt, a_xt, u_yt, a_yt, v)
        _add_row(zs, u_xs, a_xs, u_ys, a_ys, v)
        _add_row(zgx, pu_xx, p_xx, pu_xy, p_xy, v)
        _add_row(zgy, pu_xy, p_xy, pu_yy, p_yy, v)
        g[0, 0] += puu_xx
        g[0, 1] += v * pu_xx
        g[0, 2] += puu_xy
        g[0, 3] += v * pu_xy
        g[1, 1] += v * v * p_xx
        g[1, 2] += v * pu_xy
        g[1, 3] += v * v * p_xy
        g[2, 2] += puu_yy
        g[2, 3] += v * pu_yy
        g[3, 3] += v * v * p_yy
        x_s += a_xs
        y_s += a_ys
    for i in range(4):
        zt[i] = (ztt[i] - mean_t * zo[i]) / norm
        zx[i] = zgx[i] - mean_x * zo[i] - along_x * zt[i]
        zy[i] = zgy[i] - mean_y * zo[i] - along_y * zt[i]
    o_s_x = x_s - mean_x * total - along_x * t_s
    o_s_y = y_s - mean_y * total - along_y * t_s
    det_o = h_xx * h_yy - h_xy * h_xy
    i_xx = h_yy / det_o
    i_yy = h_xx / det_o
    i_xy = -h_xy / det_o
    q_x = i_xx * o_s_x + i_xy * o_s_y
    q_y = i_xy * o_s_x + i_yy * o_s_y
    for i in range(4):
        for m in range(i, 4):
            value = (g[i, m] - zo[i] * zo[m] / n - zt[i] * zt[m]
                     - (zx[i] * (i_xx * zx[m] + i_xy * zy[m]) + zy[i] * (i_xy * zx[m] + i_yy * zy[m])))
            g[i, m] = value
            g[m, i] = value
        score[i] = zs[i] - zo[i] * (total / n) - zt[i] * t_s - (zx[i] * q_x + zy[i] * q_y)
    # gamma = g^-1 score by Gaussian elimination with partial pivoting
    gamma[:] = score
    for i in range(4):
        pivot = i
        for m in range(i + 1, 4):
            if abs(g[m, i]) > abs(g[pivot, i]):
                pivot = m
        if not abs(g[pivot, i]) > 0:
            return
        if pivot != i:
            for m in range(4):
                swap = g[i, m]
                g[i, m] = g[pivot, m]
                g[pivot, m] = swap
            swap = gamma[i]
            gamma[i] = gamma[pivot]
            gamma[pivot] = swap
        for m in range(i + 1, 4):
            factor = g[m, i] / g[i, i]
            for k in range(i, 4):
                g[m, k] -= factor * g[i, k]
            gamma[m] -= factor * gamma[i]
    for i in range(3, -1, -1):
        for m in range(i + 1, 4):
            gamma[i] -= g[i, m] * gamma[m]
        gamma[i] /= g[i, i]
    explained = 0.0
    back_x = 0.0
    back_y = 0.0
    zt_gamma = 0.0
    for i in range(4):
        explained += gamma[i] * score[i]
        back_x += zx[i] * gamma[i]
        back_y += zy[i] * gamma[i]
        zt_gamma += zt[i] * gamma[i]
    joint_x = q_x - (i_xx * back_x + i_xy * back_y)
    joint_y = q_y - (i_xy * back_x + i_yy * back_y)
    gain = (t_s - zt_gamma - (along_x * joint_x + along_y * joint_y)) / norm
    residual = s_s - total * total / n - t_s * t_s - (q_x * o_s_x + q_y * o_s_y) - explained
    sigma2 = max(residual, 0.0) / (n - 8)
    value = explained / (sigma2 * correlation) if sigma2 > 0 else np.inf
    if gain > 0 and np.isfinite(value):
        chi2[b] = value
        joint_shift[b, 0] = joint_x / gain
        joint_shift[b, 1] = joint_y / gain
        for i in range(4):
            joint_strain[b, i] = gamma[i] / gain


#: The helpers as written (``_kernel`` replaces the module names by their compiled versions).
_quintic_weights_py = _quintic_weights
_strain_test_py = _strain_test
_add_row_py = _add_row
_mirrored_py = _mirrored
