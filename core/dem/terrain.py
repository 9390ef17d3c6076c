"""Slope and aspect of a gridded DEM, and the NMAD.

Conventions: the DEM grid's geotransform maps (col, row) to map (x, y); x east, y north on ordinary
projected CRSs. The gradient is taken with Horn's (1981) 3 x 3 operator (GDAL's default) in pixel
units and mapped to map units through the geotransform's linear part, so rotated grids work too.
``tan_slope`` is |∇h| (m/m, dimensionless); ``aspect`` is the direction the slope faces (downhill),
in radians clockwise from grid north in [0, 2π): 0 north, π/2 east. Cells on the border or next to
nodata are NaN.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from affine import Affine

#: The NMAD's scale factor: 1.4826 × median absolute deviation = σ for Gaussian errors.
NMAD_FACTOR = 1.4826


def nmad(values: np.ndarray) -> float:
    """Normalised median absolute deviation of the finite ``values`` (NaN when there is none)."""
    finite = np.asarray(values, dtype="float64")
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan")
    return float(NMAD_FACTOR * np.median(np.abs(finite - np.median(finite))))


def pixel_gradient(dem: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(∂h/∂col, ∂h/∂row) per pixel by Horn's operator; NaN on the border and next to NaN."""
    z = np.asarray(dem, dtype="float64")
    d_col = np.full(z.shape, np.nan)
    d_row = np.full(z.shape, np.nan)
    if z.shape[0] < 3 or z.shape[1] < 3:
        return d_col, d_row
    d_col[1:-1, 1:-1] = ((z[:-2, 2:] + 2.0 * z[1:-1, 2:] + z[2:, 2:])
                         - (z[:-2, :-2] + 2.0 * z[1:-1, :-2] + z[2:, :-2])) / 8.0
    d_row[1:-1, 1:-1] = ((z[2:, :-2] + 2.0 * z[2:, 1:-1] + z[2:, 2:])
                         - (z[:-2, :-2] + 2.0 * z[:-2, 1:-1] + z[:-2, 2:])) / 8.0
    return d_col, d_row


def map_gradient(dem: np.ndarray, transform: Affine) -> Tuple[np.ndarray, np.ndarray]:
    """(∂h/∂x, ∂h/∂y) in height units per map unit (m/m): the pixel gradient through the inverse of
    the geotransform's linear part J (x = a·col + b·row, y = d·col + e·row), [∂col, ∂row] = Jᵀ [∂x, ∂y]."""
    d_col, d_row = pixel_gradient(dem)
    jacobian = np.array([[transform.a, transform.b], [transform.d, transform.e]], dtype="float64")
    inverse_t = np.linalg.inv(jacobian.T)
    d_x = inverse_t[0, 0] * d_col + inverse_t[0, 1] * d_row
    d_y = inverse_t[1, 0] * d_col + inverse_t[1, 1] * d_row
    return d_x, d_y


def slope_aspect(dem: np.ndarray, transform: Affine) -> Tuple[np.ndarray, np.ndarray]:
    """(tan_slope, aspect): |∇h| (m/m) and the downhill direction (rad, clockwise from north, [0, 2π))."""
    d_x, d_y = map_gradient(dem, transform)
    tan_slope = np.hypot(d_x, d_y)
    aspect = np.mod(np.arctan2(-d_x, -d_y), 2.0 * np.pi)
    aspect[~np.isfinite(tan_slope)] = np.nan
    return tan_slope, aspect
