"""Per-pixel statistics of a stack of pair velocities (REFERENCE §6.3; surfacemotion:stackvelocity).

Inputs are pairs as read by :func:`core.series.network.read_network`: our velocity rasters (bands speed,
azimuth, v_east, v_north in m/yr), disparity rasters (dx, dy in reference px; converted to m/yr with the
pair's dt by :meth:`PairRaster.read_velocity`) or the pairs (bands) of an ITS_LIVE download. All must share
one grid (same CRS, geotransform and size): a stack on different grids is refused (resample the inputs
first), because averaging pixels of different places silently would be wrong.

Statistics (NaN-aware; a pair counts at a pixel where speed, v_east and v_north are all finite, and, when
weighted, its uncertainty is finite and > 0):

* mean, population std (ddof = 0), median, MAD = 1.4826 · median |x − median| (the normal-consistent MAD,
  ≈ std for Gaussian noise) and count of the speed;
* the vector mean (mean v_east, mean v_north) and its speed and azimuth (the mean of speeds is biased high by
  noise, the vector mean is not);
* circular mean and circular std of the flow direction θ = atan2(v_east, v_north) of the pairs with a
  non-zero speed: C = mean cos θ, S = mean sin θ, R = √(C² + S²), mean = atan2(S, C), std = √(−2 ln R)
  (degrees).

Weights (optional): inverse variance 1/σ² from each pair's uncertainty (:meth:`PairRaster.read_sigma`:
velocity rasters: a band whose description starts with "uncertainty" in m/yr; disparity rasters:
"uncertainty (px, 1 sigma)", converted to m/yr with the pixel size and dt; ITS_LIVE downloads: vx_error and
vy_error), σ = √((σ_east² + σ_north²) / 2). They weight the mean, std, vector mean and the circular
statistics; median, MAD and count stay unweighted.

Memory is bounded whatever the number of inputs: rows are processed in blocks sized so that the block of every
input fits ``max_block_bytes``; each block reads those rows from every input.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, Dict, Optional, Sequence

import numpy as np
from rasterio.windows import Window

from ..errors import UserInputError, check_canceled
from ..io import RasterWriter, row_blocks
from ..offsets.velocity import VELOCITY_STYLE
from .network import PairRaster, check_common_grid, read_sigma_block, read_velocity_block, sources_tag

#: 1 / Φ⁻¹(3/4): scales the median absolute deviation to the std of normal data.
MAD_SCALE = 1.4826

STACK_BANDS = (
    ("vector_speed", "vector-mean speed (m/yr)"),
    ("vector_azimuth", "vector-mean azimuth (deg clockwise from grid north)"),
    ("mean_v_east", "mean east velocity (m/yr, grid x)"),
    ("mean_v_north", "mean north velocity (m/yr, grid y)"),
    ("mean_speed", "mean speed (m/yr)"),
    ("median_speed", "median speed (m/yr)"),
    ("std_speed", "std of speed (m/yr, population, ddof 0)"),
    ("mad_speed", "MAD of speed (m/yr, 1.4826 x median absolute deviation)"),
    ("count", "count (valid pairs)"),
    ("circular_mean", "circular mean of direction (deg clockwise from grid north)"),
    ("circular_std", "circular std of direction (deg)"),
)
STACK_DESCRIPTIONS = tuple(text for _, text in STACK_BANDS)
#: Bands 1-4 follow the velocity-raster layout, so the velocity styles apply.
STACK_STYLE = VELOCITY_STYLE
TAG_SERIES_KIND = "SM_SERIES_KIND"
TAG_SERIES_UNIT = "SM_SERIES_UNIT"
TAG_SERIES_SOURCES = "SM_SERIES_SOURCES"
TAG_WEIGHTED = "SM_STACK_WEIGHTED"
#: Memory budget of one block over all inputs (bytes, float64 working arrays).
DEFAULT_BLOCK_BYTES = 256 << 20
_VALUES_PER_INPUT_CELL = 4  # speed, v_east, v_north, weight


# --------------------------------------------------------------------------- arrays

def _weighted_mean(values: np.ndarray, weights: np.ndarray, total: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.sum(np.where(weights > 0, values, 0.0) * weights, axis=0) / total, np.nan)


def _nan_median(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels give NaN, as wanted
        return np.nanmedian(values, axis=0)


def stack_statistics(speed: np.ndarray, v_east: np.ndarray, v_north: np.ndarray,
                     sigma: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Statistics of a stack (axis 0 = pairs; m/yr) as {band name of STACK_BANDS: array}.

    ``sigma``: 1-sigma uncertainty of each pair's velocity (m/yr, same shape), or None for equal weights.
    See the module docstring for the definitions.
    """
    speed, v_east, v_north = (np.asarray(a, np.float64) for a in (speed, v_east, v_north))
    valid = np.isfinite(speed) & np.isfinite(v_east) & np.isfinite(v_north)
    if sigma is None:
        weights = valid.astype(np.float64)
    else:
        sigma = np.asarray(sigma, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            valid &= np.isfinite(sigma) & (sigma > 0)
            weights = np.where(valid, 1.0 / np.where(valid, sigma, 1.0) ** 2, 0.0)
    total = weights.sum(axis=0)
    mean = _weighted_mean(speed, weights, total)
    std = np.sqrt(_weighted_mean((speed - mean) ** 2, weights, total))
    masked = np.where(valid, speed, np.nan)
    median = _nan_median(masked)
    mad = MAD_SCALE * _nan_median(np.abs(masked - median))
    mean_e = _weighted_mean(v_east, weights, total)
    mean_n = _weighted_mean(v_north, weights, total)
    vector_speed = np.hypot(mean_e, mean_n)
    moving = valid & (speed > 0)
    dir_weights = np.where(moving, weights, 0.0)
    dir_total = dir_weights.sum(axis=0)
    theta = np.arctan2(np.where(moving, v_east, 0.0), np.where(moving, v_north, 1.0))
    c = _weighted_mean(np.cos(theta), dir_weights, dir_total)
    s = _weighted_mean(np.sin(theta), dir_weights, dir_total)
    r = np.minimum(np.hypot(c, s), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        circular_std = np.where(r > 0, np.degrees(np.sqrt(-2.0 * np.log(np.where(r > 0, r, 1.0)))), np.nan)
    return {
        "vector_speed": vector_speed,
        "vector_azimuth": _azimuth(mean_e, mean_n, vector_speed),
        "mean_v_east": mean_e, "mean_v_north": mean_n,
        "mean_speed": mean, "median_speed": median, "std_speed": std, "mad_speed": mad,
        "count": valid.sum(axis=0).astype(np.float64),
        "circular_mean": _azimuth(s, c, r),
        "circular_std": np.where(dir_total > 0, circular_std, np.nan),
    }


def _azimuth(east: np.ndarray, north: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Degrees clockwise from grid north in [0, 360); NaN where the length is 0 or NaN."""
    azimuth = np.mod(np.degrees(np.arctan2(east, north)), 360.0)
    azimuth = np.where(azimuth >= 360.0, azimuth - 360.0, azimuth)
    with np.errstate(invalid="ignore"):
        return np.where(length > 0, azimuth, np.nan)


# --------------------------------------------------------------------------- files

def _require_sigma(pairs: Sequence[PairRaster]) -> None:
    for pair in pairs:
        if not pair.has_sigma:
            raise UserInputError(
                f"'{os.path.basename(pair.path)}' has no uncertainty band, so inverse-variance weights cannot be "
                "computed: switch the weights off, or give rasters with an uncertainty (disparity rasters of "
                "correlatepair with the uncertainty output, velocity rasters with an 'uncertainty' band, ITS_LIVE "
                "downloads with their vx_error and vy_error).")


def _combined_sigma(sigmas: np.ndarray) -> np.ndarray:
    """(n_pairs, rows, cols) σ of the pairs from their (n_pairs, 2, rows, cols) component uncertainties: the
    RMS √((σ_east² + σ_north²) / 2) (= σ when it is the same in both directions, as for velocity and
    square-pixel disparity rasters)."""
    return np.sqrt((sigmas[:, 0] ** 2 + sigmas[:, 1] ** 2) / 2.0)


def block_rows(n_inputs: int, width: int, height: int, max_block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows per block so that the working arrays of all inputs stay within ``max_block_bytes``."""
    per_row = max(1, n_inputs) * width * 8 * (_VALUES_PER_INPUT_CELL + 3)
    return int(max(1, min(height, max_block_bytes // per_row)))


def stack_file(pairs: Sequence, out_path: str, weighted: bool = False,
               max_block_bytes: int = DEFAULT_BLOCK_BYTES,
               progress: Optional[Callable[[float], None]] = None,
               is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, float]:
    """Write the stack statistics of ``pairs`` (PairRaster objects, one grid) to ``out_path``.

    11 float32 bands (STACK_DESCRIPTIONS), NaN nodata, tags SM_SERIES_KIND = velocity_stack,
    SM_SERIES_UNIT = m/yr, SM_SERIES_SOURCES (the pairs) and SM_STACK_WEIGHTED. Returns n_pairs, rows per
    block and the number of pixels with at least one valid pair.
    """
    if not pairs:
        raise UserInputError("No pair raster was given: give at least one velocity or disparity raster.")
    grid = check_common_grid(list(pairs))
    rows = block_rows(len(pairs), grid.width, grid.height, max_block_bytes)
    tags = {TAG_SERIES_KIND: "velocity_stack", TAG_SERIES_UNIT: "m/yr", TAG_SERIES_SOURCES: sources_tag(pairs),
            TAG_WEIGHTED: "yes" if weighted else "no"}
    n_pixels = 0
    if weighted:
        _require_sigma(pairs)
    hint = "No pixel has a valid velocity in any input pair; check the inputs (and their uncertainty band)."
    with RasterWriter(out_path, grid, STACK_DESCRIPTIONS, tags=tags, style=STACK_STYLE, require_valid=hint,
                      valid_bands=(5,)) as dst:
        for row0, row1 in row_blocks(grid.height, rows):
            check_canceled(is_canceled)
            window = Window(0, row0, grid.width, row1 - row0)
            velocity = read_velocity_block(pairs, window, np.float64)
            sigma = _combined_sigma(read_sigma_block(pairs, window, np.float64)) if weighted else None
            stats = stack_statistics(np.hypot(velocity[:, 0], velocity[:, 1]), velocity[:, 0], velocity[:, 1],
                                     sigma=sigma)
            for index, (name, _) in enumerate(STACK_BANDS, start=1):
                dst.write(stats[name].astype(np.float32), index, window=window)
            n_pixels += int((stats["count"] > 0).sum())
            if progress is not None:
                progress(100.0 * row1 / grid.height)
    return {"n_pairs": len(pairs), "block_rows": rows, "n_pixels": n_pixels}
