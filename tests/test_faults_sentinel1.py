"""Faults in the Sentinel-1 pipeline, through Processing: truncated inputs, full disks, empty
outputs and temporaries of killed runs (issue 9, point 7).

Every raster-reading algorithm given a GeoTIFF whose header opens but whose blocks are cut
off fails with a clear error naming the file and writes nothing; every writing algorithm on
a full disk fails with a clear error and leaves nothing (no date file, no VRT, no .qml, no
partial, not even the output folder it created). The same parameters with enough space
succeed, and their numbers are checked.
"""
import datetime as dt
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from conftest import PLUGIN_PARENT, REPO
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, can_mount_tmpfs, run_on_full_disk, truncated_copy

DATA = os.path.join(REPO, "tests", "data", "s1")
SAFE = os.path.join(DATA, "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
DEM = os.path.join(DATA, "Rome-30m-DEM.tif")
STEM = os.path.basename(SAFE)[:-5]
#: An area in the southern half of the DEM (rows 216-288 of 360), which a truncated copy loses.
AOI = "12.47,12.49,41.97,41.99 [EPSG:4326]"
WHEN = [dt.datetime(2022, 1, 2, 5, 30) + dt.timedelta(days=24 * i) for i in range(8)]
SHAPE = (64, 64)
TRANSFORM = from_origin(400000, 5000000, 20, 20)
LEVELS = {"VV": 0.1, "VH": 0.02}
#: Free space below the size of every algorithm's first output: fails on a tmpfs (root) and under the
#: per-file RLIMIT_FSIZE that tests/faults.py uses otherwise.
SMALL = 8 << 10


def partly_full(free_bytes):
    """A disk on which the run fails after some outputs were written: only a tmpfs (root) has a total;
    RLIMIT_FSIZE limits each file, so there these outputs would fit."""
    return pytest.param(free_bytes, marks=pytest.mark.skipif(
        not can_mount_tmpfs(), reason="a partly full disk needs a tmpfs (root)"))


def write_ard(folder, pols=("VV", "VH"), seed=0):
    """Linear-power ARD, one file per date and polarisation (0 = nodata); returns {pol: (dates, rows, cols)}."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for pol in pols:
        stack = (LEVELS[pol] * rng.gamma(4, 0.25, (len(WHEN),) + SHAPE)).astype(np.float32)
        for when, image in zip(WHEN, stack):
            with rasterio.open(ard_path(folder, when, pol), "w", driver="GTiff", width=SHAPE[1], height=SHAPE[0],
                               count=1, dtype="float32", crs="EPSG:32633", transform=TRANSFORM, nodata=0.0) as ds:
                ds.write(image, 1)
        truth[pol] = stack
    return truth


def ard_path(folder, when, pol):
    return os.path.join(folder, f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_gamma0_{pol}.tif")


def write_db_dates(folder, db, pol="VV", column_shift=0):
    """Single-date dB rasters ``NN.<YYYYMMDD>.<POL>.tif`` (NaN nodata), optionally ``column_shift`` pixels east."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k, (when, image) in enumerate(zip(WHEN, db), start=1):
        path = os.path.join(folder, f"{k:02d}.{when:%Y%m%d}.{pol}.tif")
        with rasterio.open(path, "w", driver="GTiff", width=SHAPE[1], height=SHAPE[0], count=1, dtype="float32",
                           crs="EPSG:32633", transform=TRANSFORM * TRANSFORM.translation(column_shift, 0),
                           nodata=float("nan")) as ds:
            ds.write(image.astype(np.float32), 1)
            ds.set_band_description(1, when.isoformat())
        paths.append(path)
    return paths


def vv_stack(tmp_path, folder="stack"):
    """A VV stack of dB date files in ``tmp_path/folder``: (dB values, paths)."""
    db = 10 * np.log10(write_ard(str(tmp_path / "ard"), pols=("VV",))["VV"])
    return db, write_db_dates(str(tmp_path / folder), db)


def read_stack(paths):
    return np.stack([read(p) for p in paths]).astype(np.float64)


def truncate_in_place(path):
    """Replace ``path`` by its truncated copy (header opens, later blocks missing); returns its name."""
    cut = path + ".cut.tif"
    truncated_copy(path, cut)
    os.replace(cut, path)
    return os.path.basename(path)


def read(path, band=1):
    with rasterio.open(path) as ds:
        return ds.read(band)


def assert_fails_naming(run_algorithm, algorithm_id, parameters, name):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(algorithm_id, parameters)
    message = str(raised.value)
    assert re.search(TRUNCATED_MESSAGE.format(name=re.escape(name)), message), message
    return message


def dead_temporary_name(path):
    """The temporary name core.io gives ``path`` in a process that has ended (a killed run)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from core.io.files import temporary_name; "
            "print(temporary_name(sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", code, REPO, path], capture_output=True, text=True, check=True)
    return done.stdout.strip()


# --------------------------------------------------------------------------- truncated inputs


def test_timeseries_truncated_date_among_good_ones(run_algorithm, tmp_path):
    write_ard(str(tmp_path / "ard"))
    name = truncate_in_place(ard_path(str(tmp_path / "ard"), WHEN[5], "VH"))
    out = tmp_path / "ts"
    assert_fails_naming(run_algorithm, "surfacemotion:s1timeseries",
                        {"FOLDER": str(tmp_path / "ard"), "UNIT": 1, "OUTPUT_FOLDER": str(out)}, name)
    assert not out.exists()


@pytest.mark.parametrize("algorithm_id, extra", [
    ("surfacemotion:s1mtspeckle", {"WINDOW": 3}),
    ("surfacemotion:s1timescan", {"METRICS": [0, 8]}),
])
def test_stack_algorithms_truncated_date(run_algorithm, tmp_path, algorithm_id, extra):
    _, paths = vv_stack(tmp_path)
    name = truncate_in_place(paths[3])
    out = tmp_path / "out"
    assert_fails_naming(run_algorithm, algorithm_id,
                        dict(extra, INPUT=paths, UNIT=0, OUTPUT_FOLDER=str(out)), name)
    assert not out.exists()


def test_animation_truncated_date(run_algorithm, tmp_path):
    truth = write_ard(str(tmp_path / "ard"))
    co = write_db_dates(str(tmp_path / "vv"), 10 * np.log10(truth["VV"]))
    cross = write_db_dates(str(tmp_path / "vh"), 10 * np.log10(truth["VH"]), pol="VH")
    name = truncate_in_place(cross[6])
    gif = tmp_path / "gif" / "anim.gif"
    assert_fails_naming(run_algorithm, "surfacemotion:s1animation",
                        {"INPUT": co, "CROSS": cross, "MAX_SIZE": 16, "OUTPUT": str(gif)}, name)
    assert not (tmp_path / "gif").exists()


def test_mosaic_truncated_date_among_good_ones(run_algorithm, tmp_path):
    db, track_a = vv_stack(tmp_path, "a")
    track_b = write_db_dates(str(tmp_path / "b"), db, column_shift=20)
    name = truncate_in_place(track_b[2])
    out = tmp_path / "mosaic"
    assert_fails_naming(run_algorithm, "surfacemotion:s1mosaic",
                        {"INPUT": track_a + track_b, "FEATHER": 3, "OUTPUT_FOLDER": str(out)}, name)
    assert not out.exists()


def test_grdtoard_truncated_dem(run_algorithm, tmp_path):
    dem = truncated_copy(DEM, str(tmp_path / "Rome-DEM-cut.tif"))
    out = tmp_path / "ard"
    assert_fails_naming(run_algorithm, "surfacemotion:s1grdtoard",
                        {"SAFE_FOLDER": SAFE, "DEM": dem, "PRODUCT_TYPE": 1, "AOI": AOI,
                         "OUTPUT_FOLDER": str(out)}, os.path.basename(dem))
    assert not out.exists()


# --------------------------------------------------------------------------- full disks


def full_disk(run_algorithm, tmp_path, algorithm_id, make_parameters, free_bytes):
    message = run_on_full_disk(run_algorithm, algorithm_id, make_parameters, free_bytes, tmp_path, PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "nothing was written" in message
    return message


@pytest.mark.parametrize("free_bytes", [SMALL, partly_full(120 << 10)])
def test_timeseries_full_disk(run_algorithm, tmp_path, free_bytes):
    truth = write_ard(str(tmp_path / "ard"))

    def parameters(folder):
        return {"FOLDER": str(tmp_path / "ard"), "UNIT": 1, "APPLY_LS_MASK": False, "OUTPUT_FOLDER": folder}

    full_disk(run_algorithm, tmp_path, "surfacemotion:s1timeseries", parameters, free_bytes)
    results, _, _ = run_algorithm("surfacemotion:s1timeseries", parameters(str(tmp_path / "ts")))
    assert len(results["OUTPUT_LAYERS"]) == 16
    with rasterio.open(results["VV_VRT"]) as vrt:
        np.testing.assert_allclose(vrt.read(), 10 * np.log10(truth["VV"]), atol=1e-5)
    assert os.path.isfile(str(tmp_path / "ts" / "Timeseries.VV.qml"))


@pytest.mark.parametrize("free_bytes", [SMALL, partly_full(48 << 10)])
def test_speckle_full_disk(run_algorithm, tmp_path, free_bytes):
    from core.sentinel1.speckle import quegan_filter

    _, paths = vv_stack(tmp_path)

    def parameters(folder):
        return {"INPUT": paths, "UNIT": 0, "WINDOW": 3, "OUTPUT_FOLDER": folder}

    full_disk(run_algorithm, tmp_path, "surfacemotion:s1mtspeckle", parameters, free_bytes)
    results, _, _ = run_algorithm("surfacemotion:s1mtspeckle", parameters(str(tmp_path / "spk")))
    power = 10 ** (read_stack(paths) / 10)
    with rasterio.open(results["OUTPUT_VRT"]) as vrt:
        np.testing.assert_allclose(vrt.read(), 10 * np.log10(quegan_filter(power, 3)), atol=2e-4)


@pytest.mark.parametrize("free_bytes", [SMALL, partly_full(64 << 10)])
def test_timescan_full_disk(run_algorithm, tmp_path, free_bytes):
    _, paths = vv_stack(tmp_path)

    def parameters(folder):
        return {"INPUT": paths, "UNIT": 0, "OUTPUT_FOLDER": folder}  # default metrics, harmonics included

    full_disk(run_algorithm, tmp_path, "surfacemotion:s1timescan", parameters, free_bytes)
    results, _, _ = run_algorithm("surfacemotion:s1timescan", dict(parameters(str(tmp_path / "scan")),
                                                                  REMOVE_OUTLIERS=False))
    names = [os.path.basename(p) for p in results["OUTPUT_LAYERS"]]
    assert names[0] == "01.VV.avg.tif" and names[-1] == "15.VV.model_mean.tif"
    power = 10 ** (read_stack(paths) / 10)
    np.testing.assert_allclose(read(results["OUTPUT_LAYERS"][0]), 10 * np.log10(power.mean(axis=0)), atol=1e-4)
    np.testing.assert_array_equal(read(results["OUTPUT_LAYERS"][names.index("10.VV.count.tif")]), len(WHEN))


def test_animation_full_disk(run_algorithm, tmp_path):
    from PIL import Image

    truth = write_ard(str(tmp_path / "ard"))
    co = write_db_dates(str(tmp_path / "vv"), 10 * np.log10(truth["VV"]))
    cross = write_db_dates(str(tmp_path / "vh"), 10 * np.log10(truth["VH"]), pol="VH")

    def parameters(folder):
        return {"INPUT": co, "CROSS": cross, "MAX_SIZE": 64, "OUTPUT": os.path.join(folder, "anim.gif")}

    full_disk(run_algorithm, tmp_path, "surfacemotion:s1animation", parameters, SMALL)
    results, _, _ = run_algorithm("surfacemotion:s1animation", parameters(str(tmp_path / "gif")))
    with Image.open(results["OUTPUT"]) as gif:
        assert gif.n_frames == len(WHEN) and gif.size == SHAPE[::-1]
        gif.seek(3)
        pixel = gif.convert("RGB").getpixel((40, 40))
    vv, vh = 10 * np.log10(truth["VV"][3, 40, 40]), 10 * np.log10(truth["VH"][3, 40, 40])
    expected = [np.clip((value - lo) / (hi - lo) * 255, 0, 255) for value, (lo, hi) in
                ((vv, (-20, 0)), (vh, (-25, -5)), (vv - vh, (1, 15)))]
    np.testing.assert_allclose(pixel, expected, atol=12)  # palette quantisation of the GIF


@pytest.mark.parametrize("free_bytes", [SMALL, partly_full(40 << 10)])
def test_mosaic_full_disk(run_algorithm, tmp_path, free_bytes):
    db, track_a = vv_stack(tmp_path, "a")
    track_b = write_db_dates(str(tmp_path / "b"), db, column_shift=20)

    def parameters(folder):
        return {"INPUT": track_a + track_b, "HARMONISE": False, "FEATHER": 3, "OUTPUT_FOLDER": folder}

    full_disk(run_algorithm, tmp_path, "surfacemotion:s1mosaic", parameters, free_bytes)
    results, _, _ = run_algorithm("surfacemotion:s1mosaic", parameters(str(tmp_path / "mosaic")))
    assert len(results["OUTPUT_LAYERS"]) == len(WHEN)
    with rasterio.open(results["OUTPUT_VRT"]) as vrt:
        assert vrt.shape == (64, 84)
        first = vrt.read(1)
    np.testing.assert_allclose(first[:, :20], db[0][:, :20], atol=1e-4)  # only track A west of track B
    np.testing.assert_allclose(first[:, 64:], db[0][:, 44:], atol=1e-4)  # only track B east of track A


# full while writing the DEM scratch file, sarsen's scratch files, the outputs
@pytest.mark.parametrize("free_bytes", [4 << 10, 30 << 10, partly_full(70 << 10)])
def test_grdtoard_full_disk(run_algorithm, tmp_path, free_bytes):
    def parameters(folder):
        return {"SAFE_FOLDER": SAFE, "DEM": DEM, "PRODUCT_TYPE": 1, "AOI": AOI, "OUTPUT_FOLDER": folder}

    message = full_disk(run_algorithm, tmp_path, "surfacemotion:s1grdtoard", parameters, free_bytes)
    assert "footprint" not in message and "DEM cover" not in message, message  # a full disk, not the DEM's coverage
    if free_bytes == 70 << 10:
        results, _, _ = run_algorithm("surfacemotion:s1grdtoard", parameters(str(tmp_path / "ard")))
        gamma0 = read(results["OUTPUT_LAYERS"][0])
        assert gamma0.shape == (72, 72) and np.isfinite(gamma0).all()
        # GTC γ⁰ = β⁰·tan θ with β⁰ = 150² / 473.9733² and θ ≈ 44° at Rome (see tests/test_s1_ard.py)
        assert np.median(gamma0) == pytest.approx(150 ** 2 / 473.9733 ** 2 * np.tan(np.deg2rad(44.0)), rel=0.02)
        assert set(np.unique(read(results["LS_MASK_LAYER"]))) <= {0, 1, 2}


# --------------------------------------------------------------------------- empty outputs, killed runs


def test_empty_common_extent_is_an_error(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    write_ard(str(tmp_path / "ard"))
    with rasterio.open(str(tmp_path / "ard" / "S1A_20220102_lsmask.tif"), "w", driver="GTiff", width=SHAPE[1],
                       height=SHAPE[0], count=1, dtype="uint8", crs="EPSG:32633", transform=TRANSFORM) as ds:
        ds.write(np.full(SHAPE, 2, np.uint8), 1)  # shadow everywhere
    out = tmp_path / "ts"
    with pytest.raises(QgsProcessingException, match="no valid cell.*common valid extent is empty"):
        run_algorithm("surfacemotion:s1timeseries", {"FOLDER": str(tmp_path / "ard"), "UNIT": 1,
                                                     "OUTPUT_FOLDER": str(out)})
    assert not out.exists()


def test_stack_without_valid_values_is_an_error(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    paths = write_db_dates(str(tmp_path / "stack"), np.full((len(WHEN),) + SHAPE, np.nan))
    out = tmp_path / "scan"
    with pytest.raises(QgsProcessingException, match="No pixel of the stack has a valid date"):
        run_algorithm("surfacemotion:s1timescan", {"INPUT": paths, "METRICS": [0, 8], "OUTPUT_FOLDER": str(out)})
    assert not out.exists()


def test_temporaries_of_a_killed_run_are_removed_by_the_next_run(run_algorithm, tmp_path):
    truth = write_ard(str(tmp_path / "ard"), pols=("VV",))
    out = tmp_path / "ts"
    out.mkdir()
    stale_file = dead_temporary_name(str(out / "01.20220102.VV.tif"))
    stale_sidecar = os.path.splitext(stale_file)[0] + ".qml"
    for path in (stale_file, stale_sidecar):
        with open(path, "wb") as handle:
            handle.write(b"partial")
    results, _, feedback = run_algorithm("surfacemotion:s1timeseries", {
        "FOLDER": str(tmp_path / "ard"), "UNIT": 1, "OUTPUT_FOLDER": str(out)})
    assert not os.path.exists(stale_file) and not os.path.exists(stale_sidecar)
    assert sorted(os.listdir(out)) == sorted(
        [f"{k:02d}.{w:%Y%m%d}.VV.{ext}" for k, w in enumerate(WHEN, 1) for ext in ("tif", "qml")]
        + ["Timeseries.VV.vrt", "Timeseries.VV.qml"])
    np.testing.assert_allclose(read(results["OUTPUT_LAYERS"][0]), 10 * np.log10(truth["VV"][0]), atol=1e-5)


def test_grdtoard_removes_the_scratch_folder_of_a_killed_run(run_algorithm, tmp_path):
    out = tmp_path / "ard"
    out.mkdir()
    scratch = dead_temporary_name(str(out / "s1grdtoard"))
    os.makedirs(scratch)
    with open(os.path.join(scratch, "dem.tif"), "wb") as handle:
        handle.write(b"partial")
    results, _, _ = run_algorithm("surfacemotion:s1grdtoard", {
        "SAFE_FOLDER": SAFE, "DEM": DEM, "PRODUCT_TYPE": 1, "LS_MASK": False, "AOI": AOI,
        "OUTPUT_FOLDER": str(out)})
    assert sorted(os.listdir(out)) == [f"{STEM}_GTCgamma0_VV.qml", f"{STEM}_GTCgamma0_VV.tif"]
    assert np.isfinite(read(results["OUTPUT_LAYERS"][0])).all()
