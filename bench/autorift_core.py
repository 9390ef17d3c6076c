"""``autorift-core``: a reimplementation of autoRIFT's per-chip core, as a benchmark peer.

This is NOT autoRIFT: autoRIFT (nasa-jpl/autoRIFT, Lei et al. 2021) needs its compiled
``autoriftcore`` extension (and usually ISCE / GDAL's Python bindings) and is not
installable on this machine. The steps below follow its source (geo_autoRIFT/autoRIFT/
autoRIFT.py and bindings/autoriftcoremodule.cpp, read in the stored copy of the
repository) on the benchmark's single grid:

Reproduced
  1. ``preprocess_filt_wal``: Wallis-type filter, (I - box mean) / box std over a
     :data:`WALLIS_WIDTH` px window (std with reflected borders on the mean-shifted
     image, mean with zero borders, both via cv2.filter2D), on both images; the zero
     mask (nodata) = pixels that are 0 in either image. Width 5 px is the optical default
     of autoRIFT's standalone driver (its class default is 21).
  2. ``uniform_data_type`` with DataType 0: each image mapped to uint8 by
     (I - (mean - 3 std)) / (6 std) * 256, rounded and clipped to 0..255 (mean and std
     over its finite values), zero-mask pixels set to 0.
  3. ``arSubPixDisp_u`` per chip: the reference chip (chip x chip, centred on the grid
     point) is matched over the secondary window of chip + 2 S - 1 px (S = search
     range, so integer offsets -S .. S-1) with cv2.matchTemplate(TM_CCORR_NORMED) on
     uint8 -- normalised cross-correlation *without* mean removal, as autoRIFT; chips
     or windows of one value give no offset; the 5 x 5 correlation values around the
     integer peak (shifted inside the surface at its edges) are oversampled by repeated
     cv2.pyrUp until the ratio reaches :data:`OVERSAMPLE` (its optical default 64),
     and the maximum of the oversampled surface is the sub-pixel offset (quantised to
     1/64 px).
  4. ``DISP_FILT.filtDisp`` of the fine search: the normalised displacement coherence
     (NDC) test -- offsets divided by S; a cell is kept when, in the FiltWidth x
     FiltWidth neighbourhood, at least FracValid x FiltWidth^2 cells (itself included)
     differ from it by less than FracSearch (0.20 x S px) in both dx and dy, iterated
     3 times -- then 2 rounds of the median / MAD test (|d - median| <= max(4 MAD,
     2 / oversample / S)). With autoRIFT's fine-search scaling for a chip larger than
     the grid spacing (ratio r = chip / step = 4 here): FiltWidth = (5 - 1) r + 1 = 17,
     FracValid = 8/25 (1 - o) + o^2 with o = 1 - 1/r (0.6425).

Not reproduced
  the nested-chip driver (ChipSizeMin..Max, results of 2x / 4x chips merged where the
  small chip fails), the sparse coarse search and the search-limit mask it derives
  for the fine search, a-priori offsets and per-cell search limits (Geogrid), the
  light interpolation that fills small holes with median-filtered values
  (InterpMask), the multi-process driver. So this peer is one fine-search pass of
  autoRIFT's core with its outlier filter, on the same chips as every other method.

Offsets are returned as dx + right, dy + down (autoRIFT's own output flips dy to + up).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

WALLIS_WIDTH = 5
OVERSAMPLE = 64
FRAC_VALID = 8 / 25
FRAC_SEARCH = 0.20
FILT_WIDTH = 5
ITERATIONS = 3
MAD_SCALAR = 4.0


def wallis(image: np.ndarray, width: int = WALLIS_WIDTH) -> np.ndarray:
    """autoRIFT's ``_wallis_filter(image, _preprocess_filt_std(image, width), width)`` (float32)."""
    import cv2
    image = np.asarray(image, np.float32)
    kernel = np.ones((width, width), np.float32)
    n = float(kernel.size)
    shifted = image - image.mean()
    conv_sum = cv2.filter2D(shifted, -1, kernel, borderType=cv2.BORDER_REFLECT)
    conv_squared = cv2.filter2D(shifted ** 2, -1, kernel, borderType=cv2.BORDER_REFLECT)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt((conv_squared - conv_sum ** 2 / n) / n)
        mean = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT) / n
        return (image - mean) / std


def to_uint8(image: np.ndarray, zero_mask: np.ndarray) -> np.ndarray:
    """autoRIFT's ``uniform_data_type`` with DataType 0 (mean +- 3 std -> 0..255)."""
    finite = np.isfinite(image)
    values = image[finite].astype(np.float64)
    std = values.std() * np.sqrt(values.size / (values.size - 1.0))
    scaled = (image - (values.mean() - 3 * std)) / (6 * std) * 256.0
    scaled = np.where(finite, scaled, 0.0)
    out = np.round(np.clip(scaled, 0, 255)).astype(np.uint8)
    out[zero_mask] = 0
    return out


def preprocess(ref: np.ndarray, sec: np.ndarray, width: int = WALLIS_WIDTH) -> Tuple[np.ndarray, np.ndarray]:
    """``preprocess_filt_wal`` then ``uniform_data_type``: both images as uint8."""
    zero_mask = (ref == 0) | (sec == 0)
    return to_uint8(wallis(ref, width), zero_mask), to_uint8(wallis(sec, width), zero_mask)


def subpixel_offset(chip: np.ndarray, window: np.ndarray, oversample: int = OVERSAMPLE) -> Tuple[float, float]:
    """``arSubPixDisp_u``: (column, row) of the chip in the window, px, sub-pixel (NaN if flat)."""
    import cv2
    if chip.min() == chip.max() or window.min() == window.max():
        return float("nan"), float("nan")
    result = cv2.matchTemplate(window, chip, cv2.TM_CCORR_NORMED)
    _, _, _, (x, y) = cv2.minMaxLoc(result)
    rows, cols = result.shape
    x_start = min(max(x - 2, 0), cols - 5)
    y_start = min(max(y - 2, 0), rows - 5)
    small = np.ascontiguousarray(result[y_start:y_start + 5, x_start:x_start + 5])
    ratio = 1
    while ratio < oversample:
        small = cv2.pyrUp(small)
        ratio *= 2
    _, _, _, (xs, ys) = cv2.minMaxLoc(small)
    return xs / float(oversample) + x_start, ys / float(oversample) + y_start


def autorift_offsets(ref: np.ndarray, sec: np.ndarray, spec, cells: Optional[np.ndarray] = None):
    """Offsets of the reference chips in the secondary on ``spec``'s grid (see the module docstring).

    Returns (dx, dy, chips computed); NaN where no offset or rejected by the NDC filter.
    """
    from peers import interior_cells
    chip, search, step = spec.chip, spec.search, spec.step
    ref, sec = np.asarray(ref, np.float32), np.asarray(sec, np.float32)
    ref8, sec8 = preprocess(ref, sec)
    grid = spec.shape(ref.shape)
    dx, dy = np.full(grid, np.nan), np.full(grid, np.nan)
    todo = interior_cells(ref.shape, spec, cells)
    for i, j, r, c in todo:
        if ref[r + chip // 2 - 1, c + chip // 2 - 1] == 0 or sec[r + chip // 2 - 1, c + chip // 2 - 1] == 0:
            continue  # autoRIFT's driver skips grid points that are 0 in either image
        window = sec8[r - search:r + chip + search - 1, c - search:c + chip + search - 1]
        col, row = subpixel_offset(ref8[r:r + chip, c:c + chip], window)
        dx[i, j], dy[i, j] = col - search, row - search
    keep = ndc_filter(dx, dy, search, chip, step)
    dx[~keep] = np.nan
    dy[~keep] = np.nan
    return dx, dy, len(todo)


def _windows(values: np.ndarray, width: int, cells: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(len(cells), width * width) neighbourhoods of the ``cells`` (row, col indices), NaN outside the grid."""
    half = width // 2
    padded = np.pad(values, half, mode="constant", constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, (width, width))
    return view[cells[0], cells[1]].reshape(len(cells[0]), width * width)


def _count_close(values: np.ndarray, width: int, tolerance: float) -> np.ndarray:
    """colfilt option (5, tolerance): neighbours (itself included) within ``tolerance`` of the centre."""
    half = width // 2
    padded = np.pad(values, half, mode="constant", constant_values=np.nan)
    count = np.zeros(values.shape, np.int32)
    rows, cols = values.shape
    with np.errstate(invalid="ignore"):
        for a in range(width):
            for b in range(width):
                count += np.abs(padded[a:a + rows, b:b + cols] - values) < tolerance
    return count


def _nan_median_rows(rows: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (NaN for an all-NaN row)."""
    ordered = np.sort(rows, axis=1)  # NaN last
    n = np.isfinite(ordered).sum(axis=1)
    low = np.clip((n - 1) // 2, 0, rows.shape[1] - 1)
    high = np.clip(n // 2, 0, rows.shape[1] - 1)
    index = np.arange(rows.shape[0])
    median = 0.5 * (ordered[index, low] + ordered[index, high])
    median[n == 0] = np.nan
    return median


def ndc_filter(dx: np.ndarray, dy: np.ndarray, search: int, chip: int, step: int) -> np.ndarray:
    """``DISP_FILT.filtDisp`` of autoRIFT's fine search (see the module docstring): the cells kept."""
    ratio = int(chip / step) if chip > step else 1
    overlap = 1.0 - 1.0 / ratio
    frac_valid = FRAC_VALID * (1 - overlap) + overlap ** 2
    width = (FILT_WIDTH - 1) * ratio + 1
    tolerance = frac_valid * width ** 2
    x, y = dx / search, dy / search
    keep = np.isfinite(x) & np.isfinite(y)
    for _ in range(ITERATIONS):
        x[~keep] = np.nan
        y[~keep] = np.nan
        keep = (_count_close(x, width, FRAC_SEARCH) >= tolerance) & (_count_close(y, width, FRAC_SEARCH) >= tolerance)
    floor = 2.0 / OVERSAMPLE / search
    for _ in range(max(ITERATIONS - 1, 1)):
        x[~keep] = np.nan
        y[~keep] = np.nan
        passed = np.zeros_like(keep)
        cells = np.nonzero(keep)
        ok = np.ones(len(cells[0]), bool)
        for values in (x, y):
            block = _windows(values, width, cells)
            median = _nan_median_rows(block)
            mad = _nan_median_rows(np.abs(block - median[:, None]))
            ok &= np.abs(values[cells] - median) <= np.maximum(MAD_SCALAR * mad, floor)
        passed[cells] = ok
        keep = passed & keep
    return keep
