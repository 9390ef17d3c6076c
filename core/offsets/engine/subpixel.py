"""Sub-pixel refinement of the integer peaks: a 3x3 Gaussian peak fit, then Lucas-Kanade.

Offsets are (B, 2) float arrays of (dx, dy) px, dx + right, dy + down; peak
curvatures (B, 2) likewise per x and y axis (per px^2). ZNCC patches and
images are indexed [row, column].

* :func:`fit_peaks`: a 2-D quadratic fitted to log(ZNCC) around each integer peak.
* :func:`refine_lucas_kanade` (``subpixel="lk"``): inverse-compositional
  Lucas-Kanade translation with a gain and bias term (so brightness changes do
  not bias the offset), sampling a quintic-spline model of the secondary
  (:func:`.spline_kernel.spline_coefficients` once per block; each iteration evaluates the
  spline for all chips at once, with the separable form of
  ``map_coordinates(order=5, prefilter=False)`` that a single shift per chip allows).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from .params import SPLINE_MARGIN, Params
from .search import demeaned, windows_at
from .spline_kernel import spline_coefficients

_LK_MAX_ITERATIONS = 6
#: Chips refined together by Lucas-Kanade (its per-chip stacks take ~120 x chip^2 bytes).
_LK_CHUNK = 512
#: Iterations stop once the update is below this (px); against 1e-3 the bench RMSE moves < 1e-4 px
#: with 18 % fewer resamplings.
_LK_TOLERANCE_PX = 3e-3
#: A refinement still moving by more than this after the last iteration has not converged.
_LK_NOT_CONVERGED_PX = 0.05
_LK_MAX_DEPARTURE_PX = 1.5
#: Smallest eigenvalue ratio of the LK translation Hessian before it counts as singular.
_SINGULAR_EIGEN_RATIO = 1e-6

_QUADRATIC_FIT = np.linalg.pinv(np.array(
    [[1.0, x, y, x * x, y * y, x * y] for y in (-1, 0, 1) for x in (-1, 0, 1)]))


def fit_peaks(patch: np.ndarray, ok: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel (dx, dy) correction of each integer peak from its 3x3 ZNCC neighbourhood ``patch``
    (B, 3, 3) [row, column].

    A 2-D quadratic is fitted to log(ZNCC) (a Gaussian peak) where all nine
    values are positive, to ZNCC itself otherwise; a fit without a maximum
    inside the 3x3 neighbourhood (ridge-like peaks) falls back to separable
    3-point parabolas. Chips whose 3x3 neighbourhood has an excluded position
    (non-finite) become invalid. Also returns the peak curvature (B, 2), minus the 3-point
    second differences of ZNCC along x (columns) and y (rows) (per px^2).
    """
    ok = ok & np.all(np.isfinite(patch), axis=(1, 2))
    patch = np.where(np.isfinite(patch), patch, 0.0)
    curvature = np.stack([2 * patch[:, 1, 1] - patch[:, 1, 0] - patch[:, 1, 2],
                          2 * patch[:, 1, 1] - patch[:, 0, 1] - patch[:, 2, 1]], axis=1)
    positive = np.all(patch > 1e-6, axis=(1, 2))
    values = np.where(positive[:, None, None], np.log(np.where(positive[:, None, None], patch, 1.0)), patch)

    c = values.reshape(len(values), 9) @ _QUADRATIC_FIT.T  # a, bx, by, cxx, cyy, cxy
    hxx, hyy, hxy = 2 * c[:, 3], 2 * c[:, 4], c[:, 5]
    det = hxx * hyy - hxy * hxy
    maximum = (hxx < 0) & (det > 1e-12)
    safe = np.where(maximum, det, 1.0)
    fx = (-hyy * c[:, 1] + hxy * c[:, 2]) / safe
    fy = (hxy * c[:, 1] - hxx * c[:, 2]) / safe
    maximum &= (np.abs(fx) <= 1.0) & (np.abs(fy) <= 1.0)
    fx = np.where(maximum, fx, _parabola_vertex(values[:, 1, 0], values[:, 1, 1], values[:, 1, 2]))
    fy = np.where(maximum, fy, _parabola_vertex(values[:, 0, 1], values[:, 1, 1], values[:, 2, 1]))
    return np.clip(np.stack([fx, fy], axis=1), -1.0, 1.0), curvature, ok


def _parabola_vertex(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    curvature = left - 2 * centre + right
    vertex = 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0)
    return np.where(curvature < 0, np.clip(vertex, -0.5, 0.5), 0.0)


def refine_lucas_kanade(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray,
                        sec_invalid_sums: np.ndarray, start: np.ndarray, integer_peak: np.ndarray,
                        ok: np.ndarray, p: Params, n_rows: int, n_cols: int,
                        pixel_weights: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None,
                        inputs: Optional[tuple] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-compositional Lucas-Kanade translation with gain and bias.

    Model: ``sec(x + offset) = gain * ref(x) + bias``. Linearising the
    template, ``sec_w = gain*T0 + grad(T).q + bias`` with ``q = gain*delta`` is
    linear in (q, gain, bias) with a design matrix fixed per chip, so its
    least-squares operator is computed once; each iteration samples the
    secondary's quintic spline at the current offsets for all active chips at
    once and updates ``offset -= q / gain``. Offsets (``start``, ``integer_peak``
    and the result) are (B, 2) (dx, dy) in pixels.
    ``ref`` is the block's reference with its ``SPLINE_MARGIN``, ``sec`` the
    demeaned secondary block. A chip becomes invalid when the gain is not
    positive, the Hessian is singular, the offset departs more than
    ``_LK_MAX_DEPARTURE_PX`` from the integer peak, it does not converge, or
    the spline support of its final footprint touches invalid pixels.
    Chips are refined ``_LK_CHUNK`` at a time (bounded memory whatever the block size).
    ``pixel_weights(chips, offsets)`` (optional) gives (len(chips), chip, chip) least-squares
    weights of the template pixels (0 = ignored: nodata, or a secondary sample next to nodata
    at the starting ``offsets``); with it the caller checks where the chip ends (the final
    spline-support test is skipped). ``inputs``: :func:`lk_block_inputs` of the block when the
    caller already has them.
    Returns the offsets, the ZNCC at the last sampled position and validity.
    """
    offset = start.astype(np.float64).copy()
    peak = np.full(len(offset), np.nan)
    candidates = np.flatnonzero(ok)
    if candidates.size == 0:
        return offset, peak, ok
    ok = ok.copy()
    reference, gradients, coefficients = inputs if inputs is not None else lk_block_inputs(ref, ref_valid, sec)
    chunk = min(_LK_CHUNK, max(1, _LK_CHUNK * 32 * 32 // (p.chip * p.chip)))  # large (ladder) chips: fewer
    for first in range(0, candidates.size, chunk):
        chips = candidates[first:first + chunk]
        first_row = (chips // n_cols) * p.step
        first_col = (chips % n_cols) * p.step
        templates = windows_at(reference, p.chip, first_row, first_col)
        gradient_windows = [windows_at(image, p.chip, first_row, first_col) for image in gradients]
        weights = None if pixel_weights is None else pixel_weights(chips, offset[chips])
        operator, coupling, template_norm, well_posed = _lk_operators(templates, *gradient_windows,
                                                                      weights=weights)
        ok[chips[~well_posed]] = False
        chips = chips[well_posed]
        state = (operator[well_posed], coupling[well_posed], template_norm[well_posed])
        if weights is not None:
            state += (weights.reshape(len(weights), -1)[well_posed],)
        _iterate_lucas_kanade(coefficients, sec_invalid_sums, chips, state, offset, peak, integer_peak, ok,
                              p, n_cols)
    return offset, peak, ok


def lk_block_inputs(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray
                    ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray], np.ndarray]:
    """What the LK refinements need of a block: the reference pixels inside its
    ``SPLINE_MARGIN`` (float32), their x and y spline derivatives (float32, ``_lk_gradients``)
    and the quintic-spline coefficients of the (demeaned) secondary ``sec`` (float32)."""
    g = SPLINE_MARGIN
    reference = ref[g:ref.shape[0] - g, g:ref.shape[1] - g].astype(np.float32)
    coefficients = spline_coefficients(sec).astype(np.float32)
    return reference, _lk_gradients(ref, ref_valid), coefficients


def _iterate_lucas_kanade(coefficients: np.ndarray, sec_invalid_sums: np.ndarray, chips: np.ndarray,
                          state: Tuple[np.ndarray, np.ndarray, np.ndarray], offset: np.ndarray,
                          peak: np.ndarray, integer_peak: np.ndarray, ok: np.ndarray, p: Params,
                          n_cols: int) -> None:
    """The Lucas-Kanade iterations of ``chips`` (their operators in ``state``); updates
    ``offset`` (dx, dy), ``peak`` and ``ok`` in place (see ``refine_lucas_kanade``)."""
    top = (chips // n_cols) * p.step + p.halo
    left = (chips % n_cols) * p.step + p.halo
    n = p.chip * p.chip
    active = np.arange(len(chips))  # positions in ``chips`` still iterating
    last_update = np.zeros(len(chips))
    for _ in range(_LK_MAX_ITERATIONS):
        if active.size == 0:
            break
        b = chips[active]
        sampled = sample_translated(coefficients, top[active], left[active], offset[b], p.chip)
        sampled = sampled.reshape(len(active), n)
        peak[b], good, update = lk_step(sampled, *state)
        offset[b] -= update
        last_update[active] = np.where(good, np.hypot(update[:, 0], update[:, 1]), np.inf)
        departed = np.any(np.abs(offset[b] - integer_peak[b]) > _LK_MAX_DEPARTURE_PX, axis=1)
        ok[b[~good | departed]] = False
        going = good & ~departed & (last_update[active] >= _LK_TOLERANCE_PX)
        if not going.all():
            active = active[going]
            state = tuple(array[going] for array in state)
    ok[chips[last_update > _LK_NOT_CONVERGED_PX]] = False
    if len(state) == 3:
        ok[chips] &= _spline_support_valid(sec_invalid_sums, top, left, offset[chips], p.chip)


def lk_step(sampled: np.ndarray, operator: np.ndarray, coupling: np.ndarray, template_norm: np.ndarray,
            weights: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Lucas-Kanade step from the secondary sampled at the current offsets (B, n), with the
    operators of ``_lk_operators``: the ZNCC there (B,), whether the step is usable (positive
    gain, finite) (B,), and the (dx, dy) update to subtract from the offsets (B, 2) px (0 where
    not usable). With the pixel ``weights`` (B, n) the ZNCC is taken over the weighted pixels."""
    n = sampled.shape[1]
    products = np.einsum("bkn,bn->bk", operator, sampled).astype(np.float64)  # q_dx, q_dy, t.s
    q = products[:, :2]
    if weights is not None:
        total = np.einsum("bn,bn->b", weights, sampled, dtype=np.float64)
        energy = (np.einsum("bn,bn->b", weights * sampled, sampled, dtype=np.float64)
                  - total * total / weights.sum(axis=1))
    else:
        total = sampled.sum(axis=1, dtype=np.float64)
        energy = np.einsum("bn,bn->b", sampled, sampled).astype(np.float64) - total * total / n
    peak = products[:, 2] / np.sqrt(np.where(energy > 0, energy, np.inf))
    gain = products[:, 2] / template_norm - np.einsum("bk,bk->b", coupling, q)
    good = (gain > 0) & np.all(np.isfinite(q), axis=1)
    update = q / np.where(good, gain, 1.0)[:, None]
    return peak, good, np.where(good[:, None], update, 0.0)


def _lk_gradients(ref: np.ndarray, ref_valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """x (column) and y (row) derivatives (float32) of the reference's quintic-spline interpolant
    at the pixels of the block inside its ``SPLINE_MARGIN`` (so block edges do not distort them)."""
    centred = demeaned(ref, ref_valid)
    coefficients = spline_coefficients(centred)
    # derivative of the quintic B-spline interpolant at the knots:
    # (50 (c[k+1] - c[k-1]) + 5 (c[k+2] - c[k-2])) / 120
    g = SPLINE_MARGIN
    height, width = coefficients.shape
    inner_rows, inner_cols = slice(g, height - g), slice(g, width - g)

    def rows_at(k: int) -> np.ndarray:
        return coefficients[g + k:height - g + k, inner_cols]

    def cols_at(k: int) -> np.ndarray:
        return coefficients[inner_rows, g + k:width - g + k]

    grad_y = ((50 * (rows_at(1) - rows_at(-1)) + 5 * (rows_at(2) - rows_at(-2))) / 120).astype(np.float32)
    grad_x = ((50 * (cols_at(1) - cols_at(-1)) + 5 * (cols_at(2) - cols_at(-2))) / 120).astype(np.float32)
    return grad_x, grad_y


def _lk_basis(templates: np.ndarray, grad_x: np.ndarray, grad_y: np.ndarray) -> dict:
    """The orthogonalised LK basis of each chip, from the (B, chip, chip) templates and their
    x/y gradient windows (all (B, n) float32 unless noted, n = chip^2):

    ``unit`` the zero-mean unit-norm template t; ``o_x``, ``o_y`` the gradient columns made
    orthogonal to the constant and to t (Frisch-Waugh-Lovell: this separates the translation
    from gain and bias); ``along`` (B, 2) float32 the projections g_x.t, g_y.t;
    ``template_norm`` (B,) float64 ||T - mean||; ``h_xx``, ``h_yy``, ``h_xy`` (B,) float64
    the Gram entries of (o_x, o_y).
    """
    count = len(templates)
    n = templates.shape[1] * templates.shape[2]
    g_x = grad_x.reshape(count, n)
    g_y = grad_y.reshape(count, n)

    t0 = templates.reshape(len(templates), n)
    t0 = t0 - t0.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    template_norm = np.sqrt(np.einsum("bn,bn->b", t0, t0, dtype=np.float64))
    unit = t0 / template_norm[:, None].astype(np.float32)
    # remove the constant and the template from the gradient columns
    along_y = np.einsum("bn,bn->b", g_y, unit)
    along_x = np.einsum("bn,bn->b", g_x, unit)
    o_y = g_y - g_y.mean(axis=1, keepdims=True) - along_y[:, None] * unit
    o_x = g_x - g_x.mean(axis=1, keepdims=True) - along_x[:, None] * unit
    return dict(unit=unit, o_x=o_x, o_y=o_y, along=np.stack([along_x, along_y], axis=1),
                template_norm=template_norm,
                h_yy=np.einsum("bn,bn->b", o_y, o_y, dtype=np.float64),
                h_xx=np.einsum("bn,bn->b", o_x, o_x, dtype=np.float64),
                h_xy=np.einsum("bn,bn->b", o_y, o_x, dtype=np.float64))


def _lk_operators(templates: np.ndarray, grad_x: np.ndarray, grad_y: np.ndarray,
                  weights: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-chip least-squares operators of the LK model, from the (B, chip, chip) templates
    and their x/y gradient windows.

    Returns ``operator`` (B, 3, n) float32 whose rows applied to the sampled
    secondary s give (q_dx, q_dy, t.s) with t the zero-mean unit-norm
    template; ``coupling`` (B, 2) (x, y) and ``template_norm`` (B,) such that
    gain = t.s / template_norm - coupling.q; and the chips whose translation
    Hessian is well conditioned. The gradient columns are made orthogonal to
    the template and the constant (see ``_lk_basis``). Gradients are the exact
    derivatives of the reference's quintic-spline interpolant at the pixels. With ``weights``
    (B, chip, chip) the least squares are weighted (means and inner products over the weights;
    the operator rows carry them).
    """
    if weights is not None:
        return _weighted_lk_operators(templates, grad_x, grad_y, weights)
    return _lk_operators_of(_lk_basis(templates, grad_x, grad_y))


def _lk_operators_of(basis: dict) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``_lk_operators`` from an ``_lk_basis``."""
    o_x, o_y, unit = basis["o_x"], basis["o_y"], basis["unit"]
    h_xx, h_yy, h_xy = basis["h_xx"], basis["h_yy"], basis["h_xy"]
    template_norm = basis["template_norm"]
    det = h_yy * h_xx - h_xy ** 2
    trace = h_yy + h_xx
    well_posed = np.isfinite(det) & (det > _SINGULAR_EIGEN_RATIO * trace * trace)
    safe = np.where(well_posed, det, 1.0)
    operator = np.empty((len(unit), 3, unit.shape[1]), np.float32)
    operator[:, 0] = (h_yy / safe).astype(np.float32)[:, None] * o_x
    operator[:, 0] -= (h_xy / safe).astype(np.float32)[:, None] * o_y
    operator[:, 1] = (h_xx / safe).astype(np.float32)[:, None] * o_y
    operator[:, 1] -= (h_xy / safe).astype(np.float32)[:, None] * o_x
    operator[:, 2] = unit
    coupling = basis["along"].astype(np.float64) / template_norm[:, None]
    return operator, coupling, template_norm, well_posed


def _weighted_lk_operators(templates: np.ndarray, grad_x: np.ndarray, grad_y: np.ndarray, weights: np.ndarray
                           ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_lk_operators` of weighted least squares (float64): weighted means and inner products."""
    count = len(templates)
    w = weights.reshape(count, -1).astype(np.float64)
    total = np.maximum(w.sum(axis=1, keepdims=True), 1e-12)

    def centred(values: np.ndarray) -> np.ndarray:
        values = values.reshape(count, -1).astype(np.float64)
        return values - (w * values).sum(axis=1, keepdims=True) / total

    def dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.einsum("bn,bn->b", w * x, y)

    t0 = centred(templates)
    template_norm = np.sqrt(dot(t0, t0))
    unit = t0 / np.where(template_norm > 0, template_norm, 1.0)[:, None]
    g_x, g_y = centred(grad_x), centred(grad_y)
    along_x, along_y = dot(g_x, unit), dot(g_y, unit)
    o_x = g_x - along_x[:, None] * unit
    o_y = g_y - along_y[:, None] * unit
    h_xx, h_yy, h_xy = dot(o_x, o_x), dot(o_y, o_y), dot(o_x, o_y)
    det = h_yy * h_xx - h_xy ** 2
    trace = h_yy + h_xx
    well_posed = (template_norm > 0) & np.isfinite(det) & (det > _SINGULAR_EIGEN_RATIO * trace * trace)
    safe = np.where(well_posed, det, 1.0)
    operator = np.empty((count, 3, w.shape[1]), np.float32)
    operator[:, 0] = w * ((h_yy / safe)[:, None] * o_x - (h_xy / safe)[:, None] * o_y)
    operator[:, 1] = w * ((h_xx / safe)[:, None] * o_y - (h_xy / safe)[:, None] * o_x)
    operator[:, 2] = w * unit
    coupling = np.stack([along_x, along_y], axis=1) / np.where(template_norm > 0, template_norm, 1.0)[:, None]
    return operator, coupling, template_norm, well_posed


def _spline_support_valid(sec_invalid_sums: np.ndarray, top: np.ndarray, left: np.ndarray,
                          offset: np.ndarray, chip: int) -> np.ndarray:
    """True where the spline support of the matched footprint holds only valid pixels.

    The support of samples at rows top + dy + [0, chip) spans
    floor(top + dy) - 2 .. floor(top + dy) + chip + 2, covered by the
    union of the 6 x 6 chip-sized footprints starting at floor - 2 .. floor + 3
    (likewise for the columns left + dx); ``offset`` is (B, 2) (dx, dy).
    """
    first_row = np.floor(top + offset[:, 1]).astype(int) - 2
    first_col = np.floor(left + offset[:, 0]).astype(int) - 2
    height, width = sec_invalid_sums.shape
    clean = np.ones(len(top), bool)
    for dr in range(6):
        for dc in range(6):
            r = first_row + dr
            c = first_col + dc
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            counts = sec_invalid_sums[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]
            clean &= inside & (counts == 0)
    return clean


def _bspline_weights(fraction: np.ndarray) -> np.ndarray:
    """Quintic B-spline weights (..., 6) of the coefficients at floor-2 .. floor+3."""
    t = fraction[..., None]
    t2, t3, t4, t5 = t * t, t ** 3, t ** 4, t ** 5
    return np.concatenate([
        (1 - t) ** 5,
        26 - 50 * t + 20 * t2 + 20 * t3 - 20 * t4 + 5 * t5,
        66 - 60 * t2 + 30 * t4 - 10 * t5,
        26 + 50 * t + 20 * t2 - 20 * t3 - 20 * t4 + 10 * t5,
        1 + 5 * t + 10 * t2 + 10 * t3 + 5 * t4 - 5 * t5,
        t5], axis=-1) / 120.0


def sample_translated(coefficients: np.ndarray, top: np.ndarray, left: np.ndarray, shift: np.ndarray,
                      chip: int) -> np.ndarray:
    """Quintic-spline values at rows top + dy + [0, chip) and columns left + dx + [0, chip),
    ``shift`` (B, 2) = (dx, dy) px per chip.

    Equivalent to ``ndimage.map_coordinates(coefficients, ..., order=5,
    prefilter=False)`` at those points (within the array), but exploits that
    every chip has one fractional shift: the 6 x 6 tap weights are shared by
    the chip's pixels, so the evaluation is two separable 6-tap passes over
    (chip + 5)^2 coefficient patches, vectorised over all chips. Returns (B, chip, chip).
    """
    rows = top + shift[:, 1]
    cols = left + shift[:, 0]
    base_rows = np.floor(rows)
    base_cols = np.floor(cols)
    w_rows = _bspline_weights(rows - base_rows)
    w_cols = _bspline_weights(cols - base_cols)
    taps = w_rows.shape[1]
    span = chip + taps - 1
    first_row = np.clip(base_rows.astype(np.intp) - 2, 0, coefficients.shape[0] - span)
    first_col = np.clip(base_cols.astype(np.intp) - 2, 0, coefficients.shape[1] - span)
    patch = windows_at(coefficients, span, first_row, first_col)
    w_rows = w_rows.astype(coefficients.dtype)[:, :, None, None]
    w_cols = w_cols.astype(coefficients.dtype)[:, :, None, None]
    along_rows = w_rows[:, 0] * patch[:, :chip, :]
    for k in range(1, taps):
        along_rows += w_rows[:, k] * patch[:, k:k + chip, :]
    values = w_cols[:, 0] * along_rows[:, :, :chip]
    for k in range(1, taps):
        values += w_cols[:, k] * along_rows[:, :, k:k + chip]
    return values
