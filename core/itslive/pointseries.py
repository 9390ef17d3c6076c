"""Velocity time series at points from ITS_LIVE cubes (REFERENCE §8.3).

Each point takes the nearest cube cell (in the cube's own EPSG); only the chunk holding that
cell is read for each variable. Rows are sorted by mid_date. The running mean is evaluated
every 30 days: the value at tᵢ + 15 d is the mean speed over [tᵢ − 15 d, tᵢ₊₁ + 15 d) when that
window holds at least 5 values.
"""
from __future__ import annotations

import datetime as _dt
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import Cancelled, UserInputError, check_canceled
from ..io import OutputSet, atomic_file, verify
from .cubes import CubeInfo, NetworkError, cube_epsg, describe_failure, open_cube, transformer
from .download import DownloadRequest, plan_window
from .interrupt import interruptible

COLUMNS = ("point_id", "mid_date", "lon", "lat", "x", "y", "v", "v_error", "vx", "vx_error", "vy", "vy_error",
           "date_dt", "mission", "satellite", "epsg", "acquisition_date_img1", "acquisition_date_img2")
VALUES = ("v", "v_error", "vx", "vx_error", "vy", "vy_error")
RUNNING_STEP_DAYS = 30.0
RUNNING_HALF_DAYS = 15.0
RUNNING_MIN_POINTS = 5


def _point_request(lon: float, lat: float, request: DownloadRequest) -> DownloadRequest:
    """The request restricted to a tiny AOI around one point (reuses the layer filters)."""
    d = 1e-6
    aoi = {"type": "Polygon", "coordinates": [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d],
                                              [lon - d, lat + d], [lon - d, lat - d]]]}
    return DownloadRequest(aoi, request.start, request.end, request.variables, request.min_roi_valid,
                           request.dt_min_days, request.dt_max_days, request.missions, timeout=request.timeout)


def _cube_for_point(cubes: Sequence[CubeInfo], lon: float, lat: float) -> Optional[CubeInfo]:
    from shapely.geometry import Point, shape

    for cube in cubes:
        if cube.footprint and shape(cube.footprint).contains(Point(lon, lat)):
            return cube
    return None


def point_series(points_lonlat: Sequence[Tuple[float, float]], cubes: Sequence[CubeInfo], request: DownloadRequest,
                 progress: Optional[Callable[[float], None]] = None,
                 is_canceled: Optional[Callable[[], bool]] = None,
                 messages: Optional[list] = None) -> List[Dict[str, object]]:
    """Rows (dicts with :data:`COLUMNS`) of every point, sorted by point and mid_date."""
    request.validate()
    rows: List[Dict[str, object]] = []
    opened = {}
    for index, (lon, lat) in enumerate(points_lonlat):
        check_canceled(is_canceled)
        point_id = index + 1
        cube = _cube_for_point(cubes, lon, lat)
        if cube is None:
            if messages is not None:
                messages.append(f"Point {point_id} ({lon:.4f}, {lat:.4f}) is in no cube footprint; skipped.")
            continue
        if cube.zarr_url not in opened:
            opened[cube.zarr_url] = interruptible(lambda: open_cube(cube.zarr_url, request.timeout), is_canceled)
        ds = opened[cube.zarr_url]
        try:
            rows += interruptible(lambda: _rows_for_point(ds, cube, point_id, lon, lat, request, messages),
                                  is_canceled)
        except (UserInputError, Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 — transport errors
            raise NetworkError(describe_failure(cube.zarr_url, exc)) from exc
        if progress:
            progress(100.0 * (index + 1) / len(points_lonlat))
    return rows


def _rows_for_point(ds, cube, point_id, lon, lat, request, messages) -> List[Dict[str, object]]:
    epsg = cube_epsg(ds, cube.epsg)
    px, py = transformer(4326, epsg).transform(lon, lat)
    x, y = ds["x"].values, ds["y"].values
    col, row = int(np.argmin(np.abs(x - px))), int(np.argmin(np.abs(y - py)))
    spacing = abs(float(x[1] - x[0])) if x.size > 1 else 120.0
    if abs(x[col] - px) > spacing or abs(y[row] - py) > spacing:
        if messages is not None:
            messages.append(f"Point {point_id} is outside the grid of {cube.name}; skipped.")
        return []
    cell_x, cell_y = float(x[col]), float(y[row])
    cell_lon, cell_lat = transformer(epsg, 4326).transform(cell_x, cell_y)
    window = plan_window(ds, cube, _point_request(float(cell_lon), float(cell_lat), request))
    if window is None:
        return []
    order = np.argsort(window.layers, kind="stable")
    ascending = window.layers[order]
    values = {}
    for name in VALUES:
        if name not in ds.variables:
            values[name] = np.full(ascending.size, np.nan)
            continue
        data = ds[name].isel(mid_date=ascending, y=row, x=col).values.astype(np.float64)
        data[data == -32767] = np.nan
        values[name] = np.empty_like(data)
        values[name][order] = data
    acquisitions = {}
    for name in ("acquisition_date_img1", "acquisition_date_img2"):
        if name in ds.variables:
            raw = ds[name].isel(mid_date=ascending).values
            acquisitions[name] = np.empty_like(raw)
            acquisitions[name][order] = raw
    mission = window.extras.get("mission_img1", np.full(ascending.size, ""))
    rows = []
    for k, moment in enumerate(window.mid_date.astype("datetime64[s]").tolist()):
        row_values = {"point_id": point_id, "mid_date": moment.strftime("%Y-%m-%dT%H:%M:%S"), "lon": float(cell_lon),
                      "lat": float(cell_lat), "x": cell_x, "y": cell_y, "date_dt": float(window.date_dt_days[k]),
                      "mission": str(mission[k]), "satellite": str(window.satellite[k]), "epsg": epsg}
        for name in VALUES:
            row_values[name] = float(values[name][k])
        for name in ("acquisition_date_img1", "acquisition_date_img2"):
            row_values[name] = (str(np.datetime64(acquisitions[name][k], "s")) if name in acquisitions else "")
        rows.append(row_values)
    return rows


def running_mean(dates: Sequence[_dt.datetime], values: Sequence[float]) -> Tuple[List[_dt.datetime], np.ndarray]:
    """Running mean every 30 d over [tᵢ − 15 d, tᵢ₊₁ + 15 d), ≥ 5 values, labelled tᵢ + 15 d."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return [], np.array([])
    days = np.array([(d - _dt.datetime(1970, 1, 1)).total_seconds() / 86400.0 for d in dates])[finite]
    values = values[finite]
    centres, means = [], []
    t = days.min()
    while t <= days.max():
        inside = (days >= t - RUNNING_HALF_DAYS) & (days < t + RUNNING_STEP_DAYS + RUNNING_HALF_DAYS)
        if inside.sum() >= RUNNING_MIN_POINTS:
            centres.append(_dt.datetime(1970, 1, 1) + _dt.timedelta(days=float(t + RUNNING_HALF_DAYS)))
            means.append(float(values[inside].mean()))
        t += RUNNING_STEP_DAYS
    return centres, np.array(means)


def write_csv(rows: Sequence[Dict[str, object]], path: str, output_set: Optional[OutputSet] = None) -> str:
    """CSV with the :data:`COLUMNS` header and one line per row (a member of ``output_set`` when given)."""
    import csv

    with atomic_file(path, verify=verify.csv_rows(len(rows), COLUMNS), output_set=output_set) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row.get(k, "") for k in COLUMNS})
    return path


def write_plot(rows: Sequence[Dict[str, object]], path: str, output_set: Optional[OutputSet] = None) -> str:
    """PNG: speed with 1-σ error bars per point, and its running mean (a member of ``output_set`` when given)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 5), dpi=100)
    try:
        for point_id in sorted({r["point_id"] for r in rows}):
            mine = [r for r in rows if r["point_id"] == point_id]
            dates = [_dt.datetime.fromisoformat(r["mid_date"]) for r in mine]
            speed = [r["v"] for r in mine]
            errors = [r["v_error"] for r in mine]
            line = axis.errorbar(dates, speed, yerr=errors, fmt="o", ms=3, alpha=0.5, label=f"point {point_id}")
            centres, means = running_mean(dates, speed)
            if len(centres):
                axis.plot(centres, means, "-", color=line[0].get_color(), lw=2,
                          label=f"point {point_id} running mean (30 d)")
        axis.set_ylabel("speed v (m/yr)")
        axis.set_xlabel("mid_date")
        axis.set_title("ITS_LIVE point velocity time series")
        axis.grid(alpha=0.3)
        if rows:
            axis.legend(fontsize=8)
        figure.autofmt_xdate()
        with atomic_file(path, verify=verify.image_readable(frames=1), output_set=output_set) as tmp:
            figure.savefig(tmp, format="png")
    finally:
        plt.close(figure)
    return path
