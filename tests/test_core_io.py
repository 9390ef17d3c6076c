"""The shared I/O of the core (core.io): guarded reads, verified atomic writes, resampling, resume."""
import errno
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from core.errors import Cancelled, UserInputError
from core.io import (COMPLETE_TAG, Grid, GridResampler, OutputSet, RasterWriter, atomic_file, is_complete_raster,
                     open_raster, output_folder, remove_stale_temporaries, resample_to_grid, verify, write_raster)
from core.io.files import is_stale_temporary, temporary_name, write_failure
from faults import can_mount_tmpfs, leftovers, random_texture, run_with_file_size_limit, small_disk, truncated_copy

GRID = Grid(CRS.from_epsg(32633), from_origin(500000.0, 4000000.0, 10.0, 10.0), 300, 200)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_tmpfs = pytest.mark.skipif(not can_mount_tmpfs(), reason="mounting a tmpfs needs root; the RLIMIT_FSIZE "
                                 "variant below covers the same path")


def _two_bands(seed=0):
    return np.stack([random_texture(GRID.shape, seed), random_texture(GRID.shape, seed + 1)])


def test_writer_round_trip_with_profile_tags_style_and_completion(tmp_path):
    path = str(tmp_path / "out.tif")
    data = _two_bands()
    data[0, :10, :10] = np.nan
    write_raster(path, GRID, data, ["speed (m/yr)", "azimuth (deg)"], tags={"SM_X": 1.5},
                 band_tags=[{"SM_DATE": "2020-01-01"}, None], style="velocity_speed")
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(ds.read(), data)
        assert ds.descriptions == ("speed (m/yr)", "azimuth (deg)")
        assert ds.crs == GRID.crs and ds.transform == GRID.transform
        assert np.isnan(ds.nodata) and ds.dtypes == ("float32", "float32")
        assert ds.profile["compress"] == "deflate" and ds.profile["tiled"] and ds.block_shapes[0] == (256, 256)
        assert ds.tags()["SM_X"] == "1.5" and ds.tags()[COMPLETE_TAG] == "1" and ds.tags(1)["SM_DATE"] == "2020-01-01"
    assert os.path.isfile(str(tmp_path / "out.qml"))
    assert sorted(os.listdir(tmp_path)) == ["out.qml", "out.tif"]
    assert is_complete_raster(path) is None


def test_block_iterator_and_integer_profile(tmp_path):
    path = str(tmp_path / "dn.tif")
    values = (np.arange(GRID.width * GRID.height) % 200 + 1).reshape(GRID.shape).astype(np.uint8)

    def blocks():
        for start in range(0, GRID.height, 64):
            stop = min(GRID.height, start + 64)
            yield rasterio.windows.Window(0, start, GRID.width, stop - start), values[None, start:stop]

    write_raster(path, GRID, blocks(), ["DN"], dtype="uint8", scales=[0.5], offsets=[-30.0])
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(ds.read(1), values)
        assert ds.nodata == 0 and ds.scales == (0.5,) and ds.offsets == (-30.0,)


def test_output_without_valid_cell_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="no valid cell.*Check the mask"):
        write_raster(str(tmp_path / "empty.tif"), GRID, np.full((1,) + GRID.shape, np.nan), ["x"],
                     require_valid="Check the mask.")
    assert os.listdir(tmp_path) == []
    write_raster(str(tmp_path / "allowed.tif"), GRID, np.full((1,) + GRID.shape, np.nan), ["x"], require_valid=None)
    assert os.listdir(tmp_path) == ["allowed.tif"]


def test_failure_or_cancel_inside_leaves_nothing_and_keeps_an_older_output(tmp_path):
    path = str(tmp_path / "out.tif")
    write_raster(path, GRID, _two_bands(), ["a", "b"])
    before = open(path, "rb").read()
    for error in (Cancelled("stop"), RuntimeError("boom")):
        with pytest.raises((Cancelled, UserInputError)):
            with RasterWriter(path, GRID, ["a", "b"], style="velocity_speed") as out:
                out.write(_two_bands(5)[0], 1)
                raise error
        assert open(path, "rb").read() == before
        assert sorted(os.listdir(tmp_path)) == ["out.tif"]


def test_verification_catches_a_block_the_disk_lost(tmp_path, monkeypatch):
    """A write GDAL did not store (it only warns) reads back differently and is refused."""
    path = str(tmp_path / "out.tif")
    original = RasterWriter.write_content

    def lose_a_block(self):
        self.dataset.write(np.zeros((16, 16), np.float32), 1, window=rasterio.windows.Window(0, 0, 16, 16))
        original(self)

    monkeypatch.setattr(RasterWriter, "write_content", lose_a_block)
    with pytest.raises(UserInputError, match="reads back different values"):
        write_raster(path, GRID, _two_bands(), ["a", "b"])
    assert os.listdir(tmp_path) == []


@needs_tmpfs
def test_full_disk_clear_error_nothing_left():
    with small_disk(free_bytes=40_000) as folder:
        with pytest.raises(UserInputError, match=r"No space left on .*about 0.48 MB needed"):
            write_raster(os.path.join(folder, "out.tif"), GRID, _two_bands(), ["a", "b"], style="velocity_speed")
        assert leftovers(folder) == []
        with pytest.raises(UserInputError, match="No space left"):
            with atomic_file(os.path.join(folder, "table.csv"), verify=verify.csv_rows(200_000)) as tmp:
                with open(tmp, "w") as handle:
                    handle.write("a,b\n" + "1.0,2.0\n" * 200_000)
        assert leftovers(folder) == []


@needs_tmpfs
def test_early_refusal_when_even_well_compressed_it_cannot_fit():
    with small_disk(free_bytes=8_000) as folder:
        big = Grid(GRID.crs, GRID.transform, 4000, 4000)
        with pytest.raises(UserInputError, match="No space left .* 64 MB needed uncompressed"):
            RasterWriter(os.path.join(folder, "big.tif"), big, ["a"]).__enter__()
        assert leftovers(folder) == []


def test_file_size_limit_in_a_subprocess(tmp_path):
    code = f"""
import sys
sys.path.insert(0, {REPO!r}); sys.path.insert(0, {os.path.join(REPO, 'tests')!r})
import numpy as np
from core.io import Grid, write_raster
from core.errors import UserInputError
from rasterio.transform import from_origin
grid = Grid("EPSG:32633", from_origin(0, 0, 10, 10), 600, 600)
try:
    write_raster({str(tmp_path / 'out.tif')!r}, grid, np.random.default_rng(0).normal(size=(1, 600, 600)), ["a"])
except UserInputError as exc:
    print("ERROR", exc)
"""
    done = run_with_file_size_limit(code, 200_000)
    assert "ERROR" in done.stdout and "file size limit" in done.stdout, done.stdout + done.stderr
    assert os.listdir(tmp_path) == []


def test_output_set_all_or_nothing(tmp_path):
    grid = Grid(GRID.crs, GRID.transform, 40, 30)
    with pytest.raises(UserInputError, match="no valid cell"):
        with OutputSet() as outputs:
            with outputs.raster(str(tmp_path / "01.tif"), grid, ["a"]) as out:
                out.write(np.ones(grid.shape))
            with outputs.raster(str(tmp_path / "02.tif"), grid, ["a"]) as out:
                out.write(np.full(grid.shape, np.nan))
    assert os.listdir(tmp_path) == []
    with OutputSet() as outputs:
        for name in ("01.tif", "02.tif"):
            with outputs.raster(str(tmp_path / name), grid, ["a"]) as out:
                out.write(np.ones(grid.shape))
        assert os.listdir(tmp_path) != [] and not os.path.exists(tmp_path / "01.tif")  # renamed at the end only
    assert sorted(os.listdir(tmp_path)) == ["01.tif", "02.tif"]


def test_truncated_raster_read_names_file_and_window(tmp_path):
    source = str(tmp_path / "good.tif")
    write_raster(source, GRID, _two_bands(), ["a", "b"])
    bad = truncated_copy(source, str(tmp_path / "cut.tif"))
    with open_raster(bad) as ds:
        ds.read(1, window=rasterio.windows.Window(0, 0, 16, 16))  # the first blocks survive
        with pytest.raises(UserInputError, match=r"Cannot read the pixels of '.*cut.tif' \(band 2, the whole "
                                                 r"raster\).*truncated or corrupt"):
            ds.read(2)
    with pytest.raises(UserInputError, match="cut.tif"):
        resample_to_grid(bad, GRID, 2)


def test_unreadable_and_wrong_driver(tmp_path):
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(UserInputError, match="Cannot read raster .*notes.tif"):
        open_raster(str(text))
    with pytest.raises(UserInputError, match="does not exist"):
        open_raster(str(tmp_path / "missing.tif"))


def test_resample_onto_grid_other_crs_nodata_scale(tmp_path):
    source = str(tmp_path / "src.tif")
    values = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    values[0, 0] = -9999
    src_grid = Grid(CRS.from_epsg(32633), from_origin(500000.0, 4000000.0, 20.0, 20.0), 50, 40)
    write_raster(source, src_grid, values[None], ["v"], nodata=-9999, scales=[2.0], offsets=[1.0])
    # same CRS, target pixels centred on source pixel centres: nearest = exact values x scale + offset
    target = Grid(src_grid.crs, from_origin(500000.0, 4000000.0, 20.0, 20.0), 60, 40)
    out = resample_to_grid(source, target, resampling="nearest")
    assert np.isnan(out[0, 0]) and np.all(np.isnan(out[:, 50:]))
    np.testing.assert_allclose(out[1:, :50], values[1:] * 2.0 + 1.0)
    # bilinear at half-pixel positions = mean of the neighbours (a linear field is reproduced)
    shifted = Grid(src_grid.crs, from_origin(500010.0, 3999990.0, 20.0, 20.0), 10, 10)
    with GridResampler(shifted) as resampler:
        window = resampler.read(source, window=rasterio.windows.Window(0, 2, 10, 3))
    expected = (values[2:5, :10] + values[2:5, 1:11] + values[3:6, :10] + values[3:6, 1:11]) / 4 * 2.0 + 1.0
    np.testing.assert_allclose(window, expected, rtol=1e-6)
    # another CRS: the UTM 33 raster seen from UTM 32 lands where pyproj puts it
    from rasterio.warp import transform as reproject_points
    xs, ys = reproject_points(src_grid.crs, CRS.from_epsg(32632), [500000.0 + 500.0], [4000000.0 - 400.0])
    utm32 = Grid(CRS.from_epsg(32632), from_origin(xs[0] - 100.0, ys[0] + 100.0, 20.0, 20.0), 10, 10)
    moved = resample_to_grid(source, utm32, resampling="nearest")
    # the centre of cell (5, 5) is the source point (col 25, row 20): source pixel (20, 25) or a neighbour
    assert abs(moved[5, 5] - (values[20, 25] * 2.0 + 1.0)) <= 2.0 * 51


def test_stale_temporaries_of_killed_runs_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = temporary_name(str(tmp_path / "a.tif"))
    stale = live.replace(f"~{os.getpid()}~", f"~{dead_pid}~")
    legacy = str(tmp_path / ".b.abcd1234.partial.tif")
    pyramid = str(tmp_path / ".pyramid_abcd1234")
    for path in (live, stale, legacy):
        open(path, "w").close()
    os.mkdir(pyramid)
    assert not is_stale_temporary(os.path.basename(live)) and is_stale_temporary(os.path.basename(stale))
    removed = remove_stale_temporaries(str(tmp_path))
    assert sorted(map(os.path.basename, removed)) == sorted(map(os.path.basename, (stale, legacy, pyramid)))
    assert os.listdir(tmp_path) == [os.path.basename(live)]


def test_is_complete_raster(tmp_path):
    path = str(tmp_path / "out.tif")
    assert "cannot be read" in is_complete_raster(path)
    write_raster(path, GRID, _two_bands(), ["a", "b"])
    assert is_complete_raster(path) is None
    with rasterio.open(str(tmp_path / "old.tif"), "w", driver="GTiff", width=5, height=5, count=1,
                       dtype="float32") as ds:
        ds.write(np.ones((5, 5), np.float32), 1)
    assert "completion mark" in is_complete_raster(str(tmp_path / "old.tif"))
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    assert is_complete_raster(path) is not None


def test_output_folder_created_by_a_failed_run_is_removed(tmp_path):
    target = tmp_path / "new" / "deeper"
    with pytest.raises(RuntimeError):
        with output_folder(str(target)) as folder:
            open(os.path.join(folder, "x.txt"), "w").close()
            raise RuntimeError("failed")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError):
        with output_folder(str(existing)):
            raise RuntimeError("failed")
    assert existing.is_dir()


def test_write_failure_messages():
    enospc = OSError(errno.ENOSPC, "No space left on device")
    assert "No space left on /data" in str(write_failure("/data/x.tif", enospc, 5_000_000))
    assert "about 5 MB needed" in str(write_failure("/data/x.tif", enospc, 5_000_000))
    assert "file size limit" in str(write_failure("/data/x.tif", OSError(errno.EFBIG, "File too large")))
    assert "Writing '/data/x.tif' failed: boom" in str(write_failure("/data/x.tif", RuntimeError("boom"), free=10**9))
