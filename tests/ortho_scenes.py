"""Small raw scenes with an analytic RPC camera and DEMs with known heights, for the orthorectify tests.

The camera is affine in longitude/latitude with a linear height term (parallax):
``sample = S0 + B·(lon − LON0) + C·(h − H0)``, ``line = L0 − E·(lat − LAT0) + F·(h − H0)`` (RPC
pixel-centre numbers), exactly an RPC00B model (numerators of degree 1, denominators 1). The true
raw position of every ground point is therefore known analytically, and a scene whose pixel value is
its own column (or row) number turns the ortho into a map of the raw positions it sampled.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

LON0, LAT0, H0 = -66.0, -27.0, 1500.0
WIDTH, HEIGHT = 240, 180
S0, L0 = WIDTH / 2, HEIGHT / 2
B = 99_187.0 / 3.0      # px per degree of longitude (about 3 m pixels at 27° S)
E = 110_850.0 / 3.0     # px per degree of latitude
C, F = 0.03, 0.01       # px per metre of height (about 5° and 2° off nadir)
#: EGM96 undulation (m) at (−66, −27), from PROJ's egm96_15.gtx.
EGM96_AT_CENTRE = 35.92


def analytic_rpc(s0=S0, l0=L0, b=B, e=E, c=C, f=F, lon0=LON0, lat0=LAT0, h0=H0) -> Dict[str, str]:
    """The GDAL RPC dict of the affine camera above."""
    long_scale, lat_scale, height_scale = 0.01, 0.01, 1000.0
    samp_scale, line_scale = s0, l0
    zeros = [0.0] * 20

    def coeffs(values):
        out = list(zeros)
        for index, value in values.items():
            out[index] = value
        return " ".join(repr(float(v)) for v in out)

    return {
        "LINE_OFF": repr(float(l0)), "SAMP_OFF": repr(float(s0)), "LAT_OFF": repr(lat0), "LONG_OFF": repr(lon0),
        "HEIGHT_OFF": repr(h0), "LINE_SCALE": repr(float(line_scale)), "SAMP_SCALE": repr(float(samp_scale)),
        "LAT_SCALE": repr(lat_scale), "LONG_SCALE": repr(long_scale), "HEIGHT_SCALE": repr(height_scale),
        "SAMP_NUM_COEFF": coeffs({1: b * long_scale / samp_scale, 3: c * height_scale / samp_scale}),
        "SAMP_DEN_COEFF": coeffs({0: 1.0}),
        "LINE_NUM_COEFF": coeffs({2: -e * lat_scale / line_scale, 3: f * height_scale / line_scale}),
        "LINE_DEN_COEFF": coeffs({0: 1.0}),
    }


def true_image_position(lon, lat, h, **camera):
    """(col, row) in GDAL's pixel-corner convention of ground points, from the analytic camera."""
    b, e, c, f = (camera.get(k, v) for k, v in (("b", B), ("e", E), ("c", C), ("f", F)))
    s0, l0 = camera.get("s0", S0), camera.get("l0", L0)
    sample = s0 + b * (np.asarray(lon) - LON0) + c * (np.asarray(h) - H0)
    line = l0 - e * (np.asarray(lat) - LAT0) + f * (np.asarray(h) - H0)
    return sample + 0.5, line + 0.5


def write_scene(path: str, values: Optional[np.ndarray] = None, rpc: Optional[Dict[str, str]] = None,
                where: str = "tiff", dtype: str = "float32", nodata=None, description: str = "green",
                width: int = WIDTH, height: int = HEIGHT) -> str:
    """A raw scene without geotransform; its RPCs in the TIFF (``where='tiff'``), in an
    ``<stem>_RPC.TXT`` sidecar (``'txt'``), in an ``<stem>_metadata.xml`` (``'xml'``) or nowhere (``None``).
    Default values: the pixel's column number."""
    from osgeo import gdal

    if values is None:
        values = np.tile(np.arange(width, dtype=np.float64), (height, 1))
    rpc = analytic_rpc() if rpc is None else rpc
    driver = gdal.GetDriverByName("GTiff")
    kinds = {"float32": gdal.GDT_Float32, "uint16": gdal.GDT_UInt16}
    ds = driver.Create(path, values.shape[1], values.shape[0], 1, kinds[dtype], ["TILED=YES", "BLOCKXSIZE=64",
                                                                               "BLOCKYSIZE=64"])
    band = ds.GetRasterBand(1)
    band.WriteArray(values.astype(dtype))
    if description:
        band.SetDescription(description)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    if where == "tiff":
        ds.SetMetadata(rpc, "RPC")
    ds = None
    stem = os.path.splitext(path)[0]
    if where == "txt":
        with open(stem + "_RPC.TXT", "w", encoding="utf-8") as handle:
            handle.write(rpc_text(rpc))
    elif where == "xml":
        with open(stem + "_metadata.xml", "w", encoding="utf-8") as handle:
            handle.write(rpc_xml(rpc))
    for sidecar in (path + ".aux.xml",):
        if os.path.exists(sidecar):
            os.remove(sidecar)
    return path


def rpc_text(rpc: Dict[str, str]) -> str:
    """An ``_RPC.TXT`` in the DigitalGlobe/Planet layout (``KEY: value`` lines, one coefficient a line)."""
    lines = []
    for key in ("LINE_OFF", "SAMP_OFF", "LAT_OFF", "LONG_OFF", "HEIGHT_OFF", "LINE_SCALE", "SAMP_SCALE",
                "LAT_SCALE", "LONG_SCALE", "HEIGHT_SCALE"):
        lines.append(f"{key}: {float(rpc[key]):+.12E}")
    for key in ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF"):
        for index, value in enumerate(rpc[key].split(), start=1):
            lines.append(f"{key}_{index}: {float(value):+.12E}")
    return "\n".join(lines) + "\n"


def rpc_xml(rpc: Dict[str, str]) -> str:
    """An XML metadata file carrying the RPCs as elements named after the keys (namespaced, nested)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<ps:EarthObservation xmlns:ps="http://schemas.planet.com/ps/v1/planet_product_metadata_geocorrected_level">',
             "  <ps:RationalFunctionModel>"]
    for key, value in rpc.items():
        if " " in value:
            for index, number in enumerate(value.split(), start=1):
                parts.append(f"    <ps:{key}_{index}>{number}</ps:{key}_{index}>")
        else:
            parts.append(f"    <ps:{key}>{value}</ps:{key}>")
    parts += ["  </ps:RationalFunctionModel>", "</ps:EarthObservation>"]
    return "\n".join(parts) + "\n"


#: Plane DEM: h = DEM_BASE + DEM_DX·(lon − LON0) + DEM_DY·(lat − LAT0) (ellipsoidal metres); bilinear is exact.
DEM_BASE, DEM_DX, DEM_DY = 1500.0, 40_000.0, -25_000.0


def plane_height(lon, lat):
    return DEM_BASE + DEM_DX * (np.asarray(lon) - LON0) + DEM_DY * (np.asarray(lat) - LAT0)


def write_dem(path: str, heights=plane_height, crs: str = "EPSG:4326", west=LON0 - 0.02, north=LAT0 + 0.02,
              size=(160, 160), step=0.00025, shift=None, nodata=-9999.0, hole=None) -> str:
    """A geographic DEM (pixel centres at west + (i + 0.5)·step ...) of ``heights(lon, lat)`` minus
    ``shift(lon, lat)`` (e.g. a geoid undulation, so the file holds geoid heights); ``crs`` may be compound
    (e.g. EPSG:4326+5773). ``hole``: (row slice, col slice) set to nodata."""
    from osgeo import gdal, osr

    rows, cols = size
    lon = west + (np.arange(cols) + 0.5) * step
    lat = north - (np.arange(rows) + 0.5) * step
    lon2, lat2 = np.meshgrid(lon, lat)
    values = heights(lon2, lat2).astype(np.float64)
    if shift is not None:
        values = values - shift(lon2, lat2)
    if hole is not None:
        values[hole] = nodata
    ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, 1, gdal.GDT_Float32)
    ds.SetGeoTransform((west, step, 0, north, 0, -step))
    if crs:
        srs = osr.SpatialReference()
        srs.SetFromUserInput(crs)
        ds.SetSpatialRef(srs)
    ds.GetRasterBand(1).WriteArray(values.astype(np.float32))
    ds.GetRasterBand(1).SetNoDataValue(nodata)
    ds = None
    return path


def aoi_wkt(west=LON0 - 0.002, south=LAT0 - 0.0015, east=LON0 + 0.0022, north=LAT0 + 0.0012) -> str:
    """A slanted quadrilateral AOI (EPSG:4326) inside the scene."""
    return (f"POLYGON(({west} {south}, {east} {south + 0.0003}, {east - 0.0004} {north}, "
            f"{west + 0.0002} {north - 0.0002}, {west} {south}))")
