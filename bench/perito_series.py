"""Perito Moreno, February 2020: every pair up to 20 days correlated with the plugin (issue 14 point 6).

The eight Sentinel-2 exports of /work/shared/data/perito_moreno (GIV example data, contains modified
Copernicus Sentinel data 2020; assumed grid: 10 m, EPSG:32718, upper-left 500000 / 4400000) as
luminance GeoTIFFs (NaN on the black frame), then ``core.offsets.correlate_files`` on all 27 pairs of
at most 20 days (chip 32, search ±10, step 8), each disparity tagged with its ISO dates so the series
algorithms read them. The pair network is what ``invertpairs`` inverts (stage 2 of this script, when the
inversion exists); the masks of tests/realpairs.py give the stable rock and glacier cells.

Usage: ``python bench/perito_series.py [folder]`` (default /tmp/perito_series; about 3 minutes).
"""
import itertools
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests"), os.path.join(REPO, "bench")]

import real_case  # noqa: E402  (bench/real_case.py: the exports and their masks)
import realpairs  # noqa: E402
from core.io import Grid, write_raster  # noqa: E402
from core.offsets.correlate import correlate_files  # noqa: E402
from core.offsets.disparity import disparity_tags  # noqa: E402

DT_MAX_DAYS = 20
CHIP, SEARCH, STEP = 32, 10, 8


def iso(date: str) -> str:
    return f"{date[:4]}-{date[4:6]}-{date[6:]}"


def write_scenes(folder: str) -> dict:
    """The eight luminance GeoTIFFs on the assumed grid; NaN on any date's frame (realpairs nodata mask)."""
    nodata = real_case.masks()["nodata"]
    scenes = {}
    for date in real_case.ALL_DATES:
        path = os.path.join(folder, f"S2_{date}.tif")
        if not os.path.exists(path):
            image = realpairs.luminance(real_case._rgb(date))
            image[nodata] = np.nan
            grid = Grid(realpairs.CRS, realpairs.assumed_transform(), image.shape[1], image.shape[0])
            write_raster(path, grid, image[None], [f"luminance {date} (0.299 R + 0.587 G + 0.114 B)"])
        scenes[date] = path
    return scenes


def pairs_up_to(dates, dt_max: int = DT_MAX_DAYS):
    return [(a, b) for a, b in itertools.combinations(sorted(dates), 2) if real_case.days(a, b) <= dt_max]


def correlate_network(folder: str) -> list:
    """The disparity map of every pair of at most DT_MAX_DAYS (kept between runs)."""
    scenes = write_scenes(folder)
    outputs = []
    for ref, sec in pairs_up_to(scenes):
        path = os.path.join(folder, f"S2_{ref}_S2_{sec}_disp.tif")
        if not os.path.exists(path):
            tags = disparity_tags(STEP, ref_id=f"S2_{ref}", sec_id=f"S2_{sec}", ref_date=iso(ref),
                                  sec_date=iso(sec), dt_days=float(real_case.days(ref, sec)))
            correlate_files(scenes[ref], scenes[sec], path, chip_size=CHIP, search_range=SEARCH, step=STEP, tags=tags)
        outputs.append(path)
    return outputs


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/perito_series"
    os.makedirs(folder, exist_ok=True)
    if not real_case.available():
        raise SystemExit(f"The Perito Moreno exports are not in {real_case.SOURCE}.")
    started = time.perf_counter()
    pairs = correlate_network(folder)
    print(f"{len(pairs)} pairs of at most {DT_MAX_DAYS} days correlated into {folder} "
          f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
