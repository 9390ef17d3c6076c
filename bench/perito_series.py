"""Perito Moreno, February 2020: every pair up to 20 days correlated with the plugin (issue 14 point 6).

The eight Sentinel-2 exports of /work/shared/data/perito_moreno (GIV example data, contains modified
Copernicus Sentinel data 2020; assumed grid: 10 m, EPSG:32718, upper-left 500000 / 4400000) as
luminance GeoTIFFs (NaN on the black frame), then ``core.offsets.correlate_files`` on all 27 pairs of
at most 20 days (chip 32, search ±10, step 8), each disparity tagged with its ISO dates so the series
algorithms read them; then the network inverted (``core.series.driver.invert_network``, the engine of
``invertpairs``: 2-day steps, robust, λ by GCV) and reported per date on the cells of
tests/data/perito_moreno/perito_moreno_cells.tif: the glacier's median speed, and on stable rock the median
and NMAD of the velocity components (should be 0), plus the per-pixel residual RMS and pairs used.

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


CELLS = os.path.join(REPO, "tests", "data", "perito_moreno", "perito_moreno_cells.tif")


def cell_masks() -> dict:
    """The stable-rock and glacier cells of the correlation grid (tests/data/perito_moreno)."""
    import rasterio

    with rasterio.open(CELLS) as ds:
        return {"stable": ds.read(4) > 0, "glacier": ds.read(3) > 0, "domain": ds.read(1) > 0}


def deramp_network(pairs: list, folder: str) -> list:
    """Every pair de-ramped with a plane (polyfit order 1) fitted on the stable rock cells only: the
    exports are not co-registered, the per-date misregistration would read as motion."""
    from core.errors import UserInputError
    from core.offsets.polyfit import deramp_file

    moving = ~cell_masks()["stable"]
    out = os.path.join(folder, "deramped")
    os.makedirs(out, exist_ok=True)
    done = []
    for path in pairs:
        target = os.path.join(out, os.path.basename(path).replace("_disp.tif", "_polyfit.tif"))
        if not os.path.exists(target):
            try:
                deramp_file(path, target, order=1, moving_mask=moving)
            except UserInputError as exc:  # clouds over the rock strips: the pair cannot be de-ramped
                print(f"left out {os.path.basename(path)}: {exc}")
                continue
        done.append(target)
    return done


def invert(pairs: list, folder: str, step_days: float = 2.0, robust: bool = True) -> dict:
    """core.series.driver.invert_network of the pair network on a ``step_days`` grid."""
    from core.series.driver import invert_network
    from core.series.network import read_network

    return invert_network(read_network(pairs), os.path.join(folder, f"series_{step_days:g}d"),
                          prefix="perito", step_days=step_days, robust=robust, log=print)


def report(paths: dict) -> None:
    """Per date: glacier-centre median speed and, on stable rock, the median and NMAD of the velocity."""
    import rasterio

    cells = cell_masks()
    with rasterio.open(paths["speed"]) as speed_ds, rasterio.open(paths["velocity_east"]) as east_ds, \
            rasterio.open(paths["velocity_north"]) as north_ds, rasterio.open(paths["quality"]) as quality_ds:
        dates = speed_ds.descriptions
        quality = {name: quality_ds.read(i + 1) for i, name in enumerate(quality_ds.descriptions)}
        print("\n| date (step centre) | glacier median speed (m/day) | glacier p25-p75 (m/day) | stable median "
              "v_east, v_north (m/day) | stable NMAD v_east, v_north (m/day) |")
        print("|---|---|---|---|---|")
        for band, label in enumerate(dates, start=1):
            speed = speed_ds.read(band) / 365.25
            east, north = east_ds.read(band) / 365.25, north_ds.read(band) / 365.25
            glacier = speed[cells["glacier"] & np.isfinite(speed)]
            stable_e, stable_n = (a[cells["stable"] & np.isfinite(a)] for a in (east, north))
            print(f"| {label.split()[0]} | {np.median(glacier):.3f} | {np.percentile(glacier, 25):.3f}-"
                  f"{np.percentile(glacier, 75):.3f} | {np.median(stable_e):+.3f}, {np.median(stable_n):+.3f} | "
                  f"{realpairs.nmad(stable_e):.3f}, {realpairs.nmad(stable_n):.3f} |")
    for name, values in quality.items():
        stable = values[cells["stable"] & np.isfinite(values)]
        glacier = values[cells["glacier"] & np.isfinite(values)]
        print(f"{name}: stable median {np.median(stable):.3f}, glacier median {np.median(glacier):.3f}")


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/perito_series"
    os.makedirs(folder, exist_ok=True)
    if not real_case.available():
        raise SystemExit(f"The Perito Moreno exports are not in {real_case.SOURCE}.")
    started = time.perf_counter()
    pairs = correlate_network(folder)
    print(f"{len(pairs)} pairs of at most {DT_MAX_DAYS} days correlated into {folder} "
          f"({time.perf_counter() - started:.0f} s)")
    for label, network in (("raw disparities", pairs), ("de-ramped on stable rock (polyfit order 1)",
                                                         deramp_network(pairs, folder))):
        started = time.perf_counter()
        paths = invert(network, os.path.join(folder, label.split()[0]))
        print(f"\n### {label}: inverted in {time.perf_counter() - started:.1f} s")
        report(paths)


if __name__ == "__main__":
    main()
