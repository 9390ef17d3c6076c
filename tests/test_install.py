"""Installing the plugin's pip packages on a desktop (issue 11): the constraints, the interpreter
and folder the installer uses, the start-up ``sys.path`` entry, and a real install with the
QGIS Python (/usr/bin/python3, PEP 668 "externally managed") into a throw-away profile, after
which qgis_process.bin finds ITS_LIVE cubes through STAC with pystac-client from that profile only."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import PLUGIN_PARENT, REPO
from core import dependencies
from core.errors import UserInputError

QGIS_PYTHON = "/usr/bin/python3"
#: pip's cache for the real install, kept between runs (.build is not versioned).
PIP_CACHE = os.path.join(REPO, ".build", "pip-cache")
#: requirements.txt as the installer lists it when nothing of it is installed.
MISSING = "pystac-client==0.6.1, pystac>=1.8,<1.9, planet==3.7.0"
#: What installing requirements.txt with Debian's QGIS Python adds at least: the pinned packages at their
#: pins, and the planet SDK's httpx stack and helpers by name (their versions float with the registry:
#: httpx 0.29.0 appeared in December 2026; click, pyjwt, jsonschema, requests … come from Debian); and what
#: it may never add.
INSTALLED_PINNED = {"pystac-client==0.6.1", "pystac==1.8.4", "planet==3.7.0"}
INSTALLED_BY_NAME = {"planet-auth", "httpx", "httpcore", "h11", "anyio", "strenum"}
NEVER_INSTALLED = {"numpy", "gdal", "scipy", "pandas", "rasterio", "matplotlib", "shapely", "pyproj", "requests"}


def check_installed(installed) -> None:
    """The packages the installer reported: the expected ones, none of QGIS's scientific stack."""
    assert INSTALLED_PINNED <= set(installed), sorted(INSTALLED_PINNED - set(installed))
    names = {dependencies.requirement_name(r).lower() for r in installed}
    assert INSTALLED_BY_NAME <= names, sorted(INSTALLED_BY_NAME - names)
    assert not names & NEVER_INSTALLED


# --------------------------------------------------------------------------- unit tests

def test_constraints_pin_the_running_numpy_and_gdal():
    import numpy
    from osgeo import gdal

    pins = dependencies.constraints()
    assert f"numpy=={numpy.__version__}" in pins
    assert f"GDAL=={gdal.__version__.split('+')[0]}" in pins
    assert all(pin.count("==") == 1 and "+" not in pin for pin in pins)
    # absent packages are left out; Debian's local suffix is dropped ("2.13.6+ds" -> "==2.13.6")
    assert dependencies.constraints(["numpy", "surely-not-installed-xyz"]) == [f"numpy=={numpy.__version__}"]


def test_constraints_of_make_venv_come_from_the_same_function():
    done = subprocess.run([QGIS_PYTHON, os.path.join(REPO, "tools", "debian_constraints.py")],
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[:2] == [f"numpy=={_system_version('numpy')}", f"GDAL=={_system_version('GDAL')}"]


def _system_version(name):
    code = f"from importlib import metadata; print(metadata.version({name!r}).split('+')[0])"
    return subprocess.run([QGIS_PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_requirements_txt_is_the_one_list():
    assert dependencies.read_requirements() == ["pystac-client==0.6.1", "pystac>=1.8,<1.9", "planet==3.7.0"]
    assert "-r requirements.txt" in open(os.path.join(REPO, "requirements-plugin.txt")).read()
    assert "plugin_dependencies=qpip" in open(os.path.join(REPO, "metadata.txt")).read().splitlines()


def test_missing_requirements_checks_versions():
    import numpy

    assert dependencies.missing_requirements(["numpy>=1.0", f"numpy=={numpy.__version__}"]) == []
    assert dependencies.missing_requirements(["numpy<1.0", "surely-not-installed-xyz>=1"]) == [
        "numpy<1.0", "surely-not-installed-xyz>=1"]
    assert dependencies.missing_requirements(['numpy<1.0; python_version < "3"']) == []  # marker false
    assert dependencies.requirement_name("pystac>=1.8,<1.9") == "pystac"


@pytest.mark.parametrize("platform, executable, exec_prefix, interpreter", [
    ("linux", "usr/bin/qgis", "usr", "usr/bin/python3.9"),
    ("win32", "OSGeo4W/bin/qgis-ltr-bin.exe", "OSGeo4W/apps/Python39", "OSGeo4W/apps/Python39/python.exe"),
    ("darwin", "QGIS.app/Contents/MacOS/QGIS", "QGIS.app/Contents/Frameworks/Python.framework/Versions/3.9",
     "QGIS.app/Contents/Frameworks/Python.framework/Versions/3.9/bin/python3.9"),
    ("darwin", "QGIS.app/Contents/MacOS/QGIS", "QGIS.app/Contents/Resources/python",
     "QGIS.app/Contents/MacOS/bin/python3"),
])
def test_qgis_python_is_found_on_every_platform(tmp_path, platform, executable, exec_prefix, interpreter):
    path = tmp_path / interpreter
    path.parent.mkdir(parents=True)
    path.write_text("")
    path.chmod(0o755)
    found = dependencies.qgis_python(str(tmp_path / executable), str(tmp_path / exec_prefix), platform, (3, 9))
    assert found == str(path)


def test_qgis_python_on_this_machine_and_when_it_cannot_be_found(tmp_path):
    assert dependencies.qgis_python("/usr/bin/qgis", "/usr", "linux", sys.version_info[:2]) == \
        f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    # inside the Debian QGIS, sys.executable is the first `python3` on PATH (here a pyenv shim)
    assert dependencies.qgis_python("/root/.pyenv/shims/python3", "/usr", "linux", (3, 11)) == "/usr/bin/python3.11"
    assert dependencies.qgis_python(QGIS_PYTHON, "/nonexistent", "linux", (3, 11)) == QGIS_PYTHON
    with pytest.raises(UserInputError, match="Cannot find the Python interpreter of this QGIS"):
        dependencies.qgis_python(str(tmp_path / "qgis"), str(tmp_path), "linux", (3, 11))


def test_dependencies_folder_is_appended_and_never_shadows_qgis_packages(tmp_path):
    fake = tmp_path / "numpy"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('shadowed')\n")
    code = ("import sys; sys.path.insert(0, %r); from core.dependencies import add_to_path; "
            "print(add_to_path(%r), add_to_path(%r)); print(sys.path[-1]); import numpy; print(numpy.__file__)"
            % (REPO, str(tmp_path), str(tmp_path) + "/"))
    done = subprocess.run([QGIS_PYTHON, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    added, last, numpy_file = done.stdout.splitlines()
    assert added == "True False" and last == str(tmp_path)
    assert numpy_file.startswith("/usr/lib/python3/dist-packages/numpy")


def test_classfactory_adds_the_profile_folder_or_the_setting(qgis_app, tmp_path, monkeypatch):
    from qgis.core import QgsApplication, QgsSettings

    import surface_motion

    monkeypatch.setattr(sys, "path", list(sys.path))
    settings = QgsSettings()
    settings.remove(surface_motion.DEPENDENCIES_FOLDER_KEY)
    profile_folder = os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "dependencies")
    assert surface_motion.dependencies_folder() == profile_folder
    settings.setValue(surface_motion.DEPENDENCIES_FOLDER_KEY, str(tmp_path))
    try:
        plugin = surface_motion.classFactory(None)
        assert sys.path[-1] == str(tmp_path) and plugin.provider is None
    finally:
        settings.remove(surface_motion.DEPENDENCIES_FOLDER_KEY)


def test_install_messages_name_the_action():
    from surface_motion.algorithms.base import install_hint

    message = install_hint("pystac_client.stac_api_io")
    assert "'pystac-client'" in message and dependencies.INSTALL_ACTION in message
    assert "apt" not in message  # Debian does not package it
    assert "sudo apt install python3-zarr" in install_hint("zarr")


def test_a_python_without_pip_is_named_with_the_fix(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 'No module named pip' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(UserInputError, match=r"pip is not available for .*python3\. Debian/Ubuntu: sudo apt "
                                             r"install python3-pip"):
        dependencies.install(["pystac-client==0.6.1"], str(tmp_path / "deps"), python=str(fake))


def test_cancel_stops_pip_at_once(tmp_path):
    import time

    from core.errors import Cancelled

    slow = tmp_path / "python3"  # "pip --version" answers, the resolve step hangs
    slow.write_text('#!/bin/sh\ncase "$*" in *--version*) echo pip 23.0;; *) sleep 60;; esac\n')
    slow.chmod(0o755)
    started = time.monotonic()
    calls = []
    with pytest.raises(Cancelled, match="pip was stopped"):
        dependencies.install(["pystac-client==0.6.1"], str(tmp_path / "deps"), python=str(slow),
                             is_canceled=lambda: calls.append(1) or len(calls) > 3)
    assert time.monotonic() - started < 5


def test_an_unreachable_registry_gives_a_clear_error(tmp_path, monkeypatch):
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no index or find-links from pip.conf
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # discard port: refused at once
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    lines = []
    with pytest.raises(UserInputError) as raised:
        dependencies.install(["pystac-client==0.6.1"], str(tmp_path / "deps"), python=QGIS_PYTHON, log=lines.append)
    message = str(raised.value)
    assert message.startswith("pip could not resolve pystac-client==0.6.1: ")
    assert "No matching distribution found for pystac-client==0.6.1" in message
    assert message.endswith("Check the network (pip must reach https://pypi.org, or set a proxy in pip's "
                            "configuration) and try again.")
    assert os.listdir(tmp_path / "deps") == []  # nothing installed


# --------------------------------------------------------------------------- the real install

def clean_env(**extra):
    """Environment without the test venv: /usr/bin first, no PYTHONPATH; pip's own settings
    (certificates, proxies, find-links) kept so pip reaches the registry as the user's would."""
    keep = {k: v for k, v in os.environ.items()
            if k.startswith("PIP_") or k.lower() in ("http_proxy", "https_proxy", "no_proxy", "home")}
    keep.pop("PIP_CACHE_DIR", None)
    return {**keep, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **extra}


def find_cubes_cli(env, server, out):
    """itslivefindcubes with qgis_process.bin; the catalogue URL 404s, so only STAC can answer."""
    from test_itslive_algorithms import window_extent

    extent, _ = window_extent(server)
    command = ["qgis_process.bin", "--json", "run", "surfacemotion:itslivefindcubes", "--",
               f"AOI_EXTENT={extent}", f"STAC_URL={server.url}/stac", f"CATALOG_URL={server.url}/no_catalog.json",
               f"OUTPUT={out}"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_install_into_a_throwaway_profile_then_find_cubes_with_qgis_process(cube_server, tmp_path):
    config = tmp_path / "config"
    folder = config / "profiles" / "default" / "python" / "dependencies"
    qgis_env = clean_env(QGIS_CUSTOM_CONFIG_PATH=str(config), QGIS_PLUGINPATH=PLUGIN_PARENT,
                         QT_QPA_PLATFORM="offscreen", GDAL_PAM_ENABLED="NO", XDG_RUNTIME_DIR=str(tmp_path))
    enabled = subprocess.run(["qgis_process.bin", "plugins", "enable", "surface_motion"], env=qgis_env,
                             capture_output=True, text=True, timeout=300)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    # before: this QGIS has no pystac-client, the catalogue 404s: the error names the installer
    before = find_cubes_cli(qgis_env, cube_server, tmp_path / "before.gpkg")
    assert before.returncode != 0
    assert "pystac-client is not installed" in before.stdout + before.stderr
    assert dependencies.INSTALL_ACTION in before.stdout + before.stderr

    # install with the QGIS Python itself (as the menu action does in QGIS), into the profile folder
    os.makedirs(PIP_CACHE, exist_ok=True)
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from surface_motion.core import dependencies as d\n"
              "d.add_to_path(%r)\n"
              "missing = d.missing_requirements(d.read_requirements())\n"
              "print('MISSING', missing, flush=True)\n"
              "print('RESULT', d.install(missing, %r, log=print).installed)\n"
              ) % (PLUGIN_PARENT, str(folder), str(folder))
    done = subprocess.run([QGIS_PYTHON, "-c", script], env=clean_env(PIP_CACHE_DIR=PIP_CACHE),
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail("Installing requirements.txt with the QGIS Python failed — is the package registry "
                    "(https://pypi.org) reachable from this machine? pip said:\n"
                    f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    assert f"MISSING {MISSING.split(', ')}" in done.stdout
    installed = ast.literal_eval(done.stdout.split("RESULT ", 1)[1].splitlines()[0])
    check_installed(installed)
    assert len([n for n in os.listdir(folder) if n.endswith(".dist-info")]) == len(installed)
    assert "externally-managed-environment" not in done.stdout + done.stderr

    # after: the same qgis_process (no venv, no PYTHONPATH) searches STAC with the profile's pystac-client
    start = len(cube_server.log)
    after = find_cubes_cli(qgis_env, cube_server, tmp_path / "after.gpkg")
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-3000:]
    assert json.loads(after.stdout)["results"]["N_CUBES"] == 1
    requests = [(entry["method"], entry["path"]) for entry in cube_server.log[start:]]
    assert ("POST", "/stac/search") in requests and ("GET", "/no_catalog.json") not in requests
    # a second run of the installer finds nothing missing
    again = subprocess.run([QGIS_PYTHON, "-c", script], env=clean_env(PIP_CACHE_DIR=PIP_CACHE),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "MISSING []" in again.stdout and "RESULT []" in again.stdout


# --------------------------------------------------------------------------- the real desktop

DESKTOP_SCRIPT = r'''
import json, os, sys
from qgis.utils import iface, plugins
from qgis.core import QgsApplication
from qgis.gui import QgsMessageBarItem
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtGui import QTextDocument

OUT = os.environ["SM_TEST_OUT"]
report = {"executable": sys.executable, "messages": []}
module = sys.modules["surface_motion.plugin"]
module.QMessageBox.information = staticmethod(lambda parent, title, text: report["messages"].append([title, text]))
module.QMessageBox.warning = staticmethod(lambda parent, title, text: report["messages"].append([title, text]))


def shown(rich_text):
    """The text as Qt displays it (rich text rendered)."""
    document = QTextDocument()
    document.setHtml(rich_text)
    return document.toPlainText()


def finish():
    json.dump(report, open(os.path.join(OUT, "report.json"), "w"), indent=1)
    QgsApplication.instance().exit(0)


def inspect():
    report["bar"] = [shown(item.text()) for item in iface.messageBar().findChildren(QgsMessageBarItem)]
    iface.mainWindow().grab().save(os.path.join(OUT, "startup.png"))
    menus = [a.menu() for a in iface.pluginMenu().actions()
             if a.menu() is not None and a.menu().title().replace("&", "") == "Surface Motion Toolbox"]
    report["menu"] = [a.text() for a in menus[0].actions()] if menus else []
    mode = os.environ["SM_TEST_MODE"]
    if mode == "nothing":
        report["dialog"] = plugins["surface_motion"].dialog is not None
        finish()
        return
    if mode == "ask":  # the user clicks the menu entry, then Install
        action = [a for a in menus[0].actions() if a.text().startswith("Install Python dependencies")][0]
        action.trigger()
        plugins["surface_motion"].dialog.start()
    dialog = plugins["surface_motion"].dialog  # mode "install": opened and started at start-up
    report["label"] = shown(dialog.label.text())
    wait(dialog)


def wait(dialog):
    if dialog.worker is not None or not dialog.result_text:
        QTimer.singleShot(200, lambda: wait(dialog))
        return
    report["result"] = dialog.result_text
    report["log"] = dialog.log.toPlainText()
    report["progress"] = dialog.bar.value()
    import pystac_client  # installed a moment ago: importable without a restart
    report["pystac_client"] = pystac_client.__file__
    dialog.grab().save(os.path.join(OUT, "installer.png"))
    finish()


QTimer.singleShot(1500, inspect)
QTimer.singleShot(600000, finish)
'''


@pytest.mark.parametrize("mode", ["ask", "install", "nothing"])
def test_menu_action_installs_in_the_real_desktop(tmp_path, mode):
    """QGIS desktop (Xvfb) with a fresh profile. Setting "missing at start-up" = ask (default): the
    message bar names the missing pystac-client, and Plugins → Surface Motion Toolbox → Install Python
    dependencies… installs it into the profile with the QGIS Python; it imports at once. = install:
    the installer runs at start-up by itself. = nothing: no message, no installer. Screenshots in
    the test's tmp folder."""
    config = tmp_path / "config"
    ini = config / "profiles" / "default" / "QGIS"
    ini.mkdir(parents=True)
    choice = {"ask": "", "install": "[Processing]\nConfiguration\\SURFACEMOTION_DEPENDENCIES_AT_STARTUP=1\n",
              "nothing": "[Processing]\nConfiguration\\SURFACEMOTION_DEPENDENCIES_AT_STARTUP=2\n"}[mode]
    (ini / "QGIS3.ini").write_text("[PythonPlugins]\nsurface_motion=true\n" + choice)
    script = tmp_path / "desktop.py"
    script.write_text(DESKTOP_SCRIPT)
    os.makedirs(PIP_CACHE, exist_ok=True)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    env = clean_env(PATH=path, HOME=str(tmp_path), QGIS_PLUGINPATH=PLUGIN_PARENT, SM_TEST_OUT=str(tmp_path),
                    SM_TEST_MODE=mode,
                    PIP_CACHE_DIR=PIP_CACHE, XDG_RUNTIME_DIR=str(tmp_path))
    done = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo", "--noversioncheck",
                           "--profiles-path", str(config), "--code", str(script)],
                          env=env, capture_output=True, text=True, timeout=700)
    report_path = tmp_path / "report.json"
    assert report_path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    folder = str(config / "profiles" / "default" / "python" / "dependencies")
    assert "Install Python dependencies…" in report["menu"]
    notice = ("The ITS_LIVE STAC cube search needs pystac-client and pystac, not installed (until then cubes are "
              "found in the legacy catalogue). The Planet catalogue search and orders need planet, not installed "
              "(until then they stop with an install hint).")
    if mode == "nothing":
        assert notice not in report["bar"] and report["dialog"] is False and not os.path.exists(folder)
        return
    assert (notice in report["bar"]) == (mode == "ask")
    assert report["label"].startswith(f"Missing: {MISSING}.\nThey will be installed "
                                      f"with QGIS's Python into {folder} (this profile only;")
    if "Installed" not in report.get("result", ""):
        pytest.fail("The installer failed in the desktop — is the package registry (https://pypi.org) "
                    f"reachable? {report.get('result')}\n{report.get('log', '')[-3000:]}")
    result = re.fullmatch(rf"Installed (.+) into {re.escape(folder)}\. They can be used now; no restart is needed\.",
                          report["result"])
    assert result, report["result"]
    check_installed(result.group(1).split(", "))
    assert report["messages"] == [["Python dependencies installed", report["result"]]]
    assert report["progress"] == 100
    interpreter = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"  # found although sys.executable
    assert report["log"].startswith(f"Python: {interpreter}; target folder: {folder}")  # is a pyenv shim here
    assert report["pystac_client"] == os.path.join(folder, "pystac_client", "__init__.py")
    for name in ("startup.png", "installer.png"):
        assert (tmp_path / name).stat().st_size > 10000


def test_provider_settings_for_the_installer(provider):
    from processing.core.ProcessingConfig import ProcessingConfig, Setting

    from surface_motion.algorithms.settings import STARTUP_CHOICES, setting

    folder = ProcessingConfig.settings["SURFACEMOTION_DEPENDENCIES_FOLDER"]
    startup = ProcessingConfig.settings["SURFACEMOTION_DEPENDENCIES_AT_STARTUP"]
    assert folder.valuetype == Setting.FOLDER and startup.valuetype == Setting.SELECTION
    assert startup.options == STARTUP_CHOICES and startup.group == "Surface Motion Toolbox"
    saved = startup.value
    try:
        ProcessingConfig.setSettingValue("SURFACEMOTION_DEPENDENCIES_AT_STARTUP", 2)
        assert setting("SURFACEMOTION_DEPENDENCIES_AT_STARTUP") == "Do nothing"
    finally:
        ProcessingConfig.setSettingValue("SURFACEMOTION_DEPENDENCIES_AT_STARTUP", STARTUP_CHOICES.index(saved))
    assert setting("SURFACEMOTION_DEPENDENCIES_AT_STARTUP") == saved
