"""Bad-input table of surfacemotion:timelapse (issue 14, point 4).

Every case fails with a clear message and leaves nothing in the output folder. Inputs: the synthetic scene
sequence of tests/timelapse_scenes.py (6 dates, 128 × 96 px), its pairs, and the sample scenes.
"""
import glob
import os

import numpy as np
import pytest

import timelapse_scenes as ts
from bad_inputs import Case, case_ids, check_case
from conftest import REPO

TL = "timelapse"
SAMPLE = sorted(glob.glob(os.path.join(REPO, "sample", "*_3B_*_clip.tif")))


def scenes(ws, count=6):
    return ts.write_scenes(ws.input("scenes"), count=count)


def pairs(ws, count=6):
    return ts.write_pairs(ws.input("pairs"), count=count)


def polyfit_pairs(ws, count=6):
    return ts.polyfit_pairs(ws.input("polyfit"), pairs(ws, count))


def tl(**overrides):
    def parameters(ws):
        values = {"INPUT": scenes, "WRITE_MP4": False, "OUTPUT": lambda ws: ws.output("lapse.gif"), **overrides}
        return {key: value(ws) if callable(value) else value for key, value in values.items()}
    return parameters


def other_grid(ws):
    return scenes(ws, 3) + [ts.write(ws.input("20230105_b3.tif"), ts.scene_image(0)[None, :90])]


def undated(ws):
    return scenes(ws, 3) + [ts.write(ws.input("scene_b3.tif"), ts.scene_image(0)[None])]


def dem_fit(ws):
    paths = polyfit_pairs(ws, 3)
    import rasterio

    with rasterio.open(paths[0], "r+") as ds:
        ds.update_tags(SM_POLYFIT_DEM="dem.tif")
    return paths


def far_velocity(ws):
    from rasterio.transform import from_origin

    return ts.write(ws.input("far_velocity.tif"), np.full((1, 8, 8), 5.0), transform=from_origin(0, 10, 1, 1))


CASES = [
    Case("tl-one-scene", TL, tl(INPUT=lambda ws: scenes(ws, 1)), "at least two scenes"),
    Case("tl-grids-differ", TL, tl(INPUT=other_grid), "is not on the grid of.*clip them to one extent"),
    Case("tl-missing-date", TL, tl(INPUT=undated), "No acquisition date in the name 'scene_b3.tif'.*YYYYMMDD"),
    Case("tl-same-time", TL, tl(INPUT=lambda ws: SAMPLE[:2]), "have the same acquisition time"),
    Case("tl-band-missing", TL, tl(BAND=5), "has 1 band.*band 5 does not exist"),
    Case("tl-not-gif", TL, tl(OUTPUT=lambda ws: ws.output("lapse.png")), "must end with .gif"),
    Case("tl-no-pairs", TL, tl(CORRECTION=1), "co-registration needs the disparity rasters"),
    Case("tl-missing-pair", TL, tl(CORRECTION=1, PAIRS=lambda ws: polyfit_pairs(ws)[1:]),
         r"No pair with the reference \(2021-03-01\) for the secondaries of 2021-04-07"),
    Case("tl-pair-of-another-reference", TL,
         tl(INPUT=lambda ws: ts.write_scenes(ws.input("later"), order=(1, 2, 3, 4, 5)), CORRECTION=2, PAIRS=pairs),
         "has its reference on 2021-03-01"),
    Case("tl-raw-pairs-for-polyfit", TL, tl(CORRECTION=1, PAIRS=pairs),
         "carries no polynomial fit.*outputs of surfacemotion:polyfit"),
    Case("tl-polyfit-with-dem", TL, tl(INPUT=lambda ws: scenes(ws, 3), CORRECTION=1, PAIRS=dem_fit),
         "de-ramped with a DEM term"),
    Case("tl-scene-as-pair", TL, tl(CORRECTION=2, PAIRS=lambda ws: scenes(ws)[:1]), "is not a disparity raster"),
    Case("tl-velocity-elsewhere", TL, tl(VELOCITY=far_velocity), "has no value over the scenes"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)
