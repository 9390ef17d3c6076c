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

from ..jit import compiled, numba_available
from .params import SPLINE_ORDER
from .subpixel import (_LK_MAX_DEPARTURE_PX, _LK_MAX_ITERATIONS, _LK_NOT_CONVERGED_PX, _LK_TOLERANCE_PX,
                       _SINGULAR_EIGEN_RATIO)

#: Use the compiled kernel when numba is installed (tests switch it off to compare).
USE_NUMBA = True
#: Smallest eigenvalue of the stage-3 columns' correlation matrix of a well-posed chip.
_WELL_POSED_EIGENVALUE = 1e-12

_compiled: Optional[Callable] = None
_compiled_points: Optional[Callable] = None
_compiled_stage: Optional[Callable] = None
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


def affine_stage(coefficients: np.ndarray, templates: np.ndarray, gx: np.ndarray, gy: np.ndarray,
                 weights: np.ndarray, top: np.ndarray, left: np.ndarray, shift: np.ndarray, strain: np.ndarray,
                 integer_peak: np.ndarray, chip: int, max_iterations: int, tolerance_px: float,
                 not_converged_px: float, max_strain: float
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stage 3 of the affine refinement (:func:`.affine._affine_stage`) for B chips, with per-chip
    least-squares ``weights`` (B, n) float64 (e.g. the Gaussian window times validity); compiled
    when numba is installed and ``USE_NUMBA``, else :func:`affine_stage_numpy` (same numbers to
    float rounding).

    ``coefficients``: the secondary block's quintic-spline coefficients (float32); ``templates``,
    ``gx``, ``gy``: the chips' reference pixels and spline derivatives (B, chip, chip); ``top``,
    ``left``: where each chip's pixels start in ``coefficients`` at zero offset; ``shift`` (B, 2)
    (dx, dy) px and ``strain`` (B, 2, 2) [[d(dx)/dx, d(dx)/dy], [d(dy)/dx, d(dy)/dy]] the start;
    ``integer_peak`` (B, 2) px. Inverse-compositional affine LK with gain and bias, at most
    ``max_iterations`` steps, stopping below ``tolerance_px`` (largest change of the offset or of
    the chip's edge, px); the ZNCC is over all pixels (unweighted), at the last sampled position.
    Returns ``done`` (B,): well posed, converged (last change <= ``not_converged_px``), within
    ``_LK_MAX_DEPARTURE_PX`` + max|A| chip/2 of the integer peak and every |A| entry <=
    ``max_strain`` -- the caller adds the footprint's validity test (``affine._support_valid``);
    the offsets (B, 2), terms (B, 2, 2) and ZNCC (B,).
    """
    kernel = _stage_kernel() if USE_NUMBA else None
    if kernel is None:
        return affine_stage_numpy(coefficients, templates, gx, gy, weights, top, left, shift, strain, integer_peak,
                                  chip, max_iterations, tolerance_px, not_converged_px, max_strain)
    count = len(templates)
    done = np.zeros(count, np.bool_)
    shift = np.array(shift, np.float64, order="C", copy=True).reshape(count, 2)
    strain = np.array(strain, np.float64, order="C", copy=True).reshape(count, 4)
    zncc = np.full(count, np.nan)
    kernel(np.ascontiguousarray(coefficients, np.float32), np.ascontiguousarray(templates, np.float32),
           np.ascontiguousarray(gx, np.float32), np.ascontiguousarray(gy, np.float32),
           np.ascontiguousarray(weights, np.float64), np.asarray(top, np.float64), np.asarray(left, np.float64),
           np.ascontiguousarray(integer_peak, np.float64), int(chip), int(max_iterations), float(tolerance_px),
           float(not_converged_px), float(max_strain), float(_LK_MAX_DEPARTURE_PX), done, shift, strain, zncc)
    return done, shift, strain.reshape(count, 2, 2), zncc


def affine_stage_numpy(coefficients: np.ndarray, templates: np.ndarray, gx: np.ndarray, gy: np.ndarray,
                       weights: np.ndarray, top: np.ndarray, left: np.ndarray, shift: np.ndarray,
                       strain: np.ndarray, integer_peak: np.ndarray, chip: int, max_iterations: int,
                       tolerance_px: float, not_converged_px: float, max_strain: float,
                       validity: Optional[Callable] = None
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`affine_stage` in numpy, without the footprint test. With ``validity`` (chips with
    nodata: ``validity(chips, rows, cols)`` gives the (len(chips), n) 0/1 weights of the pixels
    sampled at ``rows``, ``cols``, see :class:`.affine.PixelValidity`) every iteration re-weights the
    least squares by ``weights`` times the validity at the current warp, and the ZNCC is taken
    over the valid pixels."""
    from .affine import _inverse_2x2, _masked_zncc, _weighted_normal_matrix, chip_coordinates, warped_positions
    count = len(templates)
    n = chip * chip
    u, v = chip_coordinates(chip)
    g_x = gx.reshape(count, n).astype(np.float64)
    g_y = gy.reshape(count, n).astype(np.float64)
    t0 = templates.reshape(count, n).astype(np.float64)
    columns = np.stack([t0, np.ones_like(t0), g_x, g_y, g_x * u, g_x * v, g_y * u, g_y * v], axis=1)
    weights = np.asarray(weights, np.float64).reshape(count, n)
    if validity is None:
        weighted, hessian, good = _weighted_normal_matrix(columns, weights)
    else:
        good = np.ones(count, bool)
    template_centred = t0 - t0.mean(axis=1, keepdims=True)
    template_centred /= np.linalg.norm(template_centred, axis=1, keepdims=True)
    identity = np.eye(2)
    shift = np.array(shift, np.float64, copy=True)
    strain = np.array(strain, np.float64, copy=True)
    change = np.full(count, np.inf)
    zncc = np.full(count, np.nan)
    active = np.flatnonzero(good)
    for _ in range(max_iterations):
        if active.size == 0:
            break
        sampled = sample_affine(coefficients, top[active], left[active], shift[active], strain[active], chip)
        if validity is None:
            centred = sampled - sampled.mean(axis=1, keepdims=True)
            norms = np.linalg.norm(centred, axis=1)
            zncc[active] = (np.einsum("bn,bn->b", centred, template_centred[active])
                            / np.where(norms > 0, norms, np.inf))
            system, normal = weighted[active], hessian[active]
        else:
            mask = validity(active, *warped_positions(top[active], left[active], shift[active], strain[active], chip))
            zncc[active] = _masked_zncc(t0[active], sampled, mask)
            system, normal, posed = _weighted_normal_matrix(columns[active], weights[active] * mask)
            good[active] &= posed
        beta = np.linalg.solve(normal, np.einsum("bkn,bn->bk", system, sampled)[..., None])[..., 0]
        gain = beta[:, 0]
        fine = (gain > 0) & np.all(np.isfinite(beta), axis=1) & good[active]
        delta = beta[:, 2:] / np.where(fine, gain, 1.0)[:, None]
        composed = (identity + strain[active]) @ _inverse_2x2(1.0 + delta[:, 2], delta[:, 3], delta[:, 4],
                                                              1.0 + delta[:, 5])
        new_shift = shift[active] - np.einsum("bij,bj->bi", composed, delta[:, :2])
        new_strain = composed - identity
        step = np.maximum(np.abs(new_shift - shift[active]).max(axis=1),
                          np.abs(new_strain - strain[active]).reshape(-1, 4).max(axis=1) * (chip / 2.0))
        fine &= np.isfinite(step)
        shift[active] = np.where(fine[:, None], new_shift, shift[active])
        strain[active] = np.where(fine[:, None, None], new_strain, strain[active])
        change[active] = np.where(fine, step, np.inf)
        sane = fine & np.all(np.abs(new_strain).reshape(-1, 4) <= max_strain, axis=1)
        change[active[~sane]] = np.inf
        active = active[sane & (step >= tolerance_px)]
    done = good & (change <= not_converged_px)
    reach = _LK_MAX_DEPARTURE_PX + np.abs(strain).reshape(-1, 4).max(axis=1) * (chip / 2.0)
    done &= np.all(np.abs(shift - integer_peak) <= reach[:, None], axis=1)
    done &= np.all(np.abs(strain).reshape(-1, 4) <= max_strain, axis=1)
    return done, shift, strain, zncc


def _well_posed(hessian: np.ndarray) -> np.ndarray:
    """Chips (B,) whose Hessians (B, 8, 8) have a Cholesky factor with a pivot ratio above 1e-12
    (relative to the diagonal: the smallest eigenvalue of the columns' correlation matrix)."""
    scale = np.sqrt(np.einsum("bkk->bk", hessian))
    good = np.all(scale > 0, axis=1)
    correlation = hessian / np.where(good, 1.0, np.nan)[:, None, None] / (scale[:, :, None] * scale[:, None, :])
    good &= np.all(np.isfinite(correlation), axis=(1, 2))
    good[good] = np.linalg.eigvalsh(correlation[good]).min(axis=1) > _WELL_POSED_EIGENVALUE
    return good


def _points_kernel() -> Optional[Callable]:
    """The compiled point sampler, None without numba."""
    return _compile()[1]


def _kernel() -> Optional[Callable]:
    """The compiled stages 1-2 kernel, None without numba."""
    return _compile()[0]


def _stage_kernel() -> Optional[Callable]:
    """The compiled stage-3 kernel, None without numba."""
    return _compile()[2]


def _compile() -> Tuple[Optional[Callable], Optional[Callable], Optional[Callable]]:
    """The three kernels, compiled once per process (and cached on disk by numba); (None, None,
    None) without numba. The helpers are compiled first and bound in this module, where the
    kernels find them. Stage 3 keeps IEEE NaN/inf semantics (its validity tests rely on them)."""
    global _compiled, _compiled_points, _compiled_stage
    if not numba_available():
        return None, None, None
    if _compiled is None:
        with _compile_lock:
            if _compiled is None:
                options = dict(nogil=True, cache=True, fastmath=True)
                for name, function in (("_quintic_weights", _quintic_weights_py), ("_add_row", _add_row_py),
                                       ("_strain_test", _strain_test_py), ("_mirrored", _mirrored_py),
                                       ("_sample_chip", _sample_chip_py)):
                    globals()[name] = compiled(function, **options)
                exact = dict(nogil=True, cache=True, fastmath={"nsz", "arcp", "contract", "reassoc"})
                for name, function in (("_solved", _solved_py), ("_nan_max", _nan_max_py)):
                    globals()[name] = compiled(function, **exact)
                _compiled_stage = compiled(_stage, **exact)
                _compiled_points = compiled(_points, **options)
                _compiled = compiled(_chips, **options)
    return _compiled, _compiled_points, _compiled_stage


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
    """Numba body of ``sample_affine``: :func:`_sample_chip` for every chip."""
    for b in range(top.shape[0]):
        _sample_chip(coefficients, top[b], left[b], shift[b, 0], shift[b, 1], strain[b, 0], strain[b, 1],
                     strain[b, 2], strain[b, 3], chip, values[b])


def _sample_chip(coefficients, top, left, shift_x, shift_y, a00, a01, a10, a11, chip,
                 values):  # pragma: no cover (compiled)
    """One chip's affine-warped samples into ``values`` (n,): per pixel the warped position
    (:func:`.affine.warped_positions`, strain [[a00, a01], [a10, a11]]), then the quintic spline
    from the 6 x 6 coefficients floor - 2 .. floor + 3, mirrored at the edges."""
    height, width = coefficients.shape
    w_rows = np.empty(6)
    w_cols = np.empty(6)
    half = (chip - 1) / 2.0
    for a in range(chip):
        v = a - half
        for c in range(chip):
            u = c - half
            col = left + c + shift_x + a00 * u + a01 * v
            row = top + a + shift_y + a10 * u + a11 * v
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
            values[a * chip + c] = total


def _stage(coefficients, templates, gx, gy, weights, top, left, integer_peak, chip, max_iterations, tolerance_px,
           not_converged_px, max_strain, max_departure, done, shift, strain,
           zncc):  # pragma: no cover (compiled)
    """Numba body of :func:`affine_stage`, one chip at a time (``done``, ``shift`` (B, 2),
    ``strain`` (B, 4) and ``zncc`` written in place; ``shift`` and ``strain`` hold the start)."""
    count = templates.shape[0]
    n = chip * chip
    half = (chip - 1) / 2.0
    columns = np.empty((8, n))
    weighted = np.empty((8, n))
    hessian = np.empty((8, 8))
    correlation = np.empty((8, 8))
    scale = np.empty(8)
    centred_template = np.empty(n)
    sample = np.empty(n)
    rhs = np.empty(8)
    work = np.empty((8, 9))
    for b in range(count):
        for a in range(chip):
            v = a - half
            for c in range(chip):
                u = c - half
                p = a * chip + c
                x = np.float64(gx[b, a, c])
                y = np.float64(gy[b, a, c])
                columns[0, p] = np.float64(templates[b, a, c])
                columns[1, p] = 1.0
                columns[2, p] = x
                columns[3, p] = y
                columns[4, p] = x * u
                columns[5, p] = x * v
                columns[6, p] = y * u
                columns[7, p] = y * v
        w = weights[b]
        for k in range(8):
            for p in range(n):
                weighted[k, p] = columns[k, p] * w[p]
        for k in range(8):
            for m in range(8):
                total = 0.0
                for p in range(n):
                    total += weighted[k, p] * columns[m, p]
                hessian[k, m] = total
        # well posed: positive diagonal, finite, smallest eigenvalue of the correlation matrix > 1e-12
        good = True
        for k in range(8):
            scale[k] = np.sqrt(hessian[k, k])
            if not scale[k] > 0:
                good = False
        if good:
            for k in range(8):
                for m in range(8):
                    correlation[k, m] = hessian[k, m] / (scale[k] * scale[m])
                    if not np.isfinite(correlation[k, m]):
                        good = False
        if good:
            good = np.linalg.eigvalsh(correlation).min() > _WELL_POSED_EIGENVALUE
        if not good:
            continue
        total = 0.0
        for p in range(n):
            total += columns[0, p]
        mean = total / n
        energy = 0.0
        for p in range(n):
            centred_template[p] = columns[0, p] - mean
            energy += centred_template[p] * centred_template[p]
        norm = np.sqrt(energy)
        for p in range(n):
            centred_template[p] /= norm
        s_x = shift[b, 0]
        s_y = shift[b, 1]
        a00 = strain[b, 0]
        a01 = strain[b, 1]
        a10 = strain[b, 2]
        a11 = strain[b, 3]
        change = np.inf
        value = np.nan
        for _ in range(max_iterations):
            _sample_chip(coefficients, top[b], left[b], s_x, s_y, a00, a01, a10, a11, chip, sample)
            total = 0.0
            for p in range(n):
                total += sample[p]
            mean = total / n
            dot = 0.0
            energy = 0.0
            for p in range(n):
                centred = sample[p] - mean
                dot += centred * centred_template[p]
                energy += centred * centred
            sample_norm = np.sqrt(energy)
            value = dot / (sample_norm if sample_norm > 0 else np.inf)
            for k in range(8):
                total = 0.0
                for p in range(n):
                    total += weighted[k, p] * sample[p]
                rhs[k] = total
            beta = _solved(hessian, rhs, work)
            gain = beta[0]
            fine = gain > 0
            for k in range(8):
                if not np.isfinite(beta[k]):
                    fine = False
            divisor = gain if fine else 1.0
            d_x = beta[2] / divisor
            d_y = beta[3] / divisor
            # (I + dA)^-1 (NaN where singular), then M = (I + A)(I + dA)^-1, p <- p - M dp, A <- M - I
            e00 = 1.0 + beta[4] / divisor
            e01 = beta[5] / divisor
            e10 = beta[6] / divisor
            e11 = 1.0 + beta[7] / divisor
            det = e00 * e11 - e01 * e10
            if det == 0:
                det = np.nan
            i00 = e11 / det
            i01 = -e01 / det
            i10 = -e10 / det
            i11 = e00 / det
            m00 = (1.0 + a00) * i00 + a01 * i10
            m01 = (1.0 + a00) * i01 + a01 * i11
            m10 = a10 * i00 + (1.0 + a11) * i10
            m11 = a10 * i01 + (1.0 + a11) * i11
            new_x = s_x - (m00 * d_x + m01 * d_y)
            new_y = s_y - (m10 * d_x + m11 * d_y)
            n00 = m00 - 1.0
            n01 = m01
            n10 = m10
            n11 = m11 - 1.0
            step = _nan_max(_nan_max(abs(new_x - s_x), abs(new_y - s_y)),
                            _nan_max(_nan_max(abs(n00 - a00), abs(n01 - a01)),
                                     _nan_max(abs(n10 - a10), abs(n11 - a11))) * (chip / 2.0))
            fine = fine and np.isfinite(step)
            if fine:
                s_x, s_y, a00, a01, a10, a11 = new_x, new_y, n00, n01, n10, n11
                change = step
            else:
                change = np.inf
            sane = (fine and abs(n00) <= max_strain and abs(n01) <= max_strain and abs(n10) <= max_strain
                    and abs(n11) <= max_strain)
            if not sane:
                change = np.inf
                break
            if step < tolerance_px:
                break
        largest = max(max(abs(a00), abs(a01)), max(abs(a10), abs(a11)))
        reach = max_departure + largest * (chip / 2.0)
        done[b] = (change <= not_converged_px and abs(s_x - integer_peak[b, 0]) <= reach
                   and abs(s_y - integer_peak[b, 1]) <= reach and largest <= max_strain)
        shift[b, 0] = s_x
        shift[b, 1] = s_y
        strain[b, 0] = a00
        strain[b, 1] = a01
        strain[b, 2] = a10
        strain[b, 3] = a11
        zncc[b] = value


def _nan_max(a, b):  # pragma: no cover (compiled)
    """max(a, b), NaN when either is NaN (numpy's maximum)."""
    if a != a or b != b:
        return np.nan
    return a if a >= b else b


def _solved(matrix, rhs, work):  # pragma: no cover (compiled)
    """The solution of the 8 x 8 system ``matrix`` x = ``rhs`` by Gaussian elimination with partial
    pivoting (LAPACK's gesv, to rounding); inf/NaN where singular. ``work`` (8, 9): scratch."""
    size = rhs.shape[0]
    for i in range(size):
        for k in range(size):
            work[i, k] = matrix[i, k]
        work[i, size] = rhs[i]
    for i in range(size):
        pivot = i
        for m in range(i + 1, size):
            if abs(work[m, i]) > abs(work[pivot, i]):
                pivot = m
        if pivot != i:
            for k in range(size + 1):
                swap = work[i, k]
                work[i, k] = work[pivot, k]
                work[pivot, k] = swap
        for m in range(i + 1, size):
            factor = work[m, i] / work[i, i]
            for k in range(i, size + 1):
                work[m, k] -= factor * work[i, k]
    solution = np.empty(size)
    for i in range(size - 1, -1, -1):
        total = work[i, size]
        for k in range(i + 1, size):
            total -= work[i, k] * solution[k]
        solution[i] = total / work[i, i]
    return solution


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
_sample_chip_py = _sample_chip
_solved_py = _solved
_nan_max_py = _nan_max
