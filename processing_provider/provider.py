"""The Processing provider ``surfacemotion``: algorithms and shipped models."""
import glob
import os

from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..algorithms import ALGORITHM_CLASSES
from .settings import register_settings, unregister_settings

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON_PATH = os.path.join(PLUGIN_DIR, "ui", "icons", "surface_motion.svg")
MODELS_DIR = os.path.join(PLUGIN_DIR, "models")


class SurfaceMotionProvider(QgsProcessingProvider):
    """Provider id ``surfacemotion`` (public API: models and scripts store it)."""

    def id(self):
        return "surfacemotion"

    def name(self):
        return "Surface Motion Toolbox"

    def longName(self):  # noqa: N802 (QGIS API name)
        return "Surface Motion Toolbox (offset tracking and velocity)"

    def icon(self):
        return QIcon(ICON_PATH)

    def svgIconPath(self):  # noqa: N802 (QGIS API name)
        return ICON_PATH

    def load(self):
        register_settings(self.name(), self.icon())
        self.refreshAlgorithms()
        return True

    def unload(self):
        unregister_settings()

    def loadAlgorithms(self):  # noqa: N802 (QGIS API name)
        for algorithm_class in ALGORITHM_CLASSES:
            self.addAlgorithm(algorithm_class())
        for model in load_shipped_models():
            self.addAlgorithm(model)


#: Toolbox titles of the shipped models, by model name (the name is the stable id part).
MODEL_TITLES = {"planetscopel3bvelocity": "PlanetScope L3B velocity chain (model)"}


class ShippedModel(QgsProcessingModelAlgorithm):
    """A model file shipped in ``models/``, with a readable title in the Toolbox."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.loaded = self.fromFile(path)
        self.setSourceFilePath(path)

    def displayName(self):  # noqa: N802 (QGIS API name)
        return MODEL_TITLES.get(self.name(), self.name())

    def createInstance(self):  # noqa: N802 (QGIS API name)
        return ShippedModel(self.path)


def load_shipped_models():
    """Models in ``models/*.model3``, ready to register in the provider."""
    models = [ShippedModel(path) for path in sorted(glob.glob(os.path.join(MODELS_DIR, "*.model3")))]
    return [model for model in models if model.loaded]
