"""The Processing provider ``surfacemotion``: algorithms and shipped models."""
import glob
import os
import shutil

from qgis.core import QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..algorithms import ALGORITHM_CLASSES
from ..algorithms.base import GROUPS, parameters_problem
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
        QgsApplication.processingRegistry().providerAdded.connect(self._attach_models)
        return True

    def unload(self):
        unregister_settings()
        try:
            QgsApplication.processingRegistry().providerAdded.disconnect(self._attach_models)
        except TypeError:  # never connected
            pass

    def _attach_models(self, provider_id: str) -> None:
        """Once the provider is registered, let the shipped models find their steps: the models
        are read while the provider loads, before the registry knows its algorithms."""
        if provider_id == self.id():
            for algorithm in self.algorithms():
                if isinstance(algorithm, ShippedModel):
                    algorithm.attach_children()

    def loadAlgorithms(self):  # noqa: N802 (QGIS API name)
        for algorithm_class in ALGORITHM_CLASSES:
            self.addAlgorithm(algorithm_class())
        for model in load_shipped_models():
            self.addAlgorithm(model)


#: Toolbox titles of the shipped models, by model name (the name is the stable id part).
MODEL_TITLES = {"planetscopel3bvelocity": "PlanetScope L3B velocity chain (model)",
                "planetscopel1bvelocity": "PlanetScope L1B velocity chain (model)"}


class ShippedModel(QgsProcessingModelAlgorithm):
    """A model file shipped in ``models/``, with a readable title, in the offset-tracking group.

    Differences from the plain model file (opened in the Model Designer): inputs a script omits
    get their default values (QGIS 3.22 passes them to the steps as None); the outputs of
    intermediate steps are optional (skipped by default: written to a temporary folder and not
    loaded), and only the layers of the final step, or of intermediate outputs given a
    destination, are loaded on completion.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.loaded = self.fromFile(path)
        self.setSourceFilePath(path)
        self._make_intermediate_outputs_optional()

    def attach_children(self) -> None:
        """Resolve the steps' algorithms in the registry (see SurfaceMotionProvider._attach_models)."""
        for child_id in self.childAlgorithms():
            self.childAlgorithm(child_id).reattach()
        self.updateDestinationParameters()
        self._make_intermediate_outputs_optional()

    def displayName(self):  # noqa: N802 (QGIS API name)
        return MODEL_TITLES.get(self.name(), self.name())

    def group(self):
        return QCoreApplication.translate("SurfaceMotion", GROUPS["offsettracking"])  # as the algorithms' group

    def groupId(self):  # noqa: N802 (QGIS API name)
        return "offsettracking"

    def createInstance(self):  # noqa: N802 (QGIS API name)
        return ShippedModel(self.path)

    def final_outputs(self) -> set:
        """Destination names (``child:output``) of the steps no other step depends on."""
        return {f"{child_id}:{name}" for child_id, child in self.childAlgorithms().items()
                if not self.dependentChildAlgorithms(child_id) for name in child.modelOutputs()}

    def _make_intermediate_outputs_optional(self) -> None:
        """Intermediate outputs optional and skipped by default; all outputs listed in workflow
        order (QGIS lists them by step id: correlate before pairs)."""
        final = self.final_outputs()
        definitions = []
        for definition in self.destinationParameterDefinitions():
            definition = definition.clone()
            if definition.name() not in final:
                definition.setFlags(definition.flags() | definition.FlagOptional)
                definition.setCreateByDefault(False)
                definition.setDefaultValue(None)
            definitions.append(definition)
            self.removeParameter(definition.name())

        def step(definition) -> int:  # how many steps run before this output's step
            return len(self.dependsOnChildAlgorithms(definition.name().split(":")[0]))

        for definition in sorted(definitions, key=step):
            self.addParameter(definition)  # with its output (removeParameter removed both)

    def with_defaults(self, parameters: dict) -> dict:
        """``parameters`` with every omitted (or None) input set to its default, and every omitted
        output written to a temporary destination."""
        filled = dict(parameters)
        for definition in self.parameterDefinitions():
            if filled.get(definition.name()) is not None:
                continue
            if definition.isDestination():
                filled[definition.name()] = "TEMPORARY_OUTPUT"
            elif definition.defaultValue() is not None:
                filled[definition.name()] = definition.defaultValue()
        return filled

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        """The model's inputs get the plugin's messages (what is allowed) before QGIS's generic ones."""
        filled = self.with_defaults(parameters)
        problem = parameters_problem(self.parameterDefinitions(), filled, context)
        if problem:
            return False, problem
        return super().checkParameterValues(filled, context)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        """Run the model; if it fails, remove what its steps wrote to the model's outputs (files and
        folders that did not exist before the run), so a failed run leaves no half-done set."""
        asked = self.final_outputs() | {definition.name() for definition in self.destinationParameterDefinitions()
                                        if parameters.get(definition.name()) is not None}
        targets = [path for path in self._destination_paths(parameters, context) if not os.path.exists(path)]
        folders = {_first_missing_folder(os.path.dirname(path)) for path in targets} - {None}
        parameters = self.with_defaults(parameters)
        try:
            results = super().processAlgorithm(parameters, context, feedback)
            self._load_only(context, [results[name] for name in asked if isinstance(results.get(name), str)])
            return results
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

    @staticmethod
    def _load_only(context, destinations) -> None:
        """Keep on the load-on-completion list only the layers written to ``destinations``
        (the final outputs and the intermediate outputs the caller gave a destination)."""
        kept = [os.path.abspath(path) for path in destinations]

        def wanted(layer: str) -> bool:
            path = os.path.abspath(layer.split("|")[0])
            return any(path == folder or path.startswith(folder + os.sep) for folder in kept)

        layers = context.layersToLoadOnCompletion()
        context.setLayersToLoadOnCompletion({layer: details for layer, details in layers.items() if wanted(layer)})

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
