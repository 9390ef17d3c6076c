"""Build the shipped models in models/ with the QGIS model API (run with /usr/bin/python3).

The models are committed; this script documents and reproduces them:

- ``planetscope_l3b_velocity.model3``: extractband, buildpairs, correlatepairs, polyfit, velocity;
- ``planetscope_l1b_velocity.model3``: extractband, orthorectify, buildpairs, correlatepairs,
  polyfit (order 2 with the DEM term, the tutorial's default), velocity.

Every input of a step that a model does not connect is given the algorithm's default, so the
Model Designer validates the model; tests/test_model*.py check those values still equal the
algorithms' defaults.
"""
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_PATH = os.path.join(REPO, "models", "planetscope_l3b_velocity.model3")
L1B_MODEL_PATH = os.path.join(REPO, "models", "planetscope_l1b_velocity.model3")


#: The L3B model's inputs in workflow order (scenes first), as the dialog and the designer list them.
INPUT_ORDER = ["SCENES", "USE_UDM2", "BAND", "DT_MIN", "CHIP_SIZE", "SEARCH_RANGE", "STEP", "MOVING_AREA",
               "ORDER", "DEM"]

#: Designer layout: (row of the step the input feeds, column) of every input.
INPUT_ROWS = {"SCENES": (0, 0), "USE_UDM2": (0, 1), "BAND": (0, 2), "DT_MIN": (1, 2), "CHIP_SIZE": (2, 0),
              "SEARCH_RANGE": (2, 1), "STEP": (2, 2), "MOVING_AREA": (3, 0), "ORDER": (3, 1), "DEM": (3, 2)}

#: The L1B model's inputs in workflow order; the DEM feeds both the orthorectification and the ramp fit.
L1B_INPUT_ORDER = ["SCENES", "USE_UDM2", "BAND", "DEM", "VERTICAL_DATUM", "AOI", "RESOLUTION", "DT_MIN",
                   "CHIP_SIZE", "SEARCH_RANGE", "STEP", "MOVING_AREA", "ORDER"]
L1B_INPUT_ROWS = {"SCENES": (0, 0), "USE_UDM2": (0, 1), "BAND": (0, 2), "DEM": (1, 0), "VERTICAL_DATUM": (1, 1),
                  "AOI": (1, 2), "RESOLUTION": (2, 0), "DT_MIN": (2, 2), "CHIP_SIZE": (3, 0),
                  "SEARCH_RANGE": (3, 1), "STEP": (3, 2), "MOVING_AREA": (4, 0), "ORDER": (4, 1)}


def row_y(row: int) -> float:
    """Vertical position of the designer row of step ``row`` (0 = extract band ... last = velocity)."""
    return 80.0 + 130.0 * row


_STEP_HELP = {
    "DT_MIN": "Pairs closer in time than this many days are not correlated.",
    "CHIP_SIZE": "Side of the square template matched between the scenes, in pixels.",
    "SEARCH_RANGE": "Largest offset searched, in pixels in every direction.",
    "STEP": "Spacing of the output grid, in pixels of the scenes.",
    "MOVING_AREA": "Polygons of the moving ground, left out of the ramp fit and the median shift.",
    "ORDER": "Order of the polynomial ramp removed from every disparity map.",
    "ALG_CREATOR": "Surface Motion Toolbox",
}

HELP = dict(_STEP_HELP, **{
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
    "DEM": "Elevation used as an extra term of the ramp fit (removes offsets that follow the terrain).",
})

L1B_HELP = dict(_STEP_HELP, **{
    "ALG_DESC": "PlanetScope L1B offset-tracking chain, in six steps: extract the tracked band of every "
                "unrectified scene (its RPCs are kept), orthorectify every band onto your DEM on one "
                "identical grid (vertical datum handled: RPC heights are ellipsoidal), pair the orthoimages "
                "older to newer at least the minimum time separation apart, correlate every pair, remove a "
                "polynomial ramp with the DEM term (order 2 + DEM by default: it absorbs the offsets that "
                "follow the terrain) and convert the offsets to velocity. Output: one velocity GeoTIFF per "
                "pair (band 1 speed m/yr, band 2 flow azimuth in degrees clockwise from north, bands 3-4 "
                "east and north velocity m/yr), loaded as one layer group. The orthoimages, the pair table "
                "and the disparity maps are optional outputs, loaded only when you give them a destination. "
                "Every other setting of the steps is the algorithm's default; open the model in the Model "
                "Designer to change them (README, 'The shipped L1B model').",
    "SCENES": "PlanetScope L1B basic analytic scenes (unrectified, with RPCs in the file, an _RPC.TXT or "
              "the XML metadata next to it), one file per date; the date is read from the file name.",
    "USE_UDM2": "Mask cloud, haze and shadow with each scene's L1B UDM2 file (found next to the scene).",
    "BAND": "Band tracked (1-based; 2 = green).",
    "DEM": "DEM the scenes are orthorectified onto, also the extra term of the ramp fit. The closer it is "
           "to the surface at acquisition time, the smaller the orthorectification error.",
    "VERTICAL_DATUM": "Height reference of the DEM: from its CRS, the WGS 84 ellipsoid, EGM96 or EGM2008 "
                      "(Copernicus DEM; needs the PROJ grid us_nga_egm08_25.tif).",
    "AOI": "Area of interest: every scene is cut to it (all its vertices are projected into the raw scene "
           "through the RPCs) and the common grid covers it. Empty: the scenes' footprints.",
    "RESOLUTION": "Pixel size of the orthoimages, in metres.",
})


class ModelBuilder:
    """Adds inputs and steps to a model; positions follow the rows of the steps."""

    def __init__(self, name: str, help_content: dict, input_rows: dict):
        from qgis.core import QgsProcessingModelAlgorithm

        from surface_motion.algorithms.base import GROUPS

        self.model = QgsProcessingModelAlgorithm(name, GROUPS["offsettracking"], "offsettracking")
        self.model.setHelpContent(help_content)
        self.input_rows = input_rows

    def add_inputs(self, definitions: dict, order: list) -> None:
        """The inputs, each drawn on the row of the step it feeds (see the INPUT_ROWS), left of it."""
        from qgis.core import QgsProcessingModelParameter
        from qgis.PyQt.QtCore import QPointF

        for name in order:
            row, column = self.input_rows[name]
            parameter = QgsProcessingModelParameter(name)
            parameter.setPosition(QPointF(120 + 230 * column, row_y(row)))
            self.model.addModelParameter(definitions[name], parameter)
        self.model.setParameterOrder(order)

    @staticmethod
    def model_input(name):
        from qgis.core import QgsProcessingModelChildParameterSource

        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    @staticmethod
    def child_output(child_id, output):
        from qgis.core import QgsProcessingModelChildParameterSource

        return [QgsProcessingModelChildParameterSource.fromChildOutput(child_id, output)]

    @staticmethod
    def static(value):
        from qgis.core import QgsProcessingModelChildParameterSource

        return [QgsProcessingModelChildParameterSource.fromStaticValue(value)]

    def add_child(self, child_id, algorithm_id, description, sources, row, outputs=None):
        """A step with ``sources``; every other input of the step gets the algorithm's default as a
        static value, so the designer validates it (QGIS needs a value for each mandatory input)."""
        from qgis.core import QgsApplication, QgsProcessingModelChildAlgorithm, QgsProcessingModelOutput
        from qgis.PyQt.QtCore import QPointF

        algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
        if algorithm is None:
            raise SystemExit(f"{algorithm_id} is not registered")
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
                child.addParameterSources(definition.name(), self.static(definition.defaultValue()))
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
        self.model.addChildAlgorithm(child)
        return child_id

    def finish(self):
        self.model.updateDestinationParameters()
        return self.model


def tracking_inputs(first_row: int) -> dict:
    """The inputs shared by both models (pairs, correlation, ramp), for steps from ``first_row`` on."""
    from qgis.core import (QgsProcessing, QgsProcessingParameterBoolean, QgsProcessingParameterEnum,
                           QgsProcessingParameterFeatureSource, QgsProcessingParameterNumber)

    return {
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
    }


def add_tracking_steps(builder: ModelBuilder, scenes_source, first_row: int, dem_source) -> None:
    """buildpairs → correlatepairs → polyfit → velocity, on the single-band images of ``scenes_source``."""
    add, model_input, child_output, static = (builder.add_child, builder.model_input, builder.child_output,
                                              builder.static)
    add("pairs", "surfacemotion:buildpairs", "Build pairs",
        {"INPUTS": scenes_source, "DT_MIN": model_input("DT_MIN"), "MODE": static(0)}, first_row,
        {"OUTPUT_CSV": ("PAIRS_CSV", "Pair table CSV", False)})
    add("correlate", "surfacemotion:correlatepairs", "Correlate pairs",
        {"PAIRS": child_output("pairs", "OUTPUT"), "CHIP_SIZE": model_input("CHIP_SIZE"),
         "SEARCH_RANGE": model_input("SEARCH_RANGE"), "STEP": model_input("STEP")}, first_row + 1,
        {"OUTPUT_FOLDER": ("DISPARITY_FOLDER", "Disparity maps", False)})
    add("polyfit", "surfacemotion:polyfit", "Remove ramp",
        {"INPUT": child_output("correlate", "OUTPUT_LAYERS"), "ORDER": model_input("ORDER"),
         "MASK": model_input("MOVING_AREA"), "DEM": dem_source}, first_row + 2,
        {"OUTPUT_FOLDER": ("DERAMPED_FOLDER", "De-ramped disparity maps", False)})
    add("velocity", "surfacemotion:velocity", "Velocity",
        {"INPUT": child_output("polyfit", "OUTPUT_LAYERS"), "MASK": model_input("MOVING_AREA"),
         "MEDIAN_SHIFT": static(True)}, first_row + 3,
        {"OUTPUT_FOLDER": ("VELOCITY_FOLDER", "Velocity maps", True)})


def build_model():
    """The L3B chain: extractband → buildpairs → correlatepairs → polyfit → velocity."""
    from qgis.core import QgsProcessing, QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer

    builder = ModelBuilder("planetscopel3bvelocity", HELP, INPUT_ROWS)
    inputs = dict(tracking_inputs(1),
                  SCENES=QgsProcessingParameterMultipleLayers("SCENES", "PlanetScope L3B scenes (4-band)",
                                                              QgsProcessing.TypeRaster),
                  DEM=QgsProcessingParameterRasterLayer("DEM", "DEM for the ramp fit", optional=True))
    builder.add_inputs(inputs, INPUT_ORDER)
    builder.add_child("extract", "surfacemotion:extractband", "Extract band",
                      {"INPUT": builder.model_input("SCENES"), "BAND": builder.model_input("BAND"),
                       "USE_UDM2": builder.model_input("USE_UDM2"), "KEEP_SNOW": builder.static(True)}, 0)
    add_tracking_steps(builder, builder.child_output("extract", "OUTPUT_LAYERS"), 1, builder.model_input("DEM"))
    return builder.finish()


def build_l1b_model():
    """The L1B chain: extractband → orthorectify → buildpairs → correlatepairs → polyfit (DEM) → velocity."""
    from qgis.core import (QgsApplication, QgsProcessing, QgsProcessingParameterEnum,
                           QgsProcessingParameterFeatureSource, QgsProcessingParameterMultipleLayers,
                           QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer)

    from surface_motion.core.ortho.vdatum import VERTICAL_DATUMS

    ortho = QgsApplication.processingRegistry().algorithmById("surfacemotion:orthorectify")
    resolution = ortho.parameterDefinition("RESOLUTION")
    builder = ModelBuilder("planetscopel1bvelocity", L1B_HELP, L1B_INPUT_ROWS)
    inputs = dict(tracking_inputs(2),
                  SCENES=QgsProcessingParameterMultipleLayers("SCENES", "PlanetScope L1B scenes (with RPCs)",
                                                              QgsProcessing.TypeRaster),
                  DEM=QgsProcessingParameterRasterLayer("DEM", "DEM (orthorectification and ramp fit)"),
                  VERTICAL_DATUM=QgsProcessingParameterEnum(
                      "VERTICAL_DATUM", "Vertical datum of the DEM", list(VERTICAL_DATUMS.labels),
                      defaultValue=ortho.parameterDefinition("VERTICAL_DATUM").defaultValue()),
                  AOI=QgsProcessingParameterFeatureSource("AOI", "Area of interest",
                                                          [QgsProcessing.TypeVectorPolygon], optional=True),
                  RESOLUTION=QgsProcessingParameterNumber(
                      "RESOLUTION", "Orthoimage pixel size (m)", QgsProcessingParameterNumber.Double,
                      resolution.defaultValue(), minValue=resolution.minimum(), maxValue=resolution.maximum()))
    builder.add_inputs(inputs, L1B_INPUT_ORDER)
    model_input = builder.model_input
    builder.add_child("extract", "surfacemotion:extractband", "Extract band",
                      {"INPUT": model_input("SCENES"), "BAND": model_input("BAND"),
                       "USE_UDM2": model_input("USE_UDM2"), "KEEP_SNOW": builder.static(True)}, 0)
    builder.add_child("ortho", "surfacemotion:orthorectify", "Orthorectify",
                      {"INPUT": builder.child_output("extract", "OUTPUT_LAYERS"), "DEM": model_input("DEM"),
                       "VERTICAL_DATUM": model_input("VERTICAL_DATUM"), "AOI": model_input("AOI"),
                       "RESOLUTION": model_input("RESOLUTION")}, 1,
                      {"OUTPUT_FOLDER": ("ORTHO_FOLDER", "Orthoimages", False)})
    add_tracking_steps(builder, builder.child_output("ortho", "OUTPUT_LAYERS"), 2, model_input("DEM"))
    return builder.finish()


def start_qgis():
    """A QGIS application with Processing and the plugin's provider (from this checkout); keep both."""
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

    provider = SurfaceMotionProvider()  # the Python object must outlive the registry's use of it
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider


_APPLICATION = []  # the QGIS application, kept alive while the models are built


def main() -> int:
    _APPLICATION.append(start_qgis())
    ok = True
    for build, path in ((build_model, MODEL_PATH), (build_l1b_model, L1B_MODEL_PATH)):
        written = build().toFile(path)
        print("wrote", path, written)
        ok = ok and written
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
