#!/usr/bin/python3
"""Build the real-pair regression data (``tests/data/perito_moreno/``) from the Perito Moreno exports.

From /work/shared/data/perito_moreno (GIV example data, contains modified Copernicus
Sentinel data 2020; tests/realpairs.py gives the credit, the assumed grid and the masks):

* ``20200207.tif``, ``20200210.tif``, ``20200227.tif``: luminance 0.299 R + 0.587 G +
  0.114 B of the window :data:`WINDOW` (rows 340:660, cols 180:596; the north-west
  rock lobe, the glacier below it and, on 0227, cloud shadows), rounded to uint8,
  0 = nodata (the black frame; every valid pixel's luminance is >= 2), on the assumed
  grid (EPSG:32718, 10 m) shifted to the window;
* ``masks.tif``: uint8 0/1 bands nodata, ice (the glacier outline), glacier (eroded),
  stable (eroded rock), computed on the full images (tests/realpairs.pixel_masks) and
  cropped;
* ``masks.png``: a preview (grey = data, blue = ice, light blue = glacier, yellow = stable);
* with ``--full DIR``: the same masks for the full 1731 x 1231 exports
  (``perito_moreno_masks.tif`` / ``.png``) and the bench's cell masks
  (``perito_moreno_cells.tif``: domain, glacier, stable on the chip-32 / step-8 grid).

Run: ``/usr/bin/python3 tools/make_real_pairs.py [--out DIR] [--full DIR]``. Deterministic.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (REPO, os.path.join(REPO, "tests"), os.path.join(REPO, "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import realpairs  # noqa: E402
from core.io import Grid, atomic_file, ensure_writable_dir, verify, write_raster  # noqa: E402

#: The crop (rows, cols) of the full exports.
WINDOW = (slice(340, 660), slice(180, 596))
DATES = ("20200207", "20200210", "20200227")
MASK_NAMES = ("nodata", "ice", "glacier", "stable")


def _grid(shape, row0: int = 0, col0: int = 0) -> Grid:
    return Grid(realpairs.CRS, realpairs.assumed_transform(col0, row0), shape[1], shape[0])


def _write_masks(path: str, masks: Dict[str, np.ndarray], grid: Grid) -> str:
    return write_raster(path, grid, [masks[name].astype(np.uint8) for name in MASK_NAMES],
                        [f"{name} (1 = yes)" for name in MASK_NAMES], dtype="uint8", nodata=None,
                        require_valid=None, tags=dict(SOURCE="tests/realpairs.pixel_masks"))


def _write_preview(path: str, masks: Dict[str, np.ndarray]) -> str:
    from PIL import Image
    preview = np.zeros(masks["nodata"].shape + (3,), np.uint8)
    preview[~masks["nodata"]] = (60, 60, 60)
    preview[masks["ice"]] = (90, 90, 160)
    preview[masks["glacier"]] = (120, 160, 255)
    preview[masks["stable"]] = (255, 200, 0)
    with atomic_file(path, verify=verify.image_readable()) as tmp:
        Image.fromarray(preview).save(tmp, format="PNG")
    return path


def write_crops(folder: str) -> List[str]:
    """The luminance crops, their masks and the preview (see the module docstring)."""
    from real_case import _rgb, masks
    ensure_writable_dir(folder)
    full = masks()
    crop = {name: full[name][WINDOW] for name in MASK_NAMES}
    grid = _grid(crop["nodata"].shape, WINDOW[0].start, WINDOW[1].start)
    paths = []
    for date in DATES:
        luminance = realpairs.luminance(_rgb(date))[WINDOW]
        values = np.where(crop["nodata"], 0, np.clip(np.round(luminance), 1, 255)).astype(np.uint8)
        paths.append(write_raster(os.path.join(folder, f"{date}.tif"), grid, [values],
                                  [f"luminance {date} (0.299 R + 0.587 G + 0.114 B, rounded)"], dtype="uint8",
                                  nodata=0, tags=dict(DATE=date, WINDOW_ROWS="340:660", WINDOW_COLS="180:596")))
    paths.append(_write_masks(os.path.join(folder, "masks.tif"), crop, grid))
    paths.append(_write_preview(os.path.join(folder, "masks.png"), crop))
    return paths


def write_full_masks(folder: str, chip: int = 32, search: int = 10, step: int = 8) -> List[str]:
    """The full exports' pixel masks (GeoTIFF + PNG) and the bench's cell masks (GeoTIFF)."""
    from affine import Affine
    from peers import Spec
    from real_case import masks, scored_cells
    ensure_writable_dir(folder)
    full = masks()
    paths = [_write_masks(os.path.join(folder, "perito_moreno_masks.tif"), full, _grid(full["nodata"].shape)),
             _write_preview(os.path.join(folder, "perito_moreno_masks.png"), full)]
    spec = Spec(chip, search, step)
    interior = spec.interior(full["nodata"].shape)
    cells = scored_cells({name: mask & interior for name, mask in realpairs.cell_masks(full, chip, step).items()})
    # cell (i, j) as a step x step square centred on its chip centre
    offset = chip / 2.0 - step / 2.0
    transform = realpairs.assumed_transform() * Affine.translation(offset, offset) * Affine.scale(step)
    shape = cells["domain"].shape
    names = ("domain", "scored", "glacier", "stable")
    paths.append(write_raster(os.path.join(folder, "perito_moreno_cells.tif"),
                              Grid(realpairs.CRS, transform, shape[1], shape[0]),
                              [cells[name].astype(np.uint8) for name in names],
                              [f"{name} cells (1 = yes)" for name in names], dtype="uint8", nodata=None,
                              require_valid=None, tags=dict(CHIP=chip, SEARCH=search, STEP=step)))
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=realpairs.CROPS, help="folder of the crops (default tests/data/perito_moreno)")
    parser.add_argument("--full", help="also write the full-size masks and the bench's cell masks there")
    args = parser.parse_args(argv)
    from real_case import available
    if not available():
        print(f"{realpairs.SOURCE} is not on this machine.", file=sys.stderr)
        return 1
    for path in write_crops(args.out) + (write_full_masks(args.full) if args.full else []):
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
