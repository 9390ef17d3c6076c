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
(uint8: 0 none, 1 layover, 2 shadow; local slope criterion), each with its sidecar style,
all together or none. Scratch files (the prepared DEM, sarsen's outputs, an extracted .zip)
live in a temporary folder inside the output folder that a killed run leaves recognisable
(:func:`core.io.temporary_folder`); the next run removes it. Memory scales with the DEM
(AOI) size, not with the scene.
"""
from __future__ import annotations

import errno
import glob
import math
import os
import queue
import re
import subprocess
import threading
import zipfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import array_bounds, from_origin
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_bounds

from ..choices import Choices
from ..errors import Cancelled, UserInputError, check_canceled
from ..io import Grid, GridResampler, OutputSet, open_raster, temporary_folder, write_failure, write_raster
from ..io import output_folder as run_folder
from ..io.files import free_bytes
from ..io.memory import USABLE_SHARE, available_memory_bytes, require_memory
from .styles import LS_MASK_STYLE, backscatter_style

#: Products of s1grdtoard (value, label).
PRODUCT_TYPES = Choices(("gtc_sigma0", "GTC sigma0"), ("gtc_gamma0", "GTC gamma0"),
                        ("rtc_gamma0", "RTC gamma0 (terrain flattening)"))
#: The product's token in output file names and tags.
PRODUCT_TOKENS = {"gtc_sigma0": "GTCsigma0", "gtc_gamma0": "GTCgamma0", "rtc_gamma0": "RTCgamma0"}
LS_MASK_DESCRIPTION = "layover/shadow: 0 none, 1 layover, 2 shadow"
#: Side of the DEM blocks sarsen works on (px; its default); the runner reports progress per block.
SARSEN_CHUNKS = 1024
#: What the full-disk and file-size errors of a subprocess say on stderr.
_DISK_FULL_TEXTS = {"No space left on device": errno.ENOSPC, "File too large": errno.EFBIG,
                    "[Errno 28]": errno.ENOSPC, "[Errno 27]": errno.EFBIG,
                    "Free disk space available is": errno.ENOSPC, "Write error at scanline": errno.ENOSPC,
                    "Write error at row": errno.ENOSPC, "Disk full": errno.ENOSPC, "disk full": errno.ENOSPC}
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


def dem_grid(src, bounds: Optional[Tuple[float, float, float, float]] = None, crs: Optional[str] = None,
             resolution: Optional[float] = None) -> Grid:
    """The output grid: the open DEM ``src`` in ``crs`` (default its own) at ``resolution``
    (default: the DEM's pixel size, or in another CRS the size that keeps the DEM's number of
    pixels along its diagonal, as GDAL suggests), cropped to ``bounds`` (in that CRS)."""
    if src.crs is None:
        raise UserInputError(f"The DEM '{src.name}' has no coordinate reference system; assign one first.")
    target = CRS.from_user_input(crs) if crs else src.crs
    left, bottom, right, top = transform_bounds(src.crs, target, *src.bounds, densify_pts=21)
    if resolution:
        res = float(resolution)
    elif target == src.crs:
        res = abs(src.transform.a)
    else:
        xs, ys = transform_points(src.crs, target, [src.bounds.left, src.bounds.right],
                                  [src.bounds.top, src.bounds.bottom])
        res = math.hypot(xs[1] - xs[0], ys[1] - ys[0]) / math.hypot(src.width, src.height)
        res = (right - left) / max(1, int((right - left) / res + 0.5))
    if target.is_geographic and res > 0.01 or (not target.is_geographic and res < 0.5):
        raise UserInputError(f"Resolution {res:g} does not suit the CRS units of {target.to_string()} "
                             "(degrees for geographic, metres for projected).")
    if bounds is not None:
        left, bottom = max(left, bounds[0]), max(bottom, bounds[1])
        right, top = min(right, bounds[2]), min(top, bounds[3])
        if right <= left or top <= bottom:
            raise UserInputError("The area of interest does not overlap the DEM.")
    width, height = max(2, int(round((right - left) / res))), max(2, int(round((top - bottom) / res)))
    return Grid(target, from_origin(left, top, res, res), width, height)


def product_footprint(safe: str) -> List[Tuple[float, float]]:
    """The product footprint [(lon, lat), ...] (degrees) from the ``gml:coordinates`` of manifest.safe
    (written there as "lat,lon lat,lon ..."); [] when the manifest has none."""
    with open(os.path.join(safe, "manifest.safe"), encoding="utf-8", errors="replace") as handle:
        match = re.search(r"<gml:coordinates>([^<]+)</gml:coordinates>", handle.read())
    if not match:
        return []
    points = []
    for pair in match.group(1).split():
        lat, lon = (float(v) for v in pair.split(",")[:2])
        points.append((lon, lat))
    return points


def require_dem_covers_scene(grid: Grid, footprint: Sequence[Tuple[float, float]], dem: str) -> None:
    """Refuse an output grid (the DEM, cropped to the area of interest) that misses the product
    footprint: sarsen would run to the end and write only no data."""
    if len(footprint) < 3:
        return
    from shapely.geometry import Polygon, box

    scene = Polygon(footprint)
    left, bottom, right, top = transform_bounds(grid.crs, "EPSG:4326", *array_bounds(grid.height, grid.width,
                                                                                     grid.transform), densify_pts=21)
    area = box(left, bottom, right, top)
    if scene.intersects(area) and scene.intersection(area).area > 0:
        return
    lons, lats = zip(*footprint)
    raise UserInputError(
        f"The DEM '{os.path.basename(dem)}' (cropped to the area of interest: lon {left:.3f}…{right:.3f}°, lat "
        f"{bottom:.3f}…{top:.3f}°) does not cover the product footprint (lon {min(lons):.3f}…"
        f"{max(lons):.3f}°, lat {min(lats):.3f}…{max(lats):.3f}°). Give a DEM and an area of interest inside "
        "the scene. Nothing was written.")


#: Memory per output pixel of a sarsen run (the DEM grid), measured: an RTC run with the geometry output on
#: the test product peaked at 4.92 GB with a 360 × 360 grid and 5.15 GB with 720 × 720 (about 600 bytes per
#: extra pixel, over a base of about 4.8 GB for the full-size measurement image, which is not counted here).
SARSEN_BYTES_PER_PIXEL = 600


def require_grid_memory(grid: Grid) -> None:
    """Refuse an output grid too large for the memory, suggesting a coarser resolution or a smaller AOI."""
    needed = float(grid.width) * grid.height * SARSEN_BYTES_PER_PIXEL
    available = available_memory_bytes()
    if available is None or needed <= USABLE_SHARE * available:
        return
    res = abs(grid.transform.a)
    coarser = res * math.sqrt(needed / (USABLE_SHARE * available)) * 1.1
    require_memory(needed, f"The output grid of {grid.width:,} × {grid.height:,} pixels at {res:g} CRS units",
                   f"Give a coarser resolution (RESOLUTION ≥ {coarser:.3g} CRS units, 0 = the DEM's) or a smaller "
                   "area of interest.")


def prepare_dem(dem: str, output: str, grid: Grid) -> None:
    """Resample the DEM (bilinear) onto ``grid`` (:func:`dem_grid`) and write it to ``output`` (float32,
    holes filled with the mean height)."""
    with GridResampler(grid, "bilinear") as resampler:
        elevation = resampler.read(dem)
    if np.isnan(elevation).mean() > 0.5:
        raise UserInputError("More than half of the DEM area has no elevation; give a DEM covering the AOI.")
    elevation = np.where(np.isfinite(elevation), elevation, np.nanmean(elevation)).astype(np.float32)
    write_raster(output, grid, elevation, ["height (m)"])


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
    for fragment, number in _DISK_FULL_TEXTS.items():
        if fragment in text:
            raise OSError(number, f"sarsen could not write its output: {fragment}")
    if "No module named 'sarsen'" in text or "No module named sarsen" in text:
        raise UserInputError(INSTALL_HINT)
    if code in (-9, 137):
        raise UserInputError("sarsen was killed (out of memory?). Use a smaller area of interest or a coarser "
                             "resolution.")
    failure = [line for line in errors if line.startswith("sarsen failed")]
    # the DEM's coverage of the scene was checked before sarsen started
    raise UserInputError((failure[-1] if failure else f"sarsen exited with code {code}: {text[-800:]}") +
                         " Nothing was written. Check the product (complete download) and the DEM (heights in "
                         "metres, valid over the area of interest).")


def _north_up(path: str, band: int = 1) -> Tuple[np.ndarray, Grid]:
    """A band of a sarsen output as a north-up float32 array (NaN = no data) and its grid."""
    with open_raster(path) as ds:
        data = ds.read_float(band, dtype=np.float32)
        transform = ds.transform
        grid = Grid.of(ds)
    if transform.e > 0:  # rows run south to north
        data = data[::-1]
        grid = Grid(grid.crs, from_origin(transform.c, transform.f + transform.e * data.shape[0], transform.a,
                                          transform.e), grid.width, grid.height)
    return data, grid


def _run_sarsen(python: str, arguments: Sequence[str], final_path: str, progress, is_canceled,
                progress_range) -> None:
    """:func:`run_runner`; a full disk in the scratch folder is reported for ``final_path``."""
    try:
        run_runner(python, arguments, progress, is_canceled, progress_range)
    except OSError as exc:
        raise write_failure(final_path, exc, free=free_bytes(os.path.dirname(final_path))) from exc


def _read_sarsen_output(path: str, band: int, final_path: str) -> Tuple[np.ndarray, Grid]:
    """:func:`_north_up` of a scratch file sarsen wrote; one it could not write completely (sarsen
    does not always notice a full disk) is a failed write of ``final_path``."""
    try:
        return _north_up(path, band)
    except UserInputError as exc:
        raise write_failure(final_path, exc, free=free_bytes(os.path.dirname(final_path))) from exc


def grd_to_ard(product: str, dem: str, output_folder: str, product_type: str = "rtc_gamma0",
               polarisations: Optional[Sequence[str]] = None,
               bounds: Optional[Tuple[float, float, float, float]] = None, crs: Optional[str] = None,
               resolution: Optional[float] = None, ls_mask: bool = True, python: Optional[str] = None,
               progress: Optional[Callable[[float], None]] = None,
               is_canceled: Optional[Callable[[], bool]] = None) -> Dict[str, object]:
    """Terrain-corrected backscatter per polarisation (and the layover/shadow mask) of one GRD product.

    ``bounds`` (left, bottom, right, top) in ``crs`` (default: the DEM's CRS) limit the
    output (and memory) to an area of interest. Returns {"paths": {POL: path}, "ls_mask":
    path|None, "polarisations": [...], "style": backscatter style, "ls_mask_style": style}.
    """
    PRODUCT_TYPES.check(product_type, "product type")
    token = PRODUCT_TOKENS[product_type]
    with run_folder(output_folder) as folder, temporary_folder(folder, "s1grdtoard") as workdir:
        safe = safe_folder(product, workdir)
        available = product_polarisations(safe)
        wanted = [p.upper() for p in polarisations] if polarisations else available
        missing = [p for p in wanted if p not in available]
        if missing:
            raise UserInputError(f"The product has no {', '.join(missing)} image (it has {', '.join(available)}).")
        check_canceled(is_canceled)
        dem_path = os.path.join(workdir, "dem.tif")
        with open_raster(dem) as src:
            grid = dem_grid(src, bounds, crs, resolution)
        require_grid_memory(grid)
        require_dem_covers_scene(grid, product_footprint(safe), dem)
        prepare_dem(dem, dem_path, grid)
        stem = re.sub(r"\.SAFE$", "", os.path.basename(safe))
        paths = {pol: os.path.join(folder, f"{stem}_{token}_{pol}.tif") for pol in wanted}
        ls_path = os.path.join(folder, f"{stem}_lsmask.tif") if ls_mask else None
        mode = "rtc" if product_type == "rtc_gamma0" else "gtc"
        need_geometry = ls_mask or mode == "gtc"
        geometry = os.path.join(workdir, "geometry.tif")
        share = 95.0 / len(wanted)
        results = {}
        for index, pol in enumerate(wanted):
            backscatter = os.path.join(workdir, f"{pol}.tif")
            arguments = ["--product", safe, "--group", measurement_group(safe, pol), "--dem", dem_path,
                         "--mode", mode, "--backscatter", backscatter, "--chunks", str(SARSEN_CHUNKS)]
            if need_geometry and index == 0:
                arguments += ["--geometry", geometry]
            _run_sarsen(python or "", arguments, paths[pol], progress, is_canceled,
                        (index * share, (index + 1) * share))
            results[pol] = backscatter
        incidence = code = None
        if need_geometry:
            incidence, _ = _read_sarsen_output(geometry, 1, paths[wanted[0]])
            code, _ = _read_sarsen_output(geometry, 2, ls_path or paths[wanted[0]])
        style = backscatter_style("linear")
        with OutputSet() as outputs:
            grid = None
            for pol, backscatter in results.items():
                values, grid = _read_sarsen_output(backscatter, 1, paths[pol])
                values[~np.isfinite(values) | (values <= 0)] = np.nan
                if product_type == "gtc_sigma0":
                    values = values * np.sin(np.deg2rad(incidence))
                elif product_type == "gtc_gamma0":
                    values = values * np.tan(np.deg2rad(incidence))
                with outputs.raster(
                        paths[pol], grid, [f"{token} {pol} (linear power)"], style=style,
                        tags=dict(PRODUCT=stem, POLARISATION=pol, UNIT="linear power", ENGINE="sarsen",
                                  PRODUCT_TYPE=token),
                        require_valid="sarsen found no backscatter in the area of interest: check that the "
                                      "DEM and the area of interest overlap the product footprint.") as out:
                    out.write(values.astype(np.float32), 1)
            if ls_path is not None:
                with outputs.raster(ls_path, grid, [LS_MASK_DESCRIPTION], dtype="uint8", nodata=None,
                                    style=LS_MASK_STYLE, require_valid=None) as out:
                    out.write(np.nan_to_num(code, nan=0.0).astype(np.uint8), 1)
    if progress:
        progress(100.0)
    return {"paths": paths, "ls_mask": ls_path, "polarisations": wanted, "style": style,
            "ls_mask_style": LS_MASK_STYLE}
