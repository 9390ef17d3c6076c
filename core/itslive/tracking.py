"""Particle tracking through a (time-varying) velocity field (REFERENCE §8.4).

Positions are float64 map coordinates (m) of the velocity grid's CRS; velocities m/yr;
times decimal years (365.25 d). The velocity at (p, t) is the bilinear interpolation of
the layer whose period contains t (``time_interpolation="nearest"``, default) or the
linear interpolation in time between the two layers around t (``"linear"``; layers are
then placed at their start dates). NaN when any bilinear corner is NaN.

Integration: classical RK4 with step h = min(h_max, time to the next layer boundary,
time left), h_max = cfl · pixel / (largest speed in the field) (cfl ≤ 0.5), so a step never
straddles two layers and moves at most half a pixel. Negative duration tracks backwards.
A particle stops, keeping its last valid position, when any RK4 stage meets nodata
("nodata"), leaves the grid ("left grid"), reaches the end time ("end time") or the end
of the dated record ("end of record").

Dated layers k = 0..n−1 starting at t_k cover [t_k, t_{k+1}); the last covers
[t_{n−1}, t_{n−1} + (t_{n−1} − t_{n−2})) (one year for a single dated layer).
Undated input is one steady field valid at all times.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..choices import Choices
from ..dates import datetime_from_decimal_year, decimal_year
from ..errors import UserInputError, check_canceled
from .grids import VelocityGrid, bilinear, map_to_pixel

#: How the velocity between two dated layers is taken (see the module docstring).
TIME_INTERPOLATIONS = Choices(("nearest", "Nearest layer (piecewise constant)"), ("linear", "Linear between layers"))
STOP_END_TIME = "end time"
STOP_END_RECORD = "end of record"
STOP_NODATA = "nodata"
STOP_LEFT_GRID = "left grid"
STOP_NODATA_AT_SEED = "nodata at seed"
_EPS = 1e-9


@dataclass
class Track:
    """One particle path: vertices (t_yr, x, y, vx, vy) in order, and why it stopped."""

    track_id: int
    t_yr: List[float] = field(default_factory=list)
    x: List[float] = field(default_factory=list)
    y: List[float] = field(default_factory=list)
    vx: List[float] = field(default_factory=list)
    vy: List[float] = field(default_factory=list)
    stop_reason: str = STOP_END_TIME

    @property
    def n_steps(self) -> int:
        return max(0, len(self.t_yr) - 1)

    def cumulative_distance(self) -> np.ndarray:
        """Distance travelled along the path at each vertex (m)."""
        steps = np.hypot(np.diff(self.x), np.diff(self.y))
        return np.concatenate([[0.0], np.cumsum(steps)])

    def dates(self) -> List[_dt.datetime]:
        return [datetime_from_decimal_year(t) for t in self.t_yr]


class VelocityField:
    """Evaluate a :class:`VelocityGrid` at map positions and times."""

    def __init__(self, grid: VelocityGrid, time_interpolation: str = "nearest"):
        self.grid = grid
        self.time_interpolation = TIME_INTERPOLATIONS.check(time_interpolation, "time interpolation")
        self.starts = None
        if grid.dates:
            order = np.argsort([decimal_year(d) for d in grid.dates], kind="stable")
            self.vx = grid.vx[order]
            self.vy = grid.vy[order]
            self.starts = np.array([decimal_year(grid.dates[k]) for k in order])
            last = self.starts[-1] - self.starts[-2] if len(self.starts) > 1 else 1.0
            self.record_end = float(self.starts[-1] + max(last, _EPS))
        else:
            if grid.vx.shape[0] != 1:
                raise UserInputError(
                    "A velocity stack with several layers needs a date per layer (band descriptions "
                    "like 2015-01-01, as written by surfacemotion:itslivedownload).")
            self.vx, self.vy = grid.vx, grid.vy
        self.pixel = min(abs(grid.transform.a), abs(grid.transform.e))
        with np.errstate(invalid="ignore"):
            speed = np.hypot(self.vx, self.vy)
        self.max_speed = float(np.nanmax(speed)) if np.isfinite(speed).any() else 0.0

    @property
    def dated(self) -> bool:
        return self.starts is not None

    @property
    def record_start(self) -> float:
        return float(self.starts[0]) if self.dated else -np.inf

    def boundaries(self) -> np.ndarray:
        """Times at which the field changes (empty for a steady field)."""
        return self.starts[1:] if self.dated and self.time_interpolation == "nearest" else np.array([])

    def layer_index(self, t: float) -> int:
        return int(np.clip(np.searchsorted(self.starts, t, side="right") - 1, 0, len(self.starts) - 1))

    def _layer_velocity(self, k: int, cols, rows):
        return bilinear(self.vx[k], cols, rows), bilinear(self.vy[k], cols, rows)

    def velocity(self, x, y, t: float, layer_time: Optional[float] = None):
        """(vx, vy) in m/yr at map positions for time t (``layer_time`` picks the layer when given)."""
        cols, rows = map_to_pixel(self.grid.transform, x, y)
        if not self.dated:
            return self._layer_velocity(0, cols, rows)
        if self.time_interpolation == "nearest":
            return self._layer_velocity(self.layer_index(t if layer_time is None else layer_time), cols, rows)
        k = self.layer_index(t)
        if k + 1 >= len(self.starts) or t <= self.starts[0]:
            return self._layer_velocity(k, cols, rows)
        w = (t - self.starts[k]) / (self.starts[k + 1] - self.starts[k])
        vx0, vy0 = self._layer_velocity(k, cols, rows)
        vx1, vy1 = self._layer_velocity(k + 1, cols, rows)
        return (1 - w) * vx0 + w * vx1, (1 - w) * vy0 + w * vy1

    def inside(self, x, y) -> np.ndarray:
        cols, rows = map_to_pixel(self.grid.transform, x, y)
        height, width = self.grid.shape
        return (cols >= 0) & (cols <= width - 1) & (rows >= 0) & (rows <= height - 1)


def track_particles(grid: VelocityGrid, seeds_x: Sequence[float], seeds_y: Sequence[float],
                    start: Optional[_dt.datetime] = None, duration_years: float = 1.0, cfl: float = 0.5,
                    time_interpolation: str = "nearest",
                    progress: Optional[Callable[[float], None]] = None,
                    is_canceled: Optional[Callable[[], bool]] = None) -> List[Track]:
    """Track particles from seeds (map x, y in the grid CRS) for ``duration_years`` (negative =
    backwards) from ``start`` (default: the first layer's start forwards, the end of the record
    backwards, 2000-01-01 for an undated field). Returns one :class:`Track` per seed."""
    if not 0 < cfl <= 0.5:
        raise UserInputError(f"The step fraction (CFL) must be in (0, 0.5], not {cfl}.")
    if duration_years == 0:
        raise UserInputError("The tracking duration is zero; give a positive (forward) or negative (backward) number of years.")
    velocity_field = VelocityField(grid, time_interpolation)
    direction = 1.0 if duration_years > 0 else -1.0
    t0 = _start_time(velocity_field, start, direction)
    t_stop = t0 + duration_years
    end_reason = STOP_END_TIME
    if velocity_field.dated:
        if direction > 0 and t_stop > velocity_field.record_end:
            t_stop, end_reason = velocity_field.record_end, STOP_END_RECORD
        if direction < 0 and t_stop < velocity_field.record_start:
            t_stop, end_reason = velocity_field.record_start, STOP_END_RECORD
        if not velocity_field.record_start - _EPS <= t0 <= velocity_field.record_end + _EPS:
            raise UserInputError(
                f"The start date {datetime_from_decimal_year(t0):%Y-%m-%d} is outside the velocity record "
                f"({datetime_from_decimal_year(velocity_field.record_start):%Y-%m-%d} to "
                f"{datetime_from_decimal_year(velocity_field.record_end):%Y-%m-%d}).")
    x = np.asarray(seeds_x, dtype=np.float64).copy()
    y = np.asarray(seeds_y, dtype=np.float64).copy()
    tracks = [Track(track_id=k + 1) for k in range(x.size)]
    active = np.ones(x.size, dtype=bool)
    vx, vy = velocity_field.velocity(x, y, t0, layer_time=t0 + direction * _EPS)
    for k, track in enumerate(tracks):
        if not np.isfinite(vx[k]) or not np.isfinite(vy[k]):
            active[k] = False
            track.stop_reason = STOP_LEFT_GRID if not velocity_field.inside(x[k], y[k]) else STOP_NODATA_AT_SEED
        _append(track, t0, x[k], y[k], vx[k], vy[k])
    h_max = cfl * velocity_field.pixel / velocity_field.max_speed if velocity_field.max_speed > 0 else abs(duration_years)
    boundaries = velocity_field.boundaries()
    t = t0
    total = abs(t_stop - t0)
    while active.any() and direction * (t_stop - t) > _EPS:
        check_canceled(is_canceled)
        ahead = boundaries[direction * (boundaries - t) > _EPS]
        next_stop = (ahead.min() if direction > 0 else ahead.max()) if ahead.size else t_stop
        next_stop = min(next_stop, t_stop) if direction > 0 else max(next_stop, t_stop)
        h = direction * min(h_max, abs(next_stop - t))
        if abs(next_stop - (t + h)) < 1e-6 * h_max:
            h = next_stop - t  # land exactly on boundaries, no sliver steps
        idx = np.flatnonzero(active)
        new_x, new_y, ok = _rk4_step(velocity_field, x[idx], y[idx], t, h)
        for j, k in enumerate(idx):
            if not ok[j]:
                active[k] = False
                tracks[k].stop_reason = STOP_LEFT_GRID if not velocity_field.inside(new_x[j], new_y[j]) else STOP_NODATA
        moved = idx[ok]
        x[moved], y[moved] = new_x[ok], new_y[ok]
        t = t + h
        if moved.size:
            vx, vy = velocity_field.velocity(x[moved], y[moved], t, layer_time=t - direction * _EPS)
            for j, k in enumerate(moved):
                _append(tracks[k], t, x[k], y[k], vx[j], vy[j])
        if progress and total > 0:
            progress(min(100.0, 100.0 * abs(t - t0) / total))
    for k in np.flatnonzero(active):
        tracks[k].stop_reason = end_reason
    _require_a_moving_seed(tracks)
    return tracks


def _require_a_moving_seed(tracks: Sequence[Track]) -> None:
    """Refuse a run where no seed moved (every track has one vertex): it would write only dots."""
    if any(track.n_steps > 0 for track in tracks):
        return
    reasons: Dict[str, int] = {}
    for track in tracks:
        reasons[track.stop_reason] = reasons.get(track.stop_reason, 0) + 1
    outside = reasons.get(STOP_LEFT_GRID, 0)
    raise UserInputError(
        f"No seed could move: of {len(tracks)} seed(s), {outside} lie outside the velocity grid and "
        f"{len(tracks) - outside} on nodata (no vx/vy at the seed). Put the seeds on the glacier, inside the "
        "grid where vx and vy have data" + (" (check the seed layer's CRS)." if outside == len(tracks) else "."))


def _start_time(velocity_field: VelocityField, start: Optional[_dt.datetime], direction: float) -> float:
    if start is not None:
        return decimal_year(start)
    if not velocity_field.dated:
        return 2000.0
    return velocity_field.record_start if direction > 0 else velocity_field.record_end


def _rk4_step(velocity_field: VelocityField, x, y, t: float, h: float):
    """One RK4 step of size h (years); all stages use the layer of the step's midpoint."""
    layer_time = t + 0.5 * h

    def v(px, py, tt):
        return velocity_field.velocity(px, py, tt, layer_time=layer_time)

    k1x, k1y = v(x, y, t)
    k2x, k2y = v(x + 0.5 * h * k1x, y + 0.5 * h * k1y, t + 0.5 * h)
    k3x, k3y = v(x + 0.5 * h * k2x, y + 0.5 * h * k2y, t + 0.5 * h)
    k4x, k4y = v(x + h * k3x, y + h * k3y, t + h)
    new_x = x + h / 6.0 * (k1x + 2 * k2x + 2 * k3x + k4x)
    new_y = y + h / 6.0 * (k1y + 2 * k2y + 2 * k3y + k4y)
    ok = np.isfinite(new_x) & np.isfinite(new_y)
    # where a stage failed, report the position it tried to reach (for the stop reason)
    trial_x = np.where(np.isfinite(k1x), x + h * np.nan_to_num(k1x), x)
    trial_y = np.where(np.isfinite(k1y), y + h * np.nan_to_num(k1y), y)
    return np.where(ok, new_x, trial_x), np.where(ok, new_y, trial_y), ok


def _append(track: Track, t: float, x: float, y: float, vx: float, vy: float) -> None:
    track.t_yr.append(float(t))
    track.x.append(float(x))
    track.y.append(float(y))
    track.vx.append(float(vx))
    track.vy.append(float(vy))


def track_rows(tracks: Sequence[Track]):
    """Point records: dicts with track_id, step, date (ISO, UTC), t_yr, x, y, vx, vy, speed, cum_dist_m."""
    for track in tracks:
        distance = track.cumulative_distance()
        for step, (t, px, py, vx, vy) in enumerate(zip(track.t_yr, track.x, track.y, track.vx, track.vy)):
            yield {"track_id": track.track_id, "step": step,
                   "date": datetime_from_decimal_year(t).strftime("%Y-%m-%dT%H:%M:%S"), "t_yr": t,
                   "x": px, "y": py, "vx": vx, "vy": vy, "speed": float(np.hypot(vx, vy)),
                   "cum_dist_m": float(distance[step])}


def line_summary(track: Track) -> dict:
    """Line record: track_id, start_date, end_date, n_steps, length_m, stop_reason."""
    return {"track_id": track.track_id,
            "start_date": datetime_from_decimal_year(track.t_yr[0]).strftime("%Y-%m-%dT%H:%M:%S"),
            "end_date": datetime_from_decimal_year(track.t_yr[-1]).strftime("%Y-%m-%dT%H:%M:%S"),
            "n_steps": track.n_steps, "length_m": float(track.cumulative_distance()[-1]),
            "stop_reason": track.stop_reason}
