"""Sub-pixel refinement that models an affine deformation inside the chip (``subpixel="affine"``).

Offsets are (B, 2) float arrays of (dx, dy) px, dx + right, dy + down; the
deformation terms are the displacement gradient of the chip, (B, 4) =
(d(dx)/dx, d(dx)/dy, d(dy)/dx, d(dy)/dy) in px/px (dimensionless), x + right
(columns), y + down (rows): e.g. d(dx)/dx > 0 is an extension along x.
Chip pixel (a, b) (row, column) sits at u = b - (chip - 1)/2, v = a - (chip - 1)/2
from the chip centre; the displacement model is d(u, v) = p + A (u, v), so the
offset p is the displacement at the chip centre (where the output grid puts it).

Three stages, per chip:

1. translation Lucas-Kanade with gain and bias, the arithmetic of
   :func:`.subpixel.refine_lucas_kanade` (its numbers exactly): inverse
   compositional, the secondary's quintic spline sampled at one shift per chip;
2. the strain test, on the last sample s of stage 1 (at p_s, within the
   convergence tolerance of the result): the first-order affine model
   ``s = bias + gain T + (grad T).(q + G (u, v))`` (columns 1, T, g_x, g_y,
   g_x u, g_x v, g_y u, g_y v, fixed per chip) is fitted by least squares
   (Frisch-Waugh-Lovell on the stage-1 basis). Its strain coefficients gamma
   (4) get a chi-square test, chi2 = gamma' S gamma / sigma^2 / (1 + 4 pi
   smoothing^2) (S: their Gram matrix after partialling out the other
   columns, sigma^2: residual variance; the last factor counts the pixels
   the anti-aliasing Gaussian correlates). Chips with chi2 <= ``STRAIN_TEST``,
   or whose first-order deformation moves the chip's edge by less than
   ``MIN_STRAIN_PX`` (max |A| chip/2), keep the stage-1 offset (on pure translations that is nearly all: the
   translation-only model is then the more precise one), with the first-order
   estimate A = (I + gamma/gain)^-1 - I as their deformation terms;
3. chips with significant strain: inverse-compositional affine Lucas-Kanade
   with gain and bias, the secondary's spline sampled at the affine-warped
   pixels (``map_coordinates(order=5, prefilter=False)``), least squares
   weighted by a Gaussian window (sigma = ``AFFINE_WINDOW`` x chip), started
   from the stage-2 fit. The warp W(x) = x + p + A (x - c) is updated as
   W <- W o dW^-1: M = (I + A)(I + dA)^-1, p <- p - M dp, A <- M - I.
   A chip that does not converge, whose gain is not positive, whose offset
   departs from its integer peak by more than 1.5 px + max|A| chip/2 (the
   integer peak follows the texture, not the chip centre), whose |A| entries exceed
   ``MAX_STRAIN`` or whose warped footprint touches invalid pixels keeps its
   stage-1 offset and first-order terms.

Chips with nodata in their search window (:func:`refine_affine_weighted`) start from the weighted
translation Lucas-Kanade of :mod:`.pipeline`; stage 2 is then a weighted least squares and stage 3
re-weights the pixels at every iteration by the window times their validity at the current warp
(:class:`PixelValidity`: valid template pixel, valid nearest secondary pixel).

Stages 1 and 2 run in a compiled kernel (:mod:`.affine_kernel`, numba) when
numba is installed, else in numpy; both give the same numbers (to float
rounding, ~1e-6 px).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import affine_kernel
from .params import Params
from .search import windows_at
from .subpixel import (_LK_CHUNK, _LK_MAX_DEPARTURE_PX, _LK_MAX_ITERATIONS, _LK_NOT_CONVERGED_PX,
                       _LK_TOLERANCE_PX, _lk_basis, _lk_operators_of, _spline_support_valid, lk_block_inputs,
                       lk_step, sample_translated)

#: Strain test threshold (chi-square of the 4 strain terms, 4 degrees of freedom, corrected for the
#: noise correlation of the smoothing): above it a chip is refined with the affine model. Measured
#: with bench/correlation.py (defaults otherwise): 8 / 6 / 4 give RMSE dx / dy 0.0515 / 0.0438,
#: 0.0483 / 0.0425, 0.0473 / 0.0426 px on the ITS_LIVE-shaped warp and 0.0260 / 0.0278, 0.0260 /
#: 0.0278, 0.0264 / 0.0283 px on the 20 dB translations (more chips take the noisier affine model);
#: the real pairs' stable-ground std moves by at most 0.003 px.
STRAIN_TEST = 6.0
#: ... and the first-order deformation must move the chip's edge pixels by at least this (px):
#: max |A| x chip / 2 (noise-free pairs pass the chi-square test with negligible strain).
MIN_STRAIN_PX = 0.02
#: Sigma of the Gaussian window of the affine stage, as a fraction of the chip size (0 = uniform).
AFFINE_WINDOW = 0.375
#: Largest |deformation term| (px/px) the affine stage accepts.
MAX_STRAIN = 0.5
_AFFINE_MAX_ITERATIONS = 12
_AFFINE_TOLERANCE_PX = 1e-3
#: Strain terms in band order (d(dx)/dx, d(dx)/dy, d(dy)/dx, d(dy)/dy).
STRAIN_TERMS = ("ddx_dx", "ddx_dy", "ddy_dx", "ddy_dy")


def chip_coordinates(chip: int) -> Tuple[np.ndarray, np.ndarray]:
    """(u, v) (n,) float64 of the chip pixels in row-major order, px from the chip centre
    (u + right, v + down)."""
    centred = np.arange(chip) - (chip - 1) / 2.0
    v, u = np.meshgrid(centred, centred, indexing="ij")
    return u.ravel(), v.ravel()


def refine_affine(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_invalid_sums: np.ndarray,
                  sec_valid: np.ndarray, start: np.ndarray, integer_peak: np.ndarray, ok: np.ndarray,
                  p: Params, n_rows: int, n_cols: int, inputs: Optional[tuple] = None
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Affine refinement of the chips ``ok`` of one block (see the module docstring).

    Arguments as :func:`.subpixel.refine_lucas_kanade` plus ``sec_valid`` (the
    secondary block's valid pixels, for the warped footprints). Returns the
    offsets (B, 2) (dx, dy) px, the ZNCC at the last sampled position (B,),
    validity (B,) and the deformation terms (B, 4) px/px (NaN where not fitted).
    """
    offset = start.astype(np.float64).copy()
    peak = np.full(len(offset), np.nan)
    strain = np.full((len(offset), 4), np.nan)
    candidates = np.flatnonzero(ok)
    if candidates.size == 0:
        return offset, peak, ok, strain
    ok = ok.copy()
    reference, gradients, coefficients = inputs if inputs is not None else lk_block_inputs(ref, ref_valid, sec)
    invalid_table = None
    correlation = 1.0 + 4.0 * np.pi * p.smoothing ** 2
    for first in range(0, candidates.size, _LK_CHUNK):
        chips = candidates[first:first + _LK_CHUNK]
        first_row = (chips // n_cols) * p.step
        first_col = (chips % n_cols) * p.step
        top = first_row + p.halo
        left = first_col + p.halo
        stage = affine_kernel.translation_and_strain_test(
            coefficients, sec_invalid_sums, reference, *gradients, first_row, first_col, top, left, offset[chips],
            integer_peak[chips], p.chip, correlation)
        converged, offset[chips], peak[chips], chi2, joint_shift, joint_strain, sample_at = stage
        ok[chips] &= converged
        first_order = _inverse_2x2(1.0 + joint_strain[:, 0], joint_strain[:, 1], joint_strain[:, 2],
                                   1.0 + joint_strain[:, 3])  # (I + dA)^-1, (B, 2, 2)
        strain[chips] = (first_order - np.eye(2)).reshape(-1, 4)
        strained = (ok[chips] & (chi2 > STRAIN_TEST) & np.all(np.isfinite(joint_strain), axis=1)
                    & (np.abs(strain[chips]).max(axis=1) * (p.chip / 2.0) > MIN_STRAIN_PX))
        if strained.any():
            if invalid_table is None:
                invalid_table = _summed_area(~sec_valid)
            picked = np.flatnonzero(strained)
            rows, cols = first_row[picked], first_col[picked]
            shift0 = sample_at[picked] - np.einsum("bij,bj->bi", first_order[picked], joint_shift[picked])
            result = _affine_stage(coefficients, invalid_table, windows_at(reference, p.chip, rows, cols),
                                   *(windows_at(image, p.chip, rows, cols) for image in gradients),
                                   top[picked], left[picked], shift0, first_order[picked] - np.eye(2),
                                   integer_peak[chips[picked]], p.chip)
            done, shift, terms, zncc = result
            update = chips[picked[done]]
            offset[update] = shift[done]
            strain[update] = terms[done].reshape(-1, 4)
            peak[update] = zncc[done]
    strain[~ok] = np.nan
    return offset, peak, ok, strain


def refine_affine_weighted(start: np.ndarray, integer_peak: np.ndarray, ok: np.ndarray, p: Params, n_cols: int,
                           validity: "PixelValidity", inputs: tuple
                           ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stages 2 and 3 for chips with nodata (``ok``), started from their weighted translation
    Lucas-Kanade offsets ``start`` (B, 2) (dx, dy) px: the strain test of stage 2 as a weighted
    least squares on the pixels ``validity`` keeps, then for chips with significant strain the
    weighted affine stage 3. Returns the offsets (B, 2) (``start`` where no affine fit was
    kept), the stage-3 ZNCC (NaN where not run), which chips got the affine fit, and the
    deformation terms (B, 4) px/px (first order where stage 3 did not run or failed; NaN where
    not ``ok``). ``inputs``: the block's :func:`.subpixel.lk_block_inputs`."""
    offset = start.astype(np.float64).copy()
    peak = np.full(len(offset), np.nan)
    strain = np.full((len(offset), 4), np.nan)
    fitted = np.zeros(len(offset), bool)
    candidates = np.flatnonzero(ok)
    if candidates.size == 0:
        return offset, peak, fitted, strain
    reference, gradients, coefficients = inputs
    correlation = 1.0 + 4.0 * np.pi * p.smoothing ** 2
    for first in range(0, candidates.size, _LK_CHUNK):
        chips = candidates[first:first + _LK_CHUNK]
        rows, cols = (chips // n_cols) * p.step, (chips % n_cols) * p.step
        top, left = rows + p.halo, cols + p.halo
        templates = windows_at(reference, p.chip, rows, cols).reshape(len(chips), -1)
        gx, gy = (windows_at(image, p.chip, rows, cols).reshape(len(chips), -1) for image in gradients)
        samples = sample_translated(coefficients, top, left, offset[chips], p.chip).reshape(len(chips), -1)
        mask = validity.at_offsets(chips, offset[chips], p.halo).reshape(len(chips), -1)
        chi2, joint_shift, joint_strain = weighted_strain_test(templates, gx, gy, samples, mask, p.chip, correlation)
        first_order = _inverse_2x2(1.0 + joint_strain[:, 0], joint_strain[:, 1], joint_strain[:, 2],
                                   1.0 + joint_strain[:, 3])
        strain[chips] = (first_order - np.eye(2)).reshape(-1, 4)
        strained = ((chi2 > STRAIN_TEST) & np.all(np.isfinite(joint_strain), axis=1)
                    & (np.abs(strain[chips]).max(axis=1) * (p.chip / 2.0) > MIN_STRAIN_PX))
        if not strained.any():
            continue
        picked = np.flatnonzero(strained)
        shift0 = offset[chips[picked]] - np.einsum("bij,bj->bi", first_order[picked], joint_shift[picked])
        done, shift, terms, zncc = _affine_stage(
            coefficients, None, templates[picked], gx[picked], gy[picked], top[picked], left[picked], shift0,
            first_order[picked] - np.eye(2), integer_peak[chips[picked]], p.chip,
            validity.of_chips(chips[picked]))
        update = chips[picked[done]]
        offset[update], strain[update], peak[update] = shift[done], terms[done].reshape(-1, 4), zncc[done]
        fitted[update] = True
    strain[~ok] = np.nan
    return offset, peak, fitted, strain


class PixelValidity:
    """Which pixels of chips with nodata count in their least squares: the template pixel and the
    secondary pixel nearest to its sample are valid. ``template_valid``: the block's reference
    validity (chip (i, j) at ``[i*step:, j*step:]``); ``sec_valid``: the secondary block's;
    ``min_share``: the share of a chip's pixels that must stay valid."""

    def __init__(self, template_valid: np.ndarray, sec_valid: np.ndarray, step: int, chip: int, n_cols: int,
                 min_share: float, chips: Optional[np.ndarray] = None):
        self.template_valid, self.sec_valid = template_valid, sec_valid
        self.step, self.chip, self.n_cols, self.min_share = step, chip, n_cols, min_share
        self.chips = chips

    def of_chips(self, chips: np.ndarray) -> "PixelValidity":
        """The same test for a subset: called with positions into ``chips``."""
        return PixelValidity(self.template_valid, self.sec_valid, self.step, self.chip, self.n_cols,
                             self.min_share, chips)

    def at_offsets(self, chips: np.ndarray, offsets: np.ndarray, halo: int) -> np.ndarray:
        """(len(chips), chip, chip) float32 weights of ``chips`` (flat chip indices) translated by
        ``offsets`` (dx, dy) px, with the secondary block ``halo`` px wider than the reference's
        chip area."""
        rows, cols = (chips // self.n_cols) * self.step + halo, (chips % self.n_cols) * self.step + halo
        positions = warped_positions(rows, cols, offsets, np.zeros((len(chips), 2, 2)), self.chip)
        return self(chips, *positions).astype(np.float32).reshape(len(chips), self.chip, self.chip)

    def __call__(self, chips: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(B, n) float64 0/1 weights of ``chips`` (flat chip indices, or positions into the subset)
        whose pixels are sampled at ``rows``, ``cols`` (B, n) of the secondary block."""
        if self.chips is not None:
            chips = self.chips[chips]
        first_row, first_col = (chips // self.n_cols) * self.step, (chips % self.n_cols) * self.step
        template = windows_at(self.template_valid, self.chip, first_row, first_col).reshape(len(chips), -1)
        height, width = self.sec_valid.shape
        r, c = np.floor(rows + 0.5).astype(np.intp), np.floor(cols + 0.5).astype(np.intp)
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        clean = self.sec_valid[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)] & inside
        return (template & clean).astype(np.float64)


def weighted_strain_test(templates: np.ndarray, gx: np.ndarray, gy: np.ndarray, samples: np.ndarray,
                         weights: np.ndarray, chip: int, correlation: float
                         ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stage 2 with pixel ``weights`` (B, n): the weighted least squares of the samples (B, n) on
    the first-order affine model (columns 1, T, g_x, g_y, g_x u, g_x v, g_y u, g_y v, all (B, n)).
    chi2 = (RSS without the 4 strain columns - RSS) / (sigma^2 correlation), sigma^2 = RSS /
    (sum of weights - 8). Returns chi2 (B,) (0 where the fit fails), dp (B, 2) px and dA (B, 4)
    px/px as :func:`translation_and_strain_test_numpy` (NaN where the fit fails). With unit
    weights it gives the numbers of the unweighted test."""
    u, v = chip_coordinates(chip)
    t = templates.astype(np.float64)
    g_x, g_y = gx.astype(np.float64), gy.astype(np.float64)
    s = samples.astype(np.float64)
    columns = np.stack([np.ones_like(t), t, g_x, g_y, g_x * u, g_x * v, g_y * u, g_y * v], axis=1)
    weighted, normal, posed = _weighted_normal_matrix(columns, weights)
    moments = np.einsum("bkn,bn->bk", weighted, s)
    total = np.einsum("bn,bn,bn->b", weights, s, s)
    beta = np.linalg.solve(normal, moments[..., None])[..., 0]
    reduced = np.linalg.solve(normal[:, :4, :4], moments[:, :4, None])[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        rss = total - np.einsum("bk,bk->b", beta, moments)
        explained = np.einsum("bk,bk->b", beta, moments) - np.einsum("bk,bk->b", reduced, moments[:, :4])
        sigma2 = np.maximum(rss, 0.0) / (weights.sum(axis=1) - 8)
        chi2 = explained / (sigma2 * correlation)
        gain = beta[:, 1]
        shift = beta[:, 2:4] / gain[:, None]
        strain = beta[:, 4:8] / gain[:, None]
    bad = ~posed | ~(gain > 0) | ~np.isfinite(chi2)
    return (np.where(bad, 0.0, chi2), np.where(bad[:, None], np.nan, shift),
            np.where(bad[:, None], np.nan, strain))


def translation_and_strain_test_numpy(coefficients: np.ndarray, invalid_sums: np.ndarray, reference: np.ndarray,
                                      grad_x: np.ndarray, grad_y: np.ndarray, first_row: np.ndarray,
                                      first_col: np.ndarray, top: np.ndarray, left: np.ndarray, start: np.ndarray,
                                      integer_peak: np.ndarray, chip: int, correlation: float):
    """Stages 1 and 2 in numpy for one chunk of chips (B of them).

    ``coefficients``: the secondary block's quintic-spline coefficients (float32);
    ``invalid_sums``: its invalid-pixel counts per chip-sized footprint (indexed by
    the first pixel); ``reference``, ``grad_x``, ``grad_y``: the block's reference
    pixels and their spline derivatives (float32), chip b at rows ``first_row[b]`` +
    [0, chip), columns ``first_col[b]`` + [0, chip); ``top``, ``left``: where each
    chip's pixels start in ``coefficients`` at zero offset; ``start``,
    ``integer_peak``: (B, 2) (dx, dy) px; ``correlation``: the noise-correlation
    factor of the chi-square.
    Returns ``converged`` (B,) (stage 1 valid: well posed, positive gain, within
    ``_LK_MAX_DEPARTURE_PX`` of the integer peak, converged, spline support on
    valid pixels), the stage-1 offsets (B, 2), their ZNCC (B,), the strain
    chi-square (B,), the joint first-order fit's shift increment dp (B, 2) and
    strain increment dA (B, 4) (both / gain, px and px/px, in the
    inverse-compositional sense: the secondary sampled at ``sample_at`` matches the
    template warped by x + dp + dA (u, v)), and ``sample_at`` (B, 2), the offset
    of the last sample.
    """
    templates = windows_at(reference, chip, first_row, first_col)
    gx, gy = (windows_at(image, chip, first_row, first_col) for image in (grad_x, grad_y))
    count = len(templates)
    n = chip * chip
    basis = _lk_basis(templates, gx, gy)
    operator, coupling, template_norm, well_posed = _lk_operators_of(basis)
    offset = start.astype(np.float64).copy()
    sample_at = offset.copy()
    samples = np.zeros((count, n), np.float32)
    peak = np.full(count, np.nan)
    converged = well_posed.copy()
    last_update = np.where(well_posed, 0.0, np.inf)
    active = np.flatnonzero(well_posed)
    for _ in range(_LK_MAX_ITERATIONS):
        if active.size == 0:
            break
        sampled = sample_translated(coefficients, top[active], left[active], offset[active], chip)
        sampled = sampled.reshape(len(active), n)
        samples[active] = sampled
        sample_at[active] = offset[active]
        peak[active], good, update = lk_step(sampled, operator[active], coupling[active], template_norm[active])
        offset[active] -= update
        last_update[active] = np.where(good, np.hypot(update[:, 0], update[:, 1]), np.inf)
        departed = np.any(np.abs(offset[active] - integer_peak[active]) > _LK_MAX_DEPARTURE_PX, axis=1)
        converged[active[~good | departed]] = False
        going = good & ~departed & (last_update[active] >= _LK_TOLERANCE_PX)
        active = active[going]
    converged &= last_update <= _LK_NOT_CONVERGED_PX
    converged &= _spline_support_valid(invalid_sums, top, left, offset, chip)
    chi2, joint_shift, joint_strain = _strain_test(basis, templates.reshape(count, n), gx.reshape(count, n),
                                                   gy.reshape(count, n), samples, chip, correlation)
    return converged, offset, peak, chi2, joint_shift, joint_strain, sample_at


def _strain_test(basis: dict, templates: np.ndarray, gx: np.ndarray, gy: np.ndarray, samples: np.ndarray,
                 chip: int, correlation: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stage 2 (see the module docstring) on (B, n) arrays: chi-square (B,), dp (B, 2), dA (B, 4)."""
    n = chip * chip
    u, v = chip_coordinates(chip)
    s = samples.astype(np.float64)
    unit = basis["unit"].astype(np.float64)
    o = np.stack([basis["o_x"], basis["o_y"]], axis=1).astype(np.float64)  # (B, 2, n)
    gx64, gy64 = gx.astype(np.float64), gy.astype(np.float64)
    z = np.stack([gx64 * u, gx64 * v, gy64 * u, gy64 * v], axis=1)  # (B, 4, n)
    gram_o = np.stack([np.stack([basis["h_xx"], basis["h_xy"]], -1),
                       np.stack([basis["h_xy"], basis["h_yy"]], -1)], -2)  # (B, 2, 2)
    z_one = z.sum(axis=2)
    z_unit = np.einsum("bkn,bn->bk", z, unit)
    z_o = np.einsum("bkn,bjn->bkj", z, o)  # (B, 4, 2)
    o_s = np.einsum("bjn,bn->bj", o, s)
    total = s.sum(axis=1)
    t_s = np.einsum("bn,bn->b", unit, s)
    z_s = np.einsum("bkn,bn->bk", z, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        inverse_o = np.linalg.inv(gram_o)
        q = np.einsum("bij,bj->bi", inverse_o, o_s)
        # strain columns with the constant, the template and the translation columns partialled out
        gram_z = (np.einsum("bkn,bln->bkl", z, z) - z_one[:, :, None] * z_one[:, None, :] / n
                  - z_unit[:, :, None] * z_unit[:, None, :]
                  - np.einsum("bki,bij,blj->bkl", z_o, inverse_o, z_o))
        score = z_s - z_one * (total / n)[:, None] - z_unit * t_s[:, None] - np.einsum("bkj,bj->bk", z_o, q)
        gamma = np.linalg.solve(gram_z, score[..., None])[..., 0]
        explained = np.einsum("bk,bk->b", gamma, score)
        q_joint = q - np.einsum("bij,bkj,bk->bi", inverse_o, z_o, gamma)
        gain = (t_s - np.einsum("bk,bk->b", z_unit, gamma)
                - np.einsum("bk,bk->b", basis["along"].astype(np.float64), q_joint)) / basis["template_norm"]
        residual = (np.einsum("bn,bn->b", s, s) - total * total / n - t_s * t_s
                    - np.einsum("bi,bi->b", q, o_s) - explained)
        sigma2 = np.maximum(residual, 0.0) / (n - 8)
        chi2 = explained / (sigma2 * correlation)
        shift = q_joint / gain[:, None]
        strain = gamma / gain[:, None]
    bad = ~(gain > 0) | ~np.isfinite(chi2)
    chi2 = np.where(bad, 0.0, chi2)
    return chi2, np.where(bad[:, None], np.nan, shift), np.where(bad[:, None], np.nan, strain)


def _inverse_2x2(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Inverses (B, 2, 2) of [[a, b], [c, d]] (NaN where singular)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        det = a * d - b * c
        det = np.where(det != 0, det, np.nan)
        return np.stack([np.stack([d, -b], axis=-1), np.stack([-c, a], axis=-1)], axis=-2) / det[:, None, None]


def _affine_stage(coefficients: np.ndarray, invalid_table: Optional[np.ndarray], templates: np.ndarray,
                  gx: np.ndarray, gy: np.ndarray, top: np.ndarray, left: np.ndarray, shift: np.ndarray,
                  strain: np.ndarray, integer_peak: np.ndarray, chip: int,
                  validity: Optional["PixelValidity"] = None
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stage 3 for B chips: inverse-compositional affine LK from ``shift`` (B, 2) (dx, dy) px and
    ``strain`` (B, 2, 2) [[d(dx)/dx, d(dx)/dy], [d(dy)/dx, d(dy)/dy]], Gaussian-window weighted
    (:func:`.affine_kernel.affine_stage`). Returns which chips succeeded (B,), their offsets (B, 2),
    terms (B, 2, 2) and ZNCC (B,).

    Without ``validity`` the warped footprint must lie on valid pixels (``invalid_table``);
    with it (chips with nodata) every iteration weights the pixels by the window times their
    validity at the current warp, and a chip needs ``validity.min_share`` of its pixels valid
    at the end."""
    count, n = len(templates), chip * chip
    arguments = (coefficients, templates, gx, gy, np.broadcast_to(_window(chip), (count, n)), top, left, shift,
                 strain, integer_peak, chip, _AFFINE_MAX_ITERATIONS, _AFFINE_TOLERANCE_PX, _LK_NOT_CONVERGED_PX,
                 MAX_STRAIN)
    if validity is None:
        done, shift, strain, zncc = affine_kernel.affine_stage(*arguments)
        done &= _support_valid(invalid_table, *warped_positions(top, left, shift, strain, chip))
    else:
        done, shift, strain, zncc = affine_kernel.affine_stage_numpy(*arguments, validity=validity)
        rows, cols = warped_positions(top, left, shift, strain, chip)
        done &= validity(np.arange(count), rows, cols).sum(axis=1) >= validity.min_share * n
    return done, shift, strain, zncc


def _weighted_normal_matrix(columns: np.ndarray, weights: np.ndarray
                            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted columns (B, k, n), normal matrices (B, k, k) and which are well posed (B,),
    ``affine_kernel._well_posed``) of the least squares with ``columns`` (B, k, n) and pixel
    ``weights`` (B, n); ill-posed matrices are replaced by the identity."""
    weighted = columns * weights[:, None, :]
    hessian = np.einsum("bkn,bln->bkl", weighted, columns)
    with np.errstate(invalid="ignore", divide="ignore"):
        good = affine_kernel._well_posed(hessian)
    hessian[~good] = np.eye(columns.shape[1])
    return weighted, hessian, good


def _unit_centred(values: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
    """Rows of ``values`` (B, n) minus their mean, scaled to unit norm (over ``mask`` only, zero
    elsewhere, when given)."""
    if mask is None:
        centred = values - values.mean(axis=1, keepdims=True)
    else:
        share = np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        centred = (values - (values * mask).sum(axis=1, keepdims=True) / share) * mask
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.where(norms > 0, norms, np.inf)


def _masked_zncc(templates: np.ndarray, samples: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ZNCC (B,) of templates and samples (B, n) over the pixels where ``mask`` (B, n) is non-zero."""
    mask = (mask > 0).astype(np.float64)
    return np.einsum("bn,bn->b", _unit_centred(templates, mask), _unit_centred(samples, mask))


def warped_positions(top: np.ndarray, left: np.ndarray, shift: np.ndarray, strain: np.ndarray, chip: int
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Rows and columns (B, n) where the chips' pixels are sampled under x + p + A (u, v): chip b's
    pixel (a, c) at row top[b] + a + dy(u, v), column left[b] + c + dx(u, v); ``shift`` (B, 2)
    (dx, dy) px, ``strain`` (B, 2, 2) px/px."""
    u, v = chip_coordinates(chip)
    half = (chip - 1) / 2.0
    cols = left[:, None] + (u + half) + shift[:, 0:1] + strain[:, 0, 0:1] * u + strain[:, 0, 1:2] * v
    rows = top[:, None] + (v + half) + shift[:, 1:2] + strain[:, 1, 0:1] * u + strain[:, 1, 1:2] * v
    return rows, cols


def _window(chip: int) -> np.ndarray:
    """Least-squares weights (n,) of the affine stage: a Gaussian of sigma AFFINE_WINDOW x chip."""
    if AFFINE_WINDOW <= 0:
        return np.ones(chip * chip)
    u, v = chip_coordinates(chip)
    sigma = AFFINE_WINDOW * chip
    return np.exp(-(u * u + v * v) / (2.0 * sigma * sigma))


def _summed_area(mask: np.ndarray) -> np.ndarray:
    """Summed-area table (H + 1, W + 1) int64 of a bool image."""
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    np.cumsum(np.cumsum(mask, axis=0), axis=1, out=table[1:, 1:])
    return table


def _support_valid(table: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """True where the quintic-spline support of the samples (B, n) lies inside the block on valid
    pixels (checked over the bounding box of each chip's support)."""
    height, width = table.shape[0] - 1, table.shape[1] - 1
    r0 = np.floor(rows.min(axis=1)).astype(np.int64) - 2
    r1 = np.floor(rows.max(axis=1)).astype(np.int64) + 4
    c0 = np.floor(cols.min(axis=1)).astype(np.int64) - 2
    c1 = np.floor(cols.max(axis=1)).astype(np.int64) + 4
    inside = (r0 >= 0) & (c0 >= 0) & (r1 <= height) & (c1 <= width)
    r0, r1 = np.clip(r0, 0, height), np.clip(r1, 0, height)
    c0, c1 = np.clip(c0, 0, width), np.clip(c1, 0, width)
    invalid = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    return inside & (invalid == 0)


def strain_bands(strain: np.ndarray, ok: np.ndarray, shape: Tuple[int, int]) -> Optional[dict]:
    """The deformation terms (B, 4) as float32 grids by ``STRAIN_TERMS`` name, NaN where not ``ok``."""
    return {name: np.where(ok, strain[:, k], np.nan).astype(np.float32).reshape(shape)
            for k, name in enumerate(STRAIN_TERMS)}
