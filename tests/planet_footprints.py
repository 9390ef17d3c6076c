"""Synthetic footprints layers (the fields of core/planet/schema.py) for the planetgroups and buildpairs
tests: GeoJSON files in EPSG:4326 with rectangles and known angles."""
from __future__ import annotations

import glob
import json
import os
from typing import Dict, List, Optional, Sequence

from conftest import SAMPLE_DIR

from surface_motion.core.offsets.planetscope import iso_utc, parse_scene_id
from surface_motion.core.planet.schema import FOOTPRINT_FIELDS

SAMPLE_SCENES = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))
#: Lon/lat bounds of the sample scenes (all share one grid).
SAMPLE_BOUNDS = (-75.66137869428862, 37.728734421722834, -75.63946841057403, 37.74269819525306)


def rectangle(west: float, south: float, east: float, north: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                [west, south]]]}


def footprint(scene_id: str, true_va: float, sun_azimuth: float = 150.0, sun_elevation: float = 40.0,
              geometry: Optional[dict] = None, **extra) -> dict:
    """One footprint feature with every schema field (acquired from the id; satellite azimuth on the
    side the true view angle says, scan line 10°)."""
    properties = {name: None for name, _, _ in FOOTPRINT_FIELDS}
    properties.update(
        id=scene_id, acquired=iso_utc(parse_scene_id(scene_id + "_3B_x.tif").acquired), instrument="PSB.SD",
        satellite_id=scene_id.split("_")[-1], view_angle=abs(true_va), true_view_angle=true_va,
        satellite_azimuth=100.0 if true_va >= 0 else 280.0, sun_azimuth=sun_azimuth, sun_elevation=sun_elevation,
        cloud_cover=0.0, clear_percent=100.0, gsd=3.0, ground_control=True, quality_category="standard",
        publishing_stage="finalized", aoi_coverage_pct=100.0, orbit="descending")
    properties.update(extra)
    return {"type": "Feature", "properties": properties, "geometry": geometry or rectangle(*SAMPLE_BOUNDS)}


def write_layer(path: str, features: Sequence[dict], drop: Sequence[str] = ()) -> str:
    """A GeoJSON file of ``features`` (EPSG:4326) without the fields ``drop``."""
    for feature in features:
        for name in drop:
            feature["properties"].pop(name, None)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"type": "FeatureCollection", "features": list(features)}, handle)
    return path


def sample_ids() -> List[str]:
    return [parse_scene_id(path).scene_id for path in SAMPLE_SCENES]


#: True view angles of the five sample scenes: the summer scenes seen from the east (≈ +3°), the
#: winter ones from the west (≈ −4°).
SAMPLE_ANGLES: Dict[str, float] = {"20200715_151233_62_2414": 3.0, "20210112_150921_07_2455": -4.0,
                                   "20210718_151502_45_241e": 3.1, "20220109_150744_88_2276": -4.1,
                                   "20220716_151117_19_24a3": 3.2}


def sample_footprints(path: str, shift_deg: float = 0.002, **extra) -> str:
    """Footprints of the five sample scenes, scene k shifted east by k × ``shift_deg`` degrees."""
    west, south, east, north = SAMPLE_BOUNDS
    features = [footprint(scene_id, SAMPLE_ANGLES[scene_id],
                          geometry=rectangle(west + k * shift_deg, south, east + k * shift_deg, north), **extra)
                for k, scene_id in enumerate(sample_ids())]
    return write_layer(path, features)
