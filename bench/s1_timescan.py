"""Benchmark of surfacemotion:s1timescan (issue 5, point 7).

Generates once a 100-date stack of 5000×5000 float32 dB GeoTIFFs in the plugin's own
time-series format (``NN.<YYYYMMDD>.VV.tif``, DEFLATE + float predictor, 256×256 tiles,
NaN nodata, as written by surfacemotion:s1timeseries), then in ONE process:

1. reads the whole stack once, block by block, exactly as the timescan reads it
   (``StackReader.read_window_stored`` in the same tile-aligned windows, one thread) -> read time;
2. runs the timescan with the default metrics (avg, max, min, median, std, cov, p5, p95,
   pdiff, count, harmonics; outlier removal on) -> timescan time;

and prints both times, their ratio and the peak resident memory of the process (VmHWM), plus
the part of the timescan time spent verifying its outputs before they are renamed (fsync and
reading every written window back, core.io.RasterWriter) -> verify time.

Usage: /usr/bin/python3 bench/s1_timescan.py [--data DIR] [--dates 100] [--size 5000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from core.io import Grid, is_complete_raster, write_raster  # noqa: E402
from core.io import files as io_files  # noqa: E402
from core.io import write as io_write  # noqa: E402
from core.sentinel1.stack import StackReader, collect_layers  # noqa: E402
from core.sentinel1.timescan import block_windows, timescan  # noqa: E402


def date_of(index: int) -> dt.date:
    return dt.date(2019, 1, 3) + dt.timedelta(days=12 * index)


def base_field(size: int) -> np.ndarray:
    """Smooth mean backscatter in dB (−22…−4 dB) with land-cover-like patches."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return (-13 + 6 * np.sin(7 * x) * np.cos(5 * y) + 3 * np.sin(23 * x + 11 * y)).astype(np.float32)


def write_date(args) -> str:
    from rasterio.transform import from_origin

    folder, index, size, dates = args
    when = date_of(index)
    path = os.path.join(folder, f"{index + 1:03d}.{when:%Y%m%d}.VV.tif")
    if is_complete_raster(path) is None:  # written completely by an earlier run
        return path
    rng = np.random.default_rng(index)
    season = 1.5 * np.cos(2 * np.pi * (when.timetuple().tm_yday / 365.25 - 0.55))
    power = 10 ** ((base_field(size) + np.float32(season)) / 10)
    power *= rng.gamma(4.4, 1 / 4.4, (size, size)).astype(np.float32)  # speckle, ENL 4.4
    db = (10 * np.log10(power)).astype(np.float32)
    db[:, : size // 50] = np.nan  # a nodata border strip
    grid = Grid("EPSG:32633", from_origin(300000, 4700000, 20, 20), size, size)
    return write_raster(path, grid, db, [when.isoformat()])


def generate(folder: str, dates: int, size: int) -> list:
    os.makedirs(folder, exist_ok=True)
    with ProcessPoolExecutor(max_workers=2) as pool:
        return list(pool.map(write_date, [(folder, i, size, dates) for i in range(dates)]))


def peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_once(paths: list, memory_mb: float, workers: int) -> float:
    """Read every date of the stack once in the timescan's block-aligned windows (stored dB)."""
    import rasterio

    layers = collect_layers(paths)
    start = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=64), StackReader(layers, "db") as reader:
        for window in block_windows(reader.height, reader.width, reader.block_shape(), len(layers), memory_mb,
                                    workers):
            reader.read_window_stored(window)
    return time.perf_counter() - start


class VerifyTimer:
    """Seconds spent in the writer's pre-rename checks (fsync + read-back), while active."""

    def __init__(self):
        self.seconds = 0.0
        self._originals = (io_write.RasterWriter._verify_written, io_files.fsync_file)

    def _timed(self, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed

    def __enter__(self) -> "VerifyTimer":
        io_write.RasterWriter._verify_written = self._timed(self._originals[0])
        io_files.fsync_file = self._timed(self._originals[1])
        return self

    def __exit__(self, *exc) -> None:
        io_write.RasterWriter._verify_written, io_files.fsync_file = self._originals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/tmp/surfacemotion-s1-bench", help="stack folder (kept between runs)")
    parser.add_argument("--dates", type=int, default=100)
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--memory-mb", type=float, default=512.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    stack_dir = os.path.join(args.data, f"stack_{args.dates}x{args.size}")
    os.makedirs(args.data, exist_ok=True)
    free_gb = shutil.disk_usage(os.path.dirname(os.path.abspath(stack_dir)) or "/").free / 1e9
    need_gb = args.dates * args.size ** 2 * 4 / 1e9
    if not os.path.isdir(stack_dir) and free_gb < need_gb * 1.2:
        sys.exit(f"Only {free_gb:.1f} GB free for a {need_gb:.1f} GB stack; use --dates/--size to reduce it.")
    t0 = time.perf_counter()
    paths = generate(stack_dir, args.dates, args.size)
    generation = time.perf_counter() - t0
    read_seconds = read_once(paths, args.memory_mb, args.workers)
    out = os.path.join(args.data, "timescan")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    with VerifyTimer() as verification:
        report = timescan(paths, out, unit="db", memory_mb=args.memory_mb, workers=args.workers)
    timescan_seconds = time.perf_counter() - start
    result = {
        "dates": args.dates, "size": args.size,
        "stack_gb_uncompressed": round(need_gb, 2),
        "stack_gb_on_disk": round(sum(os.path.getsize(p) for p in paths) / 1e9, 2),
        "generation_s": round(generation, 1),
        "read_once_s": round(read_seconds, 1),
        "timescan_s": round(timescan_seconds, 1),
        "verify_s": round(verification.seconds, 1),
        "verify_share": round(verification.seconds / timescan_seconds, 3),
        "ratio": round(timescan_seconds / read_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 0),
        "metrics": report["metrics"],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))
    ok = result["ratio"] <= 3.0 and result["peak_rss_mb"] <= 1024
    print("PASS" if ok else "FAIL", "(limits: ratio <= 3, peak RSS <= 1024 MB)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
