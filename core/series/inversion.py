"""Inversion of a redundant pair network into a velocity time series (REFERENCE §6.5; TICOI, ITS_LIVE_TOOL,
LiCSBAS NSBAS).

Unknowns: the mean velocity v_k on the steps [t_k, t_{k+1}) of a time grid (regular, ``step_days``, or
between consecutive unique acquisition dates). Pair j measures the mean velocity over [t1_j, t2_j]::

    A[j, k] = overlap([t1_j, t2_j], [t_k, t_{k+1})) / (t2_j - t1_j)         # rows sum to 1
    minimise  Σ_j w_j (y_j - A_j v)²  +  λ² Σ_k (D v)_k²

with D the first differences of v scaled by (mean step / distance between step centres), so λ is
dimensionless for pair weights w_j normalised to a mean of 1 (one data row against one regularisation
row). Weights: w_j = 1/σ_j², σ_j from an uncertainty band when given, else from the spread (1.4826·MAD)
of pair j's residuals over the block after an unweighted solve. λ: given, or the minimum of the generalised
cross-validation function on a sample of pixel groups. Robust: iteratively reweighted least squares with
Tukey's biweight (c = 4.685) on the standardised residual u = r·√w / (MAD/0.6745), per pixel column (as TICOI's
per-pixel loop) until the mean |change| of its v between two iterations is below ``tolerance`` (0.1) times
the mean |v|, or after 10 iterations. Relative, not TICOI's 0.1 m/yr: a result must not depend on the unit
of y (px/day and m/yr gave different series), and on the synthetic network of the tests (seeds 1-3, y in
m/yr) the absolute 0.1 ran 4-10 iterations to a 7-19 % larger RMS error (4.9-5.2 m/yr) than the relative
stop (4.3-4.8; bench/robust_stop.py), the Tukey scale shrinking onto good pairs as the iterations go on.

Solving: every column of ``Y`` (n_pairs × n_pixels, NaN = no observation) is one pixel and component.
Columns with the same NaN pattern share one Cholesky factorisation (:func:`solve_grouped`); the robust
iterations, whose weights differ per column, run compiled one column at a time over the spans of the pairs
(:mod:`.robust_kernel`, numba) or, without numba, build all normal matrices with one matrix product and
solve them batched (:func:`solve_weighted`). Units are whatever ``Y`` is in (the driver uses m/yr).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy.linalg import cho_factor, cho_solve

TUKEY_C = 4.685
MAD_TO_SIGMA = 0.6745
#: Stop the robust loop of a pixel when the mean |change| of its v is below this times its mean |v|.
ROBUST_TOLERANCE = 0.1
ROBUST_MAX_ITERATIONS = 10
#: λ values tried by GCV (dimensionless, see the module docstring).
GCV_LAMBDAS = np.logspace(-3, 2, 26)
#: solve_grouped factorises per NaN pattern while there are at most this many patterns, or one per
#: COLUMNS_PER_GROUP columns; beyond, the batched solve is quicker.
MAX_GROUPS = 256
COLUMNS_PER_GROUP = 32
#: Bytes of normal matrices built at once by the batched solve.
_BATCH_BYTES = 64 * 1024 * 1024


# --------------------------------------------------------------------------- time grid and design

def time_edges(starts: np.ndarray, ends: np.ndarray, step_days: float = 0.0) -> np.ndarray:
    """Step edges (days on the caller's axis): the unique dates (``step_days`` 0) or a regular grid
    from the first start, ``step_days`` apart, until the last end is inside."""
    starts, ends = np.asarray(starts, float), np.asarray(ends, float)
    first, last = float(starts.min()), float(ends.max())
    if step_days and step_days > 0:
        n = max(1, int(np.ceil((last - first) / step_days - 1e-9)))
        return first + step_days * np.arange(n + 1)
    dates = np.unique(np.round(np.concatenate([starts, ends]), 6))
    return dates


def design_matrix(starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """A[j, k]: the fraction of pair j's interval inside step k (rows sum to 1 inside the grid)."""
    starts, ends = np.asarray(starts, float)[:, None], np.asarray(ends, float)[:, None]
    lo, hi = edges[None, :-1], edges[None, 1:]
    overlap = np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0.0, None)
    return overlap / (ends - starts)


def difference_operator(edges: np.ndarray) -> np.ndarray:
    """First differences (K-1 × K), scaled by mean step / distance between step centres."""
    centres = 0.5 * (edges[:-1] + edges[1:])
    k = len(centres)
    d = np.zeros((max(k - 1, 0), k))
    if k < 2:
        return d
    scale = np.diff(edges).mean() / np.diff(centres)
    d[np.arange(k - 1), np.arange(k - 1)] = -scale
    d[np.arange(k - 1), np.arange(1, k)] = scale
    return d


def step_coverage(a: np.ndarray) -> np.ndarray:
    """Number of pairs overlapping each step (0: the step comes from the regularisation only)."""
    return (a > 0).sum(axis=0)


# --------------------------------------------------------------------------- grouping

def mask_groups(valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Group the columns of ``valid`` (n_pairs × n) by their pattern: (patterns n_groups × n_pairs, label per column)."""
    packed = np.packbits(valid, axis=0).T
    patterns, labels = np.unique(packed, axis=0, return_inverse=True)
    unpacked = np.unpackbits(patterns, axis=1, count=valid.shape[0]).astype(bool)
    return unpacked, labels.reshape(-1)


# --------------------------------------------------------------------------- solves

def _normal(a: np.ndarray, w: np.ndarray, reg: np.ndarray) -> np.ndarray:
    return (a * w[:, None]).T @ a + reg


def solve_grouped(a: np.ndarray, y: np.ndarray, pair_weights: np.ndarray, lam: float, d: np.ndarray,
                  min_pairs: int = 1) -> np.ndarray:
    """v (K × n) for every column of y (n_pairs × n, NaN = missing), one factorisation per NaN pattern.

    Columns with fewer than ``min_pairs`` observations are NaN.
    """
    valid = np.isfinite(y)
    out = np.full((a.shape[1], y.shape[1]), np.nan)
    reg = lam ** 2 * d.T @ d
    patterns, labels = mask_groups(valid)
    if len(patterns) > max(MAX_GROUPS, y.shape[1] // COLUMNS_PER_GROUP):
        # scattered masks (few columns per pattern): the batched solve is faster than one factorisation each
        enough = valid.sum(axis=0) >= max(1, min_pairs)
        out[:, enough] = solve_weighted(a, np.nan_to_num(y[:, enough]), valid[:, enough] * pair_weights[:, None],
                                        lam, d)
        return out
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(patterns) + 1))
    for g, rows in enumerate(patterns):
        if rows.sum() < max(1, min_pairs):
            continue
        cols = order[bounds[g]:bounds[g + 1]]
        ar, wr = a[rows], pair_weights[rows]
        factor = cho_factor(_normal(ar, wr, reg) + _ridge(a.shape[1]), check_finite=False)
        out[:, cols] = cho_solve(factor, (ar * wr[:, None]).T @ y[np.ix_(rows, cols)], check_finite=False)
    return out


def _ridge(k: int) -> np.ndarray:
    """A tiny diagonal keeping the normal matrix definite when λ = 0 or every weight is 0."""
    return 1e-10 * np.eye(k)


def solve_per_column(a: np.ndarray, y: np.ndarray, pair_weights: np.ndarray, lam: float, d: np.ndarray,
                     min_pairs: int = 1) -> np.ndarray:
    """The same as :func:`solve_grouped`, one column at a time (the reference for tests)."""
    out = np.full((a.shape[1], y.shape[1]), np.nan)
    reg = lam ** 2 * d.T @ d
    for col in range(y.shape[1]):
        rows = np.isfinite(y[:, col])
        if rows.sum() < max(1, min_pairs):
            continue
        ar, wr = a[rows], pair_weights[rows]
        out[:, col] = np.linalg.solve(_normal(ar, wr, reg) + _ridge(a.shape[1]), (ar * wr[:, None]).T @ y[rows, col])
    return out


def solve_weighted(a: np.ndarray, y0: np.ndarray, weights: np.ndarray, lam: float, d: np.ndarray) -> np.ndarray:
    """v (K × n) with a weight per observation and column (``weights`` n_pairs × n, 0 = unused; y0 = y with
    NaN replaced by 0): the normal matrices of a batch of columns come from one matrix product."""
    n_pairs, k = a.shape
    outer = (a[:, :, None] * a[:, None, :]).reshape(n_pairs, k * k)
    reg = lam ** 2 * d.T @ d + _ridge(k)
    batch = max(1, int(_BATCH_BYTES // (8 * k * k)))
    out = np.empty((k, y0.shape[1]))
    for start in range(0, y0.shape[1], batch):
        w = weights[:, start:start + batch]
        normal = (w.T @ outer).reshape(-1, k, k) + reg
        rhs = (w * y0[:, start:start + batch]).T @ a
        out[:, start:start + batch] = np.linalg.solve(normal, rhs[:, :, None])[:, :, 0].T
    return out


# --------------------------------------------------------------------------- weights and λ

def nan_median_rows(x: np.ndarray) -> np.ndarray:
    """Median of each row of a 2-D array ignoring NaN (NaN for a row without a number); a sort with NaN
    last and the middle picked by each row's count, much faster than np.nanmedian on wide arrays."""
    ordered = np.sort(x, axis=1)
    count = np.isfinite(x).sum(axis=1)
    lo = np.maximum((count - 1) // 2, 0)[:, None]
    hi = np.maximum(count // 2, 0)[:, None]
    hi = np.minimum(hi, x.shape[1] - 1)
    out = 0.5 * (np.take_along_axis(ordered, lo, 1) + np.take_along_axis(ordered, hi, 1))[:, 0]
    out[count == 0] = np.nan
    return out


def pair_sigmas(a: np.ndarray, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """σ_j = 1.4826·MAD of pair j's residuals over the columns (NaN when pair j has fewer than 3)."""
    r = y - a @ v
    sig = np.full(r.shape[0], np.nan)
    for j, row in enumerate(r):
        values = row[np.isfinite(row)]
        if values.size >= 3:
            sig[j] = 1.4826 * np.median(np.abs(values - np.median(values)))
    return sig


def weights_from_sigmas(sigmas: np.ndarray) -> np.ndarray:
    """w_j = 1/σ_j², σ floored at 0.1 × the median σ, unknown σ given the median; normalised to mean 1."""
    sig = np.asarray(sigmas, float).copy()
    good = np.isfinite(sig) & (sig > 0)
    if not good.any():
        return np.ones_like(sig)
    median = np.median(sig[good])
    sig[~good] = median
    sig = np.maximum(sig, 0.1 * median)
    w = 1.0 / sig ** 2
    return w / w.mean()


def gcv_lambda(a: np.ndarray, y: np.ndarray, pair_weights: np.ndarray, d: np.ndarray,
               lambdas: Sequence[float] = GCV_LAMBDAS, max_groups: int = 8) -> Tuple[float, np.ndarray]:
    """λ minimising the generalised cross-validation function n·RSS/(n − tr H)² summed over the pixels
    of the (up to ``max_groups``) largest NaN-pattern groups of y; returns (λ, GCV per λ)."""
    lambdas = np.asarray(lambdas, float)
    valid = np.isfinite(y)
    patterns, labels = mask_groups(valid)
    sizes = np.bincount(labels, minlength=len(patterns))
    scores = np.zeros(len(lambdas))
    used = 0
    for g in np.argsort(sizes)[::-1]:
        rows = patterns[g]
        n = int(rows.sum())
        if n <= 2 or used >= max_groups:
            continue
        used += 1
        sw = np.sqrt(pair_weights[rows])
        at = a[rows] * sw[:, None]
        yt = y[np.ix_(rows, labels == g)] * sw[:, None]
        for i, lam in enumerate(lambdas):
            h = at @ np.linalg.solve(at.T @ at + lam ** 2 * d.T @ d + _ridge(a.shape[1]), at.T)
            rss = float(((yt - h @ yt) ** 2).sum())
            dof = n - np.trace(h)
            scores[i] += n * rss / max(dof, 1e-9) ** 2
    if used == 0:
        return 1.0, scores
    return float(lambdas[int(np.argmin(scores))]), scores


# --------------------------------------------------------------------------- the whole solve

@dataclass
class InversionResult:
    """v (K × n), the observations used per column, residual RMS per column (units of y),
    the weights of the pairs, and the iterations the robust loop took."""

    v: np.ndarray
    n_used: np.ndarray
    residual_rms: np.ndarray
    pair_weights: np.ndarray
    iterations: int


def tukey_weights(u: np.ndarray, c: float = TUKEY_C) -> np.ndarray:
    """Tukey's biweight (1 − (u/c)²)² for |u| < c, else 0; NaN u gives 0."""
    with np.errstate(invalid="ignore"):
        w = np.where(np.abs(u) < c, (1.0 - (u / c) ** 2) ** 2, 0.0)
    return np.nan_to_num(w)


def robust_weights(a: np.ndarray, y: np.ndarray, v: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Tukey weights of every observation from its residual standardised by √weight (a weight per pair, or
    per observation n_pairs × n) and the column's scale MAD/0.6745."""
    weights = np.asarray(weights, float)
    r = (y - a @ v) * np.sqrt(weights if weights.ndim == 2 else weights[:, None])
    columns = np.ascontiguousarray(r.T)
    med = nan_median_rows(columns)
    scale = nan_median_rows(np.abs(columns - med[:, None])) / MAD_TO_SIGMA
    w = tukey_weights(r / np.where(scale > 0, scale, np.inf))
    return w


def invert(a: np.ndarray, y: np.ndarray, d: np.ndarray, lam: Optional[float] = None,
           sigmas: Optional[np.ndarray] = None, robust: bool = True, min_pairs: int = 2,
           tolerance: float = ROBUST_TOLERANCE, obs_weights: Optional[np.ndarray] = None) -> InversionResult:
    """Invert every column of ``y`` (n_pairs × n, NaN = no observation): weights (``obs_weights`` per
    observation, e.g. :func:`weights_from_obs_sigmas` of the uncertainty bands; else from ``sigmas`` per
    pair; else the residual spread of each pair), λ (given, else GCV), then the robust loop. Columns with
    fewer than ``min_pairs`` observations are NaN."""
    y = np.asarray(y, float)
    if obs_weights is not None:
        return _invert_observation_weighted(a, y, d, lam, np.asarray(obs_weights, float), robust, min_pairs,
                                            tolerance)
    if sigmas is None:
        first = solve_grouped(a, y, np.ones(a.shape[0]), 1.0 if lam is None else lam, d, min_pairs)
        w_pair = weights_from_sigmas(pair_sigmas(a, y, first))
    else:
        w_pair = weights_from_sigmas(sigmas)
    if lam is None:
        lam = choose_lambda(a, y, d, w_pair, robust)
    v = solve_grouped(a, y, w_pair, lam, d, min_pairs)
    valid = np.isfinite(y)
    enough = valid.sum(axis=0) >= max(1, min_pairs)
    w_obs = valid * w_pair[:, None]
    iterations = 0
    if robust and enough.any():
        cols = np.flatnonzero(enough)
        v[:, cols], w_obs[:, cols], steps = robust_loop(a, y[:, cols], v[:, cols], w_pair, lam, d,
                                                                tolerance)
        iterations = int(steps.max())
    return _result(a, y, v, valid, enough, w_obs, w_pair, iterations)


def weights_from_obs_sigmas(sigmas: np.ndarray, reference: float) -> np.ndarray:
    """w = (σ_ref / σ)² per observation, σ floored at 0.1 σ_ref; unknown σ (NaN, ≤ 0) gets σ_ref (w = 1).

    ``reference`` is one σ for the whole run (the driver: the median over the λ window), so that a pixel's
    weights, and its series, do not depend on the block it is solved in."""
    sig = np.asarray(sigmas, float)
    good = np.isfinite(sig) & (sig > 0)
    sig = np.where(good, np.maximum(sig, 0.1 * reference), reference)
    return (reference / sig) ** 2


def _invert_observation_weighted(a, y, d, lam, weights, robust, min_pairs, tolerance) -> InversionResult:
    """:func:`invert` with a weight per observation (no shared factorisation: the batched solve)."""
    valid = np.isfinite(y)
    weights = np.where(valid, weights, 0.0)
    pair_level = np.array([np.median(row[ok]) if ok.any() else 1.0 for row, ok in zip(weights, valid)])
    if lam is None:
        lam = choose_lambda(a, y, d, pair_level, robust)
    enough = valid.sum(axis=0) >= max(1, min_pairs)
    v = np.full((a.shape[1], y.shape[1]), np.nan)
    cols = np.flatnonzero(enough)
    w_obs = weights.copy()
    iterations = 0
    if cols.size:
        v[:, cols] = solve_weighted(a, np.nan_to_num(y[:, cols]), weights[:, cols], lam, d)
        if robust:
            v[:, cols], w_obs[:, cols], steps = robust_loop(a, y[:, cols], v[:, cols], weights[:, cols], lam, d,
                                                            tolerance)
            iterations = int(steps.max())
    return _result(a, y, v, valid, enough, w_obs, pair_level, iterations)


def _result(a, y, v, valid, enough, w_obs, pair_weights, iterations) -> InversionResult:
    r = np.where(valid, y - a @ np.nan_to_num(v), 0.0)
    used = (w_obs > 0) & valid
    n_used = used.sum(axis=0)
    with np.errstate(all="ignore"):
        rms = np.sqrt((r ** 2 * used).sum(axis=0) / n_used)
    rms[~enough] = np.nan
    n_used[~enough] = 0
    return InversionResult(v, n_used, rms, pair_weights, iterations)


def robust_loop(a: np.ndarray, y: np.ndarray, v: np.ndarray, weights: np.ndarray, lam: float,
                d: np.ndarray, tolerance: float = ROBUST_TOLERANCE) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iteratively reweighted least squares from ``v`` (K × n) for every column of ``y`` (n_pairs × n, NaN =
    no observation), each column until its own mean |change| is below ``tolerance`` × its mean |v| (a column's
    result does not depend on the other columns of the block) or ROBUST_MAX_ITERATIONS.

    ``weights``: per pair (n_pairs) or per observation (n_pairs × n). Returns (v, observation weights =
    Tukey weight of the final v × weight, 0 where y is NaN, iterations per column). Compiled (:mod:`.robust_kernel`) when numba is installed, else batched numpy.
    """
    from .robust_kernel import robust_loop_compiled

    reg = lam ** 2 * d.T @ d + _ridge(a.shape[1])
    weights = np.asarray(weights, float)
    base = np.broadcast_to(weights if weights.ndim == 2 else weights[:, None], y.shape)
    done = robust_loop_compiled(a, y, v, base, reg, tolerance, ROBUST_MAX_ITERATIONS, TUKEY_C,
                                MAD_TO_SIGMA)
    if done is not None:
        return done
    w_obs = np.isfinite(y) * base
    y0 = np.nan_to_num(y)
    v = np.array(v, float)
    iterations = np.zeros(y.shape[1], np.int64)
    active = np.arange(y.shape[1])
    for step in range(1, ROBUST_MAX_ITERATIONS + 1):
        w = robust_weights(a, y[:, active], v[:, active], base[:, active]) * w_obs[:, active]
        new = solve_weighted(a, y0[:, active], w, lam, d)
        change = np.abs(new - v[:, active]).sum(axis=0)
        size = np.maximum(np.abs(v[:, active]).sum(axis=0), 1e-300 * a.shape[1])
        v[:, active] = new
        iterations[active] = step
        active = active[change >= tolerance * size]
        if not active.size:
            break
    return v, robust_weights(a, y, v, base) * w_obs, iterations


def choose_lambda(a: np.ndarray, y: np.ndarray, d: np.ndarray, pair_weights: np.ndarray, robust: bool) -> float:
    """GCV λ; with ``robust``, GCV again without the observations a first robust pass rejects (Tukey weight
    0), so outliers do not push λ up (they look like signal the smoothing should not follow)."""
    lam, _ = gcv_lambda(a, y, pair_weights, d)
    if not robust:
        return lam
    v = solve_grouped(a, y, pair_weights, lam, d)
    kept = np.where(robust_weights(a, y, np.nan_to_num(v), pair_weights) > 0, y, np.nan)
    return gcv_lambda(a, kept, pair_weights, d)[0]


def uncovered_steps(a: np.ndarray, valid: np.ndarray, columns: int = 8192) -> np.ndarray:
    """Per column of ``valid`` (n_pairs × n): how many steps no valid pair overlaps (``columns`` at a time:
    float32 counts, exact, in bounded memory)."""
    overlaps = (a > 0).astype(np.float32)
    out = np.empty(valid.shape[1], np.int64)
    for c0 in range(0, valid.shape[1], columns):
        part = valid[:, c0:c0 + columns].T.astype(np.float32)
        out[c0:c0 + columns] = ((part @ overlaps) == 0).sum(axis=1)
    return out


def cumulative_displacement(v: np.ndarray, edges: np.ndarray, days_per_year: float) -> np.ndarray:
    """Displacement (v units × yr) at each step's end since the first edge: Σ v_k Δ_k."""
    steps = np.diff(edges) / days_per_year
    return np.cumsum(v * steps[:, None], axis=0)


def labels(edges: Sequence[float]) -> List[float]:
    """Step centres (days on the caller's axis)."""
    edges = np.asarray(edges, float)
    return list(0.5 * (edges[:-1] + edges[1:]))
