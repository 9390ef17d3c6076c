"""Regenerate the QML styles in ui/styles with the QGIS API (run with /usr/bin/python3).

The styles are committed; this script documents how they were made.
"""
import os
import sys

from qgis.core import (QgsApplication, QgsColorRampShader, QgsGradientColorRamp, QgsGradientStop,
                       QgsRasterLayer, QgsRasterShader, QgsSingleBandPseudoColorRenderer, QgsStyle)
from qgis.PyQt.QtGui import QColor
import numpy as np
import rasterio
from rasterio.transform import from_origin

STYLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ui", "styles")


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
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=4, dtype="float32",
                       crs="EPSG:32618", transform=from_origin(0, 4, 1, 1), nodata=float("nan")) as ds:
        ds.write(np.zeros((4, 4, 4), "float32"))
    specs = {
        "disparity_dx": (1, named_ramp("RdBu", invert=True), -3.0, 3.0),
        "disparity_dy": (2, named_ramp("RdBu", invert=True), -3.0, 3.0),
        "velocity_speed": (1, named_ramp("Viridis"), 0.0, 10.0),
        "velocity_azimuth": (2, cyclic_ramp(), 0.0, 360.0),
    }
    for name, (band, ramp, minimum, maximum) in specs.items():
        layer = QgsRasterLayer(path, name)
        pseudocolor(layer, band, ramp, minimum, maximum)
        message, ok = layer.saveNamedStyle(os.path.join(STYLES, name + ".qml"))
        print(name, ok, message)


if __name__ == "__main__":
    import tempfile

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    with tempfile.TemporaryDirectory() as tmp:
        main(tmp)
    app.exitQgis()
    sys.exit(0)
