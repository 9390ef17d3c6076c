"""Single-band extraction from multi-band scenes, with optional UDM2 masking (REFERENCE §2.1).

Correlation needs single-band images; PlanetScope green is band 2 of 4-band
and band 4 of 8-band products. The output keeps the input data type and all
georeferencing (CRS + geotransform, GCPs, RPCs) so L1B scenes can still be
orthorectified afterwards.
"""
from __future__ import annotations

import contextlib
import os
from typing import Optional

import numpy as np
from rasterio.windows import Window

from ..errors import EmptyOutputError, UserInputError, check_canceled
from ..io import Grid, RasterWriter, default_nodata, open_raster, require_content, row_blocks
from .planetscope import parse_scene_id

#: UDM2 bands (1-based): 1 clear, 2 snow, 3 shadow, 4 light haze, 5 heavy haze, 6 cloud, ...
UDM2_CLEAR_BAND = 1
UDM2_SNOW_BAND = 2

#: Pixels read per block (bounds memory); blocks are whole multiples of the 256-row tiles.
_BLOCK_PIXELS = 8 * 1024 * 1024
_TILE = 256
#: Why an extracted band can come out empty, and what to do.
_EMPTY_HINT = ("Every pixel of the scene is nodata or masked by its UDM2 (cloud, haze, shadow); use another "
               "scene, or untick the UDM2 mask.")


def output_name_for(src_path: str, band: int) -> str:
    """File name of an extracted band: ``<input stem>_b<N>.tif``."""
    stem = os.path.splitext(os.path.basename(src_path))[0]
    return f"{stem}_b{int(band)}.tif"


def find_udm2_for(scene_path: str) -> Optional[str]:
    """Path of the UDM2 file delivered next to a PlanetScope scene, or None if absent.

    ``<id>_3B_AnalyticMS_SR[_8b][_harmonized]_clip.tif`` -> ``<id>_3B_udm2_clip.tif``;
    unclipped assets (no ``_clip``) -> ``<id>_3B_udm2.tif``; L1B
    ``<id>_1B_AnalyticMS.tif`` -> ``<id>_1B_udm2.tif``.
    """
    scene_path = os.path.abspath(scene_path)
    folder, name = os.path.split(scene_path)
    try:
        scene = parse_scene_id(name)
    except UserInputError:
        return None
    clip = "_clip" if os.path.splitext(name)[0].endswith("_clip") else ""
    candidate = os.path.join(folder, f"{scene.scene_id}_{scene.level}_udm2{clip}.tif")
    if candidate == scene_path or not os.path.isfile(candidate):
        return None
    return candidate


def extract_band(src_path: str, dst_path: str, band: int = 2, udm2_path: Optional[str] = None,
                 keep_snow: bool = True, progress=None, is_canceled=None) -> str:
    """Write band ``band`` (1-based) of ``src_path`` to a single-band GeoTIFF ``dst_path``.

    The output has the input's data type, CRS, geotransform, GCPs, RPCs and
    dataset tags; its band description is ``band <N>`` plus the source band's
    description in brackets. Nodata is the source band's nodata, else 0 for
    unsigned integers, NaN for floats and the type's minimum for signed
    integers; pixels masked in the source stay nodata.

    With ``udm2_path``, pixels that are not usable become nodata: usable means
    UDM2 clear == 1, or snow == 1 when ``keep_snow`` (so glaciers and snowfields
    survive). Returns the absolute output path.
    """
    dst_path = os.path.abspath(dst_path)
    _refuse_overwriting_inputs(dst_path, [src_path, udm2_path])
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_raster(src_path))
        _require_georeferencing(src)
        _require_band(src, band)
        # a scene that is all nodata or constant cannot be correlated: batches skip it
        require_content(src, "scene", band, error=EmptyOutputError)
        udm2 = None
        if udm2_path:
            udm2 = stack.enter_context(open_raster(udm2_path))
            _require_matching_udm2(src, udm2)
        with _band_writer(src, band, dst_path) as dst:
            _copy_pixels(src, band, udm2, keep_snow, dst, progress, is_canceled)
    return dst_path


def _refuse_overwriting_inputs(dst_path: str, inputs) -> None:
    for path in inputs:
        if path and os.path.abspath(path) == dst_path:
            raise UserInputError(
                f"The output '{dst_path}' is also an input; choose another output name or folder.")


def _require_georeferencing(src) -> None:
    """A CRS (geographic allowed), GCPs or RPCs must be present."""
    gcps, _ = src.gcps
    if src.crs is None and not gcps and src.rpcs is None:
        raise UserInputError(
            f"The raster '{src.name}' has no coordinate reference system (and no GCPs or RPCs). "
            "Assign its CRS (e.g. with 'Assign projection' in QGIS) before extracting a band.")


def _require_band(src, band: int) -> None:
    if int(band) != band or not 1 <= band <= src.count:
        raise UserInputError(
            f"Band {band} does not exist: the raster '{src.name}' has {src.count} bands; "
            f"choose 1..{src.count} (green is 2 in 4-band and 4 in 8-band PlanetScope).")


def _require_matching_udm2(src, udm2) -> None:
    if (udm2.width, udm2.height) != (src.width, src.height) or not _same_grid(src.transform, udm2.transform):
        raise UserInputError(
            f"The UDM2 mask '{udm2.name}' ({udm2.width} x {udm2.height} px, transform "
            f"{tuple(udm2.transform)[:6]}) does not have the same size and grid as the scene "
            f"'{src.name}' ({src.width} x {src.height} px, transform {tuple(src.transform)[:6]}). "
            "Use the UDM2 delivered with the same (clipped or unclipped) scene.")
    if src.crs is not None and udm2.crs is not None and src.crs != udm2.crs:
        raise UserInputError(
            f"The UDM2 mask '{udm2.name}' is in {udm2.crs.to_string()} but the scene '{src.name}' is in "
            f"{src.crs.to_string()}. Use the UDM2 delivered with the same scene.")
    if udm2.count < UDM2_SNOW_BAND:
        raise UserInputError(
            f"'{udm2.name}' has {udm2.count} band(s); a PlanetScope UDM2 has 8 "
            "(1 clear, 2 snow, 3 shadow, ...). Choose the *_udm2*.tif file of the scene.")


def _same_grid(a, b) -> bool:
    """Same geotransform up to float noise (linear terms) and 1/1000 pixel (origin)."""
    linear_a, linear_b = np.array([a.a, a.b, a.d, a.e]), np.array([b.a, b.b, b.d, b.e])
    if not np.allclose(linear_a, linear_b, rtol=1e-9, atol=1e-12):
        return False
    pixel = max(abs(a.a), abs(a.e), abs(a.b), abs(a.d))
    return abs(a.c - b.c) <= 1e-3 * pixel and abs(a.f - b.f) <= 1e-3 * pixel


def _band_writer(src, band: int, dst_path: str) -> RasterWriter:
    """The output of one band: the source's type, nodata (or the type's default), georeferencing
    (CRS + geotransform, GCPs, RPCs), dataset and band tags, RPC domain, scale/offset/unit and a
    description ``band <N> (<source description>)``."""
    dtype = src.dtypes[band - 1]
    nodata = src.nodatavals[band - 1]
    gcps, gcp_crs = src.gcps
    georeferencing = {}
    if src.crs is None and gcps:
        georeferencing.update(gcps=gcps, crs=gcp_crs)
    if src.rpcs is not None:
        georeferencing["rpcs"] = src.rpcs
    grid = Grid(src.crs, src.transform, src.width, src.height)
    source_description = src.descriptions[band - 1]
    description = f"band {band}" + (f" ({source_description})" if source_description else "")
    rpc_tags = src.tags(ns="RPC")  # the source's exact text, beyond rasterio's RPC fields
    return RasterWriter(dst_path, grid, [description], dtype=dtype,
                        nodata=default_nodata(dtype) if nodata is None else nodata, tags=src.tags(),
                        tag_namespaces={"RPC": rpc_tags} if rpc_tags else None, band_tags=[src.tags(band)],
                        units=[src.units[band - 1]] if src.units[band - 1] else None,
                        scales=[src.scales[band - 1]], offsets=[src.offsets[band - 1]],
                        georeferencing=georeferencing, require_valid=_EMPTY_HINT)


def _copy_pixels(src, band: int, udm2, keep_snow: bool, dst: RasterWriter, progress, is_canceled) -> None:
    """Copy the band block by block, setting unusable pixels to the output nodata."""
    nodata = dst.nodata
    for start, stop in row_blocks(src.height, _block_rows(src.width)):
        check_canceled(is_canceled)
        window = Window(0, start, src.width, stop - start)
        data = src.read(band, window=window)
        usable = src.read_masks(band, window=window) > 0
        if udm2 is not None:
            usable &= _udm2_usable(udm2, window, keep_snow)
        data[~usable] = nodata
        dst.write(data, 1, window=window)
        if progress is not None:
            progress(100.0 * stop / src.height)


def _udm2_usable(udm2, window: Window, keep_snow: bool) -> np.ndarray:
    """True where UDM2 says clear (or snow when ``keep_snow``)."""
    usable = udm2.read(UDM2_CLEAR_BAND, window=window) == 1
    if keep_snow:
        usable |= udm2.read(UDM2_SNOW_BAND, window=window) == 1
    return usable


def _block_rows(width: int) -> int:
    """Rows per block: about :data:`_BLOCK_PIXELS` pixels, a multiple of the tile height."""
    rows = _BLOCK_PIXELS // max(int(width), 1)
    return max(_TILE, rows // _TILE * _TILE)
