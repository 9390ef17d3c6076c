"""Band-per-file VRTs (one single-band GeoTIFF per VRT band), written as plain XML.

A VRT references the other outputs of its run by their final names, so it is
added LAST to the run's :class:`core.io.OutputSet`: it is renamed into place
after the files it points to.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence
from xml.sax.saxutils import escape

from ..io import Grid, OutputSet, verify

GDAL_TYPES = {"float32": "Float32", "uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float64": "Float64"}


@dataclasses.dataclass(frozen=True)
class VrtBand:
    """One VRT band: band 1 of ``source`` with its description, type and scaling."""
    source: str
    description: str
    dtype: str = "float32"
    nodata: Optional[float] = float("nan")
    scale: float = 1.0
    offset: float = 0.0


def band_vrt_xml(bands: Sequence[VrtBand], grid: Grid, folder: str) -> str:
    """The XML of a VRT on ``grid`` whose band k is band 1 of ``bands[k].source``
    (source paths relative to ``folder``, the VRT's folder)."""
    width, height = grid.width, grid.height
    geo = ", ".join(repr(float(v)) for v in grid.transform.to_gdal())
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(grid.crs.to_wkt())}</SRS>", f"  <GeoTransform>{geo}</GeoTransform>"]
    for index, band in enumerate(bands, start=1):
        gdal_type = GDAL_TYPES[band.dtype]
        source = os.path.relpath(os.path.abspath(band.source), os.path.abspath(folder))
        lines.append(f'  <VRTRasterBand dataType="{gdal_type}" band="{index}">')
        lines.append(f"    <Description>{escape(band.description)}</Description>")
        if band.nodata is not None:
            nodata = "nan" if band.nodata != band.nodata else repr(float(band.nodata))
            lines.append(f"    <NoDataValue>{nodata}</NoDataValue>")
        if band.scale != 1.0 or band.offset != 0.0:
            lines.append(f"    <Offset>{band.offset!r}</Offset>")
            lines.append(f"    <Scale>{band.scale!r}</Scale>")
        lines.append("    <SimpleSource>")
        lines.append(f'      <SourceFilename relativeToVRT="1">{escape(source)}</SourceFilename>')
        lines.append("      <SourceBand>1</SourceBand>")
        lines.append(f'      <SourceProperties RasterXSize="{width}" RasterYSize="{height}" DataType="{gdal_type}"/>')
        lines.append(f'      <SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>')
        lines.append(f'      <DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>')
        lines.append("    </SimpleSource>")
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def add_band_vrt(outputs: OutputSet, path: str, bands: Sequence[VrtBand], grid: Grid,
                 style: Optional[str] = None) -> str:
    """Add the VRT ``path`` of ``bands`` to ``outputs`` (after its sources), verified to open
    with one band per source, with the sidecar ``style``; returns ``path``."""
    return outputs.text(path, band_vrt_xml(bands, grid, os.path.dirname(os.path.abspath(path))),
                        verify=verify.vrt_readable(len(bands)), style=style)
