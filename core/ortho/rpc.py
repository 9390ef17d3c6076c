"""Rational polynomial camera models (RPCs) of raw (L1B) scenes: reading and evaluating them.

:func:`read_rpc` finds the RPCs of a scene in, in this order: the TIFF's ``RPC`` metadata
domain (GDAL also fills it from an ``<stem>_RPC.TXT`` sidecar), an ``<stem>_RPC.TXT`` /
``<stem>_rpc.txt`` sidecar parsed here (for files GDAL does not pair it with), and an XML
metadata file next to the scene (``<stem>_metadata.xml``, ``<stem>_metadata_rpc.xml``,
``<stem>_RPC.XML``) whose elements carry the RPC keys (``LINE_OFF``, ``SAMP_NUM_COEFF_1`` ... or
``LINE_NUM_COEFF`` with 20 numbers). Planet delivers the RPCs of its basic (L1B) scenes as the
``_RPC.TXT`` asset; its ``_metadata.xml`` (OGC EO profile) holds no coefficients, so the XML
reader serves files that do (e.g. exported or DIMAP-like RPC XML).

:class:`RpcModel` evaluates the RPC00B model as GDAL does: image coordinates in GDAL's
pixel-*corner* convention (the upper-left corner of pixel (0, 0) is (0, 0), its centre
(0.5, 0.5)); the RPC's own line/sample numbers refer to pixel centres, so
``col = sample + 0.5``, ``row = line + 0.5``. Ground: longitude, latitude (degrees, WGS84)
and height above the WGS84 ellipsoid (m).
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ElementTree
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np

from ..errors import UserInputError
from ..io.read import gdal_call

SCALARS = ("LINE_OFF", "SAMP_OFF", "LAT_OFF", "LONG_OFF", "HEIGHT_OFF",
           "LINE_SCALE", "SAMP_SCALE", "LAT_SCALE", "LONG_SCALE", "HEIGHT_SCALE")
COEFFICIENTS = ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF")
_OPTIONAL = ("MIN_LONG", "MIN_LAT", "MAX_LONG", "MAX_LAT", "ERR_BIAS", "ERR_RAND")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?"

#: A DEM sampler: (lon, lat) arrays in degrees -> ellipsoidal heights (m), NaN where unknown.
DemSampler = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- reading


def read_rpc(path: str) -> Dict[str, str]:
    """The RPCs of the scene at ``path`` as GDAL's RPC metadata dict (key -> text; the four
    coefficient keys hold 20 space-separated numbers). Raises :class:`UserInputError` when the
    scene has none, saying where they were looked for."""
    for reader in (_rpc_from_dataset, _rpc_from_sidecar_text, _rpc_from_sidecar_xml):
        found = reader(path)
        if found:
            return normalised_rpc(found, path)
    stem = os.path.splitext(os.path.basename(path))[0]
    raise UserInputError(
        f"The scene '{path}' has no RPCs (rational polynomial camera model), so it cannot be orthorectified. "
        f"Looked in the TIFF's RPC metadata, for {stem}_RPC.TXT and for an RPC XML ({stem}_metadata.xml) next "
        "to it. Download the scene's RPC asset (PlanetScope basic scenes: basic_analytic_4b_rpc, "
        "<id>_1B_AnalyticMS_RPC.TXT) into the scene's folder, named after the scene, or use an already "
        "orthorectified (L3B) scene.")


def _rpc_from_dataset(path: str) -> Optional[Dict[str, str]]:
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        ds = gdal_call(gdal.Open, str(path))
    finally:
        gdal.PopErrorHandler()
    if ds is None:
        raise UserInputError(f"Cannot read the scene '{path}': {gdal.GetLastErrorMsg()[:300]}. It must be a "
                             "GDAL-readable raster such as a GeoTIFF; check that the file is complete.")
    metadata = ds.GetMetadata("RPC") or {}
    ds = None
    return dict(metadata) if metadata else None


def _sidecars(path: str, suffixes) -> list:
    stem = os.path.splitext(str(path))[0]
    folder = os.path.dirname(os.path.abspath(path))
    names = {name.lower(): name for name in os.listdir(folder)} if os.path.isdir(folder) else {}
    found = []
    for suffix in suffixes:
        wanted = os.path.basename(stem + suffix).lower()
        if wanted in names:
            found.append(os.path.join(folder, names[wanted]))
    return found


def _rpc_from_sidecar_text(path: str) -> Optional[Dict[str, str]]:
    for sidecar in _sidecars(path, ("_RPC.TXT",)):
        with open(sidecar, encoding="utf-8", errors="replace") as handle:
            parsed = parse_rpc_text(handle.read())
        if parsed:
            return parsed
    return None


def parse_rpc_text(text: str) -> Dict[str, str]:
    """The RPCs of an ``_RPC.TXT`` file (``KEY: value`` lines; coefficients as ``LINE_NUM_COEFF_1``
    ... or as one 20-number line), as GDAL's RPC dict; empty when it holds none."""
    values: Dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\s*([A-Za-z_]+?)(?:_(\d+))?\s*[:=]\s*(.*?)\s*$", line)
        if match:
            _store(values, match.group(1).upper(), match.group(2), match.group(3))
    return _assembled(values)


def _rpc_from_sidecar_xml(path: str) -> Optional[Dict[str, str]]:
    for sidecar in _sidecars(path, ("_metadata_rpc.xml", "_RPC.XML", "_metadata.xml")):
        try:
            root = ElementTree.parse(sidecar).getroot()
        except ElementTree.ParseError as exc:
            raise UserInputError(f"The metadata file '{sidecar}' is not valid XML ({exc}); download it again.") \
                from exc
        parsed = parse_rpc_xml(root)
        if parsed:
            return parsed
    return None


def parse_rpc_xml(root) -> Dict[str, str]:
    """The RPCs held by the elements of an XML tree whose local names are RPC keys
    (``LINE_OFF``, ``SAMP_NUM_COEFF_1`` or ``SAMP_NUM_COEFF`` with 20 numbers, any namespace)."""
    values: Dict[str, str] = {}
    for element in root.iter():
        name = str(element.tag).rsplit("}", 1)[-1].upper()
        match = re.fullmatch(r"([A-Z_]+?)(?:_(\d+))?", name)
        if match and element.text and element.text.strip():
            _store(values, match.group(1), match.group(2), element.text.strip())
    return _assembled(values)


def _store(values: Dict[str, str], key: str, index: Optional[str], text: str) -> None:
    numbers = re.findall(_NUMBER, text)
    if not numbers:
        return
    if index is not None and key in COEFFICIENTS:
        values[f"{key}_{int(index)}"] = numbers[0]
    elif index is not None and f"{key}_{index}" in SCALARS + _OPTIONAL:
        values[f"{key}_{index}"] = numbers[0]
    elif key in COEFFICIENTS:
        values[key] = " ".join(numbers)
    elif key in SCALARS + _OPTIONAL:
        values[key] = numbers[0]


def _assembled(values: Dict[str, str]) -> Dict[str, str]:
    rpc = {key: values[key] for key in SCALARS + _OPTIONAL if key in values}
    for key in COEFFICIENTS:
        if key in values:
            rpc[key] = values[key]
        elif all(f"{key}_{i}" in values for i in range(1, 21)):
            rpc[key] = " ".join(values[f"{key}_{i}"] for i in range(1, 21))
    return rpc if all(key in rpc for key in SCALARS + COEFFICIENTS) else {}


def normalised_rpc(rpc: Dict[str, str], source: str = "the scene") -> Dict[str, str]:
    """``rpc`` checked (every key, 20 finite coefficients each, non-zero scales) with numbers
    written the way GDAL reads them (``d`` exponents as ``e``)."""
    missing = [key for key in SCALARS + COEFFICIENTS if key not in rpc]
    if missing:
        raise UserInputError(f"The RPCs of {source} lack {', '.join(missing)}; the RPC metadata is incomplete. "
                             "Download the scene's RPC file again.")
    out = {key: str(value).replace("D", "E").replace("d", "e") for key, value in rpc.items()}
    for key in COEFFICIENTS:
        numbers = [float(x) for x in re.findall(_NUMBER, out[key].replace("D", "E"))]
        if len(numbers) != 20 or not np.all(np.isfinite(numbers)):
            raise UserInputError(f"The RPC coefficients {key} of {source} are not 20 numbers; the RPC metadata is "
                                 "corrupt. Download the scene's RPC file again.")
        out[key] = " ".join(repr(x) for x in numbers)
    for key in SCALARS:
        value = float(re.findall(_NUMBER, out[key])[0])
        if key.endswith("_SCALE") and value == 0:
            raise UserInputError(f"The RPC {key} of {source} is 0; the RPC metadata is corrupt.")
        out[key] = repr(value)
    return out


# --------------------------------------------------------------------------- the model


def _terms(L: np.ndarray, P: np.ndarray, H: np.ndarray) -> np.ndarray:
    """The 20 RPC00B monomials of normalised longitude L, latitude P and height H."""
    one = np.ones_like(L)
    return np.stack([one, L, P, H, L * P, L * H, P * H, L * L, P * P, H * H, P * L * H, L ** 3, L * P * P,
                     L * H * H, L * L * P, P ** 3, P * H * H, L * L * H, P * P * H, H ** 3])


class RpcModel:
    """The RPC00B camera of a GDAL RPC dict; vectorised ground <-> image (see the module doc)."""

    def __init__(self, rpc: Dict[str, str]):
        rpc = normalised_rpc(rpc)
        self.rpc = rpc
        for key in SCALARS:
            setattr(self, key.lower(), float(rpc[key]))
        self.coefficients = {key: np.array([float(x) for x in rpc[key].split()]) for key in COEFFICIENTS}

    def ground_to_image(self, lon, lat, h) -> Tuple[np.ndarray, np.ndarray]:
        """Image (col, row) in the pixel-corner convention of ground points (lon, lat in degrees,
        ellipsoidal height h in m); arrays broadcast."""
        lon, lat, h = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (lon, lat, h)))
        terms = _terms((lon - self.long_off) / self.long_scale, (lat - self.lat_off) / self.lat_scale,
                       (h - self.height_off) / self.height_scale)
        c = self.coefficients
        line = np.tensordot(c["LINE_NUM_COEFF"], terms, 1) / np.tensordot(c["LINE_DEN_COEFF"], terms, 1)
        samp = np.tensordot(c["SAMP_NUM_COEFF"], terms, 1) / np.tensordot(c["SAMP_DEN_COEFF"], terms, 1)
        return samp * self.samp_scale + self.samp_off + 0.5, line * self.line_scale + self.line_off + 0.5

    def image_to_ground_at_height(self, col, row, h, iterations: int = 20,
                                  tolerance: float = 1e-6) -> Tuple[np.ndarray, np.ndarray]:
        """(lon, lat) in degrees of image points (col, row) at ellipsoidal height ``h`` (m):
        Newton iterations on :meth:`ground_to_image`, to ``tolerance`` px."""
        col, row, h = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (col, row, h)))
        lon = np.full(col.shape, self.long_off)
        lat = np.full(col.shape, self.lat_off)
        d_lon, d_lat = 1e-4 * self.long_scale, 1e-4 * self.lat_scale
        for _ in range(iterations):
            c0, r0 = self.ground_to_image(lon, lat, h)
            c1, r1 = self.ground_to_image(lon + d_lon, lat, h)
            c2, r2 = self.ground_to_image(lon, lat + d_lat, h)
            a, b = (c1 - c0) / d_lon, (c2 - c0) / d_lat
            c, d = (r1 - r0) / d_lon, (r2 - r0) / d_lat
            det = a * d - b * c
            ec, er = col - c0, row - r0
            lon = lon + (d * ec - b * er) / det
            lat = lat + (a * er - c * ec) / det
            if np.nanmax(np.abs(np.concatenate([ec.ravel(), er.ravel()])), initial=0.0) < tolerance:
                break
        return lon, lat

    def image_to_ground(self, col, row, dem: Union[DemSampler, float, np.ndarray], iterations: int = 30,
                        tolerance: float = 0.01) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lon, lat, h) of image points (col, row) on the terrain: ``dem`` is a constant or array of
        ellipsoidal heights (m) or a sampler ``dem(lon, lat) -> h``; with a sampler the line of sight
        is intersected with the terrain by iterating the height until it changes by less than
        ``tolerance`` m. Points whose terrain height is unknown come back NaN."""
        if not callable(dem):
            h = np.broadcast_to(np.asarray(dem, dtype=np.float64), np.shape(col)).copy()
            lon, lat = self.image_to_ground_at_height(col, row, h)
            return lon, lat, h
        h = np.full(np.shape(col), self.height_off, dtype=np.float64)
        for iteration in range(iterations):
            lon, lat = self.image_to_ground_at_height(col, row, np.nan_to_num(h, nan=self.height_off))
            new = np.asarray(dem(lon, lat), dtype=np.float64)
            step = new - h
            damping = 1.0 if iteration < 10 else 0.5  # steep terrain along the line of sight oscillates
            h = np.where(np.isfinite(new), h + damping * step, np.nan)
            if np.nanmax(np.abs(step), initial=0.0) < tolerance:
                break
        lon, lat = self.image_to_ground_at_height(col, row, np.nan_to_num(h, nan=self.height_off))
        unknown = ~np.isfinite(h)
        return np.where(unknown, np.nan, lon), np.where(unknown, np.nan, lat), h

    def height_range(self) -> Tuple[float, float]:
        """The heights (m) the RPC fit covers: HEIGHT_OFF +- HEIGHT_SCALE."""
        return self.height_off - self.height_scale, self.height_off + self.height_scale
