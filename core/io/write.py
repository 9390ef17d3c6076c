"""Writing GeoTIFFs: one writer for every raster output of the core.

:class:`RasterWriter` takes the destination, the grid, the band descriptions
(with units), tags and the style name, and does the rest: the profile (float32,
tiled 256 x 256, DEFLATE, NaN nodata unless told otherwise), the temporary name,
the writes, then — before the rename — fsync, reopening and reading every
written window back (CRC-32 of the bytes, so a block GDAL silently failed to
store is caught), the completion tag written last, and the sidecar style, its colour range
fitted to the written data (2nd-98th percentile, see ``styles.fitted_style``).
An output with no valid cell is refused (``require_valid``).

``is_complete_raster`` is the resume test: an output counts as done only when
it opens, carries the completion tag and its last block of every band reads.
"""
from __future__ import annotations

import zlib
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import EmptyOutputError
from .files import AtomicFile, fsync_file, sidecar_paths
from .grid import Grid
from .read import READ_ERRORS, valid_mask_from_nodata
from .styles import fitted_style

#: Creation options for every float output (NaN nodata, tiled, compressed).
FLOAT_GTIFF_PROFILE = {
    "driver": "GTiff",
    "dtype": "float32",
    "nodata": float("nan"),
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "deflate",
    "predictor": 3,
    "BIGTIFF": "IF_SAFER",
}
#: Written last into every GeoTIFF of the plugin; its presence on reopening means complete.
COMPLETE_TAG = "SM_COMPLETE"
_DEFAULT = object()

WindowLike = Union[Window, Tuple[Tuple[int, int], Tuple[int, int]], None]


def default_nodata(dtype: str):
    """Nodata for a band that declares none: 0 (unsigned int), type minimum (signed int), NaN."""
    kind = np.dtype(dtype)
    if np.issubdtype(kind, np.unsignedinteger):
        return 0
    if np.issubdtype(kind, np.signedinteger):
        return int(np.iinfo(kind).min)
    return float("nan")


def gtiff_profile(grid: Grid, count: int, dtype: str = "float32", nodata=_DEFAULT,
                  creation: Optional[Mapping] = None) -> dict:
    """The GeoTIFF profile of an output: tiled, DEFLATE (predictor 3 for floats, 2 for integers)."""
    kind = np.dtype(dtype)
    profile = dict(FLOAT_GTIFF_PROFILE, dtype=kind.name, count=int(count), width=grid.width,
                   height=grid.height, transform=grid.transform)
    if grid.crs is not None:
        profile["crs"] = grid.crs
    profile["nodata"] = (float("nan") if np.issubdtype(kind, np.floating) else default_nodata(kind.name)) \
        if nodata is _DEFAULT else nodata
    profile["predictor"] = 3 if np.issubdtype(kind, np.floating) else 2
    profile.update(creation or {})
    if not profile.get("tiled", True):
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
    if profile.get("compress") in (None, "none", "NONE"):
        profile.pop("predictor", None)
    return profile


def _window_key(window: Optional[Window], grid: Grid) -> Tuple[int, int, int, int]:
    if window is None:
        return 0, 0, grid.width, grid.height
    if not isinstance(window, Window):
        window = Window.from_slices(*window)
    return int(window.col_off), int(window.row_off), int(window.width), int(window.height)


class RasterWriter(AtomicFile):
    """A verified GeoTIFF under construction; use as a context manager.

    ``descriptions``: one per band, with units (e.g. "speed (m/yr)"). Options:
    ``dtype`` (default float32), ``nodata`` (default NaN for floats, 0 / type
    minimum for integers), ``tags`` (dataset), ``tag_namespaces`` ({ns: tags}),
    ``band_tags`` (one mapping per band), ``units``, ``scales``, ``offsets``,
    ``style`` (``ui/styles/<style>.qml`` sidecar), ``creation`` (GDAL creation
    options overriding the defaults), ``georeferencing`` (extra profile keys such
    as ``gcps`` or ``rpcs``), ``require_valid``: the hint of the error raised when
    no cell of the ``valid_bands`` (default the first band) holds a valid value
    (None = allow an empty output). Write with :meth:`write`; windows must not
    partly overlap.
    """

    def __init__(self, path: str, grid: Grid, descriptions: Sequence[str], *, dtype: str = "float32",
                 nodata=_DEFAULT, tags: Optional[Mapping] = None, tag_namespaces: Optional[Mapping] = None,
                 band_tags: Optional[Sequence[Optional[Mapping]]] = None, units: Optional[Sequence[str]] = None,
                 scales: Optional[Sequence[float]] = None, offsets: Optional[Sequence[float]] = None,
                 style: Optional[str] = None, creation: Optional[Mapping] = None,
                 georeferencing: Optional[Mapping] = None,
                 require_valid: Optional[str] = "", valid_bands: Sequence[int] = (1,), output_set=None):
        self.grid = grid
        self.descriptions = [str(text) for text in descriptions]
        self.count = len(self.descriptions)
        if self.count < 1:
            raise ValueError("A raster output needs at least one band description.")
        self.profile = gtiff_profile(grid, self.count, dtype, nodata, creation)
        self.profile.update(georeferencing or {})
        self.dtype = np.dtype(self.profile["dtype"])
        self.nodata = self.profile["nodata"]
        self.tags = {str(k): str(v) for k, v in (tags or {}).items() if v is not None and k != COMPLETE_TAG}
        self.tag_namespaces = {ns: {str(k): str(v) for k, v in values.items()}
                               for ns, values in (tag_namespaces or {}).items() if values}
        self.band_tags = list(band_tags or [])
        self.units, self.scales, self.offsets = units, scales, offsets
        self.require_valid = require_valid
        self.valid_bands = tuple(valid_bands)
        self.n_valid = 0
        self.checksums: Dict[Tuple[int, Tuple[int, int, int, int]], int] = {}
        self.dataset = None
        compressed = str(self.profile.get("compress", "")).lower() not in ("", "none")
        needed = grid.width * grid.height * self.count * self.dtype.itemsize
        super().__init__(path, verify=None, style=style, needed_bytes=needed, compressed=compressed,
                         output_set=output_set)

    # -- writing

    def __enter__(self) -> "RasterWriter":
        self.open()
        try:
            self.dataset = rasterio.open(self.tmp, "w", **self.profile)
            for index, text in enumerate(self.descriptions, start=1):
                self.dataset.set_band_description(index, text)
            if self.tags:
                self.dataset.update_tags(**self.tags)
            for namespace, values in self.tag_namespaces.items():
                self.dataset.update_tags(ns=namespace, **values)
            for index, values in enumerate(self.band_tags, start=1):
                if values:
                    self.dataset.update_tags(index, **{str(k): str(v) for k, v in values.items()})
            if self.units is not None:
                self.dataset.units = tuple(self.units)
            if self.scales is not None:
                self.dataset.scales = tuple(self.scales)
            if self.offsets is not None:
                self.dataset.offsets = tuple(self.offsets)
        except BaseException as exc:
            self._fail(exc)
        return self

    def write(self, data: np.ndarray, band: Optional[int] = None, window: WindowLike = None) -> None:
        """Write a 2-D ``data`` to ``band`` (1-based; may be omitted for one band) or a 3-D
        (bands, rows, cols) ``data`` to all bands, at ``window`` (None = the whole grid)."""
        data = np.asarray(data)
        if data.ndim == 3:
            if data.shape[0] != self.count or band is not None:
                raise ValueError(f"A 3-D write needs all {self.count} bands; got {data.shape[0]}.")
            for index in range(self.count):
                self.write(data[index], index + 1, window)
            return
        if band is None:
            if self.count != 1:
                raise ValueError("Give the band to write to a multi-band raster.")
            band = 1
        values = np.ascontiguousarray(data, dtype=self.dtype)
        key = _window_key(window, self.grid)
        if values.shape != (key[3], key[2]):
            raise ValueError(f"Data of shape {values.shape} does not fit the window {key}.")
        self.dataset.write(values, band, window=Window(*key))
        self.checksums[(band, key)] = zlib.crc32(values.tobytes())
        if band in self.valid_bands:
            self.n_valid += int(np.count_nonzero(valid_mask_from_nodata(values, self.nodata)))

    def update_tags(self, band: Optional[int] = None, **tags) -> None:
        """More tags while writing (dataset tags, or band tags with ``band``)."""
        tags = {str(k): str(v) for k, v in tags.items() if v is not None}
        if band is None:
            self.tags.update(tags)
            self.dataset.update_tags(**tags)
        else:
            self.dataset.update_tags(band, **tags)

    # -- finishing

    def write_content(self) -> None:
        if self.require_valid is not None and self.n_valid == 0:
            raise EmptyOutputError(
                f"'{self.path}' would have no valid cell: every value of band "
                f"{', '.join(str(b) for b in self.valid_bands)} is nodata. Nothing was written."
                + (f" {self.require_valid}" if self.require_valid else ""))
        self.dataset.update_tags(**{COMPLETE_TAG: "1"})
        dataset, self.dataset = self.dataset, None
        dataset.close()

    def finish(self) -> None:
        if self.finished:
            return
        self.verify = self._verify_written
        super().finish()
        if self.style:
            self._fit_style()

    def _fit_style(self) -> None:
        """Rewrite the sidecar style with its colour range fitted to the written data."""
        try:
            with rasterio.open(self.tmp) as ds:
                text = fitted_style(self.style, ds)
        except READ_ERRORS as exc:
            raise OSError(f"reading the written file to fit its colour range failed: {exc}") from exc
        target = sidecar_paths(self.tmp)[0]
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
        fsync_file(target)

    def close_quietly(self) -> None:
        if self.dataset is not None:
            dataset, self.dataset = self.dataset, None
            try:
                dataset.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass

    def _verify_written(self, tmp: str) -> None:
        try:
            with rasterio.open(tmp) as ds:
                if (ds.count, ds.width, ds.height) != (self.count, self.grid.width, self.grid.height) or \
                        ds.dtypes[0] != self.dtype.name:
                    raise OSError(f"the file reopened as {ds.count} x {ds.width} x {ds.height} {ds.dtypes[0]}, "
                                  f"not {self.count} x {self.grid.width} x {self.grid.height} {self.dtype.name}")
                if ds.tags().get(COMPLETE_TAG) != "1":
                    raise OSError("its metadata did not reach the disk")
                for (band, key), checksum in self.checksums.items():
                    values = ds.read(band, window=Window(*key))
                    if zlib.crc32(np.ascontiguousarray(values, self.dtype).tobytes()) != checksum:
                        raise OSError(f"band {band} at {key} reads back different values")
        except READ_ERRORS as exc:
            raise OSError(f"verification after writing failed: {exc}") from exc


def write_raster(path: str, grid: Grid, bands: Union[np.ndarray, Sequence[np.ndarray],
                                                      Iterable[Tuple[WindowLike, np.ndarray]]],
                 descriptions: Sequence[str], **options) -> str:
    """Write a GeoTIFF in one call (see :class:`RasterWriter` for ``options``).

    ``bands``: a (bands, rows, cols) array, a list of 2-D bands, or an iterator of
    (window, (bands, rows, cols) array) blocks. Returns ``path``.
    """
    with RasterWriter(path, grid, descriptions, **options) as out:
        if isinstance(bands, np.ndarray):
            out.write(bands if bands.ndim == 3 else bands[None])
        elif isinstance(bands, (list, tuple)):
            for index, values in enumerate(bands, start=1):
                out.write(values, index)
        else:
            for window, block in bands:
                out.write(block, window=window)
    return out.path


def is_complete_raster(path: str) -> Optional[str]:
    """Why the GeoTIFF at ``path`` is not a complete output, or None when it is.

    Complete: it opens, carries :data:`COMPLETE_TAG` (written last by :class:`RasterWriter`)
    and the last block of every band reads.
    """
    try:
        with rasterio.open(path) as ds:
            if ds.tags().get(COMPLETE_TAG) != "1":
                return "it has no completion mark (an interrupted or older run wrote it)"
            block_rows, block_cols = ds.block_shapes[0]
            row0 = ((ds.height - 1) // block_rows) * block_rows
            col0 = ((ds.width - 1) // block_cols) * block_cols
            window = Window(col0, row0, ds.width - col0, ds.height - row0)
            for band in range(1, ds.count + 1):
                ds.read(band, window=window)
    except READ_ERRORS as exc:
        return f"it cannot be read ({' '.join(str(exc).split())[:200]})"
    return None
