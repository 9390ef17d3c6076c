"""DEM → reference DEM co-registration by Nuth & Kääb (2011), file to file (``surfacemotion:coregisterdem``).

Steps: check the pair and put both DEMs on the fit grid (:mod:`.inputs`); slope and aspect of the
reference (:mod:`.terrain`); stable cells = both DEMs valid, slope within the limits, outside the
unstable areas (a deterministic subsample of at most :data:`MAX_SAMPLES`); the iterative fit
(:mod:`.nuth_kaab`); then the shifted DEM, dh before/after and the report written together
(all or nothing) in blocks (:mod:`.apply`, :mod:`.report`). Signs: see :mod:`.report`.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import numpy as np
from affine import Affine

from ..errors import UserInputError, check_canceled
from ..io import Grid, GridResampler, OutputSet, verify
from ..io.resample import RESAMPLING
from .apply import DH_STYLE, Correction, grid_centre, write_corrected
from .inputs import DemPair, open_pair, read_fit_arrays, unstable_mask
from .nuth_kaab import FitResult, nuth_kaab
from .report import COLUMNS, report_rows, report_text
from .terrain import slope_aspect

#: Default slope limits (degrees): flatter cells carry no shift signal (REFERENCE §7.2: α > ~5°),
#: steeper ones are noisy and shadowed (demcoreg's dem_align upper limit, 40°).
SLOPE_MIN_DEG = 5.0
SLOPE_MAX_DEG = 40.0
#: At least this many stable cells are needed; at most MAX_SAMPLES (a fixed-seed subsample) are used.
MIN_STABLE_CELLS = 2000
MAX_SAMPLES = 1_000_000


def _name(path: str) -> str:
    return os.path.basename(path)


def check_outputs(inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Refuse outputs that repeat each other or overwrite one of the ``inputs`` (empty outputs ignored)."""
    real = [os.path.realpath(path) for path in outputs if path]
    if len(set(real)) != len(real):
        raise UserInputError("Two outputs have the same file name; give every output (DEM, dh maps, report) "
                             "its own name.")
    for path in inputs:
        if os.path.realpath(path) in real:
            raise UserInputError(f"An output would overwrite the input '{_name(path)}'; choose another file name.")


def stable_cells(pair: DemPair, dem: np.ndarray, reference: np.ndarray, tan_slope: np.ndarray,
                 unstable: np.ndarray, slope_min_deg: float, slope_max_deg: float) -> np.ndarray:
    """Flat indices of the stable cells of the fit grid, subsampled to :data:`MAX_SAMPLES`."""
    both = np.isfinite(dem) & np.isfinite(reference)
    if not both.any():
        raise UserInputError(
            f"The DEM '{_name(pair.dem_path)}' and the reference DEM '{_name(pair.reference_path)}' have no valid "
            "cell in common (their extents overlap only where one of them is nodata). Choose a reference "
            "covering the DEM's data.")
    slope_deg = np.degrees(np.arctan(tan_slope))
    in_range = both & (slope_deg >= slope_min_deg) & (slope_deg <= slope_max_deg)
    stable = in_range & ~unstable
    count = int(stable.sum())
    if count < MIN_STABLE_CELLS:
        raise UserInputError(
            f"Only {count} stable cells (fit grid of {pair.fit_grid.width} x {pair.fit_grid.height}): {int(both.sum())} "
            f"cells where both DEMs are valid, {int(in_range.sum())} of them with a slope between {slope_min_deg:g}° "
            f"and {slope_max_deg:g}°, {count} outside the unstable areas; at least {MIN_STABLE_CELLS} are needed. "
            "Lower the minimum slope, raise the maximum slope, use smaller unstable areas or a larger overlap.")
    index = np.flatnonzero(stable.ravel())
    if index.size > MAX_SAMPLES:
        index = np.sort(np.random.default_rng(0).choice(index, MAX_SAMPLES, replace=False))
    return index


#: How the fit resamples both DEMs (the reference onto the DEM grid, the DEM at x + o): one kernel for
#: both, else the difference of two kernels' smoothing biases the shift (measured on the Rome DEM moved
#: by 0.08 px: 0.16 m with a cubic-resampled reference and a spline-evaluated DEM, 0.0002 m with one kernel).
FIT_RESAMPLING = "cubic"


def dem_reader(pair: DemPair, index: np.ndarray):
    """``dem_at(o_x, o_y)``: the DEM at the fit grid's cells ``index`` (flat) moved to x + o, resampled
    by GDAL's warper like the reference (NaN outside the DEM and in its holes)."""
    method = "average" if pair.factor > 1 else FIT_RESAMPLING
    grid = pair.fit_grid

    def dem_at(o_x: float, o_y: float) -> np.ndarray:
        moved = Grid(grid.crs, Affine.translation(o_x, o_y) * grid.transform, grid.width, grid.height)
        with GridResampler(moved) as resampler:
            return resampler.read(pair.dem_path, 1, resampling=method, dtype=np.float64).ravel()[index]

    return dem_at


def fit_pair(pair: DemPair, unstable_geometries=None, slope_min_deg: float = SLOPE_MIN_DEG,
             slope_max_deg: float = SLOPE_MAX_DEG, tilt: bool = False, max_iterations: int = 10,
             tolerance_px: float = 0.001, progress=None, is_canceled=None) -> FitResult:
    """The Nuth & Kääb fit of ``pair`` (no output written)."""
    if not 0.0 <= slope_min_deg < slope_max_deg <= 90.0:
        raise UserInputError(f"The slope limits must satisfy 0 ≤ minimum < maximum ≤ 90° (got {slope_min_deg:g}° "
                             f"and {slope_max_deg:g}°).")
    dem, reference = read_fit_arrays(pair)
    check_canceled(is_canceled)
    grid = pair.fit_grid
    tan_slope, aspect = slope_aspect(reference, grid.transform)
    index = stable_cells(pair, dem, reference, tan_slope, unstable_mask(grid, unstable_geometries),
                         slope_min_deg, slope_max_deg)
    rows, cols = np.divmod(index, grid.width)
    t = grid.transform
    x0, y0 = grid_centre(pair.grid)
    x = t.a * (cols + 0.5) + t.b * (rows + 0.5) + t.c - x0
    y = t.d * (cols + 0.5) + t.e * (rows + 0.5) + t.f - y0
    samples = reference.ravel()[index], tan_slope.ravel()[index], aspect.ravel()[index]
    del dem, reference, tan_slope, aspect  # the fit keeps the stable cells only
    return nuth_kaab(*samples, x, y, dem_reader(pair, index), pair.pixel_size, max_iterations=max_iterations, tolerance_px=tolerance_px, tilt=tilt,
                     progress=progress, is_canceled=is_canceled)


def coregister_dem_file(dem_path: str, reference_path: str, output_path: str, dh_before_path: str,
                        dh_after_path: str, report_path: str, *, unstable_geometries=None,
                        slope_min_deg: float = SLOPE_MIN_DEG, slope_max_deg: float = SLOPE_MAX_DEG,
                        tilt: bool = False, max_iterations: int = 10, tolerance_px: float = 0.001,
                        resampling: str = "cubic", progress: Optional[Callable[[float], None]] = None,
                        is_canceled=None) -> dict:
    """Align ``dem_path`` onto ``reference_path`` and write the four outputs (all or none).

    ``unstable_geometries``: GeoJSON polygons in the DEM's CRS, left out of the fit. Returns the
    report's result row as numbers (``shift_x_m`` … see :mod:`.report`) plus ``converged``,
    ``iterations``, ``fit_factor`` (coarsening of the fit grid) and the vertical CRS names.
    """
    RESAMPLING.check(resampling, "resampling method")
    check_outputs([dem_path, reference_path], [output_path, dh_before_path, dh_after_path, report_path])
    report = progress or (lambda percent: None)
    pair = open_pair(dem_path, reference_path)
    fit = fit_pair(pair, unstable_geometries, slope_min_deg, slope_max_deg, tilt, max_iterations, tolerance_px,
                   progress=lambda percent: report(5.0 + 0.45 * percent), is_canceled=is_canceled)
    x0, y0 = grid_centre(pair.grid)
    correction = Correction(fit.offset_x, fit.offset_y, fit.trend, x0, y0)
    summary = report_rows(fit)[0]
    tags = {f"COREG_{key.upper()}": value for key, value in summary.items() if key not in ("row", "iteration")}
    tags["COREG_REFERENCE"] = _name(reference_path)
    unit = pair.unit
    with OutputSet() as outputs:
        with outputs.raster(output_path, pair.grid, [f"{pair.description} ({unit}), co-registered onto "
                                                     f"{_name(reference_path)}"], units=[unit], tags=tags,
                            require_valid="The shifted DEM has no valid cell.") as shifted_out, \
                outputs.raster(dh_before_path, pair.grid, [f"dh before co-registration, DEM - reference ({unit})"],
                               units=[unit], style=DH_STYLE, require_valid=None) as before_out, \
                outputs.raster(dh_after_path, pair.grid, [f"dh after co-registration, DEM - reference ({unit})"],
                               units=[unit], style=DH_STYLE, tags=tags, require_valid=None) as after_out:
            write_corrected(dem_path, reference_path, pair.grid, correction, resampling, shifted_out, before_out,
                            after_out, progress=lambda percent: report(50.0 + 0.49 * percent),
                            is_canceled=is_canceled)
        text = report_text(fit)
        outputs.text(report_path, text, verify=verify.csv_rows(text.count("\n") - 1, COLUMNS))
    report(100.0)
    result = {key: float(value) for key, value in summary.items()
              if key not in ("row", "iteration", "converged", "iterations", "n_stable_cells", "n_aspect_bins")}
    result.update(converged=fit.converged, iterations=len(fit.iterations), n_stable_cells=fit.n_cells,
                  fit_factor=pair.factor, dem_vertical=pair.dem_vertical,
                  reference_vertical=pair.reference_vertical, fit=fit)
    return result
