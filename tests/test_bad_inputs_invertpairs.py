"""Bad inputs of surfacemotion:invertpairs (issue 14): pairs on different grids, one pair only, no dates, a pair
table without paths, a raster that is not a pair, out-of-range numbers: each with the expected message and
nothing left in the output folder."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from bad_inputs import Case, case_ids, check_case
from core.io import Grid, write_raster
from core.offsets.disparity import BASE_DESCRIPTIONS
from test_series_inversion import GRID, write_network


def pairs(ws, n=4, grid=GRID):
    folder = os.path.join(ws.inputs, f"net_{grid.width}")
    os.makedirs(folder, exist_ok=True)
    return write_network(folder, n_pairs=n, grid=grid)


def invert(ws, **parameters):
    values = dict(parameters)
    if "INPUT" not in values and "PAIRS" not in values:
        values["INPUT"] = pairs(ws)
    values.setdefault("MIN_PAIRS", 2)
    values.setdefault("OUTPUT_FOLDER", ws.output("series"))
    return values


def other_grid(ws):
    shifted = Grid(GRID.crs, GRID.transform * Affine.translation(1, 0), GRID.width + 1, GRID.height)
    return invert(ws, INPUT=pairs(ws, 3) + pairs(ws, 1, grid=shifted))


def undated(ws):
    shape = (GRID.height, GRID.width)
    path = ws.input("plain_disp.tif")
    write_raster(path, GRID, [np.zeros(shape), np.zeros(shape), np.ones(shape), np.ones(shape)], BASE_DESCRIPTIONS)
    return invert(ws, INPUT=pairs(ws, 3) + [path])


def table(ws, frame):
    path = ws.input("pairs.csv")
    frame.to_csv(path, index=False)
    return path


def single_band(ws):
    path = ws.input("dem.tif")
    write_raster(path, GRID, [np.ones((GRID.height, GRID.width))], ["height (m)"])
    return invert(ws, INPUT=pairs(ws, 3) + [path])


CASES = [
    Case("invertpairs-grids-differ", "invertpairs", other_grid, r"not on one grid.*same reference grid"),
    Case("invertpairs-one-pair", "invertpairs", lambda ws: invert(ws, INPUT=pairs(ws, 1), MIN_PAIRS=1),
         r"has 1 pair: an inversion needs at least two"),
    Case("invertpairs-no-dates", "invertpairs", undated,
         r"Cannot find the dates of 'plain_disp\.tif'.*pair table \(columns path, ref_date, sec_date\)"),
    Case("invertpairs-no-input", "invertpairs", lambda ws: {"OUTPUT_FOLDER": ws.output("s")},
         r"No pair raster was given"),
    Case("invertpairs-table-without-path", "invertpairs",
         lambda ws: invert(ws, PAIRS=table(ws, pd.DataFrame({"ref": ["a.tif"], "sec": ["b.tif"]}))),
         r"no column with the pair rasters' paths"),
    Case("invertpairs-table-missing-file", "invertpairs",
         lambda ws: invert(ws, PAIRS=table(ws, pd.DataFrame({"path": ["gone_disp.tif"]}))),
         r"gone_disp\.tif' does not exist"),
    Case("invertpairs-table-same-dates", "invertpairs",
         lambda ws: invert(ws, PAIRS=table(ws, pd.DataFrame({"path": pairs(ws, 1), "ref_date": ["2020-01-05"],
                                                             "sec_date": ["2020-01-05"]}))),
         r"two dates of .* are the same"),
    Case("invertpairs-not-a-pair-raster", "invertpairs", single_band,
         r"'.*dem\.tif' is neither a velocity raster .* nor a disparity raster"),
    Case("invertpairs-min-pairs-above-pairs", "invertpairs", lambda ws: invert(ws, MIN_PAIRS=9),
         r"minimum number of pairs per pixel must be between 1 and 4"),
    Case("invertpairs-min-pairs-zero", "invertpairs", lambda ws: invert(ws, MIN_PAIRS=0),
         r"Minimum number of valid pairs per pixel must be between 1 and 10000"),
    Case("invertpairs-step-negative", "invertpairs", lambda ws: invert(ws, STEP_DAYS=-5),
         r"Time step .* must be between 0 and 3650"),
    Case("invertpairs-lambda-negative", "invertpairs", lambda ws: invert(ws, REGULARISATION=-1),
         r"Regularisation λ .* must be between 0 and 1000 "),
    Case("invertpairs-prefix-slash", "invertpairs", lambda ws: invert(ws, PREFIX="a/b"),
         r"prefix 'a/b' is empty or holds a character not allowed"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)
