"""The disparity GeoTIFF format shared by correlation, de-ramping and velocity.

Layout (REFERENCE §5.1), float32, NaN nodata, on the reference CRS:

=====  ==================================================================
band   content
=====  ==================================================================
1      dx: column offset in *reference pixels*, + right (a feature at
       reference (col, row) is found at (col + dx, row + dy) in the secondary)
2      dy: row offset in reference pixels, + down (south on north-up grids)
3      valid mask, 1 = valid, 0 = invalid (dx, dy are NaN where 0)
4      peak zero-normalised cross-correlation (ZNCC), -1..1
5+     further quality bands, found by their description (the rejection
       reason band holds a code, see ``REASONS``, where the others are NaN; the affine
       refinement's optional deformation bands d(dx)/dx, d(dx)/dy, d(dy)/dx, d(dy)/dy
       in px/px come last)
=====  ==================================================================

The grid may be the reference grid subsampled by ``step`` (tag
``SM_STEP``); dx and dy stay in reference pixels whatever the step, so the
reference pixel geometry is the output geotransform's linear terms / step.

A 3-band file without band descriptions is read as an Ames Stereo Pipeline
``-F.tif`` (band 3 = good-pixel mask, dx/dy set to NaN where it is 0, step 1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np
from affine import Affine

from ..errors import UserInputError
from ..io import open_raster, require_crs

DX = "dx (reference px, + right)"
DY = "dy (reference px, + down)"
VALID = "valid (1 = valid, 0 = invalid)"
PEAK = "peak ZNCC"
BASE_DESCRIPTIONS = (DX, DY, VALID, PEAK)
#: Quality bands 5+ written by core.offsets.correlate (found by description, REFERENCE §5.1).
SNR = "SNR (peak / mean |ZNCC|)"
PEAK_RATIO = "peak ratio (best / second-best ZNCC peak)"
UNCERTAINTY = "uncertainty (px, 1 sigma)"
FB_RESIDUAL = "forward-backward residual (px)"
#: Deformation bands of the affine refinement (optional, after the quality bands): the gradient of
#: the offset field inside each chip, px/px (dimensionless), x + right (columns), y + down (rows).
DDX_DX = "d(dx)/dx (px/px, x + right): extension along x > 0"
DDX_DY = "d(dx)/dy (px/px, y + down)"
DDY_DX = "d(dy)/dx (px/px, x + right)"
DDY_DY = "d(dy)/dy (px/px, y + down): extension along y > 0"
STRAIN_DESCRIPTIONS = (DDX_DX, DDX_DY, DDY_DX, DDY_DY)

#: Why a cell is invalid: the codes of the "rejection reason" band (0 = valid). A cell gets the code
#: of the first test it fails, in this order (the per-chip tests of its base chip, then the strip tests).
REASON_VALID = 0
REASON_NO_DATA = 1          # the chip, or every position of its search range, has no usable pixel
REASON_FEW_VALID = 2        # fewer valid pixels in the chip than MIN_VALID_FRACTION
REASON_LOW_TEXTURE = 3      # chip standard deviation below MIN_TEXTURE x noise, or a flat template
REASON_SEARCH_EDGE = 4      # best integer peak on the edge of the search range
REASON_LOW_PEAK_RATIO = 5   # peak ratio below MIN_PEAK_RATIO
REASON_REFINEMENT = 6       # sub-pixel refinement failed: no peak fit, diverged, singular, not converged
REASON_MEDIAN_TEST = 7      # normalised median test against the 8 neighbours
REASON_COHERENCE_TEST = 8   # displacement coherence test against the neighbourhood
REASON_FORWARD_BACKWARD = 9  # forward-backward residual above FORWARD_BACKWARD
REASON_MASKED = 10          # outside the mask polygons (not computed)
#: (code, meaning), in code order: the one list the band description and the help text are made from.
REASONS = ((REASON_VALID, "valid"), (REASON_NO_DATA, "no data"), (REASON_FEW_VALID, "too few valid pixels"),
           (REASON_LOW_TEXTURE, "low texture"), (REASON_SEARCH_EDGE, "peak on search edge"),
           (REASON_LOW_PEAK_RATIO, "low peak ratio"), (REASON_REFINEMENT, "refinement failed"),
           (REASON_MEDIAN_TEST, "median test"), (REASON_COHERENCE_TEST, "coherence test"),
           (REASON_FORWARD_BACKWARD, "forward-backward"), (REASON_MASKED, "outside mask"))
REASON = "rejection reason (" + ", ".join(f"{code} {meaning}" for code, meaning in REASONS) + ")"
#: Chip size (px) that gave a valid cell: the base chip or one of the fallback ladder's larger chips.
CHIP_SIZE = "chip size (px)"

#: Sidecar style of disparity rasters (dx view; the dy view is ``disparity_dy``).
DISPARITY_STYLE = "disparity_dx"
#: Hint of the error raised when a correlation matches no chip at all.
NO_MATCH_HINT = ("No chip was matched: check that the two images show the same ground (overlap, clouds, "
                 "snow, water), or lower MIN_TEXTURE, raise SEARCH_RANGE or use a larger CHIP_SIZE.")



class RejectionTally:
    """Counts of the rejection reasons of the cells written, to say why a correlation matched nothing."""

    def __init__(self) -> None:
        self.counts = np.zeros(max(code for code, _ in REASONS) + 1, np.int64)

    def add(self, reason: np.ndarray) -> None:
        codes = np.asarray(reason)
        codes = codes[np.isfinite(codes)].astype(np.int64) if codes.dtype.kind == "f" else codes.ravel()
        self.counts += np.bincount(codes[(codes >= 0) & (codes < self.counts.size)], minlength=self.counts.size)

    def hint(self) -> str:
        """:data:`NO_MATCH_HINT` preceded by the share of each reason (largest first)."""
        total = int(self.counts[1:].sum())
        if total == 0:
            return NO_MATCH_HINT
        shares = sorted(((int(self.counts[code]), meaning) for code, meaning in REASONS
                         if code != REASON_VALID and self.counts[code]), reverse=True)
        text = ", ".join(f"{meaning} {100.0 * n / total:.0f} %" for n, meaning in shares[:4])
        return f"Every one of the {total:,} cells was rejected: {text}. " + NO_MATCH_HINT


#: Metadata tag names written into disparity GeoTIFFs.
TAG_STEP = "SM_STEP"
TAG_REF_ID = "SM_REF_ID"
TAG_SEC_ID = "SM_SEC_ID"
TAG_REF_DATE = "SM_REF_DATE"
TAG_SEC_DATE = "SM_SEC_DATE"
TAG_DT_DAYS = "SM_DT_DAYS"


@dataclass
class DisparityInfo:
    """What a reader needs to interpret a disparity raster."""

    path: str
    width: int
    height: int
    crs: object
    transform: Affine
    step: int
    is_asp: bool
    tags: Dict[str, str] = field(default_factory=dict)
    descriptions: Tuple[str, ...] = ()

    @property
    def pixel_transform(self) -> Affine:
        """Linear part of the *reference* pixel geometry (grid terms / step)."""
        return reference_pixel_transform(self.transform, self.step)


def reference_pixel_transform(grid: Affine, step: int) -> Affine:
    """Linear part of the *reference* pixel geometry of a disparity grid subsampled by ``step``:
    the grid's linear terms / step (map units per reference pixel)."""
    s = float(step)
    return Affine(grid.a / s, grid.b / s, 0.0, grid.d / s, grid.e / s, 0.0)


def describe_disparity(path: str) -> DisparityInfo:
    """Inspect ``path`` and tell whether it is one of ours or an ASP ``-F.tif``."""
    with open_raster(path) as ds:
        require_crs(ds, "disparity raster")
        descriptions = tuple(d or "" for d in ds.descriptions)
        tags = ds.tags()
        ours = ds.count >= 3 and descriptions[0] == DX and descriptions[1] == DY
        asp = ds.count == 3 and not any(descriptions)
        if not (ours or asp):
            raise UserInputError(
                f"'{path}' is not a disparity raster: expected the output of "
                "surfacemotion:correlatepair (bands dx, dy, valid, ...) or an Ames Stereo "
                f"Pipeline -F.tif (3 bands without descriptions); it has {ds.count} band(s)"
                + (f" described {list(descriptions)}." if any(descriptions) else ".")
            )
        step = int(float(tags.get(TAG_STEP, 1))) if ours else 1
        return DisparityInfo(path, ds.width, ds.height, ds.crs, ds.transform, step,
                             not ours, tags, descriptions)


def no_valid_offset_error(path: str, min_peak: Optional[float] = None) -> UserInputError:
    """The error for a disparity raster without a usable offset (not the mask's fault)."""
    peak = f" with a peak correlation of at least {min_peak:g}" if min_peak is not None else ""
    return UserInputError(
        f"The disparity raster '{os.path.basename(path)}' has no valid offset{peak} (its valid band is 0 "
        "everywhere): there is nothing to use. Check the correlation that made it (its log says why the "
        "chips were rejected)" + ("; or lower the minimum peak correlation." if peak else "."))


def stable_ground_error(path: str, n_valid: int) -> UserInputError:
    """The error for a moving-area mask that leaves no valid cell of stable ground."""
    return UserInputError(
        f"The moving-area mask covers all {n_valid:,} valid cells of '{os.path.basename(path)}': no stable "
        "ground is left. Draw the moving area smaller (only what moves), or leave it empty.")


def read_offsets(ds, window=None, is_asp: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read (dx, dy, valid) from an open disparity dataset; dx, dy NaN where invalid."""
    dx = ds.read(1, window=window).astype(np.float64)
    dy = ds.read(2, window=window).astype(np.float64)
    mask = ds.read(3, window=window)
    valid = np.isfinite(mask) & (mask != 0) & np.isfinite(dx) & np.isfinite(dy)
    if is_asp and ds.nodata is not None and not np.isnan(ds.nodata):
        valid &= (dx != ds.nodata) & (dy != ds.nodata)
    dx[~valid] = np.nan
    dy[~valid] = np.nan
    return dx, dy, valid


def grid_transform(ref_transform: Affine, col0: float, row0: float, chip: int, step: int) -> Affine:
    """Geotransform of a chip-centre grid (REFERENCE §5.1).

    Chip (i, j) starts at reference pixel (col0 + j*step, row0 + i*step) and is
    centred at (col0 + chip/2 + j*step, row0 + chip/2 + i*step); the output
    pixel is centred there and is ``step`` reference pixels wide.
    """
    origin_col = col0 + chip / 2.0 - step / 2.0
    origin_row = row0 + chip / 2.0 - step / 2.0
    return ref_transform * Affine.translation(origin_col, origin_row) * Affine.scale(step)


def disparity_tags(step: int, ref_id: Optional[str] = None, sec_id: Optional[str] = None,
                   ref_date: Optional[str] = None, sec_date: Optional[str] = None,
                   dt_days: Optional[float] = None, **params) -> Dict[str, str]:
    """Tags to write into a disparity GeoTIFF (None values are left out)."""
    tags = {TAG_STEP: str(int(step))}
    for key, value in ((TAG_REF_ID, ref_id), (TAG_SEC_ID, sec_id), (TAG_REF_DATE, ref_date),
                       (TAG_SEC_DATE, sec_date), (TAG_DT_DAYS, dt_days)):
        if value is not None:
            tags[key] = str(value)
    tags.update({f"SM_{k.upper()}": str(v) for k, v in params.items() if v is not None})
    return tags
