"""Image pair tables from PlanetScope scene names (REFERENCE §3).

A pair is (ref, sec): the correlator looks for each reference feature in the
secondary image. ``dt_days`` = time of sec minus time of ref in fractional
days from the full UTC timestamps (signed: negative when sec is older).
"""
from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from ..choices import Choices
from ..errors import UserInputError
from ..io import atomic_file, verify
from .planetscope import SceneId, days_between, find_scene_ids, iso_utc, parse_scene_id

PAIR_COLUMNS = ["ref", "sec", "ref_id", "sec_id", "ref_date", "sec_date", "dt_days"]
#: Columns added when the pairs come from a Planet footprints/groups layer (REFERENCE §3): true view
#: angles (deg, signed) and the absolute differences of true view angle, sun azimuth and sun elevation
#: (deg), overlap_pct = area(ref ∩ sec) / area(ref) x 100 (equal-area CRS), group id (-1/None = none).
FOOTPRINT_COLUMNS = ["true_va_ref", "true_va_sec", "true_va_diff", "sun_az_diff", "sun_elev_diff", "overlap_pct",
                     "group"]
MODES = Choices(("all", "All pairs older -> newer"), ("reference", "One reference (oldest scene)"))

# Timestamps have 10 ms resolution (1.2e-7 d); this tolerance only absorbs float
# rounding so that dt limits typed by the user are inclusive at exact boundaries.
_DT_TOLERANCE_DAYS = 1e-9

Scene = Tuple[str, SceneId]  # (absolute path, parsed id)


def list_scenes(folder: str, pattern: str = "*_b2.tif") -> List[str]:
    """Sorted absolute paths of the files in ``folder`` matching the glob ``pattern``."""
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise UserInputError(f"The scene folder '{folder}' does not exist. Choose an existing folder.")
    paths = sorted(p for p in glob.glob(os.path.join(folder, pattern)) if os.path.isfile(p))
    if not paths:
        raise UserInputError(
            f"No file in '{folder}' matches the pattern '{pattern}'. Check the pattern "
            "(e.g. *_b2.tif for the output of surfacemotion:extractband) or the folder.")
    return paths


def build_pairs(paths: Sequence[str], mode: str = "all", dt_min_days: float = 0.0,
                dt_max_days: Optional[float] = None, reference: Optional[str] = None) -> pd.DataFrame:
    """Pair table (columns :data:`PAIR_COLUMNS`) of the scenes in ``paths``.

    * ``mode="all"``: every scene with every *later* scene (n(n-1)/2 pairs,
      ref older than sec, never reversed duplicates).
    * ``mode="reference"``: ``reference`` (a path or a scene id; default the
      oldest scene) as ref against every other scene; dt_days is negative for
      scenes older than the reference.

    Pairs are kept when ``dt_min_days <= |dt_days| <= dt_max_days`` (inclusive;
    ``dt_max_days=None`` = no upper limit). Rows are in chronological order of
    ref, then sec. No pair within the limits gives an empty table, not an error.
    """
    MODES.check(mode, "pairing mode")
    _check_dt_limits(dt_min_days, dt_max_days)
    scenes = _parse_scenes(paths)
    if mode == "all":
        candidates = [(scenes[i], scenes[j]) for i in range(len(scenes)) for j in range(i + 1, len(scenes))]
    else:
        ref = _find_reference(scenes, reference)
        candidates = [(ref, other) for other in scenes if other is not ref]
    rows = [_pair_row(ref, sec) for ref, sec in candidates]
    rows = [row for row in rows if _within(abs(row["dt_days"]), dt_min_days, dt_max_days)]
    return _table(rows)


@dataclass(frozen=True)
class Footprint:
    """What the pair table needs of a scene's footprint: angles in degrees, group id (None = the layer
    has no groups, -1 = in no group)."""

    true_va: float
    sun_azimuth: float
    sun_elevation: float
    group: Optional[int] = None


def build_footprint_pairs(paths: Sequence[str], footprints: Mapping[str, Footprint],
                          overlap_pct: Callable[[str, str], float], mode: str = "all", dt_min_days: float = 0.0,
                          dt_max_days: Optional[float] = None) -> Tuple[pd.DataFrame, List[str]]:
    """Pairs (:func:`build_pairs`) only between scenes of the same group of a footprints layer, with
    :data:`FOOTPRINT_COLUMNS` added; ``footprints`` maps Planet scene ids to :class:`Footprint`,
    ``overlap_pct(ref_id, sec_id)`` gives the overlap in %.

    Scenes are matched to footprints by the scene id at the start of their file names; a scene
    without a footprint is refused. Without groups (every ``group`` None) all scenes form one set.
    Scenes in no group are left out. Each group is paired on its own (``mode="reference"``: the
    oldest scene of each group); rows by group, then chronologically. Returns (table, ids of the
    scenes left out).
    """
    MODES.check(mode, "pairing mode")
    _check_dt_limits(dt_min_days, dt_max_days)
    scenes = _parse_scenes(paths)
    absent = [scene.scene_id for _, scene in scenes if scene.scene_id not in footprints]
    if absent:
        raise UserInputError(
            f"{len(absent)} scene(s) have no footprint in the footprints layer: {', '.join(absent[:10])}"
            + (" ..." if len(absent) > 10 else "") + ". Give the footprints layer of the search these scenes "
            "come from, or leave these scenes out.")
    buckets: dict = {}
    left_out = []
    for path, scene in scenes:
        group = footprints[scene.scene_id].group
        if group is not None and group < 0:
            left_out.append(scene.scene_id)
            continue
        buckets.setdefault(group, []).append(path)
    tables = []
    for group in sorted(buckets, key=lambda g: -1 if g is None else g):
        if len(buckets[group]) < 2:
            left_out.extend(parse_scene_id(path).scene_id for path in buckets[group])
            continue
        table = build_pairs(buckets[group], mode, dt_min_days, dt_max_days)
        tables.append(_with_footprint_columns(table, footprints, overlap_pct, group))
    if not tables:
        return _with_footprint_columns(_table([]), footprints, overlap_pct, None), sorted(left_out)
    return pd.concat(tables, ignore_index=True), sorted(left_out)


def _with_footprint_columns(table: pd.DataFrame, footprints: Mapping[str, Footprint],
                            overlap_pct: Callable[[str, str], float], group: Optional[int]) -> pd.DataFrame:
    ref = [footprints[i] for i in table["ref_id"]]
    sec = [footprints[i] for i in table["sec_id"]]
    table = table.copy()
    table["true_va_ref"] = [float(f.true_va) for f in ref]
    table["true_va_sec"] = [float(f.true_va) for f in sec]
    table["true_va_diff"] = (table["true_va_sec"] - table["true_va_ref"]).abs()
    table["sun_az_diff"] = [abs((b.sun_azimuth - a.sun_azimuth + 180.0) % 360.0 - 180.0) for a, b in zip(ref, sec)]
    table["sun_elev_diff"] = [abs(b.sun_elevation - a.sun_elevation) for a, b in zip(ref, sec)]
    table["overlap_pct"] = [float(overlap_pct(a, b)) for a, b in zip(table["ref_id"], table["sec_id"])]
    table["group"] = pd.array([group] * len(table), dtype="Int64")
    for column in FOOTPRINT_COLUMNS[:-1]:
        table[column] = table[column].astype(float)
    return table


def _check_dt_limits(dt_min_days: float, dt_max_days: Optional[float]) -> None:
    if not math.isfinite(dt_min_days) or dt_min_days < 0:
        raise UserInputError(f"The minimum time separation must be a number >= 0 days; got {dt_min_days}.")
    if dt_max_days is None:
        return
    if math.isnan(dt_max_days):
        raise UserInputError("The maximum time separation is not a number; leave it empty for no limit.")
    if dt_min_days > dt_max_days:
        raise UserInputError(
            f"The minimum time separation ({dt_min_days} days) is larger than the maximum "
            f"({dt_max_days} days); lower the minimum or raise the maximum.")


def _parse_scenes(paths: Sequence[str]) -> List[Scene]:
    """Parse, de-duplicate identical paths, validate and sort chronologically (ties by id)."""
    unique_paths = list(dict.fromkeys(os.path.abspath(p) for p in paths))
    scenes = [(path, parse_scene_id(path)) for path in unique_paths]
    if len(scenes) < 2:
        raise UserInputError(
            f"At least 2 scenes are needed to build pairs; got {len(scenes)}"
            + (f" ({scenes[0][0]})." if scenes else ".") + " Add more scenes.")
    _refuse_mixed_forms(scenes)
    _refuse_duplicate_ids(scenes)
    return sorted(scenes, key=lambda scene: (scene[1].acquired, scene[1].scene_id))


def _refuse_mixed_forms(scenes: Sequence[Scene]) -> None:
    first_of_form = {}
    for path, scene in scenes:
        first_of_form.setdefault(scene.id_form, path)
    if len(first_of_form) > 1:
        raise UserInputError(
            "The scenes mix sensors: 3-token PS2 (Dove Classic) ids, e.g. "
            f"'{first_of_form['PS2']}', and 4-token SuperDove (PS2.SD/PSB.SD) ids, e.g. "
            f"'{first_of_form['SD']}'. Their bands and geometry differ; pair scenes of one sensor only.")


def _refuse_duplicate_ids(scenes: Sequence[Scene]) -> None:
    seen = {}
    for path, scene in scenes:
        if scene.scene_id in seen:
            raise UserInputError(
                f"The scene id {scene.scene_id} occurs twice: '{seen[scene.scene_id]}' and '{path}'. "
                "Keep one file per scene (e.g. one band of one product).")
        seen[scene.scene_id] = path


def _find_reference(scenes: Sequence[Scene], reference: Optional[str]) -> Scene:
    """The scene given by path or scene id; the oldest one when ``reference`` is None."""
    if reference is None or str(reference).strip() == "":
        return scenes[0]
    wanted = str(reference).strip()
    for scene in scenes:
        if scene[0] == os.path.abspath(wanted) or scene[1].scene_id == wanted:
            return scene
    raise UserInputError(
        f"The reference scene '{reference}' is not among the {len(scenes)} input scenes; "
        "give the path or scene id of one of them, or leave it empty to use the oldest.")


def _pair_row(ref: Scene, sec: Scene) -> dict:
    (ref_path, ref_id), (sec_path, sec_id) = ref, sec
    return {
        "ref": ref_path,
        "sec": sec_path,
        "ref_id": ref_id.scene_id,
        "sec_id": sec_id.scene_id,
        "ref_date": iso_utc(ref_id.acquired),
        "sec_date": iso_utc(sec_id.acquired),
        "dt_days": days_between(ref_id.acquired, sec_id.acquired),
    }


def _within(dt: float, dt_min: float, dt_max: Optional[float]) -> bool:
    if dt < dt_min - _DT_TOLERANCE_DAYS:
        return False
    return dt_max is None or dt <= dt_max + _DT_TOLERANCE_DAYS


def _table(rows: List[dict]) -> pd.DataFrame:
    """DataFrame with exactly :data:`PAIR_COLUMNS` (strings + float dt_days), even when empty."""
    return _table_with_types(pd.DataFrame(rows, columns=PAIR_COLUMNS))


def write_pair_table(df: pd.DataFrame, csv_path: str) -> str:
    """Write ``df`` as CSV (columns :data:`PAIR_COLUMNS`, then those of :data:`FOOTPRINT_COLUMNS` it has;
    dt_days with 6 decimals); return the path."""
    missing = [column for column in PAIR_COLUMNS if column not in df.columns]
    if missing:
        raise UserInputError(f"The pair table lacks the column(s) {missing}; it has {list(df.columns)}.")
    columns = PAIR_COLUMNS + [column for column in FOOTPRINT_COLUMNS if column in df.columns]
    out = df[columns].copy()
    out["dt_days"] = [f"{value:.6f}" if pd.notna(value) else "" for value in out["dt_days"].astype(float)]
    csv_path = os.path.abspath(csv_path)
    with atomic_file(csv_path, verify=verify.csv_rows(len(out), columns)) as tmp:
        out.to_csv(tmp, index=False)
    return csv_path


def read_pair_table(csv_path: str) -> pd.DataFrame:
    """Read a pair CSV: ours, or the tutorials' ``all_matches.csv`` with only ``ref,sec``.

    Relative paths are resolved against the CSV's folder. Missing id/date/dt
    columns are filled from PlanetScope ids in the file names; names without an
    id get empty ids/dates and a NaN dt_days (the velocity step then asks for dates).
    """
    csv_path = os.path.abspath(csv_path)
    if not os.path.isfile(csv_path):
        raise UserInputError(f"The pair table '{csv_path}' does not exist. Check the path.")
    try:
        raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserInputError(f"Cannot read the pair table '{csv_path}' as CSV: {exc}") from exc
    return pair_table_from_text(raw, os.path.dirname(csv_path), f"The pair table '{csv_path}'")


def pair_table_from_text(raw: pd.DataFrame, folder: str, what: str = "The pair table") -> pd.DataFrame:
    """A pair table (:data:`PAIR_COLUMNS` first) from rows of text with at least ``ref`` and ``sec``.

    Used for CSV files and for table layers alike: relative paths are resolved against
    ``folder``; missing id/date/dt columns are filled from PlanetScope ids in the file names;
    ``what`` names the source in error messages (rows are counted as CSV lines).
    """
    raw = raw.copy()
    raw.columns = [str(column).strip() for column in raw.columns]
    missing = [column for column in ("ref", "sec") if column not in raw.columns]
    if missing:
        raise UserInputError(
            f"{what} lacks the column(s) {missing}; columns found: "
            f"{list(raw.columns)}. It needs 'ref' and 'sec' (paths of the reference and secondary images).")
    for column in ("ref", "sec"):
        empty = [index + 2 for index, value in enumerate(raw[column]) if value is None or not str(value).strip()]
        if empty:
            raise UserInputError(
                f"{what} has an empty '{column}' on line(s) {empty[:10]}; "
                "every row needs a reference and a secondary image path.")
    raw = raw.astype(str).where(raw.notna(), "")
    table = pd.DataFrame({
        "ref": [_resolve(path, folder) for path in raw["ref"]],
        "sec": [_resolve(path, folder) for path in raw["sec"]],
    })
    absent = [column for column in PAIR_COLUMNS[2:] if column not in raw.columns]
    from_names = [_names_row(ref, sec) for ref, sec in zip(table["ref"], table["sec"])] if absent else []
    for index, column in enumerate(PAIR_COLUMNS[2:]):
        if column in absent:
            table[column] = [row[index] for row in from_names]
        elif column == "dt_days":
            table[column] = pd.to_numeric(raw[column].replace("", "nan"), errors="coerce")
        else:
            table[column] = raw[column]
    for column in raw.columns:
        if column not in PAIR_COLUMNS:
            table[column] = raw[column]
    return _table_with_types(table)


def _resolve(path: str, folder: str) -> str:
    path = os.path.expanduser(str(path).strip())
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(folder, path))


def _names_row(ref: str, sec: str) -> tuple:
    """(ref_id, sec_id, ref_date, sec_date, dt_days) from the file names, if they carry ids."""
    ref_id, sec_id = _id_of(ref), _id_of(sec)
    if ref_id is None or sec_id is None:
        return ("", "", "", "", float("nan"))
    return (ref_id.scene_id, sec_id.scene_id, iso_utc(ref_id.acquired), iso_utc(sec_id.acquired),
            days_between(ref_id.acquired, sec_id.acquired))


def _id_of(path: str) -> Optional[SceneId]:
    """Scene id at the start of the name (with level), else the first id anywhere in it."""
    try:
        return parse_scene_id(path)
    except UserInputError:
        found = find_scene_ids(path)
        return found[0] if found else None


def _table_with_types(table: pd.DataFrame) -> pd.DataFrame:
    """:data:`PAIR_COLUMNS` first (text as object, dt_days float), then any extra columns."""
    for column in PAIR_COLUMNS[:-1]:
        table[column] = table[column].astype(object)
    table["dt_days"] = table["dt_days"].astype(float)
    return table[PAIR_COLUMNS + [c for c in table.columns if c not in PAIR_COLUMNS]]
