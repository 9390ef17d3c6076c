"""Resampling rasters onto a target grid: the one way the core warps.

:class:`GridResampler` reads windows of any raster (any CRS, pixel size,
extent) resampled onto one :class:`core.io.Grid` through GDAL's warper
(``WarpedVRT``), so memory follows the window, not the source. Values come back
as floats with the source nodata, NaN and everything outside the source as NaN;
GDAL scale/offset are applied (physical = DN x scale + offset).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..choices import Choices
from ..errors import UserInputError
from .grid import Grid
from .read import READ_ERRORS, RasterReader, open_raster, read_failure

RESAMPLING = Choices(("nearest", "Nearest neighbour"), ("bilinear", "Bilinear"), ("cubic", "Cubic"),
                     ("average", "Average"))
#: ``src_nodata`` default: the source's own nodata (NaN for float bands that declare none).
SOURCE_NODATA = "source"


def _source_nodata(ds, band: int, src_nodata):
    if src_nodata is not SOURCE_NODATA:
        return src_nodata
    nodata = ds.nodatavals[band - 1]
    if nodata is None and np.issubdtype(np.dtype(ds.dtypes[band - 1]), np.floating):
        return float("nan")
    return nodata


class GridResampler:
    """Windows of rasters resampled onto ``grid``; use as a context manager (it keeps the
    sources open between reads).

    ``read(path, band, window)`` returns float32 (or ``dtype``) values on
    ``window`` of the grid (None = the whole grid). ``resampling`` is one of
    :data:`RESAMPLING`; ``src_nodata`` overrides the source's nodata (e.g. 0 for
    integer backscatter DN that declare none; None = no nodata at all).
    """

    def __init__(self, grid: Grid, resampling: str = "bilinear"):
        if grid.crs is None:
            raise UserInputError("The target grid has no coordinate reference system; cannot resample onto it.")
        self.grid = grid
        self.resampling = RESAMPLING.check(resampling, "resampling method")
        self._sources: Dict[str, RasterReader] = {}
        self._vrts: Dict[Tuple[str, str, object], WarpedVRT] = {}

    def __enter__(self) -> "GridResampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for vrt in self._vrts.values():
            vrt.close()
        for reader in self._sources.values():
            reader.close()
        self._vrts.clear()
        self._sources.clear()

    def source(self, path: str) -> RasterReader:
        """The open source raster ``path`` (opened once)."""
        if path not in self._sources:
            reader = open_raster(path)
            if reader.crs is None:
                reader.close()
                raise UserInputError(f"'{path}' has no coordinate reference system; assign one first.")
            self._sources[path] = reader
        return self._sources[path]

    def read(self, path: str, band: int = 1, window: Optional[Window] = None, resampling: Optional[str] = None,
             src_nodata=SOURCE_NODATA, dtype=np.float32) -> np.ndarray:
        """Band ``band`` of ``path`` on ``window`` of the grid; NaN = no data."""
        reader = self.source(path)
        if not 1 <= band <= reader.count:
            raise UserInputError(f"'{path}' has {reader.count} band(s); band {band} does not exist.")
        method = RESAMPLING.check(resampling or self.resampling, "resampling method")
        nodata = _source_nodata(reader, band, src_nodata)
        key = (path, method, "nan" if isinstance(nodata, float) and np.isnan(nodata) else nodata)
        if key not in self._vrts:
            try:
                self._vrts[key] = WarpedVRT(
                    reader.dataset, crs=self.grid.crs, transform=self.grid.transform, width=self.grid.width,
                    height=self.grid.height, resampling=Resampling[method], src_nodata=nodata, nodata=np.nan,
                    dtype="float64" if np.dtype(dtype) == np.float64 else "float32")
            except READ_ERRORS as exc:
                raise UserInputError(
                    f"Cannot resample '{path}' ({reader.crs.to_string()}) onto the grid in "
                    f"{self.grid.crs.to_string()}: {' '.join(str(exc).split())[:300]}. Reproject it first.") from exc
        vrt = self._vrts[key]
        try:
            values = vrt.read(band, window=window).astype(dtype, copy=False)
        except READ_ERRORS as exc:
            raise read_failure(path, exc, None, band) from exc
        scale = reader.scales[band - 1] if reader.scales[band - 1] not in (None, 0) else 1.0
        offset = reader.offsets[band - 1] or 0.0
        if scale != 1.0 or offset != 0.0:
            values = values * np.asarray(scale, dtype) + np.asarray(offset, dtype)
        return values

    def read_rows(self, path: str, start: int, stop: int, band: int = 1, **options) -> np.ndarray:
        """Rows [start, stop) of the grid (see :meth:`read`)."""
        return self.read(path, band, self.grid.rows(start, stop), **options)


def resample_to_grid(path: str, grid: Grid, band: int = 1, resampling: str = "bilinear",
                     src_nodata=SOURCE_NODATA, dtype=np.float64) -> np.ndarray:
    """Band ``band`` of ``path`` resampled onto the whole ``grid`` (NaN = no data)."""
    with GridResampler(grid, resampling) as resampler:
        return resampler.read(path, band, src_nodata=src_nodata, dtype=dtype)
