"""Bad inputs of surfacemotion:stackvelocity and surfacemotion:aoitimeline (issue 14): each case gives a clear
error saying what is wrong and how to fix it, and leaves nothing in the output folder. Inputs: the small UTM
velocity network of series_data and variants of it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bad_inputs import Case, case_ids, check_case
from core.io import Grid, write_raster
from core.offsets.velocity import VELOCITY_DESCRIPTIONS
from series_data import CRS, SHAPE, TRANSFORM, aoi_geojson, velocity_network, velocity_raster

STACK, TIMELINE = "stackvelocity", "aoitimeline"


def pairs(ws):
    return velocity_network(ws.inputs)[0]


def stack(ws, **changes):
    return {"INPUT": pairs(ws), "OUTPUT": ws.output("stack.tif"), **changes}


def timeline(ws, **changes):
    return {"INPUT": pairs(ws), "AOI": aoi_geojson(ws.inputs)[0], "BUFFER": 0,
            "OUTPUT": ws.output("timeline.gpkg"), "OUTPUT_CSV": ws.output("timeline.csv"),
            "PLOT_FOLDER": ws.output("plots"), **changes}


def undated(ws):
    grid = Grid(CRS, TRANSFORM, SHAPE[1], SHAPE[0])
    path = ws.input("undated.tif")
    ones = np.ones(SHAPE)
    write_raster(path, grid, [ones, ones, ones, ones], list(VELOCITY_DESCRIPTIONS))
    return path


def other_grid(ws):
    return velocity_raster(ws.input("other.tif"), np.ones((5, 5)), np.ones((5, 5)))


def empty_pairs(ws):
    nan = np.full(SHAPE, np.nan)
    return [velocity_raster(ws.input(f"nan{i}.tif"), nan, nan, sec=f"2020-02-1{i}") for i in range(2)]


def single_band(ws):
    path = ws.input("dem.tif")
    write_raster(path, Grid(CRS, TRANSFORM, 4, 4), np.ones((4, 4)), ["elevation (m)"])
    return path


def table(ws, text):
    path = ws.input("pairs.csv")
    with open(path, "w") as handle:
        handle.write(text)
    return path


def geojson(ws, name, geometry):
    path = ws.input(name)
    with open(path, "w") as handle:
        json.dump({"type": "FeatureCollection", "features": [] if geometry is None else [
            {"type": "Feature", "properties": {}, "geometry": geometry}]}, handle)
    return path


def far_polygon(ws):
    return geojson(ws, "far.geojson", {"type": "Polygon", "coordinates": [[[10, 10], [10.01, 10], [10.01, 10.01],
                                                                           [10, 10]]]})


def point_layer(ws):
    return aoi_geojson(ws.inputs)[1]


def line_layer(ws):
    return geojson(ws, "line.geojson", {"type": "LineString", "coordinates": [[-75, 36.1], [-74.99, 36.1]]})


CASES = [
    Case("stackvelocity-no-input", STACK, lambda ws: {"OUTPUT": ws.output("stack.tif")},
         r"No pair raster was given: choose velocity or disparity rasters"),
    Case("stackvelocity-grids-differ", STACK, lambda ws: stack(ws, INPUT=pairs(ws) + [other_grid(ws)]),
         r"not on one grid: 'other\.tif' is 5×5 px.*gdalwarp"),
    Case("stackvelocity-no-dates", STACK, lambda ws: stack(ws, INPUT=[undated(ws)]),
         r"Cannot find the dates of 'undated\.tif'.*pair table"),
    Case("stackvelocity-not-a-pair-raster", STACK, lambda ws: stack(ws, INPUT=[single_band(ws)]),
         r"neither a velocity raster .* nor a disparity raster"),
    Case("stackvelocity-weights-without-uncertainty", STACK, lambda ws: stack(ws, WEIGHTS=True),
         r"has no uncertainty band.*switch the weights off"),
    Case("stackvelocity-all-nan", STACK, lambda ws: stack(ws, INPUT=empty_pairs(ws)),
         r"No pixel has a valid velocity"),
    Case("stackvelocity-output-not-tif", STACK, lambda ws: stack(ws, OUTPUT=ws.output("stack.png")),
         r"must be a GeoTIFF"),
    Case("stackvelocity-table-without-path-column", STACK,
         lambda ws: {"PAIR_TABLE": table(ws, "name,date\na,b\n"), "OUTPUT": ws.output("stack.tif")},
         r"no column with the pair rasters' paths"),
    Case("stackvelocity-table-missing-file", STACK,
         lambda ws: {"PAIR_TABLE": table(ws, "path\nmissing.tif\n"), "OUTPUT": ws.output("stack.tif")},
         r"missing\.tif' does not exist"),
    Case("aoitimeline-no-input", TIMELINE, lambda ws: dict(timeline(ws), INPUT=[]),
         r"No pair raster was given"),
    Case("aoitimeline-aoi-outside", TIMELINE, lambda ws: timeline(ws, AOI=far_polygon(ws)),
         r"No AOI feature covers a pixel.*outside the rasters' extent"),
    Case("aoitimeline-points-without-buffer", TIMELINE, lambda ws: timeline(ws, AOI=point_layer(ws)),
         r"has points but BUFFER is 0: give a buffer radius in metres"),
    Case("aoitimeline-no-dates", TIMELINE, lambda ws: timeline(ws, INPUT=[undated(ws)]),
         r"Cannot find the dates of 'undated\.tif'"),
    Case("aoitimeline-dt-max-too-short", TIMELINE, lambda ws: timeline(ws, DT_MAX=2),
         r"No pair is at most 2 days long \(the shortest spans 10\.000 days\)"),
    Case("aoitimeline-line-layer", TIMELINE, lambda ws: timeline(ws, AOI=line_layer(ws)),
         r"is a line layer; a polygon or point layer is needed"),
    Case("aoitimeline-empty-aoi", TIMELINE, lambda ws: timeline(ws, AOI=geojson(ws, "empty.geojson", None)),
         r"has no features"),
    Case("aoitimeline-buffer-negative", TIMELINE, lambda ws: timeline(ws, BUFFER=-1),
         r"must be between 0 and 100000 \(got -1\)"),
    Case("aoitimeline-dt-max-zero", TIMELINE, lambda ws: timeline(ws, DT_MAX=0),
         r"must be between 0\.001 and"),
    Case("aoitimeline-not-a-pair-raster", TIMELINE,
         lambda ws: timeline(ws, INPUT=[single_band(ws)]), r"neither a velocity raster"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)
