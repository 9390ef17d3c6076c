"""`make demo`: run the shipped model on the embedded sample through qgis_process.bin,
draw PNG maps (speed, de-ramped dx; tools/demo_maps.py) and print recovered against true landslide speed."""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import List, Tuple

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample")
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tools"))
from core.io import open_raster  # noqa: E402  (the plugin's reader, QGIS-free)
from demo_maps import Band, MapStyle, coloured_lines, map_figure, save  # noqa: E402
MODEL_ID = "surfacemotion:planetscopel3bvelocity"

#: Settings of the demo run (the sample moves up to ~6 px between its oldest and newest scene).
DEMO_PARAMETERS = {"BAND": 2, "USE_UDM2": True, "DT_MIN": 150, "CHIP_SIZE": 32, "SEARCH_RANGE": 10,
                   "STEP": 4, "ORDER": 1}


#: Model destinations (QGIS names them <child id>:<output>) and where the demo writes them.
MODEL_OUTPUTS = {"pairs:PAIRS_CSV": "pairs.csv", "correlate:DISPARITY_FOLDER": "disparity",
                 "polyfit:DERAMPED_FOLDER": "deramped", "velocity:VELOCITY_FOLDER": "velocity"}


def qgis_process_env(plugin_path: str) -> dict:
    """Environment for qgis_process.bin: plugin discoverable, throw-away profile, and the
    packages pip added to this (virtual) environment visible to QGIS's Python."""
    config = tempfile.mkdtemp(prefix="sm-qgis-config-")
    python_path = [sysconfig.get_paths()["purelib"], os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, QGIS_PLUGINPATH=plugin_path, QGIS_CUSTOM_CONFIG_PATH=config,
                QT_QPA_PLATFORM="offscreen", PYTHONPATH=os.pathsep.join(p for p in python_path if p))


def fresh_output_and_enabled_plugin(out_dir: str, plugin_path: str) -> dict:
    """Empty ``out_dir`` and return a qgis_process environment with the plugin enabled."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    env = qgis_process_env(plugin_path)
    subprocess.run(["qgis_process.bin", "plugins", "enable", "surface_motion"], env=env, check=True,
                   capture_output=True)
    return env


def run_cli(env: dict, algorithm_id: str, parameters: dict) -> dict:
    """Run one algorithm with ``qgis_process.bin --json run`` and return its JSON answer.

    List values are passed as repeated arguments (multiple-layer parameters).
    """
    arguments = ["qgis_process.bin", "--json", "run", algorithm_id, "--"]
    for key, value in parameters.items():
        arguments += [f"{key}={item}" for item in (value if isinstance(value, list) else [value])]
    print("Running", algorithm_id, "with qgis_process.bin ...", flush=True)
    done = subprocess.run(arguments, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{algorithm_id} failed with exit code {done.returncode}")
    return json.loads(done.stdout)


def run_model(out_dir: str, env: dict) -> dict:
    """Run the shipped model on the sample (plugin enabled in ``env``) and return its JSON answer."""
    parameters = {"SCENES": sorted(glob.glob(os.path.join(SAMPLE, "*_3B_AnalyticMS_SR_clip.tif"))),
                  **DEMO_PARAMETERS, "MOVING_AREA": os.path.join(SAMPLE, "landslide_outline.geojson")}
    parameters.update({name: os.path.join(out_dir, path) for name, path in MODEL_OUTPUTS.items()})
    return run_cli(env, MODEL_ID, parameters)


def rasterize_geojson(path: str, shape, transform) -> np.ndarray:
    """Boolean mask of the polygons of a GeoJSON file on a raster grid (same CRS assumed)."""
    from rasterio.features import rasterize

    with open(path, encoding="utf-8") as handle:
        features = json.load(handle)["features"]
    return rasterize([f["geometry"] for f in features], out_shape=shape, transform=transform,
                     fill=0, default_value=1, all_touched=False).astype(bool)


def evaluate_velocity(path: str) -> dict:
    """Recovered speed in the landslide core and on stable ground of one velocity raster."""
    with open_raster(path) as ds:
        speed, azimuth = ds.read(1), ds.read(2)
        core = rasterize_geojson(os.path.join(SAMPLE, "landslide_core.geojson"), speed.shape, ds.transform)
        moving = rasterize_geojson(os.path.join(SAMPLE, "landslide_outline.geojson"), speed.shape, ds.transform)
        tags = ds.tags()
    stable = ~moving & np.isfinite(speed)
    in_core = core & np.isfinite(speed)
    return {
        "file": os.path.basename(path),
        "dt_days": float(tags.get("SM_DT_DAYS", "nan")),
        "core_speed": float(np.median(speed[in_core])) if in_core.any() else float("nan"),
        "core_azimuth": float(np.median(azimuth[in_core])) if in_core.any() else float("nan"),
        "core_valid": float(in_core.sum() / max(core.sum(), 1)),
        "stable_speed": float(np.median(speed[stable])) if stable.any() else float("nan"),
        "stable_p90": float(np.percentile(speed[stable], 90)) if stable.any() else float("nan"),
    }


def read_band(path: str, band: int) -> Tuple[Band, object]:
    """One band of a raster as a :class:`demo_maps.Band` (float64, nodata as NaN) and its CRS."""
    with open_raster(path) as ds:
        values = ds.read(band, masked=True).astype(np.float64).filled(np.nan)
        return Band(values, ds.transform), ds.crs


def pair_title(path: str) -> str:
    """'2020-07-15 → 2021-01-12' from the dates a disparity or velocity raster carries."""
    with open_raster(path) as ds:
        tags = ds.tags()
    return f"{tags.get('SM_REF_DATE', '?')[:10]} → {tags.get('SM_SEC_DATE', '?')[:10]}"


def draw_maps(velocity_path: str, deramped_path: str, out_dir: str) -> List[str]:
    """The demo's PNG maps of one pair: speed over the green band of the oldest scene, and the
    de-ramped column offset dx, both with the landslide outline."""
    background, _ = read_band(sorted(glob.glob(os.path.join(SAMPLE, "*_3B_AnalyticMS_SR_clip.tif")))[0], 2)
    with open(os.path.join(SAMPLE, "landslide_outline.geojson"), encoding="utf-8") as handle:
        outline = [feature["geometry"] for feature in json.load(handle)["features"]]
    speed, crs = read_band(velocity_path, 1)
    dx, _ = read_band(deramped_path, 1)
    pair = pair_title(velocity_path)
    maps = {
        "velocity_map.png": (speed, f"Landslide speed, PlanetScope sample {pair}",
                             MapStyle("speed", "m/yr", "viridis", alpha=0.8, lines=coloured_lines(outline, "white"))),
        "disparity_dx_map.png": (dx, f"Column offset dx after ramp removal, {pair}",
                                 MapStyle("dx, + right (east)", "px", "RdBu_r", symmetric=True, alpha=0.85,
                                          lines=coloured_lines(outline, "black"))),
    }
    return [save(map_figure(band, crs, title, style, background), os.path.join(out_dir, name))
            for name, (band, title, style) in maps.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plugin-path", required=True, help="folder holding surface_motion")
    parser.add_argument("--out", default=os.path.join(REPO, "demo_output"))
    args = parser.parse_args()
    env = fresh_output_and_enabled_plugin(args.out, args.plugin_path)
    run_model(args.out, env)
    velocities = sorted(glob.glob(os.path.join(args.out, "velocity", "*_velocity.tif")))
    if not velocities:
        raise SystemExit("The model produced no velocity raster.")
    with open(os.path.join(SAMPLE, "truth.json"), encoding="utf-8") as handle:
        truth = json.load(handle)["landslide"]
    true_speed, true_azimuth = truth["speed_m_per_yr"], truth["azimuth_deg"]
    print(f"\nTrue landslide speed {true_speed:.2f} m/yr towards {true_azimuth:.0f} deg")
    print(f"{'velocity raster':58s} {'dt (d)':>7s} {'speed':>7s} {'error':>7s} {'azimuth':>8s} {'stable':>7s}")
    results = [evaluate_velocity(path) for path in velocities]
    for r in results:
        error = 100.0 * (r["core_speed"] - true_speed) / true_speed
        print(f"{r['file']:58s} {r['dt_days']:7.1f} {r['core_speed']:7.2f} {error:+6.1f}% "
              f"{r['core_azimuth']:8.1f} {r['stable_speed']:7.2f}")
    mean_speed = float(np.mean([r["core_speed"] for r in results]))
    print(f"\nRecovered landslide speed (mean over {len(results)} pairs): {mean_speed:.2f} m/yr "
          f"vs true {true_speed:.2f} m/yr ({100 * (mean_speed - true_speed) / true_speed:+.1f} %); "
          f"stable ground median {np.mean([r['stable_speed'] for r in results]):.2f} m/yr (m/yr, speed, band 1)")
    longest = max(results, key=lambda r: r["dt_days"])
    velocity = os.path.join(args.out, "velocity", longest["file"])
    deramped = os.path.join(args.out, "deramped", longest["file"].replace("_velocity.tif", ".tif"))
    maps = draw_maps(velocity, deramped, args.out)
    print("Velocity GeoTIFFs:", os.path.join(args.out, "velocity"))
    print("Maps:", ", ".join(maps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
