"""The release ZIP (``make package`` → tools/package.py): only runtime files, one top folder
``surface_motion/``, and a provider that loads from it in a fresh QGIS profile (qgis_process.bin)."""
import configparser
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from conftest import ALGORITHM_COUNT, REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import package  # noqa: E402

MODEL_ID = "surfacemotion:planetscopel3bvelocity"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = package.build(str(tmp_path_factory.mktemp("dist")))
    with zipfile.ZipFile(path) as opened:
        assert opened.testzip() is None
        yield path, opened.namelist()


def test_zip_is_named_after_the_metadata_version(archive):
    path, _ = archive
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(REPO, "metadata.txt"), encoding="utf-8")
    assert os.path.basename(path) == f"surface_motion-{parser['general']['version']}.zip"


def test_zip_holds_the_runtime_files_only(archive):
    _, names = archive
    assert all(name.startswith("surface_motion/") for name in names)
    files = {name[len("surface_motion/"):] for name in names}
    for required in ("__init__.py", "plugin.py", "metadata.txt", "requirements.txt", "LICENSE", "CHANGELOG.md",
                     "README.md", "core/dependencies.py", "core/itslive/cubes.py", "algorithms/base.py",
                     "processing_provider/provider.py", "models/planetscope_l3b_velocity.model3",
                     "ui/icons/surface_motion.svg", "ui/styles/velocity_speed.qml", "tools/sarsen_runner.py"):
        assert required in files, required
    tops = {name.split("/")[0] for name in files}
    assert tops == {"__init__.py", "plugin.py", "metadata.txt", "requirements.txt", "LICENSE", "CHANGELOG.md",
                    "README.md", "algorithms", "core", "processing_provider", "models", "ui", "tools"}
    assert [name for name in files if name.startswith("tools/")] == ["tools/sarsen_runner.py"]
    banned = ("__pycache__", ".pyc", ".aux.xml", "/.", "tests/", "bench/", "sample/", ".venv", ".build", "dist/",
              "demo_output")
    assert [name for name in files if any(part in "/" + name for part in banned)] == []
    # every Python module of the runtime packages is in
    for top in package.RUNTIME_DIRS:
        for folder, subfolders, filenames in os.walk(os.path.join(REPO, top)):
            subfolders[:] = [d for d in subfolders if d != "__pycache__"]
            for name in filenames:
                if name.endswith(".py"):
                    assert os.path.relpath(os.path.join(folder, name), REPO).replace(os.sep, "/") in files


def test_every_versioned_entry_is_shipped_or_deliberately_left_out():
    """A new top-level folder or file must be classified in tools/package.py, and runtime code may use
    no tool but sarsen_runner.py (the only one shipped)."""
    done = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    tops = {line.split("/")[0] for line in done.stdout.splitlines()}
    shipped = {name.split("/")[0] for name in package.RUNTIME_FILES} | set(package.RUNTIME_DIRS)
    assert tops - shipped - set(package.NOT_SHIPPED) == set()
    used_tools = set()
    for top in package.RUNTIME_DIRS + ("plugin.py", "__init__.py"):
        paths = [os.path.join(REPO, top)] if top.endswith(".py") else [
            os.path.join(folder, name) for folder, _, names in os.walk(os.path.join(REPO, top))
            for name in names if name.endswith(".py")]
        for path in paths:
            text = open(path, encoding="utf-8").read()
            used_tools |= set(re.findall(r"[\"']tools[\"'],\s*[\"'](\w+\.py)[\"']", text))
            used_tools |= set(re.findall(r"tools/(\w+\.py)", text))
    assert used_tools == {"sarsen_runner.py"}


def test_metadata_and_licence(archive):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(REPO, "metadata.txt"), encoding="utf-8")
    general = parser["general"]
    assert "example.org" not in open(os.path.join(REPO, "metadata.txt"), encoding="utf-8").read()
    assert general["plugin_dependencies"] == "qpip" and general["changelog"].startswith(general["version"])
    licence = open(os.path.join(REPO, "LICENSE"), encoding="utf-8").read()
    assert licence == open("/usr/share/common-licenses/GPL-2", encoding="utf-8").read()
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 2, June 1991" in licence
    assert "GPL-2.0-or-later" in open(os.path.join(REPO, "README.md"), encoding="utf-8").read()


def test_zip_installs_into_a_fresh_profile_and_the_provider_loads(archive, provider, tmp_path):
    path, _ = archive
    config = tmp_path / "config"
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(path) as opened:
        opened.extractall(plugins)
    # no QGIS_PLUGINPATH, no PYTHONPATH: the plugin can only come from the unzipped copy
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen",
           "QGIS_CUSTOM_CONFIG_PATH": str(config), "XDG_RUNTIME_DIR": str(tmp_path)}
    enabled = subprocess.run(["qgis_process.bin", "plugins", "enable", "surface_motion"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    listed = subprocess.run(["qgis_process.bin", "--json", "list"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    answer = json.loads(listed.stdout)
    loaded = answer["providers"]["surfacemotion"]
    ids = sorted(loaded["algorithms"])
    assert len(ids) == ALGORITHM_COUNT and MODEL_ID in ids
    assert ids == sorted(a.id() for a in provider.algorithms())  # the same set as the source checkout
    assert loaded["name"] == "Surface Motion Toolbox"
