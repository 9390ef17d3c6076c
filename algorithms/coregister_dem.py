"""surfacemotion:coregisterdem — DEM → reference DEM co-registration (Nuth & Kääb 2011)."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.dem.apply import DH_STYLE
from ..core.dem.coregister import SLOPE_MAX_DEG, SLOPE_MIN_DEG, coregister_dem_file
from ..core.io.resample import RESAMPLING
from .base import (MapGroup, SurfaceMotionAlgorithm, enum_parameter, enum_value, polygons_in_crs, run_core,
                   style_on_completion, tif_output)


class CoregisterDemAlgorithm(SurfaceMotionAlgorithm):
    DEM = "DEM"
    REFERENCE = "REFERENCE"
    UNSTABLE = "UNSTABLE"
    SLOPE_MIN = "SLOPE_MIN"
    SLOPE_MAX = "SLOPE_MAX"
    TILT = "TILT"
    MAX_ITERATIONS = "MAX_ITERATIONS"
    TOLERANCE = "TOLERANCE"
    RESAMPLING = "RESAMPLING"
    OUTPUT = "OUTPUT"
    DH_BEFORE = "DH_BEFORE"
    DH_AFTER = "DH_AFTER"
    REPORT = "REPORT"

    group_id = "preparation"
    PARAMETER_HELP = {
        "DEM": "The DEM to align (single band, heights in metres, projected CRS in metres such as UTM). It is "
               "moved; its grid is kept.",
        "REFERENCE": "The reference DEM (any CRS and resolution, degrees included), resampled (cubic convolution) "
                     "onto the grid of the DEM to align. Same vertical datum as that DEM.",
        "UNSTABLE": "Polygons (any CRS) of ground that changed between the two DEMs (glaciers, landslides, "
                    "forest, water); left out of the fit.",
        "SLOPE_MIN": "Cells flatter than this (degrees) are left out of the fit: they carry no shift signal.",
        "SLOPE_MAX": "Cells steeper than this (degrees) are left out of the fit: they are noisy and shadowed.",
        "TILT": "Also fit a plane to the elevation difference and remove it (a tilt between the DEMs).",
        "MAX_ITERATIONS": "Most iterations of the horizontal fit; without convergence the log warns and the "
                          "report says converged = no.",
        "TOLERANCE": "The fit stops when the horizontal step is shorter than this, in pixels of the DEM.",
        "RESAMPLING": "Resampling of the DEM when it is moved by the found sub-pixel shift.",
        "OUTPUT": "The shifted DEM (.tif): on the grid of the DEM to align, float32, NaN nodata, CRS and unit kept.",
        "DH_BEFORE": "DEM minus reference before co-registration (.tif, m), on the grid of the DEM to align.",
        "DH_AFTER": "Shifted DEM minus reference (.tif, m), on the grid of the DEM to align.",
        "REPORT": "CSV table: the shift (x, y, z in m), tilt, iterations, convergence, median and NMAD of dh "
                  "before and after on stable ground, then one row per iteration.",
    }

    def name(self):
        return "coregisterdem"

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.tr("Co-register DEM to a reference DEM (Nuth & Kääb)")

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.tr(
            "Aligns a DEM onto a reference DEM by the method of Nuth & Kääb (2011) on stable ground: the "
            "reference is resampled onto the grid of the DEM, dh = DEM minus reference, and on cells within the "
            "slope limits and outside the unstable areas dh / tan(slope) = a·cos(b − aspect) + c is fitted to "
            "the medians of 72 aspect bins; the horizontal shift is refined until its step is below the "
            "tolerance (pixels) or the maximum number of iterations is reached. The vertical shift is the median "
            "of dh after the horizontal shift, or a plane with the tilt option. Very large DEMs are fitted on an "
            "averaged grid of at most 2048 x 2048 cells.\n"
            "Outputs: the shifted DEM on the grid of the DEM (float32, NaN nodata), dh before and after (m), "
            "and a CSV report. Signs: the report's shift x, y (m, east, north) and z (m, up) is the correction "
            "applied: the output is the DEM moved by (x, y) and raised by z. A DEM lying 2 m east of the "
            "reference gets shift x = −2 m.\n"
            "Both DEMs must share a vertical datum: if their CRSs declare different vertical datums the run "
            "is refused. Heights in metres.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        tr = self.tr
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, tr("DEM to align")))
        self.addParameter(QgsProcessingParameterRasterLayer(self.REFERENCE, tr("Reference DEM")))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.UNSTABLE, tr("Unstable areas (polygons, excluded)"), [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.SLOPE_MIN, tr("Minimum slope (degrees)"), QgsProcessingParameterNumber.Double, SLOPE_MIN_DEG,
            minValue=0.0, maxValue=89.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.SLOPE_MAX, tr("Maximum slope (degrees)"), QgsProcessingParameterNumber.Double, SLOPE_MAX_DEG,
            minValue=1.0, maxValue=90.0))
        self.addParameter(QgsProcessingParameterBoolean(self.TILT, tr("Fit and remove a tilt (plane)"), False))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_ITERATIONS, tr("Maximum iterations"), QgsProcessingParameterNumber.Integer, 10,
            minValue=1, maxValue=100))
        self.addParameter(QgsProcessingParameterNumber(
            self.TOLERANCE, tr("Tolerance of the horizontal step (pixels)"), QgsProcessingParameterNumber.Double,
            0.001, minValue=0.000001, maxValue=1.0))
        self.addParameter(enum_parameter(self, self.RESAMPLING, "Resampling of the shifted DEM", RESAMPLING,
                                         "cubic"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, tr("Co-registered DEM")))
        self.addParameter(QgsProcessingParameterRasterDestination(self.DH_BEFORE, tr("dh before (DEM − reference)")))
        self.addParameter(QgsProcessingParameterRasterDestination(self.DH_AFTER, tr("dh after (DEM − reference)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT, tr("Co-registration report"), tr("CSV files (*.csv)")))
        for name, label in (("SHIFT_X", "Shift x (m, east)"), ("SHIFT_Y", "Shift y (m, north)"),
                            ("SHIFT_Z", "Shift z (m, up)"), ("NMAD_BEFORE", "NMAD of dh before (m)"),
                            ("NMAD_AFTER", "NMAD of dh after (m)"), ("ITERATIONS", "Iterations")):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))
        self.addOutput(QgsProcessingOutputBoolean("CONVERGED", tr("Converged")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        dem = self.parameterAsRasterLayer(parameters, self.DEM, context)
        reference = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        unstable = self.parameterAsSource(parameters, self.UNSTABLE, context)
        polygons = None if unstable is None else polygons_in_crs(
            unstable, dem.crs().toWkt(), context, self.parameterDefinition(self.UNSTABLE).description())
        output = tif_output(self, parameters, self.OUTPUT, context)
        dh_before = tif_output(self, parameters, self.DH_BEFORE, context)
        dh_after = tif_output(self, parameters, self.DH_AFTER, context)
        report = self.parameterAsFileOutput(parameters, self.REPORT, context)
        result = run_core(
            coregister_dem_file, feedback, dem.source(), reference.source(), output, dh_before, dh_after, report,
            unstable_geometries=polygons,
            slope_min_deg=self.parameterAsDouble(parameters, self.SLOPE_MIN, context),
            slope_max_deg=self.parameterAsDouble(parameters, self.SLOPE_MAX, context),
            tilt=self.parameterAsBool(parameters, self.TILT, context),
            max_iterations=self.parameterAsInt(parameters, self.MAX_ITERATIONS, context),
            tolerance_px=self.parameterAsDouble(parameters, self.TOLERANCE, context),
            resampling=enum_value(self, parameters, self.RESAMPLING, context, RESAMPLING))
        feedback.pushInfo(self.tr(
            "Shift applied to the DEM: x {:+.3f} m (east), y {:+.3f} m (north), z {:+.3f} m (up) after {} "
            "iteration(s) on {} stable cells; NMAD of dh {:.3f} m before, {:.3f} m after.").format(
                result["shift_x_m"], result["shift_y_m"], result["shift_z_m"], result["iterations"],
                result["n_stable_cells"], result["nmad_before_m"], result["nmad_after_m"]))
        if result["fit_factor"] > 1:
            feedback.pushInfo(self.tr("The fit used a grid averaged {} x {} (the DEM has more than 2048 x 2048 "
                                      "cells).").format(result["fit_factor"], result["fit_factor"]))
        if result["dem_vertical"] is None or result["reference_vertical"] is None:
            feedback.pushInfo(self.tr("The vertical datum is not declared by both CRSs; the DEMs are assumed to "
                                      "share one."))
        if not result["converged"]:
            feedback.pushWarning(self.tr(
                "No convergence: the last horizontal step was {:.4f} px after {} iterations (tolerance {:g} px). "
                "The last estimate was applied; the report says converged = no. Raise the maximum iterations or "
                "check the unstable areas.").format(result["step_px"], result["iterations"],
                                                    self.parameterAsDouble(parameters, self.TOLERANCE, context)))
        group = MapGroup(self, [output])
        style_on_completion(context, output, None, group=group)
        style_on_completion(context, dh_after, DH_STYLE, group=group)
        style_on_completion(context, dh_before, DH_STYLE, group=group)
        return {self.OUTPUT: output, self.DH_BEFORE: dh_before, self.DH_AFTER: dh_after, self.REPORT: report,
                "SHIFT_X": result["shift_x_m"], "SHIFT_Y": result["shift_y_m"], "SHIFT_Z": result["shift_z_m"],
                "NMAD_BEFORE": result["nmad_before_m"], "NMAD_AFTER": result["nmad_after_m"],
                "ITERATIONS": result["iterations"], "CONVERGED": result["converged"]}
