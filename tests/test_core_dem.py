"""Tests of core.dem: DEM → reference DEM co-registration by Nuth & Kääb (2011).

Sign convention under test (core/dem/report.py): the misaligned DEM is the reference terrain moved by
KNOWN = (+2.4 m east, −1.7 m north) and raised by +3.1 m, i.e. DEM(x) = reference(x − (2.4, −1.7)) + 3.1.
The reported shift is the correction applied to the DEM, so it must be (−2.4, +1.7, −3.1) m.

Real relief: the Rome 30 m DEM (tests/data/s1, EGM96 heights) reprojected once to UTM 33N at 30 m;
analytic relief: sums of sinusoids and a Gaussian hill, evaluated exactly on both grids.
The builders below are shared by the algorithm, bad-input and fault tests.
"""
import csv
import os

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject

from conftest import DATA_DIR
from core.dem import nuth_kaab as nk
from core.dem.coregister import coregister_dem_file, fit_pair
from core.dem.inputs import open_pair, vertical_crs_name
from core.dem.report import COLUMNS
from core.dem.terrain import nmad, slope_aspect
from core.errors import UserInputError
from core.io import is_complete_raster

ROME = os.path.join(DATA_DIR, "s1", "Rome-30m-DEM.tif")
UTM33 = "EPSG:32633"
KNOWN = (2.4, -1.7, 3.1)
CORRECTION = (-2.4, 1.7, -3.1)
CELL = 30.0


# --------------------------------------------------------------------------- builders (shared)

def write_dem(path, values, transform, crs=UTM33, description="elevation", units="m"):
    values = np.asarray(values, dtype="float32")
    with rasterio.open(str(path), "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=float("nan")) as ds:
        ds.write(values, 1)
        ds.set_band_description(1, description)
        ds.units = (units,)
    return str(path)


def rome_utm(path):
    """The Rome DEM reprojected to UTM 33N at 30 m (cubic), NaN outside; EGM96 heights (2-D CRS)."""
    if os.path.exists(str(path)):
        return str(path)
    with rasterio.open(ROME) as src:
        transform, width, height = calculate_default_transform(src.crs, UTM33, src.width, src.height,
                                                               *src.bounds, resolution=CELL)
        values = np.full((height, width), np.nan, "float32")
        reproject(src.read(1).astype("float32"), values, src_transform=src.transform, src_crs=src.crs,
                  src_nodata=src.nodata, dst_transform=transform, dst_crs=UTM33, dst_nodata=np.nan,
                  resampling=Resampling.cubic)
    values[:2], values[-2:], values[:, :2], values[:, -2:] = np.nan, np.nan, np.nan, np.nan
    return write_dem(path, values, transform)


def centre_plane(transform, shape, gradient_x, gradient_y):
    """gradient_x·(x − x0) + gradient_y·(y − y0) at the cell centres, (x0, y0) the grid centre (m/m)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    x, y = transform * (cols, rows)
    x0, y0 = transform * (shape[1] / 2.0, shape[0] / 2.0)
    return gradient_x * (x - x0) + gradient_y * (y - y0)


def displaced_copy(source, target, dx=KNOWN[0], dy=KNOWN[1], dz=KNOWN[2], plane=(0.0, 0.0), crs=None,
                   change=None):
    """``source`` moved by (dx, dy) m (its geotransform translated: exact) and raised by dz + a plane
    (gradients in m/m about the grid centre) + ``change`` (an array, e.g. fake glacier thinning)."""
    with rasterio.open(str(source)) as src:
        values = src.read(1).astype("float64")
        transform = src.transform
        source_crs = src.crs
    moved = Affine.translation(dx, dy) * transform
    values = values + dz + centre_plane(moved, values.shape, *plane)
    if change is not None:
        values = values + change
    return write_dem(target, values, moved, crs or source_crs)


def resampled_copy(source, target, dx=KNOWN[0], dy=KNOWN[1], dz=KNOWN[2], noise=0.0, seed=5):
    """``source`` moved by (dx, dy) m on ITS OWN grid: values interpolated (cubic spline) at x − (dx, dy),
    raised by dz, plus Gaussian noise of ``noise`` m (interpolation error and noise, as in a real DEM)."""
    from scipy import ndimage

    with rasterio.open(str(source)) as src:
        values = src.read(1).astype("float64")
        transform, crs = src.transform, src.crs
    rows, cols = np.mgrid[0:values.shape[0], 0:values.shape[1]].astype("float64")
    filled = np.where(np.isfinite(values), values, np.nanmedian(values))
    moved = ndimage.map_coordinates(filled, [rows + dy / abs(transform.e), cols - dx / transform.a], order=3,
                                    mode="nearest")
    moved[~np.isfinite(values)] = np.nan
    moved += dz + np.random.default_rng(seed).normal(0.0, noise, moved.shape) if noise else dz
    return write_dem(target, moved, transform, crs)


def relief(x, y):
    """Analytic terrain (m) at map coordinates relative to (300000, 4650000)."""
    return (400.0 + 150.0 * np.sin(x / 900.0) * np.cos(y / 1300.0) + 80.0 * np.cos((x + 2.0 * y) / 700.0)
            + 60.0 * np.exp(-((x - 6000.0) ** 2 + (y + 5000.0) ** 2) / 2.0e6))


def analytic_dem(path, cell, size, offset=(0.0, 0.0, 0.0)):
    """The analytic terrain on a ``size`` x ``size`` grid of ``cell`` m, moved by offset (dx, dy, dz)."""
    transform = from_origin(300000.0, 4650000.0, cell, cell)
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    x, y = transform * (cols, rows)
    values = relief(x - 300000.0 - offset[0], y - 4650000.0 - offset[1]) + offset[2]
    return write_dem(path, values, transform)


def outputs_in(folder, stem="dem"):
    folder = str(folder)
    return tuple(os.path.join(folder, f"{stem}_{name}") for name in
                 ("coreg.tif", "dh_before.tif", "dh_after.tif", "report.csv"))


def read_report(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def rome(tmp_path_factory):
    return rome_utm(tmp_path_factory.mktemp("rome") / "rome_utm33.tif")


# --------------------------------------------------------------------------- terrain and the fit

def test_slope_and_aspect_of_a_plane_follow_the_conventions():
    """A plane rising 0.1 m/m to the east faces west (aspect 270°), slope atan(0.1)."""
    transform = from_origin(0, 300, 10, 10)
    rows, cols = np.mgrid[0:30, 0:30] + 0.5
    x, _ = transform * (cols, rows)
    tan_slope, aspect = slope_aspect(0.1 * x, transform)
    assert np.isnan(tan_slope[0]).all() and np.isnan(aspect[:, 0]).all()
    np.testing.assert_allclose(tan_slope[1:-1, 1:-1], 0.1, atol=1e-12)
    np.testing.assert_allclose(np.degrees(aspect[1:-1, 1:-1]), 270.0, atol=1e-9)
    _, north_down = slope_aspect(-0.2 * (transform * (cols, rows))[1], transform)  # falls towards north
    np.testing.assert_allclose(np.degrees(north_down[1:-1, 1:-1]), 0.0, atol=1e-9)


def test_nmad_of_a_gaussian_is_its_sigma():
    values = np.random.default_rng(1).normal(3.0, 2.0, 200_000)
    assert nmad(values) == pytest.approx(2.0, rel=0.01)
    assert np.isnan(nmad(np.array([np.nan])))


def test_the_cosine_fit_recovers_the_offset_of_binned_synthetic_data():
    """dh / tan α = o_y cos ψ + o_x sin ψ + c exactly: the linear fit gives (o_x, o_y, c)."""
    aspect = np.random.default_rng(2).uniform(0, 2 * np.pi, 50_000)
    y = -1.7 * np.cos(aspect) + 2.4 * np.sin(aspect) + 0.5
    o_x, o_y, c, bins = nk.fit_cosine(aspect, y)
    assert (o_x, o_y, c) == pytest.approx((2.4, -1.7, 0.5), abs=2e-3)
    assert bins == 72


def test_the_cosine_fit_refuses_too_few_aspects():
    aspect = np.random.default_rng(3).uniform(0, 0.4, 5000)  # slopes facing one way only
    with pytest.raises(UserInputError, match="Only 5 of the 72 aspect bins"):
        nk.fit_cosine(aspect, np.zeros_like(aspect))


# --------------------------------------------------------------------------- recovery of a known shift

def test_known_shift_on_the_rome_dem_is_recovered(rome, tmp_path):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    out = outputs_in(tmp_path)
    result = coregister_dem_file(dem, rome, *out)
    errors = (result["shift_x_m"] - CORRECTION[0], result["shift_y_m"] - CORRECTION[1],
              result["shift_z_m"] - CORRECTION[2])
    print("Rome errors (m):", errors, "iterations", result["iterations"], "NMAD", result["nmad_before_m"],
          "->", result["nmad_after_m"])
    assert abs(errors[0]) < 0.1 * CELL and abs(errors[1]) < 0.1 * CELL and abs(errors[2]) < 0.1
    assert np.hypot(errors[0], errors[1]) < 0.05 and abs(errors[2]) < 0.01  # measured 0.0002 m and 0.0 m
    assert result["converged"] and 2 <= result["iterations"] <= 10
    assert result["nmad_after_m"] < 0.25 * result["nmad_before_m"]
    assert result["median_before_m"] == pytest.approx(KNOWN[2], abs=0.3)


def test_known_shift_of_a_resampled_noisy_rome_dem_is_recovered(rome, tmp_path):
    """The harder case: the moved DEM is interpolated onto the reference grid and carries 0.5 m noise."""
    dem = resampled_copy(rome, tmp_path / "dem.tif", noise=0.5)
    result = coregister_dem_file(dem, rome, *outputs_in(tmp_path))
    errors = np.subtract((result["shift_x_m"], result["shift_y_m"], result["shift_z_m"]), CORRECTION)
    print("resampled noisy Rome errors (m):", errors, "NMAD", result["nmad_before_m"], "->",
          result["nmad_after_m"], "iterations", result["iterations"])
    assert np.hypot(*errors[:2]) < 0.1 * CELL and abs(errors[2]) < 0.1
    assert result["converged"] and result["nmad_after_m"] < result["nmad_before_m"]


def test_known_shift_on_analytic_relief_with_different_resolutions(tmp_path):
    """Reference at 20 m, DEM at 30 m: the reference is resampled onto the DEM grid."""
    reference = analytic_dem(tmp_path / "ref.tif", 20.0, 450)
    dem = analytic_dem(tmp_path / "dem.tif", 30.0, 300, KNOWN)
    result = coregister_dem_file(dem, reference, *outputs_in(tmp_path))
    errors = np.subtract((result["shift_x_m"], result["shift_y_m"], result["shift_z_m"]), CORRECTION)
    print("analytic errors (m):", errors, "NMAD", result["nmad_before_m"], "->", result["nmad_after_m"])
    assert np.hypot(*errors[:2]) < 0.1 and abs(errors[2]) < 0.01  # measured 0.041 m (0.0014 px), 0.0001 m
    # what is left (0.10 m of 0.32 m) is the interpolation of the 20 m reference onto the 30 m grid
    assert result["nmad_after_m"] < 0.4 * result["nmad_before_m"]


def test_the_tilt_option_recovers_a_known_plane(rome, tmp_path):
    """DEM raised by a plane of +0.8 m/km east and −0.5 m/km north on top of the known shift."""
    dem = displaced_copy(rome, tmp_path / "dem.tif", plane=(0.8e-3, -0.5e-3))
    result = coregister_dem_file(dem, rome, *outputs_in(tmp_path), tilt=True)
    print("tilt result:", {k: result[k] for k in ("shift_x_m", "shift_y_m", "shift_z_m", "tilt_x_m_per_km",
                                                   "tilt_y_m_per_km")})
    assert result["tilt_x_m_per_km"] == pytest.approx(-0.8, abs=0.01)
    assert result["tilt_y_m_per_km"] == pytest.approx(0.5, abs=0.01)
    assert result["shift_z_m"] == pytest.approx(CORRECTION[2], abs=0.05)
    assert np.hypot(result["shift_x_m"] - CORRECTION[0], result["shift_y_m"] - CORRECTION[1]) < 0.2
    without = coregister_dem_file(dem, rome, *outputs_in(tmp_path, "plain"))
    assert without["nmad_after_m"] > 2 * result["nmad_after_m"]  # a tilt left in spreads dh


def glacier(rome_path):
    """A fake glacier: the DEM's cells in the eastern 40 % of the grid thinned by 5 m + 5 m per 100 m of
    elevation below the area's top (lower = more thinning, like a real tongue); its polygon (GeoJSON)."""
    with rasterio.open(rome_path) as ds:
        values = ds.read(1).astype("float64")
        transform = ds.transform
    rows, cols = np.mgrid[0:values.shape[0], 0:values.shape[1]]
    inside = cols >= int(0.6 * values.shape[1])
    top = np.nanmax(values[inside])
    change = np.where(inside, -(5.0 + 0.05 * (top - values)), 0.0)
    col0 = int(0.6 * values.shape[1])
    left, top_y = transform * (col0, 0)
    right, bottom = transform * (values.shape[1], values.shape[0])
    polygon = {"type": "Polygon", "coordinates": [[(left - 2 * CELL, top_y), (right, top_y), (right, bottom),
                                                    (left - 2 * CELL, bottom), (left - 2 * CELL, top_y)]]}
    return change, polygon


def test_the_unstable_mask_removes_the_bias_of_glacier_thinning(rome, tmp_path):
    change, polygon = glacier(rome)
    dem = displaced_copy(rome, tmp_path / "dem.tif", change=change)
    biased = coregister_dem_file(dem, rome, *outputs_in(tmp_path, "nomask"))
    masked = coregister_dem_file(dem, rome, *outputs_in(tmp_path, "mask"), unstable_geometries=[polygon])

    def error(result):
        return (np.hypot(result["shift_x_m"] - CORRECTION[0], result["shift_y_m"] - CORRECTION[1]),
                abs(result["shift_z_m"] - CORRECTION[2]))

    print("glacier: without mask", error(biased), "with mask", error(masked))
    assert error(biased)[0] > 1.0 and error(biased)[1] > 0.1  # measured 2.19 m and 0.21 m
    assert error(masked)[0] < 0.05 and error(masked)[1] < 0.02
    assert masked["n_stable_cells"] < 0.7 * biased["n_stable_cells"]


# --------------------------------------------------------------------------- the outputs

def test_outputs_keep_the_dem_grid_and_say_what_they_hold(rome, tmp_path):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    shifted, before, after, report = outputs_in(tmp_path)
    result = coregister_dem_file(dem, rome, shifted, before, after, report)
    with rasterio.open(dem) as src:
        grid = (src.crs, src.transform, src.width, src.height)
        original = src.read(1)
    for path in (shifted, before, after):
        assert is_complete_raster(path) is None
        with rasterio.open(path) as ds:
            assert (ds.crs, ds.transform, ds.width, ds.height) == grid
            assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata) and ds.units == ("m",)
    with rasterio.open(shifted) as ds:
        assert ds.descriptions[0] == "elevation (m), co-registered onto rome_utm33.tif"
        assert float(ds.tags()["COREG_SHIFT_X_M"]) == pytest.approx(result["shift_x_m"])
        values = ds.read(1)
    with rasterio.open(before) as ds:
        assert ds.descriptions[0] == "dh before co-registration, DEM - reference (m)"
        dh_before = ds.read(1)
    with rasterio.open(after) as ds:
        dh_after = ds.read(1)
    assert os.path.isfile(os.path.splitext(before)[0] + ".qml")
    # the shifted DEM is the DEM moved back: nearly the reference terrain, 3.1 m lower than the input
    assert np.nanmedian(values - original) == pytest.approx(-3.1, abs=0.3)
    assert nmad(dh_after) < 0.3 * nmad(dh_before)
    assert np.nanmedian(dh_before) == pytest.approx(3.1, abs=0.3) and abs(np.nanmedian(dh_after)) < 0.05


def test_the_report_table_holds_the_numbers(rome, tmp_path):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    out = outputs_in(tmp_path)
    result = coregister_dem_file(dem, rome, *out)
    rows = read_report(out[3])
    assert list(rows[0].keys()) == COLUMNS
    head, steps = rows[0], rows[1:]
    assert head["row"] == "result" and head["converged"] == "yes"
    assert int(head["iterations"]) == len(steps) == result["iterations"]
    for key in ("shift_x_m", "shift_y_m", "shift_z_m", "nmad_before_m", "nmad_after_m", "median_before_m",
                "median_after_m"):
        assert float(head[key]) == pytest.approx(result[key], abs=1e-4)
    assert int(head["n_stable_cells"]) == result["n_stable_cells"] > 2000
    assert [int(row["iteration"]) for row in steps] == list(range(1, len(steps) + 1))
    assert float(steps[-1]["step_px"]) < 0.001 < float(steps[0]["step_px"])
    assert (float(steps[-1]["shift_x_m"]), float(steps[-1]["shift_y_m"])) == pytest.approx(
        (result["shift_x_m"], result["shift_y_m"]), abs=1e-4)
    # the first step carries most of the correction: |step 1| ≈ |known shift| / 30 m
    assert float(steps[0]["step_px"]) == pytest.approx(np.hypot(*KNOWN[:2]) / CELL, rel=0.2)


def test_no_convergence_within_the_iterations_is_reported_not_hidden(rome, tmp_path):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    out = outputs_in(tmp_path)
    result = coregister_dem_file(dem, rome, *out, max_iterations=1)
    assert not result["converged"] and result["iterations"] == 1 and result["step_px"] > 0.001
    assert read_report(out[3])[0]["converged"] == "no"


# --------------------------------------------------------------------------- refused inputs

def test_different_vertical_datums_are_refused_before_anything_is_written(rome, tmp_path):
    egm96 = displaced_copy(rome, tmp_path / "egm96.tif", crs="EPSG:32633+5773")
    egm2008 = displaced_copy(rome, tmp_path / "egm2008.tif", crs="EPSG:32633+3855")
    assert vertical_crs_name(rasterio.open(egm96).crs) == "EGM96 height"
    out = outputs_in(tmp_path / "out")
    with pytest.raises(UserInputError, match="'EGM96 height' but the reference DEM 'egm2008.tif' in "
                                             "'EGM2008 height'"):
        coregister_dem_file(egm96, egm2008, *out)
    assert not os.path.exists(str(tmp_path / "out"))
    # one vertical datum declared, the other not: accepted (assumed the same)
    assert open_pair(egm96, rome).reference_vertical is None


def test_a_reference_in_degrees_is_resampled(rome, tmp_path):
    """The original Rome DEM (EPSG:4326+5773) as reference of its UTM copy moved by the known shift."""
    dem = displaced_copy(rome, tmp_path / "dem.tif", crs="EPSG:32633+5773")
    out = outputs_in(tmp_path)
    result = coregister_dem_file(dem, ROME, *out)
    with rasterio.open(out[0]) as ds:
        assert vertical_crs_name(ds.crs) == "EGM96 height"  # the DEM's compound CRS is kept
    print("degrees reference errors:", result["shift_x_m"] - CORRECTION[0], result["shift_y_m"] - CORRECTION[1],
          result["shift_z_m"] - CORRECTION[2])
    assert np.hypot(result["shift_x_m"] - CORRECTION[0], result["shift_y_m"] - CORRECTION[1]) < 0.1 * CELL
    assert abs(result["shift_z_m"] - CORRECTION[2]) < 0.1


def test_the_dem_to_align_must_be_in_metres(rome, tmp_path):
    with pytest.raises(UserInputError, match="geographic CRS.*Reproject it to a projected CRS in metres"):
        coregister_dem_file(ROME, rome, *outputs_in(tmp_path))


def test_dems_that_do_not_overlap_are_refused(rome, tmp_path):
    far = displaced_copy(rome, tmp_path / "far.tif", dx=50_000.0)
    with pytest.raises(UserInputError, match="do not overlap"):
        coregister_dem_file(far, rome, *outputs_in(tmp_path / "out"))
    assert not os.path.exists(str(tmp_path / "out"))


def test_too_few_stable_cells_are_refused_with_the_counts(rome, tmp_path):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    with pytest.raises(UserInputError, match=r"Only \d+ stable cells.*between 30° and 31°.*Lower the minimum"):
        coregister_dem_file(dem, rome, *outputs_in(tmp_path / "out"), slope_min_deg=30, slope_max_deg=31)
    assert not os.path.exists(str(tmp_path / "out"))


def test_an_output_may_not_overwrite_an_input(rome, tmp_path):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    out = list(outputs_in(tmp_path))
    out[1] = dem
    with pytest.raises(UserInputError, match="would overwrite the input 'dem.tif'"):
        coregister_dem_file(dem, rome, *out)


def test_a_large_dem_is_fitted_on_an_averaged_grid(rome, tmp_path, monkeypatch):
    """Bounded memory: above MAX_FIT_CELLS the fit runs on a grid averaged 2 x 2; the shift still holds."""
    import core.dem.inputs as inputs

    dem = displaced_copy(rome, tmp_path / "dem.tif")
    monkeypatch.setattr(inputs, "MAX_FIT_CELLS", 40_000)
    pair = inputs.open_pair(dem, rome)
    assert pair.factor == 2 and pair.fit_grid.width == -(-pair.grid.width // 2)
    fit = fit_pair(pair)
    print("averaged-grid errors:", -fit.offset_x - CORRECTION[0], -fit.offset_y - CORRECTION[1])
    assert np.hypot(-fit.offset_x - CORRECTION[0], -fit.offset_y - CORRECTION[1]) < 0.1 * CELL


def test_a_cancel_leaves_nothing(rome, tmp_path):
    from core.errors import Cancelled

    dem = displaced_copy(rome, tmp_path / "dem.tif")
    calls = []

    def cancel_while_writing():
        calls.append(1)
        return len(calls) > 4  # after the fit's iterations, during the writing

    with pytest.raises(Cancelled):
        coregister_dem_file(dem, rome, *outputs_in(tmp_path / "out"), is_canceled=cancel_while_writing)
    assert len(calls) == 5 and not os.path.exists(str(tmp_path / "out"))


def test_progress_rises_to_100(rome, tmp_path):
    dem = displaced_copy(rome, tmp_path / "dem.tif")
    seen = []
    coregister_dem_file(dem, rome, *outputs_in(tmp_path), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 100.0 and len(seen) >= 4
