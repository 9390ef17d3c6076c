"""Particle tracker (REFERENCE §8.4): RK4 convergence on a rotation field, layers in time,
backwards tracking, stops at nodata and edges, real Alaska stack."""
import datetime as dt
import math
import os

import numpy as np
import pytest
from rasterio.transform import from_origin

from core.errors import UserInputError
from core.dates import decimal_year
from core.itslive.grids import VelocityGrid, read_velocity
from core.itslive.tracking import (STOP_END_RECORD, STOP_END_TIME, STOP_LEFT_GRID, STOP_NODATA,
                                   STOP_NODATA_AT_SEED, line_summary, track_particles, track_rows)

DATA = os.path.join(os.path.dirname(__file__), "data", "itslive")
PIXEL = 100.0
ROT_PIXEL = 1000.0  # coarse grid: CFL steps large enough for the RK4 error to dominate round-off
SIZE = 9
TRANSFORM = from_origin(-SIZE * ROT_PIXEL / 2, SIZE * ROT_PIXEL / 2, ROT_PIXEL, ROT_PIXEL)  # centred on (0, 0)
OMEGA = 2 * math.pi / 10.0  # one revolution in 10 years


def grid_coordinates():
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    return TRANSFORM.c + ROT_PIXEL * (cols + 0.5), TRANSFORM.f - ROT_PIXEL * (rows + 0.5)


def rotation_grid():
    x, y = grid_coordinates()
    return VelocityGrid((-OMEGA * y)[None], (OMEGA * x)[None], TRANSFORM, "EPSG:3413")


def revolution_error(cfl):
    tracks = track_particles(rotation_grid(), [2000.0], [0.0], duration_years=10.0, cfl=cfl)
    track = tracks[0]
    assert track.stop_reason == STOP_END_TIME
    assert track.t_yr[-1] - track.t_yr[0] == pytest.approx(10.0, abs=1e-9)
    return math.hypot(track.x[-1] - 2000.0, track.y[-1]), track


def test_rk4_on_rotation_converges_at_fourth_order():
    coarse, track = revolution_error(0.5)
    fine, _ = revolution_error(0.25)
    # the path stays on the circle of radius 2 km (bilinear is exact for a linear field)
    radii = np.hypot(track.x, track.y)
    np.testing.assert_allclose(radii, 2000.0, rtol=2e-4)
    assert 1e-4 < coarse < 0.1  # metres after 12.6 km of travel
    assert 12.0 < coarse / fine < 20.0  # 2^4 = 16 for a 4th-order method
    # a quarter revolution ends at (0, 2000): counter-clockwise for omega > 0
    quarter = track_particles(rotation_grid(), [2000.0], [0.0], duration_years=2.5, cfl=0.25)[0]
    assert quarter.x[-1] == pytest.approx(0.0, abs=0.05) and quarter.y[-1] == pytest.approx(2000.0, abs=0.05)


def test_backward_tracking_retraces_the_forward_path():
    forward = track_particles(rotation_grid(), [1500.0], [500.0], duration_years=3.0, cfl=0.25)[0]
    backward = track_particles(rotation_grid(), [forward.x[-1]], [forward.y[-1]],
                               start=dt.datetime(2003, 1, 1), duration_years=-3.0, cfl=0.25)[0]
    assert backward.x[-1] == pytest.approx(1500.0, abs=0.01) and backward.y[-1] == pytest.approx(500.0, abs=0.01)
    assert backward.t_yr[-1] == pytest.approx(decimal_year(dt.datetime(2003, 1, 1)) - 3.0, abs=1e-9)


def uniform_layers(velocities, dates, shape=(20, 40)):
    vx = np.stack([np.full(shape, v[0]) for v in velocities])
    vy = np.stack([np.full(shape, v[1]) for v in velocities])
    return VelocityGrid(vx, vy, from_origin(0, shape[0] * PIXEL, PIXEL, PIXEL), "EPSG:3413", dates)


def test_time_varying_layers_with_vertices_at_boundaries():
    dates = [dt.datetime(2010, 1, 1), dt.datetime(2011, 1, 1), dt.datetime(2012, 1, 1)]
    grid = uniform_layers([(100.0, 0.0), (300.0, 0.0), (0.0, -200.0)], dates)
    track = track_particles(grid, [200.0], [1500.0], duration_years=5.0)[0]
    # record ends one layer length after the last start (2013-01-01)
    assert track.stop_reason == STOP_END_RECORD
    t = np.array(track.t_yr)
    for boundary in dates[1:]:
        assert np.min(np.abs(t - decimal_year(boundary))) < 1e-9
    at_2011 = int(np.argmin(np.abs(t - decimal_year(dates[1]))))
    at_2012 = int(np.argmin(np.abs(t - decimal_year(dates[2]))))
    years = [decimal_year(d) for d in dates]
    years.append(2 * years[2] - years[1])  # the last layer lasts as long as the one before
    assert track.x[at_2011] == pytest.approx(200.0 + 100.0 * (years[1] - years[0]), abs=1e-6)
    assert track.x[at_2012] == pytest.approx(track.x[at_2011] + 300.0 * (years[2] - years[1]), abs=1e-6)
    assert track.x[-1] == pytest.approx(track.x[at_2012], abs=1e-6)
    assert track.y[-1] == pytest.approx(1500.0 - 200.0 * (years[3] - years[2]), abs=1e-6)
    # linear time interpolation: halfway through 2010 the speed is the mean of the two layers
    linear = track_particles(grid, [200.0], [1500.0], duration_years=0.5, time_interpolation="linear")[0]
    assert linear.vx[-1] == pytest.approx(200.0, rel=1e-3)


def test_stops_at_nodata_and_grid_edges():
    grid = uniform_layers([(500.0, 0.0)], None)
    grid.vx[0][:, 30:] = np.nan
    tracks = track_particles(grid, [250.0, 3950.0, 5000.0, 3500.0], [1000.0, 1000.0, 1000.0, 1000.0],
                             duration_years=20.0)
    assert tracks[0].stop_reason == STOP_NODATA
    assert tracks[0].x[-1] < 29.0 * PIXEL + 1e-6  # never inside the NaN cells' interpolation support
    assert tracks[0].x[-1] > 28.0 * PIXEL - 0.5 * PIXEL
    assert tracks[1].stop_reason in (STOP_NODATA_AT_SEED, STOP_LEFT_GRID)
    assert tracks[2].stop_reason == STOP_LEFT_GRID and tracks[2].n_steps == 0
    steady = uniform_layers([(0.0, 500.0)], None)
    edge = track_particles(steady, [1000.0], [1000.0], duration_years=20.0)[0]
    assert edge.stop_reason == STOP_LEFT_GRID
    assert edge.y[-1] <= 1950.0 and edge.y[-1] > 1900.0


def test_rows_and_summaries_have_time_attributes():
    grid = uniform_layers([(365.25, 0.0)], [dt.datetime(2015, 1, 1)])
    track = track_particles(grid, [100.0], [1000.0], start=dt.datetime(2015, 1, 1), duration_years=2.0)[0]
    rows = list(track_rows([track]))
    assert rows[0]["date"] == "2015-01-01T00:00:00" and rows[0]["step"] == 0
    assert rows[-1]["cum_dist_m"] == pytest.approx(365.25, abs=1e-6)  # record: one year of 365.25 d
    summary = line_summary(track)
    assert summary["stop_reason"] == STOP_END_RECORD and summary["end_date"] == "2016-01-01T06:00:00"
    assert summary["length_m"] == pytest.approx(365.25, abs=1e-6)


def test_bad_parameters():
    with pytest.raises(UserInputError, match="CFL"):
        track_particles(rotation_grid(), [0.0], [0.0], cfl=0.9)
    with pytest.raises(UserInputError, match="zero"):
        track_particles(rotation_grid(), [0.0], [0.0], duration_years=0.0)
    grid = uniform_layers([(1.0, 0.0), (2.0, 0.0)], None)
    with pytest.raises(UserInputError, match="needs a date per layer"):
        track_particles(grid, [0.0], [0.0])


def test_real_alaska_stack_tracks_downglacier():
    grid = read_velocity(os.path.join(DATA, "alaska_vx_2010_2018.tif"), os.path.join(DATA, "alaska_vy_2010_2018.tif"))
    assert len(grid.dates) == 9 and grid.dates[0] == dt.datetime(2010, 1, 1)
    speed = np.hypot(grid.vx[0], grid.vy[0])
    row, col = np.unravel_index(np.nanargmax(np.where(np.isfinite(speed), speed, -1)), speed.shape)
    x = grid.transform.c + (col + 0.5) * grid.transform.a
    y = grid.transform.f + (row + 0.5) * grid.transform.e
    track = track_particles(grid, [x], [y], duration_years=0.5)[0]
    assert track.n_steps > 5
    # first step moves along the local velocity vector
    dx, dy = track.x[1] - track.x[0], track.y[1] - track.y[0]
    cos = (dx * grid.vx[0][row, col] + dy * grid.vy[0][row, col]) / (math.hypot(dx, dy) * speed[row, col])
    assert cos > 0.99
