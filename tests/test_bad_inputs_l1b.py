"""Bad inputs of surfacemotion:aligndemtopair and of the shipped L1B model planetscopel1bvelocity
(issue 13, point 6): each gives a clear error naming what is wrong and how to fix it, and leaves nothing
in the output folder. Inputs: the synthetic opposite-look L1B scenes of tests/l1b_synthetic.py (made
once per session, outside the cases' output folders) and DEM variants written per case."""
from __future__ import annotations

import functools
import json
import os
import tempfile

import numpy as np
import pytest
import rasterio

import l1b_synthetic as synthetic
from bad_inputs import Case, case_ids, check_case
from conftest import SAMPLE_DIR

ALIGN = "aligndemtopair"
MODEL = "surfacemotion:planetscopel1bvelocity"


@functools.lru_cache(maxsize=None)
def shared() -> dict:
    """Both looks and the true DEM (ellipsoidal heights), made once."""
    folder = tempfile.mkdtemp(prefix="sm_l1b_bad_inputs_")
    return {"scenes": {look: synthetic.make_scene(folder, look).path for look in (1, -1)},
            "dem": synthetic.write_dem(os.path.join(folder, "dem.tif")), "folder": folder}


def align(ws, **changes) -> dict:
    parameters = {"DEM": shared()["dem"], "VERTICAL_DATUM": 1, "REFERENCE_SCENE": shared()["scenes"][1],
                  "SECONDARY_SCENE": shared()["scenes"][-1], "OUTPUT": ws.output("aligned.tif"),
                  "REPORT": ws.output("report.csv")}
    parameters.update(changes)
    return parameters


def dem_variant(ws, name: str, change=None, crs=None, shift_east=0.0) -> str:
    """The true DEM with its heights changed by ``change(values)``, another declared CRS or moved east."""
    path = synthetic.write_dem(ws.input(name), shift_east=shift_east, crs=crs)
    if change is not None:
        with rasterio.open(path, "r+") as ds:
            ds.write(change(ds.read(1)).astype(np.float32), 1)
    return path


def polygon_file(ws, name: str, ring) -> str:
    path = ws.input(name)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}, handle)
    return path


def everywhere(ws) -> str:
    lon, lat, _ = synthetic.scene_aim()
    return polygon_file(ws, "everywhere.geojson", [[lon - 0.2, lat - 0.2], [lon + 0.2, lat - 0.2],
                                                   [lon + 0.2, lat + 0.2], [lon - 0.2, lat + 0.2], [lon - 0.2, lat - 0.2]])


def far_away(ws) -> str:
    return polygon_file(ws, "far.geojson", [[10.0, 45.0], [10.1, 45.0], [10.1, 45.1], [10.0, 45.1], [10.0, 45.0]])


def georeferenced_only(ws) -> str:
    """A map-projected image without RPCs (the embedded L3B sample's first scene)."""
    return sorted(os.path.join(SAMPLE_DIR, name) for name in os.listdir(SAMPLE_DIR)
                  if name.endswith("_3B_AnalyticMS_SR_clip.tif"))[0]


def model(ws, **changes) -> dict:
    parameters = {"SCENES": [shared()["scenes"][1], shared()["scenes"][-1]], "DEM": shared()["dem"],
                  "BAND": 1, "VERTICAL_DATUM": 1, "DT_MIN": 0, "velocity:VELOCITY_FOLDER": ws.output("velocity")}
    parameters.update(changes)
    return parameters


CASES = [
    Case("aligndemtopair-no-dem", ALIGN, lambda ws: {k: v for k, v in align(ws).items() if k != "DEM"},
         r"DEM \(heights in m\).* is required|DEM \(heights in m\).*required"),
    Case("aligndemtopair-no-secondary", ALIGN,
         lambda ws: {k: v for k, v in align(ws).items() if k != "SECONDARY_SCENE"}, r"another direction.*required"),
    Case("aligndemtopair-same-scene-twice", ALIGN, lambda ws: align(ws, SECONDARY_SCENE=shared()["scenes"][1]),
         r"The two scenes are the same file; choose two scenes of the area seen from different directions"),
    Case("aligndemtopair-scene-without-rpc", ALIGN, lambda ws: align(ws, SECONDARY_SCENE=georeferenced_only(ws)),
         r"has no RPC"),
    Case("aligndemtopair-dem-elsewhere", ALIGN,
         lambda ws: align(ws, DEM=dem_variant(ws, "elsewhere.tif", shift_east=80_000.0)),
         r"DEM .*does not cover"),
    Case("aligndemtopair-egm2008-without-grid", ALIGN,
         lambda ws: align(ws, DEM=dem_variant(ws, "egm2008.tif", crs="EPSG:4326+3855"), VERTICAL_DATUM=0),
         r"us_nga_egm08_25\.tif"),
    Case("aligndemtopair-flat-dem", ALIGN,
         lambda ws: align(ws, DEM=dem_variant(ws, "flat.tif", lambda v: np.full_like(v, 200.0))),
         r"too flat"),
    Case("aligndemtopair-aoi-outside", ALIGN, lambda ws: align(ws, AOI=far_away(ws)), r"outside|does not overlap"),
    Case("aligndemtopair-unstable-everywhere", ALIGN, lambda ws: align(ws, UNSTABLE=everywhere(ws)),
         r"Only 0 stable cells"),
    Case("aligndemtopair-output-overwrites-dem", ALIGN, lambda ws: align(ws, OUTPUT=shared()["dem"]),
         r"would overwrite the input 'dem\.tif'"),
    Case("aligndemtopair-report-is-the-dem", ALIGN, lambda ws: align(ws, REPORT=ws.output("aligned.tif")),
         r"Two outputs have the same file name"),
    Case("aligndemtopair-output-not-tif", ALIGN, lambda ws: align(ws, OUTPUT=ws.output("aligned.png")),
         r"must be a GeoTIFF"),
    Case("aligndemtopair-iterations-zero", ALIGN, lambda ws: align(ws, MAX_ITERATIONS=0),
         r"Maximum rounds must be between 1 and 20 \(got 0\)"),
    Case("aligndemtopair-chip-too-small", ALIGN, lambda ws: align(ws, CHIP_SIZE=4),
         r"Chip size \(px\) must be between 8 and 512 \(got 4\)"),
    Case("planetscopel1bvelocity-no-dem", MODEL, lambda ws: {k: v for k, v in model(ws).items() if k != "DEM"},
         r"DEM.*required"),
    Case("planetscopel1bvelocity-scenes-without-rpc", MODEL,
         lambda ws: model(ws, SCENES=[georeferenced_only(ws), shared()["scenes"][1]]), r"has no RPC"),
    Case("planetscopel1bvelocity-egm2008-without-grid", MODEL,
         lambda ws: model(ws, DEM=dem_variant(ws, "egm2008.tif", crs="EPSG:4326+3855"), VERTICAL_DATUM=0),
         r"us_nga_egm08_25\.tif"),
    Case("planetscopel1bvelocity-resolution-zero", MODEL, lambda ws: model(ws, RESOLUTION=0),
         r"pixel size.*must be between 0\.01 and 10000"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)
