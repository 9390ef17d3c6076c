"""Real Sentinel-2 glacier pairs (Perito Moreno, February 2020): masks, crops and scores.

Shared by the regression test (tests/test_real_pairs.py), the benchmark's "real" case
(bench/real_case.py) and the crop maker (tools/make_real_pairs.py).

Data: the GIV example exports (Van Wyk de Vries & Wickert 2021, repository
MaxVWDV/glacier-image-velocimetry, folder Perito_Moreno; contains modified Copernicus
Sentinel data 2020). They have no georeference: the assumed grid is 10 m pixels,
EPSG:32718, upper-left corner (500000, 4400000), north-up (:data:`CRS`,
:func:`assumed_transform`). Only pixel offsets are meaningful.

Pixel masks (all deterministic, from ``mask.jpg`` and the image colours):

* ``nodata``: black frame, max(R, G, B) <= :data:`NODATA_MAX` in *any* of the dates
  given, dilated by :data:`NODATA_BUFFER` px (JPEG ringing at the frame edge);
  ``footprint`` = not nodata.
* ``glacier``: white in ``mask.jpg`` (min(R, G, B) > :data:`GLACIER_WHITE`), inside the
  footprint, eroded by :data:`GLACIER_EROSION` px (mixed pixels at the ice margin).
* ``stable``: red-brown rock, R - max(G, B) > :data:`RED_MARGIN` on the per-pixel median
  of the cloud-free dates (0207, 0210, 0220, 0222), farther than
  :data:`GLACIER_BUFFER` px from the (uneroded) glacier and :data:`LAKE_BUFFER` px
  from the lake (the largest connected blue-grey area, B > R, outside the glacier),
  inside the footprint; opened by 2 px (speckle) and eroded by
  :data:`STABLE_EROSION` px.

Cell masks on a chip grid (cell (i, j) covers rows ``i*step .. i*step+chip``, columns
``j*step .. j*step+chip``, as core.offsets.correlate): ``domain`` = chip entirely in
the footprint; ``glacier`` = domain and the chip centre on the glacier mask;
``stable`` = domain, the chip centre on the stable mask, at least
:data:`STABLE_CHIP_FRACTION` of the chip stable and no (uneroded) glacier pixel in the
chip. Every score is taken on these cells only, so nodata handling does not enter.

Offsets: dx + right (columns), dy + down (rows), reference pixels.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
#: The committed crops and their masks (tools/make_real_pairs.py).
CROPS = os.path.join(HERE, "data", "perito_moreno")
#: The full exports (read only; absent in a fresh clone).
SOURCE = "/work/shared/data/perito_moreno"

CRS = "EPSG:32718"
PIXEL_M = 10.0
ORIGIN = (500000.0, 4400000.0)

NODATA_MAX = 20
NODATA_BUFFER = 2
GLACIER_WHITE = 200
GLACIER_EROSION = 10
RED_MARGIN = 15.0
GLACIER_BUFFER = 8
LAKE_BUFFER = 40
STABLE_EROSION = 3
STABLE_CHIP_FRACTION = 0.5
#: Cloud-free dates whose median colour classifies the rock.
CLEAR_DATES = ("20200207", "20200210", "20200220", "20200222")

#: 1.4826 x MAD estimates the standard deviation of a normal distribution.
NMAD_SCALE = 1.4826


def assumed_transform(col0: int = 0, row0: int = 0):
    """The assumed north-up 10 m geotransform (affine.Affine) of pixel (col0, row0)'s corner."""
    from affine import Affine
    return Affine(PIXEL_M, 0.0, ORIGIN[0] + col0 * PIXEL_M, 0.0, -PIXEL_M, ORIGIN[1] - row0 * PIXEL_M)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """0.299 R + 0.587 G + 0.114 B of an (rows, cols, 3) array, float32."""
    rgb = np.asarray(rgb, np.float32)
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)


# --------------------------------------------------------------------------- pixel masks


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return xx * xx + yy * yy <= radius * radius


def pixel_masks(mask_rgb: np.ndarray, images_rgb: Sequence[np.ndarray],
                clear_rgb: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
    """The ``nodata``, ``glacier`` and ``stable`` pixel masks (bool) described in the module docstring.

    ``mask_rgb``: mask.jpg; ``images_rgb``: every date whose frame counts for nodata;
    ``clear_rgb``: the cloud-free dates whose median colour classifies the rock.
    """
    mask_rgb = np.asarray(mask_rgb, np.float32)
    nodata = np.zeros(mask_rgb.shape[:2], bool)
    for image in images_rgb:
        nodata |= np.asarray(image).max(axis=2) <= NODATA_MAX
    nodata = ndimage.binary_dilation(nodata, _disk(NODATA_BUFFER))
    footprint = ~nodata
    white = mask_rgb.min(axis=2) > GLACIER_WHITE
    glacier = ndimage.binary_erosion(white & footprint, _disk(GLACIER_EROSION))
    median = np.median(np.stack([np.asarray(image, np.float32) for image in clear_rgb]), axis=0)
    red, green, blue = median[..., 0], median[..., 1], median[..., 2]
    rock = red - np.maximum(green, blue) > RED_MARGIN
    lake = _lake(blue > red, white, nodata)
    far_from_ice = ndimage.distance_transform_edt(~white) > GLACIER_BUFFER
    far_from_lake = ndimage.distance_transform_edt(~lake) > LAKE_BUFFER
    stable = ndimage.binary_opening(rock & far_from_ice & far_from_lake & footprint, iterations=2)
    stable = ndimage.binary_erosion(stable, _disk(STABLE_EROSION))
    return dict(nodata=nodata, glacier=glacier, stable=stable, ice=white & footprint)


def _lake(bluish: np.ndarray, glacier: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """The largest connected blue-grey area outside the glacier and the frame (opened by 2 px)."""
    candidates = ndimage.binary_opening(bluish & ~glacier & ~nodata, iterations=2)
    labels, count = ndimage.label(candidates)
    if count == 0:
        return np.zeros_like(candidates)
    sizes = ndimage.sum(candidates, labels, range(1, count + 1))
    return labels == (int(np.argmax(sizes)) + 1)


# --------------------------------------------------------------------------- cell masks


def grid_shape(shape: Tuple[int, int], chip: int, step: int) -> Tuple[int, int]:
    """(rows, cols) of the chip grid of an image of ``shape`` (as core.offsets.correlate)."""
    return (shape[0] - chip) // step + 1, (shape[1] - chip) // step + 1


def chip_fraction(mask: np.ndarray, chip: int, step: int) -> np.ndarray:
    """Fraction of each cell's chip covered by ``mask`` (grid shape, float64)."""
    summed = np.pad(np.cumsum(np.cumsum(mask.astype(np.int64), axis=0), axis=1), ((1, 0), (1, 0)))
    n_rows, n_cols = grid_shape(mask.shape, chip, step)
    r = np.arange(n_rows)[:, None] * step
    c = np.arange(n_cols)[None, :] * step
    total = summed[r + chip, c + chip] - summed[r, c + chip] - summed[r + chip, c] + summed[r, c]
    return total / float(chip * chip)


def chip_centre(mask: np.ndarray, chip: int, step: int) -> np.ndarray:
    """``mask`` at each chip's centre (the pixel right-below the centre corner), grid shape."""
    n_rows, n_cols = grid_shape(mask.shape, chip, step)
    r = np.arange(n_rows)[:, None] * step + chip // 2
    c = np.arange(n_cols)[None, :] * step + chip // 2
    return mask[r, c]


def cell_masks(masks: Mapping[str, np.ndarray], chip: int, step: int) -> Dict[str, np.ndarray]:
    """``domain``, ``glacier`` and ``stable`` cell masks (bool, grid shape) from the pixel masks."""
    domain = chip_fraction(masks["nodata"], chip, step) == 0
    glacier = domain & chip_centre(masks["glacier"], chip, step)
    stable = (domain & chip_centre(masks["stable"], chip, step)
              & (chip_fraction(masks["stable"], chip, step) >= STABLE_CHIP_FRACTION)
              & (chip_fraction(masks["ice"], chip, step) == 0))
    return dict(domain=domain, glacier=glacier, stable=stable)


# --------------------------------------------------------------------------- scores


def nmad(values: np.ndarray) -> float:
    """1.4826 x median absolute deviation from the median (NaN for no values)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return float("nan")
    return float(NMAD_SCALE * np.median(np.abs(values - np.median(values))))


def _stat(function, values: np.ndarray) -> float:
    return float(function(values)) if values.size else float("nan")


def pair_scores(dx: np.ndarray, dy: np.ndarray, cells: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """Scores of one method on one pair (px; fractions 0..1).

    ``dx``, ``dy``: offsets on the grid, NaN where the method gave none. Keys: ``valid``
    (valid share of the ``scored`` cells when given, else of the ``domain`` cells), ``glacier_valid``, ``stable_valid``,
    ``stable_{mean,std,nmad}_{dx,dy}``, ``glacier_median`` (median |d| on the valid glacier
    cells), ``n_stable``, ``n_glacier`` (cell counts, valid or not).
    """
    valid = np.isfinite(dx) & np.isfinite(dy)
    domain, stable, glacier = cells.get("scored", cells["domain"]), cells["stable"], cells["glacier"]
    out = dict(valid=float(valid[domain].mean()), glacier_valid=float(valid[glacier].mean()),
               stable_valid=float(valid[stable].mean()), n_stable=int(stable.sum()), n_glacier=int(glacier.sum()))
    for name, values in (("dx", dx), ("dy", dy)):
        kept = np.asarray(values[stable & valid], np.float64)
        out[f"stable_mean_{name}"] = _stat(np.mean, kept)
        out[f"stable_std_{name}"] = _stat(np.std, kept)
        out[f"stable_nmad_{name}"] = nmad(kept)
    speed = np.hypot(dx, dy)[glacier & valid]
    out["glacier_median"] = _stat(np.median, speed)
    return out


def glacier_agreement(offsets: Mapping[str, Tuple[np.ndarray, np.ndarray]], glacier: np.ndarray,
                      peers: Iterable[str]) -> Dict[str, Tuple[float, float]]:
    """Per method: (ratio on common cells, ratio on all its cells) of its median glacier |d| to the peers'.

    The reference is the median over ``peers`` (those present in ``offsets``) of their
    median |d|; "common" takes every method and every peer on the glacier cells that it
    and all the peers keep, "all" each on its own valid glacier cells.
    """
    peers = [name for name in peers if name in offsets]
    speeds = {name: np.hypot(dx, dy) for name, (dx, dy) in offsets.items()}
    kept = {name: glacier & np.isfinite(speed) for name, speed in speeds.items()}
    out = {}
    if not peers:
        return {name: (float("nan"), float("nan")) for name in offsets}
    peer_all = float(np.median([np.median(speeds[p][kept[p]]) if kept[p].any() else np.nan for p in peers]))
    for name in offsets:
        common = kept[name].copy()
        for peer in peers:
            common &= kept[peer]
        if common.any():
            reference = float(np.median([np.median(speeds[p][common]) for p in peers]))
            ratio_common = float(np.median(speeds[name][common])) / reference
        else:
            ratio_common = float("nan")
        mine = float(np.median(speeds[name][kept[name]])) if kept[name].any() else float("nan")
        out[name] = (ratio_common, mine / peer_all)
    return out


# --------------------------------------------------------------------------- committed crops


def crop_path(name: str) -> str:
    """Path of a committed crop file (e.g. ``"20200207.tif"``, ``"masks.tif"``)."""
    return os.path.join(CROPS, name)


def read_crop(date: str) -> np.ndarray:
    """A committed luminance crop (float32, 0 = nodata)."""
    from core.io import open_raster
    with open_raster(crop_path(f"{date}.tif")) as ds:
        return ds.read(1).astype(np.float32)


def read_crop_masks() -> Dict[str, np.ndarray]:
    """The committed pixel masks of the crops (bands nodata, ice, glacier, stable; uint8 0/1 -> bool)."""
    from core.io import open_raster
    with open_raster(crop_path("masks.tif")) as ds:
        names = [text.split(" ")[0] for text in ds.descriptions]
        return {name: ds.read(index + 1).astype(bool) for index, name in enumerate(names)}


def scores_of(result, cells: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """:func:`pair_scores` of a core.offsets CorrelationResult (invalid cells are NaN in it)."""
    dx = np.where(result.valid, result.dx, np.nan)
    dy = np.where(result.valid, result.dy, np.nan)
    return pair_scores(dx, dy, cells)


def describe(scores: Mapping[str, float], keys: Optional[Sequence[str]] = None) -> str:
    """The scores as 'key=value' text (for assertion messages)."""
    keys = keys or sorted(scores)
    return ", ".join(f"{key}={scores[key]:.4g}" for key in keys)


#: Grid of the regression test (the benchmark's real case): chip, search range, step (px).
CHIP, SEARCH, STEP = 32, 10, 8


def crop_pair(first: str, second: str) -> dict:
    """A committed crop pair: ``ref``, ``sec`` (float32, 0 = nodata), ``valid`` (bool pixels) and
    ``cells`` (:func:`cell_masks` on the test grid, limited to cells whose search window is inside)."""
    masks = read_crop_masks()
    ref, sec = read_crop(first), read_crop(second)
    cells = cell_masks(masks, CHIP, STEP)
    n_rows, n_cols = grid_shape(ref.shape, CHIP, STEP)
    rows = np.arange(n_rows) * STEP
    cols = np.arange(n_cols) * STEP
    inside = (((rows - SEARCH >= 0) & (rows + CHIP + SEARCH <= ref.shape[0]))[:, None]
              & ((cols - SEARCH >= 0) & (cols + CHIP + SEARCH <= ref.shape[1]))[None, :])
    return dict(ref=ref, sec=sec, valid=~masks["nodata"], cells={k: v & inside for k, v in cells.items()})
