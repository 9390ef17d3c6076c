"""Fit third-order rational polynomial coefficients (RPCs) to a camera model by least squares.

A camera is any vectorised function ``camera(lon, lat, h) -> (col, row)``: longitude and latitude
in degrees (WGS 84), ``h`` the height above the WGS 84 ellipsoid (m), ``col``/``row`` image
coordinates in GDAL's pixel-CORNER convention (the upper-left corner of pixel (0, 0) is (0, 0),
its centre (0.5, 0.5)). The fitted model is returned as GDAL's RPC metadata dict (the keys of the
``RPC`` metadata domain), so ``RasterWriter(..., georeferencing={"rpcs": rpc})`` writes it into a
GeoTIFF and :func:`rpc_txt` gives the ``<stem>_RPC.TXT`` sidecar.

The RPC00B model (as GDAL evaluates it): normalised ``L = (lon - LONG_OFF) / LONG_SCALE``,
``P = (lat - LAT_OFF) / LAT_SCALE``, ``H = (h - HEIGHT_OFF) / HEIGHT_SCALE``;
``samp = SAMP_OFF + SAMP_SCALE * num_s(L, P, H) / den_s(L, P, H)`` and the same for ``line``, each
polynomial a dot product of 20 coefficients with :data:`TERM_NAMES` (GDAL's ``RPCComputeTerms``
order). RPC sample/line count from the centre of the first pixel (RPC00B convention), GDAL adds
half a pixel to get its corner convention; :data:`PIXEL_CENTRE_OFFSET` is that half pixel.

Fit (Tao & Hu 2001, "A comprehensive study of the rational function model"): for each output the
linearised problem ``num(x) - r * (den(x) - 1) = r`` (``den``'s constant term fixed at 1) is
solved by least squares on a regular 3-D grid of (lon, lat, h), then re-solved with the weights
``1 / den(x)`` of the previous solution (the residuals of the true, non-linear problem), with a
small ridge on the denominator against its near-singularity for almost-affine cameras. The result
is checked on an independent grid (the cell centres of the fitting grid) with
:class:`core.ortho.rpc.RpcModel`; a residual above ``tolerance`` pixels raises.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Sequence, Tuple

import numpy as np

from ..errors import UserInputError
from .rpc import COEFFICIENTS, SCALARS, RpcModel

__all__ = ["TERM_NAMES", "PIXEL_CENTRE_OFFSET", "RpcFit", "rpc_terms", "fit_rpc", "rpc_txt"]

#: The 20 monomials of a third-order RPC polynomial in GDAL's order (L = lon, P = lat, H = height).
TERM_NAMES = ("1", "L", "P", "H", "LP", "LH", "PH", "LL", "PP", "HH",
              "LPH", "LLL", "LPP", "LHH", "LLP", "PPP", "PHH", "LLH", "PPH", "HHH")
#: GDAL col/row (pixel-corner convention) = RPC sample/line + this (RPC00B counts from pixel centres).
PIXEL_CENTRE_OFFSET = 0.5

Camera = Callable[[np.ndarray, np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class RpcFit:
    """A fitted RPC model: ``rpc`` (GDAL RPC metadata dict, string values) and its check residuals.

    ``max_residual`` / ``rms_residual``: the largest and the root-mean-square distance (px) between
    the camera and the RPC on the independent check grid.
    """

    rpc: Dict[str, str]
    max_residual: float
    rms_residual: float


def rpc_terms(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The 20 RPC monomials (:data:`TERM_NAMES`) of normalised lon ``x``, lat ``y``, height ``z``.

    Returns an array of shape ``x.shape + (20,)``.
    """
    x, y, z = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (x, y, z)))
    return np.stack([np.ones_like(x), x, y, z, x * y, x * z, y * z, x * x, y * y, z * z,
                     x * y * z, x ** 3, x * y * y, x * z * z, x * x * y, y ** 3, y * z * z,
                     x * x * z, y * y * z, z ** 3], axis=-1)


def _grid(bounds: Sequence[Tuple[float, float]], shape: Sequence[int], centres: bool) -> Tuple[np.ndarray, ...]:
    """A regular (lon, lat, h) lattice over ``bounds``: nodes, or the centres of its cells."""
    axes = []
    for (low, high), count in zip(bounds, shape):
        nodes = np.linspace(low, high, count)
        axes.append(0.5 * (nodes[1:] + nodes[:-1]) if centres else nodes)
    return tuple(values.ravel() for values in np.meshgrid(*axes, indexing="ij"))


def _solve_rational(terms: np.ndarray, target: np.ndarray, iterations: int, ridge: float) -> Tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator (constant 1) with ``num/den ~ target`` (normalised values)."""
    design = np.hstack([terms, -target[:, None] * terms[:, 1:]])
    weights = np.ones_like(target)
    penalty = np.zeros(design.shape[1])
    penalty[20:] = np.sqrt(ridge)
    for _ in range(max(1, iterations)):
        lhs = np.vstack([design * weights[:, None], np.diag(penalty)])
        rhs = np.r_[target * weights, np.zeros(design.shape[1])]
        solution = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
        numerator, denominator = solution[:20], np.r_[1.0, solution[20:]]
        den = terms @ denominator
        if np.any(np.abs(den) < 1e-6):
            raise UserInputError("The RPC fit found a denominator crossing zero inside the scene; "
                                 "the camera function is not a smooth projection over these bounds.")
        weights = 1.0 / np.abs(den)
    return numerator, denominator


def _format(values: np.ndarray) -> str:
    return " ".join(f"{value:.17g}" for value in values)


def fit_rpc(camera: Camera, lon_range: Tuple[float, float], lat_range: Tuple[float, float],
            h_range: Tuple[float, float], *, shape: Tuple[int, int, int] = (21, 21, 7),
            iterations: int = 5, ridge: float = 1e-12, tolerance: float = 0.01) -> RpcFit:
    """Fit GDAL RPCs to ``camera`` over lon/lat (degrees) and ellipsoidal height (m) ranges.

    ``shape``: nodes of the fitting grid along lon, lat and h (at least 4, 4, 3: the cubic terms
    need them); ``iterations``: reweighted solutions (1 = the plain linearised problem); ``ridge``:
    the Tikhonov weight on the denominator coefficients; ``tolerance``: the largest residual (px)
    allowed on the independent check grid (raises :class:`UserInputError` above it).
    """
    bounds = [tuple(map(float, lon_range)), tuple(map(float, lat_range)), tuple(map(float, h_range))]
    if any(not np.isfinite(low + high) or high <= low for low, high in bounds):
        raise UserInputError(f"The RPC fit needs increasing, finite lon/lat/height ranges; got {bounds}.")
    if shape[0] < 4 or shape[1] < 4 or shape[2] < 3:
        raise UserInputError(f"The RPC fitting grid needs at least 4 x 4 x 3 nodes; got {tuple(shape)}.")
    lon, lat, h = _grid(bounds, shape, centres=False)
    col, row = (np.asarray(v, np.float64) for v in camera(lon, lat, h))
    if not (np.all(np.isfinite(col)) and np.all(np.isfinite(row))):
        raise UserInputError("The camera function returned non-finite image coordinates inside the fit bounds.")
    samp, line = col - PIXEL_CENTRE_OFFSET, row - PIXEL_CENTRE_OFFSET
    offsets = [0.5 * (low + high) for low, high in bounds]
    scales = [0.5 * (high - low) for low, high in bounds]
    samp_off, line_off = 0.5 * (samp.min() + samp.max()), 0.5 * (line.min() + line.max())
    samp_scale = max(0.5 * (samp.max() - samp.min()), 1.0)
    line_scale = max(0.5 * (line.max() - line.min()), 1.0)
    terms = rpc_terms((lon - offsets[0]) / scales[0], (lat - offsets[1]) / scales[1], (h - offsets[2]) / scales[2])
    line_num, line_den = _solve_rational(terms, (line - line_off) / line_scale, iterations, ridge)
    samp_num, samp_den = _solve_rational(terms, (samp - samp_off) / samp_scale, iterations, ridge)
    rpc = {"LINE_OFF": f"{line_off:.17g}", "SAMP_OFF": f"{samp_off:.17g}",
           "LAT_OFF": f"{offsets[1]:.17g}", "LONG_OFF": f"{offsets[0]:.17g}", "HEIGHT_OFF": f"{offsets[2]:.17g}",
           "LINE_SCALE": f"{line_scale:.17g}", "SAMP_SCALE": f"{samp_scale:.17g}",
           "LAT_SCALE": f"{scales[1]:.17g}", "LONG_SCALE": f"{scales[0]:.17g}", "HEIGHT_SCALE": f"{scales[2]:.17g}",
           "LINE_NUM_COEFF": _format(line_num), "LINE_DEN_COEFF": _format(line_den),
           "SAMP_NUM_COEFF": _format(samp_num), "SAMP_DEN_COEFF": _format(samp_den),
           "MIN_LONG": f"{bounds[0][0]:.17g}", "MAX_LONG": f"{bounds[0][1]:.17g}",
           "MIN_LAT": f"{bounds[1][0]:.17g}", "MAX_LAT": f"{bounds[1][1]:.17g}"}
    check = _grid(bounds, shape, centres=True)
    true_col, true_row = camera(*check)
    fit_col, fit_row = RpcModel(rpc).ground_to_image(*check)
    distance = np.hypot(fit_col - np.asarray(true_col), fit_row - np.asarray(true_row))
    worst, rms = float(distance.max()), float(np.sqrt(np.mean(distance ** 2)))
    rpc["ERR_BIAS"], rpc["ERR_RAND"] = "-1", "-1"
    if not worst < tolerance:
        raise UserInputError(f"The RPC fit misses the camera by up to {worst:.4f} px on the check grid "
                             f"(tolerance {tolerance} px); narrow the lon/lat/height ranges or densify the grid.")
    return RpcFit(rpc, worst, rms)


def rpc_txt(rpc: Mapping[str, str]) -> str:
    """The text of a ``<stem>_RPC.TXT`` sidecar (the format GDAL reads: ``KEY: value`` per line,
    coefficients as ``LINE_NUM_COEFF_1`` … ``_20``)."""
    lines = [f"{key}: {float(rpc[key]):.17g}" for key in ("ERR_BIAS", "ERR_RAND") if key in rpc]
    lines += [f"{key}: {float(rpc[key]):.17g}" for key in SCALARS]
    for key in COEFFICIENTS:
        coefficients = [float(value) for value in str(rpc[key]).split()]
        lines += [f"{key}_{index}: {value:.17g}" for index, value in enumerate(coefficients, start=1)]
    return "\n".join(lines) + "\n"
