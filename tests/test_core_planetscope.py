"""Tests of core.offsets.planetscope: scene ids of both forms, dates and ISO times."""
from datetime import datetime, timedelta, timezone

import pytest

from core.errors import UserInputError
from core.offsets.planetscope import days_between, find_scene_ids, iso_utc, parse_iso_utc, parse_scene_id

UTC = timezone.utc


def test_superdove_four_token_id_with_hundredths():
    scene = parse_scene_id("/data/PSScene/20220907_140709_64_24a3_3B_AnalyticMS_SR_clip.tif")
    assert scene.scene_id == "20220907_140709_64_24a3"
    assert scene.acquired == datetime(2022, 9, 7, 14, 7, 9, 640000, tzinfo=UTC)
    assert scene.acquired.utcoffset() == timedelta(0)
    assert scene.satellite == "24a3"
    assert scene.id_form == "SD"
    assert scene.level == "3B"


def test_ps2_three_token_id_l1b():
    scene = parse_scene_id("20200101_101010_1014_1B_AnalyticMS.tif")
    assert scene.scene_id == "20200101_101010_1014"
    assert scene.acquired == datetime(2020, 1, 1, 10, 10, 10, 0, tzinfo=UTC)
    assert scene.satellite == "1014"
    assert scene.id_form == "PS2"
    assert scene.level == "1B"


def test_three_token_id_whose_satellite_starts_with_two_digits_is_not_read_as_four_token():
    # "10" could look like hundredths, but "_10_" is not followed by an underscore here
    scene = parse_scene_id("20200101_101010_1014_3B_AnalyticMS_SR_clip_b2.tif")
    assert (scene.id_form, scene.satellite, scene.acquired.microsecond) == ("PS2", "1014", 0)


def test_hundredths_99_and_lowercase_hex_satellite():
    scene = parse_scene_id("20231231_235959_99_2416_3B_udm2_clip.tif")
    assert scene.acquired == datetime(2023, 12, 31, 23, 59, 59, 990000, tzinfo=UTC)
    assert scene.satellite == "2416"


@pytest.mark.parametrize("name", [
    "S2_20200101_B02.tif",                        # not a PlanetScope name
    "20200101_101010_1014_b2.tif",                # no product level
    "2020010_101010_1014_3B_AnalyticMS.tif",      # 7-digit date
    "20200101_101010_101_3B_AnalyticMS.tif",      # 3-character satellite
    "20200101_101010_10145_3B_AnalyticMS.tif",    # 5-character satellite
    "20200101_101010_1014_2B_AnalyticMS.tif",     # unknown level
    "x20200101_101010_1014_3B_AnalyticMS.tif",    # id not at the start
])
def test_bad_names_raise_with_both_accepted_forms(name):
    with pytest.raises(UserInputError) as info:
        parse_scene_id("/some/folder/" + name)
    message = str(info.value)
    assert name in message
    assert "20200101_101010_1014" in message and "20220907_140709_64_24a3" in message


@pytest.mark.parametrize("name", ["20201341_101010_1014_3B_x.tif", "20200230_101010_1014_3B_x.tif",
                                  "20200101_246060_64_24a3_3B_x.tif"])
def test_impossible_dates_raise_naming_the_file(name):
    with pytest.raises(UserInputError, match=name):
        parse_scene_id(name)


def test_find_two_ps2_ids_in_a_disparity_name():
    ids = find_scene_ids("/out/20200101_101010_1014_20200601_111111_1020_disp.tif")
    assert [s.scene_id for s in ids] == ["20200101_101010_1014", "20200601_111111_1020"]
    assert [s.id_form for s in ids] == ["PS2", "PS2"]
    assert [s.level for s in ids] == [None, None]
    assert ids[1].acquired == datetime(2020, 6, 1, 11, 11, 11, tzinfo=UTC)


def test_find_two_superdove_ids_in_a_polyfit_name():
    ids = find_scene_ids("20220907_140709_64_24a3_20230101_140709_12_2416_disp_polyfit.tif")
    assert [s.scene_id for s in ids] == ["20220907_140709_64_24a3", "20230101_140709_12_2416"]
    assert [s.satellite for s in ids] == ["24a3", "2416"]
    assert [s.id_form for s in ids] == ["SD", "SD"]
    assert ids[1].acquired == datetime(2023, 1, 1, 14, 7, 9, 120000, tzinfo=UTC)


def test_find_ids_with_levels_and_mixed_forms():
    ids = find_scene_ids("20200101_101010_1014_3B_20220907_140709_64_24a3_1B_pair.tif")
    assert [(s.scene_id, s.id_form, s.level) for s in ids] == [
        ("20200101_101010_1014", "PS2", "3B"), ("20220907_140709_64_24a3", "SD", "1B")]


@pytest.mark.parametrize("name", ["velocity.tif", "x20200101_101010_1014_disp.tif",
                                  "20200101_101010_10145_disp.tif", "20201341_101010_1014_disp.tif"])
def test_find_returns_nothing_without_whole_valid_ids(name):
    assert find_scene_ids(name) == []


def test_days_between_is_fractional_and_signed():
    a = parse_scene_id("20220907_140709_64_24a3_3B_x.tif").acquired
    b = parse_scene_id("20230101_140709_12_2416_3B_x.tif").acquired
    expected = 116.0 - 0.52 / 86400.0   # 7 Sep -> 1 Jan is 116 days, minus 0.52 s
    assert days_between(a, b) == pytest.approx(expected, abs=1e-12)
    assert days_between(b, a) == pytest.approx(-expected, abs=1e-12)
    assert days_between(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, 12, tzinfo=UTC)) == 0.5


def test_iso_utc_round_trip():
    dt = datetime(2022, 9, 7, 14, 7, 9, 640000, tzinfo=UTC)
    assert iso_utc(dt) == "2022-09-07T14:07:09.640000Z"
    assert parse_iso_utc(iso_utc(dt)) == dt
    plus_two = datetime(2022, 9, 7, 16, 7, 9, 640000, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(plus_two) == "2022-09-07T14:07:09.640000Z"


@pytest.mark.parametrize("text,expected", [
    ("2022-09-07T16:07:09.64+02:00", datetime(2022, 9, 7, 14, 7, 9, 640000, tzinfo=UTC)),
    ("2022-09-07T14:07:09Z", datetime(2022, 9, 7, 14, 7, 9, tzinfo=UTC)),
    ("2022-09-07 14:07", datetime(2022, 9, 7, 14, 7, tzinfo=UTC)),
    ("2022-09-07", datetime(2022, 9, 7, tzinfo=UTC)),
    ("2022-09-07T14:07:09.1234567z", datetime(2022, 9, 7, 14, 7, 9, 123456, tzinfo=UTC)),
])
def test_parse_iso_utc_forms(text, expected):
    value = parse_iso_utc(text)
    assert value == expected
    assert value.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["07/09/2022", "2022-13-01", "yesterday"])
def test_parse_iso_utc_rejects_garbage(text):
    with pytest.raises(UserInputError, match="2022-09-07"):
        parse_iso_utc(text)
