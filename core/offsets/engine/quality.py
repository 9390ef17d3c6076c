"""Quality of the matches: image noise, chip texture, offset uncertainty and the median test.

Units: noise in the image's units (DN); texture as standard deviation / noise;
uncertainty and the median test's epsilon in pixels. Offsets are (dx, dy),
dx + right, dy + down.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

from ..sweep import box_sums
from .outlier_kernel import coherence_test_compiled, median_test_compiled
from .params import DEFAULT_MEDIAN_TEST, Params
from .sources import PixelSource

#: Share of a noise box's pixels that must be usable (valid with their 8 neighbours): low enough
#: for scattered nodata (5 % random nodata leaves 63 %), high enough for a stable box mean.
_NOISE_MIN_USABLE = 0.25
#: Epsilon of the normalised median test (px): the spread below which residuals count as noise.
MEDIAN_EPSILON_PX = 0.1


def estimate_noise(source: PixelSource, height: int, width: int, windows_per_side: int = 6, window: int = 128,
                   box: int = 32) -> float:
    """Noise standard deviation of an image (its units), from up to 36 sample windows.

    Immerkaer (1996): sigma = sqrt(pi/2) / 6 * mean |I * N| with N the 3x3
    Laplacian-difference kernel, on ``box`` x ``box`` boxes of valid pixels (pixels whose
    3 x 3 neighbourhood is valid; boxes with at least ``_NOISE_MIN_USABLE`` of them);
    the 10th percentile of the box estimates is returned, so textured areas
    (whose fine detail inflates the estimate) do not count as noise. The
    windows are fixed by the image size, so the value does not depend on the
    block layout. Returns 0 when nothing valid is found.
    """
    kernel = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    size = min(window, height, width)
    # no more windows per side than it takes to cover the image (small images: no overlap)
    rows = np.unique(np.linspace(0, height - size, min(windows_per_side, -(-height // size))).astype(int))
    cols = np.unique(np.linspace(0, width - size, min(windows_per_side, -(-width // size))).astype(int))
    estimates = []
    for r in rows:
        for c in cols:
            values, valid = source.read(r, r + size, c, c + size)
            response = np.abs(_filtered_nearest(values, kernel))
            usable = _eroded(valid)
            n = size // box if size >= box else 1
            step = size // n
            cells = (n, step, n, step)
            counts = usable[:n * step, :n * step].reshape(cells).sum(axis=(1, 3))
            totals = np.where(usable, response, 0.0)[:n * step, :n * step].reshape(cells).sum(axis=(1, 3))
            enough = counts > _NOISE_MIN_USABLE * step * step
            box_means = totals[enough] / counts[enough]
            estimates.extend(box_means[box_means > 0])  # exactly flat (saturated, filled) areas: no noise
    if not estimates:
        return 0.0
    return float(np.sqrt(np.pi / 2.0) / 6.0 * np.percentile(estimates, 10))


def _filtered_nearest(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation with a small kernel, edges extended ("nearest"); OpenCV's SIMD filter
    when available (same values as ``ndimage.correlate(..., mode="nearest")``)."""
    try:
        import cv2
    except ImportError:
        return ndimage.correlate(values, kernel, mode="nearest")
    return cv2.filter2D(np.asarray(values, np.float64), -1, kernel, borderType=cv2.BORDER_REPLICATE)


def _eroded(valid: np.ndarray) -> np.ndarray:
    """Binary erosion by a 3 x 3 square, outside = False (``ndimage.binary_erosion``'s result)."""
    height, width = valid.shape
    if valid.all():  # the usual case: only the border goes
        out = np.zeros((height, width), bool)
        out[1:-1, 1:-1] = True
        return out
    padded = np.pad(valid, 1, constant_values=False)
    out = padded[1:1 + height, 1:1 + width].copy()
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            out &= padded[dr:dr + height, dc:dc + width]
    return out


def with_noise(params: Params, ref: PixelSource, height: int, width: int) -> Params:
    """``params`` with the reference noise filled in when the texture test is on."""
    if params.min_texture <= 0:
        return params
    return replace(params, noise=estimate_noise(ref, height, width))


def textured(ref: np.ndarray, p: Params, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Chips (flat, row-major) whose raw reference standard deviation is at least
    ``min_texture`` x the noise; ``ref`` holds exactly the block's chips. With ``valid``
    (bool, like ``ref``) the deviation is that of the chip's valid pixels."""
    n_rows = (ref.shape[0] - p.chip) // p.step + 1
    n_cols = (ref.shape[1] - p.chip) // p.step + 1
    if p.min_texture <= 0 or p.noise <= 0:
        return np.ones(n_rows * n_cols, bool)

    def at_chips(image: np.ndarray) -> np.ndarray:
        return box_sums(image, p.chip)[::p.step, ::p.step][:n_rows, :n_cols]

    if valid is None:
        centred = ref - ref.mean()  # conditions the float64 sums; any constant would do
        n = p.chip * p.chip
    else:
        centred = np.where(valid, ref - (ref[valid].mean() if valid.any() else 0.0), 0.0)
        n = np.maximum(at_chips(valid.astype(np.float64)), 1.0)
    sums = at_chips(centred)
    squares = at_chips(centred * centred)
    variance = np.maximum(squares - sums * sums / n, 0.0) / n
    return (np.sqrt(variance) >= p.min_texture * p.noise).ravel()


def uncertainty(peak: np.ndarray, curvature: np.ndarray, n: float) -> np.ndarray:
    """1-sigma offset uncertainty (px) from the peak ZNCC and its curvature (B, 2) (per px^2).

    For two images s + noise with ZNCC rho, the least-squares shift variance
    is 2 sigma_n^2 / sum(grad s)^2 per axis; with sigma_n^2 / sigma_s^2 =
    (1 - rho) / rho and curvature = rho * sum(grad s)^2 / sum(s^2) this is
    2 (1 - rho) / (n * curvature), n = independent samples in the chip. The curvature is measured on the integer
    grid (3-point differences), which under-estimates sharp peaks, so the
    value errs on the large side.
    """
    rho = np.clip(np.nan_to_num(peak, nan=0.0), 0.0, 1.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(curvature > 0, 2.0 * (1.0 - rho) / (n * curvature), np.inf)
    return np.sqrt(variance.sum(axis=1))


def normalised_median_test(dx: np.ndarray, dy: np.ndarray, threshold: float = DEFAULT_MEDIAN_TEST,
                           epsilon: float = MEDIAN_EPSILON_PX) -> np.ndarray:
    """Outliers of an offset field by the normalised median test (Westerweel & Scarano 2005).

    For each finite cell with at least two finite cells among its 8
    neighbours: r = |u - median(u_nb)| / (median(|u_nb - median(u_nb)|) +
    epsilon) per component (px); the cell is an outlier when r > threshold
    for dx or dy. NaN cells are ignored. Returns a bool array. Compiled when numba is
    installed (:mod:`.outlier_kernel`, the same results).
    """
    compiled = median_test_compiled(dx, dy, threshold, epsilon)
    if compiled is not None:
        return compiled
    outliers = np.zeros(dx.shape, bool)
    counts = None
    for component in (dx, dy):
        padded = np.pad(component.astype(np.float64), 1, constant_values=np.nan)
        height, width = component.shape
        neighbours = np.stack([padded[1 + a:1 + a + height, 1 + b:1 + b + width]
                               for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)])
        if counts is None:
            counts = np.isfinite(neighbours).sum(axis=0)
        enough = (counts >= 2) & np.isfinite(component)
        if not enough.any():
            return outliers
        nb = neighbours[:, enough]
        n = counts[enough]
        median = _finite_median(nb, n)
        spread = _finite_median(np.abs(nb - median), n)
        residual = np.abs(component[enough] - median) / (spread + epsilon)
        outliers[enough] |= residual > threshold
    return outliers


#: Share of a cell's valid neighbours that must agree with it in the coherence test. autoRIFT's NDC asks
#: 8 / 25 of the window; 0.15 removes the same outliers of a cloudy Sentinel-2 glacier pair and keeps the
#: core of the sample landslide (4.5 px in stable ground, smaller than the window), which 8 / 25 cuts to 81 %.
COHERENCE_MIN_SHARE = 0.15
#: Half-width of the coherence test's neighbourhood in chips (autoRIFT's NDC window: 2).
COHERENCE_CHIPS = 2


def coherence_geometry(chip: int, step: int, chips: int = 0) -> Tuple[int, int]:
    """(spacing, reach) in cells of the coherence test's neighbourhood: neighbours every
    ``spacing`` cells up to ``reach`` samples away, i.e. about ``chips`` (default
    ``COHERENCE_CHIPS``) chips on every side (autoRIFT's NDC window of (5 - 1) x chip/step + 1
    cells for 2), sampled so it costs at most 9 x 9 comparisons."""
    chips = chips or COHERENCE_CHIPS
    ratio = max(1, int(round(chip / step)))
    spacing = max(1, (ratio * chips) // 4)
    return spacing, max(2, (chips * ratio) // spacing)


def displacement_coherence_test(dx: np.ndarray, dy: np.ndarray, tolerance: float, spacing: int = 1,
                                reach: int = 2, min_share: float = COHERENCE_MIN_SHARE) -> np.ndarray:
    """Outliers of an offset field by a normalised displacement coherence test (after autoRIFT's NDC
    filter, Gardner et al. 2018): clustered outliers, not only isolated ones.

    For each finite cell, its finite neighbours at (a * spacing, b * spacing) cells, |a|, |b| <=
    ``reach`` (not the cell itself), agree when both |dx_nb - dx| and |dy_nb - dy| are at most
    ``tolerance`` px; the cell is an outlier when fewer than ``min_share`` of them agree (a
    cluster of wrong matches is removed when it is smaller than that share of its
    neighbourhood). Unlike NDC the share counts only valid neighbours, so cells at the edge of
    the valid data (nodata, image edges) keep their chance. Cells without valid neighbours are
    kept. Returns a bool array. Compiled when numba is installed (:mod:`.outlier_kernel`, the
    same results).
    """
    compiled = coherence_test_compiled(dx, dy, tolerance, spacing, reach, min_share)
    if compiled is not None:
        return compiled
    height, width = dx.shape
    pad = reach * spacing
    padded_x = np.pad(dx.astype(np.float64), pad, constant_values=np.nan)
    padded_y = np.pad(dy.astype(np.float64), pad, constant_values=np.nan)
    finite = np.isfinite(dx) & np.isfinite(dy)
    valid = np.zeros(dx.shape, np.int32)
    agree = np.zeros(dx.shape, np.int32)
    for a in range(-reach, reach + 1):
        for b in range(-reach, reach + 1):
            if a == 0 and b == 0:
                continue
            rows = slice(pad + a * spacing, pad + a * spacing + height)
            cols = slice(pad + b * spacing, pad + b * spacing + width)
            nb_x, nb_y = padded_x[rows, cols], padded_y[rows, cols]
            present = np.isfinite(nb_x) & np.isfinite(nb_y)
            valid += present
            with np.errstate(invalid="ignore"):
                agree += present & (np.abs(nb_x - dx) <= tolerance) & (np.abs(nb_y - dy) <= tolerance)
    return finite & (valid > 0) & (agree < min_share * valid)


def _finite_median(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the finite values (``counts`` per column, >= 1; NaN elsewhere).

    ``np.nanmedian`` on few values per column goes through masked arrays; a
    sort (NaN last) and two picks is many times faster.
    """
    ordered = np.sort(values, axis=0)
    columns = np.arange(values.shape[1])
    return 0.5 * (ordered[(counts - 1) // 2, columns] + ordered[counts // 2, columns])
