"""Faults in the ITS_LIVE pipeline (issue 9): truncated inputs, full disks, interrupted downloads and
outputs without a valid cell. Real inputs: the Alaska stacks of tests/data/itslive and the loopback
ITS_LIVE server of tests/itslive_server.py."""
import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from conftest import PLUGIN_PARENT
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, leftovers, run_on_full_disk, truncated_copy
from itslive_server import CUBE_NAME
from test_itslive_algorithms import (OUTLINE_CSV, THICKNESS, VX, VY, fast_ice_points, seeds_geojson, service,
                                     window_extent)
from test_itslive_cubes import COLS, ROWS, window_aoi

CACHE_DIR = ".itslive_cache"


def recording_feedback():
    """A QgsProcessingFeedback that keeps its info messages in ``infos``."""
    from qgis.core import QgsProcessingFeedback

    class Recording(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.infos = []

        def pushInfo(self, text):  # noqa: N802 (QGIS API name)
            self.infos.append(text)
            super().pushInfo(text)

    return Recording()


# --------------------------------------------------------------------------- truncated inputs

TRUNCATED_CASES = [
    ("strainrates", "VX"), ("strainrates", "VY"), ("strainrates", "VX_ERROR"),
    ("fluxdivergence", "THICKNESS"), ("fluxdivergence", "VX"), ("fluxdivergence", "VY"),
    ("trackparticles", "VX"), ("trackparticles", "VY"),
]


def analysis_parameters(algorithm, folder, **inputs):
    """Parameters of an analysis algorithm on the Alaska stacks with every output inside ``folder``."""
    folder = str(folder)
    seeds = inputs.pop("SEEDS", None)
    if algorithm == "strainrates":
        parameters = {"VX": VX, "VY": VY, "BAND": 3, "VX_ERROR": VX, "VY_ERROR": VY,
                      "OUTPUT": os.path.join(folder, "strain.tif")}
    elif algorithm == "fluxdivergence":
        parameters = {"THICKNESS": THICKNESS, "VX": VX, "VY": VY, "OUTLINE_CSV": OUTLINE_CSV,
                      "OUTPUT": os.path.join(folder, "flux.tif")}
    else:
        parameters = {"SEEDS": seeds, "VX": VX, "VY": VY, "DURATION": 1.0,
                      "OUTPUT_LINES": os.path.join(folder, "lines.gpkg"),
                      "OUTPUT_POINTS": os.path.join(folder, "points.gpkg")}
    parameters.update(inputs)
    return parameters


@pytest.mark.parametrize("algorithm, name", TRUNCATED_CASES)
def test_a_truncated_input_raster_is_named_and_nothing_is_written(run_algorithm, tmp_path, algorithm, name):
    from qgis.core import QgsProcessingException

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    source = {"VX": VX, "VY": VY, "VX_ERROR": VX, "THICKNESS": THICKNESS}[name]
    broken = truncated_copy(source, str(inputs / f"truncated_{name.lower()}.tif"))
    seeds = seeds_geojson(inputs / "seeds.geojson", fast_ice_points(2))
    out = tmp_path / "out"
    out.mkdir()
    parameters = analysis_parameters(algorithm, out, SEEDS=seeds, **{name: broken})
    pattern = TRUNCATED_MESSAGE.format(name=re.escape(os.path.basename(broken)))
    with pytest.raises(QgsProcessingException, match=pattern):
        run_algorithm(f"surfacemotion:{algorithm}", parameters)
    assert leftovers(str(out)) == []


# --------------------------------------------------------------------------- outputs without a valid cell

def write_single_band(path, array, transform, crs="EPSG:3413"):
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=float("nan")) as ds:
        ds.write(array.astype(np.float32), 1)
    return str(path)


def test_an_output_without_a_valid_cell_is_an_error(run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    with rasterio.open(VX) as ds:
        transform = ds.transform
        vx = ds.read(1)
    # velocities only in the even columns: ∂/∂x (over ±1 column) exists only in the odd columns and
    # ∂/∂y only in the even ones, so no cell has all the derivatives (the old code wrote an all-NaN file)
    sparse = np.where(np.arange(vx.shape[1])[None, :] % 2 == 0, vx, np.nan)
    assert np.isfinite(sparse).sum() > 10000
    vx_path = write_single_band(tmp_path / "vx_sparse.tif", sparse, transform)
    for algorithm, extra in (("strainrates", {}), ("fluxdivergence", {"THICKNESS": THICKNESS})):
        out = tmp_path / f"{algorithm}.tif"
        with pytest.raises(QgsProcessingException, match="would have no valid cell.*length scale"):
            run_algorithm(f"surfacemotion:{algorithm}", dict({"VX": vx_path, "VY": vx_path, "OUTPUT": str(out)}, **extra))
        assert leftovers(str(tmp_path)) == ["vx_sparse.tif"]


# --------------------------------------------------------------------------- full disks

@pytest.fixture
def clean_server(cube_server):
    cube_server.faults.clear()
    yield cube_server
    cube_server.faults.clear()


def full_disk_cases(server, tmp_path):
    (extent, (left, top)), urls = window_extent(server), service(server)
    seeds = seeds_geojson(tmp_path / "seeds.geojson", fast_ice_points(2))
    points = seeds_geojson(tmp_path / "points.geojson", [(left + 60.0, top - 60.0)])
    stem = CUBE_NAME[:-5]
    return {
        # (free bytes, parameters(folder), every file of a complete run): the free space is below
        # what the outputs need
        "strainrates": (1 << 20, lambda folder: analysis_parameters("strainrates", folder),
                        ["strain.qml", "strain.tif"]),
        "fluxdivergence": (128 << 10, lambda folder: analysis_parameters("fluxdivergence", folder),
                           ["flux.qml", "flux.tif"]),
        "trackparticles": (64 << 10, lambda folder: analysis_parameters("trackparticles", folder, SEEDS=seeds),
                           ["lines.gpkg", "points.gpkg"]),
        "itslivefindcubes": (64 << 10, lambda folder: dict(
            {"AOI_EXTENT": extent, "OUTPUT": os.path.join(folder, "cubes.gpkg")}, **urls), ["cubes.gpkg"]),
        "itslivedownload": (16 << 10, lambda folder: dict(
            {"AOI_EXTENT": extent, "START_DATE": "2010-01-01", "END_DATE": "2019-01-01", "VARIABLES": [0, 2],
             "OUTPUT_FOLDER": folder}, **urls),
            [f"{stem}.nc", f"{stem}_v.qml", f"{stem}_v.tif", f"{stem}_vx.qml", f"{stem}_vx.tif"]),
        "itslivepointseries": (16 << 10, lambda folder: dict(
            {"POINTS": points, "START_DATE": "2010-01-01", "END_DATE": "2019-01-01",
             "OUTPUT": os.path.join(folder, "series.gpkg"), "OUTPUT_CSV": os.path.join(folder, "series.csv"),
             "OUTPUT_PLOT": os.path.join(folder, "series.png")}, **urls),
            ["series.csv", "series.gpkg", "series.png"]),
    }


@pytest.mark.parametrize("algorithm", ["strainrates", "fluxdivergence", "trackparticles", "itslivefindcubes",
                                       "itslivedownload", "itslivepointseries"])
def test_a_full_disk_gives_a_clear_error_and_leaves_nothing(run_algorithm, clean_server, tmp_path, algorithm):
    free, make_parameters, complete = full_disk_cases(clean_server, tmp_path)[algorithm]
    message = run_on_full_disk(run_algorithm, f"surfacemotion:{algorithm}", make_parameters, free, tmp_path,
                               PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    # the same run with room writes exactly its outputs: the failure was the disk, and no temporary,
    # cache or sidecar of another output is left
    folder = tmp_path / "roomy"
    run_algorithm(f"surfacemotion:{algorithm}", make_parameters(str(folder)))
    assert leftovers(str(folder)) == complete


# --------------------------------------------------------------------------- resuming a download

def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def stale_temporary(final_path: str) -> str:
    """The temporary name a killed writer of ``final_path`` left (this host, a process that has exited)."""
    from core.io.files import temporary_name

    name = temporary_name(final_path)
    return re.sub(r"~\d+~", f"~{dead_pid()}~", name)


def cube_truth(server, name, start, end, left, top):
    """Layers of ``name`` in [start, end), in mid_date order, on the 30 x 20 window at (left, top)."""
    import xarray as xr

    with xr.open_zarr(os.path.join(server.root, "cubes", CUBE_NAME), consolidated=True) as cube:
        x, y, mid = cube["x"].values, cube["y"].values, cube["mid_date"].values
        cols = np.flatnonzero((x > left) & (x < left + 30 * 120.0))
        rows = np.flatnonzero((y < top) & (y > top - 20 * 120.0))
        layers = np.flatnonzero((mid >= np.datetime64(start)) & (mid < np.datetime64(end)))
        layers = layers[np.argsort(mid[layers], kind="stable")]
        return cube[name].isel(mid_date=layers, y=rows, x=cols).values.astype(np.float32)


def test_an_interrupted_download_resumes_from_a_cache_it_can_trust(run_algorithm, clean_server, tmp_path):
    from qgis.core import QgsProcessingException

    server = clean_server
    (extent, (left, top)), urls = window_extent(server), service(server)
    folder = tmp_path / "download"
    parameters = dict({"AOI_EXTENT": extent, "START_DATE": "2012-01-01", "END_DATE": "2014-01-01",
                       "VARIABLES": [0, 1], "OUTPUT_FOLDER": str(folder)}, **urls)
    # 1. the server fails on vy: vx is cached, nothing else is written
    server.faults[f"/cubes/{CUBE_NAME}/vy/"] = "500"
    with pytest.raises(QgsProcessingException, match="server error"):
        run_algorithm("surfacemotion:itslivedownload", parameters)
    cached = glob.glob(str(folder / CACHE_DIR / "*" / "vx.npy"))
    assert len(cached) == 1 and not glob.glob(str(folder / "*.tif")) and not glob.glob(str(folder / "*.nc"))
    cache = os.path.dirname(cached[0])
    # 2. a killed run left temporaries: its own (this host, a dead process) and the names of earlier versions
    stale = [stale_temporary(os.path.join(cache, "vy.npy")), os.path.join(cache, "vy.npy.partial.npy"),
             stale_temporary(os.path.join(str(folder), "cube_vx.tif"))]
    other_request = folder / CACHE_DIR / "0123456789abcdef"
    other_request.mkdir()
    stale += [str(other_request / "vx.npy.partial.npy"), stale_temporary(str(other_request / "vx.npy"))]
    for path in stale:
        with open(path, "wb") as handle:
            handle.write(b"\x93NUMPY half")
    feedback = recording_feedback()
    with pytest.raises(QgsProcessingException, match="server error"):
        run_algorithm("surfacemotion:itslivedownload", parameters, feedback=feedback)
    assert [p for p in stale if os.path.exists(p)] == []
    assert sum("interrupted run" in text for text in feedback.infos) == len(stale)
    assert os.path.exists(cached[0])  # the finished part is kept
    # 3. the finished part was cut off (a crash of the machine): it is read again, not trusted
    size = os.path.getsize(cached[0])
    with open(cached[0], "r+b") as handle:
        handle.truncate(size // 2)
    server.faults.clear()
    start = len(server.log)
    feedback = recording_feedback()
    results, _, _ = run_algorithm("surfacemotion:itslivedownload", parameters, feedback=feedback)
    assert any("vx.npy" in text and "does not load" in text for text in feedback.infos)
    assert any("/vx/" in entry["path"] for entry in server.log[start:])
    for name in ("vx", "vy"):
        path = [p for p in results["OUTPUT_LAYERS"] if p.endswith(f"_{name}.tif")][0]
        truth = cube_truth(server, name, "2012-01-01", "2014-01-01", left, top)
        with rasterio.open(path) as ds:
            assert ds.count == 8 and ds.tags()["SM_COMPLETE"] == "1"
            np.testing.assert_array_equal(ds.read(), truth)
        # the core wrote the style sidecar with the file, its colour range fitted to the data
        from core.io.styles import fitted_style
        with open(path[:-4] + ".qml") as sidecar, rasterio.open(path) as ds:
            assert sidecar.read() == fitted_style("itslive_component", ds)
    assert not os.path.exists(folder / CACHE_DIR)


def test_a_failed_download_into_a_new_folder_leaves_no_folder(run_algorithm, clean_server, tmp_path):
    from qgis.core import QgsProcessingException

    server = clean_server
    (extent, _), urls = window_extent(server), service(server)
    folder = tmp_path / "new" / "download"
    (tmp_path / "new").mkdir()
    server.faults[f"/cubes/{CUBE_NAME}/vx/"] = "500"
    with pytest.raises(QgsProcessingException, match="server error"):
        run_algorithm("surfacemotion:itslivedownload", dict(
            {"AOI_EXTENT": extent, "START_DATE": "2012-01-01", "END_DATE": "2013-01-01", "VARIABLES": [0],
             "OUTPUT_FOLDER": str(folder)}, **urls))
    assert not folder.exists()


def test_the_mosaic_cache_drops_unreadable_parts_and_earlier_temporaries(clean_server, tmp_path):
    import datetime as dt

    import xarray as xr

    from core.itslive.cubes import NetworkError
    from core.itslive.download import DownloadRequest
    from core.itslive.mosaics import download_mosaics
    from itslive_server import build_mosaics

    server = clean_server
    build_mosaics(server.root)
    with xr.open_zarr(os.path.join(server.root, "cubes", CUBE_NAME), consolidated=True) as cube:
        lonlat = window_aoi(cube)
    template = server.url + "/mosaics/ITS_LIVE_velocity_120m_RGI{region}A_{year}_v02_{variable}.tif"
    request = DownloadRequest(lonlat, dt.datetime(2015, 1, 1), dt.datetime(2018, 1, 1), ("vx",))
    server.faults["/mosaics/ITS_LIVE_velocity_120m_RGI01A_2017_v02_vx.tif"] = "500"
    with pytest.raises(NetworkError, match="server error"):
        download_mosaics(request, "1", str(tmp_path), url_template=template)
    parts = sorted(glob.glob(str(tmp_path / CACHE_DIR / "*" / "*.npz")))
    assert [os.path.basename(p) for p in parts] == ["vx_2015.npz", "vx_2016.npz"]
    legacy = parts[0][:-len("vx_2015.npz")] + "vx_2017.npz.partial.npz"
    with open(legacy, "wb") as handle:
        handle.write(b"PK half a zip")
    with open(parts[1], "r+b") as handle:
        handle.truncate(os.path.getsize(parts[1]) // 2)
    server.faults.clear()
    messages = []
    start = len(server.log)
    result = download_mosaics(request, "1", str(tmp_path), url_template=template, messages=messages)[0]
    assert any("vx_2017.npz.partial.npz" in m and "interrupted run" in m for m in messages), messages
    assert any("vx_2016.npz" in m and "does not load" in m for m in messages), messages
    fetched = {e["path"].rsplit("_", 3)[-3] for e in server.log[start:] if e["path"].startswith("/mosaics/")}
    assert fetched == {"2016", "2017"}  # 2015 came from the cache
    with rasterio.open(VX) as ds:
        truth = ds.read([6, 7, 8])[:, ROWS, COLS]
    path = [p for p in result["geotiffs"] if p.endswith("_vx.tif")][0]
    with rasterio.open(path) as ds:
        assert list(ds.descriptions) == ["2015-01-01", "2016-01-01", "2017-01-01"]
        np.testing.assert_array_equal(ds.read(), truth)
    assert not os.path.exists(tmp_path / CACHE_DIR)

