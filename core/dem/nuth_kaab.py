"""The Nuth & Kääb (2011) fit on arrays of stable ground (no I/O).

Model and signs. The DEM to align is the reference terrain h displaced by the horizontal offset
o = (o_x, o_y) (map units, x east, y north) and raised by dz: DEM(x) = h(x − o) + dz. Then on
terrain of slope α and aspect ψ (downhill direction, clockwise from north)

    dh = DEM − reference ≈ −∇h·o + dz = tan α · (o_x sin ψ + o_y cos ψ) + dz,

so dh / tan α = a·cos(b − ψ) + c with o_x = a·sin b, o_y = a·cos b (REFERENCE §7.2). Written as
p·cos ψ + q·sin ψ + c the fit is linear (p = o_y, q = o_x): it is solved by least squares on the
median of dh / tan α in 72 aspect bins (5°, bin centres), which is the same minimum as xdem's
non-linear fit of a, b, c. Each iteration evaluates the DEM at x + o (the current estimate; resampled
like the reference, see core.dem.coregister.dem_reader), removes
the median (or, with ``tilt``, a plane) of dh, fits the residual offset and adds it to o; it stops
when the step is below ``tolerance_px`` pixels or after ``max_iterations`` (xdem's defaults: 0.001
px, 10). The vertical part is the median of dh after the last shift (or the plane with ``tilt``).
The correction that aligns the DEM is the opposite: move it by −o and subtract the vertical part.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..errors import UserInputError, check_canceled
from .terrain import nmad

#: Aspect bins of the fit (5° each), the minimum cells per bin used and the bins needed (xdem's values).
ASPECT_BINS = 72
MIN_BIN_COUNT = 20
MIN_BINS = 10
#: Share of dh / tan α values cut at each end before binning (xdem: 1st and 99th percentile).
OUTLIER_PERCENTILES = (1.0, 99.0)
#: A total horizontal offset beyond this many pixels means the fit ran away (DEMs not comparable).
MAX_OFFSET_PX = 100.0
#: Residuals beyond this many NMADs are left out of the second pass of the plane fit.
PLANE_REJECT_NMAD = 3.0


@dataclass(frozen=True)
class Iteration:
    """One iteration: ``offset_x``/``offset_y`` the DEM's total offset after it (m, east/north), ``step_px``
    the length of its step in DEM pixels, ``median``/``nmad`` of dh (detrended) before the step (m),
    ``n_cells`` the stable cells it used and ``n_bins`` the aspect bins."""

    iteration: int
    offset_x: float
    offset_y: float
    step_px: float
    median: float
    nmad: float
    n_cells: int
    n_bins: int


@dataclass(frozen=True)
class Trend:
    """dh ≈ c0 + cx·(x − x0) + cy·(y − y0): the vertical part (m; cx, cy in m per map unit)."""

    c0: float
    cx: float = 0.0
    cy: float = 0.0

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.c0 + self.cx * x + self.cy * y


@dataclass
class FitResult:
    """The DEM's offset from the reference (``offset_x``, ``offset_y`` in m; ``trend`` the vertical part
    after the shift), the iterations, whether the last step was below the tolerance, and the statistics
    of dh on the stable cells before (raw DEM − reference) and after the full correction."""

    offset_x: float
    offset_y: float
    trend: Trend
    converged: bool
    median_before: float
    nmad_before: float
    median_after: float
    nmad_after: float
    n_cells: int
    iterations: List[Iteration] = field(default_factory=list)


def fit_cosine(aspect: np.ndarray, y: np.ndarray) -> Tuple[float, float, float, int]:
    """(o_x, o_y, c, bins used) of y ≈ o_y·cos ψ + o_x·sin ψ + c fitted to the per-bin medians of y over
    :data:`ASPECT_BINS` aspect bins (bins with fewer than :data:`MIN_BIN_COUNT` values are left out)."""
    ok = np.isfinite(aspect) & np.isfinite(y)
    aspect, y = aspect[ok], y[ok]
    if y.size:
        low, high = np.percentile(y, OUTLIER_PERCENTILES)
        keep = (y >= low) & (y <= high)
        aspect, y = aspect[keep], y[keep]
    width = 2.0 * np.pi / ASPECT_BINS
    index = np.clip((aspect // width).astype(np.int64), 0, ASPECT_BINS - 1)
    order = np.argsort(index, kind="stable")
    index, y = index[order], y[order]
    starts = np.searchsorted(index, np.arange(ASPECT_BINS + 1))
    centres, medians = [], []
    for k in range(ASPECT_BINS):
        values = y[starts[k]:starts[k + 1]]
        if values.size >= MIN_BIN_COUNT:
            centres.append((k + 0.5) * width)
            medians.append(float(np.median(values)))
    if len(centres) < MIN_BINS:
        raise UserInputError(
            f"Only {len(centres)} of the {ASPECT_BINS} aspect bins (5° each) hold at least {MIN_BIN_COUNT} stable "
            f"cells; the fit needs {MIN_BINS} so that slopes facing different directions constrain the shift. "
            "Use a larger overlap of the two DEMs, a lower minimum slope, a higher maximum slope or fewer "
            "unstable areas.")
    psi = np.asarray(centres)
    design = np.column_stack([np.cos(psi), np.sin(psi), np.ones_like(psi)])
    (p, q, c), *_ = np.linalg.lstsq(design, np.asarray(medians), rcond=None)
    return float(q), float(p), float(c), len(centres)


def fit_trend(dh: np.ndarray, x: np.ndarray, y: np.ndarray, tilt: bool) -> Trend:
    """The median of ``dh`` or, with ``tilt``, a least-squares plane in (x, y) refitted without the
    residuals beyond :data:`PLANE_REJECT_NMAD` NMADs."""
    ok = np.isfinite(dh)
    dh, x, y = dh[ok], x[ok], y[ok]
    if not tilt:
        return Trend(float(np.median(dh)))
    design = np.column_stack([np.ones_like(x), x, y])
    keep = np.ones(dh.size, bool)
    for _ in range(2):
        coefficients, *_ = np.linalg.lstsq(design[keep], dh[keep], rcond=None)
        residual = dh - design @ coefficients
        spread = nmad(residual[keep])
        if not spread > 0:
            break
        keep = np.abs(residual - np.median(residual[keep])) <= PLANE_REJECT_NMAD * spread
    return Trend(*(float(v) for v in coefficients))


def nuth_kaab(reference: np.ndarray, tan_slope: np.ndarray, aspect: np.ndarray, x: np.ndarray, y: np.ndarray,
              dem_at: Callable[[float, float], np.ndarray], pixel_size: float, *, max_iterations: int = 10,
              tolerance_px: float = 0.001, tilt: bool = False,
              progress: Optional[Callable[[float], None]] = None, is_canceled=None) -> FitResult:
    """Fit the DEM's horizontal offset and vertical part on stable cells.

    ``reference``, ``tan_slope``, ``aspect`` (rad), ``x``, ``y`` (map coordinates relative to the grid
    centre): 1-D arrays over the stable cells; ``dem_at(o_x, o_y)`` gives the DEM at those cells'
    positions + (o_x, o_y) (NaN outside it); ``pixel_size`` (map units) converts the steps to pixels.
    Never converging is not an error: ``converged`` is False and the last estimate is kept.
    """
    def dh_at(o_x: float, o_y: float) -> np.ndarray:
        return dem_at(o_x, o_y) - reference

    before = dh_at(0.0, 0.0)
    median_before, nmad_before = float(np.nanmedian(before)), nmad(before)
    o_x = o_y = 0.0
    iterations: List[Iteration] = []
    converged = False
    for number in range(1, max_iterations + 1):
        check_canceled(is_canceled)
        dh = before if number == 1 else dh_at(o_x, o_y)
        ok = np.isfinite(dh)
        residual = dh - fit_trend(dh, x, y, tilt)(x, y)
        step_x, step_y, _, n_bins = fit_cosine(aspect[ok], residual[ok] / tan_slope[ok])
        o_x, o_y = o_x + step_x, o_y + step_y
        step_px = float(np.hypot(step_x, step_y) / pixel_size)
        iterations.append(Iteration(number, o_x, o_y, step_px, float(np.median(residual[ok])) if tilt
                                    else float(np.median(dh[ok])), nmad(residual[ok]), int(ok.sum()), n_bins))
        if np.hypot(o_x, o_y) > MAX_OFFSET_PX * pixel_size:
            raise UserInputError(
                f"The fit ran away: after {number} iteration(s) the horizontal shift is "
                f"{np.hypot(o_x, o_y):.1f} map units (over {MAX_OFFSET_PX:g} pixels). The two DEMs do not show "
                "the same terrain on the stable ground: check that they cover the same place, share units and "
                "vertical datum, and mask the areas that changed (unstable areas).")
        if progress is not None:
            progress(100.0 * number / max_iterations)
        if step_px < tolerance_px:
            converged = True
            break
    dh = dh_at(o_x, o_y)
    trend = fit_trend(dh, x, y, tilt)
    after = dh - trend(x, y)
    return FitResult(o_x, o_y, trend, converged, median_before, nmad_before, float(np.nanmedian(after)),
                     nmad(after), int(np.isfinite(after).sum()), iterations)
