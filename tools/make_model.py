"""Build models/planetscope_l3b_velocity.model3 with the QGIS model API (run with /usr/bin/python3).

The model is committed; this script documents and reproduces it:
extractband, buildpairs, correlatepairs, polyfit, velocity. Every input of a step that the model
does not connect is given the algorithm's default, so the Model Designer validates the model;
tests/test_model.py checks those values still equal the algorithms' defaults.
"""
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_PATH = os.path.join(REPO, "models", "planetscope_l3b_velocity.model3")


#: The model's inputs in workflow order (scenes first), as the dialog and the designer list them.
INPUT_ORDER = ["SCENES", "USE_UDM2", "BAND", "DT_MIN", "CHIP_SIZE", "SEARCH_RANGE", "STEP", "MOVING_AREA",
               "ORDER", "DEM"]

#: Designer layout: (row of the step the input feeds, column) of every input.
INPUT_ROWS = {"SCENES": (0, 0), "USE_UDM2": (0, 1), "BAND": (0, 2), "DT_MIN": (1, 2), "CHIP_SIZE": (2, 0),
              "SEARCH_RANGE": (2, 1), "STEP": (2, 2), "MOVING_AREA": (3, 0), "ORDER": (3, 1), "DEM": (3, 2)}


def row_y(row: int) -> float:
    """Vertical position of the designer row of step ``row`` (0 = extract band ... 4 = velocity)."""
    return 80.0 + 130.0 * row


HELP = {
    "ALG_DESC": "PlanetScope L3B offset-tracking chain, in five steps: extract the tracked band of every "
                "scene (optionally masked with its UDM2), pair the scenes older to newer at least the "
                "minimum time separation apart, correlate every pair, remove the ramp with a polynomial "
                "fitted on stable ground, and convert the offsets to velocity. Output: one velocity "
                "GeoTIFF per pair (band 1 speed m/yr, band 2 flow azimuth in degrees clockwise from "
                "north, bands 3-4 east and north velocity m/yr), loaded as one layer group. The pair "
                "table and the raw and de-ramped disparity maps are optional outputs, loaded only when "
                "you give them a destination. Every other setting of the steps is the algorithm's "
                "default; open the model in the Model Designer to change them (README, 'The shipped model').",
    "SCENES": "PlanetScope L3B (4-band surface reflectance) scenes, one file per date; the date is read "
              "from the file name (YYYYMMDD).",
    "USE_UDM2": "Mask cloud, haze and shadow with each scene's UDM2 file (found next to the scene).",
    "BAND": "Band tracked (1-based; 2 = green, the band with the best texture on most ground).",
    "DT_MIN": "Pairs closer in time than this many days are not correlated.",
    "CHIP_SIZE": "Side of the square template matched between the scenes, in pixels.",
    "SEARCH_RANGE": "Largest offset searched, in pixels in every direction.",
    "STEP": "Spacing of the output grid, in pixels of the scenes.",
    "MOVING_AREA": "Polygons of the moving ground, left out of the ramp fit and the median shift.",
    "ORDER": "Order of the polynomial ramp removed from every disparity map.",
    "DEM": "Elevation used as an extra term of the ramp fit (removes offsets that follow the terrain).",
    "ALG_CREATOR": "Surface Motion Toolbox",
}


def build_model():
    from qgis.core import (QgsApplication, QgsProcessing, QgsProcessingModelAlgorithm,
                           QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource,
                           QgsProcessingModelOutput, QgsProcessingModelParameter, QgsProcessingParameterBoolean,
                           QgsProcessingParameterEnum, QgsProcessingParameterFeatureSource,
                           QgsProcessingParameterMultipleLayers, QgsProcessingParameterNumber,
                           QgsProcessingParameterRasterLayer)
    from qgis.PyQt.QtCore import QPointF

    from surface_motion.algorithms.base import GROUPS

    model = QgsProcessingModelAlgorithm("planetscopel3bvelocity", GROUPS["offsettracking"], "offsettracking")
    model.setHelpContent(HELP)

    def add_input(definition):
        """An input drawn on the row of the step it feeds (see INPUT_ROWS), left of the step."""
        row, column = INPUT_ROWS[definition.name()]
        parameter = QgsProcessingModelParameter(definition.name())
        parameter.setPosition(QPointF(120 + 230 * column, row_y(row)))
        model.addModelParameter(definition, parameter)

    inputs = {
        "SCENES": QgsProcessingParameterMultipleLayers("SCENES", "PlanetScope L3B scenes (4-band)",
                                                       QgsProcessing.TypeRaster),
        "USE_UDM2": QgsProcessingParameterBoolean("USE_UDM2", "Mask with UDM2 (clear or snow)", False),
        "BAND": QgsProcessingParameterNumber("BAND", "Band to track (2 = green)",
                                             QgsProcessingParameterNumber.Integer, 2, minValue=1, maxValue=4),
        "DT_MIN": QgsProcessingParameterNumber("DT_MIN", "Minimum time separation (days)",
                                               QgsProcessingParameterNumber.Double, 180.0, minValue=0.0,
                                               maxValue=36525.0),
        "CHIP_SIZE": QgsProcessingParameterNumber("CHIP_SIZE", "Chip size (px)",
                                                  QgsProcessingParameterNumber.Integer, 32, minValue=8,
                                                  maxValue=512),
        "SEARCH_RANGE": QgsProcessingParameterNumber("SEARCH_RANGE", "Search range (px)",
                                                     QgsProcessingParameterNumber.Integer, 8, minValue=1,
                                                     maxValue=1000),
        "STEP": QgsProcessingParameterNumber("STEP", "Output grid spacing (px)",
                                             QgsProcessingParameterNumber.Integer, 4, minValue=1,
                                             maxValue=1000),
        "MOVING_AREA": QgsProcessingParameterFeatureSource(
            "MOVING_AREA", "Moving area (left out of the ramp fit and median)",
            [QgsProcessing.TypeVectorPolygon], optional=True),
        "ORDER": QgsProcessingParameterEnum(
            "ORDER", "Ramp polynomial order",
            ["1: plane (3 terms)", "2: quadratic (6 terms)", "3: cubic (10 terms)"], defaultValue=1),
        "DEM": QgsProcessingParameterRasterLayer("DEM", "DEM for the ramp fit", optional=True),
    }
    for name in INPUT_ORDER:
        add_input(inputs[name])
    model.setParameterOrder(INPUT_ORDER)

    def model_input(name):
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    def child_output(child_id, output):
        return [QgsProcessingModelChildParameterSource.fromChildOutput(child_id, output)]

    def static(value):
        return [QgsProcessingModelChildParameterSource.fromStaticValue(value)]

    def add_child(child_id, algorithm_id, description, sources, row, outputs=None):
        """A step with ``sources``; every other input of the step gets the algorithm's default as a
        static value, so the designer validates it (QGIS needs a value for each mandatory input)."""
        algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        child.setDescription(description)
        child.setPosition(QPointF(900, row_y(row)))
        for name, source in sources.items():
            child.addParameterSources(name, source)
        for definition in algorithm.parameterDefinitions():
            if definition.isDestination() or definition.name() in sources:
                continue
            if definition.defaultValue() is not None:
                child.addParameterSources(definition.name(), static(definition.defaultValue()))
            elif not definition.flags() & definition.FlagOptional:
                raise SystemExit(f"{algorithm_id}: {definition.name()} has no default; connect it in the model")
        model_outputs = {}
        for output_name, (model_output_name, description_text, final) in (outputs or {}).items():
            output = QgsProcessingModelOutput(model_output_name, description_text)
            output.setChildId(child_id)
            output.setChildOutputName(output_name)
            output.setMandatory(final)
            output.setDefaultValue("TEMPORARY_OUTPUT")
            output.setPosition(QPointF(1160, row_y(row) + 40))
            model_outputs[model_output_name] = output
        child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)
        return child_id

    add_child("extract", "surfacemotion:extractband", "Extract band",
              {"INPUT": model_input("SCENES"), "BAND": model_input("BAND"), "USE_UDM2": model_input("USE_UDM2"),
               "KEEP_SNOW": static(True)}, 0)
    add_child("pairs", "surfacemotion:buildpairs", "Build pairs",
              {"INPUTS": child_output("extract", "OUTPUT_LAYERS"), "DT_MIN": model_input("DT_MIN"),
               "MODE": static(0)}, 1,
              {"OUTPUT_CSV": ("PAIRS_CSV", "Pair table CSV", False)})
    add_child("correlate", "surfacemotion:correlatepairs", "Correlate pairs",
              {"PAIRS": child_output("pairs", "OUTPUT"), "CHIP_SIZE": model_input("CHIP_SIZE"),
               "SEARCH_RANGE": model_input("SEARCH_RANGE"), "STEP": model_input("STEP")}, 2,
              {"OUTPUT_FOLDER": ("DISPARITY_FOLDER", "Disparity maps", False)})
    add_child("polyfit", "surfacemotion:polyfit", "Remove ramp",
              {"INPUT": child_output("correlate", "OUTPUT_LAYERS"), "ORDER": model_input("ORDER"),
               "MASK": model_input("MOVING_AREA"), "DEM": model_input("DEM")}, 3,
              {"OUTPUT_FOLDER": ("DERAMPED_FOLDER", "De-ramped disparity maps", False)})
    add_child("velocity", "surfacemotion:velocity", "Velocity",
              {"INPUT": child_output("polyfit", "OUTPUT_LAYERS"), "MASK": model_input("MOVING_AREA"),
               "MEDIAN_SHIFT": static(True)}, 4,
              {"OUTPUT_FOLDER": ("VELOCITY_FOLDER", "Velocity maps", True)})
    model.updateDestinationParameters()
    return model


def main() -> int:
    from qgis.core import QgsApplication

    sys.path.insert(0, os.path.join(REPO, "tests"))
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    parent = tempfile.mkdtemp()
    os.symlink(REPO, os.path.join(parent, "surface_motion"))
    sys.path.insert(0, parent)
    from surface_motion.processing_provider.provider import SurfaceMotionProvider

    provider = SurfaceMotionProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    model = build_model()
    ok = model.toFile(MODEL_PATH)
    print("wrote", MODEL_PATH, ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
