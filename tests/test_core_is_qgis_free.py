"""core/ must stay free of QGIS and Qt so it runs in plain Python, subprocesses and clusters."""
import ast
import os
import subprocess
import sys

from conftest import REPO

FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "sip")


def imported_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_core_module_imports_qgis_or_qt():
    offenders = []
    core_dir = os.path.join(REPO, "core")
    scanned = 0
    for folder, _, names in os.walk(core_dir):
        for name in sorted(n for n in names if n.endswith(".py")):
            path = os.path.join(folder, name)
            scanned += 1
            for module in imported_modules(path):
                if module.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{os.path.relpath(path, REPO)}: {module}")
    assert offenders == []
    assert scanned >= 20  # core/, core/itslive/, core/sentinel1/


def test_core_imports_in_a_python_without_qgis_loaded():
    code = (
        "import sys, pkgutil, importlib\n"
        "import core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in %r]\n"
        "assert not bad, bad\n"
        "print('ok', len([m for m in sys.modules if m.startswith('core.')]))\n" % (FORBIDDEN,)
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
    assert int(done.stdout.split()[1]) >= 8
