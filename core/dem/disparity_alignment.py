"""Disparity-based DEM alignment: shift a DEM so two orthorectified L1B scenes agree (REFERENCE §7.2).

Two scenes of one area seen from different directions, orthorectified onto a DEM, agree on stable
ground only where the DEM is right. A height error Δh (m; true surface minus DEM) moves the ortho
content of scene i by Δh·t_i, t_i being its *parallax sensitivity* (horizontal 2-vector, m per m of
height: ``(ground(h) - ground(h + δ)) / δ`` along the scene's line of sight). Between the orthos the
residual disparity (secondary position minus reference position of a feature, east and north, m) is

    d(x) = Δh(x) · p(x) + b(x),        p = t_sec - t_ref,

b being a smooth bias of the two RPCs (modelled as a plane per component). When the DEM's content
sits displaced by s = (s_e, s_n) metres from the images' own frame (the DEM was co-registered to a
reference that the images' RPCs do not share, or it was never co-registered),
h_dem(x) = h(x - s), so Δh(x) ≈ ∇h(x)·s and

    d_e = p_e · (∇h·s) + a0 + a1·x + a2·y,     d_n = p_n · (∇h·s) + b0 + b1·x + b2·y,

linear in s and the plane coefficients: :func:`fit_dem_shift` solves it by robust least squares
(iteratively dropping residuals beyond 4·NMAD). The DEM is then moved by -s. A constant height
offset dz gives d = -dz·p, nearly constant over a scene, so the plane absorbs it: the vertical offset
is not determined by the disparity (use a reference DEM and Nuth & Kääb for it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import UserInputError
from .terrain import nmad

#: Residuals beyond this many NMADs are dropped between the robust iterations.
REJECT_NMADS = 4.0
#: Fewest stable cells per unknown of the fit (8 unknowns).
CELLS_PER_UNKNOWN = 10


@dataclass(frozen=True)
class ShiftFit:
    """One fit: the DEM's displacement ``shift_east`` / ``shift_north`` (m; the DEM content sits this far
    east / north of where the images see it: move the DEM by minus this), their standard errors (m),
    the NMAD of the disparity (m, both components pooled) before and after removing the fitted model,
    the stable cells given, and the plane coefficients (east, north)."""

    shift_east: float
    shift_north: float
    sigma_east: float
    sigma_north: float
    nmad_before: float
    nmad_after: float
    cells: int
    plane_east: tuple
    plane_north: tuple


def _design(p_e, p_n, g_e, g_n, x, y) -> np.ndarray:
    """Rows (east then north) of the 8 unknowns: s_e, s_n, a0, a1, a2, b0, b1, b2."""
    n = p_e.size
    zeros, ones = np.zeros(n), np.ones(n)
    east = np.column_stack([p_e * g_e, p_e * g_n, ones, x, y, zeros, zeros, zeros])
    north = np.column_stack([p_n * g_e, p_n * g_n, zeros, zeros, zeros, ones, x, y])
    return np.vstack([east, north])


def fit_dem_shift(d_east, d_north, p_east, p_north, grad_east, grad_north, x, y,
                  valid: Optional[np.ndarray] = None, iterations: int = 5) -> ShiftFit:
    """Fit the DEM displacement from the residual disparity of two orthos (see the module doc).

    Arrays of one shape (the disparity cells): ``d_east``, ``d_north`` disparity (m, secondary minus
    reference, east and north); ``p_east``, ``p_north`` parallax sensitivity difference t_sec - t_ref
    (m/m); ``grad_east``, ``grad_north`` the DEM's slope dh/dE, dh/dN (m/m); ``x``, ``y`` cell
    coordinates (m, any origin); ``valid`` the stable cells to use (default: all finite).
    """
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in
              (d_east, d_north, p_east, p_north, grad_east, grad_north, x, y)]
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool).ravel()
    d_e, d_n, p_e, p_n, g_e, g_n, x, y = (a[keep] for a in arrays)
    if d_e.size < 8 * CELLS_PER_UNKNOWN:
        raise UserInputError(f"Only {d_e.size} stable cells have a disparity, a DEM slope and a parallax; "
                             f"at least {8 * CELLS_PER_UNKNOWN} are needed. Use a larger area of interest, "
                             "a smaller correlation step, or fewer unstable areas.")
    if float(np.median(np.hypot(p_e, p_n))) < 1e-3:
        raise UserInputError("The two scenes see the ground from the same direction (parallax difference "
                             "below 0.001 m/m): a DEM error does not show in their disparity. Use a pair "
                             "with different view angles (e.g. opposite look directions).")
    x0, y0 = float(np.median(x)), float(np.median(y))
    scale = max(float(np.ptp(x)), float(np.ptp(y)), 1.0)
    xs, ys = (x - x0) / scale, (y - y0) / scale
    design = _design(p_e, p_n, g_e, g_n, xs, ys)
    target = np.concatenate([d_e, d_n])
    use = np.ones(target.size, dtype=bool)
    before = nmad(target - np.concatenate([np.full(d_e.size, np.median(d_e)), np.full(d_n.size, np.median(d_n))]))
    for _ in range(max(1, int(iterations))):
        solution, *_ = np.linalg.lstsq(design[use], target[use], rcond=None)
        residual = target - design @ solution
        spread = nmad(residual[use])
        new_use = np.abs(residual - np.median(residual[use])) <= REJECT_NMADS * max(spread, 1e-9)
        if np.array_equal(new_use, use):
            break
        use = new_use
    residual = target - design @ solution
    sigma2 = float(np.sum(residual[use] ** 2) / max(int(use.sum()) - design.shape[1], 1))
    normal = design[use].T @ design[use]
    if np.linalg.cond(normal) > 1e12:
        raise UserInputError("The DEM shift cannot be separated from the RPC bias plane: the terrain is too "
                             "flat or too uniform in the area. Use an area with relief in several directions.")
    covariance = sigma2 * np.linalg.inv(normal)
    return ShiftFit(float(solution[0]), float(solution[1]), float(np.sqrt(covariance[0, 0])),
                    float(np.sqrt(covariance[1, 1])), before, nmad(residual[use]), int(d_e.size),
                    tuple(float(v) for v in solution[2:5]), tuple(float(v) for v in solution[5:8]))
