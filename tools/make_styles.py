"""Regenerate the QML styles in ui/styles with the QGIS API (run with /usr/bin/python3).

The styles are committed; this script documents how they were made. The ranges below are the
shipped ones: when an output is written, core/io/styles.py fits the range of the styles it lists in
DATA_RANGES to the data (2nd-98th percentile, symmetric around 0 for signed quantities) and keeps
these only for cyclic values, classes and constant or empty bands.
"""
import os
import sys

from qgis.core import (QgsApplication, QgsColorRampShader, QgsGradientColorRamp, QgsGradientStop,
                       QgsRasterLayer, QgsRasterShader, QgsSingleBandPseudoColorRenderer, QgsStyle)
from qgis.PyQt.QtGui import QColor
import numpy as np
from rasterio.transform import from_origin

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from core.io import STYLES_DIR as STYLES, Grid, write_raster  # noqa: E402


def cyclic_ramp() -> QgsGradientColorRamp:
    """Hue wheel that starts and ends with the same colour (azimuth 0 = 360)."""
    colours = ["#d7191c", "#fdae61", "#ffffbf", "#1a9641", "#2b83ba", "#7b3294", "#d7191c"]
    stops = [QgsGradientStop(i / (len(colours) - 1), QColor(c)) for i, c in enumerate(colours[1:-1], 1)]
    return QgsGradientColorRamp(QColor(colours[0]), QColor(colours[-1]), False, stops)


def named_ramp(name: str, invert: bool = False):
    ramp = QgsStyle.defaultStyle().colorRamp(name)
    if invert:
        ramp.invert()
    return ramp


def pseudocolor(layer, band: int, ramp, minimum: float, maximum: float):
    shader_fn = QgsColorRampShader(minimum, maximum, ramp)
    shader_fn.setColorRampType(QgsColorRampShader.Interpolated)
    items = []
    for k in range(11):
        value = minimum + (maximum - minimum) * k / 10.0
        items.append(QgsColorRampShader.ColorRampItem(value, ramp.color(k / 10.0), f"{value:g}"))
    shader_fn.setColorRampItemList(items)
    shader = QgsRasterShader(minimum, maximum)
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(maximum)
    layer.setRenderer(renderer)


def main(tmp_dir: str) -> None:
    path = os.path.join(tmp_dir, "template.tif")
    write_raster(path, Grid("EPSG:32618", from_origin(0, 4, 1, 1), 4, 4), np.zeros((13, 4, 4), "float32"),
                 [f"band {band}" for band in range(1, 14)])
    specs = {
        "disparity_dx": (1, named_ramp("RdBu", invert=True), -3.0, 3.0),
        "disparity_dy": (2, named_ramp("RdBu", invert=True), -3.0, 3.0),
        "velocity_speed": (1, named_ramp("Viridis"), 0.0, 10.0),
        "velocity_azimuth": (2, cyclic_ramp(), 0.0, 360.0),
        # ITS_LIVE analyses (surfacemotion:strainrates bands 4/7/9, fluxdivergence band 1, cube speed)
        "strain_effective": (7, named_ramp("Magma"), 0.0, 0.2),
        "strain_longitudinal": (9, named_ramp("RdBu", invert=True), -0.1, 0.1),
        "strain_e1": (4, named_ramp("RdBu", invert=True), -0.1, 0.1),
        "flux_divergence": (1, named_ramp("RdBu", invert=True), -20.0, 20.0),
        "itslive_speed": (1, named_ramp("Viridis"), 0.0, 1000.0),
        "itslive_component": (1, named_ramp("RdBu", invert=True), -1000.0, 1000.0),
        # Sentinel-1 time series and timescans (algorithms/sentinel1.py)
        "s1_backscatter_db": (1, named_ramp("Greys", invert=True), -25.0, 0.0),
        "s1_backscatter_linear": (1, named_ramp("Greys", invert=True), 0.0, 0.3),
        "s1_std": (1, named_ramp("Viridis"), 0.0, 0.1),
        "s1_std_db": (1, named_ramp("Viridis"), 0.0, 5.0),
        "s1_cov": (1, named_ramp("Viridis"), 0.0, 1.0),
        "s1_pdiff": (1, named_ramp("Magma"), 0.0, 15.0),
        "s1_count": (1, named_ramp("Viridis"), 0.0, 100.0),
        "s1_amplitude": (1, named_ramp("Magma"), 0.0, 4.0),
        "s1_phase": (1, cyclic_ramp(), -3.14159, 3.14159),
        "s1_trend": (1, named_ramp("RdBu"), -2.0, 2.0),
        "s1_residuals": (1, named_ramp("Viridis"), 0.0, 3.0),
        "s1_lsmask": (1, named_ramp("Reds"), 0.0, 2.0),
        # DEM co-registration (surfacemotion:coregisterdem): dh = DEM - reference, red lower, blue higher
        "dem_dh": (1, named_ramp("RdBu"), -10.0, 10.0),
    }
    for name, (band, ramp, minimum, maximum) in specs.items():
        layer = QgsRasterLayer(path, name)
        pseudocolor(layer, band, ramp, minimum, maximum)
        message, ok = layer.saveNamedStyle(os.path.join(STYLES, name + ".qml"))
        print(name, ok, message)
    track_styles()


def track_styles() -> None:
    """surfacemotion:trackparticles: dark red track lines; vertices coloured by speed (m/yr)."""
    from qgis.core import (QgsGraduatedSymbolRenderer, QgsLineSymbol, QgsMarkerSymbol, QgsRendererRange,
                           QgsSingleSymbolRenderer, QgsVectorLayer)

    lines = QgsVectorLayer("LineString?crs=EPSG:3413&field=track_id:integer", "tracks", "memory")
    lines.setRenderer(QgsSingleSymbolRenderer(QgsLineSymbol.createSimple(
        {"line_color": "#b2182b", "line_width": "0.6"})))
    print("tracks_lines", lines.saveNamedStyle(os.path.join(STYLES, "tracks_lines.qml")))
    points = QgsVectorLayer("Point?crs=EPSG:3413&field=speed:double", "vertices", "memory")
    ramp = named_ramp("Viridis")
    ranges = []
    bounds = [0, 100, 200, 400, 700, 1000, 1e9]
    for k in range(len(bounds) - 1):
        symbol = QgsMarkerSymbol.createSimple({"name": "circle", "size": "1.4", "outline_style": "no"})
        symbol.setColor(ramp.color(k / (len(bounds) - 2)))
        label = f"{bounds[k]:g}-{bounds[k + 1]:g} m/yr" if bounds[k + 1] < 1e9 else f"> {bounds[k]:g} m/yr"
        ranges.append(QgsRendererRange(bounds[k], bounds[k + 1], symbol, label))
    points.setRenderer(QgsGraduatedSymbolRenderer("speed", ranges))
    print("tracks_points", points.saveNamedStyle(os.path.join(STYLES, "tracks_points.qml")))
    from qgis.core import QgsFillSymbol

    footprints = QgsVectorLayer("MultiPolygon?crs=EPSG:4326&field=name:string", "cubes", "memory")
    footprints.setRenderer(QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(
        {"color": "0,0,0,0", "outline_color": "#2166ac", "outline_width": "0.6"})))
    print("itslive_cubes", footprints.saveNamedStyle(os.path.join(STYLES, "itslive_cubes.qml")))


if __name__ == "__main__":
    import tempfile

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    with tempfile.TemporaryDirectory() as tmp:
        main(tmp)
    app.exitQgis()
    sys.exit(0)
