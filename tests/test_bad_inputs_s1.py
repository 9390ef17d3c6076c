"""Bad-input table of the Sentinel-1 algorithms (issue 11, point 6): s1timeseries, s1mtspeckle, s1timescan,
s1animation, s1mosaic, s1grdtoard.

Every case fails with a clear message (the fragment) and leaves nothing in the output folder. The inputs are
small synthetic stacks written on demand (8 dates, 16 × 16 pixels, UTM 33N) and the sarsen test product of
tests/data/s1; the s1grdtoard cases are refused before sarsen starts.
"""
import datetime as dt
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from bad_inputs import Case, case_ids, check_case
from conftest import REPO

DATA = os.path.join(REPO, "tests", "data", "s1")
SAFE = os.path.join(DATA, "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
DEM = os.path.join(DATA, "Rome-30m-DEM.tif")
AOI = "12.47,12.49,41.97,41.99 [EPSG:4326]"
WHEN = [dt.datetime(2022, 1, 2, 5, 30) + dt.timedelta(days=12 * i) for i in range(8)]
SHAPE = (16, 16)
TRANSFORM = from_origin(400000, 5000000, 20, 20)


# --------------------------------------------------------------------------- inputs made on demand


def raster(path, data, crs="EPSG:32633", transform=TRANSFORM, nodata=float("nan"), dtype="float32",
           description=None, scale=None, offset=None):
    """Write one single-band GeoTIFF; returns its path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=dtype,
                   transform=transform, nodata=nodata)
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(dtype), 1)
        if description:
            ds.set_band_description(1, description)
        if scale is not None:
            ds.scales, ds.offsets = (scale,), (offset,)
    return path


def db_values(dates=len(WHEN), seed=0, level=-12.0):
    """Speckled dB backscatter (dates, rows, cols) around ``level`` dB."""
    rng = np.random.default_rng(seed)
    return (level + 10 * np.log10(rng.gamma(8, 1 / 8, (dates,) + SHAPE))).astype(np.float32)


def dates(ws, folder="stack", values=None, pol="VV", names=None, **kwargs):
    """Single-date rasters ``folder/NN.<YYYYMMDD>.<POL>.tif`` of ``values`` (default: dB backscatter)."""
    values = db_values() if values is None else values
    paths = []
    for k, image in enumerate(values):
        name = names[k] if names else f"{k + 1:02d}.{WHEN[k]:%Y%m%d}.{pol}.tif"
        paths.append(raster(os.path.join(ws.inputs, folder, name), image, **kwargs))
    return paths


def linear_dates(ws, folder="ard", values=None, pol="VV"):
    """Linear-power ARD named like S1 products (0 = nodata)."""
    values = 10 ** (db_values() / 10) if values is None else values
    return [raster(os.path.join(ws.inputs, folder, f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_gamma0_{pol}.tif"),
                   image, nodata=0.0) for when, image in zip(WHEN, values)]


def full(value, dates_count=len(WHEN)):
    return np.full((dates_count,) + SHAPE, value, np.float32)


def vrt_without_dates(ws):
    """A 3-band GeoTIFF whose bands have no date description."""
    path = os.path.join(ws.inputs, "multi.tif")
    with rasterio.open(path, "w", driver="GTiff", width=SHAPE[1], height=SHAPE[0], count=3, dtype="float32",
                       crs="EPSG:32633", transform=TRANSFORM) as ds:
        ds.write(db_values(3))
        ds.set_band_description(2, "second")
    return path


def shifted_dem(ws, east_degrees=10.0):
    """The Rome DEM moved ``east_degrees`` east: outside the product footprint."""
    with rasterio.open(DEM) as src:
        profile, data = src.profile, src.read(1)
        transform = src.transform
    profile.update(transform=transform * transform.translation(east_degrees / transform.a, 0))
    path = os.path.join(ws.inputs, "dem_elsewhere.tif")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def dem_without_crs(ws):
    with rasterio.open(DEM) as src:
        data = src.read(1)
    return raster(os.path.join(ws.inputs, "dem_nocrs.tif"), data, crs=None, nodata=None,
                  transform=from_origin(12.4, 42.05, 1 / 3600, 1 / 3600))


def fake_safe(ws, name="S1B_IW_SLC__1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"):
    """A folder with a manifest.safe but a name that is no GRD product."""
    folder = os.path.join(ws.inputs, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "manifest.safe"), "w") as handle:
        handle.write("<xfdu/>")
    return folder


def not_a_zip(ws):
    path = os.path.join(ws.inputs, "S1B_IW_GRDH_1SDV_20211223T051122.zip")
    os.makedirs(ws.inputs, exist_ok=True)
    with open(path, "w") as handle:
        handle.write("not a zip")
    return path


def timescan_vrt(ws, name="scan.tif", metrics=("avg", "count"), transform=TRANSFORM):
    """A timescan-like raster: one band per metric, band descriptions = metric names."""
    path = os.path.join(ws.inputs, name)
    with rasterio.open(path, "w", driver="GTiff", width=SHAPE[1], height=SHAPE[0], count=len(metrics),
                       dtype="float32", crs="EPSG:32633", transform=transform, nodata=float("nan")) as ds:
        for band, metric in enumerate(metrics, start=1):
            ds.write(db_values(1)[0], band)
            ds.set_band_description(band, metric)
    return path


# --------------------------------------------------------------------------- the table

TS = "s1timeseries"
SPK = "s1mtspeckle"
SCAN = "s1timescan"
ANIM = "s1animation"
MOS = "s1mosaic"
ARD = "s1grdtoard"


def ts(**extra):
    """s1timeseries parameters (linear input unit unless given) writing into ws.out/ts."""
    return lambda ws: dict({"UNIT": 1, "OUTPUT_FOLDER": ws.output("ts")}, **{
        key: (value(ws) if callable(value) else value) for key, value in extra.items()})


def stack_case(algorithm, **extra):
    """s1mtspeckle / s1timescan parameters (dB unit unless given) writing into ws.out/run."""
    base = {"UNIT": 0, "OUTPUT_FOLDER": None}
    if algorithm == SPK:
        base["WINDOW"] = 3
    if algorithm == SCAN:
        base["METRICS"] = [0, 8]  # avg, count

    def parameters(ws):
        values = dict(base, OUTPUT_FOLDER=ws.output("run"))
        values.update({key: (value(ws) if callable(value) else value) for key, value in extra.items()})
        return values
    return parameters


def anim(**extra):
    def parameters(ws):
        values = {"UNIT": 0, "MAX_SIZE": 16, "OUTPUT": ws.output("gif/anim.gif")}
        values.update({key: (value(ws) if callable(value) else value) for key, value in extra.items()})
        return values
    return parameters


def mos(**extra):
    def parameters(ws):
        values = {"UNIT": 0, "FEATHER": 3, "OUTPUT_FOLDER": ws.output("mosaic")}
        values.update({key: (value(ws) if callable(value) else value) for key, value in extra.items()})
        return values
    return parameters


def ard(**extra):
    def parameters(ws):
        values = {"SAFE_FOLDER": SAFE, "DEM": DEM, "PRODUCT_TYPE": 1, "AOI": AOI, "OUTPUT_FOLDER": ws.output("ard")}
        values.update({key: (value(ws) if callable(value) else value) for key, value in extra.items()})
        return {key: value for key, value in values.items() if value is not None}
    return parameters


def two_tracks(ws, shift=8, values=None, **kwargs):
    """Two single-date-file 'tracks' of one stack, the second ``shift`` pixels east."""
    values = db_values() if values is None else values
    a = dates(ws, "a", values, **kwargs)
    b = dates(ws, "b", values, transform=TRANSFORM * TRANSFORM.translation(shift, 0), **kwargs)
    return a + b


def disjoint_dates(ws):
    """Two dates with footprints 10 km apart."""
    first = dates(ws, "x", 10 ** (db_values(1) / 10), names=["S1A_20220102T053000_VV.tif"], nodata=0.0)
    second = dates(ws, "x", 10 ** (db_values(1) / 10), names=["S1A_20220114T053000_VV.tif"], nodata=0.0,
                   transform=from_origin(410000, 5000000, 20, 20))
    return first + second


def rotated_dates(ws):
    rotated = TRANSFORM * rasterio.Affine.rotation(10)
    return dates(ws, "rot", 10 ** (db_values(2) / 10), nodata=0.0, transform=rotated)


def shadow_everywhere(ws):
    linear_dates(ws)
    raster(os.path.join(ws.inputs, "ard", "S1A_20220102_lsmask.tif"), np.full(SHAPE, 2, np.uint8), dtype="uint8",
           nodata=None)
    return os.path.join(ws.inputs, "ard")


def mixed_crs_stack(ws):
    return dates(ws, "m", db_values(4)) + [
        raster(os.path.join(ws.inputs, "m", f"05.{WHEN[4]:%Y%m%d}.VV.tif"), db_values(1)[0], crs="EPSG:32632")]


def uint8_dn_without_scale(ws):
    """uint8 DN 1…255 written without GDAL scale/offset (DN read as dB)."""
    rng = np.random.default_rng(2)
    return dates(ws, "dn", rng.integers(100, 200, (len(WHEN),) + SHAPE), dtype="uint8", nodata=0)


CASES = [
    # ----------------------------------------------------------------- s1timeseries
    Case("ts-no-input", TS, ts(), "Give input rasters or a folder"),
    Case("ts-empty-folder", TS, ts(FOLDER=lambda ws: os.makedirs(ws.input("empty"), exist_ok=True)
                                   or ws.input("empty")), "contains no .tif, .tiff or .vrt"),
    Case("ts-no-date", TS, ts(INPUT=lambda ws: dates(ws, names=[f"scene{k}_VV.tif" for k in range(8)])),
         "No acquisition date in the file name"),
    Case("ts-no-polarisation", TS, ts(INPUT=lambda ws: dates(ws, names=[f"{w:%Y%m%d}.tif" for w in WHEN])),
         r"No polarisation \(VV, VH, HH or HV\)"),
    Case("ts-one-date", TS, ts(INPUT=lambda ws: linear_dates(ws)[:1]), "at least 2 dates are needed"),
    Case("ts-same-time", TS, ts(INPUT=lambda ws: dates(ws, "s", 10 ** (db_values(2) / 10), nodata=0.0, names=[
        "S1A_20220102T053000_VV.tif", "S1B_20220102T053000_x_VV.tif"])), "same acquisition time"),
    Case("ts-mixed-crs", TS, ts(INPUT=mixed_crs_stack, UNIT=0), "Mixed coordinate reference systems"),
    Case("ts-no-crs", TS, ts(INPUT=lambda ws: dates(ws, crs=None), UNIT=0), "has no coordinate reference system"),
    Case("ts-rotated", TS, ts(INPUT=rotated_dates), "is rotated; warp it to a north-up grid"),
    Case("ts-disjoint-footprints", TS, ts(INPUT=disjoint_dates), "do not overlap|no common area|intersection"),
    Case("ts-only-ls-masks", TS, ts(INPUT=lambda ws: [raster(ws.input(f"S1A_{w:%Y%m%d}_lsmask.tif"),
                                                             np.zeros(SHAPE, np.uint8), dtype="uint8", nodata=None)
                                                      for w in WHEN[:2]]),
         "No backscatter raster among the inputs"),
    Case("ts-shadow-everywhere", TS, ts(FOLDER=shadow_everywhere), "common valid extent is empty"),
    Case("ts-integer-linear-output", TS, ts(INPUT=lambda ws: linear_dates(ws), OUTPUT_TYPE=1, TO_DB=False),
         "Integer output is scaled from −30…5 dB: it needs dB output"),
    Case("ts-all-nan", TS, ts(INPUT=lambda ws: dates(ws, values=full(np.nan)), UNIT=0),
         r"8 of the 8 inputs have no valid pixel on the common grid \(every value is NaN, nodata\)"),
    Case("ts-all-nodata-zero", TS, ts(INPUT=lambda ws: linear_dates(ws, values=full(0.0))),
         r"no valid pixel.*or 0 \(= nodata in linear power\)"),
    Case("ts-one-empty-date", TS, ts(INPUT=lambda ws: linear_dates(ws, values=np.where(
        np.arange(8)[:, None, None] == 3, 0.0, 10 ** (db_values() / 10))), APPLY_LS_MASK=False),
         r"1 of the 8 inputs have no valid pixel.*20220207T053000"),
    Case("ts-db-declared-linear", TS, ts(INPUT=lambda ws: dates(ws)),
         r"negative.*look like dB.*set the unit to dB"),
    Case("ts-dn-declared-db", TS, ts(INPUT=uint8_dn_without_scale, UNIT=0), r"above 10.*not dB"),
    Case("ts-one-date-per-polarisation", TS, ts(INPUT=lambda ws: linear_dates(ws, "a")[:1]
                                                + linear_dates(ws, "b", pol="VH")[:1]),
         "at least 2 dates are needed"),
    Case("ts-missing-file", TS, ts(INPUT=lambda ws: [ws.input("nowhere_20220102_VV.tif")]),
         "does not exist|nowhere_20220102_VV"),
    Case("ts-multiband-without-dates", TS, ts(INPUT=lambda ws: [vrt_without_dates(ws)]),
         "has no date in its description"),
    # ----------------------------------------------------------------- s1mtspeckle
    Case("spk-no-input", SPK, stack_case(SPK), "Give input rasters or a folder"),
    Case("spk-even-window", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws), WINDOW=4), "window size must be odd"),
    Case("spk-window-zero", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws), WINDOW=0),
         r"Window size.*between 1 and 51 \(got 0\)"),
    Case("spk-window-too-large", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws), WINDOW=53),
         r"Window size.*between 1 and 51 \(got 53\)"),
    Case("spk-one-date", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws)[:1]), "at least 2 dates"),
    Case("spk-mixed-polarisations", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws, "a")[:3]
                                                    + dates(ws, "b", pol="VH")[3:6]), "mixes polarisations"),
    Case("spk-off-grid", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws, "a")[:3] + dates(
        ws, "b", transform=TRANSFORM * TRANSFORM.translation(3, 0))[3:6]), "is not on the grid of"),
    Case("spk-all-nan", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws, values=full(np.nan))),
         "no valid (pixel|value)"),
    Case("spk-all-zero-linear", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws, values=full(0.0), nodata=None),
                                                UNIT=1), "no valid (pixel|value)"),
    Case("spk-db-declared-linear", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws), UNIT=1),
         r"negative.*look like dB.*set the unit to dB"),
    Case("spk-dn-declared-db", SPK, stack_case(SPK, INPUT=uint8_dn_without_scale), r"above 10.*not dB"),
    Case("spk-no-date", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws, names=[f"img{k}_VV.tif" for k in range(8)])),
         "No acquisition date"),
    Case("spk-no-crs", SPK, stack_case(SPK, INPUT=lambda ws: dates(ws, crs=None)),
         "has no coordinate reference system"),
    # ----------------------------------------------------------------- s1timescan
    Case("scan-no-input", SCAN, stack_case(SCAN), "Give input rasters or a folder"),
    Case("scan-percentile-negative", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws), METRICS=[9],
                                                      PERCENTILES="-5, 95"), r"Percentile -5.* outside 0\.\.100"),
    Case("scan-percentile-text", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws), METRICS=[9],
                                                  PERCENTILES="5, ninety"), "Percentiles must be numbers"),
    Case("scan-percentile-range", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws), METRICS=[9],
                                                   PERCENTILES="5, 120"), r"Percentile 120.* outside 0\.\.100"),
    Case("scan-pdiff-one-percentile", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws), METRICS=[7],
                                                       PERCENTILES="50"), "pdiff needs two percentiles"),
    Case("scan-harmonics-few-dates", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws)[:5], METRICS=[10]),
         "Harmonics need at least 6 dates"),
    Case("scan-outlier-k-low", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws), OUTLIER_K=0.2),
         r"Outlier threshold k.*between 1 and 20 \(got 0\.2\)"),
    Case("scan-harmonics-too-few-valid-dates", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws, values=np.where(
        np.arange(8)[:, None, None] < 5, db_values(), np.nan)), METRICS=[10]), "No pixel keeps the 6 dates"),
    Case("scan-one-date", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws)[:1]), "at least 2 dates"),
    Case("scan-mixed-crs", SCAN, stack_case(SCAN, INPUT=mixed_crs_stack), "Mixed coordinate reference systems"),
    Case("scan-all-nan", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws, values=full(np.nan))),
         "No pixel of the stack has a valid date"),
    Case("scan-all-nodata-value", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws, values=full(-9999.0),
                                                                               nodata=-9999.0)),
         "No pixel of the stack has a valid date"),
    Case("scan-constant-zero-linear", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws, values=full(0.0),
                                                                                   nodata=None), UNIT=1),
         "No pixel of the stack has a valid date"),
    Case("scan-db-declared-linear", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws), UNIT=1),
         r"negative.*look like dB.*set the unit to dB"),
    Case("scan-dn-declared-db", SCAN, stack_case(SCAN, INPUT=uint8_dn_without_scale), r"above 10.*not dB"),
    Case("scan-multiband-without-dates", SCAN, stack_case(SCAN, INPUT=lambda ws: [vrt_without_dates(ws)]),
         "has no date in its description"),
    Case("scan-same-time", SCAN, stack_case(SCAN, INPUT=lambda ws: dates(ws, "s", db_values(2), names=[
        "S1A_20220102T053000_VV.tif", "S1B_20220102T053000_x_VV.tif"])), "same acquisition time"),
    # ----------------------------------------------------------------- s1animation
    Case("anim-not-gif", ANIM, anim(INPUT=lambda ws: dates(ws), OUTPUT=lambda ws: ws.output("gif/anim.png")),
         "must end with .gif"),
    Case("anim-one-date", ANIM, anim(INPUT=lambda ws: dates(ws)[:1]), "at least 2 dates"),
    Case("anim-no-common-day", ANIM, anim(INPUT=lambda ws: dates(ws)[:4],
                                          CROSS=lambda ws: dates(ws, "vh", pol="VH")[4:]),
         "no acquisition day in common"),
    Case("anim-cross-off-grid", ANIM, anim(INPUT=lambda ws: dates(ws), CROSS=lambda ws: dates(
        ws, "vh", pol="VH", transform=TRANSFORM * TRANSFORM.translation(2, 0))), "not on the same grid"),
    Case("anim-all-nan", ANIM, anim(INPUT=lambda ws: dates(ws, values=full(np.nan))),
         "no valid pixel at any date"),
    Case("anim-db-declared-linear", ANIM, anim(INPUT=lambda ws: dates(ws), UNIT=1),
         r"negative.*look like dB.*set the unit to dB"),
    Case("anim-dn-declared-db", ANIM, anim(INPUT=uint8_dn_without_scale), r"above 10.*not dB"),
    Case("anim-max-size-small", ANIM, anim(INPUT=lambda ws: dates(ws), MAX_SIZE=4),
         r"Maximum frame size.*between 16 and 8000 \(got 4\)"),
    Case("anim-frame-ms-zero", ANIM, anim(INPUT=lambda ws: dates(ws), FRAME_MS=0),
         r"Frame duration.*between 20 and 60000 \(got 0\)"),
    Case("anim-mixed-polarisations", ANIM, anim(INPUT=lambda ws: dates(ws, "a")[:3] + dates(ws, "b", pol="VH")[3:]),
         "mixes polarisations"),
    # ----------------------------------------------------------------- s1mosaic
    Case("mos-one-input", MOS, mos(INPUT=lambda ws: [timescan_vrt(ws)]), "at least two inputs"),
    Case("mos-no-common-band", MOS, mos(INPUT=lambda ws: [timescan_vrt(ws, "a.tif", ("avg",)),
                                                          timescan_vrt(ws, "b.tif", ("max",))]),
         "share no band description"),
    Case("mos-mixed-polarisations", MOS, mos(INPUT=lambda ws: dates(ws, "a")[:2] + dates(ws, "b", pol="VH")[:2]),
         "mix polarisations"),
    Case("mos-no-crs", MOS, mos(INPUT=lambda ws: two_tracks(ws, crs=None)), "has no coordinate reference system"),
    Case("mos-geographic-crs-without-resolution", MOS, mos(INPUT=lambda ws: two_tracks(ws), CRS="EPSG:4326"),
         "other units than the first input; give the resolution"),
    Case("mos-tiny-resolution", MOS, mos(INPUT=lambda ws: two_tracks(ws), RESOLUTION=0.001),
         r"mosaic grid of 480,000 × 320,000 pixels at 0\.001 CRS units \(2 tracks per band\) needs about 7,\d{3}\.\d "
         r"GiB of memory.*Give a coarser resolution: a pixel size \(RESOLUTION\) of at least"),
    Case("mos-negative-feather", MOS, mos(INPUT=lambda ws: two_tracks(ws), FEATHER=-1),
         r"Feather width.*between 0 and \d+ \(got -1\)"),
    Case("mos-negative-date-window", MOS, mos(INPUT=lambda ws: two_tracks(ws), DATE_WINDOW=-2),
         r"Date window.*between 0 and \d+ \(got -2\)"),
    Case("mos-negative-resolution", MOS, mos(INPUT=lambda ws: two_tracks(ws), RESOLUTION=-10),
         r"Pixel size.*between 0 and \d+ \(got -10\)"),
    Case("mos-all-nan", MOS, mos(INPUT=lambda ws: two_tracks(ws, values=full(np.nan))),
         "no valid (pixel|value)|No input has a valid pixel"),
    Case("mos-db-declared-linear", MOS, mos(INPUT=lambda ws: two_tracks(ws), UNIT=1),
         r"negative.*look like dB.*set the unit to dB"),
    Case("mos-dn-declared-db", MOS, mos(INPUT=lambda ws: two_tracks(ws, values=np.random.default_rng(1).integers(
        100, 200, (len(WHEN),) + SHAPE), dtype="uint8", nodata=0)), r"above 10.*not dB"),
    # ----------------------------------------------------------------- s1grdtoard (refused before sarsen runs)
    Case("ard-no-product", ARD, ard(SAFE_FOLDER=None), "Give the GRD product"),
    Case("ard-not-a-zip", ARD, ard(SAFE_FOLDER=None, INPUT=not_a_zip), "is not a readable zip file"),
    Case("ard-not-safe", ARD, ard(SAFE_FOLDER=lambda ws: os.makedirs(ws.input("plain"), exist_ok=True)
                                  or ws.input("plain")), "is not a Sentinel-1 .SAFE folder"),
    Case("ard-slc-product", ARD, ard(SAFE_FOLDER=fake_safe), "is not a Sentinel-1 GRD product name"),
    Case("ard-missing-polarisation", ARD, ard(POLARISATIONS=[2]), "The product has no HH image"),
    Case("ard-dem-outside-scene", ARD, ard(DEM=shifted_dem, AOI=None),
         r"DEM.*does not (cover|overlap) the (product|scene) footprint"),
    Case("ard-aoi-outside-dem", ARD, ard(AOI="13.5,13.6,41.0,41.1 [EPSG:4326]"),
         "area of interest does not overlap the DEM"),
    Case("ard-dem-without-crs", ARD, ard(DEM=dem_without_crs, AOI=None), "has no coordinate reference system"),
    Case("ard-resolution-unsuited", ARD, ard(RESOLUTION=30.0, AOI=None), "does not suit the CRS units"),
    Case("ard-tiny-resolution", ARD, ard(RESOLUTION=1e-7, AOI=None),
         r"output grid of 1,000,000 × 1,000,000 pixels.*GiB of memory.*coarser resolution \(RESOLUTION ≥"),
    Case("ard-negative-resolution", ARD, ard(RESOLUTION=-1.0), r"Pixel size.*between 0 and \d+ \(got -1\)"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_bad_input(case, run_algorithm, tmp_path):
    check_case(case, run_algorithm, tmp_path)
