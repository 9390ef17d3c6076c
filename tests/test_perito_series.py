"""Regression guard of the pair-network inversion on real data (issue 14 point 6): the Perito Moreno crops
of tests/data/perito_moreno (0207, 0210, 0227; Sentinel-2, contains modified Copernicus Sentinel data 2020)
correlated with the plugin (chip 32, search ±10, step 8), de-ramped with a plane on the stable rock cells,
and inverted (core.series.driver.invert_network, the engine of invertpairs) at the unique dates: two steps,
0207–0210 and 0210–0227, from three pairs. The full eight-date series is `bench/perito_series.py`."""
import os
from datetime import date

import numpy as np
import pytest
import rasterio

import realpairs

DATES = ("20200207", "20200210", "20200227")
PAIRS = ((0, 1), (0, 2), (1, 2))
#: Glacier median speed (m/day) of the two steps, measured when the test was written (this crop is the
#: slow north-west lobe; the centre of the glacier runs at about 2 m/day, bench/perito_series.py).
RECORDED_GLACIER_SPEED = (1.614, 1.560)


def iso(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


def days(first: str, second: str) -> int:
    return (date.fromisoformat(iso(second)) - date.fromisoformat(iso(first))).days


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    from core.offsets.correlate import correlate_files
    from core.offsets.disparity import disparity_tags
    from core.offsets.polyfit import deramp_file
    from core.series.driver import invert_network
    from core.series.network import read_network

    folder = str(tmp_path_factory.mktemp("perito_series"))
    cells = realpairs.crop_pair(DATES[0], DATES[1])["cells"]
    deramped = []
    for first, second in PAIRS:
        a, b = DATES[first], DATES[second]
        disparity = os.path.join(folder, f"S2_{a}_S2_{b}_disp.tif")
        correlate_files(realpairs.crop_path(f"{a}.tif"), realpairs.crop_path(f"{b}.tif"), disparity,
                        chip_size=realpairs.CHIP, search_range=realpairs.SEARCH, step=realpairs.STEP,
                        tags=disparity_tags(realpairs.STEP, ref_date=iso(a), sec_date=iso(b), dt_days=float(days(a, b))))
        deramped.append(disparity.replace("_disp.tif", "_polyfit.tif"))
        deramp_file(disparity, deramped[-1], order=1, moving_mask=~cells["stable"])
    paths = invert_network(read_network(deramped), os.path.join(folder, "series"), step_days=0, robust=False)
    out = {"cells": cells, "pairs": deramped}
    for kind in ("speed", "velocity_east", "velocity_north"):
        with rasterio.open(paths[kind]) as ds:
            out[kind] = ds.read().astype(np.float64) / 365.25  # m/day
            out[f"{kind}_dates"] = [text.split()[0] for text in ds.descriptions]
    return out


def glacier_median(values, cells):
    return float(np.median(values[cells["glacier"] & np.isfinite(values)]))


def test_two_steps_at_the_unique_dates(series):
    assert series["speed_dates"] == ["2020-02-08", "2020-02-18"]  # step centres: 0207+1.5 d, 0210+8.5 d


def test_glacier_speed_of_each_step_is_the_recorded_one(series):
    for band, recorded in enumerate(RECORDED_GLACIER_SPEED):
        assert glacier_median(series["speed"][band], series["cells"]) == pytest.approx(recorded, rel=0.05)


def test_stable_rock_is_at_rest(series):
    stable = series["cells"]["stable"]
    for kind in ("velocity_east", "velocity_north"):
        for band in range(2):
            values = series[kind][band][stable & np.isfinite(series[kind][band])]
            assert values.size >= 80 and abs(np.median(values)) < 0.05, (kind, band)
        long_step = series[kind][1][stable]
        assert realpairs.nmad(long_step[np.isfinite(long_step)]) < 0.1  # the 17-day step, m/day


def test_the_20_day_pair_equals_the_time_weighted_steps(series):
    """Independent check on the glacier: the 0207→0227 pair's own east and north velocity (dx · 10 m / 20 d,
    −dy · 10 m / 20 d, read from its raster) against (3 · step 1 + 17 · step 2) / 20 of the inverted series,
    per component (medians over the glacier cells)."""
    with rasterio.open(series["pairs"][1]) as ds:
        dx, dy = ds.read(1).astype(np.float64), ds.read(2).astype(np.float64)
    scale = realpairs.PIXEL_M / days(DATES[0], DATES[2])
    cells = series["cells"]
    for kind, pair_component in (("velocity_east", dx * scale), ("velocity_north", -dy * scale)):
        weighted = (3 * series[kind][0] + 17 * series[kind][1]) / 20
        assert glacier_median(weighted, cells) == pytest.approx(glacier_median(pair_component, cells), abs=0.05)
