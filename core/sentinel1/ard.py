"""Sentinel-1 GRD -> analysis-ready backscatter without SNAP, through sarsen (REFERENCE §9.1).

sarsen needs newer numpy/pandas/scipy than the plugin's Python, so it runs in its own
virtual environment (``make sarsen``) as a subprocess: ``tools/sarsen_runner.py`` is run
by that venv's interpreter, its ``PROGRESS`` lines drive the progress bar and the process
is killed on cancel. This module prepares the DEM (AOI crop, CRS, resolution: sarsen
writes on the DEM grid, so the DEM grid is the output grid), then converts sarsen's
output:

* ``gtc_sigma0``: GTC β⁰ · sin θ_e; ``gtc_gamma0``: GTC β⁰ · tan θ_e (θ_e = ellipsoid
  incidence angle from the orbit and DEM geometry);
* ``rtc_gamma0``: sarsen's RTC γ⁰ with gamma flattening (Small 2011);

all in linear power, float32, north-up, NaN nodata (sarsen's 0 outside the swath), named
``<SAFE id>_<GTCsigma0|GTCgamma0|RTCgamma0>_<POL>.tif``, plus ``<SAFE id>_lsmask.tif``
(uint8: 0 none, 1 layover, 2 shadow; local slope criterion). Memory scales with the DEM
(AOI) size, not with the scene.
"""
from __future__ import annotations

import glob
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import zipfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform

from ..errors import Cancelled, UserInputError, check_canceled
from ..raster_io import FLOAT_GTIFF_PROFILE, atomic_output, ensure_writable_dir, open_raster

PRODUCT_TYPES = {"gtc_sigma0": "GTCsigma0", "gtc_gamma0": "GTCgamma0", "rtc_gamma0": "RTCgamma0"}
SAFE_PATTERN = re.compile(r"^(S1[A-D])_(IW|EW|S[1-6])_GRD[FHM]_1S(DV|DH|SV|SH)_\d{8}T\d{6}_\d{8}T\d{6}_\w+")
RUNNER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "tools", "sarsen_runner.py")
INSTALL_HINT = ("sarsen is not installed. Run `make sarsen` in the plugin folder (it creates .venv-sarsen with "
                "`pip install sarsen rioxarray`), or set Processing → Options → Providers → Surface Motion "
                "Toolbox → 'Python interpreter of the sarsen virtual environment' to a Python that has sarsen.")


def safe_folder(product: str, workdir: str) -> str:
    """The .SAFE folder of ``product`` (a .SAFE folder, its manifest.safe, or a .zip extracted into ``workdir``)."""
    product = product.rstrip("/\\")
    if os.path.basename(product) == "manifest.safe":
        product = os.path.dirname(product)
    if product.lower().endswith(".zip"):
        if not zipfile.is_zipfile(product):
            raise UserInputError(f"'{product}' is not a readable zip file.")
        with zipfile.ZipFile(product) as archive:
            names = [n for n in archive.namelist() if n.endswith(".SAFE/manifest.safe")]
            if not names:
                raise UserInputError(f"'{os.path.basename(product)}' contains no .SAFE product.")
            archive.extractall(workdir, members=[n for n in archive.namelist() if n.startswith(names[0][:-13])])
        product = os.path.join(workdir, os.path.dirname(names[0]))
    if not os.path.isfile(os.path.join(product, "manifest.safe")):
        raise UserInputError(f"'{product}' is not a Sentinel-1 .SAFE folder (no manifest.safe). Give the .SAFE "
                             "folder or the .zip as downloaded.")
    name = os.path.basename(product)
    if not SAFE_PATTERN.match(name):
        raise UserInputError(f"'{name}' is not a Sentinel-1 GRD product name (S1x_IW_GRDH_1SDV_...); SLC and "
                             "other levels are not supported.")
    return product


def product_polarisations(safe: str) -> List[str]:
    """Polarisations with a measurement file (e.g. ['VH', 'VV'])."""
    found = set()
    for path in glob.glob(os.path.join(safe, "measurement", "*.tif*")):
        match = re.search(r"-(vv|vh|hh|hv)-", os.path.basename(path))
        if match:
            found.add(match.group(1).upper())
    if not found:
        raise UserInputError(f"No measurement image in '{safe}/measurement'.")
    return sorted(found)


def measurement_group(safe: str, polarisation: str) -> str:
    return f"{SAFE_PATTERN.match(os.path.basename(safe)).group(2)}/{polarisation}"


def prepare_dem(dem: str, output: str, bounds: Optional[Tuple[float, float, float, float]] = None,
                crs: Optional[str] = None, resolution: Optional[float] = None) -> dict:
    """Warp the DEM (bilinear) to ``crs``/``resolution`` and crop it to ``bounds`` (in that CRS)."""
    with open_raster(dem) as src:
        if src.crs is None:
            raise UserInputError(f"The DEM '{dem}' has no coordinate reference system; assign one first.")
        target = rasterio.crs.CRS.from_user_input(crs) if crs else src.crs
        if resolution:
            res = float(resolution)
        elif target == src.crs:
            res = abs(src.transform.a)
        else:
            res = abs(calculate_default_transform(src.crs, target, src.width, src.height, *src.bounds)[0].a)
        if target.is_geographic and res > 0.01 or (not target.is_geographic and res < 0.5):
            raise UserInputError(f"Resolution {res:g} does not suit the CRS units of {target.to_string()} "
                                 "(degrees for geographic, metres for projected).")
        full = rasterio.warp.transform_bounds(src.crs, target, *src.bounds, densify_pts=21)
        left, bottom, right, top = full
        if bounds is not None:
            left, bottom = max(left, bounds[0]), max(bottom, bounds[1])
            right, top = min(right, bounds[2]), min(top, bounds[3])
            if right <= left or top <= bottom:
                raise UserInputError("The area of interest does not overlap the DEM.")
        width, height = max(2, int(round((right - left) / res))), max(2, int(round((top - bottom) / res)))
        transform = from_origin(left, top, res, res)
        nodata = src.nodata
        with WarpedVRT(src, crs=target, transform=transform, width=width, height=height,
                       resampling=Resampling.bilinear, src_nodata=nodata, nodata=np.nan, dtype="float32") as vrt:
            elevation = vrt.read(1)
    if np.isnan(elevation).mean() > 0.5:
        raise UserInputError("More than half of the DEM area has no elevation; give a DEM covering the AOI.")
    elevation = np.where(np.isfinite(elevation), elevation, np.nanmean(elevation)).astype(np.float32)
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32", crs=target,
                   transform=transform)
    with rasterio.open(output, "w", **profile) as ds:
        ds.write(elevation, 1)
    return {"crs": target, "transform": transform, "width": width, "height": height}


def run_runner(python: str, arguments: Sequence[str], progress=None, is_canceled=None,
               progress_range=(0.0, 100.0)) -> None:
    """Run ``tools/sarsen_runner.py`` with ``python``; progress from its PROGRESS lines; killed on cancel."""
    if not python or not os.path.isfile(python):
        raise UserInputError(f"No Python interpreter at '{python}'. " + INSTALL_HINT)
    process = subprocess.Popen([python, RUNNER, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=""))
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    errors: List[str] = []

    def pump(stream, sink):
        for line in stream:
            sink(line.rstrip("\n"))
        if stream is process.stdout:
            lines.put(None)

    threads = [threading.Thread(target=pump, args=(process.stdout, lines.put), daemon=True),
               threading.Thread(target=pump, args=(process.stderr, errors.append), daemon=True)]
    for thread in threads:
        thread.start()
    start, stop = progress_range
    try:
        while True:
            if is_canceled is not None and is_canceled():
                raise Cancelled("Cancelled by the user")
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith("PROGRESS ") and progress:
                progress(start + (stop - start) * float(line.split()[1]) / 100.0)
        code = process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    for thread in threads:
        thread.join(timeout=5)
    if code == 0:
        return
    text = "\n".join(errors)
    if "No module named 'sarsen'" in text or "No module named sarsen" in text:
        raise UserInputError(INSTALL_HINT)
    if code in (-9, 137):
        raise UserInputError("sarsen was killed (out of memory?). Use a smaller area of interest or a coarser "
                             "resolution.")
    failure = [line for line in errors if line.startswith("sarsen failed")]
    raise UserInputError((failure[-1] if failure else f"sarsen exited with code {code}: {text[-800:]}") +
                         " Check that the DEM covers the product footprint.")


def _north_up(path: str, band: int = 1) -> Tuple[np.ndarray, object, object]:
    """Read a band of a sarsen output as a north-up array with its transform and CRS."""
    with rasterio.open(path) as ds:
        data = ds.read(band).astype(np.float32)
        transform, crs = ds.transform, ds.crs
    if transform.e > 0:  # rows run south to north
        data = data[::-1]
        transform = from_origin(transform.c, transform.f + transform.e * data.shape[0], transform.a, transform.e)
    return data, transform, crs


def grd_to_ard(product: str, dem: str, output_folder: str, product_type: str = "rtc_gamma0",
               polarisations: Optional[Sequence[str]] = None,
               bounds: Optional[Tuple[float, float, float, float]] = None, crs: Optional[str] = None,
               resolution: Optional[float] = None, ls_mask: bool = True, python: Optional[str] = None,
               progress: Optional[Callable[[float], None]] = None,
               is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, object]:
    """Terrain-corrected backscatter per polarisation (and the layover/shadow mask) of one GRD product.

    ``bounds`` (left, bottom, right, top) in ``crs`` (default: the DEM's CRS) limit the
    output (and memory) to an area of interest. Returns {"paths": {POL: path}, "ls_mask": path|None}.
    """
    if product_type not in PRODUCT_TYPES:
        raise UserInputError(f"Unknown product type '{product_type}'; use one of {list(PRODUCT_TYPES)}.")
    folder = ensure_writable_dir(output_folder)
    workdir = tempfile.mkdtemp(prefix=".s1grdtoard-", dir=folder)
    try:
        safe = safe_folder(product, workdir)
        available = product_polarisations(safe)
        wanted = [p.upper() for p in polarisations] if polarisations else available
        missing = [p for p in wanted if p not in available]
        if missing:
            raise UserInputError(f"The product has no {', '.join(missing)} image (it has {', '.join(available)}).")
        check_canceled(is_canceled)
        dem_path = os.path.join(workdir, "dem.tif")
        prepare_dem(dem, dem_path, bounds, crs, resolution)
        stem = re.sub(r"\.SAFE$", "", os.path.basename(safe))
        mode = "rtc" if product_type == "rtc_gamma0" else "gtc"
        need_geometry = ls_mask or mode == "gtc"
        outputs, ls_path = {}, None
        share = 95.0 / len(wanted)
        results = {}
        for index, pol in enumerate(wanted):
            backscatter = os.path.join(workdir, f"{pol}.tif")
            arguments = ["--product", safe, "--group", measurement_group(safe, pol), "--dem", dem_path,
                         "--mode", mode, "--backscatter", backscatter]
            geometry = os.path.join(workdir, "geometry.tif")
            if need_geometry and index == 0:
                arguments += ["--geometry", geometry]
            run_runner(python or "", arguments, progress, is_canceled, (index * share, (index + 1) * share))
            results[pol] = backscatter
        incidence = code = None
        if need_geometry:
            incidence, _, _ = _north_up(geometry, 1)
            code, _, _ = _north_up(geometry, 2)
        with_outputs = []
        for pol, backscatter in results.items():
            values, transform, out_crs = _north_up(backscatter)
            values[~np.isfinite(values) | (values <= 0)] = np.nan
            if product_type == "gtc_sigma0":
                values = values * np.sin(np.deg2rad(incidence))
            elif product_type == "gtc_gamma0":
                values = values * np.tan(np.deg2rad(incidence))
            path = os.path.join(folder, f"{stem}_{PRODUCT_TYPES[product_type]}_{pol}.tif")
            with_outputs.append((path, values.astype(np.float32), transform, out_crs, pol))
        written = []
        try:
            for path, values, transform, out_crs, pol in with_outputs:
                profile = dict(FLOAT_GTIFF_PROFILE, width=values.shape[1], height=values.shape[0], count=1,
                               crs=out_crs, transform=transform)
                with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile) as ds:
                    ds.write(values, 1)
                    ds.set_band_description(1, f"{PRODUCT_TYPES[product_type]} {pol} (linear power)")
                    ds.update_tags(PRODUCT=stem, POLARISATION=pol, UNIT="linear power",
                                   ENGINE="sarsen", PRODUCT_TYPE=PRODUCT_TYPES[product_type])
                written.append(path)
                outputs[pol] = path
            if ls_mask:
                ls_path = os.path.join(folder, f"{stem}_lsmask.tif")
                profile = dict(driver="GTiff", width=code.shape[1], height=code.shape[0], count=1, dtype="uint8",
                               crs=with_outputs[0][3], transform=with_outputs[0][2], compress="deflate")
                with atomic_output(ls_path) as tmp, rasterio.open(tmp, "w", **profile) as ds:
                    ds.write(code.astype(np.uint8), 1)
                    ds.set_band_description(1, "layover/shadow: 0 none, 1 layover, 2 shadow")
                written.append(ls_path)
        except BaseException:
            for path in written:
                if os.path.exists(path):
                    os.remove(path)
            raise
        if progress:
            progress(100.0)
        return {"paths": outputs, "ls_mask": ls_path, "polarisations": wanted}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
