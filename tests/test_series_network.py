"""core.series.network: pair rasters of a network, their dates, units and grid (issue 14)."""
import os

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from core.errors import UserInputError
from core.io import Grid, write_raster
from core.offsets.disparity import BASE_DESCRIPTIONS, disparity_tags
from core.offsets.velocity import VELOCITY_DESCRIPTIONS
from core.series.network import (KIND_ASP, KIND_DISPARITY, KIND_VELOCITY, read_network, read_pair,
                                 sources_tag)

GRID = Grid("EPSG:32719", Affine(3.0, 0, 500000.0, 0, -3.0, 4000000.0), 6, 4)
REF_ID, SEC_ID = "20200201_140000_1014", "20200211_140000_1014"


def _disparity(path, dx=1.0, dy=2.0, tags=None, grid=GRID):
    shape = (grid.height, grid.width)
    bands = [np.full(shape, dx, np.float32), np.full(shape, dy, np.float32),
             np.ones(shape, np.float32), np.full(shape, 0.9, np.float32)]
    return write_raster(str(path), grid, bands, BASE_DESCRIPTIONS, tags=tags or {})


def test_disparity_dates_from_tags_and_metres_per_year(tmp_path):
    tags = disparity_tags(1, ref_date="2020-02-01T14:00:00Z", sec_date="2020-02-11T14:00:00Z")
    pair = read_pair(_disparity(tmp_path / "a.tif", tags=tags))
    assert pair.kind == KIND_DISPARITY and pair.dt_days == 10.0
    assert pair.ref_date.isoformat() == "2020-02-01T14:00:00+00:00"
    east, north = pair.read_velocity()
    # 1 px right = 3 m east, 2 px down = 6 m south, over 10 days -> m/yr with 365.25-day years
    assert east[0, 0] == pytest.approx(3.0 / 10 * 365.25)
    assert north[0, 0] == pytest.approx(-6.0 / 10 * 365.25)


def test_dates_from_file_name_ids_and_given_dates_win(tmp_path):
    path = _disparity(tmp_path / f"{REF_ID}_{SEC_ID}_disp.tif")
    assert read_pair(path).dt_days == 10.0
    assert read_pair(path, "2020-02-01", "2020-02-21").dt_days == 20.0


def test_velocity_raster_and_asp(tmp_path):
    shape = (GRID.height, GRID.width)
    bands = [np.full(shape, 5.0), np.full(shape, 90.0), np.full(shape, 4.0), np.full(shape, -3.0)]
    tags = disparity_tags(1, ref_id=REF_ID, sec_id=SEC_ID)
    vel = read_pair(write_raster(str(tmp_path / "v.tif"), GRID, bands, VELOCITY_DESCRIPTIONS, tags=tags))
    assert vel.kind == KIND_VELOCITY and vel.dt_days == 10.0
    east, north = vel.read_velocity()
    assert (east[0, 0], north[0, 0]) == (4.0, -3.0)
    asp = write_raster(str(tmp_path / "run-F.tif"), GRID, [np.ones(shape), np.ones(shape), np.ones(shape)],
                       ["", "", ""])
    with pytest.raises(UserInputError, match="Cannot find the dates"):
        read_pair(asp)
    assert read_pair(asp, "2020-02-01", "2020-02-05").kind == KIND_ASP


def test_network_from_table_sorted_and_grid_checked(tmp_path):
    _disparity(tmp_path / "a.tif")
    b = _disparity(tmp_path / "b.tif")
    table = pd.DataFrame({"path": ["b.tif", "a.tif"], "ref_date": ["2020-02-03", "2020-02-01"],
                          "sec_date": ["2020-02-09", "2020-02-09"]})
    table.to_csv(tmp_path / "pairs.csv", index=False)
    pairs = read_network(str(tmp_path / "pairs.csv"))
    assert [os.path.basename(p.path) for p in pairs] == ["a.tif", "b.tif"]
    assert '"ref_date": "2020-02-01T00:00:00.000000Z"' in sources_tag(pairs)
    other = Grid(GRID.crs, GRID.transform, 7, 4)
    c = _disparity(tmp_path / f"{REF_ID}_{SEC_ID}_disp.tif", grid=other)
    with pytest.raises(UserInputError, match="not on one grid"):
        read_network([c,
                      _disparity(tmp_path / f"{SEC_ID}_{REF_ID}_disp.tif")])
    with pytest.raises(UserInputError, match="no column with the pair rasters' paths"):
        read_network(pd.DataFrame({"x": [b]}))
