"""`make demo` (ITS_LIVE part): strain rates, flux divergence and particle tracks on the real
Alaska sample (tests/data/itslive) through qgis_process.bin, with PNG maps rendered by QGIS."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data", "itslive")
VX = os.path.join(DATA, "alaska_vx_2010_2018.tif")
VY = os.path.join(DATA, "alaska_vy_2010_2018.tif")
sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, REPO)
from demo import fresh_output_and_enabled_plugin, render_png, run_cli  # noqa: E402  (same environment as the main demo)
from core.io import open_raster  # noqa: E402

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


def render(png_path: str, raster_path: str, style: str, vectors=(), title_layer_name: str = "") -> None:
    """Render one styled raster (plus vector overlays with their styles) to a PNG with QGIS."""
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    raster = QgsRasterLayer(raster_path, title_layer_name or style)
    raster.loadNamedStyle(os.path.join(REPO, "ui", "styles", style + ".qml"))
    layers = []
    for path, vector_style in vectors:
        layer = QgsVectorLayer(path, vector_style, "ogr")
        layer.loadNamedStyle(os.path.join(REPO, "ui", "styles", vector_style + ".qml"))
        layers.append(layer)
    render_png(layers + [raster], raster.crs(), raster.extent(), png_path, size=(900, 900))
    del layers, raster  # layers must die before QGIS shuts down


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
        "OUTLINE_CSV": os.path.join(DATA, "glacier_outline.csv"), "LENGTH_SCALE": 240.0, "COLUMN_FACTOR": 0.9,
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
    maps = {
        "strain_effective_tracks.png": (strain["OUTPUT"], "strain_effective", [(lines, "tracks_lines")]),
        "strain_longitudinal.png": (strain["OUTPUT"], "strain_longitudinal", []),
        "flux_divergence.png": (flux["OUTPUT"], "flux_divergence", []),
    }
    for name, (raster, style, vectors) in maps.items():
        render(os.path.join(args.out, name), raster, style, vectors)
    summarise(strain["OUTPUT"], flux["OUTPUT"], lines)
    app.exitQgis()
    print("ITS_LIVE outputs and PNG maps:", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
