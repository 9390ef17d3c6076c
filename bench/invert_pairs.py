"""Bench of surfacemotion:invertpairs' core (issue 14, point 8): N pairs × S² pixels, time and peak RSS.

The network: ``--dates`` acquisition dates 6 days apart and the ``--pairs`` shortest pairs of 8–200 days
among them. Pixel data: ``BASES`` base disparity GeoTIFFs (DEFLATE) on disk, each an S² field of velocity
(a smooth flow in px/day plus noise) and a valid band whose cloud blobs differ per base; every pair is a
VRT of one base whose dx, dy bands are scaled by the pair's dt (so pairs are consistent displacements)
with the pair's dates in its metadata. Thus the pairs cost VRT reads of real files (page cache, not disk)
without writing N × S² × 16 bytes first.

Each case runs :func:`core.series.driver.invert_network` in a fresh subprocess; its wall time and peak
RSS (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) are printed as a table.

    python bench/invert_pairs.py --size 2000 --pairs 200      # the issue's case
    python bench/invert_pairs.py --size 500 --pairs 200       # a quicker one
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASES = 8
DAY0 = np.datetime64("2020-01-01T10:00")


def network_dates(n_dates: int, n_pairs: int):
    """(ref index, sec index) of the n_pairs shortest pairs of 8-200 days among dates 6 days apart."""
    days = 6.0 * np.arange(n_dates)
    pairs = [(i, j) for i in range(n_dates) for j in range(i + 1, n_dates) if 8 <= days[j] - days[i] <= 200]
    pairs.sort(key=lambda p: (days[p[1]] - days[p[0]], p[0]))
    if len(pairs) < n_pairs:
        raise SystemExit(f"only {len(pairs)} pairs of 8-200 days among {n_dates} dates; give more --dates")
    return days, sorted(pairs[:n_pairs])


def write_bases(folder: str, size: int, rows: int = 0) -> list:
    """BASES disparity GeoTIFFs of ``rows`` (default ``size``) × size (dx, dy in px/day, valid with cloud blobs,
    peak)."""
    sys.path.insert(0, REPO)
    from affine import Affine
    from scipy.ndimage import zoom

    from core.io import Grid, write_raster
    from core.offsets.disparity import BASE_DESCRIPTIONS

    rows = rows or size
    grid = Grid("EPSG:32719", Affine(3.0, 0, 400000.0, 0, -3.0, 4600000.0), size, rows)
    yy, xx = np.mgrid[0:rows, 0:size] / size
    flow = 0.05 + 0.1 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.05)
    paths = []
    for k in range(BASES):
        rng = np.random.default_rng(k)
        clouds = zoom(rng.random((8, 8)), size / 8, order=1)[:rows, :size] < 0.15
        dx = (flow * (1 + 0.02 * rng.standard_normal((rows, size)))).astype(np.float32)
        dy = (-0.5 * dx).astype(np.float32)
        valid = (~clouds).astype(np.float32)
        dx[clouds] = np.nan
        dy[clouds] = np.nan
        path = os.path.join(folder, f"base_{k}.tif")
        write_raster(path, grid, [dx, dy, valid, np.full_like(dx, 0.9)], BASE_DESCRIPTIONS)
        paths.append(path)
    return paths


def write_pairs(folder: str, bases: list, days, pairs) -> list:
    """One VRT per pair: base j % BASES with dx, dy × dt and the pair's dates as SM_REF_DATE/SM_SEC_DATE."""
    from osgeo import gdal

    paths = []
    for j, (a, b) in enumerate(pairs):
        dt = days[b] - days[a]
        path = os.path.join(folder, f"pair_{j:04d}_disp.vrt")
        gdal.Translate(path, bases[j % BASES], format="VRT")
        ds = gdal.Open(path, gdal.GA_Update)
        for band in (1, 2):
            ds.GetRasterBand(band).SetScale(float(dt))
        ds.SetMetadata({"SM_STEP": "1",
                        "SM_REF_DATE": str(DAY0 + np.timedelta64(int(days[a]), "D")) + "Z",
                        "SM_SEC_DATE": str(DAY0 + np.timedelta64(int(days[b]), "D")) + "Z"})
        ds = None
        _apply_scale(path)
        paths.append(path)
    return paths


def _apply_scale(path: str) -> None:
    """Turn the bands' scale into a ComplexSource ScaleRatio (GDAL readers do not apply <Scale>)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    import re

    for band in (1, 2):
        match = re.search(rf'<VRTRasterBand dataType="Float32" band="{band}"[^>]*>(.*?)</VRTRasterBand>', text, re.S)
        body = match.group(1)
        scale = re.search(r"<Scale>([^<]+)</Scale>", body).group(1)
        new = re.sub(r"<Scale>[^<]+</Scale>", "", body)
        new = new.replace("<SimpleSource>", "<ComplexSource>").replace("</SimpleSource>",
                                                                     f"<ScaleRatio>{scale}</ScaleRatio></ComplexSource>")
        text = text.replace(body, new)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


CHILD = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from core.series.network import read_network
from core.series.driver import invert_network
pairs = read_network({paths!r})
t = time.time()
out = invert_network(pairs, {out!r}, prefix="bench", step_days={step!r}, lam={lam!r}, robust={robust!r},
                     min_pairs=3)
print(json.dumps({{"seconds": time.time() - t}}))
"""


def run_case(paths, out, step, lam, robust):
    code = CHILD.format(repo=REPO, paths=paths, out=out, step=step, lam=lam, robust=robust)
    start = time.time()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, GDAL_PAM_ENABLED="NO"))
    wall = time.time() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    inner = json.loads(done.stdout.strip().splitlines()[-1])
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return wall, inner["seconds"], rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=0,
                        help="rows of the grid (default --size): the peak memory is per 256² block, so a strip of "
                             "a few block rows measures the memory of the full square")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--dates", type=int, default=40)
    parser.add_argument("--step", type=float, default=0.0, help="STEP_DAYS (0 = acquisition dates)")
    parser.add_argument("--lam", type=float, default=None, help="λ (default: GCV)")
    parser.add_argument("--no-robust", action="store_true")
    parser.add_argument("--folder", default=None)
    args = parser.parse_args()
    folder = args.folder or tempfile.mkdtemp(prefix="bench_invert_")
    days, pairs = network_dates(args.dates, args.pairs)
    t = time.time()
    bases = write_bases(folder, args.size, args.rows)
    paths = write_pairs(folder, bases, days, pairs)
    prepare = time.time() - t
    robust = not args.no_robust
    wall, inner, rss = run_case(paths, os.path.join(folder, "out"), args.step, args.lam, robust)
    print("| pairs | size | dates | steps | robust | λ | prepare (s) | invert (s) | process (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    steps = len(days) - 1 if not args.step else int(np.ceil(days[-1] / args.step))
    shape = f"{args.size}²" if not args.rows or args.rows == args.size else f"{args.size}×{args.rows}"
    print(f"| {len(paths)} | {shape} | {args.dates} | {steps} | {robust} | "
          f"{'GCV' if args.lam is None else args.lam} | {prepare:.1f} | {inner:.1f} | {wall:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
