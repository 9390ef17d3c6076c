"""Common-perspective groups and DEM-pair suggestions of PlanetScope scenes (REFERENCE §3, §1.5).

Input: the footprints records of ``surfacemotion:planetsearch`` (mappings with the fields of
:data:`schema.FOOTPRINT_FIELDS`; only ``id``, ``acquired``, ``view_angle``, ``true_view_angle`` /
``satellite_azimuth``, ``sun_azimuth`` and ``sun_elevation`` are read). Angles in degrees, times UTC.

**The grouping rule** (:func:`perspective_groups`) is deterministic and independent of the order
of the records; it depends only on the set of scenes:

1. Scenes are sorted by (true view angle, acquisition time, id); ids are unique, so this order
   is total. Scenes without a true view angle (and, with illumination matching, without sun
   angles) are in no group.
2. Sweep: the first scene of that order that is neither grouped nor rejected *opens* a window:
   the free scenes whose true view angle lies in [opener, opener + tolerance] — so any two members
   differ by at most the tolerance — and, with illumination matching, whose sun azimuth and sun
   elevation are within their tolerances of the opener's.
3. Time thinning: the window's scenes sorted by (time, id); the first is kept, each next one only
   when it is at least ``min_days`` after the last kept one.
4. Size re-check: when at least ``min_group_size`` scenes are kept they become the next group
   (ids 1, 2, … in sweep order) and the thinned-out scenes stay free (they may form another group
   of the same perspective); otherwise the opener is rejected (in no group). Repeat from 2.

The tutorial's greedy grouping visits the scenes in *input* order and takes every free scene
within the tolerance of the visited one (a window of ±tolerance, so members may differ by twice
the tolerance), and thins by time *without* re-checking the group size: the same scenes in another
order give other groups, and groups smaller than the minimum survive.

Scenes not in a group have the group id :data:`NO_GROUP`.
"""
from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..errors import UserInputError
from ..offsets.planetscope import days_between, iso_utc, parse_iso_utc
from .view_angle import DEFAULT_SCAN_LINE_AZIMUTH, true_view_angle

#: Group id of scenes that are in no group.
NO_GROUP = -1
#: Default |Δ true view angle| tolerance (degrees): the tutorial's function default (its example uses 0.3).
DEFAULT_TOLERANCE = 0.5
#: Tutorial defaults: at least 5 scenes a group, 30 days between members; sun angles within 5°.
DEFAULT_MIN_GROUP_SIZE = 5
DEFAULT_MIN_DAYS = 30.0
DEFAULT_SUN_TOLERANCE = 5.0
#: DEM pairs (REFERENCE §3, §7.2): view angle at least 5°, at most 30 days apart.
DEFAULT_DEM_MIN_VIEW_ANGLE = 5.0
DEFAULT_DEM_MAX_DAYS = 30.0
#: Columns of the DEM-pair suggestions.
DEM_PAIR_COLUMNS = ("img1", "img2", "date1", "date2", "dt_days", "true_va1", "true_va2", "true_va_diff")


#: Fields the grouping reads (``true_view_angle`` may be replaced by ``satellite_azimuth``).
GROUPING_FIELDS = ("id", "acquired", "view_angle", "sun_azimuth", "sun_elevation")


def missing_fields(names: Sequence[str]) -> List[str]:
    """The footprint fields the grouping needs that ``names`` (a layer's field names) lacks."""
    present = set(names)
    missing = [name for name in GROUPING_FIELDS if name not in present]
    if "true_view_angle" not in present and "satellite_azimuth" not in present:
        missing.append("true_view_angle (or satellite_azimuth to compute it)")
    return missing


@dataclasses.dataclass(frozen=True)
class Scenes:
    """The scenes of a footprints layer as arrays (input order): ids, times, angles in degrees."""

    ids: List[str]
    acquired: List[datetime]
    days: np.ndarray            # days since the earliest scene (float64)
    view_angle: np.ndarray      # unsigned off-nadir angle
    true_va: np.ndarray         # signed view angle (NaN = unknown)
    sun_azimuth: np.ndarray
    sun_elevation: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _number(value: Any) -> float:
    """A float from a field value; None, '' and text that is no number become NaN."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def scenes_from_records(records: Sequence[Mapping[str, Any]],
                        scan_line_azimuth: float = DEFAULT_SCAN_LINE_AZIMUTH) -> Scenes:
    """Validate footprint records and turn them into :class:`Scenes`.

    ``true_view_angle`` is taken from the record; where it is missing or NULL it is computed from
    ``view_angle`` and ``satellite_azimuth`` with ``scan_line_azimuth`` (degrees from north,
    :func:`view_angle.true_view_angle`). Missing or duplicate ids and unreadable times are refused.
    """
    if not math.isfinite(scan_line_azimuth) or not 0.0 <= scan_line_azimuth < 90.0:
        raise UserInputError(f"The scan-line azimuth must be between 0 and 90 degrees; got {scan_line_azimuth}.")
    ids, times, seen = [], [], {}
    for row, record in enumerate(records, start=1):
        scene_id = str(record.get("id") or "").strip()
        if not scene_id:
            raise UserInputError(f"Footprint {row} has no scene id (field 'id'); every footprint needs one.")
        if scene_id in seen:
            raise UserInputError(
                f"The scene id {scene_id} occurs twice in the footprints (features {seen[scene_id]} and {row}); "
                "keep one footprint per scene (e.g. remove the duplicate search result).")
        seen[scene_id] = row
        try:
            times.append(parse_iso_utc(str(record.get("acquired") or "")))
        except UserInputError as exc:
            raise UserInputError(f"Scene {scene_id}: its acquisition time (field 'acquired') is unreadable: {exc}") \
                from None
        ids.append(scene_id)
    field = lambda name: np.array([_number(r.get(name)) for r in records], dtype=np.float64)  # noqa: E731
    view, stored = field("view_angle"), field("true_view_angle")
    computed = true_view_angle(view, field("satellite_azimuth"), scan_line_azimuth)
    start = min(times) if times else None
    return Scenes(ids=ids, acquired=times,
                  days=np.array([days_between(start, t) for t in times], dtype=np.float64),
                  view_angle=np.abs(view), true_va=np.where(np.isnan(stored), computed, stored),
                  sun_azimuth=field("sun_azimuth"), sun_elevation=field("sun_elevation"))


def azimuth_difference(a, b) -> np.ndarray:
    """|a − b| of azimuths in degrees on the circle (0–180)."""
    return np.abs((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) + 180.0) % 360.0 - 180.0)


@dataclasses.dataclass(frozen=True)
class GroupRules:
    """Common-perspective rules: tolerances in degrees, ``min_days`` in days; sun tolerances None =
    illumination not matched."""

    tolerance: float = DEFAULT_TOLERANCE
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    min_days: float = 0.0
    sun_azimuth_tolerance: Optional[float] = None
    sun_elevation_tolerance: Optional[float] = None

    def check(self) -> None:
        if not math.isfinite(self.tolerance) or self.tolerance < 0:
            raise UserInputError(f"The view-angle tolerance must be >= 0 degrees; got {self.tolerance}.")
        if int(self.min_group_size) != self.min_group_size or self.min_group_size < 1:
            raise UserInputError(f"The minimum group size must be a whole number >= 1; got {self.min_group_size}.")
        if not math.isfinite(self.min_days) or self.min_days < 0:
            raise UserInputError(f"The minimum time between group members must be >= 0 days; got {self.min_days}.")
        for label, value in (("sun azimuth", self.sun_azimuth_tolerance),
                             ("sun elevation", self.sun_elevation_tolerance)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise UserInputError(f"The {label} tolerance must be >= 0 degrees; got {value}.")

    @property
    def illumination(self) -> bool:
        return self.sun_azimuth_tolerance is not None or self.sun_elevation_tolerance is not None


def perspective_groups(scenes: Scenes, rules: GroupRules = GroupRules()) -> np.ndarray:
    """Group id of every scene (input order; :data:`NO_GROUP` = none) by the rule of the module
    docstring. Independent of the order of ``scenes``."""
    rules.check()
    n = len(scenes)
    groups = np.full(n, NO_GROUP, dtype=np.int64)
    usable = np.isfinite(scenes.true_va)
    if rules.sun_azimuth_tolerance is not None:
        usable &= np.isfinite(scenes.sun_azimuth)
    if rules.sun_elevation_tolerance is not None:
        usable &= np.isfinite(scenes.sun_elevation)
    sweep = sorted(np.flatnonzero(usable), key=lambda i: (scenes.true_va[i], scenes.acquired[i], scenes.ids[i]))
    free = np.zeros(n, dtype=bool)
    free[usable] = True
    next_id = 1
    for opener in sweep:
        while free[opener]:
            members = _window(scenes, rules, opener, free)
            kept = _thinned(scenes, members, rules.min_days)
            if len(kept) >= rules.min_group_size:
                groups[kept] = next_id
                free[kept] = False
                next_id += 1
            else:
                free[opener] = False  # rejected: in no group
    return groups


def _window(scenes: Scenes, rules: GroupRules, opener: int, free: np.ndarray) -> np.ndarray:
    """Free scenes within the tolerances of ``opener`` (view angle: upwards only)."""
    delta = scenes.true_va - scenes.true_va[opener]
    inside = free & (delta >= 0.0) & (delta <= rules.tolerance + 1e-9)
    if rules.sun_azimuth_tolerance is not None:
        inside &= azimuth_difference(scenes.sun_azimuth, scenes.sun_azimuth[opener]) \
            <= rules.sun_azimuth_tolerance + 1e-9
    if rules.sun_elevation_tolerance is not None:
        inside &= np.abs(scenes.sun_elevation - scenes.sun_elevation[opener]) <= rules.sun_elevation_tolerance + 1e-9
    return np.flatnonzero(inside)


def _thinned(scenes: Scenes, members: np.ndarray, min_days: float) -> np.ndarray:
    """``members`` in time order, each at least ``min_days`` after the previous kept one."""
    ordered = sorted(members, key=lambda i: (scenes.acquired[i], scenes.ids[i]))
    kept: List[int] = []
    for index in ordered:
        if not kept or scenes.days[index] - scenes.days[kept[-1]] >= min_days - 1e-9:
            kept.append(index)
    return np.array(kept, dtype=np.int64)


def group_records(records: Sequence[Mapping[str, Any]], rules: GroupRules = GroupRules(),
                  scan_line_azimuth: float = DEFAULT_SCAN_LINE_AZIMUTH) -> List[int]:
    """Group ids of footprint ``records`` (input order) — :func:`perspective_groups` on the records."""
    return [int(g) for g in perspective_groups(scenes_from_records(records, scan_line_azimuth), rules)]


def suggest_dem_pairs(scenes: Scenes, min_view_angle: float = DEFAULT_DEM_MIN_VIEW_ANGLE,
                      max_days: float = DEFAULT_DEM_MAX_DAYS) -> List[Dict[str, Any]]:
    """Stereo pairs for a DEM (REFERENCE §3): among scenes with view angle ≥ ``min_view_angle``
    (degrees), each scene (in time order) with the newer scene 0 < dt ≤ ``max_days`` days later
    whose |Δ true view angle| is largest (ties: the earlier, then the smaller id). Rows with
    :data:`DEM_PAIR_COLUMNS`: ``img1`` older, ``img2`` newer, dates ISO UTC, ``dt_days``,
    the two true view angles and ``true_va_diff`` = |Δ| (degrees). Scenes without a partner give no row.
    """
    if not math.isfinite(min_view_angle) or min_view_angle < 0:
        raise UserInputError(f"The minimum view angle of DEM pairs must be >= 0 degrees; got {min_view_angle}.")
    if not math.isfinite(max_days) or max_days <= 0:
        raise UserInputError(f"The maximum time between DEM-pair scenes must be > 0 days; got {max_days}.")
    steep = [i for i in range(len(scenes))
             if np.isfinite(scenes.true_va[i]) and scenes.view_angle[i] >= min_view_angle - 1e-9]
    ordered = sorted(steep, key=lambda i: (scenes.acquired[i], scenes.ids[i]))
    rows = []
    for position, first in enumerate(ordered):
        best, best_key = None, None
        for second in ordered[position + 1:]:
            dt = scenes.days[second] - scenes.days[first]
            if dt > max_days + 1e-9:
                break
            if dt <= 0:
                continue
            key = (-abs(scenes.true_va[second] - scenes.true_va[first]), dt, scenes.ids[second])
            if best_key is None or key < best_key:
                best, best_key = second, key
        if best is not None:
            rows.append({"img1": scenes.ids[first], "img2": scenes.ids[best],
                         "date1": iso_utc(scenes.acquired[first]), "date2": iso_utc(scenes.acquired[best]),
                         "dt_days": float(scenes.days[best] - scenes.days[first]),
                         "true_va1": float(scenes.true_va[first]), "true_va2": float(scenes.true_va[best]),
                         "true_va_diff": float(-best_key[0])})
    return rows
