"""Flux divergence ∇·(H v) (REFERENCE §8.6) on analytic fields, outline handling, real data."""
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from core.errors import UserInputError
from core.itslive.flux import flux_divergence, flux_divergence_file, outline_polygons_from_csv

DATA = os.path.join(os.path.dirname(__file__), "data", "itslive")
PIXEL = 100.0
SHAPE = (30, 40)
TRANSFORM = from_origin(0.0, 3000.0, PIXEL, PIXEL)


def coordinates(shape=SHAPE, transform=TRANSFORM):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return transform.c + transform.a * (cols + 0.5), transform.f + transform.e * (rows + 0.5)


def analytic(x, y):
    """H = 300 + 0.02x − 0.01y (m); vx = 50 + 0.01x, vy = 20 − 0.005y (m/yr)."""
    h = 300.0 + 0.02 * x - 0.01 * y
    vx = 50.0 + 0.01 * x
    vy = 20.0 - 0.005 * y
    divergence = 0.02 * vx + 0.01 * h + (-0.01) * vy + (-0.005) * h
    return h, vx, vy, divergence


def write(path, array, transform=TRANSFORM, crs="EPSG:3413", nodata=float("nan")):
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                       dtype="float32" if np.isnan(nodata) else "float64", crs=crs, transform=transform,
                       nodata=nodata) as ds:
        ds.write(array.astype(ds.dtypes[0]), 1)
    return str(path)


def test_divergence_of_analytic_flux_is_exact_with_the_right_axes_and_sign():
    x, y = coordinates()
    h, vx, vy, expected = analytic(x, y)
    result = flux_divergence(h, vx, vy, TRANSFORM)
    np.testing.assert_allclose(result["flux_divergence"][1:-1, 1:-1], expected[1:-1, 1:-1], rtol=1e-12)
    assert np.isnan(result["flux_divergence"][0]).all() and np.isnan(result["flux_divergence"][:, -1]).all()
    # the notebook's axes (∂qx/∂y + ∂qy/∂x, no y sign) give a different, wrong answer
    qx, qy = h * vx, h * vy
    notebook = (qx[2:, 1:-1] - qx[:-2, 1:-1]) / (2 * PIXEL) + (qy[1:-1, 2:] - qy[1:-1, :-2]) / (2 * PIXEL)
    assert np.abs(notebook - expected[1:-1, 1:-1]).min() > 1.0
    # uniform flow thinning along x: q = H0·(a·x) → divergence = H0·a > 0 (dynamic thinning)
    extending = flux_divergence(np.full(SHAPE, 200.0), 0.01 * x, np.zeros(SHAPE), TRANSFORM, r=2, column_factor=0.8)
    np.testing.assert_allclose(extending["flux_divergence"][2:-2, 2:-2], 0.8 * 200.0 * 0.01, rtol=1e-12)


def test_file_resamples_thickness_and_masks_outside_the_outline(tmp_path):
    x, y = coordinates()
    _, vx, vy, expected = analytic(x, y)
    vx_path = write(tmp_path / "vx.tif", vx)
    vy_path = write(tmp_path / "vy.tif", vy)
    # thickness on a finer, shifted grid with a -9999 nodata border: bilinear keeps the linear H exact
    fine = from_origin(-175.0, 3225.0, 50.0, 50.0)
    xf, yf = coordinates((70, 90), fine)
    thickness = 300.0 + 0.02 * xf - 0.01 * yf
    thickness[:, -3:] = -9999.0
    h_path = write(tmp_path / "h.tif", thickness, fine, nodata=-9999.0)
    csv_path = tmp_path / "outline.csv"
    csv_path.write_text("fid,cngmeters,x,y\n1,0,500,2500\n1,100,3500,2500\n1,200,3500,500\n1,300,500,500\n")
    out = str(tmp_path / "flux.tif")
    summary = flux_divergence_file(h_path, vx_path, vy_path, out, outline_csv=str(csv_path))
    with rasterio.open(out) as ds:
        assert ds.descriptions[0] == "flux_divergence (m/yr)" and ds.count == 4
        divergence, h_on_grid = ds.read(1), ds.read(2)
    inside = np.zeros(SHAPE, bool)
    inside[5:25, 5:35] = True  # cell centres within (500..3500, 500..2500)
    assert np.array_equal(np.isfinite(h_on_grid), inside)
    np.testing.assert_allclose(divergence[inside], expected[inside], rtol=1e-5)
    assert summary["n_cells"] == inside.sum()


def test_outline_csv_formats(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("0,0\n10,0\n10,10\n")
    polygons = outline_polygons_from_csv(str(plain))
    assert polygons[0]["coordinates"][0] == [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 0.0)]
    two = tmp_path / "two.csv"
    two.write_text("fid,x,y\n1,0,0\n1,1,0\n1,1,1\n2,5,5\n2,6,5\n2,6,6\n")
    assert len(outline_polygons_from_csv(str(two))) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n0,0\n1,a\n1,1\n")
    with pytest.raises(UserInputError, match="line 3"):
        outline_polygons_from_csv(str(bad))


def test_outline_in_the_wrong_crs_is_reported(tmp_path):
    x, y = coordinates()
    h, vx, vy, _ = analytic(x, y)
    paths = [write(tmp_path / f"{n}.tif", a) for n, a in (("h", h), ("vx", vx), ("vy", vy))]
    polygon = {"type": "Polygon", "coordinates": [[(1e6, 1e6), (1e6 + 10, 1e6), (1e6, 1e6 + 10), (1e6, 1e6)]]}
    with pytest.raises(UserInputError, match="does not overlap"):
        flux_divergence_file(paths[0], paths[1], paths[2], str(tmp_path / "o.tif"), outline_polygons=[polygon])
    assert not os.path.exists(tmp_path / "o.tif")


def test_real_alaska_flux_divergence(tmp_path):
    out = str(tmp_path / "alaska_flux.tif")
    summary = flux_divergence_file(os.path.join(DATA, "alaska_thickness.tif"),
                                   os.path.join(DATA, "alaska_vx_2010_2018.tif"),
                                   os.path.join(DATA, "alaska_vy_2010_2018.tif"), out,
                                   outline_csv=os.path.join(DATA, "glacier_outline.csv"), band=7,
                                   length_scale_m=240.0, column_factor=0.9)
    assert summary["n_cells"] > 5000
    with rasterio.open(out) as ds:
        divergence = ds.read(1)
        assert ds.crs.to_epsg() == 3413
    # dynamic thinning/thickening rates of a valley glacier: tens of m/yr at most in the median
    assert abs(summary["median_m_per_yr"]) < 50.0
    assert np.nanpercentile(np.abs(divergence), 50) < 100.0
