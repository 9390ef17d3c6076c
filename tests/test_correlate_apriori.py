"""Large motions: a-priori offset rasters (pixels or m/yr) and the coarse-to-fine pyramid.

Secondary images are the real Sentinel-2 texture of tests/data/s2_b03_crop.tif
shifted with scipy.ndimage.fourier_shift (exact for band-limited images), so
the true offsets are known: a feature at reference (col, row) is at
(col + dx, row + dy) in the secondary.
"""
import os

import numpy as np
from texture import fourier_shifted as _fourier_shifted, land_texture as _land
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

import core.offsets.correlate as correlate_module
import core.offsets.engine.pyramid as pyramid_module
from core.offsets.apriori import GridOffsetField, RasterOffsetField, bilinear_nan
from core.offsets.correlate import correlate_arrays, correlate_files
from core.offsets.disparity import TAG_DT_DAYS
from core.offsets.engine.pyramid import LevelStore, coarse_offset_field
from core.offsets.engine.sources import RasterSource
from core.errors import Cancelled, UserInputError
from core.io import open_raster
from faults import TRUNCATED_MESSAGE, truncated_copy

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "s2_b03_crop.tif")
CHIP, SEARCH, STEP = 32, 8, 8
PIXEL = 10.0
TRANSFORM = Affine(PIXEL, 0, 500000, 0, -PIXEL, 4000000)
UTM = CRS.from_epsg(32618)
# a shift well beyond SEARCH: dx = +24.3 px (east), dy = -23.4 px (north)
DX, DY = 24.3, -23.4
ROWS, COLS = slice(40, 472), slice(40, 344)


def _write(path, bands, transform=TRANSFORM, crs=UTM):
    bands = np.asarray(bands, np.float32)
    if bands.ndim == 2:
        bands = bands[None]
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1],
                       count=bands.shape[0], dtype="float32", crs=crs, transform=transform,
                       nodata=np.nan) as ds:
        ds.write(bands.astype(np.float32))
    return str(path)


@pytest.fixture(scope="module")
def shifted_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("apriori")
    land = _land()
    ref = _write(folder / "ref.tif", land[ROWS, COLS])
    sec = _write(folder / "sec.tif", _fourier_shifted(land, dx=DX, dy=DY)[ROWS, COLS])
    return ref, sec, folder


def _offsets(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.read(2), ds.read(3) == 1, ds.tags()


def _reachable(dx_true, dy_true, image_shape=(ROWS.stop - ROWS.start, COLS.stop - COLS.start), margin=3):
    """Cells whose matched chip (plus the spline support) lies inside the secondary: only those
    can be measured by any method."""
    rows, cols = np.mgrid[0:dx_true.shape[0], 0:dx_true.shape[1]] * STEP
    top, left = rows + dy_true, cols + dx_true
    return ((top >= margin) & (top + CHIP <= image_shape[0] - margin)
            & (left >= margin) & (left + CHIP <= image_shape[1] - margin))


def _errors(path, dx_true, dy_true):
    """Largest |error| of dx and dy (px) over valid cells, and the valid share of the reachable cells."""
    dx, dy, valid, _ = _offsets(path)
    reachable = _reachable(dx_true, dy_true)
    return (np.abs(dx[valid] - dx_true[valid]).max(), np.abs(dy[valid] - dy_true[valid]).max(),
            valid[reachable].mean())


def _uniform(path, dx=DX, dy=DY):
    with rasterio.open(path) as ds:
        shape = ds.shape
    return _errors(path, np.full(shape, dx), np.full(shape, dy))


def _assert_accurate(path, dx_true=DX, dy_true=DY):
    """Real-texture accuracy of the LK refinement: median |error| < 0.02 px, 98 % of the
    cells within 0.05 px, none beyond 0.1 px, for both components."""
    dx, dy, valid, _ = _offsets(path)
    for error in (np.abs(dx[valid] - dx_true), np.abs(dy[valid] - dy_true)):
        assert np.median(error) < 0.02
        assert np.percentile(error, 98) < 0.05
        assert error.max() < 0.1


def _constant_raster(path, first, second, transform=TRANSFORM, shape=(120, 90), crs=UTM):
    return _write(path, np.stack([np.full(shape, first), np.full(shape, second)]), transform, crs)


# --------------------------------------------------------------------------- a-priori rasters


def test_large_shift_without_help_is_invalid(shifted_pair):
    ref, sec, folder = shifted_pair
    out = correlate_files(ref, sec, str(folder / "plain.tif"), CHIP, SEARCH, STEP, prefilter="none").path
    _, _, valid, _ = _offsets(out)
    assert valid.mean() < 0.02  # the true peak lies beyond +-8 px: edge peaks are rejected (unfiltered)


def test_pixel_apriori_recovers_the_large_shift(shifted_pair):
    ref, sec, folder = shifted_pair
    apriori = _constant_raster(folder / "apriori_px.tif", 24.0, -23.0, TRANSFORM * Affine.scale(4))
    out = correlate_files(ref, sec, str(folder / "px.tif"), CHIP, SEARCH, STEP, apriori=apriori).path
    err_x, err_y, valid = _uniform(out)
    assert valid > 0.9
    _assert_accurate(out)
    assert _offsets(out)[3]["SM_APRIORI_UNITS"] == "pixels"


def test_forward_backward_check_with_an_apriori(shifted_pair):
    """The backward pass searches around minus the a-priori: residuals stay tiny."""
    ref, sec, folder = shifted_pair
    apriori = _constant_raster(folder / "apriori_fb.tif", 24.0, -23.0, TRANSFORM * Affine.scale(4))
    out = correlate_files(ref, sec, str(folder / "fb.tif"), CHIP, SEARCH, STEP, apriori=apriori,
                          forward_backward=0.5).path
    with rasterio.open(out) as ds:
        valid = ds.read(3) == 1
        residual = ds.read(8)[valid]
    dx_true, dy_true = np.full(valid.shape, DX), np.full(valid.shape, DY)
    both_ways = _reachable(dx_true, dy_true) & _reachable(-dx_true, -dy_true)
    assert valid[both_ways].mean() > 0.9
    _assert_accurate(out)
    assert np.median(residual) < 0.03 and residual.max() <= 0.5


def test_velocity_apriori_in_metres_per_year(shifted_pair):
    """North-up grid: dx = vx dt / 10 m, dy = -vy dt / 10 m; dt from the tags or given."""
    ref, sec, folder = shifted_pair
    dt_days = 73.05  # 0.2 yr
    vx, vy = 24.0 * PIXEL / 0.2, 23.0 * PIXEL / 0.2  # 1200 m/yr east, 1150 m/yr north
    apriori = _constant_raster(folder / "v.tif", vx, vy, Affine(120, 0, 499000, 0, -120, 4001000))
    out = correlate_files(ref, sec, str(folder / "v_tag.tif"), CHIP, SEARCH, STEP, apriori=apriori,
                          apriori_units="m/yr", tags={TAG_DT_DAYS: f"{dt_days}"}).path
    assert _uniform(out)[2] > 0.9
    _assert_accurate(out)
    out = correlate_files(ref, sec, str(folder / "v_dt.tif"), CHIP, SEARCH, STEP, apriori=apriori,
                          apriori_units="m/yr", apriori_dt_days=dt_days).path
    _assert_accurate(out)
    with pytest.raises(UserInputError, match="dt"):
        correlate_files(ref, sec, str(folder / "v_none.tif"), CHIP, SEARCH, STEP, apriori=apriori,
                        apriori_units="m/yr")


def test_velocity_signs(tmp_path):
    """+vx (east) is +dx; -vy (south) is +dy (down the rows) on a north-up grid."""
    path = _constant_raster(tmp_path / "utm.tif", 365.25, -730.5, TRANSFORM, (50, 50))
    field = RasterOffsetField(path, "m/yr", UTM, TRANSFORM, dt_days=36.525)
    dx, dy = field.sample(np.array([500100.0, 500255.0]), np.array([3999900.0, 3999700.0]))
    np.testing.assert_allclose(dx, 3.6525, atol=1e-9)  # 36.525 m east over 10 m pixels
    np.testing.assert_allclose(dy, 7.305, atol=1e-9)   # 73.05 m south = +7.305 rows


def test_velocity_raster_in_another_crs_is_carried_to_the_reference_grid(tmp_path):
    """vx, vy along the axes of UTM zone 17 (grid convergence ~ 3 degrees here) give the same
    reference-pixel offsets as the equivalent velocity given in zone 18."""
    from rasterio.warp import transform as warp
    dt_days, years = 365.25, 1.0
    x0, y0 = 500150.0, 3999850.0  # a point of the reference grid (zone 18)
    v18 = np.array([240.0, 230.0])  # m/yr east, north in zone 18
    (xa, xb), (ya, yb) = warp(UTM, CRS.from_epsg(32617), [x0, x0 + v18[0] * years], [y0, y0 + v18[1] * years])
    v17 = np.array([xb - xa, yb - ya]) / years
    assert abs(np.degrees(np.arctan2(v17[1], v17[0]) - np.arctan2(v18[1], v18[0]))) > 2.0
    grid17 = Affine(1000, 0, xa - 25000, 0, -1000, ya + 25000)
    path = _constant_raster(tmp_path / "v17.tif", v17[0], v17[1], grid17, (50, 50), CRS.from_epsg(32617))
    field = RasterOffsetField(path, "m/yr", UTM, TRANSFORM, dt_days)
    dx, dy = field.sample(np.array([x0]), np.array([y0]))
    assert dx[0] == pytest.approx(24.0, abs=1e-3)
    assert dy[0] == pytest.approx(-23.0, abs=1e-3)


def test_nan_apriori_falls_back_to_zero_centre(shifted_pair, tmp_path):
    """Left half of the a-priori NaN: those chips search around 0 and fail, the right half succeeds."""
    ref, sec, _ = shifted_pair
    bands = np.stack([np.full((120, 90), 24.0), np.full((120, 90), -23.0)])
    bands[:, :, :20] = np.nan  # x < 500000 + 20 * 40 m = reference column 80
    apriori = _write(tmp_path / "half.tif", bands, TRANSFORM * Affine.scale(4))
    out = correlate_files(ref, sec, str(tmp_path / "half_out.tif"), CHIP, SEARCH, STEP, apriori=apriori).path
    dx, _, valid, _ = _offsets(out)
    centres = (np.arange(dx.shape[1]) * STEP + CHIP / 2)
    left, right = centres < 70, centres > 90
    reachable = _reachable(np.full(dx.shape, DX), np.full(dx.shape, DY))
    assert valid[:, left].mean() < 0.05
    assert valid[:, right][reachable[:, right]].mean() > 0.9
    assert np.abs(dx[:, right][valid[:, right]] - DX).max() < 0.05


def test_bilinear_nan_renormalises_and_interpolates():
    grid = np.array([[0.0, 10.0], [20.0, np.nan]])
    # pixel centres at (0.5, 0.5), (1.5, 0.5), (0.5, 1.5)
    assert bilinear_nan(grid, np.array([1.0]), np.array([0.5]))[0] == pytest.approx(5.0)
    assert bilinear_nan(grid, np.array([1.0]), np.array([1.0]))[0] == pytest.approx(10.0)  # (0+10+20)/3
    assert np.isnan(bilinear_nan(grid, np.array([5.0]), np.array([0.5]))[0])
    field = GridOffsetField(np.array([[1.0, 3.0]]), np.array([[-2.0, -2.0]]), Affine(10, 0, 0, 0, -10, 0))
    dx, dy = field.sample(np.array([10.0]), np.array([-5.0]))
    assert (dx[0], dy[0]) == pytest.approx((2.0, -2.0))
    dx, _ = field.sample(np.array([-50.0, 70.0]), np.array([-5.0, -30.0]))  # beyond: nearest edge
    assert dx == pytest.approx([1.0, 3.0])


# --------------------------------------------------------------------------- pyramid


@pytest.mark.parametrize("on_disk", [False, True])
def test_downsample_pair_keeps_a_common_grid(tmp_path, monkeypatch, on_disk):
    """Levels in memory, or in temporary GeoTIFFs when over the memory budget: same grids, values."""
    if on_disk:
        monkeypatch.setattr(pyramid_module, "PYRAMID_MEMORY_BYTES", 0)
    image = np.arange(20 * 30, dtype=float).reshape(20, 30)
    ref = _write(tmp_path / "a.tif", image)
    sec = _write(tmp_path / "b.tif", image[3:, 5:], TRANSFORM * Affine.translation(5, 3))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with open_raster(ref) as ra, open_raster(sec) as rb, LevelStore(str(scratch)) as store:
        a, b = store.half_pair(RasterSource(ra), RasterSource(rb), 1)
        assert isinstance(a, RasterSource) == on_disk and len(os.listdir(scratch)) == int(on_disk)
        assert a.grid.transform.a == 2 * PIXEL
        col, row = ~a.grid.transform * (b.grid.transform.c, b.grid.transform.f)
        assert col == pytest.approx(round(col)) and row == pytest.approx(round(row))
        # a linear ramp survives the Gaussian: coarse pixel k = fine pixel 2k (+ phase)
        va, vb = a.read_window(0, a.height, 0, a.width)[0], b.read_window(0, b.height, 0, b.width)[0]
        assert va[3, 4] == pytest.approx(image[6, 8], abs=0.02)
        assert vb[int(3 - row), int(4 - col)] == pytest.approx(image[6, 8], abs=0.02)
    assert os.listdir(scratch) == []  # the scratch folder goes with the store


def test_pyramid_recovers_the_large_shift(shifted_pair):
    ref, sec, folder = shifted_pair
    out = correlate_files(ref, sec, str(folder / "pyr.tif"), CHIP, SEARCH, STEP, pyramid_levels=2).path
    assert _uniform(out)[2] >= 0.8
    _assert_accurate(out)
    assert _offsets(out)[3]["SM_PYRAMID_LEVELS"] == "2"
    assert not [name for name in os.listdir(folder) if name.startswith(".pyramid")]


#: The offsets of test_pyramid_recovers_the_large_shift as computed by the pyramid before it became
#: a driver (correlate_files -> correlate_pyramid -> correlate_files on temporary GeoTIFFs):
#: valid cells, mean dx and dy over them, and (row, col, dx, dy) of four cells.
_PYRAMID_BEFORE = (1449, 24.30050277709961, -23.400184631347656,
                   [(5, 5, 24.300142288208008, -23.4001407623291), (20, 15, 24.300630569458008, -23.399871826171875),
                    (40, 25, 24.300365447998047, -23.40045738220215), (48, 30, 24.300561904907227, -23.39999771118164)])


def _pyramid_run(ref, sec, out, progress=None):
    # the options _PYRAMID_BEFORE was recorded with (the defaults of then)
    return correlate_files(ref, sec, out, CHIP, SEARCH, STEP, pyramid_levels=2, progress=progress, subpixel="lk",
                           prefilter="none").path


@pytest.mark.parametrize("on_disk", [False, True])
def test_pyramid_driver_gives_the_offsets_of_before(shifted_pair, tmp_path, monkeypatch, on_disk):
    """Coarse levels in memory or (over the memory budget) in temporary GeoTIFFs read back
    through core.io: the same offsets as the old recursive pyramid, within 1e-4 px."""
    ref, sec, _ = shifted_pair
    if on_disk:
        monkeypatch.setattr(pyramid_module, "PYRAMID_MEMORY_BYTES", 0)
    folder = tmp_path / "out"
    folder.mkdir()
    seen = set()
    out = _pyramid_run(ref, sec, str(folder / "pyr.tif"), lambda percent: seen.update(os.listdir(folder)))
    scratch = {name for name in seen if name.startswith(".pyramid")}
    assert bool(scratch) == on_disk  # the scratch folder exists only when levels go to disk
    assert sorted(os.listdir(folder)) == ["pyr.qml", "pyr.tif"]  # and it is gone afterwards
    dx, dy, valid, _ = _offsets(out)
    count, mean_dx, mean_dy, cells = _PYRAMID_BEFORE
    assert valid.sum() == count
    assert abs(dx[valid].mean() - mean_dx) < 1e-4 and abs(dy[valid].mean() - mean_dy) < 1e-4
    for row, col, cell_dx, cell_dy in cells:
        assert valid[row, col]
        assert abs(dx[row, col] - cell_dx) < 1e-4 and abs(dy[row, col] - cell_dy) < 1e-4


def test_pyramid_driver_does_not_reenter_correlate_files(shifted_pair, tmp_path, monkeypatch):
    ref, sec, _ = shifted_pair
    entry = correlate_module.correlate_files

    def reentered(*args, **kwargs):
        raise AssertionError("the pyramid re-entered correlate_files")

    monkeypatch.setattr(correlate_module, "correlate_files", reentered)
    assert "correlate_files" not in vars(pyramid_module)  # the driver is handed the solver
    out = entry(ref, sec, str(tmp_path / "pyr.tif"), CHIP, SEARCH, STEP, pyramid_levels=2).path
    assert _offsets(out)[2].mean() > 0.5


def test_pyramid_writes_no_temporary_geotiff_when_arrays_suffice(shifted_pair, tmp_path, monkeypatch):
    """Small levels stay in memory: during the run the output folder holds nothing but the
    disparity writer's own temporary (and nothing at all during the coarse levels)."""
    ref, sec, _ = shifted_pair

    class NoWriter:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a pyramid level was written to disk")

    monkeypatch.setattr(pyramid_module, "RasterWriter", NoWriter)
    folder = tmp_path / "out"
    folder.mkdir()
    listings = []
    _pyramid_run(ref, sec, str(folder / "pyr.tif"), lambda percent: listings.append((percent, os.listdir(folder))))
    coarse = [names for percent, names in listings if percent <= 30.0]
    fine = [names for percent, names in listings if percent > 30.0]
    assert coarse and fine and all(names == [] for names in coarse)
    assert all(len(names) == 1 and names[0].startswith(".pyr.") and ".partial" in names[0] for names in fine)


@pytest.mark.parametrize("on_disk", [False, True])
def test_cancel_during_the_coarse_levels_leaves_nothing(shifted_pair, tmp_path, monkeypatch, on_disk):
    ref, sec, _ = shifted_pair
    if on_disk:
        monkeypatch.setattr(pyramid_module, "PYRAMID_MEMORY_BYTES", 0)
    folder = tmp_path / "out"
    folder.mkdir()
    calls = []

    def is_canceled():
        calls.append(os.listdir(folder))
        return len(calls) > 7  # 6 checks while downsampling, 1 before the top level, then its first block

    with pytest.raises(Cancelled):
        correlate_files(ref, sec, str(folder / "pyr.tif"), CHIP, SEARCH, STEP, pyramid_levels=2,
                        is_canceled=is_canceled)
    assert bool(calls[-1]) == on_disk  # the scratch folder existed when the cancel came
    assert os.listdir(folder) == []


def test_truncated_secondary_in_the_pyramid_is_a_clear_error(shifted_pair, tmp_path):
    """Every level is read through core.io's reader: a cut-off secondary is named, nothing is written."""
    ref, sec, _ = shifted_pair
    cut = truncated_copy(sec, str(tmp_path / "sec_cut.tif"))
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(UserInputError, match=TRUNCATED_MESSAGE.format(name="sec_cut.tif")):
        correlate_files(ref, cut, str(folder / "pyr.tif"), CHIP, SEARCH, STEP, pyramid_levels=2)
    assert os.listdir(folder) == []


def _smooth_field(shape):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    dx = 12.0 + 8.0 * np.sin(np.pi * cols / shape[1])  # 12 px at the sides to 20 px in the middle
    dy = -8.0 - 6.0 * rows / shape[0] + 2.0 * np.sin(np.pi * cols / shape[1])  # -6 .. -14 px
    return dx, dy


def test_pyramid_on_a_smooth_varying_large_motion(tmp_path):
    """sec(x + d(x)) = ref(x) with |d| up to 20 px: warp by inverse mapping, compare at chip centres."""
    land = _land()[ROWS, COLS]
    dx_field, dy_field = _smooth_field(land.shape)
    rows, cols = np.mgrid[0:land.shape[0], 0:land.shape[1]].astype(float)
    # sec(p) = ref(p - d(p)) to first order; two fixed-point passes make it accurate for smooth d
    src_r, src_c = rows - dy_field, cols - dx_field
    for _ in range(3):
        d_r = ndimage.map_coordinates(dy_field, [src_r, src_c], order=1, mode="nearest")
        d_c = ndimage.map_coordinates(dx_field, [src_r, src_c], order=1, mode="nearest")
        src_r, src_c = rows - d_r, cols - d_c
    sec = ndimage.map_coordinates(ndimage.gaussian_filter(land, 0.5), [src_r, src_c], order=5,
                                  mode="mirror")
    ref_path = _write(tmp_path / "r.tif", ndimage.gaussian_filter(land, 0.5))
    sec_path = _write(tmp_path / "s.tif", sec)
    out = correlate_files(ref_path, sec_path, str(tmp_path / "o.tif"), CHIP, SEARCH, STEP, pyramid_levels=2).path
    # the same measurement by brute force: a full +-24 px search at full resolution
    direct = correlate_files(ref_path, sec_path, str(tmp_path / "d.tif"), CHIP, 24, STEP).path
    dx, dy, valid, _ = _offsets(out)
    dx_direct, dy_direct, valid_direct, _ = _offsets(direct)
    centre_r = np.arange(dx.shape[0]) * STEP + CHIP / 2 - 0.5
    centre_c = np.arange(dx.shape[1]) * STEP + CHIP / 2 - 0.5
    rr, cc = np.meshgrid(centre_r, centre_c, indexing="ij")
    true_dx = ndimage.map_coordinates(dx_field, [rr, cc], order=1)
    true_dy = ndimage.map_coordinates(dy_field, [rr, cc], order=1)
    assert np.abs(dx_field).max() > 19
    assert valid[_reachable(true_dx, true_dy)].mean() >= 0.8
    assert valid.sum() >= 0.97 * valid_direct.sum()
    both = valid & valid_direct
    # the pyramid finds the brute-force peaks; the refinement is then identical
    assert np.abs(dx[both] - dx_direct[both]).max() < 1e-3
    assert np.abs(dy[both] - dy_direct[both]).max() < 1e-3
    # against the truth: a translation-only chip under this strain (up to 0.08 px/px) is off by
    # up to a few tenths of a pixel, the same for both
    assert np.median(np.abs(dx[valid] - true_dx[valid])) < 0.25
    assert np.abs(dx[valid] - true_dx[valid]).max() < 1.0
    assert np.abs(dy[valid] - true_dy[valid]).max() < 1.0


def test_coarse_field_is_median_filtered_and_filled():
    dx = np.full((9, 9), 3.0)
    dx[4, 4] = 40.0  # an outlier
    dy = np.full((9, 9), -1.0)
    valid = np.ones((9, 9), bool)
    valid[0, :3] = False
    dx[0, :3] = dy[0, :3] = np.nan
    field = coarse_offset_field(dx, dy, valid, TRANSFORM, 2.0)
    assert np.allclose(field.dx, 6.0) and np.allclose(field.dy, -2.0)


def test_bad_pyramid_levels_are_user_errors(shifted_pair):
    ref, sec, folder = shifted_pair
    with pytest.raises(UserInputError, match="pyramid"):
        correlate_files(ref, sec, str(folder / "bad.tif"), CHIP, SEARCH, STEP, pyramid_levels=-1)
    with pytest.raises(UserInputError, match="two"):
        correlate_files(ref, sec, str(folder / "bad.tif"), CHIP, SEARCH, STEP, apriori=ref)


# --------------------------------------------------------------------------- Processing algorithm


def test_correlatepair_algorithm_with_a_velocity_apriori(run_algorithm, shifted_pair, tmp_path):
    """surfacemotion:correlatepair with APRIORI in m/yr and APRIORI_DT: total offsets in the output."""
    ref, sec, _ = shifted_pair
    dt_days = 146.1  # 0.4 yr: vx = 240 m / 0.4 yr east, vy = 230 m / 0.4 yr north
    apriori = _constant_raster(tmp_path / "v.tif", 600.0, 575.0, Affine(100, 0, 499500, 0, -100, 4000500))
    output = str(tmp_path / "alg.tif")
    results, _, _ = run_algorithm("surfacemotion:correlatepair", {
        "REFERENCE": ref, "SECONDARY": sec, "CHIP_SIZE": CHIP, "SEARCH_RANGE": SEARCH, "STEP": STEP,
        "APRIORI": apriori, "APRIORI_UNITS": 1, "APRIORI_DT": dt_days, "OUTPUT": output})
    assert results["OUTPUT"] == output
    assert _uniform(output)[2] > 0.9
    _assert_accurate(output)
    assert _offsets(output)[3]["SM_APRIORI_UNITS"] == "m/yr"
    # without the a-priori the same call finds nothing beyond +-8 px
    plain = str(tmp_path / "plain.tif")
    run_algorithm("surfacemotion:correlatepair", {
        "REFERENCE": ref, "SECONDARY": sec, "CHIP_SIZE": CHIP, "SEARCH_RANGE": SEARCH, "STEP": STEP,
        "PREFILTER": 0, "OUTPUT": plain})
    assert _offsets(plain)[2].mean() < 0.02
    pyramid = str(tmp_path / "pyramid.tif")
    run_algorithm("surfacemotion:correlatepair", {
        "REFERENCE": ref, "SECONDARY": sec, "CHIP_SIZE": CHIP, "SEARCH_RANGE": SEARCH, "STEP": STEP,
        "PYRAMID_LEVELS": 2, "OUTPUT": pyramid})
    assert _uniform(pyramid)[2] >= 0.8
    _assert_accurate(pyramid)


def test_array_apriori_offsets_recover_a_large_shift():
    land = _land()
    ref, sec = land[24:184, 24:280], _fourier_shifted(land, dx=17.6, dy=-13.3)[24:184, 24:280]
    grid = ((ref.shape[0] - 32) // 8 + 1, (ref.shape[1] - 32) // 8 + 1)
    blind = correlate_arrays(ref, sec, 32, 4, 8, subpixel="lk", prefilter="none")
    assert blind.valid.mean() < 0.05  # 22 px away: out of a +-4 px search (unfiltered: edge peaks)
    expected_dy = np.full(grid, -12.0)
    expected_dx = np.full(grid, 19.0)
    expected_dx[0, 0] = np.nan  # unknown: searched around 0, so not found
    # unfiltered: the high-pass mirrors at the image border, where the guided footprints lie
    guided = correlate_arrays(ref, sec, 32, 4, 8, subpixel="lk", prefilter="none",
                              apriori_offsets=(expected_dx, expected_dy))
    inner = (slice(2, -2), slice(3, -3))  # the matched footprints stay inside the image
    assert guided.valid[inner].mean() > 0.99 and not guided.valid[0, 0]
    ok = guided.valid[inner]
    np.testing.assert_allclose(guided.dx[inner][ok], 17.6, atol=0.01)
    np.testing.assert_allclose(guided.dy[inner][ok], -13.3, atol=0.01)
    with pytest.raises(UserInputError, match="grid shape"):
        correlate_arrays(ref, sec, 32, 4, 8, apriori_offsets=(expected_dx, expected_dy[1:]))
