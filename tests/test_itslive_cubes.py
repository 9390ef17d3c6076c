"""Finding, downloading and point series of ITS_LIVE cubes against the local loopback server
(tests/itslive_server.py), which serves a Zarr cube built from the real Alaska mosaics."""
import datetime as dt
import glob
import os
import time

import numpy as np
import pytest
import rasterio

from core.errors import Cancelled
from core.itslive import aggregate as agg
from core.itslive.cubes import NetworkError, find_cubes, transformer
from core.itslive.cache import CACHE_DIR
from core.itslive.download import DownloadRequest, download_cubes
from core.itslive.pointseries import COLUMNS, point_series, running_mean, write_csv, write_plot
from core.itslive.mosaics import download_mosaics, mosaic_years
from itslive_server import CHUNK_XY, CUBE_NAME, DATA, ITSLiveServer, build_cube, build_mosaics

COLS = slice(10, 58)   # the requested window, in cube cells (x ascending)
ROWS = slice(100, 140)  # y descending


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("itslive_root"))
    build_cube(root)
    build_mosaics(root)
    instance = ITSLiveServer(root).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def local_cube(server):
    import xarray as xr

    return xr.open_zarr(os.path.join(server.root, "cubes", CUBE_NAME), consolidated=True)


@pytest.fixture(autouse=True)
def no_faults(server):
    server.faults.clear()
    yield
    server.faults.clear()


def window_aoi(local_cube):
    """Lon/lat polygon whose EPSG:3413 bounds fall half-way between cell centres around COLS × ROWS."""
    x, y = local_cube["x"].values, local_cube["y"].values
    left, right = x[COLS][0] - 60.0, x[COLS][-1] + 60.0
    top, bottom = y[ROWS][0] + 60.0, y[ROWS][-1] - 60.0
    t = np.linspace(0, 1, 30)
    xs = np.concatenate([left + (right - left) * t, np.full(30, right), right - (right - left) * t, np.full(30, left)])
    ys = np.concatenate([np.full(30, bottom), bottom + (top - bottom) * t, np.full(30, top), top - (top - bottom) * t])
    lon, lat = transformer(3413, 4326).transform(xs, ys)
    ring = [[float(a), float(b)] for a, b in zip(lon, lat)]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def urls(server):
    return server.url + "/stac", server.url + "/catalog_v02.json"


def test_find_cubes_through_stac_and_the_catalogue_fallback(server, local_cube):
    aoi = window_aoi(local_cube)
    stac, catalog = urls(server)
    start = len(server.log)
    cubes = find_cubes(aoi, stac, catalog)
    assert [c.name for c in cubes] == [CUBE_NAME[:-5]] and cubes[0].epsg == 3413
    assert cubes[0].zarr_url == f"{server.url}/cubes/{CUBE_NAME}"
    assert any(e["path"] == "/stac/search" and e["method"] == "POST" for e in server.log[start:])
    karakoram = {"type": "Polygon", "coordinates": [[[74.9, 36.3], [75.1, 36.3], [75.1, 36.5], [74.9, 36.5], [74.9, 36.3]]]}
    assert [c.epsg for c in find_cubes(karakoram, stac, catalog)] == [32643]
    # STAC down: the legacy catalogue answers, and the user is told
    server.faults["/stac"] = "500"
    messages = []
    fallback = find_cubes(aoi, stac, catalog, messages=messages)
    assert [c.zarr_url for c in fallback] == [c.zarr_url for c in cubes]
    assert "legacy catalogue" in messages[0]
    server.faults["/catalog_v02.json"] = "404"
    with pytest.raises(NetworkError, match="No ITS_LIVE cube service answered.*HTTP 404"):
        find_cubes(aoi, stac, catalog)
    # a STAC service that hangs is abandoned after the timeout, then the catalogue answers
    server.faults.clear()
    server.faults["/stac"] = "slow"
    messages = []
    assert len(find_cubes(aoi, stac, catalog, timeout=1.0, messages=messages)) == 1
    assert "STAC search" in messages[0]
    time.sleep(server.slow_seconds)


def expected_layers(local_cube, start, end, min_roi=0.0, dt_max=None, satellites=None):
    mid = local_cube["mid_date"].values
    keep = (mid >= np.datetime64(start)) & (mid < np.datetime64(end))
    keep &= local_cube["roi_valid_percentage"].values >= min_roi
    if dt_max is not None:
        keep &= local_cube["date_dt"].values / np.timedelta64(1, "D") <= dt_max
    if satellites:
        keep &= np.isin(local_cube["satellite_img1"].values.astype(str), satellites)
    layers = np.flatnonzero(keep)
    return layers[np.argsort(mid[layers])]


def minimal_chunk_bytes(root, variables, one_d):
    store = os.path.join(root, "cubes", CUBE_NAME)
    total = 0
    for name in variables:
        for iy in range(ROWS.start // CHUNK_XY, (ROWS.stop - 1) // CHUNK_XY + 1):
            for ix in range(COLS.start // CHUNK_XY, (COLS.stop - 1) // CHUNK_XY + 1):
                total += os.path.getsize(os.path.join(store, name, f"0.{iy}.{ix}"))
    return total + sum(os.path.getsize(os.path.join(store, name, "0")) for name in one_d)


def test_download_returns_exactly_the_window_dates_and_variables(server, local_cube, tmp_path):
    cubes = find_cubes(window_aoi(local_cube), *urls(server))
    request = DownloadRequest(window_aoi(local_cube), dt.datetime(2012, 1, 1), dt.datetime(2014, 1, 1),
                              ("vx", "v_error"), min_roi_valid=40.0)
    start = len(server.log)
    results = download_cubes(cubes, request, str(tmp_path))
    assert len(results) == 1
    result = results[0]
    layers = expected_layers(local_cube, "2012-01-01", "2014-01-01", min_roi=40.0)
    assert result["n_layers"] == len(layers) == 6  # 2 years x 3 pairs with roi >= 40 %
    expected_dates = [str(d)[:19] for d in local_cube["mid_date"].values[layers].astype("datetime64[s]")]
    assert result["dates"] == expected_dates
    assert sorted(os.path.basename(p) for p in result["geotiffs"]) == [
        f"{CUBE_NAME[:-5]}_v_error.tif", f"{CUBE_NAME[:-5]}_vx.tif"]
    x, y = local_cube["x"].values, local_cube["y"].values
    for name in ("vx", "v_error"):
        truth = local_cube[name].isel(mid_date=layers, y=ROWS, x=COLS).values
        with rasterio.open(os.path.join(str(tmp_path), f"{CUBE_NAME[:-5]}_{name}.tif")) as ds:
            assert ds.crs.to_epsg() == 3413 and ds.count == 6
            assert (ds.height, ds.width) == truth.shape[1:]
            assert ds.transform.c == pytest.approx(x[COLS][0] - 60.0) and ds.transform.f == pytest.approx(y[ROWS][0] + 60.0)
            assert list(ds.descriptions) == [d[:10] for d in expected_dates]
            assert ds.tags(1)["SM_MID_DATE"] == expected_dates[0]
            np.testing.assert_array_equal(ds.read(), truth.astype(np.float32))
    import xarray as xr

    with xr.open_dataset(result["netcdf"]) as nc:
        assert set(nc.data_vars) == {"vx", "v_error", "date_dt", "satellite_img1", "mission_img1", "mapping"}
        assert int(nc["mapping"].attrs["spatial_epsg"]) == 3413 and "crs_wkt" in nc["mapping"].attrs
        np.testing.assert_array_equal(nc["x"].values, x[COLS])
        np.testing.assert_array_equal(nc["vx"].values, local_cube["vx"].isel(mid_date=layers, y=ROWS, x=COLS).values)
        assert set(nc["date_dt"].values / np.timedelta64(1, "D")) == {16.0, 96.0, 365.0}  # CF "days"
    # only the chunks of the window were read
    read = server.chunk_bytes(start)
    minimal = minimal_chunk_bytes(server.root, ("vx", "v_error"), (
        "mid_date", "x", "y", "date_dt", "roi_valid_percentage", "satellite_img1", "mission_img1"))
    assert read <= 1.5 * minimal, (read, minimal)
    assert read >= minimal
    assert not os.path.exists(os.path.join(str(tmp_path), CACHE_DIR))


def test_filters_missions_date_dt_and_aggregation(server, local_cube, tmp_path):
    aoi = window_aoi(local_cube)
    cubes = find_cubes(aoi, *urls(server))
    request = DownloadRequest(aoi, dt.datetime(2010, 1, 1), dt.datetime(2019, 1, 1), ("vx",),
                              dt_max_days=100.0, missions=("landsat",))
    result = download_cubes(cubes, request, str(tmp_path / "filtered"))[0]
    layers = expected_layers(local_cube, "2010-01-01", "2019-01-01", dt_max=100.0, satellites=["8", "9"])
    assert result["n_layers"] == len(layers) == 9  # Landsat 8, 16-day pairs only
    # error-weighted annual means over every pair
    request = DownloadRequest(aoi, dt.datetime(2010, 1, 1), dt.datetime(2013, 1, 1), ("vx",),
                              aggregate_amount=1, aggregate_unit="Y", aggregate_method="weighted")
    result = download_cubes(cubes, request, str(tmp_path / "weighted"))[0]
    assert result["dates"] == ["2010-01-01T00:00:00", "2011-01-01T00:00:00", "2012-01-01T00:00:00"]
    layers = expected_layers(local_cube, "2011-01-01", "2012-01-01")
    values = local_cube["vx"].isel(mid_date=layers, y=ROWS, x=COLS).values
    sigma = local_cube["vx_error"].isel(mid_date=layers, y=ROWS, x=COLS).values
    weights = np.where(np.isfinite(values), 1 / sigma ** 2, 0)
    expected = np.nansum(np.nan_to_num(values) * weights, axis=0) / weights.sum(axis=0)
    with rasterio.open(os.path.join(str(tmp_path / "weighted"), f"{CUBE_NAME[:-5]}_vx.tif")) as ds:
        assert ds.descriptions[1] == "2011-01-01"
        np.testing.assert_allclose(ds.read(2), expected.astype(np.float32), rtol=1e-6, equal_nan=True)
    with rasterio.open(os.path.join(str(tmp_path / "weighted"), f"{CUBE_NAME[:-5]}_count_vx.tif")) as ds:
        assert np.nanmax(ds.read(2)) == 4


def test_aggregation_bins_and_medians():
    anchor = dt.datetime(2015, 3, 10)
    dates = np.array(["2015-03-10", "2015-04-09", "2015-05-20", "2016-01-01"], dtype="datetime64[ns]")
    assert list(agg.bin_index(dates, 2, "M", anchor)) == [0, 0, 1, 5]
    assert agg.bin_label(1, 2, "M", anchor) == dt.datetime(2015, 5, 1)
    assert list(agg.bin_index(dates, 30, "D", anchor)) == [0, 1, 2, 9]
    assert agg.bin_label(2, 30, "D", anchor) == dt.datetime(2015, 5, 9)
    stack = np.array([1.0, 5.0, 2.0, np.nan])[:, None, None] * np.ones((4, 1, 2))
    labels, values, counts = agg.aggregate(stack, dates, 1, "Y", "median", anchor)
    assert labels == [dt.datetime(2015, 1, 1), dt.datetime(2016, 1, 1)]
    np.testing.assert_array_equal(values[:, 0, 0], [2.0, np.nan])
    np.testing.assert_array_equal(counts[:, 0, 0], [3, 0])


def test_network_faults_give_clear_errors_and_no_partial_output(server, local_cube, tmp_path):
    aoi = window_aoi(local_cube)
    cubes = find_cubes(aoi, *urls(server))
    chunk = f"/cubes/{CUBE_NAME}/vx/0.{ROWS.start // CHUNK_XY}.{COLS.start // CHUNK_XY}"
    cases = [
        ({chunk: "404"}, "not found", 30.0),
        ({f"/cubes/{CUBE_NAME}/.zmetadata": "500"}, "server error", 30.0),
        ({chunk: "slow"}, "timed out", 1.0),
        ({chunk: "truncate"}, "incomplete \\(truncated\\)", 30.0),
    ]
    for index, (faults, message, timeout) in enumerate(cases):
        server.faults.clear()
        server.faults.update(faults)
        folder = tmp_path / f"case{index}"
        request = DownloadRequest(aoi, dt.datetime(2012, 1, 1), dt.datetime(2013, 1, 1), ("vx",), timeout=timeout)
        with pytest.raises(NetworkError, match=message):
            download_cubes(cubes, request, str(folder))
        outputs = [p for p in glob.glob(str(folder / "*")) if not os.path.basename(p).startswith(".")]
        assert outputs == [], (faults, outputs)
        assert not glob.glob(str(folder / "*.partial*"))
    time.sleep(server.slow_seconds)  # let the abandoned slow response finish before other tests count bytes


def test_resume_rereads_nothing_that_was_complete(server, local_cube, tmp_path):
    aoi = window_aoi(local_cube)
    cubes = find_cubes(aoi, *urls(server))
    request = DownloadRequest(aoi, dt.datetime(2012, 1, 1), dt.datetime(2014, 1, 1), ("vx", "vy"))
    server.faults[f"/cubes/{CUBE_NAME}/vy/"] = "500"
    with pytest.raises(NetworkError, match="server error"):
        download_cubes(cubes, request, str(tmp_path))
    cached = glob.glob(str(tmp_path / CACHE_DIR / "*" / "*.npy"))
    assert [os.path.basename(p) for p in cached] == ["vx.npy"]
    assert not glob.glob(str(tmp_path / "*.tif")) and not glob.glob(str(tmp_path / "*.nc"))
    server.faults.clear()
    start = len(server.log)
    result = download_cubes(cubes, request, str(tmp_path))[0]
    resumed_paths = [e["path"] for e in server.log[start:]]
    assert not any("/vx/" in p for p in resumed_paths)
    assert any("/vy/" in p for p in resumed_paths)
    layers = expected_layers(local_cube, "2012-01-01", "2014-01-01")
    with rasterio.open(os.path.join(str(tmp_path), f"{CUBE_NAME[:-5]}_vx.tif")) as ds:
        np.testing.assert_array_equal(ds.read(), local_cube["vx"].isel(mid_date=layers, y=ROWS, x=COLS).values.astype(np.float32))
    assert result["n_layers"] == len(layers)
    # cancelling keeps what is complete as well (the callback is polled while requests run, so the
    # cancel comes from the state of the cache, not from a count of calls)
    def cancel_after_first_variable():
        return bool(glob.glob(str(tmp_path / "cancelled" / CACHE_DIR / "*" / "vx.npy")))

    with pytest.raises(Cancelled):
        download_cubes(cubes, request, str(tmp_path / "cancelled"), is_canceled=cancel_after_first_variable)
    assert [os.path.basename(p) for p in glob.glob(str(tmp_path / "cancelled" / CACHE_DIR / "*" / "*.npy"))] == ["vx.npy"]


def test_point_series_nearest_cell_values_and_outputs(server, local_cube, tmp_path):
    x, y = local_cube["x"].values, local_cube["y"].values
    row, col = 120, 30
    lon, lat = transformer(3413, 4326).transform(x[col] + 20.0, y[row] - 35.0)  # inside that cell
    aoi = {"type": "Polygon", "coordinates": [[[lon - 0.01, lat - 0.01], [lon + 0.01, lat - 0.01],
                                               [lon + 0.01, lat + 0.01], [lon - 0.01, lat + 0.01], [lon - 0.01, lat - 0.01]]]}
    cubes = find_cubes(aoi, *urls(server))
    request = DownloadRequest(aoi, dt.datetime(2010, 1, 1), dt.datetime(2019, 1, 1), ("v", "vx", "vy"), dt_max_days=100.0)
    start = len(server.log)
    rows = point_series([(lon, lat)], cubes, request)
    layers = expected_layers(local_cube, "2010-01-01", "2019-01-01", dt_max=100.0)
    assert len(rows) == len(layers) == 27
    assert [r["mid_date"] for r in rows] == sorted(r["mid_date"] for r in rows)
    assert rows[0]["x"] == x[col] and rows[0]["y"] == y[row] and rows[0]["epsg"] == 3413
    for name in ("v", "vx", "vy", "v_error"):
        truth = local_cube[name].isel(mid_date=layers, y=row, x=col).values
        np.testing.assert_array_equal([r[name] for r in rows], truth)
    assert {r["satellite"] for r in rows} == {"8", "2A", "1A"} and {r["date_dt"] for r in rows} == {16.0, 48.0, 96.0}
    # one chunk per variable
    chunk_paths = [e["path"] for e in server.log[start:] if "/v/" in e["path"] or "/vx/" in e["path"]]
    assert sorted(set(chunk_paths)) == sorted(chunk_paths) and len(chunk_paths) == 2
    csv_path = write_csv(rows, str(tmp_path / "series.csv"))
    assert open(csv_path).readline().strip().split(",") == list(COLUMNS)
    png = write_plot(rows, str(tmp_path / "series.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_running_mean_windows():
    base = dt.datetime(2020, 1, 1)
    dates = [base + dt.timedelta(days=d) for d in range(0, 100, 5)]  # every 5 days, values = day number
    values = [float(d) for d in range(0, 100, 5)]
    centres, means = running_mean(dates, values)
    # first window [-15, 45) holds days 0..40 → mean 20, labelled at day 15
    assert centres[0] == base + dt.timedelta(days=15) and means[0] == pytest.approx(20.0)
    assert means[1] == pytest.approx(np.mean([d for d in range(0, 100, 5) if 15 <= d < 75]))
    sparse_centres, _ = running_mean(dates[:4], values[:4])
    assert sparse_centres == []  # fewer than 5 values in every window


def test_annual_mosaics_window_through_vsicurl(server, local_cube, tmp_path):
    assert mosaic_years(dt.datetime(2014, 1, 1), dt.datetime(2016, 1, 1)) == [2014, 2015]
    template = server.url + "/mosaics/ITS_LIVE_velocity_120m_RGI{region}A_{year}_v02_{variable}.tif"
    request = DownloadRequest(window_aoi(local_cube), dt.datetime(2014, 1, 1), dt.datetime(2016, 1, 1), ("vx", "v"))
    start = len(server.log)
    result = download_mosaics(request, "1", str(tmp_path), url_template=template)[0]
    assert result["dates"] == ["2014-01-01T00:00:00", "2015-01-01T00:00:00"]
    with rasterio.open(os.path.join(DATA, "alaska_vx_2010_2018.tif")) as ds:
        truth = ds.read([5, 6])[:, ROWS, COLS]
    vx_path = [p for p in result["geotiffs"] if p.endswith("_vx.tif")][0]
    with rasterio.open(vx_path) as ds:
        assert list(ds.descriptions) == ["2014-01-01", "2015-01-01"] and ds.crs.to_epsg() == 3413
        np.testing.assert_array_equal(ds.read(), truth)
    # range requests: far less than the whole files was transferred
    sent = sum(e["bytes"] for e in server.log[start:] if e["path"].startswith("/mosaics/"))
    whole = sum(os.path.getsize(os.path.join(server.root, "mosaics", f"ITS_LIVE_velocity_120m_RGI01A_{y}_v02_{v}.tif"))
                for y in (2014, 2015) for v in ("vx", "v"))
    assert sent < 0.6 * whole, (sent, whole)
    server.faults["/mosaics/ITS_LIVE_velocity_120m_RGI01A_2015_v02_v.tif"] = "404"
    with pytest.raises(NetworkError, match="not found"):
        download_mosaics(request, "1", str(tmp_path / "failed"), url_template=template)
    assert not glob.glob(str(tmp_path / "failed" / "*.tif"))


def test_http_status_is_read_from_the_error_not_from_the_port_in_the_url():
    from core.itslive.cubes import describe_failure, http_status

    server_error = RuntimeError("500, message='Internal Server Error', url=URL('http://127.0.0.1:40447/c/.zmetadata')")
    wrapped = KeyError("c/.zmetadata")
    wrapped.__cause__ = server_error
    assert http_status(wrapped) == 500
    assert "server error (HTTP 5xx)" in describe_failure("http://127.0.0.1:40447/c", wrapped)
    missing = RuntimeError("404, message='Not Found', url=URL('http://127.0.0.1:50500/c/vx/0.0.0')")
    assert http_status(missing) == 404
    assert "not found (HTTP 404)" in describe_failure("http://127.0.0.1:50500/c", missing)
    assert http_status(RuntimeError("connection reset by http://127.0.0.1:40404/")) is None
