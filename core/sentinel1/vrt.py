"""Band-per-file VRTs (one single-band GeoTIFF per VRT band) written as plain XML."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence
from xml.sax.saxutils import escape

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


def write_band_vrt(path: str, bands: Sequence[VrtBand], width: int, height: int, crs_wkt: str,
                   transform, relative_to: Optional[str] = None) -> str:
    """Write a VRT whose band k is band 1 of ``bands[k].source`` (paths relative to the VRT
    location ``relative_to``, default ``path``)."""
    base = os.path.dirname(os.path.abspath(relative_to or path))
    geo = ", ".join(repr(float(v)) for v in transform.to_gdal())
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(crs_wkt)}</SRS>", f"  <GeoTransform>{geo}</GeoTransform>"]
    for index, band in enumerate(bands, start=1):
        gdal_type = GDAL_TYPES[band.dtype]
        source = os.path.relpath(os.path.abspath(band.source), base)
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
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path
