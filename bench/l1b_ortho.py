"""L1B orthorectification on the project's synthetic scenes (issue 13 point 5): the numbers for the README.

Builds the acceptance job of tests/test_l1b_acceptance.py (tests/l1b_synthetic.py: two opposite
±4° looks of a pushbroom camera over relief with ~35° slopes, Sentinel-2 texture, fitted RPCs) in a
temporary folder, orthorectifies with core.ortho.orthorectify (3 m, UTM 18N, one job grid) and
prints a Markdown table: RPC fit residuals, GDAL's agreement with the camera, the geolocation error
against the truth, the opposite-look residual on the true DEM, the parallax on a DEM 30 m too high
against the camera's prediction, EGM96 against ellipsoidal DEM, the EGM2008 refusal and the AOI
vertex coverage. Offsets by core.offsets.correlate_files (chip 32, search ±4, step 16), in ortho px; "chips inside the AOI": cells whose 32 px chip holds no nodata (chips
cut by the AOI border correlate on their valid part only and scatter more).

Usage: ``python bench/l1b_ortho.py`` (about half a minute).
"""
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from osgeo import gdal  # noqa: E402

from core.errors import UserInputError  # noqa: E402
from l1b_synthetic import (aoi_vertex_coverage, correlate_orthos, expected_parallax_px, orthorectify,  # noqa: E402
                           prepare_job, true_dem, truth_path)

gdal.UseExceptions()


def _gdal_agreement(scene) -> float:
    """Largest |GDAL RPC transformer - camera| (px) over 300 random ground points, heights 0-700 m."""
    cam = scene.camera
    rng = np.random.default_rng(0)
    cols, rows, heights = rng.uniform(0, cam.cols, 300), rng.uniform(0, cam.rows, 300), rng.uniform(0, 700, 300)
    lon, lat, h = cam.image_to_ground(cols, rows, lambda a, b: heights)
    transformer = gdal.Transformer(gdal.Open(scene.path), None, ["METHOD=RPC"])
    points = np.array(transformer.TransformPoints(1, list(zip(lon, lat, h)))[0])
    return float(np.max(np.hypot(points[:, 0] - cols, points[:, 1] - rows)))


def _row(name, stats, target):
    return (f"| {name} | {stats['median_dx']:+.4f} | {stats['median_dy']:+.4f} | {stats['p95']:.4f} | "
            f"{stats['max']:.4f} | {stats['max_full_chips']:.4f} | {stats['valid']} | {target} |")


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="l1b_ortho_") as folder:
        job = prepare_job(folder)
        dem = true_dem()
        print(f"Relief {dem.h.min():.0f}-{dem.h.max():.0f} m (ellipsoidal), slopes up to "
              f"{dem.slope_degrees().max():.1f}°; raw scenes {job.scenes[1].camera.cols} x "
              f"{job.scenes[1].camera.rows} px at {job.scenes[1].camera.gsd} m, roll ±4°, 475 km.\n")
        print("| RPC fit | max residual (px) | rms (px) | GDAL - camera, max (px) |")
        print("|---|---|---|---|")
        for look, scene in job.scenes.items():
            print(f"| look {look * 4:+d}° | {scene.fit.max_residual:.2e} | {scene.fit.rms_residual:.2e} | "
                  f"{_gdal_agreement(scene):.2e} |")
        print("\n| comparison (ortho px) | median dx | median dy | p95 abs | max abs | max abs, chips inside "
              "the AOI | valid cells | target |")
        print("|---|---|---|---|---|---|---|---|")
        for look in (1, -1):
            offsets = correlate_orthos(truth_path(job), orthorectify(job, look, "ellipsoid"),
                                       os.path.join(folder, f"truth_{look}.tif"))
            print(_row(f"look {look * 4:+d}° vs truth (geolocation)", offsets.stats(), "< 0.2"))
        offsets = correlate_orthos(orthorectify(job, 1, "ellipsoid"), orthorectify(job, -1, "ellipsoid"),
                                   os.path.join(folder, "looks.tif"))
        print(_row("+4° vs -4°, true DEM", offsets.stats(), "< 0.1"))
        egm = correlate_orthos(orthorectify(job, 1, "ellipsoid"), orthorectify(job, 1, "egm96"),
                               os.path.join(folder, "egm96.tif"))
        print(_row("EGM96 DEM vs ellipsoid DEM (+4°)", egm.stats(), "< 0.05"))
        ignored = correlate_orthos(orthorectify(job, 1, "ellipsoid"),
                                   orthorectify(job, 1, "egm96", vertical_datum="ellipsoid"),
                                   os.path.join(folder, "egm96_ignored.tif"))
        print(_row("EGM96 DEM read as ellipsoidal (geoid ignored, +4°)", ignored.stats(), "(for comparison)"))
        raised = correlate_orthos(orthorectify(job, 1, "plus30"), orthorectify(job, -1, "plus30"),
                                  os.path.join(folder, "plus30.tif"))
        expected_dx, expected_dy = expected_parallax_px(raised, 30.0, job.grid.transform.a)
        measured = np.array([np.median(raised.dx), np.median(raised.dy)])
        expected = np.array([np.median(expected_dx), np.median(expected_dy)])
        error = np.linalg.norm(measured - expected) / np.linalg.norm(expected)
        print(f"\nDEM + 30 m, +4° vs -4°: measured ({measured[0]:+.4f}, {measured[1]:+.4f}) px, camera "
              f"prediction ({expected[0]:+.4f}, {expected[1]:+.4f}) px, |difference| / |prediction| = "
              f"{100 * error:.2f} % (target < 10 %)")
        try:
            from core.ortho.orthorectify import orthorectify_scene

            orthorectify_scene(job.scenes[1].path, job.dems["egm2008"], os.path.join(folder, "refused.tif"),
                               aoi_wkt=job.aoi, aoi_crs="EPSG:4326")
            refusal = "NOT refused"
        except UserInputError as exc:
            refusal = f"refused: {str(exc)[:160]}..."
        print(f"DEM declared EGM2008 (EPSG:4326+3855) without the grid: {refusal}")
        for look in (1, -1):
            _, _, covered = aoi_vertex_coverage(orthorectify(job, look, "ellipsoid"))
            print(f"AOI vertices with data, look {look * 4:+d}°: {int(covered.sum())}/{covered.size}")
        grid = job.grid
        seconds = ", ".join(f"{value:.1f}" for value in job.seconds.values())
        print(f"Job grid {grid.width} x {grid.height} px at {grid.transform.a} m ({grid.crs}); "
              f"seconds per ortho: {seconds}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
