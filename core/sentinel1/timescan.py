"""Timescan metrics of a backscatter stack, block by block (REFERENCE §9.4–9.5).

Per pixel the valid dates (finite, not nodata) are, when outlier removal is on and at
least :data:`MIN_DATES_FOR_OUTLIERS` dates are valid, kept where |x_dB − median_dB| ≤ k·σ
with σ = max(1.4826·MAD, 0.1 dB), MAD = median |x_dB − median_dB| (k = 6 by default: a
clean stack keeps all its dates, gross outliers such as +10 dB spikes or drop-outs are
removed). Every metric, percentiles included, uses the kept dates. Statistics are
computed in linear power:

* avg, median, min, max, p<q> (linear interpolation between order statistics): written in dB;
* std (population, ddof = 0): linear power; std_db: std of the dB values;
* cov = std / avg (linear); pdiff = p_hi(dB) − p_lo(dB); count = kept dates;
* harmonics, in dB: y(t) = trend·(t − t̄) + c·cos 2πt + s·sin 2πt + model_mean, with t the
  acquisition time on the plugin's one time scale, :func:`core.dates.decimal_year`
  (t = 2000 + time since 2000-01-01T00:00 UTC in years of 365.25 days), and t̄ the mean t
  of the stack (model_mean is the level at t̄); amplitude = √(c² + s²) dB; phase =
  atan2(s, c) rad in (−π, π]: the seasonal term is amplitude·cos(2πt − phase), so it
  peaks where the fractional part of t equals phase/2π, i.e. phase/2π × 365.25 days after
  the start of a year of this scale (2000-01-01T00:00 + k × 365.25 days, which falls
  between 31 December 06:00 and 1 January 00:00 UTC); a negative phase puts the peak
  before that start. trend in dB per year (of 365.25 days), residuals = √(SSR/n) dB;
  NaN where fewer than :data:`MIN_DATES_FOR_HARMONICS` dates are kept.

The input block is never modified (the original OST overwrote NaNs in place).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.windows import Window

from ..choices import Choices
from ..dates import decimal_year
from ..errors import UserInputError, check_canceled
from ..io import OutputSet, aligned_windows
from ..io import output_folder as run_folder
from .common import OUTPUT_TYPES
from .stack import StackReader, collect_layers, require_plausible_unit, require_same_grid, require_stack
from .styles import metric_style
from .units import DN_MAX, clean_linear, db_to_power, gdal_scale_offset, metric_range, power_to_db, to_dn
from .vrt import VrtBand, add_band_vrt

BASIC_METRICS = ("avg", "max", "min", "median", "std", "std_db", "cov", "pdiff", "count")
HARMONIC_METRICS = ("amplitude", "phase", "trend", "residuals", "model_mean")
#: The metrics a user chooses from ("percentiles" and "harmonics" expand to several bands).
METRIC_CHOICES = Choices(*((name, name) for name in BASIC_METRICS + ("percentiles", "harmonics")))
DEFAULT_METRICS = ("avg", "max", "min", "median", "std", "cov", "percentiles", "pdiff", "count", "harmonics")
MIN_DATES_FOR_OUTLIERS = 5
MIN_DATES_FOR_HARMONICS = 6
#: Default k of the outlier rule |x_dB − median_dB| ≤ k·σ, chosen by measurement on synthetic 30-date
#: stacks without seasonal cycle, the worst case (``test_outlier_rule_rates`` in tests/test_s1_timescan.py):
#: k = 6 drops 1e-4 of the clean values of a 20-look stack (0.3 % of the pixels lose one date; none with a
#: 2 dB seasonal cycle) and 2.4e-4 at 4.4 looks (GRDH), and removes 99 % of +10 dB and −15 dB spikes at
#: 20 looks (about 40 % at 4.4 looks); k = 2 would drop 6 % of the clean values.
DEFAULT_OUTLIER_K = 6.0
#: 1.4826·MAD estimates the standard deviation of normally distributed values.
MAD_TO_SIGMA = 1.4826
#: Smallest σ of the outlier rule (dB): a stack of (nearly) equal values keeps ±k·0.1 dB.
OUTLIER_SIGMA_FLOOR_DB = 0.1
NO_VALID_DATE = ("No pixel of the stack has a valid date (every value is nodata): check the input unit "
                 "(dB or linear power) and the nodata of the stack.")
HARMONICS_EMPTY_HINT = (f"No pixel keeps the {MIN_DATES_FOR_HARMONICS} dates the harmonics need after "
                        "outlier removal: add dates, raise the outlier threshold k, untick 'Remove outliers' "
                        "or leave harmonics out.")


def percentile_name(q: float) -> str:
    return f"p{q:g}"


def expand_metrics(metrics: Sequence[str], percentiles: Sequence[float]) -> List[str]:
    """Output metric names in a fixed order (``percentiles`` and ``harmonics`` expand)."""
    unknown = [m for m in metrics if m not in METRIC_CHOICES]
    if unknown:
        raise UserInputError(f"Unknown timescan metric(s) {unknown}; choose from {list(METRIC_CHOICES)}.")
    if "pdiff" in metrics and len(percentiles) < 2:
        raise UserInputError("pdiff needs two percentiles (low and high).")
    for q in percentiles:
        if not 0.0 <= q <= 100.0:
            raise UserInputError(f"Percentile {q} is outside 0..100.")
    names: List[str] = [m for m in ("avg", "max", "min", "median", "std", "std_db", "cov") if m in metrics]
    if "percentiles" in metrics:
        names += [percentile_name(q) for q in sorted(set(percentiles))]
    names += [m for m in ("pdiff", "count") if m in metrics]
    if "harmonics" in metrics:
        names += list(HARMONIC_METRICS)
    return names


def _order_statistic(sorted_values: np.ndarray, first: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """Percentile ``q`` (linear interpolation) of ``sorted_values[first_j:first_j+count_j, j]``
    (dates sorted along axis 0, one column per pixel)."""
    pixels = sorted_values.shape[1]
    span = np.maximum(count - 1, 0)
    position = first + (q / 100.0) * span
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, first + span)
    fraction = (position - below).astype(np.float32)
    columns = np.arange(pixels, dtype=np.int64)
    flat = sorted_values.reshape(-1)
    low = flat[below * pixels + columns]
    high = flat[above * pixels + columns]
    result = low + fraction * (high - low)
    result[count == 0] = np.nan
    return result


def _range_moments(cumulative: np.ndarray, cumulative_sq: np.ndarray, first: np.ndarray, stop: np.ndarray):
    """Mean and population std of sorted columns over [first, stop) from cumulative sums."""
    columns = np.arange(cumulative.shape[1])
    n = stop - first
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cumulative[stop, columns] - cumulative[first, columns]) / n
        mean_sq = (cumulative_sq[stop, columns] - cumulative_sq[first, columns]) / n
        std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return mean, std


def _cumulative_sums(sorted_values: np.ndarray):
    """float64 cumulative sums of values and squares along the dates (NaN counts as 0);
    row k holds the sum of the first k dates. A row loop is much faster than np.cumsum here."""
    dates, pixels = sorted_values.shape
    cumulative = np.zeros((dates + 1, pixels), dtype=np.float64)
    cumulative_sq = np.zeros((dates + 1, pixels), dtype=np.float64)
    finite = np.where(sorted_values == sorted_values, sorted_values, np.float32(0))
    square = np.empty(pixels, dtype=np.float64)
    for k in range(dates):
        np.add(cumulative[k], finite[k], out=cumulative[k + 1])
        np.multiply(finite[k], finite[k], out=square, dtype=np.float64)
        np.add(cumulative_sq[k], square, out=cumulative_sq[k + 1])
    return cumulative, cumulative_sq


def _count_below(sorted_values: np.ndarray, threshold: np.ndarray, inclusive: bool) -> np.ndarray:
    """Number of values < threshold (<= with ``inclusive``) per sorted column (NaN never counts)."""
    with np.errstate(invalid="ignore"):
        if inclusive:
            return np.count_nonzero(sorted_values <= threshold.astype(np.float32), axis=0)
        return np.count_nonzero(sorted_values < threshold.astype(np.float32), axis=0)


def _kept_range(sorted_values, valid_count, remove_outliers, k):
    """[first, stop) of the kept dates in each sorted column (linear power, NaN last).

    Robust outlier rule (pixels with at least :data:`MIN_DATES_FOR_OUTLIERS` valid dates): keep
    |x_dB − median_dB| ≤ k·σ, σ = max(1.4826·MAD_dB, :data:`OUTLIER_SIGMA_FLOOR_DB`), MAD = the
    median absolute deviation of the dB values from their median. The kept set is an interval
    around the median, so it is contiguous in sorted order; a clean stack keeps every date."""
    first = np.zeros(valid_count.shape, dtype=np.int64)
    stop = valid_count.astype(np.int64)
    if not remove_outliers:
        return first, stop
    eligible = valid_count >= MIN_DATES_FOR_OUTLIERS
    db = power_to_db(sorted_values)  # monotonic: still sorted, NaN last
    median = _order_statistic(db, first, stop, 50.0)
    deviation = np.sort(np.abs(db - median), axis=0)  # NaN stays last
    del db
    mad = _order_statistic(deviation, first, stop, 50.0)
    del deviation
    sigma = np.maximum(np.float32(MAD_TO_SIGMA) * mad, np.float32(OUTLIER_SIGMA_FLOOR_DB))
    # bounds in linear power, float32 like the values they are compared with
    lower = db_to_power(median - np.float32(k) * sigma)
    upper = db_to_power(median + np.float32(k) * sigma)
    kept_first = _count_below(sorted_values, lower, inclusive=False)
    kept_stop = np.maximum(_count_below(sorted_values, upper, inclusive=True), kept_first)
    return np.where(eligible, kept_first, first), np.where(eligible, kept_stop, stop)


def _solve_4x4(normal: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve many symmetric positive definite 4×4 systems: normal (4, 4, N), rhs (4, N) ->
    (4, N), by vectorised Gaussian elimination (no pivoting needed for SPD matrices)."""
    a = normal.astype(np.float64)
    b = rhs.astype(np.float64)
    size = 4
    for col in range(size):
        pivot = a[col, col]
        for row in range(col + 1, size):
            factor = a[row, col] / pivot
            a[row, col:] -= factor * a[col, col:]
            b[row] -= factor * b[col]
    x = np.empty_like(b)
    for row in range(size - 1, -1, -1):
        total = b[row].copy()
        for col in range(row + 1, size):
            total -= a[row, col] * x[col]
        x[row] = total / a[row, row]
    return x


def _harmonics(db_values: np.ndarray, keep: np.ndarray, years: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-pixel least squares of the seasonal model on the kept dates.

    ``db_values`` and ``keep`` are (dates, pixels); returns float32 arrays (pixels,).
    """
    centred = years - years.mean()
    design = np.stack([centred, np.cos(2 * np.pi * years), np.sin(2 * np.pi * years),
                       np.ones_like(years)], axis=1)  # (dates, 4)
    dates = len(years)
    # float64 normal equations: short or gappy series make them ill-conditioned in float32
    weights = keep.astype(np.float64)
    products = (design[:, :, None] * design[:, None, :]).reshape(dates, 16).T
    normal = (products @ weights).reshape(4, 4, -1)
    y = np.where(keep, db_values, np.float32(0)).astype(np.float64)
    rhs = design.T @ y  # (4, pixels)
    n = normal[3, 3].astype(np.float64)
    usable = n >= MIN_DATES_FOR_HARMONICS
    normal = normal.astype(np.float64)
    for i in range(4):  # identity where unusable keeps the elimination finite
        normal[i, :, ~usable] = 0.0
        normal[i, i, ~usable] = 1.0
    coefficients = _solve_4x4(normal, rhs)
    # SSR = yᵀWy − cᵀ(AᵀWy) at the least-squares solution
    ssr = np.einsum("ij,ij->j", y, y, dtype=np.float64) - np.einsum("ij,ij->j", coefficients, rhs)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = {
            "amplitude": np.hypot(coefficients[1], coefficients[2]),
            "phase": np.arctan2(coefficients[2], coefficients[1]),
            "trend": coefficients[0],
            "residuals": np.sqrt(np.maximum(ssr, 0.0) / n),
            "model_mean": coefficients[3],
        }
    return {name: np.where(usable, values, np.nan).astype(np.float32) for name, values in result.items()}


def timescan_block(power: np.ndarray, years: Optional[np.ndarray], metrics: Sequence[str],
                   percentiles: Sequence[float] = (5.0, 95.0), remove_outliers: bool = True,
                   outlier_k: float = DEFAULT_OUTLIER_K,
                   db_values: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Timescan metrics of a block ``power`` (dates, ...) in linear power, NaN = no data.

    Returns ``{metric name: float32 array of shape power.shape[1:]}`` for the names of
    :func:`expand_metrics`. ``years`` are the dates as :func:`core.dates.decimal_year` (needed for
    harmonics); ``db_values`` optionally gives the block already in dB (saves a log10).
    ``power`` is not modified.
    """
    names = expand_metrics(metrics, percentiles)
    dates = power.shape[0]
    spatial = power.shape[1:]
    original = power.reshape(dates, -1)
    rows = np.sort(original.astype(np.float32, copy=False), axis=0)  # a sorted copy, NaN last
    valid_count = np.count_nonzero(rows == rows, axis=0)
    cumulative, cumulative_sq = _cumulative_sums(rows)
    first, stop = _kept_range(rows, valid_count, remove_outliers, outlier_k)
    count = stop - first
    mean, std = _range_moments(cumulative, cumulative_sq, first, stop)
    del cumulative, cumulative_sq
    no_data = count == 0
    out: Dict[str, np.ndarray] = {}
    cache: Dict[float, np.ndarray] = {}

    def order(q: float) -> np.ndarray:
        if q not in cache:
            cache[q] = _order_statistic(rows, first, count, q)
        return cache[q]

    with np.errstate(invalid="ignore", divide="ignore"):
        for name in names:
            if name == "avg":
                out[name] = power_to_db(mean)
            elif name == "min":
                out[name] = power_to_db(order(0.0))
            elif name == "max":
                out[name] = power_to_db(order(100.0))
            elif name == "median":
                out[name] = power_to_db(order(50.0))
            elif name == "std":
                out[name] = std
            elif name == "cov":
                out[name] = std / mean
            elif name == "count":
                out[name] = count.astype(np.float32)
            elif name == "pdiff":
                q_lo, q_hi = min(percentiles), max(percentiles)
                out[name] = (power_to_db(order(q_hi))
                             - power_to_db(order(q_lo)))
            elif name.startswith("p") and name not in HARMONIC_METRICS:
                out[name] = power_to_db(order(float(name[1:])))
        if "std_db" in names or "harmonics" in metrics:
            low = order(0.0)
            high = order(100.0)
            keep = (original >= low) & (original <= high)  # NaN and no-data pixels compare False
            db = power_to_db(original) if db_values is None else db_values.reshape(dates, -1)
        if "std_db" in names:
            kept_db = np.where(keep, db, np.float32(0))
            mean_db = kept_db.sum(axis=0, dtype=np.float64) / count
            mean_sq_db = np.einsum("ij,ij->j", kept_db, kept_db, dtype=np.float64) / count
            out["std_db"] = np.sqrt(np.maximum(mean_sq_db - mean_db * mean_db, 0.0))
    if "harmonics" in metrics:
        if years is None:
            raise UserInputError("Harmonics need the acquisition dates of the stack.")
        out.update(_harmonics(db, keep, np.asarray(years, dtype=np.float64)))
    result = {}
    for name in names:
        values = np.asarray(out[name], dtype=np.float32)
        if name != "count":
            values = np.where(no_data, np.float32(np.nan), values)
        result[name] = values.reshape(spatial)
    return result


def block_windows(height: int, width: int, block_shape: Tuple[int, int], dates: int, memory_mb: float,
                  workers: int) -> List[Window]:
    """Windows covering the grid, aligned to the inputs' internal blocks (so every tile or
    strip is decompressed once) and small enough that ``workers`` blocks in flight stay
    within ``memory_mb`` (about 16 float32-sized working copies of a block at the peak)."""
    max_pixels = int(memory_mb * 2 ** 20 / (dates * 4 * 16 * max(1, workers)))
    return aligned_windows(height, width, block_shape, max_pixels)


def timescan(inputs: Sequence[str], output_folder: str, metrics: Sequence[str] = DEFAULT_METRICS,
             percentiles: Sequence[float] = (5.0, 95.0), unit: str = "db", remove_outliers: bool = True,
             outlier_k: float = DEFAULT_OUTLIER_K, output_dtype: str = "float32", prefix: Optional[str] = None,
             memory_mb: float = 512.0, workers: int = 2,
             progress: Optional[Callable[[float], None]] = None,
             is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, object]:
    """Write one GeoTIFF per metric ``NN.<prefix>.<metric>.tif`` and ``Timescan.<prefix>.vrt``.

    ``inputs``: files or folders of one stack (single-date files dated by name, or a
    time-series VRT with date band descriptions), all on one grid and one polarisation.
    ``unit``: how the stack stores backscatter, ``"db"`` or ``"linear"`` (power).
    ``output_dtype``: ``float32`` or ``uint8``/``uint16`` scaled per §9.5 (0 = nodata,
    GDAL scale/offset give physical values). All files (with their sidecar styles) or none
    are written; a stack without any valid value, or a metric without any valid pixel, is an
    error. Returns the paths, metric names and styles, the polarisation and the dates.
    """
    OUTPUT_TYPES.check(output_dtype, "output type")
    layers = collect_layers(inputs)
    polarisation = require_stack(layers)
    grid = require_same_grid(layers)
    names = expand_metrics(metrics, percentiles)
    require_plausible_unit(layers, unit)
    years = np.array([decimal_year(layer.when) for layer in layers])
    if "harmonics" in metrics and len(layers) < MIN_DATES_FOR_HARMONICS:
        raise UserInputError(
            f"Harmonics need at least {MIN_DATES_FOR_HARMONICS} dates; the stack has {len(layers)}. "
            "Untick harmonics or add dates.")
    prefix = prefix or polarisation
    integer = output_dtype != "float32"
    with run_folder(output_folder) as folder, OutputSet() as outputs:
        paths = {name: os.path.join(folder, f"{i:02d}.{prefix}.{name}.tif") for i, name in enumerate(names, 1)}
        bands = []
        with contextlib.ExitStack() as stack:
            # a small GDAL cache: block-aligned windows decompress every tile once
            # (in bytes: rasterio hands the value to GDALSetCacheMax)
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=64 * 1024 * 1024))
            reader = stack.enter_context(StackReader(layers, unit))
            blocks = block_windows(grid.height, grid.width, reader.block_shape(), len(layers), memory_mb, workers)
            writers = {}
            for name, path in paths.items():
                scale, offset = _scale_offset(name, output_dtype)
                writers[name] = stack.enter_context(outputs.raster(
                    path, grid, [name], dtype=output_dtype, scales=(scale,) if integer else None,
                    offsets=(offset,) if integer else None, style=metric_style(name),
                    require_valid=HARMONICS_EMPTY_HINT if name in HARMONIC_METRICS else NO_VALID_DATE))
                bands.append(VrtBand(path, name, output_dtype, writers[name].nodata, scale, offset))
            read_lock = threading.Lock()

            def compute(window):
                check_canceled(is_canceled)
                with read_lock:  # GDAL handles are not shared between threads
                    stored = reader.read_window_stored(window)
                power = db_to_power(stored) if unit == "db" else clean_linear(stored)
                values = timescan_block(power, years, metrics, percentiles, remove_outliers, outlier_k,
                                        db_values=stored if unit == "db" else None)
                return window, values, bool(np.isfinite(power).any())

            any_valid = False
            for done, (window, values, valid) in enumerate(_ordered_parallel(compute, blocks, workers), start=1):
                any_valid |= valid
                for name, writer in writers.items():
                    writer.write(_encode(name, values[name], output_dtype), 1, window)
                check_canceled(is_canceled)
                if progress:
                    progress(100.0 * done / len(blocks))
            if not any_valid:
                raise UserInputError(NO_VALID_DATE + " Nothing was written.")
        # the metric files are verified now; their VRT comes last
        vrt_path = add_band_vrt(outputs, os.path.join(folder, f"Timescan.{prefix}.vrt"), bands, grid,
                                metric_style(names[0]))
    return {"metrics": names, "paths": [paths[name] for name in names], "vrt": vrt_path,
            "styles": [metric_style(name) for name in names], "polarisation": polarisation,
            "dates": [layer.label for layer in layers]}


def _ordered_parallel(function, items, workers: int):
    """Yield ``function(item)`` in order, with at most ``workers`` items in flight."""
    workers = max(1, int(workers))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        iterator = iter(items)
        try:
            for item in iterator:
                pending.append(pool.submit(function, item))
                if len(pending) >= workers:
                    break
            while pending:
                result = pending.pop(0).result()
                item = next(iterator, None)
                if item is not None:
                    pending.append(pool.submit(function, item))
                yield result
        finally:
            for future in pending:
                future.cancel()


def _scale_offset(name: str, output_dtype: str):
    if output_dtype == "float32" or name == "count":
        return 1.0, 0.0
    return gdal_scale_offset(metric_range(name), output_dtype)


def _encode(name: str, values: np.ndarray, output_dtype: str) -> np.ndarray:
    if output_dtype == "float32":
        return values.astype(np.float32, copy=False)
    if name == "count":
        return np.clip(values, 0, DN_MAX[output_dtype]).astype(output_dtype)
    return to_dn(values, metric_range(name), output_dtype)
