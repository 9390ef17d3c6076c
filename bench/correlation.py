"""Benchmark of the offset-tracking engine (core.offsets.correlate) against its peers (issues 3 and 10).

One run, on real texture and real image pairs. Methods:

* ``ours``: core.offsets.correlate.correlate_arrays with its defaults (no option
  passed): the issue-10 targets are checked on it;
* ``ours-lk``, ``ours-gauss``: the same with ``subpixel`` = "lk" (Lucas-Kanade) /
  "gaussian" (3x3 Gaussian fit); ``ours-wallis``: ``prefilter`` = "wallis";
  more variants from the command line (``--ours``, below);
* the peers of bench/peers.py: ``skimage-pcc``, ``skimage-pcc-hann`` (phase
  correlation per chip, plain / Hann-windowed and mean-removed), ``cv2-match``
  (OpenCV matchTemplate TM_CCOEFF_NORMED per chip + 3-point Gaussian fit),
  ``autorift-core`` (a reimplementation of autoRIFT's per-chip core: Wallis filter,
  uint8, TM_CCORR_NORMED, oversampled peak, NDC filter; bench/autorift_core.py says
  exactly what is and is not reproduced -- autoRIFT itself is not installable here),
  ``cv2-farneback`` (OpenCV dense optical flow, the Planet tutorials' fallback).

Cases (every method on the same grid and scored on the same cells of each case):

* ``a``   10 sub-pixel translations of the Sentinel-2 B03 crop (land part), noise-free,
  fractional parts 0.0 .. 0.9 px; chip 32, search +-8, step 8;
* ``a+n`` the same with 20 dB SNR noise and a brightness change (x 1.3 + 250);
* ``b``   a smooth analytic warp (up to 2.5 px, gradients up to 1.1 %), 20 dB noise and
  a brightness gradient; chip 32, search +-8, step 8;
* ``warp`` the crop warped by a field shaped like the ITS_LIVE Alaska velocities
  (bench/warp_case.py: NaN-aware smoothing, largest |D| 6 px, slow / nodata ground
  exactly 0, quintic B-spline resampling), 20 dB noise, brightness gradient;
  chip 32, search +-10, step 8;
* ``real`` four Sentinel-2 pairs of Perito Moreno glacier, 2-20 days, one with clouds
  (bench/real_case.py; masks and scores in tests/realpairs.py); chip 32, search +-10,
  step 8; no truth: stable-ground statistics, glacier coverage and agreement with the
  NCC-family peers (cv2-match, autorift-core, skimage-pcc-hann).

Secondaries of a, a+n are band-limited Fourier shifts, of b and warp 5th-order spline
resampling (not the engine's interpolator). Table columns (cases a .. warp): RMSE and mean
bias of dx, dy against the truth (px), fraction valid, pixel-locking (range over the
fractional shift of the mean error, px; cases a only), chips per second and wall time
(per pair the fastest of 3 runs, 1 run for methods slower than 1 s per pair), and peak
resident memory (VmHWM of a fresh process running only that method and case, input
images included). The real case prints its own table (one row per pair and method; one
run per pair; glacier and overall scores on every second row and column of cells, all
163 stable cells; ours and autorift-core compute the whole domain because their outlier
filters use the neighbours, see bench/real_case.py). Its "lower stable-ground std than
every peer" target counts only the peers that keep at least half of the stable cells and
whose median glacier offset is within 20 % of the NCC peers' (same-place phase
correlation reports nearly 0 everywhere and would otherwise win on stable ground).

The ``engine`` column is the integer search core.offsets.correlate chose
(core.offsets.sweep.integer_engine); ``x cv2`` is the chips/s ratio to cv2-match on the
same case. The speed targets are checked on a second measurement (``paired_speed``):
cv2-match and ours timed in turns, pair by pair, in one process, every method credited
with the same interior cells. Then two engine-only measurements with the defaults: a
dense (STEP=1) map with +-16 px search of a 2048 x 2048 pair (the full map is run when a
strip predicts at most ``--dense-limit`` s, else extrapolated; the Gaussian fit is timed
too), and a 10000 x 10000 pair correlated file to file (peak RSS and time).

Usage:
  python3 bench/correlation.py [--skip-large] [--only-table]          the whole benchmark
  python3 bench/correlation.py --cases real,warp --methods ours-lk,cv2-match \\
      --ours prefilter=wallis,smoothing=0.8 --ours-name ours-wallis2 \\
      --ours subpixel=gaussian --ours-name ours-g
      only these cases and methods (plus the --ours variants), same rows and targets;
      every key=value of an --ours goes straight to correlate_arrays (numbers, true/false,
      null and text are parsed), so options the engine gains later work unchanged.
  --target-method NAME checks the issue-10 targets on another variant than ``ours``;
  --masks-out DIR writes the real pairs' masks (uint8 GeoTIFF + PNG) for inspection.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from peers import NCC_PEERS, PEERS, Spec  # noqa: E402

DATA = os.path.join(REPO, "tests", "data", "s2_b03_crop.tif")
LAND_COLUMNS = 384
MARGIN = 24
#: Grid of the issue-3 cases (a, a+n, b) and of the issue-10 cases (warp, real).
SPEC_TEXTURE = Spec(32, 8, 8)
SPEC_REAL = Spec(32, 10, 8)
SPECS = {"a": SPEC_TEXTURE, "a+n": SPEC_TEXTURE, "b": SPEC_TEXTURE, "warp": SPEC_REAL, "real": SPEC_REAL}
CHIP, SEARCH, STEP = SPEC_TEXTURE
CASES = ("a", "a+n", "b", "warp", "real")
TABLE_CASES = ("a", "a+n", "b", "warp")
#: Our variants: name -> options passed to correlate_arrays ({} = the defaults).
OURS = {"ours": {}, "ours-lk": {"subpixel": "lk"}, "ours-gauss": {"subpixel": "gaussian"},
        "ours-wallis": {"prefilter": "wallis"}}
METHODS = tuple(OURS) + tuple(PEERS)
FRACTIONS = np.arange(10) / 10.0
#: Each method runs each pair this many times and its fastest run counts (one run when slower than
#: ``ONE_RUN_ABOVE_S``), the same for every method.
REPEATS = 3
ONE_RUN_ABOVE_S = 1.0
#: The real pairs run once each (their chips/s are indicative; no target is timed on them).
REAL_REPEATS = 1
#: A peer takes part in "lower stable-ground std than every peer" when it keeps this share of the stable
#: cells and its median glacier offset is within MAX_DISAGREEMENT of the NCC peers' (a method that
#: reports ~0 everywhere, as same-place phase correlation nearly does, would win on stable ground).
MIN_STABLE_SHARE = 0.5
MAX_DISAGREEMENT = 0.2


# --------------------------------------------------------------------------- test images


def _land() -> np.ndarray:
    from core.io import open_raster
    with open_raster(DATA) as ds:
        return ds.read(1).astype(np.float64)[:, :LAND_COLUMNS]


def _fourier_shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` with its content moved by (dx, dy) px (+ right, + down), band-limited."""
    from scipy import ndimage
    pad_rows, pad_cols = image.shape[0] // 2, image.shape[1] // 2
    padded = np.pad(image, ((pad_rows, pad_rows), (pad_cols, pad_cols)), mode="symmetric")
    # scipy's shift is per axis: (rows, columns)
    shifted = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(padded), (dy, dx))).real
    return shifted[pad_rows:pad_rows + image.shape[0], pad_cols:pad_cols + image.shape[1]]


def _interior(image: np.ndarray) -> np.ndarray:
    return image[MARGIN:-MARGIN, MARGIN:-MARGIN]


def _add_noise_and_brightness(ref, sec, seed: int, gradient: bool = False):
    rng = np.random.default_rng(seed)
    noise = ref.std() / 10.0  # 20 dB SNR (amplitude)
    ref = ref + rng.normal(0.0, noise, ref.shape)
    gain = 1.3
    if gradient:
        cols = np.arange(sec.shape[1])[None, :] / sec.shape[1]
        gain = 1.15 + 0.3 * cols
    sec = gain * sec + 250.0 + rng.normal(0.0, noise * 1.3, sec.shape)
    return ref, sec


def build_case(case: str, cache: Optional[str] = None) -> List[dict]:
    """Image pairs of a case: ref, sec and the true offsets on the case's grid (real: cell masks)."""
    spec = SPECS[case]
    if case == "real":
        from real_case import build_real
        return build_real(spec, cache=cache)
    land = _land()
    if case == "warp":
        from warp_case import build_warp
        return build_warp(land, MARGIN, spec, lambda ref, sec: _add_noise_and_brightness(ref, sec, 77, True))
    pairs = []
    if case in ("a", "a+n"):
        for k, fraction in enumerate(FRACTIONS):
            dx = -3.0 + fraction
            dy = 2.0 + FRACTIONS[(3 * k) % 10]
            ref, sec = _interior(land), _interior(_fourier_shifted(land, dx, dy))
            if case == "a+n":
                ref, sec = _add_noise_and_brightness(ref, sec, seed=k)
            rows, _ = spec.centres(ref.shape)
            pairs.append(dict(ref=ref, sec=sec, dx=np.full(rows.shape, dx), dy=np.full(rows.shape, dy)))
        return pairs
    # case b: sec(x) = ref(x - D(x)); the feature at reference c is at c + d with d = D(c + d)
    from scipy import ndimage
    height, width = land.shape

    def warp(rows, cols):
        """Up to 2.5 px; largest gradient 0.011 px/px (1.1 % strain, a fast landslide)."""
        dx = 1.4 * np.sin(2 * np.pi * cols / width * 0.5) * np.cos(2 * np.pi * rows / height * 0.4) + 1.0
        dy = 1.2 * np.cos(2 * np.pi * cols / width * 0.4 + 0.4) * np.sin(2 * np.pi * rows / height * 0.5) - 0.5
        return dx, dy

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    # pixel (r, c) samples the reference at its centre minus the displacement there
    wx, wy = warp(rows + 0.5, cols + 0.5)
    sec = ndimage.map_coordinates(land, [rows - wy, cols - wx], order=5, mode="mirror")
    ref, sec = _interior(land), _interior(sec)
    ref, sec = _add_noise_and_brightness(ref, sec, seed=99, gradient=True)
    centre_rows, centre_cols = spec.centres(ref.shape)
    centre_rows, centre_cols = centre_rows + MARGIN, centre_cols + MARGIN
    d_rows, d_cols = np.zeros_like(centre_rows), np.zeros_like(centre_cols)
    for _ in range(30):
        d_cols, d_rows = warp(centre_rows + d_rows, centre_cols + d_cols)
    return [dict(ref=ref, sec=sec, dx=d_cols, dy=d_rows)]


# --------------------------------------------------------------------------- methods


def parse_options(text: str) -> Dict[str, object]:
    """'key=value,key=value' -> {key: value}; values: int, float, true/false, null (None), else text."""
    options: Dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise ValueError(f"--ours expects key=value items separated by commas; got {item!r}")
        key, value = (part.strip() for part in item.split("=", 1))
        options[key] = _parse_value(value)
    return options


def _parse_value(value: str):
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":  # "none" is a value of the choice options (prefilter=none)
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def run_ours(ref, sec, spec: Spec, options: Dict[str, object], cells=None, ref_valid=None, sec_valid=None):
    """correlate_arrays on the common grid with ``options`` as keyword arguments: (dx, dy, chips)."""
    from core.offsets.correlate import correlate_arrays
    extra = dict(options)
    if cells is not None:
        extra["cell_mask"] = cells
    if ref_valid is not None:
        extra.update(ref_valid=ref_valid, sec_valid=sec_valid)
    try:
        result = correlate_arrays(ref, sec, spec.chip, spec.search, spec.step, **extra)
    except TypeError as exc:
        raise SystemExit(f"correlate_arrays rejected the options {options}: {exc}") from exc
    dx = np.where(result.valid, result.dx, np.nan)
    dy = np.where(result.valid, result.dy, np.nan)
    return dx, dy, int(result.dx.size if cells is None else np.count_nonzero(cells))


def runner(method: str, variants: Dict[str, Dict[str, object]]):
    """A callable (ref, sec, spec, cells=None, ref_valid=None, sec_valid=None) -> (dx, dy, chips)."""
    if method in variants:
        options = variants[method]
        return lambda ref, sec, spec, cells=None, ref_valid=None, sec_valid=None: run_ours(
            ref, sec, spec, options, cells, ref_valid, sec_valid)
    if method in PEERS:
        peer = PEERS[method]
        return lambda ref, sec, spec, cells=None, ref_valid=None, sec_valid=None: peer(ref, sec, spec, cells)
    raise SystemExit(f"Unknown method {method!r}; choose from {sorted(set(variants) | set(PEERS))} "
                     f"or define it with --ours ... --ours-name {method}.")


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM), MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


#: Peers whose outlier filter needs their neighbours (or that are dense anyway): the whole real domain.
NEIGHBOURHOOD_PEERS = ("autorift-core", "cv2-farneback")


def _timed(run, pair: dict, spec: Spec, repeats: int, whole_domain: bool = True):
    """Run on one pair ``repeats`` times (once when slower than ONE_RUN_ABOVE_S); the fastest counts.

    Real pairs: the cells computed are the domain (``whole_domain``) or only the scored cells.
    """
    seconds = []
    kwargs = {}
    if "cells" in pair:
        kwargs = dict(cells=pair["cells"]["domain" if whole_domain else "scored"], ref_valid=pair["ref_valid"],
                      sec_valid=pair["sec_valid"])
    for _ in range(repeats):
        start = time.perf_counter()
        dx, dy, chips = run(pair["ref"], pair["sec"], spec, **kwargs)
        seconds.append(time.perf_counter() - start)
        if seconds[0] > ONE_RUN_ABOVE_S:
            break
    return dx, dy, chips, min(seconds)


def _warm_up_pair(pair: dict) -> Tuple[np.ndarray, np.ndarray]:
    """A 160 x 160 piece of a pair's images from its centre (the real images have nodata corners)."""
    rows, cols = pair["ref"].shape
    window = (slice(rows // 2 - 80, rows // 2 + 80), slice(cols // 2 - 80, cols // 2 + 80))
    return pair["ref"][window], pair["sec"][window]


def run_job(method: str, case: str, variants: Dict[str, Dict[str, object]], cache: Optional[str] = None,
            repeats: int = REPEATS) -> dict:
    """Run one method on one case in this (fresh) process: the table row, or the real pairs' offsets."""
    spec = SPECS[case]
    pairs = build_case(case, cache)
    run = runner(method, variants)
    run(*_warm_up_pair(pairs[0]), spec)  # warm-up (imports, FFT plans)
    engine = "-"
    if method in variants:
        from core.offsets.sweep import integer_engine
        engine = integer_engine(spec.chip, spec.search, spec.step)
    if case == "real":
        out = []
        repeats = min(repeats, REAL_REPEATS)
        for pair in pairs:
            dx, dy, chips, seconds = _timed(run, pair, spec, repeats,
                                            method in variants or method in NEIGHBOURHOOD_PEERS)
            out.append(dict(name=pair["name"], dx=dx.astype(np.float32), dy=dy.astype(np.float32), chips=chips,
                            seconds=seconds))
        return dict(method=method, case=case, engine=engine, pairs=out, rss_mb=peak_rss_mb())
    errors_x, errors_y, fractions_x, fractions_y = [], [], [], []
    n_valid = n_cells = n_chips = 0
    elapsed = 0.0
    for pair in pairs:
        dx, dy, chips, seconds = _timed(run, pair, spec, repeats)
        elapsed += seconds
        n_chips += chips
        inner = spec.interior(pair["ref"].shape)  # cells whose search window is inside the image
        ex = (dx - pair["dx"])[inner]
        ey = (dy - pair["dy"])[inner]
        valid = np.isfinite(ex) & np.isfinite(ey)
        n_valid += valid.sum()
        n_cells += valid.size
        errors_x.append(ex[valid])
        errors_y.append(ey[valid])
        fractions_x.append(np.full(valid.sum(), pair["dx"].flat[0] % 1.0))
        fractions_y.append(np.full(valid.sum(), pair["dy"].flat[0] % 1.0))
    ex, ey = np.concatenate(errors_x), np.concatenate(errors_y)
    locking = float("nan")
    if case in ("a", "a+n") and ex.size:
        fx, fy = np.round(np.concatenate(fractions_x), 1), np.round(np.concatenate(fractions_y), 1)
        means_x = [ex[fx == f].mean() for f in np.unique(fx)]
        means_y = [ey[fy == f].mean() for f in np.unique(fy)]
        locking = max(np.ptp(means_x), np.ptp(means_y))

    def rms(values):
        return float(np.sqrt(np.mean(values ** 2))) if values.size else float("nan")

    row = dict(method=method, case=case, engine=engine, rmse_x=rms(ex), rmse_y=rms(ey),
               bias_x=float(ex.mean()) if ex.size else float("nan"),
               bias_y=float(ey.mean()) if ey.size else float("nan"),
               valid=n_valid / max(n_cells, 1), locking=locking, chips_per_s=n_chips / elapsed,
               wall_s=elapsed, rss_mb=peak_rss_mb())
    if "strain" in pairs[0]:
        row["strain"] = pairs[0]["strain"]
    return row


PAIRED = ("cv2-match", "ours", "ours-gauss", "ours-lk")


def paired_speed(case: str, variants: Dict[str, Dict[str, object]], methods: Sequence[str] = PAIRED,
                 rounds: int = 5) -> Dict[str, float]:
    """Chips/s of cv2-match and ours, timed in turns in one process (each pair: one run of every
    method per round, the fastest round counts): all see the same machine state, so their
    ratio is not moved by load that comes and goes between the table's separate processes."""
    spec = SPECS[case]
    pairs = build_case(case)
    runs = {method: runner(method, variants) for method in methods}
    for method in methods:
        runs[method](*_warm_up_pair(pairs[0]), spec)
    seconds = {method: 0.0 for method in methods}
    for pair in pairs:
        best = {method: float("inf") for method in methods}
        for _ in range(rounds):
            for method in methods:
                start = time.perf_counter()
                runs[method](pair["ref"], pair["sec"], spec)
                best[method] = min(best[method], time.perf_counter() - start)
        for method in methods:
            seconds[method] += best[method]
    # every method is credited with the same cells: the interior ones cv2-match computes
    interior = sum(int(spec.interior(pair["ref"].shape).sum()) for pair in pairs)
    return {method: interior / seconds[method] for method in methods}


def in_fresh_process(function, *args):
    """Run ``function(*args)`` in a new interpreter so its peak RSS is its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# --------------------------------------------------------------------------- real pairs


def real_rows(results: Sequence[dict], cache: Optional[str]) -> List[dict]:
    """Scores per pair and method of the real case (tests/realpairs.pair_scores + agreement)."""
    import realpairs
    pairs = build_case("real", cache)
    offsets = {result["method"]: result["pairs"] for result in results}
    rows = []
    for index, pair in enumerate(pairs):
        cells = pair["cells"]
        by_method = {method: (np.asarray(p[index]["dx"], np.float64), np.asarray(p[index]["dy"], np.float64))
                     for method, p in offsets.items()}
        agreement = realpairs.glacier_agreement(by_method, cells["glacier"], NCC_PEERS)
        for result in results:
            method = result["method"]
            dx, dy = by_method[method]
            part = result["pairs"][index]
            scores = realpairs.pair_scores(dx, dy, cells)
            scores.update(method=method, pair=pair["name"], engine=result["engine"],
                          agree_common=agreement[method][0], agree_all=agreement[method][1],
                          chips_per_s=part["chips"] / part["seconds"], wall_s=part["seconds"],
                          rss_mb=result["rss_mb"])
            rows.append(scores)
    return rows


def write_masks(folder: str) -> List[str]:
    """The real pairs' pixel masks and the real case's cell masks, for inspection (tools/make_real_pairs.py)."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    from make_real_pairs import write_full_masks
    return write_full_masks(folder, *SPEC_REAL)


# --------------------------------------------------------------------------- engine-only measurements


def _big_texture(size: int) -> np.ndarray:
    """A size x size mirror-tiled real Sentinel-2 texture (float64)."""
    from core.io import open_raster
    path = "/work/shared/data/sentinel2/s2_B03.tif"
    if os.path.exists(path):
        with open_raster(path) as ds:
            base = ds.read(1).astype(np.float64)
    else:
        base = _land()
    reps = (size // base.shape[0] + 2, size // base.shape[1] + 2)
    tiled = np.pad(base, ((0, base.shape[0] * (reps[0] - 1)), (0, base.shape[1] * (reps[1] - 1))),
                   mode="symmetric")
    return tiled[:size, :size]


#: Dense-map variants: the defaults (the issue-10 target) and the Gaussian fit (median test off, as before).
DENSE = {"defaults": {}, "gaussian": {"subpixel": "gaussian", "median_test": 0}}


def dense_timing(strip_rows: int = 64, limit_s: float = 120.0) -> dict:
    """Dense map (STEP=1, chip 32, search 16) of a 2048 x 2048 pair, the :data:`DENSE` variants.

    A strip of ``strip_rows`` output rows is timed first; when it predicts at
    most ``limit_s`` for the full map, the full map is run and its time measured.
    """
    from core.offsets.correlate import correlate_arrays
    from core.offsets.sweep import integer_engine
    size = 2048
    texture = _big_texture(size)
    pair = {}

    def timed(rows: int, options: dict) -> Tuple[int, float]:
        if rows not in pair:
            ref = texture[:rows] if rows == size else texture[1000:1000 + rows + 40]
            sec = _fourier_shifted(ref, -0.7, 0.4)
            pair[rows] = (ref, sec) if rows == size else (ref[20:20 + rows], sec[20:20 + rows])
        ref, sec = pair[rows]
        start = time.perf_counter()
        result = correlate_arrays(ref, sec, CHIP, 16, 1, **options)
        return result.dx.size, time.perf_counter() - start

    out = {}
    full_chips = (size - CHIP + 1) ** 2
    for name, options in DENSE.items():
        chips, elapsed = timed(strip_rows + CHIP - 1, options)
        numbers = dict(chips=chips, seconds=elapsed, chips_per_s=chips / elapsed,
                       full_seconds=full_chips / (chips / elapsed), measured=False,
                       engine=integer_engine(CHIP, 16, 1))
        if numbers["full_seconds"] <= limit_s:
            chips, elapsed = timed(size, options)
            numbers.update(chips=chips, seconds=elapsed, chips_per_s=chips / elapsed, full_seconds=elapsed,
                           measured=True)
        out[name] = numbers
    return out


def large_pair(folder: str, size: int = 10000, step: int = 16) -> dict:
    """Write a size x size uint16 pair (secondary moved by (+1, -2) px) and correlate it file to file."""
    from rasterio.windows import Window
    from core.io import Grid, RasterWriter
    from rasterio.transform import from_origin

    texture = _big_texture(2100)
    grid = Grid("EPSG:32618", from_origin(400000, 5000000, 3, 3), size, size)
    ref_path, sec_path = os.path.join(folder, "big_ref.tif"), os.path.join(folder, "big_sec.tif")
    period = 2 * texture.shape[0]
    mirrored = np.pad(texture, ((0, texture.shape[0]), (0, texture.shape[1])), mode="symmetric")
    rng = np.random.default_rng(1)
    options = dict(dtype="uint16", nodata=None, require_valid=None, creation=dict(compress="none"))  # as read before
    with RasterWriter(ref_path, grid, ["reference"], **options) as ref_out, \
            RasterWriter(sec_path, grid, ["secondary"], **options) as sec_out:
        for row0 in range(0, size, 512):
            rows = np.arange(row0, min(size, row0 + 512))
            cols = np.arange(size)
            window = Window(0, row0, size, len(rows))
            ref_block = mirrored[np.ix_(rows % period, cols % period)]
            sec_block = mirrored[np.ix_((rows - 1) % period, (cols + 2) % period)]  # sec(r, c) = ref(r-1, c+2)
            noise = rng.normal(0, 5, (2, len(rows), size))
            ref_out.write(np.clip(ref_block + noise[0], 0, 65535).astype(np.uint16), 1, window)
            sec_out.write(np.clip(sec_block + noise[1], 0, 65535).astype(np.uint16), 1, window)
    return in_fresh_process(_correlate_large, ref_path, sec_path, os.path.join(folder, "big_disp.tif"), step)


def _correlate_large(ref_path: str, sec_path: str, out_path: str, step: int) -> dict:
    from core.io import open_raster
    from core.offsets.correlate import correlate_files
    start = time.perf_counter()
    correlate_files(ref_path, sec_path, out_path, chip_size=CHIP, search_range=SEARCH, step=step)
    elapsed = time.perf_counter() - start
    with open_raster(out_path) as ds:
        dx, dy, valid = ds.read(1), ds.read(2), ds.read(3)
        cells = ds.width * ds.height
    return dict(seconds=elapsed, cells=cells, chips_per_s=cells / elapsed, rss_mb=peak_rss_mb(),
                valid=float((valid == 1).mean()), median_dx=float(np.nanmedian(dx)),
                median_dy=float(np.nanmedian(dy)))


# --------------------------------------------------------------------------- report


def machine() -> str:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as info:
        memory_gb = int(info.readline().split()[1]) / 1024 ** 2
    import cv2
    import scipy
    import skimage
    return (f"{model}, {os.cpu_count()} cores, {memory_gb:.1f} GB RAM, {platform.platform()}; "
            f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
            f"OpenCV {cv2.__version__}, scikit-image {skimage.__version__}; load average "
            f"{os.getloadavg()[0]:.1f}")


def _f(value: float, digits: int = 4, sign: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def print_table(rows: List[dict]) -> None:
    print("| case | method | engine | RMSE dx | RMSE dy | bias dx | bias dy | valid | pixel-locking | chips/s "
          "| x cv2 | wall s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    cv2_rate = {row["case"]: row["chips_per_s"] for row in rows if row["method"] == "cv2-match"}
    for row in rows:
        ratio = row["chips_per_s"] / cv2_rate[row["case"]] if row["case"] in cv2_rate else float("nan")
        print(f"| {row['case']} | {row['method']} | {row.get('engine', '-')} | {_f(row['rmse_x'])} | "
              f"{_f(row['rmse_y'])} | {_f(row['bias_x'], sign=True)} | {_f(row['bias_y'], sign=True)} | "
              f"{row['valid']:.3f} | {_f(row['locking'])} | {row['chips_per_s']:.0f} | {_f(ratio, 2)} | "
              f"{row['wall_s']:.2f} | {row['rss_mb']:.0f} |")
    strains = [row["strain"] for row in rows if "strain" in row]
    if strains:
        strain = strains[0]
        print(f"\nwarp field: largest |D| {strain['max_px']:.2f} px, largest strain |dD_i/dx_j| "
              f"{strain['max']:.3f} px/px (99th percentile {strain['p99']:.3f}), stable share "
              f"(D exactly 0) {strain['stable']:.2f}")


def print_real_table(rows: List[dict]) -> None:
    if not rows:
        return
    first = rows[0]
    print(f"\nReal pairs (Perito Moreno, Sentinel-2, chip {SPEC_REAL.chip}, search +-{SPEC_REAL.search}, "
          f"step {SPEC_REAL.step}): {first['n_stable']} stable and {first['n_glacier']} glacier cells per pair; "
          "stable statistics in px on the valid stable cells; agreement = median glacier |d| / median of "
          f"the NCC peers' ({', '.join(NCC_PEERS)}) on the cells all keep (common) and on each one's own (all).\n")
    print("| pair | method | valid | glacier valid | stable valid | stable mean dx | stable mean dy | std dx | "
          "std dy | NMAD dx | NMAD dy | glacier median px | agree common | agree all | chips/s | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['pair']} | {row['method']} | {row['valid']:.3f} | {row['glacier_valid']:.3f} | "
              f"{row['stable_valid']:.3f} | {_f(row['stable_mean_dx'], sign=True)} | "
              f"{_f(row['stable_mean_dy'], sign=True)} | {_f(row['stable_std_dx'])} | {_f(row['stable_std_dy'])} | "
              f"{_f(row['stable_nmad_dx'])} | {_f(row['stable_nmad_dy'])} | {_f(row['glacier_median'], 3)} | "
              f"{_f(row['agree_common'], 3)} | {_f(row['agree_all'], 3)} | {row['chips_per_s']:.0f} | "
              f"{row['wall_s']:.2f} |")


def check_targets(rows: List[dict], dense: Dict, large: Dict, paired: Dict) -> List[str]:
    """Issue 3 targets, each as 'PASS/MISS: what (numbers)' (only those whose rows were run)."""
    by = {(row["method"], row["case"]): row for row in rows}
    notes = []

    def line(ok: bool, text: str) -> None:
        notes.append(f"{'PASS' if ok else 'MISS'}: {text}")

    if ("ours-lk", "a") in by:
        ours = by[("ours-lk", "a")]
        rmse = max(ours["rmse_x"], ours["rmse_y"])
        line(rmse <= 0.02, f"RMSE noise-free translations (ours-lk) {rmse:.4f} px <= 0.02")
    if ("ours-lk", "a+n") in by:
        noisy = by[("ours-lk", "a+n")]
        rmse_n = max(noisy["rmse_x"], noisy["rmse_y"])
        line(rmse_n <= 0.05, f"RMSE 20 dB noise + brightness (ours-lk) {rmse_n:.4f} px <= 0.05")
        if ("ours-lk", "a") in by:
            locking = max(by[("ours-lk", "a")]["locking"], noisy["locking"])
            line(locking <= 0.01, f"pixel-locking (ours-lk) {locking:.4f} px <= 0.01")
    for case in ("a", "a+n", "b"):
        peers = [(max(by[(m, case)]["rmse_x"], by[(m, case)]["rmse_y"]), m) for m in PEERS if (m, case) in by]
        if ("ours-lk", case) not in by or not peers:
            continue
        mine = max(by[("ours-lk", case)]["rmse_x"], by[("ours-lk", case)]["rmse_y"])
        best_peer = min(peers)
        line(mine < best_peer[0], f"case {case}: ours-lk RMSE {mine:.4f} < best peer {best_peer[1]} "
                                   f"{best_peer[0]:.4f}")
    for method in ("ours-lk", "ours-gauss"):
        for case in ("a", "a+n"):
            if case not in paired or (method, case) not in by or ("cv2-match", case) not in by:
                continue
            mine, peer = by[(method, case)], by[("cv2-match", case)]
            rates = paired[case]
            ratio = rates[method] / rates["cv2-match"]
            better = max(mine["rmse_x"], mine["rmse_y"]) <= max(peer["rmse_x"], peer["rmse_y"])
            line(ratio >= 3 and better, f"case {case}: {method} {rates[method]:.0f} cells/s = "
                                        f"{ratio:.2f} x cv2-match ({rates['cv2-match']:.0f}) timed in turns "
                                        f"(table: {mine['chips_per_s'] / peer['chips_per_s']:.2f} x), "
                                        f"accuracy {'equal or better' if better else 'worse'}")
    for name, numbers in dense.items():
        how = ("measured on the full map" if numbers["measured"] else
               f"{numbers['chips']} chips in {numbers['seconds']:.1f} s, extrapolated")
        line(numbers["full_seconds"] <= 60,
             f"dense 2048x2048 STEP=1 +-16 px ({name}, {numbers['engine']} engine): "
             f"{numbers['full_seconds']:.0f} s for the full map (<= 60 s; {how}, "
             f"{numbers['chips_per_s']:.0f} chips/s)")
    if large:
        line(large["rss_mb"] <= 1536,
             f"10000x10000 pair, step {large.get('step')}: peak RSS {large['rss_mb']:.0f} MB (<= 1536), "
             f"{large['cells']} cells in {large['seconds']:.0f} s ({large['chips_per_s']:.0f} chips/s), "
             f"valid {large['valid']:.3f}, median dx {large['median_dx']:+.3f} (truth -2), "
             f"dy {large['median_dy']:+.3f} (truth +1)")
    return notes


def check_targets_issue10(rows: List[dict], real: List[dict], dense: Dict, large: Dict, paired: Dict,
                          ours: str = "ours") -> List[str]:
    """Issue 10 targets (point 6) on ``ours`` (the defaults), each 'PASS/MISS: ...' (those whose rows ran)."""
    by = {(row["method"], row["case"]): row for row in rows}
    notes = []

    def line(ok, text: str) -> None:
        """ok: True (PASS), False (MISS) or None (N/A: nothing to compare with)."""
        notes.append(f"{'N/A' if ok is None else 'PASS' if ok else 'MISS'}: {text}")

    if (ours, "warp") in by:
        mine = by[(ours, "warp")]
        peers = [by[(m, "warp")] for m in PEERS if (m, "warp") in by]
        line(max(mine["rmse_x"], mine["rmse_y"]) <= 0.05,
             f"warp: {ours} RMSE dx / dy {mine['rmse_x']:.4f} / {mine['rmse_y']:.4f} px <= 0.05")
        if peers:
            best_x = min(peers, key=lambda row: row["rmse_x"])
            best_y = min(peers, key=lambda row: row["rmse_y"])
            line(mine["rmse_x"] < best_x["rmse_x"] and mine["rmse_y"] < best_y["rmse_y"],
                 f"warp: {ours} RMSE lower than every peer (best dx {best_x['method']} {best_x['rmse_x']:.4f}, "
                 f"best dy {best_y['method']} {best_y['rmse_y']:.4f})")
    mine_real = [row for row in real if row["method"] == ours]
    if mine_real:
        def per_pair(key_text, ok_fn, value_fn):
            values = [(row["pair"], value_fn(row), ok_fn(row)) for row in mine_real]
            oks = [ok for _, _, ok in values]
            verdict = None if any(ok is None for ok in oks) and all(ok is not False for ok in oks) else \
                all(ok is True for ok in oks)
            line(verdict, f"real pairs: {ours} {key_text}: " + "; ".join(f"{pair} {value}" for pair, value, _ in values))

        per_pair("stable std dx / dy <= 0.08 px",
                 lambda r: max(r["stable_std_dx"], r["stable_std_dy"]) <= 0.08,
                 lambda r: f"{_f(r['stable_std_dx'], 3)} / {_f(r['stable_std_dy'], 3)}")
        per_pair("stable NMAD dx / dy <= 0.06 px",
                 lambda r: max(r["stable_nmad_dx"], r["stable_nmad_dy"]) <= 0.06,
                 lambda r: f"{_f(r['stable_nmad_dx'], 3)} / {_f(r['stable_nmad_dy'], 3)}")
        per_pair("glacier valid >= 0.90", lambda r: r["glacier_valid"] >= 0.90,
                 lambda r: f"{r['glacier_valid']:.3f}")
        per_pair("median glacier |d| within 2 % of the NCC-peer median (all cells; common cells in brackets)",
                 lambda r: abs(r["agree_all"] - 1.0) <= 0.02,
                 lambda r: f"{_f(r['agree_all'], 3)} ({_f(r['agree_common'], 3)})")
        peers_real = [row for row in real if row["method"] in PEERS and row["stable_valid"] >= MIN_STABLE_SHARE
                      and abs(row["agree_all"] - 1.0) <= MAX_DISAGREEMENT]
        if peers_real:
            def lowest(row):
                others = [p for p in peers_real if p["pair"] == row["pair"]]
                if not others:
                    return None
                return all(row["stable_std_dx"] < p["stable_std_dx"] and row["stable_std_dy"] < p["stable_std_dy"]
                           for p in others)

            def best(row):
                others = [p for p in peers_real if p["pair"] == row["pair"]]
                if not others:
                    return "no peer qualifies"
                bx = min(others, key=lambda p: p["stable_std_dx"])
                by_ = min(others, key=lambda p: p["stable_std_dy"])
                return (f"{_f(row['stable_std_dx'], 3)} / {_f(row['stable_std_dy'], 3)} vs best peer "
                        f"{bx['method']} {_f(bx['stable_std_dx'], 3)} / {by_['method']} {_f(by_['stable_std_dy'], 3)}")
            kept = ", ".join(f"{row['pair']} {row['stable_valid']:.2f}" for row in mine_real)
            per_pair(f"stable std lower than every peer keeping >= {MIN_STABLE_SHARE:.0%} of the stable cells "
                     f"with a median glacier |d| within {MAX_DISAGREEMENT:.0%} of the NCC peers' "
                     f"(share {ours} keeps: {kept})", lowest, best)
    if (ours, "a") in by:
        row = by[(ours, "a")]
        line(max(row["rmse_x"], row["rmse_y"]) <= 0.01,
             f"noise-free translations: {ours} RMSE {max(row['rmse_x'], row['rmse_y']):.4f} px <= 0.01")
    if (ours, "a+n") in by:
        row = by[(ours, "a+n")]
        line(max(row["rmse_x"], row["rmse_y"]) <= 0.03,
             f"20 dB noise + brightness: {ours} RMSE {max(row['rmse_x'], row['rmse_y']):.4f} px <= 0.03")
        if (ours, "a") in by:
            locking = max(by[(ours, "a")]["locking"], row["locking"])
            line(locking <= 0.01, f"pixel-locking: {ours} {locking:.4f} px <= 0.01")
    for case, rates in paired.items():
        if ours in rates:
            ratio = rates[ours] / rates["cv2-match"]
            line(ratio >= 3, f"speed case {case}: {ours} {rates[ours]:.0f} cells/s = {ratio:.2f} x cv2-match "
                             f"({rates['cv2-match']:.0f}) timed in turns (>= 3 x)")
    if "defaults" in dense:
        numbers = dense["defaults"]
        line(numbers["full_seconds"] <= 30, f"dense 2048x2048 STEP=1 +-16 px with the defaults: "
                                            f"{numbers['full_seconds']:.0f} s (<= 30 s; "
                                            f"{'measured' if numbers['measured'] else 'extrapolated'})")
    if large:
        line(large["rss_mb"] <= 1536, f"10000x10000 pair with the defaults: peak RSS {large['rss_mb']:.0f} MB "
                                      f"(<= 1536)")
    return notes


def check_options(variants: Dict[str, Dict[str, object]]) -> None:
    """Stop with a clear message when a variant passes an option correlate_arrays does not take."""
    import inspect
    from core.offsets.correlate import correlate_arrays
    parameters = inspect.signature(correlate_arrays).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    reserved = {"ref", "sec", "chip_size", "search_range", "step", "cell_mask", "ref_valid", "sec_valid"}
    for name, options in variants.items():
        unknown = sorted(set(options) - set(parameters))
        clash = sorted(set(options) & reserved)
        if unknown or clash:
            raise SystemExit(f"Variant {name}: correlate_arrays has no option(s) {unknown}" if unknown else
                             f"Variant {name}: {clash} are set by the benchmark (the common grid and masks).")


def _variants(args) -> Tuple[Dict[str, Dict[str, object]], List[str]]:
    """The variants of ours (built-in and --ours, which may redefine a built-in name) and the --ours names."""
    variants = dict(OURS)
    names = list(args.ours_name or [])
    if len(names) > len(args.ours or []):
        raise SystemExit("Each --ours-name needs its --ours key=value,... (give them in pairs).")
    custom = []
    for index, text in enumerate(args.ours or []):
        name = names[index] if index < len(names) else "ours:" + text
        variants[name] = parse_options(text)
        custom.append(name)
    return variants, custom


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__[__doc__.index("Usage:"):])
    parser.add_argument("--skip-large", action="store_true", help="skip the 10000 x 10000 pair")
    parser.add_argument("--only-table", action="store_true", help="only the comparison tables")
    parser.add_argument("--large-step", type=int, default=16, help="grid step of the 10000 x 10000 run")
    parser.add_argument("--dense-limit", type=float, default=120.0,
                        help="run the full dense 2048 x 2048 map when the strip predicts at most this (s)")
    parser.add_argument("--cases", help=f"comma-separated subset of {','.join(CASES)} (default all)")
    parser.add_argument("--methods", help=f"comma-separated subset of {','.join(METHODS)} and --ours names "
                                          "(default all, plus the --ours variants)")
    parser.add_argument("--ours", action="append", metavar="KEY=VALUE,...",
                        help="a variant of ours: keyword arguments of correlate_arrays (repeatable)")
    parser.add_argument("--ours-name", action="append", metavar="NAME",
                        help="the name of the --ours variant at the same position (default 'ours:<options>')")
    parser.add_argument("--target-method", default="ours", help="variant the issue-10 targets are checked on")
    parser.add_argument("--extras", action="store_true",
                        help="with --cases/--methods/--ours: also the paired speed, dense and large measurements")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per pair (the fastest counts)")
    parser.add_argument("--masks-out", metavar="DIR", help="write the real pairs' masks there and continue")
    args = parser.parse_args(argv)
    variants, custom_names = _variants(args)
    subset = bool(args.cases or args.methods or args.ours)
    cases = [case.strip() for case in args.cases.split(",")] if args.cases else list(CASES)
    unknown = [case for case in cases if case not in CASES]
    if unknown:
        raise SystemExit(f"Unknown case(s) {unknown}; choose from {', '.join(CASES)}.")
    if args.methods:
        methods = [method.strip() for method in args.methods.split(",")]
        methods += [name for name in custom_names if name not in methods]
    else:
        methods = list(METHODS) + [name for name in custom_names if name not in METHODS]
    for method in methods:
        runner(method, variants)  # fail early on an unknown name
    check_options({name: options for name, options in variants.items() if name in methods})
    import real_case
    if "real" in cases and not real_case.available():
        print(f"(case real skipped: {real_case.SOURCE} is not on this machine)")
        cases.remove("real")
    if args.masks_out:
        print("Masks written: " + ", ".join(write_masks(args.masks_out)))

    print("## Offset tracking: our engine against its peers (bench/correlation.py)")
    print(f"Machine: {machine()}")
    print(f"Grids: cases a, a+n, b chip {CHIP} px, search +-{SEARCH} px, step {STEP} px; cases warp, real chip "
          f"{SPEC_REAL.chip}, search +-{SPEC_REAL.search}, step {SPEC_REAL.step}; texture {DATA} (land part)")
    custom = {name: variants[name] for name in custom_names}
    if custom:
        print("Variants: " + "; ".join(f"{name} = {options}" for name, options in custom.items()))
    print()
    start = time.perf_counter()
    rows, real_results = [], []
    with tempfile.TemporaryDirectory(prefix="sm-bench-") as scratch:
        for case in cases:
            for method in methods:
                result = in_fresh_process(run_job, method, case, variants, scratch, args.repeats)
                (real_results if case == "real" else rows).append(result)
        real = real_rows(real_results, scratch) if real_results else []
    print_table(rows)
    print_real_table(real)
    paired, dense, large = {}, {}, {}
    if not subset or args.extras:
        speed_methods = [method for method in PAIRED if method in variants or method in PEERS]
        if args.target_method not in speed_methods:
            speed_methods.append(args.target_method)
        paired = {case: in_fresh_process(paired_speed, case, variants, speed_methods)
                  for case in ("a", "a+n") if case in cases}
        if paired:
            print("\nSpeed timed in turns (interior cells/s, fastest of 5 rounds per pair): " + "; ".join(
                f"case {case}: " + ", ".join(f"{method} {rate:.0f}" for method, rate in rates.items())
                for case, rates in paired.items()))
        if not args.only_table:
            dense = in_fresh_process(dense_timing, 64, args.dense_limit)
            if not args.skip_large:
                with tempfile.TemporaryDirectory(prefix="sm-bench-") as folder:
                    large = large_pair(folder, step=args.large_step)
                    large["step"] = args.large_step
    print("\nTargets (issue 3):")
    for note in check_targets(rows, dense, large, paired):
        print(f"- {note}")
    print(f"\nTargets (issue 10, on {args.target_method}):")
    for note in check_targets_issue10(rows, real, dense, large, paired, args.target_method):
        print(f"- {note}")
    print(f"\nBenchmark time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
