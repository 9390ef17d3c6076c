"""Common-perspective groups and DEM-pair suggestions (core/planet/groups.py) with hand-built scenes
and known answers: the sweep rule, order independence (the tutorial's greedy grouping is not),
time thinning with the size re-checked, illumination matching, the true view angle recomputed from
the satellite azimuth, and the DEM pairs of REFERENCE §3."""
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from surface_motion.core.errors import UserInputError
from surface_motion.core.planet.groups import (NO_GROUP, GroupRules, azimuth_difference, group_records,
                                               perspective_groups, scenes_from_records, suggest_dem_pairs)


def scene(index, true_va, day, sun_az=150.0, sun_el=40.0, view=None, sat_az=None):
    """A footprint record acquired ``day`` whole days after 2021-01-01 10:00 UTC (SuperDove-style id)."""
    when = datetime(2021, 1, 1, 10, tzinfo=timezone.utc) + timedelta(days=day)
    return {"id": f"{when:%Y%m%d_%H%M%S}_{index:02d}_24a{index % 10}", "acquired": f"{when:%Y-%m-%dT%H:%M:%S}Z",
            "view_angle": abs(true_va) if view is None else view, "true_view_angle": true_va,
            "satellite_azimuth": sat_az, "sun_azimuth": sun_az, "sun_elevation": sun_el}


def groups_of(records, **rules):
    """{group id: sorted ids} of the groups (scenes in no group left out)."""
    ids = group_records(records, GroupRules(**rules))
    result = {}
    for record, group in zip(records, ids):
        if group != NO_GROUP:
            result.setdefault(group, []).append(record["id"])
    return {g: sorted(members) for g, members in result.items()}


def tutorial_greedy_groups(records, tolerance, min_group_size, min_days=0.0):
    """The tutorial's grouping (REFERENCE §3, 'original'), re-implemented to show its order
    dependence: greedy over the records in input order; candidates = ungrouped scenes within
    ±tolerance of the visited one; a group if ≥ min size; then time thinning without re-check."""
    scenes = scenes_from_records(records)
    free = [True] * len(records)
    groups = []
    for i in range(len(records)):
        if not free[i]:
            continue
        candidates = [j for j in range(len(records))
                      if free[j] and abs(scenes.true_va[j] - scenes.true_va[i]) <= tolerance + 1e-9]
        if len(candidates) < min_group_size:
            continue
        for j in candidates:
            free[j] = False
        candidates.sort(key=lambda j: scenes.days[j])
        kept = [candidates[0]]
        for j in candidates[1:]:
            if scenes.days[j] - scenes.days[kept[-1]] >= min_days:
                kept.append(j)
        groups.append(sorted(records[j]["id"] for j in kept))
    return sorted(groups)


# --------------------------------------------------------------------------- the sweep rule

def test_two_perspectives_give_two_groups_and_the_stray_scene_none():
    records = ([scene(i, 3.0 + 0.05 * i, 40 * i) for i in range(5)]          # 3.00 … 3.20
               + [scene(10 + i, -4.0 + 0.1 * i, 40 * i + 3) for i in range(5)]  # −4.0 … −3.6
               + [scene(20, 9.0, 7)])
    ids = group_records(records, GroupRules(tolerance=0.5, min_group_size=5))
    assert ids == [2] * 5 + [1] * 5 + [NO_GROUP]  # numbered in sweep order: smallest true view angle first


def test_members_differ_by_at_most_the_tolerance():
    """0.0, 0.3, 0.6 with tolerance 0.3: {0.0, 0.3} is a group, 0.6 is not (0.6 − 0.0 > 0.3)."""
    records = [scene(0, 0.6, 0), scene(1, 0.0, 50), scene(2, 0.3, 100)]
    assert group_records(records, GroupRules(tolerance=0.3, min_group_size=2)) == [NO_GROUP, 1, 1]


def test_a_rejected_opener_lets_the_next_scene_open_a_window():
    """Window at 0.0 holds 3 (< 4) scenes → 0.0 rejected; the window at 0.45 holds 4 → a group."""
    values = [0.0, 0.45, 0.5, 0.8, 0.9]
    records = [scene(i, v, 10 * i) for i, v in enumerate(values)]
    assert group_records(records, GroupRules(tolerance=0.5, min_group_size=4)) == [NO_GROUP, 1, 1, 1, 1]


def test_scenes_without_angles_are_in_no_group():
    records = [scene(i, 1.0, 10 * i) for i in range(3)]
    records[1]["true_view_angle"] = None  # and no satellite azimuth to compute it from
    assert group_records(records, GroupRules(min_group_size=2)) == [1, NO_GROUP, 1]


# --------------------------------------------------------------------------- order independence

def test_shuffling_changes_the_tutorials_groups_but_not_ours():
    records = [scene(0, 0.0, 0), scene(1, 0.3, 60), scene(2, 0.6, 120), scene(3, 0.9, 180)]
    by_angle = tutorial_greedy_groups(records, 0.3, 2)
    middle_first = tutorial_greedy_groups([records[1], records[0], records[2], records[3]], 0.3, 2)
    assert by_angle == [sorted([records[0]["id"], records[1]["id"]]), sorted([records[2]["id"], records[3]["id"]])]
    assert middle_first == [sorted([records[0]["id"], records[1]["id"], records[2]["id"]])]  # spans 2 × 0.3
    expected = {1: sorted([records[0]["id"], records[1]["id"]]), 2: sorted([records[2]["id"], records[3]["id"]])}
    rng = random.Random(7)
    for _ in range(20):
        shuffled = records[:]
        rng.shuffle(shuffled)
        assert groups_of(shuffled, tolerance=0.3, min_group_size=2) == expected


def test_random_scenes_in_any_order_give_the_same_groups():
    rng = np.random.default_rng(3)
    records = [scene(i, float(rng.choice([-4.0, 2.0, 5.0]) + rng.normal(0, 0.2)), float(rng.uniform(0, 700)),
                     sun_az=float(rng.uniform(140, 160)), sun_el=float(rng.uniform(30, 50))) for i in range(60)]
    rules = dict(tolerance=0.3, min_group_size=4, min_days=20, sun_azimuth_tolerance=5, sun_elevation_tolerance=5)
    reference = groups_of(records, **rules)
    assert len(reference) >= 3
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert groups_of(shuffled, **rules) == reference
        assert groups_of(shuffled[::-1], **rules) == reference


# --------------------------------------------------------------------------- time thinning

def test_min_days_thins_and_the_size_is_checked_again():
    """Five scenes 10 days apart, min_days 25: kept days 0 and 30 (20 and 40 are too close) → 2 < 3 →
    no group, where the tutorial keeps its thinned group of 2."""
    records = [scene(i, 1.0, day) for i, day in enumerate([0, 10, 20, 30, 40])]
    assert group_records(records, GroupRules(tolerance=0.3, min_group_size=3, min_days=25)) == [NO_GROUP] * 5
    assert tutorial_greedy_groups(records, 0.3, 3, min_days=25) == [sorted([records[0]["id"], records[3]["id"]])]


def test_thinned_out_scenes_form_a_second_group_of_the_same_perspective():
    """Scenes every 15 days, min_days 30: days 0, 30, 60, 90 form group 1; 15, 45, 75 group 2."""
    records = [scene(i, 2.0, 15 * i) for i in range(7)]
    assert group_records(records, GroupRules(tolerance=0.3, min_group_size=3, min_days=30)) == [1, 2, 1, 2, 1, 2, 1]


def test_min_days_boundary_is_inclusive():
    records = [scene(i, 2.0, 30 * i) for i in range(3)]
    assert group_records(records, GroupRules(min_group_size=3, min_days=30)) == [1, 1, 1]
    assert group_records(records, GroupRules(min_group_size=3, min_days=30.5)) == [NO_GROUP] * 3


# --------------------------------------------------------------------------- illumination

def test_illumination_splits_a_view_angle_group_by_sun_angles():
    records = ([scene(i, 1.0 + 0.02 * i, 10 * i, sun_az=150 + i, sun_el=40) for i in range(3)]
               + [scene(3 + i, 1.05 + 0.02 * i, 10 * i + 5, sun_az=170 + i, sun_el=40) for i in range(3)]
               + [scene(6, 1.1, 100, sun_az=151, sun_el=55)])
    assert group_records(records, GroupRules(tolerance=0.5, min_group_size=3)) == [1] * 7
    matched = group_records(records, GroupRules(tolerance=0.5, min_group_size=3, sun_azimuth_tolerance=5,
                                                sun_elevation_tolerance=5))
    assert matched == [1, 1, 1, 2, 2, 2, NO_GROUP]  # sun 20° apart in azimuth; 15° higher sun alone


def test_sun_azimuth_difference_wraps_around_north():
    assert azimuth_difference([359.0, 10.0, 180.0], [1.0, 350.0, 0.0]).tolist() == [2.0, 20.0, 180.0]


# --------------------------------------------------------------------------- true view angle

def test_true_view_angle_is_computed_where_the_layer_lacks_it():
    """Satellite azimuth 100° (east of a 10° scan line) → +5; 200° and 5° (west) → −5; with a 12°
    scan line 195° is still east → +5 (REFERENCE §3 sign rule)."""
    records = [scene(i, None, 10 * i, view=5.0, sat_az=az) for i, az in enumerate([100.0, 200.0, 5.0, 195.0])]
    for record in records:
        record["true_view_angle"] = None
    assert scenes_from_records(records).true_va.tolist() == [5.0, -5.0, -5.0, -5.0]
    assert scenes_from_records(records, scan_line_azimuth=16.0).true_va.tolist() == [5.0, -5.0, -5.0, 5.0]
    stored = dict(records[0], true_view_angle=-3.0)
    assert scenes_from_records([stored]).true_va.tolist() == [-3.0]  # the layer's value wins


def test_duplicate_ids_and_bad_times_are_refused():
    record = scene(0, 1.0, 0)
    with pytest.raises(UserInputError, match=r"occurs twice in the footprints \(features 1 and 2\)"):
        scenes_from_records([record, dict(record)])
    with pytest.raises(UserInputError, match=r"acquisition time \(field 'acquired'\) is unreadable"):
        scenes_from_records([dict(record, acquired="yesterday")])
    with pytest.raises(UserInputError, match="no scene id"):
        scenes_from_records([dict(record, id="")])
    with pytest.raises(UserInputError, match="minimum group size must be a whole number >= 1"):
        perspective_groups(scenes_from_records([record]), GroupRules(min_group_size=0))


# --------------------------------------------------------------------------- DEM pairs

def test_dem_pairs_take_the_largest_view_angle_difference_within_max_days():
    records = [scene(0, -5.0, 0), scene(1, 4.0, 5), scene(2, 6.0, 10), scene(3, -5.5, 20),
               scene(4, 5.5, 45), scene(5, 2.0, 47)]
    rows = suggest_dem_pairs(scenes_from_records(records), min_view_angle=5.0, max_days=30.0)
    # scene 1 (4°) and 5 (2°) are below 5°; 0 → 2 (11°, not 3: 0.5°); 2 → 3 (11.5°); 3 → 4 (11°, 25 d)
    assert [(r["img1"], r["img2"]) for r in rows] == [(records[0]["id"], records[2]["id"]),
                                                      (records[2]["id"], records[3]["id"]),
                                                      (records[3]["id"], records[4]["id"])]
    assert [r["true_va_diff"] for r in rows] == [11.0, 11.5, 11.0]
    assert [r["dt_days"] for r in rows] == [10.0, 10.0, 25.0]
    assert rows[0]["date1"] == "2021-01-01T10:00:00.000000Z" and rows[0]["true_va2"] == 6.0


def test_dem_pairs_need_a_newer_scene_within_max_days():
    records = [scene(0, -6.0, 0), scene(1, 6.0, 31)]
    assert suggest_dem_pairs(scenes_from_records(records), max_days=30.0) == []
    assert len(suggest_dem_pairs(scenes_from_records(records), max_days=31.0)) == 1
    with pytest.raises(UserInputError, match="must be > 0 days"):
        suggest_dem_pairs(scenes_from_records(records), max_days=0)


# --------------------------------------------------------------------------- pairs within groups (core)

def test_footprint_pairs_per_group_in_reference_mode_and_left_out_scenes():
    from surface_motion.core.offsets.pairs import Footprint, build_footprint_pairs

    names = ["20200101_100000_01_24a1", "20200301_100000_02_24a2", "20200501_100000_03_24a3",
             "20200701_100000_04_24a4", "20200901_100000_05_24a5"]
    paths = [f"/data/{name}_3B_AnalyticMS_SR_clip_b2.tif" for name in names]
    groups = [1, 2, 1, 1, -1]
    footprints = {name: Footprint(true_va=float(k), sun_azimuth=350.0 + 5 * k, sun_elevation=30.0 + k, group=g)
                  for k, (name, g) in enumerate(zip(names, groups))}
    table, left_out = build_footprint_pairs(paths, footprints, lambda ref, sec: 50.0, mode="reference")
    # group 1 = scenes 0, 2, 3 with the oldest (0) as reference; scene 1 is alone in group 2, scene 4 in none
    assert list(zip(table["ref_id"], table["sec_id"])) == [(names[0], names[2]), (names[0], names[3])]
    assert table["true_va_diff"].tolist() == [2.0, 3.0] and table["sun_az_diff"].tolist() == [10.0, 15.0]
    assert table["sun_elev_diff"].tolist() == [2.0, 3.0] and table["overlap_pct"].tolist() == [50.0, 50.0]
    assert table["group"].tolist() == [1, 1] and left_out == [names[1], names[4]]
