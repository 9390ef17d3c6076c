"""Benchmark case ``real``: Sentinel-2 glacier pairs of Perito Moreno, February 2020 (no truth).

The exports in /work/shared/data/perito_moreno (GIV example data, contains modified
Copernicus Sentinel data 2020; see tests/realpairs.py for the assumed grid and the
credit) are read as luminance 0.299 R + 0.587 G + 0.114 B (float32). Pairs
(:data:`PAIRS`): 0220 -> 0222 (2 days), 0207 -> 0210 (3 days), 0210 -> 0220 (10 days),
0207 -> 0227 (20 days; broken clouds and cloud shadows in 0227).

Masks: tests/realpairs.pixel_masks (deterministic, from mask.jpg and the colours of the
four cloud-free dates; the nodata frame is the union over all eight dates), cell masks by
tests/realpairs.cell_masks, restricted to the interior cells (search window inside the
image) so every method is scored on the same cells. Nodata pixels are set to 0 in both
images (autoRIFT's convention) and passed to ours as ``ref_valid`` / ``sec_valid``.
Every method computes only the domain cells (chip entirely in the footprint).

Scores (tests/realpairs.pair_scores, glacier_agreement): stable-ground mean, std and NMAD
of dx and dy, valid share of the domain, of the glacier and of the stable cells, median
glacier |d|, and its ratio to the median of the NCC-family peers on the cells all of
them keep ("common") and on each one's own cells ("all").
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Dict, List, Optional

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import realpairs  # noqa: E402  (tests/realpairs.py)

SOURCE = realpairs.SOURCE
PAIRS = (("20200220", "20200222"), ("20200207", "20200210"), ("20200210", "20200220"), ("20200207", "20200227"))
#: Every LATTICE-th cell in rows and columns is scored on the glacier (all stable cells are).
LATTICE = 2
ALL_DATES = ("20200205", "20200207", "20200210", "20200212", "20200215", "20200220", "20200222", "20200227")


def available() -> bool:
    """Whether the full exports are on this machine (not in a fresh clone)."""
    return all(os.path.exists(os.path.join(SOURCE, f"{date}.jpg")) for date in ALL_DATES + ("mask",))


@functools.lru_cache(maxsize=None)
def _rgb(name: str) -> np.ndarray:
    from PIL import Image
    with Image.open(os.path.join(SOURCE, f"{name}.jpg")) as image:
        return np.asarray(image.convert("RGB"))


@functools.lru_cache(maxsize=None)
def masks() -> Dict[str, np.ndarray]:
    """The pixel masks of the full exports (tests/realpairs.pixel_masks)."""
    return realpairs.pixel_masks(_rgb("mask"), [_rgb(date) for date in ALL_DATES],
                                 [_rgb(date) for date in realpairs.CLEAR_DATES])


def days(first: str, second: str) -> int:
    """Days between two YYYYMMDD dates."""
    from datetime import date
    a = date(int(first[:4]), int(first[4:6]), int(first[6:]))
    b = date(int(second[:4]), int(second[4:6]), int(second[6:]))
    return (b - a).days


def build_real(spec, pairs=PAIRS, cache: Optional[str] = None) -> List[dict]:
    """The real pairs with their cell masks on ``spec``'s grid.

    ``cache``: a folder where the built arrays are kept between the bench's processes
    (an .npz per grid), None = build every time (about 3 s).
    """
    path = None
    if cache:
        path = os.path.join(cache, f"real_{spec.chip}_{spec.search}_{spec.step}.npz")
        if os.path.exists(path):
            return _from_npz(path, pairs)
    pixel = masks()
    cells = realpairs.cell_masks(pixel, spec.chip, spec.step)
    interior = spec.interior(pixel["nodata"].shape)
    cells = scored_cells({name: mask & interior for name, mask in cells.items()})
    valid = ~pixel["nodata"]
    images = {}
    for date in sorted({date for pair in pairs for date in pair}):
        image = realpairs.luminance(_rgb(date))
        image[~valid] = 0.0
        images[date] = image
    if path:
        np.savez(path, valid=valid, **{f"img_{k}": v for k, v in images.items()},
                 **{f"cell_{k}": v for k, v in cells.items()})
    return _pairs(images, valid, cells, pairs)


def scored_cells(cells: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Add ``scored`` (every stable cell and the domain cells on the :data:`LATTICE` sub-grid) and
    thin ``glacier`` to the lattice: the per-chip peers without a neighbourhood filter compute
    only the scored cells (4 x fewer chips), every method is scored on them."""
    rows, cols = np.indices(cells["domain"].shape)
    lattice = (rows % LATTICE == 0) & (cols % LATTICE == 0)
    out = dict(cells)
    out["scored"] = cells["domain"] & (lattice | cells["stable"])
    out["glacier"] = cells["glacier"] & lattice
    return out


def _from_npz(path: str, pairs) -> List[dict]:
    with np.load(path) as data:
        images = {key[4:]: data[key] for key in data.files if key.startswith("img_")}
        cells = {key[5:]: data[key] for key in data.files if key.startswith("cell_")}
        valid = data["valid"]
    return _pairs(images, valid, cells, pairs)


def _pairs(images, valid, cells, pairs) -> List[dict]:
    return [dict(name=f"{a[4:]}->{b[4:]} ({days(a, b)} d)", ref=images[a], sec=images[b], ref_valid=valid,
                 sec_valid=valid, cells=cells) for a, b in pairs]
