"""`make demo` (ITS_LIVE part): strain rates, flux divergence and particle tracks on the real
Alaska sample (tests/data/itslive) through qgis_process.bin, with PNG maps (tools/demo_maps.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data", "itslive")
VX = os.path.join(DATA, "alaska_vx_2010_2018.tif")
VY = os.path.join(DATA, "alaska_vy_2010_2018.tif")
OUTLINE_CSV = os.path.join(DATA, "glacier_outline.csv")
sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, REPO)
from demo import fresh_output_and_enabled_plugin, read_band, run_cli  # noqa: E402  (same environment as the main demo)
from demo_maps import MapStyle, coloured_lines, map_figure, save  # noqa: E402
from core.io import open_raster  # noqa: E402
from core.itslive.flux import outline_polygons_from_csv  # noqa: E402

#: Band 9 of the stacks = the 2018 annual mosaic.
STRAIN_PARAMETERS = {"VX": VX, "VY": VY, "BAND": 9, "METHOD": 1, "LENGTH_SCALE": 240.0}
TRACK_PARAMETERS = {"VX": VX, "VY": VY, "START_DATE": "2010-01-01T00:00:00", "DURATION": 9.0, "CFL": 0.5}


def run(env: dict, algorithm_id: str, parameters: dict) -> dict:
    return run_cli(env, algorithm_id, parameters)["results"]


def seed_points(path: str, step: int = 12, min_speed: float = 300.0) -> int:
    """Seeds every ``step`` cells where the 2010 speed exceeds ``min_speed`` m/yr (GeoJSON, EPSG:3413)."""
    with open_raster(VX) as vx, open_raster(VY) as vy:
        speed = np.hypot(vx.read(1), vy.read(1))
        transform = vx.transform
    features = []
    for row in range(step // 2, speed.shape[0], step):
        for col in range(step // 2, speed.shape[1], step):
            if np.isfinite(speed[row, col]) and speed[row, col] > min_speed:
                x = transform.c + (col + 0.5) * transform.a
                y = transform.f + (row + 0.5) * transform.e
                features.append({"type": "Feature", "properties": {"seed": len(features) + 1},
                                 "geometry": {"type": "Point", "coordinates": [x, y]}})
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"type": "FeatureCollection", "features": features,
                   "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3413"}}}, handle)
    return len(features)


def track_lines(path: str) -> List[dict]:
    """GeoJSON geometries of the particle tracks of a GeoPackage (QGIS reads it)."""
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(path, "tracks", "ogr")
    geometries = [json.loads(feature.geometry().asJson()) for feature in layer.getFeatures()]
    del layer
    return geometries


def draw_maps(strain_path: str, flux_path: str, lines_path: str, out_dir: str) -> List[str]:
    """The ITS_LIVE demo's PNG maps: effective strain rate with the particle tracks, longitudinal
    strain rate and flux divergence inside the glacier outline."""
    tracks = coloured_lines(track_lines(lines_path), "black")
    outline = coloured_lines(outline_polygons_from_csv(OUTLINE_CSV), "black")
    maps = {
        "strain_effective_tracks.png": (
            strain_path, 7, "Effective strain rate 2018 and particle tracks 2010-2018 (Malaspina / Seward)",
            MapStyle("effective strain rate", "1/yr", "magma", lines=tracks)),
        "strain_longitudinal.png": (
            strain_path, 9, "Longitudinal strain rate 2018 (+ extension, - compression)",
            MapStyle("longitudinal strain rate", "1/yr", "RdBu_r", symmetric=True)),
        "flux_divergence.png": (
            flux_path, 1, "Flux divergence 2018 inside the glacier outline (+ = dynamic thinning)",
            MapStyle("flux divergence", "m/yr", "RdBu_r", symmetric=True, lines=outline)),
    }
    written = []
    for name, (path, band, title, style) in maps.items():
        values, crs = read_band(path, band)
        written.append(save(map_figure(values, crs, title, style), os.path.join(out_dir, name)))
    return written


def summarise(strain_path: str, flux_path: str, lines_path: str) -> None:
    with open_raster(strain_path) as ds:
        effective, longitudinal = ds.read(7), ds.read(9)
    with open_raster(flux_path) as ds:
        divergence = ds.read(1)
    print(f"\nStrain rates 2018 (logarithmic, half length 240 m): effective median "
          f"{np.nanmedian(effective):.4f} 1/yr, 95th percentile {np.nanpercentile(effective, 95):.4f} 1/yr; "
          f"longitudinal {np.nanpercentile(longitudinal, 5):+.4f} .. {np.nanpercentile(longitudinal, 95):+.4f} 1/yr "
          f"(5-95 %)")
    print(f"Flux divergence 2018 inside the outline: median {np.nanmedian(divergence):+.2f} m/yr, "
          f"5-95 % {np.nanpercentile(divergence, 5):+.1f} .. {np.nanpercentile(divergence, 95):+.1f} m/yr "
          f"(positive = dynamic thinning)")
    from qgis.core import QgsVectorLayer

    lines = QgsVectorLayer(lines_path, "tracks", "ogr")
    lengths = [f["length_m"] for f in lines.getFeatures()]
    reasons = {}
    for feature in lines.getFeatures():
        reasons[feature["stop_reason"]] = reasons.get(feature["stop_reason"], 0) + 1
    print(f"Particle tracks 2010-2018: {len(lengths)} tracks, median length {np.median(lengths) / 1000:.1f} km, "
          f"longest {max(lengths) / 1000:.1f} km; stop reasons {reasons}")
    del lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plugin-path", required=True, help="folder holding surface_motion")
    parser.add_argument("--out", default=os.path.join(REPO, "demo_output", "itslive"))
    args = parser.parse_args()
    env = fresh_output_and_enabled_plugin(args.out, args.plugin_path)
    strain = run(env, "surfacemotion:strainrates", dict(STRAIN_PARAMETERS, OUTPUT=os.path.join(args.out, "strain_2018.tif")))
    flux = run(env, "surfacemotion:fluxdivergence", {
        "THICKNESS": os.path.join(DATA, "alaska_thickness.tif"), "VX": VX, "VY": VY, "BAND": 9,
        "OUTLINE_CSV": OUTLINE_CSV, "LENGTH_SCALE": 240.0, "COLUMN_FACTOR": 0.9,
        "OUTPUT": os.path.join(args.out, "flux_divergence_2018.tif")})
    seeds = os.path.join(args.out, "seeds.geojson")
    print(f"{seed_points(seeds)} seeds on ice faster than 300 m/yr")
    tracks = run(env, "surfacemotion:trackparticles", dict(
        TRACK_PARAMETERS, SEEDS=seeds, OUTPUT_LINES=os.path.join(args.out, "tracks.gpkg"),
        OUTPUT_POINTS=os.path.join(args.out, "track_vertices.gpkg")))

    from qgis.core import QgsApplication

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], True)
    app.initQgis()
    lines = tracks["OUTPUT_LINES"]
    maps = draw_maps(strain["OUTPUT"], flux["OUTPUT"], lines, args.out)
    summarise(strain["OUTPUT"], flux["OUTPUT"], lines)
    app.exitQgis()
    print("ITS_LIVE outputs:", args.out)
    print("Maps:", ", ".join(maps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
