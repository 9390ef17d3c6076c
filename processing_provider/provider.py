"""The Processing provider ``surfacemotion``: algorithms and shipped models."""
import glob
import os
import shutil

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

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        """Run the model; if it fails, remove what its steps wrote to the model's outputs (files and
        folders that did not exist before the run), so a failed run leaves no half-done set."""
        targets = [path for path in self._destination_paths(parameters, context) if not os.path.exists(path)]
        folders = {_first_missing_folder(os.path.dirname(path)) for path in targets} - {None}
        try:
            return super().processAlgorithm(parameters, context, feedback)
        except BaseException:
            for path in targets:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                elif os.path.exists(path):
                    os.remove(path)
            for folder in folders:  # folders the run created to hold them, when nothing else is inside
                if os.path.isdir(folder) and all(not files for _, _, files in os.walk(folder)):
                    shutil.rmtree(folder, ignore_errors=True)
            raise

    def _destination_paths(self, parameters, context):
        paths = []
        for definition in self.destinationParameterDefinitions():
            if parameters.get(definition.name()) is None:
                continue
            path = self.parameterAsFileOutput(parameters, definition.name(), context)
            path = (path or "").split("|")[0]
            if path and not path.startswith(("memory:", "ogr:", "postgres:")):
                paths.append(os.path.abspath(path))
        return paths


def _first_missing_folder(folder: str):
    """The outermost folder of ``folder``'s path that does not exist yet, or None."""
    missing = None
    while folder and not os.path.isdir(folder):
        missing, folder = folder, os.path.dirname(folder)
    return missing


def load_shipped_models():
    """Models in ``models/*.model3``, ready to register in the provider."""
    models = [ShippedModel(path) for path in sorted(glob.glob(os.path.join(MODELS_DIR, "*.model3")))]
    return [model for model in models if model.loaded]
