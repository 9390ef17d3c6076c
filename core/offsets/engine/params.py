"""Parameters and results of the correlator, their checks, and the engine's shared constants.

Units: pixels of the images being correlated. Offsets are (dx, dy), dx + right
(columns), dy + down (rows); ``step`` is the spacing of the chip grid in pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Optional, Sequence, Tuple

import numpy as np

from ...choices import Choices
from ...errors import UserInputError
from ..disparity import REASON_MASKED
from ..prefilters import check_prefilter, prefilter_margin

#: Sub-pixel methods (value, label).
SUBPIXEL_METHODS = Choices(("lk", "Lucas-Kanade refinement (accurate)"),
                           ("gaussian", "3x3 Gaussian peak fit (fast)"),
                           ("affine", "Affine Lucas-Kanade: models the deformation inside the chip"))
#: Default sub-pixel method: the affine refinement. Measured with `make bench` (bench/correlation.py,
#: chip 32, step 8): on pure translations it equals Lucas-Kanade (0.0006/0.0009 px noise-free,
#: 0.026/0.028 px at 20 dB with a brightness change, pixel-locking 0.007 px, with the default
#: pre-filter), on the ITS_LIVE-shaped 6 px warp it has 0.048/0.043 px RMSE against Lucas-Kanade's
#: 0.138/0.116 (cv2 matchTemplate 0.151/0.154) and on the smooth 2.5 px warp 0.037/0.035 against
#: 0.040/0.038.
DEFAULT_SUBPIXEL = "affine"
#: Default pre-filter: the Gaussian high-pass (sigma 3 px). On the real Sentinel-2 glacier pairs (Perito
#: Moreno) it keeps 0.93 of the glacier of the cloudy 20-day pair (none: 0.78, where clouds put the peak on
#: the search edge) and gives the lowest stable-ground noise of the filters tried (10 days: std 0.075/0.065
#: px; Wallis 0.100/0.093, none 0.083/0.076); Wallis doubles the translation error at 20 dB noise
#: (0.076 vs 0.026 px, pixel-locking 0.026 px) while the high-pass leaves it unchanged.
DEFAULT_PREFILTER = "highpass"
#: Default anti-aliasing Gaussian sigma (px) applied to both images before matching.
DEFAULT_SMOOTHING = 0.8
#: Default minimum template texture: standard deviation / image noise (see ``quality.estimate_noise``).
DEFAULT_MIN_TEXTURE = 3.0
#: Default normalised median test threshold (Westerweel & Scarano 2005).
DEFAULT_MEDIAN_TEST = 3.0
#: Default smallest fraction of valid pixels in a chip (and in its overlap with each secondary
#: footprint) for it to be correlated on its valid pixels (masked ZNCC); 1 = chips touching nodata are invalid.
DEFAULT_MIN_VALID_FRACTION = 0.7
#: Default number of fallback chip sizes (2x, 4x the chip) tried where the chip fails (0 = off). Off: on
#: a 6 px quintic warp of the Sentinel-2 crop 2 rungs raise the valid cells from 0.926 to 0.969 but the
#: RMSE dx from 0.109 to 0.185 px (large chips average the strain); on a cloudy 20-day Sentinel-2 glacier
#: pair the glacier coverage goes from 0.78 to 0.86 at about 4x the run time.
DEFAULT_CHIP_LADDER = 0
#: Default tolerance (px) of the displacement coherence test (0 = off). On the glacier pair (chip 32,
#: search 10, step 8) 2 px halve the stable-ground std (0.46/0.72 -> 0.24/0.40 px; with the Wallis
#: pre-filter 1.71/1.91 -> 0.14/0.19 px) for 1-2 % of the glacier cells; on the warp it
#: removes no cell.
DEFAULT_COHERENCE = 2.0
#: Default smallest peak ratio (best / second-best ZNCC peak; 0 = off).
DEFAULT_MIN_PEAK_RATIO = 0.0

#: Largest number of fallback chip sizes (2**MAX_CHIP_LADDER x the chip).
MAX_CHIP_LADDER = 3

#: Extra rows/columns read around a block (reference) and its search windows (secondary)
#: so the quintic-spline prefilter's boundary effect (decaying as 0.431**distance) is
#: negligible where sampled: results do not depend on the block layout.
SPLINE_MARGIN = 16
#: Order of the B-spline that models the secondary (quintic: its interpolation bias, which
#: depends on the fractional shift and causes pixel-locking, is far below the cubic's).
SPLINE_ORDER = 5
#: Blocks computed at once (numpy/scipy release the GIL), and FFT threads per block.
THREADS = max(1, min(2, os.cpu_count() or 1))
FFT_WORKERS = max(1, (os.cpu_count() or 1) // THREADS)


@dataclass
class CorrelationResult:
    """Offsets on the chip grid: float32 arrays, NaN where ``valid`` is False.

    dx: column offset in reference pixels (+ right); dy: row offset (+ down);
    peak: ZNCC at the matched position (-1..1); valid: bool.
    Quality (NaN where invalid): snr = peak / mean |ZNCC| over the search
    surface; peak_ratio = best / second-best ZNCC peak (more than 2 px away,
    capped at 100); sigma = 1-sigma uncertainty of the offset vector in px,
    sqrt(sx^2 + sy^2) with s^2 = 2 (1 - peak) / (n * curvature) per axis
    (n chip pixels, curvature of the ZNCC peak per px^2); fb_residual =
    |forward + backward offset| in px (None unless forward-backward is on).
    reason: uint8 rejection code per cell (``core.offsets.disparity.REASONS``, 0 = valid; never
    blanked); chip_size: the chip (px) that gave the cell (the base chip or a fallback ladder chip).
    """

    dx: np.ndarray
    dy: np.ndarray
    peak: np.ndarray
    valid: np.ndarray
    snr: Optional[np.ndarray] = None
    peak_ratio: Optional[np.ndarray] = None
    sigma: Optional[np.ndarray] = None
    fb_residual: Optional[np.ndarray] = None
    reason: Optional[np.ndarray] = None
    chip_size: Optional[np.ndarray] = None
    #: Deformation terms of the chip (subpixel "affine" with ``strain_bands``): the displacement
    #: gradient d(dx)/dx, d(dx)/dy, d(dy)/dx, d(dy)/dy in px/px (x + right, y + down), NaN where invalid.
    ddx_dx: Optional[np.ndarray] = None
    ddx_dy: Optional[np.ndarray] = None
    ddy_dx: Optional[np.ndarray] = None
    ddy_dy: Optional[np.ndarray] = None

    def arrays(self) -> dict:
        """The fields that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def empty(cls, shape: Tuple[int, int], forward_backward: bool, strain: bool = False,
              reason: int = REASON_MASKED) -> "CorrelationResult":
        """All cells invalid (NaN bands, rejection ``reason``), with the forward-backward and strain bands
        when asked for."""
        def nan() -> np.ndarray:
            return np.full(shape, np.nan, np.float32)

        terms = (nan(), nan(), nan(), nan()) if strain else (None,) * 4
        return cls(nan(), nan(), nan(), np.zeros(shape, bool), nan(), nan(), nan(),
                   nan() if forward_backward else None, np.full(shape, reason, np.uint8), nan(), *terms)

    def blank_invalid(self) -> None:
        """Set every float band to NaN where ``valid`` is False."""
        for name, values in self.arrays().items():
            if name not in ("valid", "reason"):
                values[~self.valid] = np.nan

    def reject(self, cells: np.ndarray, code: int) -> None:
        """Invalidate ``cells`` (bool, grid shape) that are valid, recording ``code`` as their reason."""
        cells = cells & self.valid
        self.valid &= ~cells
        if self.reason is not None:
            self.reason[cells] = code

    @staticmethod
    def stacked(parts: Sequence["CorrelationResult"]) -> "CorrelationResult":
        """Blocks of the same columns joined along the rows."""
        if len(parts) == 1:
            return parts[0]
        return CorrelationResult(**{name: np.concatenate([getattr(part, name) for part in parts], axis=0)
                                    for name in parts[0].arrays()})

    @staticmethod
    def side_by_side(parts: Sequence["CorrelationResult"]) -> "CorrelationResult":
        """Blocks of the same rows joined along the columns."""
        if len(parts) == 1:
            return parts[0]
        return CorrelationResult(**{name: np.concatenate([getattr(part, name) for part in parts], axis=1)
                                    for name in parts[0].arrays()})


@dataclass(frozen=True)
class Params:
    """Checked correlation parameters (px); ``noise`` is the reference noise (image units)."""

    chip: int
    search: int
    step: int
    subpixel: str
    prefilter: str = DEFAULT_PREFILTER
    prefilter_size: float = 0.0
    min_texture: float = 0.0
    median_test: float = 0.0
    forward_backward: float = 0.0
    noise: float = 0.0
    smoothing: float = 0.0
    #: Largest |a-priori search centre| (px) of a block: widens the secondary halo.
    apriori_halo: int = 0
    #: Smallest valid fraction of a chip and of its overlap with a secondary footprint (1 = no nodata).
    min_valid_fraction: float = 1.0
    #: Fallback chip sizes tried where the chip fails: 2x, then 4x, ... (0 = off).
    chip_ladder: int = 0
    #: Tolerance (px) of the displacement coherence test (0 = off).
    coherence: float = 0.0
    #: Smallest peak ratio (0 = off).
    min_peak_ratio: float = 0.0
    #: Output the deformation terms of the affine refinement (subpixel "affine").
    strain_bands: bool = False

    @property
    def filter_margin(self) -> int:
        """Pixels read around a block so smoothing and the pre-filter are exact inside it."""
        smoothing = int(np.ceil(4.0 * self.smoothing)) + 1 if self.smoothing > 0 else 0
        return prefilter_margin(self.prefilter, self.prefilter_size) + smoothing

    @property
    def window(self) -> int:
        """Side of the search window in pixels."""
        return self.chip + 2 * self.search

    @property
    def halo(self) -> int:
        """Secondary pixels read on each side of a block's reference pixels."""
        return self.search + self.apriori_halo + SPLINE_MARGIN


def check_parameters(chip_size: int, search_range: int, step: int, subpixel: str, prefilter: str = "none",
                     prefilter_size: float = 0.0, min_texture: float = 0.0, median_test: float = 0.0,
                     forward_backward: float = 0.0, smoothing: float = 0.0, min_valid_fraction: float = 1.0,
                     chip_ladder: int = 0, coherence: float = 0.0, min_peak_ratio: float = 0.0,
                     strain_bands: bool = False) -> Params:
    """The parameters as :class:`Params`, or a UserInputError saying which one is wrong and why."""
    if int(chip_size) != chip_size or chip_size < 8:
        raise UserInputError(f"Chip size must be a whole number of pixels >= 8; got {chip_size}.")
    if int(search_range) != search_range or search_range < 1:
        raise UserInputError(f"Search range must be a whole number of pixels >= 1; got {search_range}.")
    if int(step) != step or step < 1:
        raise UserInputError(f"Step must be a whole number of pixels >= 1; got {step}.")
    SUBPIXEL_METHODS.check(subpixel, "sub-pixel method")
    size = check_prefilter(prefilter, prefilter_size)
    for name, value in (("minimum texture", min_texture), ("median test threshold", median_test),
                        ("forward-backward threshold", forward_backward), ("smoothing sigma", smoothing)):
        if value is None or not np.isfinite(value) or value < 0:
            raise UserInputError(f"The {name} must be >= 0 (0 = off); got {value}.")
    for name, value in (("coherence tolerance", coherence), ("minimum peak ratio", min_peak_ratio)):
        if value is None or not np.isfinite(value) or value < 0:
            raise UserInputError(f"The {name} must be >= 0 (0 = off); got {value}.")
    if min_valid_fraction is None or not 0.0 < min_valid_fraction <= 1.0:
        raise UserInputError(f"The minimum valid fraction must be in (0, 1] (1 = chips touching nodata are "
                             f"invalid); got {min_valid_fraction}.")
    if chip_ladder is None or int(chip_ladder) != chip_ladder or not 0 <= chip_ladder <= MAX_CHIP_LADDER:
        raise UserInputError(f"The chip ladder must be a whole number from 0 (off) to {MAX_CHIP_LADDER}; "
                             f"got {chip_ladder}.")
    if strain_bands and subpixel != "affine":
        raise UserInputError("Strain bands are fitted by the affine sub-pixel refinement: choose the "
                             "sub-pixel method 'affine' or switch the strain bands off.")
    return Params(int(chip_size), int(search_range), int(step), subpixel, prefilter, size,
                  float(min_texture), float(median_test), float(forward_backward), 0.0, float(smoothing),
                  min_valid_fraction=float(min_valid_fraction), chip_ladder=int(chip_ladder),
                  coherence=float(coherence), min_peak_ratio=float(min_peak_ratio),
                  strain_bands=bool(strain_bands))


def check_pyramid_levels(levels: int) -> int:
    """The number of coarse-to-fine pyramid levels as an int (0 = off)."""
    if levels is None or int(levels) != levels or levels < 0:
        raise UserInputError(f"The number of pyramid levels must be a whole number >= 0; got {levels}.")
    return int(levels)


def grid_shape(height: int, width: int, params: Params) -> Tuple[int, int]:
    """(rows, columns) of the chip grid over a height x width image."""
    if height < params.chip or width < params.chip:
        raise UserInputError(
            f"The image area ({width} x {height} px) is smaller than one chip ({params.chip} px). "
            "Use a smaller chip size or larger images.")
    return (height - params.chip) // params.step + 1, (width - params.chip) // params.step + 1
