"""Tests of core.offsets.pairs: pair rules, dt limits, reference mode, CSV files."""
import os

import pandas as pd
import pytest

from core.errors import UserInputError
from core.offsets.pairs import PAIR_COLUMNS, build_pairs, list_scenes, read_pair_table, write_pair_table

SUFFIX = "_3B_AnalyticMS_SR_clip_b2.tif"

# PS2 scenes at 0, 10.5, 20, 30.5 days after 2020-01-01 00:00:00 UTC (given out of order)
PS2_IDS = ["20200121_000000_1014", "20200101_000000_1014", "20200131_120000_0f4e", "20200111_120000_1020"]
PS2_DAYS = {"20200101_000000_1014": 0.0, "20200111_120000_1020": 10.5,
            "20200121_000000_1014": 20.0, "20200131_120000_0f4e": 30.5}


def touch(folder, name):
    path = os.path.join(str(folder), name)
    with open(path, "w"):
        pass
    return path


def scene_files(folder, ids, suffix=SUFFIX):
    return [touch(folder, scene_id + suffix) for scene_id in ids]


def test_list_scenes_sorted_absolute_and_pattern(tmp_path):
    files = scene_files(tmp_path, PS2_IDS)
    touch(tmp_path, "20200101_000000_1014_3B_AnalyticMS_SR_clip.tif")  # not *_b2.tif
    listed = list_scenes(str(tmp_path))
    assert listed == sorted(files)
    assert all(os.path.isabs(p) for p in listed)
    assert len(list_scenes(str(tmp_path), "*.tif")) == 5


def test_list_scenes_errors(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        list_scenes(str(tmp_path / "missing"))
    scene_files(tmp_path, PS2_IDS)
    with pytest.raises(UserInputError, match=r"\*_b3\.tif"):
        list_scenes(str(tmp_path), "*_b3.tif")


def test_all_pairs_count_order_and_dt(tmp_path):
    table = build_pairs(scene_files(tmp_path, PS2_IDS))
    assert list(table.columns) == PAIR_COLUMNS
    assert len(table) == 4 * 3 // 2
    pairs = list(zip(table.ref_id, table.sec_id))
    assert pairs == [
        ("20200101_000000_1014", "20200111_120000_1020"), ("20200101_000000_1014", "20200121_000000_1014"),
        ("20200101_000000_1014", "20200131_120000_0f4e"), ("20200111_120000_1020", "20200121_000000_1014"),
        ("20200111_120000_1020", "20200131_120000_0f4e"), ("20200121_000000_1014", "20200131_120000_0f4e")]
    assert not any((sec, ref) in pairs for ref, sec in pairs)
    assert list(table.dt_days) == [10.5, 20.0, 30.5, 9.5, 20.0, 10.5]
    assert all(table.ref_date < table.sec_date)
    assert table.ref_date.iloc[3] == "2020-01-11T12:00:00.000000Z"
    assert table.ref.iloc[0] == os.path.join(str(tmp_path), "20200101_000000_1014" + SUFFIX)


def test_five_superdove_scenes_give_ten_pairs(tmp_path):
    ids = [f"2022{month:02d}07_140709_{month * 7:02d}_24a3" for month in range(1, 6)]
    table = build_pairs(scene_files(tmp_path, ids[::-1]))
    assert len(table) == 10
    assert (table.dt_days > 0).all()


def test_dt_limits_inclusive_at_exact_boundaries(tmp_path):
    table = build_pairs(scene_files(tmp_path, PS2_IDS), dt_min_days=10.5, dt_max_days=20.0)
    # dts are 10.5, 20, 30.5, 9.5, 20, 10.5: 10.5 and 20 kept at both ends
    assert sorted(table.dt_days) == [10.5, 10.5, 20.0, 20.0]
    only_max = build_pairs(scene_files(tmp_path, PS2_IDS), dt_max_days=9.5)
    assert list(only_max.dt_days) == [9.5]


def test_dt_limits_with_hundredths_of_a_second(tmp_path):
    ids = ["20220101_000000_00_24a3", "20220111_120000_64_24a3"]
    exact = 10.5 + 0.64 / 86400.0
    files = scene_files(tmp_path, ids)
    assert build_pairs(files).dt_days.iloc[0] == pytest.approx(exact, abs=1e-12)
    assert len(build_pairs(files, dt_min_days=exact, dt_max_days=exact)) == 1
    assert len(build_pairs(files, dt_min_days=exact + 1e-6)) == 0   # 0.0864 s more: out
    assert len(build_pairs(files, dt_max_days=exact - 1e-6)) == 0
    assert len(build_pairs(files, dt_min_days=10.5, dt_max_days=10.5)) == 0  # 0.64 s above 10.5 d


def test_reference_mode_oldest(tmp_path):
    table = build_pairs(scene_files(tmp_path, PS2_IDS), mode="reference")
    assert len(table) == 3
    assert set(table.ref_id) == {"20200101_000000_1014"}
    assert list(table.sec_id) == ["20200111_120000_1020", "20200121_000000_1014", "20200131_120000_0f4e"]
    assert list(table.dt_days) == [10.5, 20.0, 30.5]


def test_reference_mode_user_reference_by_id_and_path_gives_signed_dt(tmp_path):
    files = scene_files(tmp_path, PS2_IDS)
    by_id = build_pairs(files, mode="reference", reference="20200121_000000_1014")
    by_path = build_pairs(files, mode="reference", reference=files[0])
    pd.testing.assert_frame_equal(by_id, by_path)
    assert set(by_id.ref_id) == {"20200121_000000_1014"}
    assert list(by_id.sec_id) == ["20200101_000000_1014", "20200111_120000_1020", "20200131_120000_0f4e"]
    assert list(by_id.dt_days) == [-20.0, -9.5, 10.5]
    within = build_pairs(files, mode="reference", reference="20200121_000000_1014", dt_min_days=10.0)
    assert list(within.dt_days) == [-20.0, 10.5]   # |dt| filtered, sign kept


def test_empty_result_is_an_empty_table(tmp_path):
    table = build_pairs(scene_files(tmp_path, PS2_IDS), dt_min_days=1000.0)
    assert table.empty
    assert list(table.columns) == PAIR_COLUMNS


def test_mixed_sensors_refused_naming_one_file_of_each(tmp_path):
    ps2 = scene_files(tmp_path, ["20200101_000000_1014", "20200301_000000_1014"])
    sd = scene_files(tmp_path, ["20220907_140709_64_24a3"])
    with pytest.raises(UserInputError, match="mix sensors") as info:
        build_pairs(ps2 + sd)
    assert ps2[0] in str(info.value) and sd[0] in str(info.value)


def test_duplicate_scene_id_refused(tmp_path):
    first = touch(tmp_path, "20200101_000000_1014_3B_AnalyticMS_SR_clip_b2.tif")
    second = touch(tmp_path, "20200101_000000_1014_3B_AnalyticMS_clip_b2.tif")
    other = touch(tmp_path, "20200301_000000_1014" + SUFFIX)
    with pytest.raises(UserInputError, match="20200101_000000_1014 occurs twice") as info:
        build_pairs([first, second, other])
    assert first in str(info.value) and second in str(info.value)
    assert len(build_pairs([first, first, other])) == 1   # the same file twice is one scene


@pytest.mark.parametrize("kwargs,pattern", [
    ({"dt_min_days": 30.0, "dt_max_days": 10.0}, "larger than the maximum"),
    ({"dt_min_days": -1.0}, ">= 0 days"),
    ({"mode": "groups"}, "Unknown pairing mode 'groups'"),
    ({"mode": "reference", "reference": "20990101_000000_1014"}, "not among the 4 input scenes"),
])
def test_parameter_errors(tmp_path, kwargs, pattern):
    with pytest.raises(UserInputError, match=pattern):
        build_pairs(scene_files(tmp_path, PS2_IDS), **kwargs)


def test_too_few_scenes_and_bad_names(tmp_path):
    with pytest.raises(UserInputError, match="At least 2 scenes"):
        build_pairs(scene_files(tmp_path, PS2_IDS[:1]))
    bad = touch(tmp_path, "S2_20200101_B02.tif")
    with pytest.raises(UserInputError, match="S2_20200101_B02.tif"):
        build_pairs(scene_files(tmp_path, PS2_IDS) + [bad])


def test_csv_round_trip(tmp_path):
    table = build_pairs(scene_files(tmp_path, ["20220101_000000_00_24a3", "20220111_120000_64_24a3",
                                               "20220301_101010_12_2416"]))
    csv_path = write_pair_table(table, str(tmp_path / "out" / "pairs.csv"))
    assert csv_path == str(tmp_path / "out" / "pairs.csv")
    lines = open(csv_path).read().splitlines()
    assert lines[0] == ",".join(PAIR_COLUMNS)
    assert lines[1].endswith(",2022-01-01T00:00:00.000000Z,2022-01-11T12:00:00.640000Z,10.500007")
    back = read_pair_table(csv_path)
    assert list(back.columns) == PAIR_COLUMNS
    assert list(back.ref) == list(table.ref) and list(back.sec_id) == list(table.sec_id)
    assert list(back.ref_date) == list(table.ref_date)
    assert back.dt_days.tolist() == pytest.approx(table.dt_days.tolist(), abs=5e-7)
    assert os.listdir(tmp_path / "out") == ["pairs.csv"]


def test_empty_table_round_trip(tmp_path):
    empty = build_pairs(scene_files(tmp_path, PS2_IDS), dt_min_days=1000.0)
    back = read_pair_table(write_pair_table(empty, str(tmp_path / "empty.csv")))
    assert back.empty and list(back.columns) == PAIR_COLUMNS


def test_tutorial_ref_sec_csv_with_relative_paths(tmp_path):
    (tmp_path / "L3B").mkdir()
    csv_path = tmp_path / "all_matches.csv"
    csv_path.write_text(
        "ref,sec\n"
        f"L3B/20200101_000000_1014{SUFFIX},L3B/20200111_120000_1020{SUFFIX}\n"
        f"/abs/20200101_000000_1014{SUFFIX},/abs/20200131_120000_0f4e{SUFFIX}\n")
    table = read_pair_table(str(csv_path))
    assert list(table.columns) == PAIR_COLUMNS
    assert table.ref.iloc[0] == os.path.join(str(tmp_path), "L3B", "20200101_000000_1014" + SUFFIX)
    assert table.sec.iloc[1] == "/abs/20200131_120000_0f4e" + SUFFIX
    assert list(table.ref_id) == ["20200101_000000_1014", "20200101_000000_1014"]
    assert list(table.sec_date) == ["2020-01-11T12:00:00.000000Z", "2020-01-31T12:00:00.000000Z"]
    assert list(table.dt_days) == [10.5, 30.5]


def test_ref_sec_csv_without_scene_ids_keeps_paths(tmp_path):
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("ref,sec\na.tif,b.tif\n")
    table = read_pair_table(str(csv_path))
    assert table.ref.iloc[0] == os.path.join(str(tmp_path), "a.tif")
    assert table.ref_id.iloc[0] == "" and pd.isna(table.dt_days.iloc[0])


def test_csv_without_ref_sec_lists_columns_found(tmp_path):
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("img1,img2\na.tif,b.tif\n")
    with pytest.raises(UserInputError, match=r"\['ref', 'sec'\].*\['img1', 'img2'\]"):
        read_pair_table(str(csv_path))
    with pytest.raises(UserInputError, match="does not exist"):
        read_pair_table(str(tmp_path / "nothing.csv"))
