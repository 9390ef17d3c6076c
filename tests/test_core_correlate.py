"""Offset-tracking correlator (core.offsets.correlate) against known translations of real texture.

The secondary images are made with scipy.ndimage.fourier_shift (band-limited
shifts of a mirror-padded crop), not with the spline interpolation the
engine uses, so the engine cannot simply invert its own resampling.
"""
import functools
import os

import numpy as np
from texture import fourier_shifted as _fourier_shifted, land_texture as _land
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

import core.offsets.engine.blocks as blocks_module
from core.offsets.correlate import (DIAGNOSTIC_DESCRIPTIONS, QUALITY_DESCRIPTIONS, CorrelationResult, correlate_arrays,
                                   correlate_files)
from core.offsets.disparity import BASE_DESCRIPTIONS, grid_transform
from core.offsets.engine.params import Params
from core.offsets.engine.subpixel import sample_translated
from core.errors import Cancelled, UserInputError
from faults import TRUNCATED_MESSAGE, truncated_copy

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "s2_b03_crop.tif")
LAND_COLUMNS = 384  # farmland; the lower right of the crop is water
MARGIN = 24
CHIP, SEARCH, STEP = 32, 8, 8
CRS_UTM = CRS.from_epsg(32618)


@functools.lru_cache(maxsize=None)
def _texture():
    with rasterio.open(DATA) as ds:
        return ds.read(1).astype(np.float64), ds.transform


def _shifted_pair(dy: float, dx: float):
    """(ref, sec) interior crops of the land texture, sec = ref moved by (dy, dx)."""
    land = _land()
    sec = _fourier_shifted(land, dx=dx, dy=dy)
    interior = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    return land[interior], sec[interior]


def _interior(grid: np.ndarray) -> np.ndarray:
    """Cells whose search window lies inside the image (drops the outer ring of cells)."""
    return grid[1:-1, 1:-1]


def _errors(result: CorrelationResult, dy: float, dx: float):
    valid = _interior(result.valid)
    return (_interior(result.dx)[valid] - dx, _interior(result.dy)[valid] - dy, valid.mean())


def _rmse(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values ** 2)))


def _write(path, array, transform, crs=CRS_UTM, nodata=None, dtype="uint16"):
    array = np.atleast_3d(array) if array.ndim == 3 else array[None]
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1],
                       count=array.shape[0], dtype=dtype, crs=crs, transform=transform,
                       nodata=nodata) as ds:
        ds.write(np.round(array).astype(dtype) if dtype == "uint16" else array.astype(dtype))
    return str(path)


def _folder_files(folder) -> list:
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("dy, dx", [(0.25, -0.4), (1.5, 2.3), (-3.7, 0.6)])
def test_lucas_kanade_recovers_subpixel_translation(dy, dx):
    ref, sec = _shifted_pair(dy, dx)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP)
    err_x, err_y, valid_fraction = _errors(result, dy, dx)
    assert valid_fraction >= 0.9
    assert _rmse(err_x) < 0.05 and _rmse(err_y) < 0.05  # measured 0.005-0.014 px
    assert np.nanmedian(result.peak) > 0.99


@pytest.mark.parametrize("dy, dx", [(0.25, -0.4), (1.5, 2.3), (-3.7, 0.6)])
def test_gaussian_fit_is_coarser_but_close(dy, dx):
    ref, sec = _shifted_pair(dy, dx)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel="gaussian")
    err_x, err_y, valid_fraction = _errors(result, dy, dx)
    assert valid_fraction >= 0.9
    assert _rmse(err_x) < 0.15 and _rmse(err_y) < 0.15  # measured 0.05-0.08 px
    assert np.median(np.abs(err_x)) < 0.08 and np.median(np.abs(err_y)) < 0.08


@pytest.mark.parametrize("dy, dx", [(0.25, -0.4), (1.5, 2.3), (-3.7, 0.6)])
def test_noise_and_brightness_change_do_not_bias(dy, dx):
    ref, sec = _shifted_pair(dy, dx)
    rng = np.random.default_rng(7)
    ref = ref + rng.normal(0.0, 10.0, ref.shape)  # texture std is about 200 DN
    sec = 1.2 * sec + 150.0 + rng.normal(0.0, 10.0, sec.shape)
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP)
    err_x, err_y, valid_fraction = _errors(result, dy, dx)
    assert valid_fraction >= 0.9
    assert _rmse(err_x) < 0.1 and _rmse(err_y) < 0.1  # measured 0.012-0.019 px
    assert abs(err_x.mean()) < 0.02 and abs(err_y.mean()) < 0.02


@pytest.mark.parametrize("subpixel", ["lk", "gaussian"])
def test_sign_convention_content_moved_right_and_down(subpixel):
    land = _land()
    height, width = land.shape[0] - 2 * MARGIN, land.shape[1] - 2 * MARGIN
    ref = land[MARGIN:MARGIN + height, MARGIN:MARGIN + width]
    sec = land[MARGIN - 2:MARGIN - 2 + height, MARGIN - 2:MARGIN - 2 + width]  # sec[r, c] = ref[r-2, c-2]
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel=subpixel)
    err_x, err_y, valid_fraction = _errors(result, 2.0, 2.0)
    assert valid_fraction >= 0.95
    assert np.median(err_x) == pytest.approx(0.0, abs=0.01)
    assert np.median(err_y) == pytest.approx(0.0, abs=0.01)
    assert _rmse(err_x) < 0.05 and _rmse(err_y) < 0.05


def test_offset_beyond_the_search_range_is_invalid():
    land = _land()
    height, width = land.shape[0] - 2 * MARGIN, land.shape[1] - 2 * MARGIN
    ref = land[MARGIN:MARGIN + height, MARGIN:MARGIN + width]
    sec = land[MARGIN - 12:MARGIN - 12 + height, MARGIN:MARGIN + width]  # 12 px down, search 8
    unfiltered = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, prefilter="none")
    assert unfiltered.valid.mean() < 0.02  # the peak sits on the border of the search range
    # with the default high-pass the surface away from the true peak is noise-like, so its maximum can
    # fall inside the range: measured 8.4 % valid (forward-backward 1 px: 3.7 %), the README says so
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP)
    assert result.valid.mean() < 0.10
    checked = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, forward_backward=1.0)
    assert checked.valid.mean() < 0.05
    wider = correlate_arrays(ref, sec, CHIP, 14, STEP)
    valid = _interior(wider.valid)
    assert valid.mean() > 0.85
    assert np.median(_interior(wider.dy)[valid]) == pytest.approx(12.0, abs=0.01)


def test_grid_shape_and_chip_placement():
    ref, sec = _shifted_pair(0.0, 0.0)
    result = correlate_arrays(ref, sec, 32, 4, 5)
    height, width = ref.shape
    assert result.dx.shape == ((height - 32) // 5 + 1, (width - 32) // 5 + 1)
    assert result.dx.dtype == np.float32 and result.valid.dtype == bool
    # the chip of cell (i, j) covers rows 5i..5i+31, cols 5j..5j+31: one invalid reference
    # pixel at (100, 70) must invalidate exactly cells i = 14..20, j = 8..14 (without masked
    # correlation, min_valid_fraction=1: chips touching nodata are invalid)
    ref_valid = np.ones(ref.shape, bool)
    ref_valid[100, 70] = False
    result = correlate_arrays(ref, sec, 32, 4, 5, ref_valid=ref_valid, min_valid_fraction=1.0)
    assert not result.valid[14:21, 8:15].any()
    assert np.isnan(result.dx[14:21, 8:15]).all() and np.isnan(result.peak[14:21, 8:15]).all()
    assert result.valid[13, 8:15].all() and result.valid[21, 8:15].all()
    assert result.valid[14:21, 7].all() and result.valid[14:21, 15].all()


def test_blocks_do_not_change_the_result(monkeypatch):
    ref, sec = _shifted_pair(1.5, 2.3)
    whole = correlate_arrays(ref, sec, CHIP, SEARCH, STEP)
    monkeypatch.setattr(blocks_module, "_BLOCK_MEMORY_BYTES", 300_000)  # blocks of ~14 chips
    assert blocks_module._chips_per_block(Params(CHIP, SEARCH, STEP, "lk"), sweep=True) < 20
    percents = []
    blocked = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, progress=percents.append)
    assert len(percents) > 100 and percents[-1] == 100.0 and percents == sorted(percents)
    np.testing.assert_array_equal(blocked.valid, whole.valid)
    # float32 correlation products: the layout only changes their rounding (and so where
    # Lucas-Kanade starts), 100x below the accuracy targets
    np.testing.assert_allclose(blocked.dx, whole.dx, atol=2e-4)
    np.testing.assert_allclose(blocked.dy, whole.dy, atol=2e-4)


def test_spline_sampler_matches_map_coordinates():
    rng = np.random.default_rng(3)
    coefficients = ndimage.spline_filter(rng.normal(size=(80, 90)), order=5, mode="mirror")
    top = np.array([10, 20, 30])
    left = np.array([12, 5, 40])
    shift = np.array([[-1.7, 0.3], [0.5, -2.25], [0.0, 1.0]])  # (dx, dy) per chip
    sampled = sample_translated(coefficients, top, left, shift, 16)
    grid = np.arange(16.0)
    for k in range(3):
        rows, cols = np.meshgrid(top[k] + shift[k, 1] + grid, left[k] + shift[k, 0] + grid, indexing="ij")
        expected = ndimage.map_coordinates(coefficients, [rows, cols], order=5, prefilter=False)
        np.testing.assert_allclose(sampled[k], expected, atol=1e-10)


# --------------------------------------------------------------------------- invalid data


def test_nodata_regions_are_invalid_and_the_rest_is_accurate():
    dy, dx = 0.6, -1.3
    ref, sec = _shifted_pair(dy, dx)
    sec_valid = np.ones(sec.shape, bool)
    sec_valid[150:300, 100:250] = False  # a nodata hole in the secondary
    ref = ref.copy()
    ref[20:120, 200:300] = np.nan  # and one in the reference (NaN = invalid for floats)
    # without masked correlation (min_valid_fraction=1): chips touching nodata are invalid
    result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, sec_valid=sec_valid, min_valid_fraction=1.0)

    centre_rows = np.arange(result.dx.shape[0]) * STEP
    centre_cols = np.arange(result.dx.shape[1]) * STEP
    rows, cols = np.meshgrid(centre_rows, centre_cols, indexing="ij")  # chip first row/col

    def chip_inside(r0, r1, c0, c1):
        return (rows >= r0) & (rows + CHIP <= r1) & (cols >= c0) & (cols + CHIP <= c1)

    def window_clear_of(r0, r1, c0, c1, halo):
        return ((rows + CHIP + halo <= r0) | (rows - halo >= r1)
                | (cols + CHIP + halo <= c0) | (cols - halo >= c1))

    assert not result.valid[chip_inside(150, 300, 100, 250)].any()
    ref_touched = ~window_clear_of(20, 120, 200, 300, 0)
    assert not result.valid[ref_touched].any()
    assert np.isnan(result.dx[~result.valid]).all() and np.isnan(result.peak[~result.valid]).all()

    clear = window_clear_of(150, 300, 100, 250, SEARCH + 2) & ~ref_touched
    clear[[0, -1], :] = False
    clear[:, [0, -1]] = False
    assert clear.sum() > 1000
    assert result.valid[clear].mean() > 0.97
    assert _rmse(result.dx[clear & result.valid] - dx) < 0.05
    assert _rmse(result.dy[clear & result.valid] - dy) < 0.05
    # cells next to the hole may still match on its valid side, but only correctly
    near = result.valid & ~clear
    near[[0, -1], :] = False
    near[:, [0, -1]] = False
    assert np.median(np.abs(result.dx[near] - dx)) < 0.05


def test_texture_less_area_is_invalid():
    ref, sec = _shifted_pair(0.5, 0.5)
    ref, sec = ref.copy(), sec.copy()
    ref[100:250, 100:250] = 900.0
    sec[100:250, 100:250] = 900.0
    for subpixel in ("lk", "gaussian"):
        result = correlate_arrays(ref, sec, CHIP, SEARCH, STEP, subpixel=subpixel)
        flat_chips = result.valid[13:28, 13:28]  # chips starting at 104..216 lie inside the flat square
        assert not flat_chips.any()
        assert _interior(result.valid)[40:, :].mean() > 0.9


# --------------------------------------------------------------------------- files


@pytest.fixture
def shifted_files(tmp_path):
    """Reference and secondary GeoTIFFs on the data's grid, content moved by (0.7, -1.4)."""
    ref, sec = _shifted_pair(0.7, -1.4)
    transform = _texture()[1] * Affine.translation(MARGIN, MARGIN)
    return (_write(tmp_path / "ref.tif", ref, transform), _write(tmp_path / "sec.tif", sec, transform),
            transform, ref.shape)


def test_file_output_format_and_geometry(shifted_files, tmp_path):
    ref_path, sec_path, transform, shape = shifted_files
    out = str(tmp_path / "out" / "disp.tif")
    percents = []
    caller_tags = {"SM_REF_ID": "20200101_abc", "SM_DT_DAYS": 12.5}
    assert correlate_files(ref_path, sec_path, out, chip_size=CHIP, search_range=SEARCH, step=STEP,
                           tags=caller_tags, progress=percents.append).path == out
    assert percents[-1] == 100.0
    assert _folder_files(tmp_path / "out") == ["disp.qml", "disp.tif"]  # the style sidecar comes with the raster
    with rasterio.open(out) as ds:
        assert ds.count == 9 and ds.dtypes == ("float32",) * 9
        assert ds.transform == grid_transform(transform, 0, 0, CHIP, STEP)
        assert ds.crs == CRS_UTM
        assert ds.descriptions == BASE_DESCRIPTIONS + QUALITY_DESCRIPTIONS + DIAGNOSTIC_DESCRIPTIONS
        assert np.isnan(ds.nodata)
        assert (ds.height, ds.width) == ((shape[0] - CHIP) // STEP + 1, (shape[1] - CHIP) // STEP + 1)
        tags = ds.tags()
        dx, dy, valid, peak, snr, ratio, sigma, reason, chip = ds.read()
    assert tags["SM_STEP"] == "8" and tags["SM_CHIP_SIZE"] == "32"
    assert tags["SM_SEARCH_RANGE"] == "8" and tags["SM_SUBPIXEL"] == "affine"
    assert tags["SM_REF_ID"] == "20200101_abc" and tags["SM_DT_DAYS"] == "12.5"
    assert set(np.unique(valid)) == {0.0, 1.0}
    invalid = valid == 0
    assert np.isnan(dx[invalid]).all() and np.isnan(dy[invalid]).all() and np.isnan(peak[invalid]).all()
    assert np.isnan(snr[invalid]).all() and np.isnan(sigma[invalid]).all()
    assert np.isfinite(snr[~invalid]).all() and (ratio[~invalid] >= 1).all() and (sigma[~invalid] < 0.2).all()
    assert (reason[~invalid] == 0).all() and (reason[invalid] > 0).all() and (chip[~invalid] == CHIP).all()
    assert np.isfinite(dx[~invalid]).all() and np.isfinite(peak[~invalid]).all()
    inner = _interior(valid) == 1
    assert inner.mean() > 0.9
    assert _rmse(_interior(dx)[inner] + 1.4) < 0.05 and _rmse(_interior(dy)[inner] - 0.7) < 0.05
    # the arrays engine gives the same numbers (uint16-rounded inputs)
    with rasterio.open(ref_path) as r, rasterio.open(sec_path) as s:
        expected = correlate_arrays(r.read(1), s.read(1), CHIP, SEARCH, STEP)
    np.testing.assert_array_equal(valid == 1, expected.valid)
    np.testing.assert_allclose(dx, expected.dx, atol=1e-6)


@pytest.mark.parametrize("col_off, row_off", [(10, 10), (-7, 12)])
def test_different_extents_on_one_grid_use_the_overlap(tmp_path, col_off, row_off):
    """The secondary starts (col_off, row_off) whole pixels from the reference."""
    dy, dx = -0.8, 1.6
    land = _land()
    world_shifted = _fourier_shifted(land, dx=dx, dy=dy)
    height, width = 400, 300
    r0, c0 = 40, 40  # reference window in the texture
    ref = land[r0:r0 + height, c0:c0 + width]
    sec = world_shifted[r0 + row_off:r0 + row_off + height, c0 + col_off:c0 + col_off + width]
    base = _texture()[1]
    ref_transform = base * Affine.translation(c0, r0)
    sec_transform = base * Affine.translation(c0 + col_off, r0 + row_off)
    ref_path = _write(tmp_path / "ref.tif", ref, ref_transform)
    sec_path = _write(tmp_path / "sec.tif", sec, sec_transform)
    out = correlate_files(ref_path, sec_path, str(tmp_path / "disp.tif"), CHIP, SEARCH, STEP).path

    col0, row0 = max(col_off, 0), max(row_off, 0)
    overlap_h, overlap_w = height - abs(row_off), width - abs(col_off)
    with rasterio.open(out) as ds:
        assert ds.transform == grid_transform(ref_transform, col0, row0, CHIP, STEP)
        assert (ds.height, ds.width) == ((overlap_h - CHIP) // STEP + 1, (overlap_w - CHIP) // STEP + 1)
        out_dx, out_dy, valid = ds.read(1), ds.read(2), ds.read(3) == 1
    inner = _interior(valid)
    assert inner.mean() > 0.9
    assert _rmse(_interior(out_dx)[inner] - dx) < 0.05
    assert _rmse(_interior(out_dy)[inner] - dy) < 0.05


def test_declared_nodata_in_the_secondary_file_is_invalid(shifted_files, tmp_path):
    ref_path, _, transform, _ = shifted_files
    ref, sec = _shifted_pair(0.7, -1.4)
    sec = np.round(sec)
    sec[:, 200:] = 0  # Planet-style nodata, declared in the file
    sec_path = _write(tmp_path / "sec_nodata.tif", sec, transform, nodata=0)
    out = correlate_files(ref_path, sec_path, str(tmp_path / "disp.tif"), CHIP, SEARCH, STEP,
                          subpixel="gaussian", min_valid_fraction=1.0).path  # chips touching nodata: invalid
    with rasterio.open(out) as ds:
        valid = ds.read(3) == 1
    first_cols = np.arange(valid.shape[1]) * STEP
    assert not valid[:, first_cols >= 200 - CHIP + SEARCH].any()
    assert valid[1:-1, 1:(200 - CHIP - SEARCH) // STEP].mean() > 0.9


# --------------------------------------------------------------------------- errors


def _bad_secondary(kind, tmp_path, ref, transform):
    path = tmp_path / f"sec_{kind}.tif"
    if kind == "crs":
        return _write(path, ref, transform, crs=CRS.from_epsg(32619)), "EPSG:32619"
    if kind == "pixel_size":
        return _write(path, ref[::2, ::2], transform * Affine.scale(2)), "20 x 20"
    if kind == "misaligned":
        return _write(path, ref, transform * Affine.translation(0.5, 0.0)), "not aligned"
    if kind == "multiband":
        return _write(path, np.stack([ref, ref]), transform), "2 bands"
    if kind == "no_crs":
        return _write(path, ref, transform, crs=None), "no coordinate reference system"
    if kind == "missing":
        return str(tmp_path / "does_not_exist.tif"), "does not exist"
    if kind == "no_overlap":
        return _write(path, ref, transform * Affine.translation(ref.shape[1] + 5, 0)), "do not overlap"
    if kind == "small_overlap":
        return _write(path, ref, transform * Affine.translation(ref.shape[1] - 40, 0)), "overlap by only"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["crs", "pixel_size", "misaligned", "multiband", "no_crs", "missing",
                                  "no_overlap", "small_overlap"])
def test_unusable_inputs_raise_and_leave_nothing(tmp_path, kind):
    ref, _ = _shifted_pair(0.0, 0.0)
    transform = _texture()[1]
    ref_path = _write(tmp_path / "ref.tif", ref, transform)
    sec_path, fragment = _bad_secondary(kind, tmp_path, ref, transform)
    before = _folder_files(tmp_path)
    out = tmp_path / "disp.tif"
    with pytest.raises(UserInputError, match=fragment):
        correlate_files(ref_path, sec_path, str(out), CHIP, SEARCH, STEP)
    assert not out.exists()
    assert _folder_files(tmp_path) == before
    if kind == "crs":  # the message names both CRSs and the fix
        with pytest.raises(UserInputError, match="EPSG:32618.*EPSG:32619.*gdalwarp.*-tap"):
            correlate_files(ref_path, sec_path, str(out), CHIP, SEARCH, STEP)
    # the reference is checked the same way
    if kind in ("multiband", "no_crs", "missing"):
        with pytest.raises(UserInputError, match=fragment):
            correlate_files(sec_path, ref_path, str(out), CHIP, SEARCH, STEP)
        assert _folder_files(tmp_path) == before


@pytest.mark.parametrize("kwargs, fragment", [
    ({"chip_size": 4}, "Chip size"), ({"search_range": 0}, "Search range"), ({"step": 0}, "Step"),
    ({"subpixel": "bicubic"}, "sub-pixel method"),
])
def test_bad_parameters_raise(kwargs, fragment):
    ref, sec = _shifted_pair(0.0, 0.0)
    params = {**dict(chip_size=CHIP, search_range=SEARCH, step=STEP), **kwargs}
    with pytest.raises(UserInputError, match=fragment):
        correlate_arrays(ref, sec, params.pop("chip_size"), params.pop("search_range"), params.pop("step"),
                         **params)


def test_array_shape_mismatch_raises():
    ref, sec = _shifted_pair(0.0, 0.0)
    with pytest.raises(UserInputError, match="same shape"):
        correlate_arrays(ref, sec[:-1], CHIP, SEARCH, STEP)


def test_cancel_after_first_block_leaves_no_file(shifted_files, tmp_path, monkeypatch):
    ref_path, sec_path, _, _ = shifted_files
    monkeypatch.setattr(blocks_module, "_BLOCK_MEMORY_BYTES", 30_000_000)
    calls = []

    def is_canceled():
        calls.append(True)
        return len(calls) > 1  # the first block runs, the second is cancelled

    before = _folder_files(tmp_path)
    percents = []
    with pytest.raises(Cancelled):
        correlate_files(ref_path, sec_path, str(tmp_path / "disp.tif"), CHIP, SEARCH, STEP,
                        progress=percents.append, is_canceled=is_canceled)
    # blocks are computed two at a time: at most the first finished before the cancel
    assert len(calls) == 2 and len(percents) <= 1 and all(0 < p < 100 for p in percents)
    assert _folder_files(tmp_path) == before  # no output, no .partial files


@pytest.mark.parametrize("which", ["reference", "secondary"])
def test_truncated_input_file_is_a_clear_error_and_nothing_is_written(shifted_files, tmp_path, which):
    """A GeoTIFF whose header opens but whose later blocks are cut off: the core.io reader names it."""
    ref_path, sec_path, _, _ = shifted_files
    cut = truncated_copy(ref_path if which == "reference" else sec_path, str(tmp_path / f"{which}_cut.tif"))
    inputs = (cut, sec_path) if which == "reference" else (ref_path, cut)
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    with pytest.raises(UserInputError, match=TRUNCATED_MESSAGE.format(name=f"{which}_cut.tif")):
        correlate_files(*inputs, str(out_folder / "disp.tif"), CHIP, SEARCH, STEP)
    assert _folder_files(out_folder) == []
