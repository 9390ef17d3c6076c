"""Issue 13 point 5: orthorectification of synthetic L1B scenes (tests/l1b_synthetic.py) against the truth.

Two opposite looks (±4° roll) of a pushbroom camera over relief up to ~35° slopes, real Sentinel-2
texture, RPCs fitted to the camera (< 0.01 px). core.ortho.orthorectify puts them on one job grid
(3 m, UTM 18N) and the engine correlatepair runs (core.offsets.correlate_files, chip 32, search ±4,
step 16) measures: each ortho against the truth, the two looks against each other on the true DEM and
on a DEM 30 m too high (parallax predicted by the camera), an EGM96 DEM against its ellipsoidal twin.
bench/l1b_ortho.py prints the same numbers as a table.
"""
import os

import numpy as np
import pytest
from osgeo import gdal
from shapely.geometry import Point, Polygon

from core.errors import UserInputError
from core.io import open_raster
from l1b_synthetic import (aoi_lonlat, aoi_vertex_coverage, correlate_orthos, expected_parallax_px, job_grid_of,
                           make_scene, orthorectify, prepare_job, truth_path)

LOOKS = (1, -1)
EGM2008_GRID = "us_nga_egm08_25.tif"


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return prepare_job(str(tmp_path_factory.mktemp("l1b_ortho")))


@pytest.mark.parametrize("look", LOOKS)
def test_geolocation_error_is_below_a_fifth_of_a_pixel(job, look):
    ortho = orthorectify(job, look, "ellipsoid")
    offsets = correlate_orthos(truth_path(job), ortho, os.path.join(job.folder, f"truth_vs_{look}.tif"))
    stats = offsets.stats()
    print(f"look {look:+d} vs truth: {stats}")
    assert offsets.dx.size > 0.5 * offsets.total  # the AOI hexagon fills ~75 % of the grid's box
    assert abs(stats["median_dx"]) < 0.2 and abs(stats["median_dy"]) < 0.2
    assert stats["p95"] < 0.2  # over the scene, not only on average
    assert stats["full_chips"] > 0.5 * offsets.dx.size and stats["max_full_chips"] < 0.2  # chips without nodata


def test_opposite_looks_on_the_true_dem_agree(job):
    offsets = correlate_orthos(orthorectify(job, 1, "ellipsoid"), orthorectify(job, -1, "ellipsoid"),
                               os.path.join(job.folder, "looks_true_dem.tif"))
    stats = offsets.stats()
    print(f"+4° vs -4° on the true DEM: {stats}")
    assert abs(stats["median_dx"]) < 0.1 and abs(stats["median_dy"]) < 0.1
    assert stats["p95"] < 0.1 and stats["max_full_chips"] < 0.1


def test_opposite_looks_on_a_dem_30_m_too_high_show_the_parallax(job):
    offsets = correlate_orthos(orthorectify(job, 1, "plus30"), orthorectify(job, -1, "plus30"),
                               os.path.join(job.folder, "looks_plus30.tif"))
    expected_dx, expected_dy = expected_parallax_px(offsets, 30.0, job.grid.transform.a)
    measured = np.array([np.median(offsets.dx), np.median(offsets.dy)])
    expected = np.array([np.median(expected_dx), np.median(expected_dy)])
    print(f"+4° vs -4° on DEM + 30 m: measured {measured} px, expected {expected} px")
    assert np.linalg.norm(expected) > 1.0  # ~2 x 30 m x tan(4.3°) / 3 m = 1.5 px
    assert np.linalg.norm(measured - expected) < 0.1 * np.linalg.norm(expected)
    # cell by cell too: the parallax follows the terrain (slopes change the ground step)
    residual = np.hypot(offsets.dx - expected_dx, offsets.dy - expected_dy)
    assert np.percentile(residual, 90) < 0.1 * np.linalg.norm(expected)


def test_egm96_dem_gives_the_ortho_of_the_equivalent_ellipsoid_dem(job):
    ellipsoid, egm96 = orthorectify(job, 1, "ellipsoid"), orthorectify(job, 1, "egm96")
    offsets = correlate_orthos(ellipsoid, egm96, os.path.join(job.folder, "egm96_vs_ellipsoid.tif"))
    stats = offsets.stats()
    print(f"EGM96 DEM vs ellipsoid DEM: {stats}")
    assert stats["max"] < 0.05
    with open_raster(ellipsoid) as a, open_raster(egm96) as b:
        first, second = a.read(1), b.read(1)
    assert np.array_equal(np.isnan(first), np.isnan(second))
    # the same pixels: a 38 m geoid error would move them by ~0.9 px, i.e. tens of DN on this texture
    assert np.nanpercentile(np.abs(first - second), 99) < 2.0


def test_dem_declared_egm2008_without_its_grid_is_refused(job, tmp_path, monkeypatch):
    """PROJ's search path is emptied for the test, so the refusal is checked on a machine that has the
    grid installed too (the provider-setting folder, tmp_path, holds no grid)."""
    import core.ortho.vdatum as vdatum

    monkeypatch.setattr(vdatum, "proj_search_paths", lambda: [])
    from core.ortho.orthorectify import orthorectify_scene

    for dem, datum in ((job.dems["egm2008"], "crs"), (job.dems["ellipsoid"], "egm2008")):
        out = tmp_path / f"refused_{datum}.tif"
        with pytest.raises(UserInputError, match=EGM2008_GRID):
            orthorectify_scene(job.scenes[1].path, dem, str(out), aoi_wkt=job.aoi, aoi_crs="EPSG:4326",
                               vertical_datum=datum, geoid_folder=str(tmp_path))
        assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("look", LOOKS)
def test_aoi_clip_keeps_every_aoi_vertex_inside_the_output(job, look):
    from rasterio.warp import transform

    ortho = orthorectify(job, look, "ellipsoid")
    cols, rows, covered = aoi_vertex_coverage(ortho)
    assert covered.all(), f"AOI vertices without data: {np.c_[cols, rows][~covered]}"
    # NaN outside the AOI: cells more than 2 px outside are empty, cells more than 2 px inside are filled
    with open_raster(ortho) as ds:
        values, grid_transform, crs = ds.read(1), ds.transform, ds.crs
    vertices = aoi_lonlat()
    x, y = transform("EPSG:4326", crs, vertices[:, 0].tolist(), vertices[:, 1].tolist())
    polygon = Polygon(zip(x, y))
    pixel = abs(grid_transform.a)
    outside, inside = polygon.buffer(2 * pixel), polygon.buffer(-2 * pixel)
    rng = np.random.default_rng(0)
    for row, col in zip(rng.integers(0, values.shape[0], 3000), rng.integers(0, values.shape[1], 3000)):
        centre = Point(*(grid_transform * (col + 0.5, row + 0.5)))
        if not outside.contains(centre):
            assert np.isnan(values[row, col])
        elif inside.contains(centre):
            assert np.isfinite(values[row, col])


def test_rpc_txt_sidecar_scene_gives_the_same_ortho(job, tmp_path):
    """The same raw scene with its RPCs in a ``_RPC.TXT`` sidecar instead of the TIFF's RPC domain."""
    from core.ortho.orthorectify import orthorectify_scene

    scene = make_scene(str(tmp_path), 1, sidecar=True, name="sidecar_1B_AnalyticMS")
    sidecar = str(tmp_path / "sidecar_1B_AnalyticMS_RPC.TXT")
    assert sidecar in gdal.Open(scene.path).GetFileList()  # GDAL pairs the sidecar; the TIFF holds no RPC tag
    out = orthorectify_scene(scene.path, job.dems["ellipsoid"], str(tmp_path / "sidecar_ortho.tif"),
                             grid=job_grid_of(job), aoi_wkt=job.aoi, aoi_crs="EPSG:4326")
    with open_raster(orthorectify(job, 1, "ellipsoid")) as a, open_raster(out) as b:
        first, second = a.read(1), b.read(1)
    assert np.array_equal(np.isnan(first), np.isnan(second))
    assert np.nanmax(np.abs(first - second)) < 1e-3
