"""Strain rates (REFERENCE §8.5) on analytic velocity fields, y sign on north-up grids, files."""
import os

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin

from core.errors import UserInputError
from core.itslive.grids import centred_derivatives, decimate
from core.itslive.strain import STRAIN_BANDS, logarithmic_strain, nominal_strain, strain_rates_file

DATA = os.path.join(os.path.dirname(__file__), "data", "itslive")
PIXEL = 100.0
SHAPE = (40, 50)
TRANSFORM = from_origin(-2500.0, 2000.0, PIXEL, PIXEL)  # north-up, centre of the grid near (0, 0)


def coordinates(shape=SHAPE, transform=TRANSFORM):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return transform.c + transform.a * (cols + 0.5), transform.f + transform.e * (rows + 0.5)


def analytic_field(gradient):
    """v = L·(x, y) for the velocity gradient L = [[∂vx/∂x, ∂vx/∂y], [∂vy/∂x, ∂vy/∂y]] (1/yr)."""
    x, y = coordinates()
    (a, b), (c, d) = gradient
    return a * x + b * y, c * x + d * y


FIELDS = {
    # name: (gradient, expected exx, eyy, exy, spin)
    "uniform_extension": (((0.02, 0.0), (0.0, 0.0)), 0.02, 0.0, 0.0, 0.0),
    "pure_shear": (((0.03, 0.0), (0.0, -0.03)), 0.03, -0.03, 0.0, 0.0),
    "simple_shear": (((0.0, 0.04), (0.0, 0.0)), 0.0, 0.0, 0.02, -0.02),
    "rigid_rotation": (((0.0, -0.05), (0.05, 0.0)), 0.0, 0.0, 0.0, 0.05),
}


def interior(array, margin=3):
    return array[margin:-margin, margin:-margin]


@pytest.mark.parametrize("name", sorted(FIELDS))
@pytest.mark.parametrize("r", [1, 3])
def test_nominal_strain_is_exact_on_linear_fields(name, r):
    gradient, exx, eyy, exy, spin = FIELDS[name]
    vx, vy = analytic_field(gradient)
    result = nominal_strain(vx, vy, TRANSFORM, r)
    for key, expected in (("exx", exx), ("eyy", eyy), ("exy", exy), ("spin", spin)):
        np.testing.assert_allclose(interior(result[key], r), expected, atol=1e-15)
        assert np.isnan(result[key][:r]).all() and np.isnan(result[key][:, -r:]).all()
    e1 = 0.5 * (exx + eyy) + np.sqrt(0.25 * (exx - eyy) ** 2 + exy ** 2)
    e2 = 0.5 * (exx + eyy) - np.sqrt(0.25 * (exx - eyy) ** 2 + exy ** 2)
    np.testing.assert_allclose(interior(result["e1"], r), e1, atol=1e-15)
    np.testing.assert_allclose(interior(result["e2"], r), e2, atol=1e-15)
    np.testing.assert_allclose(interior(result["ezz"], r), -(exx + eyy), atol=1e-15)
    effective = np.sqrt(0.5 * (exx ** 2 + eyy ** 2 + (exx + eyy) ** 2) + exy ** 2)
    np.testing.assert_allclose(interior(result["effective"], r), effective, atol=1e-15)


def test_principal_direction_and_flow_frame():
    # simple shear vx = k·y: e1 = k/2 at +45°; pure shear: e1 along x (0°)
    vx, vy = analytic_field(((0.0, 0.04), (0.0, 0.0)))
    result = nominal_strain(vx, vy, TRANSFORM, 1)
    np.testing.assert_allclose(interior(result["theta_p"]), 45.0, atol=1e-12)
    np.testing.assert_allclose(interior(result["e1"]), 0.02, atol=1e-15)
    # flow frame: a field stretching along its own flow direction θ = 30°
    theta = np.radians(30.0)
    u = np.array([np.cos(theta), np.sin(theta)])
    rate = 0.01
    x, y = coordinates()
    along = x * u[0] + y * u[1] + 50_000.0  # positive: flow along +u everywhere
    vx, vy = rate * along * u[0], rate * along * u[1]
    result = nominal_strain(vx, vy, TRANSFORM, 1)
    np.testing.assert_allclose(interior(result["longitudinal"]), rate, atol=1e-15)
    np.testing.assert_allclose(interior(result["transverse"]), 0.0, atol=1e-15)
    np.testing.assert_allclose(interior(result["shear"]), 0.0, atol=1e-15)
    np.testing.assert_allclose(interior(result["theta_p"]), 30.0, atol=1e-9)


def test_y_derivative_sign_on_north_up_grid():
    # vy = 0.01·y grows northwards: on a north-up raster it DEcreases down the rows
    x, y = coordinates()
    vy = 0.01 * y
    assert vy[0, 0] > vy[-1, 0]
    d_dx, d_dy = centred_derivatives(vy, TRANSFORM, 1)
    np.testing.assert_allclose(interior(d_dy), 0.01, atol=1e-15)
    np.testing.assert_allclose(interior(d_dx), 0.0, atol=1e-15)
    # the same field on a south-up grid (e > 0) gives the same physical derivative
    south_up = Affine(PIXEL, 0, -2500.0, 0, PIXEL, -2000.0)
    xs, ys = coordinates(SHAPE, south_up)
    _, d_dy_south = centred_derivatives(0.01 * ys, south_up, 1)
    np.testing.assert_allclose(interior(d_dy_south), 0.01, atol=1e-15)
    # the notebook's bug (row difference / 2dy with no sign flip) would give -0.01
    notebook = (vy[2:, :] - vy[:-2, :]) / (2 * PIXEL)
    np.testing.assert_allclose(notebook, -0.01, atol=1e-15)


@pytest.mark.parametrize("name", ["uniform_extension", "pure_shear", "rigid_rotation"])
def test_logarithmic_strain_is_exact_for_homogeneous_stretching_and_rotation(name):
    gradient, exx, eyy, exy, spin = FIELDS[name]
    vx, vy = analytic_field(gradient)
    result = logarithmic_strain(vx, vy, TRANSFORM, r=2, tolerance=1e-6)
    valid = np.isfinite(result["exx"])
    assert valid.sum() == (SHAPE[0] - 8) * (SHAPE[1] - 8)  # NaN within 2r of the edges
    for key, expected in (("exx", exx), ("eyy", eyy), ("exy", exy), ("spin", spin)):
        np.testing.assert_allclose(result[key][valid], expected, rtol=1e-3, atol=1e-3 * 0.05)


def test_logarithmic_strain_simple_shear_matches_nominal_to_second_order():
    vx, vy = analytic_field(((0.0, 0.04), (0.0, 0.0)))
    result = logarithmic_strain(vx, vy, TRANSFORM, r=2, tolerance=1e-6)
    valid = np.isfinite(result["exy"])
    # lines rotate under shear: second-order effect below 0.1 % of k
    np.testing.assert_allclose(result["exy"][valid], 0.02, atol=1e-3 * 0.04)
    np.testing.assert_allclose(result["exx"][valid], 0.0, atol=1e-3 * 0.04)


def test_decimation_matches_the_notebooks_upscale():
    x, y = coordinates()
    coarse, transform = decimate(x, TRANSFORM, 5)
    np.testing.assert_array_equal(coarse, x[::5, ::5])
    # coarse pixel centres sit on the kept samples
    assert transform.c + transform.a * 0.5 == pytest.approx(x[0, 0])
    assert transform.a == 5 * PIXEL and transform.e == -5 * PIXEL


def write_stack(path, arrays, transform=TRANSFORM, descriptions=None):
    arrays = np.atleast_3d(np.asarray(arrays, dtype=np.float32))
    if arrays.ndim == 2:
        arrays = arrays[None]
    with rasterio.open(path, "w", driver="GTiff", width=arrays.shape[2], height=arrays.shape[1],
                       count=arrays.shape[0], dtype="float32", crs="EPSG:3413", transform=transform,
                       nodata=float("nan")) as ds:
        ds.write(arrays)
        for k, text in enumerate(descriptions or [], start=1):
            ds.set_band_description(k, text)
    return str(path)


def test_strain_file_bands_units_upscale_and_uncertainty(tmp_path):
    vx, vy = analytic_field(((0.03, 0.0), (0.0, -0.03)))
    vx_path = write_stack(tmp_path / "vx.tif", vx[None])
    vy_path = write_stack(tmp_path / "vy.tif", vy[None])
    err = write_stack(tmp_path / "err.tif", np.full((1,) + SHAPE, 3.0))
    out = str(tmp_path / "strain.tif")
    summary = strain_rates_file(vx_path, vy_path, out, length_scale_m=200.0,
                                vx_error_path=err, vy_error_path=err)
    assert summary["radius_px"] == 2
    with rasterio.open(out) as ds:
        assert ds.count == len(STRAIN_BANDS) + 1 and ds.dtypes[0] == "float32"
        assert ds.descriptions[0] == "exx (1/yr)" and ds.descriptions[5] == "theta_p (deg)"
        assert ds.descriptions[-1] == "uncertainty (1/yr)"
        assert ds.crs.to_epsg() == 3413
        exx, eyy, unc = ds.read(1), ds.read(2), ds.read(ds.count)
    np.testing.assert_allclose(interior(exx), 0.03, rtol=1e-6)
    np.testing.assert_allclose(interior(eyy), -0.03, rtol=1e-6)
    np.testing.assert_allclose(unc, np.sqrt(18.0) / 400.0, rtol=1e-6)  # baseline 2·r·Δ = 400 m

    coarse = str(tmp_path / "coarse.tif")
    strain_rates_file(vx_path, vy_path, coarse, upscale=5)
    with rasterio.open(coarse) as ds:
        assert (ds.height, ds.width) == (8, 10) and ds.transform.a == 500.0
        np.testing.assert_allclose(ds.read(1)[1:-1, 1:-1], 0.03, rtol=1e-6)


def test_block_processing_equals_whole_array(tmp_path):
    rng = np.random.default_rng(1)
    shape = (600, 40)
    transform = from_origin(0, 60000, PIXEL, PIXEL)
    vx = rng.normal(100, 5, shape).cumsum(axis=0) / 50
    vy = rng.normal(-50, 5, shape).cumsum(axis=1) / 50
    vx_path = write_stack(tmp_path / "vx.tif", vx[None], transform)
    vy_path = write_stack(tmp_path / "vy.tif", vy[None], transform)
    for method in ("nominal", "logarithmic"):
        out = str(tmp_path / f"{method}.tif")
        strain_rates_file(vx_path, vy_path, out, method=method, length_scale_m=100.0)
        whole = (nominal_strain if method == "nominal" else logarithmic_strain)(
            vx.astype(np.float32).astype(float), vy.astype(np.float32).astype(float), transform, 1)
        with rasterio.open(out) as ds:
            np.testing.assert_allclose(ds.read(1), whole["exx"].astype(np.float32), rtol=1e-5, atol=1e-9)


def test_strain_on_real_alaska_data_is_plausible(tmp_path):
    out = str(tmp_path / "alaska_strain.tif")
    strain_rates_file(os.path.join(DATA, "alaska_vx_2010_2018.tif"), os.path.join(DATA, "alaska_vy_2010_2018.tif"),
                      out, band=7, length_scale_m=240.0)
    with rasterio.open(out) as ds:
        effective = ds.read(7)
        ezz, exx, eyy = ds.read(12), ds.read(1), ds.read(2)
    finite = np.isfinite(effective)
    assert finite.mean() > 0.5
    np.testing.assert_allclose(ezz[finite], -(exx + eyy)[finite], atol=1e-6)
    # glacier strain rates are mostly below 1/yr
    assert 0.001 < np.nanmedian(effective) < 0.5


def test_bad_inputs_raise_user_errors(tmp_path):
    vx, vy = analytic_field(((0.01, 0.0), (0.0, 0.0)))
    vx_path = write_stack(tmp_path / "vx.tif", vx[None])
    vy_small = write_stack(tmp_path / "vy.tif", vy[None, :10, :10])
    with pytest.raises(UserInputError, match="not on the same grid"):
        strain_rates_file(vx_path, vy_small, str(tmp_path / "o.tif"))
    with pytest.raises(UserInputError, match="band 3 does not exist"):
        strain_rates_file(vx_path, vx_path, str(tmp_path / "o.tif"), band=3)
    assert not os.path.exists(tmp_path / "o.tif")
