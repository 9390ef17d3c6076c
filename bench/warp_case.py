"""Benchmark case ``warp``: real texture warped by a displacement field shaped like real glacier flow.

The secondary is the Sentinel-2 B03 crop (tests/data/s2_b03_crop.tif, land part,
512 x 384 px) resampled by quintic B-splines (scipy map_coordinates, order 5 with the
spline prefilter, mirror boundary) at ``x - D(x)``; ``D`` is shaped like the ITS_LIVE
Alaska 2018 annual velocities (tests/data/itslive/alaska_v[xy]_2010_2018.tif, band 9;
a 80 x 60 cell window of the 120 m grid across the main trunk, :data:`WINDOW`):

1. vx, vy smoothed by a NaN-aware Gaussian (sum(w v) / sum(w), w = finite) of sigma
   :data:`SMOOTH_CELLS` cells;
2. evaluated at any image point by cubic-spline interpolation of the smoothed window
   stretched over the image (about 6.4 px per cell), north-up: dx = vx, dy = -vy;
3. multiplied by a taper t = smoothstep((s - :data:`SLOW`) / (:data:`FAST` - :data:`SLOW`)),
   s = the smoothed speed with nodata counted as 0 (so nodata and slow ice / rock,
   s <= SLOW m/yr, move exactly 0, C1-continuously);
4. scaled so the largest |D| over the image is :data:`MAX_PX` px.

No value is NaN. Then 20 dB noise and a brightness change with a gradient, as case b.
Truth at each chip centre c (pixel-corner coordinates): the feature at reference c is
at c + d in the secondary with d = D(c + d), solved by fixed-point iteration.
:func:`max_strain` gives the largest |dD_i/dx_j| of the field (px/px).
"""
from __future__ import annotations

import functools
import os
from typing import Callable, Dict, List, Tuple

import numpy as np
from scipy import ndimage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITSLIVE = os.path.join(REPO, "tests", "data", "itslive")
BAND = 9  # 2018-01-01 annual mosaic
#: ITS_LIVE window (rows, cols of the 240 x 240 crop): the trunk, with slow ground on both sides.
WINDOW = (slice(104, 184), slice(70, 130))
SMOOTH_CELLS = 8.0
SLOW, FAST = 100.0, 400.0  # m/yr
MAX_PX = 6.0


def _nan_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    weight = np.isfinite(values).astype(np.float64)
    filled = np.where(weight > 0, values, 0.0)
    return ndimage.gaussian_filter(filled, sigma) / np.maximum(ndimage.gaussian_filter(weight, sigma), 1e-12)


@functools.lru_cache(maxsize=None)
def _velocity_window() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed vx, vy (m/yr, NaN-aware) and the taper's speed (nodata = 0) on the window."""
    from core.io import open_raster
    bands = []
    for name in ("vx", "vy"):
        with open_raster(os.path.join(ITSLIVE, f"alaska_{name}_2010_2018.tif")) as ds:
            bands.append(ds.read_float(BAND).astype(np.float64))
    vx, vy = bands
    sx, sy = _nan_smooth(vx, SMOOTH_CELLS), _nan_smooth(vy, SMOOTH_CELLS)
    speed = ndimage.gaussian_filter(np.nan_to_num(np.hypot(vx, vy), nan=0.0), SMOOTH_CELLS)
    return sx[WINDOW].copy(), sy[WINDOW].copy(), speed[WINDOW].copy()


def displacement_field(shape: Tuple[int, int]) -> Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """D(rows, cols) -> (dx, dy) px for an image of ``shape``; arguments in pixel-corner coordinates."""
    sx, sy, speed = _velocity_window()
    height, width = shape
    cells_r, cells_c = sx.shape

    def raw(rows, cols):
        at = [np.asarray(rows) / height * cells_r - 0.5, np.asarray(cols) / width * cells_c - 0.5]
        vx = ndimage.map_coordinates(sx, at, order=3, mode="nearest")
        vy = ndimage.map_coordinates(sy, at, order=3, mode="nearest")
        s = ndimage.map_coordinates(speed, at, order=3, mode="nearest")
        t = np.clip((s - SLOW) / (FAST - SLOW), 0.0, 1.0)
        t = t * t * (3.0 - 2.0 * t)
        return vx * t, -vy * t

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    dx, dy = raw(rows, cols)
    scale = MAX_PX / float(np.hypot(dx, dy).max())

    def field(rows, cols):
        dx, dy = raw(rows, cols)
        return dx * scale, dy * scale

    return field


def max_strain(field, shape: Tuple[int, int]) -> Dict[str, float]:
    """Largest |dD_i/dx_j| (px/px) at the pixel centres, its 99th percentile, and the stable share (D == 0)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64) + 0.5
    dx, dy = field(rows, cols)
    jacobian = np.abs(np.stack(np.gradient(dx) + np.gradient(dy)))
    largest = jacobian.max(axis=0)
    return dict(max=float(largest.max()), p99=float(np.percentile(largest, 99)),
                stable=float(np.mean((dx == 0) & (dy == 0))), max_px=float(np.hypot(dx, dy).max()))


def build_warp(land: np.ndarray, margin: int, spec, noise) -> List[dict]:
    """The warp pair on ``land`` (float64), cut by ``margin`` px, with the truth on ``spec``'s grid.

    ``noise(ref, sec)`` adds the noise and brightness change (the bench's case-b recipe).
    """
    height, width = land.shape
    field = displacement_field(land.shape)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    # pixel (r, c) samples the reference at its centre minus the displacement there
    wx, wy = field(rows + 0.5, cols + 0.5)
    sec = ndimage.map_coordinates(land, [rows - wy, cols - wx], order=5, mode="mirror", prefilter=True)
    ref, sec = land[margin:-margin, margin:-margin], sec[margin:-margin, margin:-margin]
    ref, sec = noise(ref, sec)
    centre_rows, centre_cols = spec.centres(ref.shape)
    centre_rows, centre_cols = centre_rows + margin, centre_cols + margin
    d_rows, d_cols = np.zeros_like(centre_rows), np.zeros_like(centre_cols)
    for _ in range(50):
        d_cols, d_rows = field(centre_rows + d_rows, centre_cols + d_cols)
    strain = max_strain(field, land.shape)
    return [dict(ref=ref, sec=sec, dx=d_cols, dy=d_rows, strain=strain)]
