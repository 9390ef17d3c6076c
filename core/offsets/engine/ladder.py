"""The fallback chip ladder: cells whose chip fails are retried with larger chips on the same centre.

autoRIFT's nested chips, on this engine's grid: where the base chip C fails a
per-chip test (low texture, peak on the search edge, low peak ratio,
refinement, forward-backward), the cell is correlated again
with a chip of C + 2m px starting m px up and left of the base chip, so it is
centred on the same point (m = (2**k - 1) C / 2 rounded down for the k-th rung:
2C, then 4C for an even C). Only the failed cells are computed (per-chip
FFT), so the cost grows with the failed cells (4x the run time on a cloudy
Sentinel-2 pair with 2 rungs, see the help text). The block is read once with the largest rung's extra margin; each rung
takes its part of it. Offsets are (dx, dy) px, dx + right, dy + down, in the
same output grid; the chip size band records the chip used, the reason band
keeps the base chip's reason where every rung fails.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

import numpy as np

from ..disparity import (REASON_FORWARD_BACKWARD, REASON_LOW_PEAK_RATIO, REASON_LOW_TEXTURE,
                         REASON_REFINEMENT, REASON_SEARCH_EDGE)
from .params import CorrelationResult, Params
from .pipeline import compute_block

#: Reasons a larger chip may overcome (not too few valid pixels: a larger chip covers more of the nodata).
RETRIED = (REASON_LOW_TEXTURE, REASON_SEARCH_EDGE, REASON_LOW_PEAK_RATIO, REASON_REFINEMENT, REASON_FORWARD_BACKWARD)


@dataclass(frozen=True)
class BlockPixels:
    """The pixels of one block as read (see ``blocks._read_block``), with the ladder's margin:
    values, validity and nodata (invalid pixels inside the image, None without masking)."""

    ref: np.ndarray
    ref_valid: np.ndarray
    ref_nodata: Optional[np.ndarray]
    sec: np.ndarray
    sec_valid: np.ndarray
    sec_nodata: Optional[np.ndarray]

    def cropped(self, margin: int) -> "BlockPixels":
        """All arrays without ``margin`` px on every side."""
        if margin == 0:
            return self

        def crop(array: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if array is None else array[margin:array.shape[0] - margin, margin:array.shape[1] - margin]

        return BlockPixels(*(crop(array) for array in (self.ref, self.ref_valid, self.ref_nodata, self.sec,
                                                         self.sec_valid, self.sec_nodata)))


def rungs(params: Params) -> List[Tuple[int, int]]:
    """(chip size, shift) px of the base chip and each rung: the rung's chip starts ``shift`` px
    up and left of the base chip's, so both are centred on the same point."""
    out = [(params.chip, 0)]
    for k in range(1, params.chip_ladder + 1):
        shift = (2 ** k - 1) * params.chip // 2
        out.append((params.chip + 2 * shift, shift))
    return out


def ladder_margin(params: Params) -> int:
    """Extra pixels read on every side of a block for the ladder's largest chip."""
    return rungs(params)[-1][1]


def compute_cells(pixels: BlockPixels, params: Params, mask: Optional[np.ndarray],
                  centres: Optional[np.ndarray] = None) -> CorrelationResult:
    """One block with the base chip, then the failed cells with each rung's chip in turn.

    ``pixels`` were read with :func:`ladder_margin` extra pixels; ``mask`` (bool, the block's
    cells) limits the cells computed; ``centres`` are the a-priori search centres (B, 2) px."""
    ladder = rungs(params)
    margin = ladder[-1][1]
    result = _compute(pixels.cropped(margin), params, mask, centres)
    for chip, shift in ladder[1:]:
        retry = np.isin(result.reason, RETRIED)
        if not retry.any():
            break
        rung = _compute(pixels.cropped(margin - shift), replace(params, chip=chip), retry, centres, sparse=True)
        won = retry & rung.valid
        for name, values in rung.arrays().items():
            if name != "reason":
                getattr(result, name)[won] = values[won]
        result.reason[won] = rung.reason[won]
    return result


def _compute(pixels: BlockPixels, params: Params, mask: Optional[np.ndarray], centres: Optional[np.ndarray],
             sparse: bool = False) -> CorrelationResult:
    return compute_block(pixels.ref, pixels.ref_valid, pixels.sec, pixels.sec_valid, params, mask, centres,
                         pixels.ref_nodata, pixels.sec_nodata, sparse)
