"""core/series/timeline.py and plots.py: per-pair AOI statistics equal to a direct numpy computation on the AOI
pixels (a rectangle and a disc), all_touched off, date columns, DT_MAX, features outside, the CSV and PNG."""
import csv

import numpy as np
import pytest

from core.errors import UserInputError
from core.series.network import read_pair
from core.series.plots import write_timeline_png
from core.series.timeline import COLUMNS, feature_mask, timeline_rows, write_timeline_csv
from series_data import (BUFFER, POINT, RECT, SHAPE, disc_mask, expected_statistics, rect_mask,
                         velocity_network)


def rect_geojson(bounds=RECT):
    x0, y0, x1, y1 = bounds
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def disc_geojson():
    angles = np.linspace(0, 2 * np.pi, 257)
    ring = [[POINT[0] + BUFFER * np.cos(a), POINT[1] + BUFFER * np.sin(a)] for a in angles]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timeline")
    paths, fields = velocity_network(folder)
    return [read_pair(p) for p in paths], fields


def test_statistics_equal_numpy_on_the_aoi_pixels(network):
    pairs, fields = network
    rows = timeline_rows(pairs, ["rect", "disc"], lambda crs: [rect_geojson(), disc_geojson()])
    assert len(rows) == 6 and [r["feature"] for r in rows] == ["rect"] * 3 + ["disc"] * 3
    assert rect_mask().sum() == 8 * 8 and disc_mask().sum() == 21
    for row in rows:
        index = int(row["pair"][4])
        mask = rect_mask() if row["feature"] == "rect" else disc_mask()
        want = expected_statistics(*fields[index], mask)
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    first = rows[0]
    assert (first["date_ref"][:10], first["date_sec"][:10], first["mid_date"][:10]) == \
        ("2020-02-01", "2020-02-11", "2020-02-06")
    assert first["dt_days"] == 10.0 and (first["id_ref"], first["id_sec"]) == (0, 1)
    assert (rows[2]["id_ref"], rows[2]["id_sec"]) == (1, 3)
    assert list(first) == list(COLUMNS)


def test_all_touched_is_off():
    from core.io import Grid
    from series_data import CRS, TRANSFORM

    grid = Grid(CRS, TRANSFORM, SHAPE[1], SHAPE[0])
    # a 2 x 2 m square inside one pixel but off its centre: no pixel centre inside, so no pixel
    assert feature_mask(rect_geojson((500000.1, 3999997.1, 500001.0, 3999998.0)), grid) is None
    window, mask = feature_mask(rect_geojson(), grid)
    full = np.zeros(SHAPE, bool)
    full[window.row_off:window.row_off + window.height, window.col_off:window.col_off + window.width] = mask
    assert np.array_equal(full, rect_mask())


def test_dt_max_outside_and_empty_inputs(network):
    pairs, _ = network
    rows = timeline_rows(pairs, ["rect"], lambda crs: [rect_geojson()], dt_max=15)
    assert [r["dt_days"] for r in rows] == [10.0]
    with pytest.raises(UserInputError, match="No pair is at most 5 days long"):
        timeline_rows(pairs, ["rect"], lambda crs: [rect_geojson()], dt_max=5)
    far = rect_geojson((600000, 3000000, 600100, 3000100))
    with pytest.raises(UserInputError, match="No AOI feature covers a pixel"):
        timeline_rows(pairs, ["far"], lambda crs: [far])
    rows = timeline_rows(pairs, ["rect", "far"], lambda crs: [rect_geojson(), far])
    assert rows[3]["n_valid_speed"] == 0 and np.isnan(rows[3]["mean_speed"])
    with pytest.raises(UserInputError, match="No pair raster"):
        timeline_rows([], ["rect"], lambda crs: [rect_geojson()])


def test_csv_and_png(network, tmp_path):
    pairs, _ = network
    rows = timeline_rows(pairs, ["rect"], lambda crs: [rect_geojson()])
    path = write_timeline_csv(str(tmp_path / "t.csv"), rows)
    with open(path) as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 3 and float(table[1]["median_speed"]) == pytest.approx(rows[1]["median_speed"], rel=1e-15)
    png = write_timeline_png(str(tmp_path / "t.png"), rows, "rect")
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.png"]


def test_pairs_on_different_grids_get_one_mask_each(network, tmp_path):
    """A pair on a grid shifted by 2 pixels sees the same AOI at other pixels (rasterised for its grid)."""
    from series_data import TRANSFORM, velocity_raster

    pairs, fields = network
    e, n = fields[0]
    shifted = velocity_raster(tmp_path / "shifted.tif", e, n, transform=TRANSFORM * TRANSFORM.translation(2, 0))
    rows = timeline_rows([read_pair(shifted)], ["rect"], lambda crs: [rect_geojson()])
    mask = np.roll(rect_mask(), -2, axis=1)  # shifted grid: column c covers the old column c + 2
    for key, value in expected_statistics(e, n, mask).items():
        assert rows[0][key] == pytest.approx(value, rel=1e-12), key
