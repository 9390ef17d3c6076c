"""Bad inputs of surfacemotion:planetgroups and of the footprints input of surfacemotion:buildpairs
(issue 12): real bad footprints layers (missing fields, points, duplicates, unreadable times, scenes
without footprints, groups without a pair) and out-of-range numbers, each with the expected message
fragment and nothing left in the output folder."""
from __future__ import annotations

import pytest

from bad_inputs import Case, case_ids, check_case
from planet_footprints import SAMPLE_ANGLES, SAMPLE_SCENES, footprint, sample_ids, write_layer


def footprints(ws, name="footprints.geojson", drop=(), ids=None, **changes) -> str:
    """The sample scenes' footprints in ``ws.inputs`` (fields ``drop`` removed, ``changes`` set on all)."""
    features = [footprint(i, SAMPLE_ANGLES[i], **changes) for i in (ids or sample_ids())]
    return write_layer(ws.input(name), features, drop=drop)


def duplicated(ws) -> str:
    features = [footprint(i, SAMPLE_ANGLES[i]) for i in sample_ids()]
    features.append(footprint(sample_ids()[0], 1.0))
    return write_layer(ws.input("duplicated.geojson"), features)


def points(ws) -> str:
    features = [footprint(i, SAMPLE_ANGLES[i], geometry={"type": "Point", "coordinates": [-75.65, 37.73]})
                for i in sample_ids()]
    return write_layer(ws.input("points.geojson"), features)


def groups(ws, layer, **parameters):
    return {"INPUT": layer, "MIN_DAYS": 0, "OUTPUT": ws.output("groups.gpkg"), "DEM_PAIRS": ws.output("dem.csv"),
            **parameters}


def pairs(ws, layer, **parameters):
    return {"INPUTS": SAMPLE_SCENES, "FOOTPRINTS": layer, "OUTPUT": ws.output("p.gpkg"),
            "OUTPUT_CSV": ws.output("p.csv"), **parameters}


CASES = [
    # ---- planetgroups: the footprints layer
    Case("planetgroups-no-input", "planetgroups", lambda ws: {"OUTPUT": ws.output("g.gpkg"),
                                                              "DEM_PAIRS": ws.output("d.csv")},
         r"Scene footprints is required"),
    Case("planetgroups-missing-sun-fields", "planetgroups",
         lambda ws: groups(ws, footprints(ws, drop=["sun_azimuth", "sun_elevation"])),
         r"lacks the field\(s\) sun_azimuth, sun_elevation; it has id, acquired"),
    Case("planetgroups-no-view-angle-sign", "planetgroups",
         lambda ws: groups(ws, footprints(ws, drop=["true_view_angle", "satellite_azimuth"])),
         r"lacks the field\(s\) true_view_angle \(or satellite_azimuth to compute it\)"),
    Case("planetgroups-point-layer", "planetgroups", lambda ws: groups(ws, points(ws)),
         r"is a point layer; a polygon layer is needed"),
    Case("planetgroups-empty-layer", "planetgroups", lambda ws: groups(ws, write_layer(ws.input("e.geojson"), [])),
         r"no features|cannot be read|not a valid"),
    Case("planetgroups-duplicate-id", "planetgroups", lambda ws: groups(ws, duplicated(ws)),
         r"The scene id 20200715_151233_62_2414 occurs twice in the footprints \(features 1 and 6\)"),
    Case("planetgroups-unreadable-time", "planetgroups",
         lambda ws: groups(ws, footprints(ws, acquired="last summer")),
         r"acquisition time \(field 'acquired'\) is unreadable: 'last summer' is not an ISO 8601"),
    Case("planetgroups-missing-file", "planetgroups", lambda ws: groups(ws, ws.input("absent.geojson")),
         r"absent\.geojson"),
    # ---- planetgroups: numbers
    Case("planetgroups-tolerance-negative", "planetgroups",
         lambda ws: groups(ws, footprints(ws), TOLERANCE=-0.1),
         r"True view-angle tolerance \(degrees\) must be between 0 and 45 \(got -0.1\)"),
    Case("planetgroups-group-size-zero", "planetgroups",
         lambda ws: groups(ws, footprints(ws), MIN_GROUP_SIZE=0),
         r"Minimum group size \(scenes\) must be between 1 and 100000 \(got 0\)"),
    Case("planetgroups-group-size-fraction", "planetgroups",
         lambda ws: groups(ws, footprints(ws), MIN_GROUP_SIZE=2.5), r"must be a whole number"),
    Case("planetgroups-min-days-negative", "planetgroups",
         lambda ws: groups(ws, footprints(ws), MIN_DAYS=-1),
         r"Minimum time between group members \(days\) must be between 0 and"),
    Case("planetgroups-scan-line-60", "planetgroups",
         lambda ws: groups(ws, footprints(ws), SCAN_LINE_AZIMUTH=60),
         r"Scan-line azimuth \(degrees\) must be between 0 and 45 \(got 60\)"),
    Case("planetgroups-sun-azimuth-tolerance", "planetgroups",
         lambda ws: groups(ws, footprints(ws), ILLUMINATION=True, SUN_AZIMUTH_TOLERANCE=200),
         r"Sun azimuth tolerance \(degrees\) must be between 0 and 180 \(got 200\)"),
    Case("planetgroups-dem-max-days-zero", "planetgroups",
         lambda ws: groups(ws, footprints(ws), DEM_MAX_DAYS=0),
         r"DEM pairs: maximum time between the scenes \(days\) must be between 0.01 and"),
    Case("planetgroups-dem-view-angle-90", "planetgroups",
         lambda ws: groups(ws, footprints(ws), DEM_MIN_VIEW_ANGLE=90),
         r"DEM pairs: minimum view angle \(degrees\) must be between 0 and 60 \(got 90\)"),

    # ---- buildpairs with FOOTPRINTS
    Case("buildpairs-footprints-missing-fields", "buildpairs",
         lambda ws: pairs(ws, footprints(ws, drop=["acquired", "view_angle"])),
         r"Scene footprints \(pairs within groups\): the layer lacks the field\(s\) acquired, view_angle"),
    Case("buildpairs-footprints-points", "buildpairs", lambda ws: pairs(ws, points(ws)),
         r"is a point layer; a polygon layer is needed"),
    Case("buildpairs-footprints-lack-scenes", "buildpairs",
         lambda ws: pairs(ws, footprints(ws, ids=sample_ids()[:2])),
         r"3 scene\(s\) have no footprint in the footprints layer: 20210718_151502_45_241e, "
         r"20220109_150744_88_2276, 20220716_151117_19_24a3"),
    Case("buildpairs-footprints-no-group", "buildpairs",
         lambda ws: pairs(ws, footprints(ws, group_id=-1)),
         r"No pair of the 5 scenes lies within one group of the scene footprints"),
    Case("buildpairs-footprints-groups-too-close", "buildpairs",
         lambda ws: pairs(ws, footprints(ws, group_id=1), DT_MIN=800),
         r"lies within one group.*DT_MIN = 800 days"),
    Case("buildpairs-footprints-duplicate-id", "buildpairs", lambda ws: pairs(ws, duplicated(ws)),
         r"occurs twice in the footprints"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)
