"""Bad inputs of surfacemotion:orthorectify (issue 13, point 6): a scene without RPCs, a DEM not covering the
area, a target CRS in degrees with a metre resolution, an AOI outside the scene, an EGM2008 DEM without the
grid, out-of-range numbers: each with the expected message and nothing left in the output folder."""
from __future__ import annotations

import json
import os

import pytest

from bad_inputs import Case, case_ids, check_case
from ortho_scenes import LAT0, LON0, aoi_wkt, write_dem, write_scene


def scene(ws, name="scene.tif", **options) -> str:
    return write_scene(ws.input(name), **options)


def dem(ws, name="dem.tif", **options) -> str:
    return write_dem(ws.input(name), **options)


def polygon_layer(ws, wkt: str, name="aoi.geojson", geometry_type="Polygon") -> str:
    from shapely import wkt as shapely_wkt

    geometry = shapely_wkt.loads(wkt)
    if geometry_type == "Point":
        geometry = geometry.centroid
    feature = {"type": "Feature", "properties": {}, "geometry": geometry.__geo_interface__}
    with open(ws.input(name), "w", encoding="utf-8") as handle:
        json.dump({"type": "FeatureCollection", "features": [feature]}, handle, default=list)
    return ws.input(name)


def ortho(ws, **parameters):
    values = dict(parameters)
    if "INPUT" not in values:
        values["INPUT"] = [scene(ws)]
    if "DEM" not in values:
        values["DEM"] = dem(ws)
    values.setdefault("VERTICAL_DATUM", 1)
    values.setdefault("OUTPUT_FOLDER", ws.output("orthos"))
    return values


def no_egm2008_grid(ws):
    return ortho(ws, DEM=dem(ws, crs="EPSG:4326+3855"), VERTICAL_DATUM=0)


def truncated_scene(ws):
    from faults import truncated_copy

    from ortho_scenes import analytic_rpc, rpc_text

    source = write_scene(ws.input("full.tif"), width=240, height=180)
    cut = truncated_copy(source, ws.input("cut.tif"), keep=0.4)
    with open(ws.input("cut_RPC.TXT"), "w", encoding="utf-8") as handle:  # the copy lost the RPC domain
        handle.write(rpc_text(analytic_rpc()))
    return ortho(ws, INPUT=[cut])


CASES = [
    Case("orthorectify-no-scenes", "orthorectify", lambda ws: ortho(ws, INPUT=[]),
         r"No scenes given: choose raw scenes with RPCs"),
    Case("orthorectify-scene-without-rpc", "orthorectify",
         lambda ws: ortho(ws, INPUT=[scene(ws, "bare.tif", where=None)]),
         r"'.*bare\.tif' has no RPCs.*bare_RPC\.TXT"),
    Case("orthorectify-folder-scene-without-rpc", "orthorectify",
         lambda ws: ortho(ws, INPUT=[], FOLDER=os.path.dirname(scene(ws, "bare.tif", where=None))),
         r"has no RPCs"),
    Case("orthorectify-missing-folder", "orthorectify",
         lambda ws: ortho(ws, INPUT=[], FOLDER=ws.input("absent")), r"absent' does not exist"),
    Case("orthorectify-dem-not-covering", "orthorectify",
         lambda ws: ortho(ws, DEM=dem(ws, west=LON0 - 0.002, size=(160, 40))),
         r"does not cover the area to orthorectify"),
    Case("orthorectify-dem-not-covering-after-datum", "orthorectify",
         lambda ws: ortho(ws, DEM=dem(ws, north=LAT0 - 0.001, size=(60, 160), crs="EPSG:4326+5773"),
                          VERTICAL_DATUM=0),
         r"does not cover the area to orthorectify"),
    Case("orthorectify-dem-all-nodata", "orthorectify",
         lambda ws: ortho(ws, DEM=dem(ws, hole=(slice(None), slice(None)))), r"no valid height"),
    Case("orthorectify-dem-without-crs", "orthorectify",
         lambda ws: ortho(ws, DEM=dem(ws, crs="")), r"no coordinate reference system|has no CRS"),
    Case("orthorectify-target-crs-degrees", "orthorectify",
         lambda ws: ortho(ws, TARGET_CRS="EPSG:4326"),
         r"is in degrees, but the resolution is in metres"),
    Case("orthorectify-aoi-outside", "orthorectify",
         lambda ws: ortho(ws, AOI=polygon_layer(ws, aoi_wkt(west=LON0 + 0.01, east=LON0 + 0.012))),
         r"lies outside the scene"),
    Case("orthorectify-aoi-points", "orthorectify",
         lambda ws: ortho(ws, AOI=polygon_layer(ws, aoi_wkt(), geometry_type="Point")),
         r"is a point layer; a polygon layer is needed"),
    Case("orthorectify-egm2008-without-grid", "orthorectify", no_egm2008_grid,
         r"us_nga_egm08_25\.tif was not found.*https://cdn\.proj\.org/us_nga_egm08_25\.tif"),
    Case("orthorectify-unsupported-vertical-datum", "orthorectify",
         lambda ws: ortho(ws, DEM=dem(ws, crs="EPSG:4326+5703"), VERTICAL_DATUM=0),
         r"NAVD88.*cannot convert"),
    Case("orthorectify-truncated-scene", "orthorectify", truncated_scene,
         r"cut\.tif.*(truncated or corrupt|cannot be read)"),
    Case("orthorectify-resolution-zero", "orthorectify", lambda ws: ortho(ws, RESOLUTION=0),
         r"Resolution \(m\) must be between 0.01 and 10000 \(got 0\)"),
    Case("orthorectify-margin-negative", "orthorectify", lambda ws: ortho(ws, MARGIN=-1),
         r"Margin around the area of interest \(raw pixels\) must be between 0 and 100000"),
    Case("orthorectify-margin-fraction", "orthorectify", lambda ws: ortho(ws, MARGIN=2.5),
         r"must be a whole number"),
    Case("orthorectify-error-threshold-negative", "orthorectify", lambda ws: ortho(ws, ERROR_THRESHOLD=-0.1),
         r"Approximation error threshold \(px; 0 = exact\) must be between 0 and 10"),
    Case("orthorectify-height-offset-huge", "orthorectify", lambda ws: ortho(ws, HEIGHT_OFFSET=1e6),
         r"Height offset added to the DEM \(m\) must be between -10000 and 10000"),
    Case("orthorectify-no-dem", "orthorectify", lambda ws: {"INPUT": [scene(ws)], "OUTPUT_FOLDER": ws.output("o")},
         r"DEM \(heights in m\) is required"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path, monkeypatch):
    if case.id == "orthorectify-egm2008-without-grid":  # whatever grids this machine has
        monkeypatch.setattr("surface_motion.core.ortho.vdatum.proj_search_paths", lambda: [str(tmp_path / "none")])
    check_case(case, run_algorithm, tmp_path)
