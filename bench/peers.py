"""The benchmark's peer methods: per-chip offset trackers of other libraries, on the engine's grid.

Every runner has the signature ``run(ref, sec, spec, cells=None) -> (dx, dy, chips)``:
``spec`` is the common :class:`Spec` (chip, search range, step, px); ``cells`` (bool,
grid shape) limits the cells computed (None = all); ``dx``, ``dy`` are on the grid of
core.offsets.correlate (cell (i, j) = chip ``ref[i*step:i*step+chip, j*step:j*step+chip]``),
dx + right, dy + down, reference px, NaN where the method gives no offset; ``chips`` is the
number of chips computed. The per-chip peers compute only the *interior* cells, whose
whole search window lies inside the image (:func:`interior_cells`).

* ``cv2-match``: OpenCV matchTemplate(TM_CCOEFF_NORMED) of the reference chip over the
  secondary search window + 3-point Gaussian peak fit (parabola where the values are
  not positive); peaks on the window edge are rejected.
* ``skimage-pcc``: skimage.registration.phase_cross_correlation of the chips at the same
  place (upsample 100); offsets beyond the search range are rejected.
* ``skimage-pcc-hann``: the same on mean-removed, Hann-windowed chips.
* ``cv2-farneback``: OpenCV Farneback optical flow on 8-bit rescaled images (the Planet
  tutorials' fallback: pyramid 0.5, 10 levels, window = chip, 5 iterations, poly 5 / 1.2),
  read at the chip centres.
* ``autorift-core``: see bench/autorift_core.py.
"""
from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

Offsets = Tuple[np.ndarray, np.ndarray, int]


class Spec(NamedTuple):
    """The common grid: chip size, search range (+- px) and step (px)."""

    chip: int
    search: int
    step: int

    def shape(self, image_shape: Tuple[int, int]) -> Tuple[int, int]:
        """(rows, cols) of the chip grid of an image of ``image_shape``."""
        return (image_shape[0] - self.chip) // self.step + 1, (image_shape[1] - self.chip) // self.step + 1

    def interior(self, image_shape: Tuple[int, int]) -> np.ndarray:
        """Bool grid: cells whose search window (chip +- search) lies inside the image."""
        n_rows, n_cols = self.shape(image_shape)
        rows = np.arange(n_rows) * self.step
        cols = np.arange(n_cols) * self.step
        ok_rows = (rows - self.search >= 0) & (rows + self.chip + self.search <= image_shape[0])
        ok_cols = (cols - self.search >= 0) & (cols + self.chip + self.search <= image_shape[1])
        return ok_rows[:, None] & ok_cols[None, :]

    def centres(self, image_shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """Chip-centre coordinates (pixel-corner convention) of the grid: (rows, cols), 2-D."""
        n_rows, n_cols = self.shape(image_shape)
        rows = np.arange(n_rows) * self.step + self.chip / 2.0
        cols = np.arange(n_cols) * self.step + self.chip / 2.0
        return np.meshgrid(rows, cols, indexing="ij")


def interior_cells(shape: Tuple[int, int], spec: Spec,
                   cells: Optional[np.ndarray] = None) -> List[Tuple[int, int, int, int]]:
    """(i, j, first_row, first_col) of the interior grid cells (and in ``cells`` when given)."""
    keep = spec.interior(shape)
    if cells is not None:
        keep = keep & cells
    return [(int(i), int(j), int(i) * spec.step, int(j) * spec.step) for i, j in zip(*np.nonzero(keep))]


def _empty(shape: Tuple[int, int], spec: Spec) -> Tuple[np.ndarray, np.ndarray]:
    grid = spec.shape(shape)
    return np.full(grid, np.nan), np.full(grid, np.nan)


def _gaussian_3point(left: float, centre: float, right: float) -> float:
    if left > 0 and centre > 0 and right > 0:
        left, centre, right = np.log(left), np.log(centre), np.log(right)
    curvature = left - 2 * centre + right
    return 0.5 * (left - right) / curvature if curvature < 0 else 0.0


def run_cv2_match(ref: np.ndarray, sec: np.ndarray, spec: Spec, cells: Optional[np.ndarray] = None) -> Offsets:
    import cv2
    chip, search = spec.chip, spec.search
    ref32, sec32 = ref.astype(np.float32), sec.astype(np.float32)
    dx, dy = _empty(ref.shape, spec)
    todo = interior_cells(ref.shape, spec, cells)
    for i, j, r, c in todo:
        surface = cv2.matchTemplate(sec32[r - search:r + chip + search, c - search:c + chip + search],
                                    ref32[r:r + chip, c:c + chip], cv2.TM_CCOEFF_NORMED)
        _, _, _, (u, v) = cv2.minMaxLoc(surface)
        if 0 < u < 2 * search and 0 < v < 2 * search:
            dx[i, j] = u - search + _gaussian_3point(surface[v, u - 1], surface[v, u], surface[v, u + 1])
            dy[i, j] = v - search + _gaussian_3point(surface[v - 1, u], surface[v, u], surface[v + 1, u])
    return dx, dy, len(todo)


def _skimage(ref: np.ndarray, sec: np.ndarray, spec: Spec, cells: Optional[np.ndarray], hann: bool) -> Offsets:
    from skimage.registration import phase_cross_correlation
    chip = spec.chip
    window = None
    if hann:
        from skimage.filters import window as make_window
        window = make_window("hann", (chip, chip))
    dx, dy = _empty(ref.shape, spec)
    todo = interior_cells(ref.shape, spec, cells)
    for i, j, r, c in todo:
        a = ref[r:r + chip, c:c + chip].astype(np.float64)
        b = sec[r:r + chip, c:c + chip].astype(np.float64)
        if window is not None:
            a = (a - a.mean()) * window
            b = (b - b.mean()) * window
        shift = phase_cross_correlation(a, b, upsample_factor=100)[0]
        if np.all(np.abs(shift) <= spec.search):  # shift registers sec onto ref: offset = -shift
            dy[i, j], dx[i, j] = -shift[0], -shift[1]
    return dx, dy, len(todo)


def run_skimage(ref: np.ndarray, sec: np.ndarray, spec: Spec, cells: Optional[np.ndarray] = None) -> Offsets:
    return _skimage(ref, sec, spec, cells, hann=False)


def run_skimage_hann(ref: np.ndarray, sec: np.ndarray, spec: Spec, cells: Optional[np.ndarray] = None) -> Offsets:
    return _skimage(ref, sec, spec, cells, hann=True)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip(np.round(255.0 * (image - low) / (high - low)), 0, 255).astype(np.uint8)


def run_farneback(ref: np.ndarray, sec: np.ndarray, spec: Spec, cells: Optional[np.ndarray] = None) -> Offsets:
    import cv2
    chip = spec.chip
    flow = cv2.calcOpticalFlowFarneback(_to_uint8(ref), _to_uint8(sec), None, 0.5, 10, chip, 5, 5, 1.2, 0)
    dx, dy = _empty(ref.shape, spec)
    todo = interior_cells(ref.shape, spec, cells)
    for i, j, r, c in todo:
        centre = flow[r + chip // 2 - 1:r + chip // 2 + 1, c + chip // 2 - 1:c + chip // 2 + 1]
        dx[i, j], dy[i, j] = centre[..., 0].mean(), centre[..., 1].mean()
    return dx, dy, len(todo)


def run_autorift(ref: np.ndarray, sec: np.ndarray, spec: Spec, cells: Optional[np.ndarray] = None) -> Offsets:
    from autorift_core import autorift_offsets
    return autorift_offsets(ref, sec, spec, cells)


PEERS: Dict[str, Callable[..., Offsets]] = {
    "skimage-pcc": run_skimage,
    "skimage-pcc-hann": run_skimage_hann,
    "cv2-match": run_cv2_match,
    "autorift-core": run_autorift,
    "cv2-farneback": run_farneback,
}
#: The normalised-cross-correlation family: the reference of the real pairs' glacier agreement.
NCC_PEERS = ("cv2-match", "autorift-core", "skimage-pcc-hann")
