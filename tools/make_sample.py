#!/usr/bin/python3
"""Build the embedded PlanetScope-like sample (``sample/``) with a known truth.

Five 4-band L3B-like scenes (1 blue, 2 green, 3 red, 4 NIR) are made from a
real Sentinel-2 L1C crop (B02, B03, B04, B08; window col_off=600,
row_off=200, 640 x 512 px: farmland and a bay) that is *pretended* to have
3 m PlanetScope pixels.  Each scene is the texture warped by

* a landslide: an ellipse moving at constant velocity (cosine taper over
  the outer part of the ellipse, flat core), displacement ``v * (t_k - t_0)``;
* a per-scene affine sub-pixel ramp, as left by orthorectification;

plus a gain/offset change and Gaussian sensor noise.  One scene carries a
small cloud, flagged in its UDM2.  The truth goes to ``sample/truth.json``;
the landslide outline and flat core go to GeoJSON polygons.

Coordinate and sign conventions (used by every function here):

* Pixel coordinates are GDAL's continuous ones: pixel (row i, column j)
  covers ``[j, j + 1) x [i, i + 1)``, so its centre is ``(j + 0.5, i + 0.5)``
  and ``transform * (col, row)`` gives map coordinates (REFERENCE §5.1).
* Displacements ``dx`` are + right (east), ``dy`` + down (south), in pixels.
* Scene k at pixel x shows the texture at ``x - D_k(x) - R_k(x)`` (inverse
  mapping), D = landslide, R = ramp.  A texture feature therefore moves by
  about ``+D + R`` between the texture and the scene.

Run: ``/usr/bin/python3 tools/make_sample.py [--source DIR] [--out DIR]``.
Deterministic: a fixed seed drives every random draw.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import datetime, timezone
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy import ndimage

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from core.dates import DAYS_PER_YEAR  # noqa: E402
from core.io import Grid, open_raster, write_raster, write_text  # noqa: E402

SEED = 20200715
SOURCE_BANDS = ("B02", "B03", "B04", "B08")
BAND_NAMES = ("blue", "green", "red", "nir")
SOURCE_WINDOW = Window(col_off=600, row_off=200, width=640, height=512)
PIXEL_SIZE_M = 3.0
CRS = "EPSG:32618"

SCENE_IDS = (
    "20200715_151233_62_2414",
    "20210112_150921_07_2455",
    "20210718_151502_45_241e",
    "20220109_150744_88_2276",
    "20220716_151117_19_24a3",
)
SCENE_SUFFIX = "_3B_AnalyticMS_SR_clip.tif"
UDM2_SUFFIX = "_3B_udm2_clip.tif"
UDM2_BAND_NAMES = (
    "clear", "snow", "shadow", "light haze", "heavy haze", "cloud", "confidence", "udm1",
)

LANDSLIDE = {
    "centre_col_px": 250.0,
    "centre_row_px": 260.0,
    "semi_axis_col_px": 72.0,
    "semi_axis_row_px": 54.0,
    "core_fraction": 0.75,
    "speed_m_per_yr": 9.0,
    "azimuth_deg": 135.0,
}

#: Small cloud over stable farmland (upper right), away from the landslide.
CLOUD = {
    "scene_index": 2,
    "centre_col_px": 470.0,
    "centre_row_px": 75.0,
    "semi_axis_col_px": 22.0,
    "semi_axis_row_px": 16.0,
}
CLOUD_BRIGHTNESS = (5200.0, 5000.0, 4900.0, 5600.0)  # blue, green, red, nir DN

SNR_DB = 30.0
GAIN_RANGE = (0.9, 1.15)
OFFSET_RANGE_DN = (-40.0, 40.0)
RAMP_MAX_CENTRE_PX = 0.2
RAMP_MAX_ACROSS_PX = 0.3
SPLINE_ORDER = 3
PARAMETER_STREAM = 0
CLOUD_STREAM = 99

#: Creation options beyond the shared writer's defaults (tiled 256, DEFLATE, predictor 2 for integers).
CREATION = {"zlevel": 9, "interleave": "band"}


# --------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------
def scene_time(scene_id: str) -> datetime:
    """UTC acquisition time of a SuperDove 4-token id ``YYYYMMDD_HHMMSS_FF_SSSS``."""
    date, clock, hundredths, _satellite = scene_id.split("_")
    stamp = datetime.strptime(date + clock, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    return stamp.replace(microsecond=int(hundredths) * 10000)


def iso_utc(stamp: datetime) -> str:
    """ISO 8601 UTC text with a ``Z`` suffix, e.g. ``2020-07-15T15:12:33.620000Z``."""
    return stamp.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def years_since(stamp: datetime, origin: datetime) -> float:
    """Signed years of 365.25 days from ``origin`` to ``stamp``."""
    return (stamp - origin).total_seconds() / 86400.0 / DAYS_PER_YEAR


# --------------------------------------------------------------------------
# Displacement fields (public: used by tests and the benchmark)
# --------------------------------------------------------------------------
def pixel_centres(height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """(cols, rows) of every pixel centre in GDAL pixel coordinates (j + 0.5, i + 0.5)."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    return cols + 0.5, rows + 0.5


def velocity_px_per_yr(spec: Mapping[str, float]) -> Tuple[float, float]:
    """(vx, vy) of the landslide in pixels/yr, vx + right (east), vy + down (south)."""
    speed_px = spec["speed_m_per_yr"] / PIXEL_SIZE_M
    azimuth = math.radians(spec["azimuth_deg"])
    return speed_px * math.sin(azimuth), -speed_px * math.cos(azimuth)


def landslide_weight(cols: np.ndarray, rows: np.ndarray, spec: Mapping[str, float]) -> np.ndarray:
    """Fraction of the full landslide displacement: 1 in the core, cosine taper to 0 at the rim.

    ``rho`` is the normalised elliptical radius (1 on the outline); the core is
    ``rho <= core_fraction`` and the taper is ``0.5 * (1 + cos(pi * s))`` with
    ``s`` going 0 -> 1 from the core edge to the outline.
    """
    rho = np.hypot(
        (np.asarray(cols, float) - spec["centre_col_px"]) / spec["semi_axis_col_px"],
        (np.asarray(rows, float) - spec["centre_row_px"]) / spec["semi_axis_row_px"],
    )
    core = spec["core_fraction"]
    s = np.clip((rho - core) / (1.0 - core), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * s))


def landslide_displacement(
    cols: np.ndarray, rows: np.ndarray, t_years: float, spec: Mapping[str, float]
) -> Tuple[np.ndarray, np.ndarray]:
    """Landslide displacement (dx + right, dy + down) in pixels after ``t_years``.

    ``cols``/``rows`` are GDAL pixel coordinates; ``spec`` is ``truth["landslide"]``
    (or :data:`LANDSLIDE`).
    """
    weight = landslide_weight(cols, rows, spec)
    vx, vy = velocity_px_per_yr(spec)
    return weight * (vx * t_years), weight * (vy * t_years)


def ramp_displacement(
    cols: np.ndarray, rows: np.ndarray, coeffs: Mapping[str, Mapping[str, float]]
) -> Tuple[np.ndarray, np.ndarray]:
    """Affine orthorectification ramp (dx + right, dy + down) in pixels.

    ``coeffs`` is a scene's ``ramp_px``: for each of ``"dx"`` and ``"dy"`` the
    value is ``const + per_col * col + per_row * row`` (GDAL pixel coordinates).
    """
    cols = np.asarray(cols, float)
    rows = np.asarray(rows, float)

    def plane(c: Mapping[str, float]) -> np.ndarray:
        return c["const"] + c["per_col"] * cols + c["per_row"] * rows

    return plane(coeffs["dx"]), plane(coeffs["dy"])


def scene_displacement(
    cols: np.ndarray, rows: np.ndarray, truth: Mapping, index: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Total displacement (landslide + ramp) of scene ``index`` relative to the texture, in px."""
    scene = truth["scenes"][index]
    lx, ly = landslide_displacement(cols, rows, scene["t_years"], truth["landslide"])
    rx, ry = ramp_displacement(cols, rows, scene["ramp_px"])
    return lx + rx, ly + ry


def warp_image(img: np.ndarray, dx_field: np.ndarray, dy_field: np.ndarray) -> np.ndarray:
    """Inverse-map ``img``: output pixel x takes the value of ``img`` at ``x - d(x)``.

    Cubic spline (``scipy.ndimage.map_coordinates``, order 3, mode 'nearest')
    on float64; the fields are in pixels (dx + right, dy + down) per output pixel.
    """
    height, width = img.shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    coords = np.stack([rows - dy_field, cols - dx_field])
    return ndimage.map_coordinates(
        np.asarray(img, np.float64), coords, order=SPLINE_ORDER, mode="nearest"
    )


def expected_pair_offsets(
    truth: Mapping,
    ref_index: int,
    sec_index: int,
    cols: np.ndarray,
    rows: np.ndarray,
    iterations: int = 60,
) -> Tuple[np.ndarray, np.ndarray]:
    """True disparity (dx + right, dy + down, pixels) from scene ``ref_index`` to ``sec_index``.

    A feature at reference position ``x`` (GDAL pixel coordinates ``cols``,
    ``rows``) is found in the secondary at ``x + (dx, dy)`` (REFERENCE §5.1).
    Both scenes show texture point ``u = x - F_ref(x)``, so the secondary
    position solves ``y = u + F_sec(y)``; solved by fixed-point iteration,
    which converges because the fields' gradients stay below 1.
    """
    cols = np.asarray(cols, float)
    rows = np.asarray(rows, float)
    ref_dx, ref_dy = scene_displacement(cols, rows, truth, ref_index)
    tex_col, tex_row = cols - ref_dx, rows - ref_dy
    sec_col, sec_row = cols.copy(), rows.copy()
    for _ in range(iterations):
        sec_dx, sec_dy = scene_displacement(sec_col, sec_row, truth, sec_index)
        sec_col, sec_row = tex_col + sec_dx, tex_row + sec_dy
    return sec_col - cols, sec_row - rows


# --------------------------------------------------------------------------
# Scene synthesis
# --------------------------------------------------------------------------
def sample_transform(source_transform: Affine) -> Affine:
    """North-up 3 m geotransform keeping the source window's upper-left corner."""
    x0, y0 = source_transform * (SOURCE_WINDOW.col_off, SOURCE_WINDOW.row_off)
    return Affine(PIXEL_SIZE_M, 0.0, x0, 0.0, -PIXEL_SIZE_M, y0)


def read_source_bands(source_dir: str) -> Tuple[np.ndarray, Affine]:
    """Read the four Sentinel-2 bands in the crop window as float64 (bands, rows, cols)."""
    bands = []
    transform = None
    for name in SOURCE_BANDS:
        path = os.path.join(source_dir, f"s2_{name}.tif")
        with open_raster(path) as ds:
            bands.append(ds.read(1, window=SOURCE_WINDOW).astype(np.float64))
            transform = ds.transform
    return np.stack(bands), transform


def draw_ramp(rng: np.random.Generator, width: int, height: int) -> Dict[str, Dict[str, float]]:
    """Random affine ramp: |value| <= 0.2 px at the centre, <= 0.3 px change across the scene."""
    coeffs = {}
    for axis in ("dx", "dy"):
        centre_value = rng.uniform(-RAMP_MAX_CENTRE_PX, RAMP_MAX_CENTRE_PX)
        per_col = rng.uniform(-1.0, 1.0) * (RAMP_MAX_ACROSS_PX / 2.0) / width
        per_row = rng.uniform(-1.0, 1.0) * (RAMP_MAX_ACROSS_PX / 2.0) / height
        const = centre_value - per_col * width / 2.0 - per_row * height / 2.0
        coeffs[axis] = {"const": float(const), "per_col": float(per_col), "per_row": float(per_row)}
    return coeffs


def cloud_mask(height: int, width: int) -> np.ndarray:
    """Boolean mask of the elliptical cloud (pixel centres inside the ellipse)."""
    cols, rows = pixel_centres(height, width)
    rho = np.hypot(
        (cols - CLOUD["centre_col_px"]) / CLOUD["semi_axis_col_px"],
        (rows - CLOUD["centre_row_px"]) / CLOUD["semi_axis_row_px"],
    )
    return rho <= 1.0


def cloud_values(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    """Bright, smoothly varying cloud DN per band, shape (bands, rows, cols)."""
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 4.0)
    texture /= max(texture.std(), 1e-12)
    return np.stack([level * (1.0 + 0.04 * texture) for level in CLOUD_BRIGHTNESS])


def scene_rng(index: int, stream: int) -> np.random.Generator:
    """Independent seeded random stream per scene and purpose.

    Streams: :data:`PARAMETER_STREAM` (ramp, gain, offset), ``1 + band`` (noise
    of a 0-based band), :data:`CLOUD_STREAM` (cloud texture).
    """
    return np.random.default_rng([SEED, index, stream])


def synthesize_band(texture_band: np.ndarray, truth: Mapping, index: int, band: int) -> np.ndarray:
    """Scene ``index``, band ``band`` (0-based) as float64 before the cloud and rounding.

    Warps the texture by the landslide + ramp of the scene, applies its gain
    and offset and adds Gaussian noise from the band's own seeded stream, so
    any single band can be regenerated exactly from ``truth``.
    """
    scene = truth["scenes"][index]
    cols, rows = pixel_centres(*texture_band.shape)
    dx, dy = scene_displacement(cols, rows, truth, index)
    warped = warp_image(texture_band, dx, dy)
    noise = scene_rng(index, 1 + band).standard_normal(warped.shape) * scene["noise_std_dn"][band]
    return scene["gain"] * warped + scene["offset_dn"] + noise


def to_uint16(scene: np.ndarray) -> np.ndarray:
    """Round and clip to 1..65535 so 0 stays the nodata value."""
    return np.clip(np.rint(scene), 1, 65535).astype(np.uint16)


def make_udm2(cloud: Optional[np.ndarray], shape: Tuple[int, int]) -> np.ndarray:
    """UDM2 bands (uint8, 8 x rows x cols): clear everywhere except under ``cloud``."""
    udm = np.zeros((8,) + shape, np.uint8)
    udm[0] = 1
    udm[6] = 95
    if cloud is not None:
        udm[0][cloud] = 0
        udm[5][cloud] = 1
        udm[6][cloud] = 80
        udm[7][cloud] = 2  # legacy UDM bit 1 = cloud
    return udm


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------
def write_scene(path: str, data: np.ndarray, transform: Affine, tags: Mapping[str, str]) -> None:
    """Write a 4-band uint16 L3B-like scene (nodata 0, tiled, DEFLATE + predictor 2)."""
    write_raster(path, Grid(CRS, transform, data.shape[2], data.shape[1]), data, BAND_NAMES, dtype="uint16",
                 nodata=0, tags=tags, creation=CREATION)


def write_udm2(path: str, udm: np.ndarray, transform: Affine) -> None:
    """Write an 8-band uint8 UDM2 on the scene grid (no nodata, like Planet's)."""
    write_raster(path, Grid(CRS, transform, udm.shape[2], udm.shape[1]), udm, UDM2_BAND_NAMES, dtype="uint8",
                 nodata=None, creation=CREATION, require_valid=None)


def ellipse_ring(spec: Mapping[str, float], fraction: float, transform: Affine,
                 vertices: int = 144) -> List[List[float]]:
    """Closed ring (map coordinates) of the ellipse scaled by ``fraction``, counter-clockwise."""
    ring = []
    for k in range(vertices + 1):
        angle = 2.0 * math.pi * (k % vertices) / vertices
        col = spec["centre_col_px"] + fraction * spec["semi_axis_col_px"] * math.cos(angle)
        row = spec["centre_row_px"] - fraction * spec["semi_axis_row_px"] * math.sin(angle)
        x, y = transform * (col, row)
        ring.append([round(x, 3), round(y, 3)])
    return ring


def polygon_geojson(ring: List[List[float]], properties: Mapping) -> str:
    """A one-feature GeoJSON FeatureCollection in EPSG:32618 (legacy ``crs`` member for QGIS)."""
    collection = {
        "type": "FeatureCollection",
        "name": properties.get("name", "polygon"),
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32618"}},
        "features": [{
            "type": "Feature",
            "properties": dict(properties),
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }],
    }
    return json.dumps(collection, indent=1) + "\n"


# --------------------------------------------------------------------------
# Truth and driver
# --------------------------------------------------------------------------
def landslide_truth() -> Dict[str, object]:
    """``truth["landslide"]``: geometry in px plus velocity in m/yr and px/yr."""
    vx, vy = velocity_px_per_yr(LANDSLIDE)
    azimuth = math.radians(LANDSLIDE["azimuth_deg"])
    return {
        **LANDSLIDE,
        "taper": "cosine over core_fraction < rho < 1 (rho = normalised elliptical radius)",
        "velocity_east_m_per_yr": LANDSLIDE["speed_m_per_yr"] * math.sin(azimuth),
        "velocity_north_m_per_yr": LANDSLIDE["speed_m_per_yr"] * math.cos(azimuth),
        "velocity_col_px_per_yr": vx,
        "velocity_row_px_per_yr": vy,
        "outline_file": "landslide_outline.geojson",
        "core_file": "landslide_core.geojson",
    }


SIGN_NOTE = (
    "Pixel coordinates are GDAL's: pixel (row i, col j) covers [j, j+1) x [i, i+1), centre "
    "(j+0.5, i+0.5); map = transform * (col, row). dx is + right (east), dy + down (south), "
    "in pixels. Scene k at pixel x shows the texture at x - D_k(x) - R_k(x) (landslide D_k = "
    "v * t_years weighted by the taper, ramp R_k = const + per_col*col + per_row*row). "
    "Velocities: east = +x, north = -dy * pixel_size; azimuth clockwise from grid north. "
    "Expected disparity ref->sec: tools/make_sample.py expected_pair_offsets."
)


def build_truth(transform: Affine, width: int, height: int, scenes: List[Dict]) -> Dict:
    """Assemble the truth dictionary written to ``truth.json``."""
    return {
        "description": "PlanetScope-like L3B sample with a synthetic landslide (see README.md)",
        "crs": CRS,
        "pixel_size_m": PIXEL_SIZE_M,
        "width": width,
        "height": height,
        "transform": [transform.a, transform.b, transform.c, transform.d, transform.e, transform.f],
        "sign_conventions": SIGN_NOTE,
        "days_per_year": DAYS_PER_YEAR,
        "seed": SEED,
        "source": {
            "files": [f"s2_{name}.tif" for name in SOURCE_BANDS],
            "window": {"col_off": SOURCE_WINDOW.col_off, "row_off": SOURCE_WINDOW.row_off,
                       "width": SOURCE_WINDOW.width, "height": SOURCE_WINDOW.height},
            "note": "Copernicus Sentinel-2 L1C 10 m pixels relabelled as 3 m",
        },
        "landslide": landslide_truth(),
        "cloud": dict(CLOUD),
        "snr_db": SNR_DB,
        "scenes": scenes,
    }


def scene_record(index: int, scene_id: str, t0: datetime, width: int, height: int,
                 noise_std: Sequence[float]) -> Dict:
    """Truth entry of one scene; its random parameters come from the scene's own stream."""
    rng = scene_rng(index, PARAMETER_STREAM)
    stamp = scene_time(scene_id)
    return {
        "index": index,
        "id": scene_id,
        "file": scene_id + SCENE_SUFFIX,
        "udm2_file": scene_id + UDM2_SUFFIX,
        "acquired": iso_utc(stamp),
        "t_years": years_since(stamp, t0),
        "ramp_px": draw_ramp(rng, width, height),
        "gain": float(rng.uniform(*GAIN_RANGE)),
        "offset_dn": float(rng.uniform(*OFFSET_RANGE_DN)),
        "noise_std_dn": list(noise_std),
        "cloudy": index == CLOUD["scene_index"],
    }


def write_landslide_polygons(out_dir: str, transform: Affine) -> None:
    """Write the outline (moving-area mask) and flat-core polygons as GeoJSON."""
    for name, fraction in (("landslide_outline", 1.0), ("landslide_core", LANDSLIDE["core_fraction"])):
        properties = {"name": name, "moving": 1, "speed_m_per_yr": LANDSLIDE["speed_m_per_yr"],
                      "azimuth_deg": LANDSLIDE["azimuth_deg"]}
        text = polygon_geojson(ellipse_ring(LANDSLIDE, fraction, transform), properties)
        write_text(os.path.join(out_dir, name + ".geojson"), text)


def require_source(source_dir: str) -> None:
    """Fail with a clear message when the Sentinel-2 source bands are missing."""
    missing = [f"s2_{name}.tif" for name in SOURCE_BANDS
               if not os.path.isfile(os.path.join(source_dir, f"s2_{name}.tif"))]
    if missing:
        raise SystemExit(
            f"Source folder '{source_dir}' lacks {', '.join(missing)}. Pass --source with the "
            "folder holding the Sentinel-2 bands s2_B02/B03/B04/B08.tif (EPSG:32618, 10 m)."
        )


def generate(source_dir: str, out_dir: str, progress=None) -> Dict:
    """Write the whole sample into ``out_dir`` and return the truth dictionary."""
    require_source(source_dir)
    texture, source_transform = read_source_bands(source_dir)
    _, height, width = texture.shape
    transform = sample_transform(source_transform)
    noise_std = [float(band.std() / 10.0 ** (SNR_DB / 20.0)) for band in texture]
    t0 = scene_time(SCENE_IDS[0])
    scenes = [scene_record(index, scene_id, t0, width, height, noise_std)
              for index, scene_id in enumerate(SCENE_IDS)]
    truth = build_truth(transform, width, height, scenes)
    cloud = cloud_mask(height, width)
    for index, record in enumerate(scenes):
        scene = np.stack([synthesize_band(texture[band], truth, index, band)
                          for band in range(texture.shape[0])])
        scene_cloud = cloud if record["cloudy"] else None
        if scene_cloud is not None:
            bright = cloud_values(scene_rng(index, CLOUD_STREAM), (height, width))
            scene[:, scene_cloud] = bright[:, scene_cloud]
        tags = {"SCENE_ID": record["id"], "ACQUIRED": record["acquired"],
                "SYNTHETIC": "PlanetScope-like sample from modified Copernicus Sentinel-2 data"}
        write_scene(os.path.join(out_dir, record["file"]), to_uint16(scene), transform, tags)
        write_udm2(os.path.join(out_dir, record["udm2_file"]),
                   make_udm2(scene_cloud, (height, width)), transform)
        if progress is not None:
            progress(100.0 * (index + 1) / (len(scenes) + 1))
    write_text(os.path.join(out_dir, "truth.json"), json.dumps(truth, indent=1) + "\n")
    write_landslide_polygons(out_dir, transform)
    if progress is not None:
        progress(100.0)
    return truth


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=os.path.join(REPO_ROOT, "..", "shared", "data", "sentinel2"),
                        help="folder with s2_B02.tif, s2_B03.tif, s2_B04.tif, s2_B08.tif")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "sample"), help="output folder")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    truth = generate(os.path.abspath(args.source), os.path.abspath(args.out))
    print(f"Wrote {len(truth['scenes'])} scenes to {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
