"""Surface strain rates from a velocity field (REFERENCE §8.5), in 1/yr.

x = grid east, y = grid north, extension positive, compression negative
(Cuffey & Paterson). Two methods:

* ``nominal``: centred differences over ±r pixels, r = max(1, round(L/Δ)) for the
  half length scale L (m); ∂/∂y carries the north-up sign (see :mod:`.grids`).
* ``logarithmic`` (Alley et al. 2018): five virtual stakes (centre, N, E, S, W at r
  pixels) are advected through the steady field by an adaptive improved-Euler
  integrator for the time T in which the fastest stake moves 0.1·r pixels; segment
  stretch rates e = ln(l_end / l_start) / T (T also capped so stakes move at most 0.001·r
  relative to the centre, which keeps the small-strain combination accurate to ~0.05 %) for a = N–S, c = E–W, b = SW–NE
  (segments S–E and W–N, averaged), d = NW–SE (N–E and W–S, averaged); then
  ε̇xx = ¼(e_b + e_d − e_a) + ¾e_c, ε̇yy = ¾e_a + ¼(e_b + e_d − e_c), ε̇xy = ½(e_b − e_d).
  It matches the nominal rates of linear fields to ~0.1 % (second order in the stake
  displacement) and is better for large strain over long baselines.

``upscale`` u > 1 reproduces the notebooks' meaning: the field is decimated
``v[::u, ::u]`` (no averaging) and differentiated on that coarse grid, so derivatives
span 2·u native cells; the output is on the coarse grid.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np
from affine import Affine

from ..choices import Choices
from ..errors import UserInputError, check_canceled
from ..io import RasterWriter, open_raster, row_blocks
from .grids import bilinear, centred_derivatives, decimate, read_band_stack, read_velocity, stencil_radius

#: Output bands, in order: (name, unit). The uncertainty band is added when error rasters are given.
STRAIN_BANDS = (
    ("exx", "1/yr"), ("eyy", "1/yr"), ("exy", "1/yr"),
    ("e1", "1/yr"), ("e2", "1/yr"), ("theta_p", "deg"),
    ("effective", "1/yr"), ("spin", "1/yr"),
    ("longitudinal", "1/yr"), ("transverse", "1/yr"), ("shear", "1/yr"), ("ezz", "1/yr"),
)
UNCERTAINTY_BAND = ("uncertainty", "1/yr")
METHODS = Choices(("nominal", "Nominal (centred differences)"),
                  ("logarithmic", "Logarithmic (Alley et al. 2018 virtual stakes)"))
#: The sidecar style of the output (effective strain rate, band 7).
STRAIN_STYLE = "strain_effective"
_BLOCK_ROWS = 256


def band_description(name: str, unit: str) -> str:
    return f"{name} ({unit})"


# --------------------------------------------------------------------------- tensor algebra

def derived_quantities(exx: np.ndarray, eyy: np.ndarray, exy: np.ndarray, spin: np.ndarray,
                       vx: np.ndarray, vy: np.ndarray) -> Dict[str, np.ndarray]:
    """Principal (Nye 1959), effective, flow-frame (Bindschadler et al. 1996) and vertical rates.

    theta_p: direction of e1 in degrees counter-clockwise from grid x (−90..90].
    Flow frame: θ = atan2(vy, vx); longitudinal along flow, transverse across, shear.
    effective = √(½(ε̇xx² + ε̇yy² + ε̇zz²) + ε̇xy²) with ε̇zz = −(ε̇xx + ε̇yy) (incompressible).
    """
    mean = 0.5 * (exx + eyy)
    radius = np.sqrt(0.25 * (exx - eyy) ** 2 + exy ** 2)
    theta = np.arctan2(vy, vx)
    cos, sin = np.cos(theta), np.sin(theta)
    ezz = -(exx + eyy)
    return {
        "exx": exx, "eyy": eyy, "exy": exy,
        "e1": mean + radius, "e2": mean - radius,
        "theta_p": np.degrees(0.5 * np.arctan2(2.0 * exy, exx - eyy)),
        "effective": np.sqrt(0.5 * (exx ** 2 + eyy ** 2 + ezz ** 2) + exy ** 2),
        "spin": spin,
        "longitudinal": exx * cos ** 2 + 2.0 * exy * sin * cos + eyy * sin ** 2,
        "transverse": exx * sin ** 2 - 2.0 * exy * sin * cos + eyy * cos ** 2,
        "shear": (eyy - exx) * sin * cos + exy * (cos ** 2 - sin ** 2),
        "ezz": ezz,
    }


# --------------------------------------------------------------------------- nominal

def nominal_gradient(vx: np.ndarray, vy: np.ndarray, transform: Affine, r: int):
    """Velocity gradient (∂vx/∂x, ∂vx/∂y, ∂vy/∂x, ∂vy/∂y) by centred differences over ±r px."""
    dvx_dx, dvx_dy = centred_derivatives(vx, transform, r)
    dvy_dx, dvy_dy = centred_derivatives(vy, transform, r)
    return dvx_dx, dvx_dy, dvy_dx, dvy_dy


def nominal_strain(vx: np.ndarray, vy: np.ndarray, transform: Affine, r: int = 1) -> Dict[str, np.ndarray]:
    """All strain quantities (1/yr) from centred differences over ±r pixels."""
    dvx_dx, dvx_dy, dvy_dx, dvy_dy = nominal_gradient(vx, vy, transform, r)
    # the tensor needs all four derivatives: NaN wherever one of them is missing
    known = np.isfinite(dvx_dx) & np.isfinite(dvx_dy) & np.isfinite(dvy_dx) & np.isfinite(dvy_dy)
    dvx_dx, dvx_dy, dvy_dx, dvy_dy = (np.where(known, d, np.nan) for d in (dvx_dx, dvx_dy, dvy_dx, dvy_dy))
    exy = 0.5 * (dvx_dy + dvy_dx)
    spin = 0.5 * (dvy_dx - dvx_dy)
    return derived_quantities(dvx_dx, dvy_dy, exy, spin, vx, vy)


# --------------------------------------------------------------------------- logarithmic

#: Stake offsets (col, row) in units of r: centre, N, E, S, W (north = row − r).
_STAKES = np.array([[0, 0], [0, -1], [1, 0], [0, 1], [-1, 0]], dtype=np.float64)
_C, _N, _E, _S, _W = range(5)


def _pixel_velocity(vx: np.ndarray, vy: np.ndarray, transform: Affine, cols, rows):
    """Velocity in pixels per year (d col/dt, d row/dt) at fractional pixel positions."""
    return bilinear(vx, cols, rows) / transform.a, bilinear(vy, cols, rows) / transform.e


def _advect_stakes(vx, vy, transform, cols, rows, duration, r, tolerance, max_iterations=20000):
    """Advect stakes (shape (5, n)) for ``duration`` (years, shape (n,)) with adaptive Heun.

    The local error estimate |Heun − Euler| is kept below ``tolerance``·r pixels.
    Returns final (cols, rows) and a boolean ``ok`` per centre (False if a stake met NaN).
    """
    n = cols.shape[1]
    cols, rows = cols.copy(), rows.copy()
    done = np.zeros(n)  # fraction of the duration integrated
    step = np.full(n, 0.25)
    ok = np.ones(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    for _ in range(max_iterations):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        h = (step[idx] * duration[idx])[None, :]
        c, rr = cols[:, idx], rows[:, idx]
        k1c, k1r = _pixel_velocity(vx, vy, transform, c, rr)
        ec, er = c + h * k1c, rr + h * k1r
        k2c, k2r = _pixel_velocity(vx, vy, transform, ec, er)
        hc, hr = c + 0.5 * h * (k1c + k2c), rr + 0.5 * h * (k1r + k2r)
        bad = ~np.isfinite(hc).all(axis=0) | ~np.isfinite(hr).all(axis=0)
        error = np.max(np.hypot(hc - ec, hr - er), axis=0) / r
        error = np.where(bad, 0.0, error)
        accept = (error <= tolerance) & ~bad
        acc = idx[accept]
        cols[:, acc] = hc[:, accept]
        rows[:, acc] = hr[:, accept]
        done[acc] += step[acc]
        ok[idx[bad]] = False
        factor = np.clip(0.9 * np.sqrt(tolerance / np.maximum(error, 1e-300)), 0.2, 2.0)
        step[idx] = np.minimum(step[idx] * factor, 1.0 - done[idx])
        active[idx] = ~bad & (done[idx] < 1.0 - 1e-12) & (step[idx] > 1e-9)
    ok &= done >= 0.5  # the stakes travelled less than half of T: no estimate
    return cols, rows, ok


def _stake_duration(speed_c: np.ndarray, speed_r: np.ndarray, r: int, max_stretch: float = 1e-3) -> np.ndarray:
    """T per centre (years): the fastest stake moves 0.1·r pixels (Alley et al. 2018), capped so
    that no stake moves more than ``max_stretch``·r relative to the centre; the combination
    formula assumes small strain, so this keeps its finite-strain error below ~max_stretch."""
    with np.errstate(invalid="ignore"):
        fastest = np.nanmax(np.hypot(speed_c, speed_r), axis=0)  # pixels / yr
        relative = np.nanmax(np.hypot(speed_c - speed_c[_C], speed_r - speed_r[_C]), axis=0)
    travel = np.where(fastest > 0, 0.1 * r / np.where(fastest > 0, fastest, 1.0), np.inf)
    stretch = np.where(relative > 0, max_stretch * r / np.where(relative > 0, relative, 1.0), np.inf)
    duration = np.minimum(travel, stretch)
    return np.where(np.isfinite(duration), duration, 1.0)  # no motion at all: lengths stay, rates 0


def _segment_length(transform, cols, rows, i, j):
    return np.hypot((cols[i] - cols[j]) * transform.a, (rows[i] - rows[j]) * transform.e)


def logarithmic_strain(vx: np.ndarray, vy: np.ndarray, transform: Affine, r: int = 1,
                       tolerance: float = 1e-4, rows_of_interest: Optional[Tuple[int, int]] = None
                       ) -> Dict[str, np.ndarray]:
    """All strain quantities (1/yr) by the virtual-stake method; NaN within 2r of the edges.

    ``rows_of_interest`` (start, stop) limits the centres to those rows (block processing).
    """
    height, width = vx.shape
    start, stop = rows_of_interest or (0, height)
    exx, eyy, exy = (np.full(vx.shape, np.nan) for _ in range(3))
    margin = 2 * r
    rr, cc = np.mgrid[max(start, margin):min(stop, height - margin), margin:max(margin, width - margin)]
    rr, cc = rr.ravel(), cc.ravel()
    centre_valid = np.isfinite(vx[rr, cc]) & np.isfinite(vy[rr, cc])
    rr, cc = rr[centre_valid], cc[centre_valid]
    if rr.size:
        cols0 = cc[None, :] + r * _STAKES[:, :1]
        rows0 = rr[None, :] + r * _STAKES[:, 1:]
        speed_c, speed_r = _pixel_velocity(vx, vy, transform, cols0, rows0)
        duration = _stake_duration(speed_c, speed_r, r)
        cols1, rows1, ok = _advect_stakes(vx, vy, transform, cols0, rows0, duration, r, tolerance)
        ok &= np.isfinite(speed_c).all(axis=0) & np.isfinite(speed_r).all(axis=0)

        def rate(i, j):
            return np.log(_segment_length(transform, cols1, rows1, i, j)
                          / _segment_length(transform, cols0, rows0, i, j)) / duration

        e_a = rate(_N, _S)
        e_c = rate(_E, _W)
        e_b = 0.5 * (rate(_S, _E) + rate(_W, _N))
        e_d = 0.5 * (rate(_N, _E) + rate(_W, _S))
        nan = np.where(ok, 1.0, np.nan)
        exx[rr, cc] = (0.25 * (e_b + e_d - e_a) + 0.75 * e_c) * nan
        eyy[rr, cc] = (0.75 * e_a + 0.25 * (e_b + e_d - e_c)) * nan
        exy[rr, cc] = 0.5 * (e_b - e_d) * nan
    # the stakes do not measure rotation: spin from centred differences over the same baseline
    _, dvx_dy, dvy_dx, _ = nominal_gradient(vx, vy, transform, r)
    spin = 0.5 * (dvy_dx - dvx_dy)
    spin = np.where(np.isfinite(exx), spin, np.nan)
    return derived_quantities(exx, eyy, exy, spin, vx, vy)


def strain_rates(vx: np.ndarray, vy: np.ndarray, transform: Affine, method: str = "nominal",
                 length_scale_m: float = 0.0, tolerance: float = 1e-4,
                 rows_of_interest: Optional[Tuple[int, int]] = None) -> Dict[str, np.ndarray]:
    """Strain quantities (1/yr) of one 2-D velocity field (m/yr) on a north-up grid."""
    METHODS.check(method, "strain-rate method")
    r = stencil_radius(length_scale_m, transform)
    if method == "nominal":
        return nominal_strain(vx, vy, transform, r)
    return logarithmic_strain(vx, vy, transform, r, tolerance, rows_of_interest)


def strain_uncertainty(vx_error: np.ndarray, vy_error: np.ndarray, transform: Affine, r: int) -> np.ndarray:
    """δε̇ ≈ √(δvx² + δvy²) / ΔL (Poinar & Andrews 2021), ΔL = 2·r·Δ the differencing baseline (m)."""
    baseline = 2.0 * r * min(abs(transform.a), abs(transform.e))
    return np.sqrt(vx_error ** 2 + vy_error ** 2) / baseline


# --------------------------------------------------------------------------- files

def strain_rates_file(vx_path: str, vy_path: str, output_path: str, method: str = "nominal",
                      length_scale_m: float = 0.0, upscale: int = 1, band: int = 1,
                      vx_error_path: Optional[str] = None, vy_error_path: Optional[str] = None,
                      tolerance: float = 1e-4,
                      progress: Optional[Callable[[float], None]] = None,
                      is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, object]:
    """Write a multi-band float32 GeoTIFF of strain rates (bands :data:`STRAIN_BANDS`, 1/yr;
    theta_p in degrees; plus ``uncertainty`` when both error rasters are given).

    ``band`` picks the time step of multi-band (cube) vx/vy rasters. Returns a summary dict.
    """
    if upscale < 1:
        raise UserInputError(f"Upscale must be 1 (native grid) or more, not {upscale}.")
    grid = read_velocity(vx_path, vy_path, [band])
    vx, transform = decimate(grid.vx[0], grid.transform, upscale)
    vy, _ = decimate(grid.vy[0], grid.transform, upscale)
    r = stencil_radius(length_scale_m, transform)
    uncertainty = None
    if bool(vx_error_path) != bool(vy_error_path):
        raise UserInputError("Give both the vx and the vy error rasters, or neither.")
    if vx_error_path:
        errors = [decimate(read_error(path, band, grid.vx.shape[1:]), grid.transform, upscale)[0]
                  for path in (vx_error_path, vy_error_path)]
        uncertainty = strain_uncertainty(errors[0], errors[1], transform, r)
    bands = list(STRAIN_BANDS) + ([UNCERTAINTY_BAND] if uncertainty is not None else [])
    height, width = vx.shape
    if min(height, width) <= 2 * r:
        raise UserInputError(
            f"The velocity grid ({height} x {width} cells after upscale {upscale}) is too small for a "
            f"length scale of {r} cells; use a smaller length scale or a larger area.")
    halo = 2 * r + 2 if method == "logarithmic" else r
    blocks = list(row_blocks(height, _BLOCK_ROWS))
    tags = {"SM_METHOD": method, "SM_LENGTH_SCALE_PX": r, "SM_UPSCALE": upscale,
            "SM_UNITS": "1/yr (theta_p: degrees counter-clockwise from grid x)",
            "SM_SIGN": "extension positive, compression negative; x east, y north"}
    out_grid = grid.output_grid(transform, (height, width))
    hint = (f"Band {band} of the velocity rasters has no cell whose neighbours at ±{r} cell(s) (±{2 * r} for the "
            "logarithmic method) all hold vx and vy; check BAND, or use a smaller length scale.")
    with RasterWriter(output_path, out_grid, [band_description(n, u) for n, u in bands], tags=tags,
                      style=STRAIN_STYLE, require_valid=hint) as out:
        for index, (start, stop) in enumerate(blocks):
            check_canceled(is_canceled)
            lo, hi = max(0, start - halo), min(height, stop + halo)
            block = strain_rates(vx[lo:hi], vy[lo:hi], transform, method, length_scale_m, tolerance,
                                 rows_of_interest=(start - lo, stop - lo))
            # edges of the full grid only: a block's halo rows are real data
            window = out_grid.rows(start, stop)
            for k, (name, _) in enumerate(STRAIN_BANDS, start=1):
                out.write(block[name][start - lo:stop - lo], k, window)
            if uncertainty is not None:
                out.write(uncertainty[start:stop], len(bands), window)
            if progress:
                progress(100.0 * (index + 1) / len(blocks))
    return {"path": output_path, "radius_px": r, "bands": [n for n, _ in bands],
            "shape": (height, width), "pixel_size_m": abs(transform.a)}


def read_error(path: str, band: int, shape) -> np.ndarray:
    """Band ``band`` of an error raster (m/yr; band 1 when it has fewer bands, e.g. one error for a
    whole stack), checked against the velocity grid shape."""
    with open_raster(path) as ds:
        count = ds.count
    stack, info, _ = read_band_stack(path, [band if band <= count else 1])
    if tuple(info["shape"]) != tuple(shape):
        raise UserInputError(f"Error raster '{path}' is not on the velocity grid ({info['shape']} vs {shape}).")
    return stack[0]
