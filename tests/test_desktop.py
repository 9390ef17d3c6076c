"""The map a desktop user gets: one layer-tree group per run, the primary layer visible on top,
short names, and the shipped model in the Model Designer without a red step.

``test_the_model_in_the_real_desktop`` starts the real ``qgis`` under ``xvfb-run`` with a startup
script (``--code``), runs the model on the sample with ``processing.runAndLoadResults``, checks the
layer tree and saves screenshots of the map, the model's dialog and the Model Designer (in the test's tmp dir and
under .build/screenshots/ for review). The other tests load results in-process through
Processing's own loader (processing.gui.Postprocessing.handleAlgorithmResults).
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import textwrap

import pytest
from conftest import REPO, SAMPLE_DIR, require_programs

MODEL_ID = "surfacemotion:planetscopel3bvelocity"
SCENES = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))
SCREENSHOTS = os.path.join(REPO, ".build", "screenshots")

#: Runs inside the desktop QGIS (``qgis --code``): the model, the layer tree as JSON, screenshots.
DESKTOP_SCRIPT = textwrap.dedent('''
    import json, os, sys, traceback
    from qgis.PyQt.QtCore import QTimer
    from qgis.core import QgsApplication, QgsLayerTree, QgsProcessingModelAlgorithm, QgsProject
    from qgis.utils import iface

    OUT = os.environ["SM_DESKTOP_OUT"]
    report = {"errors": []}

    def tree(node):
        entries = []
        for child in node.children():
            if QgsLayerTree.isGroup(child):
                entries.append({"group": child.name(), "visible": child.itemVisibilityChecked(),
                                "children": tree(child)})
            else:
                entries.append({"layer": child.name(), "visible": child.itemVisibilityChecked(),
                                "source": child.layer().source()})
        return entries

    def finish():
        with open(os.path.join(OUT, "report.json"), "w") as handle:
            json.dump(report, handle, indent=1)
        QgsApplication.exit(0)

    def show_and_shoot(make_window, size, png, then):
        """Show the window ``make_window()`` returns, screenshot it into ``png`` a moment later
        (report key ``<png stem>_png``), close it and go on with ``then``."""
        try:
            window = make_window()
            window.resize(*size)
            window.show()
        except Exception:
            report["errors"].append(traceback.format_exc())
            return then()

        def shoot():
            try:
                if hasattr(window, "view"):  # the Model Designer: the whole model in view
                    from qgis.PyQt.QtCore import Qt
                    view = window.view()
                    view.fitInView(view.scene().itemsBoundingRect(), Qt.KeepAspectRatio)
                QgsApplication.processEvents()
                report[png[:-4] + "_png"] = window.grab().save(os.path.join(OUT, png))
                window.close()
            except Exception:
                report["errors"].append(traceback.format_exc())
            then()

        QTimer.singleShot(1500, shoot)

    def algorithm_dialog():
        import processing
        show_and_shoot(lambda: processing.createAlgorithmDialog(os.environ["SM_MODEL_ID"]),
                       (700, 950), "dialog.png", extra_dialogs)

    def extra_dialogs():
        """The dialogs of SM_EXTRA_DIALOGS (comma-separated algorithm ids), one screenshot each."""
        import processing
        pending = [name for name in os.environ.get("SM_EXTRA_DIALOGS", "").split(",") if name]
        if not pending:
            return designer()
        algorithm_id = pending.pop(0)
        os.environ["SM_EXTRA_DIALOGS"] = ",".join(pending)
        show_and_shoot(lambda: processing.createAlgorithmDialog(algorithm_id), (700, 950),
                       "dialog_" + algorithm_id.split(":")[1] + ".png", extra_dialogs)

    def model_designer():
        from processing.modeler.ModelerDialog import ModelerDialog
        model = QgsProcessingModelAlgorithm()
        report["model_loaded"] = model.fromFile(os.environ["SM_MODEL"])
        report["model_valid"], report["model_errors"] = model.validate()
        return ModelerDialog.create(model)

    def designer():
        show_and_shoot(model_designer, (1500, 950), "designer.png", finish)

    def shoot_map():
        try:
            iface.mapCanvas().waitWhileRendering()
            QgsApplication.processEvents()
            report["map_png"] = iface.mainWindow().grab().save(os.path.join(OUT, "map.png"))
        except Exception:
            report["errors"].append(traceback.format_exc())
        algorithm_dialog()

    def run():
        try:
            import processing
            with open(os.path.join(OUT, "parameters.json")) as handle:
                parameters = json.load(handle)
            results = processing.runAndLoadResults(os.environ["SM_MODEL_ID"], parameters)
            report["velocities"] = results["CHILD_RESULTS"]["velocity"]["OUTPUT_LAYERS"]
            report["tree"] = tree(QgsProject.instance().layerTreeRoot())
            report["layer_count"] = len(QgsProject.instance().mapLayers())
            iface.mapCanvas().zoomToFullExtent()
            iface.mapCanvas().refresh()
        except Exception:
            report["errors"].append(traceback.format_exc())
        QTimer.singleShot(3000, shoot_map)

    iface.mainWindow().resize(1500, 950)
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QDockWidget
    layers_panel = iface.mainWindow().findChild(QDockWidget, "Layers")
    if layers_panel is not None:  # wide enough for the names, for the screenshot
        iface.mainWindow().resizeDocks([layers_panel], [460], Qt.Horizontal)
    QTimer.singleShot(500, run)
''')


def save_screenshot(path: str, name: str) -> str:
    """Copy a screenshot to .build/screenshots/ for review; returns the copy's path."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    copy = os.path.join(SCREENSHOTS, name)
    shutil.copyfile(path, copy)
    return copy


def run_desktop(qgis_process_env, out, script, model_id: str, model_file: str, extra_dialogs=()) -> dict:
    """Start the desktop QGIS under Xvfb with DESKTOP_SCRIPT: run ``model_id`` with ``out/parameters.json``,
    screenshot the map, the model's dialog, the ``extra_dialogs`` and the Model Designer; the report."""
    env = dict(qgis_process_env, SM_DESKTOP_OUT=str(out), SM_MODEL=os.path.join(REPO, "models", model_file),
               SM_MODEL_ID=model_id, SM_EXTRA_DIALOGS=",".join(extra_dialogs))
    env.pop("QT_QPA_PLATFORM", None)  # the real window system: Xvfb's X server
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo", "--noversioncheck",
               "--code", str(script)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own process group: Xvfb and qgis end with it
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    assert (out / "report.json").exists(), stdout[-3000:] + stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["errors"] == []
    return report


def test_the_model_in_the_real_desktop(qgis_process_env, tmp_path):
    require_programs("xvfb-run", "qgis")
    out = tmp_path / "desktop"
    out.mkdir()
    (out / "parameters.json").write_text(json.dumps({"SCENES": SCENES, "velocity:VELOCITY_FOLDER": str(out / "v")}))
    script = tmp_path / "startup.py"
    script.write_text(DESKTOP_SCRIPT)
    report = run_desktop(qgis_process_env, out, script, MODEL_ID, "planetscope_l3b_velocity.model3")
    assert report["map_png"] and report["designer_png"] and report["dialog_png"]
    save_screenshot(str(out / "map.png"), "desktop_model_map.png")
    save_screenshot(str(out / "dialog.png"), "desktop_model_dialog.png")
    save_screenshot(str(out / "designer.png"), "desktop_model_designer.png")

    # the Model Designer opens the shipped file without an invalid step
    assert report["model_loaded"] and report["model_valid"] and report["model_errors"] == []

    # one group for the run, the 9 velocity files inside as speed + azimuth, only the top one visible
    tree = report["tree"]
    assert len(tree) == 1 and "group" in tree[0], tree
    group = tree[0]
    assert group["group"].startswith("Velocity") and group["group"].endswith(" 2020-07-15 → 2022-07-16, 9 pairs")
    layers = group["children"]
    assert len(report["velocities"]) == 9 and len(layers) == 18 == report["layer_count"]
    assert [layer["visible"] for layer in layers] == [True] + [False] * 17
    assert layers[0]["layer"] == "2020-07-15 → 2021-01-12 speed"
    assert layers[1]["layer"] == "2020-07-15 → 2021-01-12 azimuth"
    assert [layer["layer"].rsplit(" ", 1)[1] for layer in layers] == ["speed", "azimuth"] * 9
    assert len({layer["layer"] for layer in layers}) == 18 and max(len(layer["layer"]) for layer in layers) <= 32
    assert all(os.path.dirname(layer["source"]) == str(out / "v") for layer in layers)


def test_the_l1b_model_and_the_dem_algorithms_in_the_real_desktop(qgis_process_env, tmp_path):
    """The L1B model on two synthetic opposite-look scenes in the desktop: one velocity group; the dialogs
    of the model, orthorectify, coregisterdem and aligndemtopair, and the model in the Model Designer."""
    require_programs("xvfb-run", "qgis")
    import l1b_synthetic as synthetic

    out = tmp_path / "desktop"
    out.mkdir()
    scenes = [synthetic.make_scene(str(tmp_path), 1, name="20200301_101010_1001_1B_AnalyticMS", bands=4).path,
              synthetic.make_scene(str(tmp_path), -1, name="20210301_101010_1001_1B_AnalyticMS", bands=4).path]
    dem = synthetic.write_dem(str(tmp_path / "dem_egm96.tif"), datum="egm96")
    (out / "parameters.json").write_text(json.dumps({
        "SCENES": scenes, "DEM": dem, "VERTICAL_DATUM": 2, "STEP": 8, "velocity:VELOCITY_FOLDER": str(out / "v")}))
    script = tmp_path / "startup.py"
    script.write_text(DESKTOP_SCRIPT)
    extra = ("surfacemotion:orthorectify", "surfacemotion:coregisterdem", "surfacemotion:aligndemtopair")
    report = run_desktop(qgis_process_env, out, script, "surfacemotion:planetscopel1bvelocity",
                         "planetscope_l1b_velocity.model3", extra)
    assert report["map_png"] and report["designer_png"] and report["dialog_png"]
    assert all(report[f"dialog_{name.split(':')[1]}_png"] for name in extra)
    save_screenshot(str(out / "map.png"), "desktop_l1b_model_map.png")
    save_screenshot(str(out / "dialog.png"), "desktop_l1b_model_dialog.png")
    save_screenshot(str(out / "designer.png"), "desktop_l1b_model_designer.png")
    for name in extra:
        save_screenshot(str(out / f"dialog_{name.split(':')[1]}.png"), f"desktop_dialog_{name.split(':')[1]}.png")
    assert report["model_loaded"] and report["model_valid"] and report["model_errors"] == []
    tree = report["tree"]
    assert len(tree) == 1 and tree[0]["group"].startswith("Velocity"), tree
    layers = tree[0]["children"]
    assert [layer["layer"] for layer in layers] == ["2020-03-01 → 2021-03-01 speed", "2020-03-01 → 2021-03-01 azimuth"]
    assert [layer["visible"] for layer in layers] == [True, False]


# ---------------------------------------------------------------- in-process loading

@pytest.fixture
def project():
    """A clean current project (QgsProject.instance(), which run_algorithm's contexts use)."""
    from qgis.core import QgsProject

    instance = QgsProject.instance()
    instance.clear()
    yield instance
    instance.clear()


def load_results(algorithm_id, context):
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import QgsApplication, QgsProcessingFeedback

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    assert handleAlgorithmResults(algorithm, context, QgsProcessingFeedback())


def tree_of(project):
    from qgis.core import QgsLayerTree

    def walk(node):
        return [(child.name(), walk(child)) if QgsLayerTree.isGroup(child)
                else (child.name(), child.itemVisibilityChecked()) for child in node.children()]

    return walk(project.layerTreeRoot())


def test_each_run_gets_its_own_group_with_the_primary_layer_on_top(run_algorithm, project, tmp_path):
    """Two model runs: two groups (newest on top), speed before azimuth for every pair, only the top
    layer of each group visible; the sidecar style (fitted range) is the layers' style."""
    from qgis.core import QgsRasterLayer

    scenes = SCENES[::2]
    for run in ("a", "b"):
        _, context, _ = run_algorithm(MODEL_ID, {"SCENES": scenes, "DT_MIN": 300, "STEP": 8, "ORDER": 0,
                                                 "velocity:VELOCITY_FOLDER": str(tmp_path / run)})
        load_results(MODEL_ID, context)
    tree = tree_of(project)
    assert len(tree) == 2 and tree[0][0] == tree[1][0]
    assert tree[0][0].startswith("Velocity") and tree[0][0].endswith(" 2020-07-15 → 2022-07-16, 3 pairs")
    for _, layers in tree:
        assert layers == [("2020-07-15 → 2021-07-18 speed", True), ("2020-07-15 → 2021-07-18 azimuth", False),
                          ("2020-07-15 → 2022-07-16 speed", False), ("2020-07-15 → 2022-07-16 azimuth", False),
                          ("2021-07-18 → 2022-07-16 speed", False), ("2021-07-18 → 2022-07-16 azimuth", False)]
    top = project.layerTreeRoot().children()[0].children()
    assert os.path.dirname(top[0].layer().source()) == str(tmp_path / "b")  # the newest run on top
    speed, azimuth = top[0].layer(), top[1].layer()
    assert isinstance(speed, QgsRasterLayer) and speed.source() == azimuth.source()
    assert speed.renderer().band() == 1 and azimuth.renderer().band() == 2
    assert azimuth.renderer().classificationMax() == 360.0  # cyclic: the fixed 0-360 range
    import rasterio

    from core.io.styles import band_sample, percentile_range
    with rasterio.open(speed.source()) as ds:
        low, high = percentile_range(band_sample(ds, 1))
    assert (speed.renderer().classificationMin(), speed.renderer().classificationMax()) == \
        pytest.approx((low, high), rel=1e-6)


def test_a_single_pair_groups_dx_over_dy_named_by_its_dates(run_algorithm, project, tmp_path):
    from qgis.core import QgsProcessingOutputLayerDefinition

    reference, secondary = SCENES[0], SCENES[2]
    bands = run_algorithm("surfacemotion:extractband", {"INPUT": [reference, secondary], "BAND": 2,
                                                        "OUTPUT_FOLDER": str(tmp_path / "bands")})[0]
    ref, sec = sorted(bands["OUTPUT_LAYERS"])
    _, context, _ = run_algorithm("surfacemotion:correlatepair", {
        "REFERENCE": ref, "SECONDARY": sec, "STEP": 8,
        "OUTPUT": QgsProcessingOutputLayerDefinition(str(tmp_path / "disp.tif"), project)})  # as the dialog asks
    load_results("surfacemotion:correlatepair", context)
    (name, layers), = tree_of(project)
    assert name.startswith("Correlate") and name.endswith(" 2020-07-15 → 2021-07-18") and "(" not in name
    assert layers == [("2020-07-15 → 2021-07-18 dx", True), ("2020-07-15 → 2021-07-18 dy", False)]
    dx, dy = (node.layer() for node in project.layerTreeRoot().children()[0].children())
    assert (dx.renderer().band(), dy.renderer().band()) == (1, 2)
    # both views fitted symmetric around 0: dy from its own band, not dx's range
    assert dx.renderer().classificationMin() == pytest.approx(-dx.renderer().classificationMax())
    assert dy.renderer().classificationMin() == pytest.approx(-dy.renderer().classificationMax())
    assert dy.renderer().classificationMax() != pytest.approx(3.0)
