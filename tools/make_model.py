"""Build models/planetscope_l3b_velocity.model3 with the QGIS model API (run with /usr/bin/python3).

The model is committed; this script documents and reproduces it:
extractband -> buildpairs -> correlatepairs -> polyfit -> velocity.
"""
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_PATH = os.path.join(REPO, "models", "planetscope_l3b_velocity.model3")


def build_model():
    from qgis.core import (QgsProcessing, QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource, QgsProcessingModelOutput,
                           QgsProcessingModelParameter, QgsProcessingParameterBoolean,
                           QgsProcessingParameterEnum, QgsProcessingParameterFeatureSource,
                           QgsProcessingParameterMultipleLayers, QgsProcessingParameterNumber,
                           QgsProcessingParameterRasterLayer)
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm("planetscopel3bvelocity", "Surface Motion Toolbox")
    model.setHelpContent({
        "ALG_DESC": "PlanetScope L3B offset-tracking chain: extract the green band (optionally masked "
                    "with UDM2), pair all scenes older -> newer with at least DT_MIN days between them, "
                    "correlate every pair, remove the ramp with a polynomial fit on stable ground and "
                    "convert to velocity (band 1 speed m/yr, band 2 azimuth deg clockwise from north, "
                    "bands 3-4 east/north m/yr).",
    })

    def add_input(definition, x, y):
        parameter = QgsProcessingModelParameter(definition.name())
        parameter.setPosition(QPointF(x, y))
        model.addModelParameter(definition, parameter)

    add_input(QgsProcessingParameterMultipleLayers("SCENES", "PlanetScope L3B scenes (4-band)",
                                                   QgsProcessing.TypeRaster), 120, 60)
    add_input(QgsProcessingParameterNumber("BAND", "Band to track (2 = green)",
                                           QgsProcessingParameterNumber.Integer, 2, minValue=1), 320, 60)
    add_input(QgsProcessingParameterBoolean("USE_UDM2", "Mask with UDM2 (clear or snow)", False), 520, 60)
    add_input(QgsProcessingParameterNumber("DT_MIN", "Minimum time separation (days)",
                                           QgsProcessingParameterNumber.Double, 180.0, minValue=0.0), 720, 60)
    add_input(QgsProcessingParameterNumber("CHIP_SIZE", "Chip size (px)",
                                           QgsProcessingParameterNumber.Integer, 32, minValue=8), 920, 60)
    add_input(QgsProcessingParameterNumber("SEARCH_RANGE", "Search range (px)",
                                           QgsProcessingParameterNumber.Integer, 8, minValue=1), 1120, 60)
    add_input(QgsProcessingParameterNumber("STEP", "Output grid spacing (px)",
                                           QgsProcessingParameterNumber.Integer, 4, minValue=1), 1320, 60)
    add_input(QgsProcessingParameterEnum("ORDER", "Ramp polynomial order",
                                         ["1: plane (3 terms)", "2: quadratic (6 terms)", "3: cubic (10 terms)"],
                                         defaultValue=1),
              1520, 60)
    add_input(QgsProcessingParameterFeatureSource("MOVING_AREA", "Moving area (excluded from ramp and median)",
                                                  [QgsProcessing.TypeVectorPolygon], optional=True), 1720, 60)
    add_input(QgsProcessingParameterRasterLayer("DEM", "DEM for the ramp fit", optional=True), 1920, 60)

    def model_input(name):
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    def child_output(child_id, output):
        return [QgsProcessingModelChildParameterSource.fromChildOutput(child_id, output)]

    def add_child(child_id, algorithm_id, description, sources, x, y, outputs=None):
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        child.setDescription(description)
        child.setPosition(QPointF(x, y))
        for name, source in sources.items():
            child.addParameterSources(name, source)
        for output_name, (model_output_name, description_text) in (outputs or {}).items():
            output = QgsProcessingModelOutput(model_output_name, description_text)
            output.setChildId(child_id)
            output.setChildOutputName(output_name)
            output.setMandatory(False)
            child.setModelOutputs({model_output_name: output})
        model.addChildAlgorithm(child)
        return child_id

    add_child("extract", "surfacemotion:extractband", "Extract band",
              {"INPUT": model_input("SCENES"), "BAND": model_input("BAND"), "USE_UDM2": model_input("USE_UDM2"),
               "KEEP_SNOW": [QgsProcessingModelChildParameterSource.fromStaticValue(True)]}, 300, 200)
    add_child("pairs", "surfacemotion:buildpairs", "Build pairs",
              {"INPUTS": child_output("extract", "OUTPUT_LAYERS"), "DT_MIN": model_input("DT_MIN"),
               "MODE": [QgsProcessingModelChildParameterSource.fromStaticValue(0)]}, 300, 320,
              {"OUTPUT_CSV": ("PAIRS_CSV", "Pair table CSV")})
    add_child("correlate", "surfacemotion:correlatepairs", "Correlate pairs",
              {"PAIRS": child_output("pairs", "OUTPUT"), "CHIP_SIZE": model_input("CHIP_SIZE"),
               "SEARCH_RANGE": model_input("SEARCH_RANGE"), "STEP": model_input("STEP")}, 300, 440,
              {"OUTPUT_FOLDER": ("DISPARITY_FOLDER", "Disparity maps")})
    add_child("polyfit", "surfacemotion:polyfit", "Remove ramp",
              {"INPUT": child_output("correlate", "OUTPUT_LAYERS"), "ORDER": model_input("ORDER"),
               "MASK": model_input("MOVING_AREA"), "DEM": model_input("DEM")}, 300, 560,
              {"OUTPUT_FOLDER": ("DERAMPED_FOLDER", "De-ramped disparity maps")})
    add_child("velocity", "surfacemotion:velocity", "Velocity",
              {"INPUT": child_output("polyfit", "OUTPUT_LAYERS"), "MASK": model_input("MOVING_AREA"),
               "MEDIAN_SHIFT": [QgsProcessingModelChildParameterSource.fromStaticValue(True)]}, 300, 680,
              {"OUTPUT_FOLDER": ("VELOCITY_FOLDER", "Velocity maps")})
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
