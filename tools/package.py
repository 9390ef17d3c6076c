"""Build the release ZIP ``dist/surface_motion-<version>.zip`` (``make package``).

The archive holds one top folder ``surface_motion/`` (the name QGIS imports the plugin by) with
only what the plugin uses at run time — the Python packages, the shipped model, icons and
styles, ``tools/sarsen_runner.py`` (run by surfacemotion:s1grdtoard), metadata, requirements.txt
(read by QPIP and the installer), LICENSE, CHANGELOG.md and README.md (the algorithms' help
links to it). Not included: tests, bench, the other tools (demo, sample and truth generators),
the embedded sample (8 MB of test scenes; ``make demo`` in a source checkout uses it), caches,
virtual environments, build and demo outputs. Ready for *Plugins → Manage and Install Plugins →
Install from ZIP* and for upload to the official plugin repository.
"""
from __future__ import annotations

import argparse
import configparser
import os
import sys
import zipfile
from typing import List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from core.io.files import atomic_file  # noqa: E402  (the shared writer: whole file or none)
PLUGIN_NAME = "surface_motion"
#: Files of the plugin root that ship.
RUNTIME_FILES = ("__init__.py", "plugin.py", "metadata.txt", "requirements.txt", "LICENSE", "CHANGELOG.md",
                 "README.md", "tools/sarsen_runner.py")
#: Folders that ship whole (minus caches).
RUNTIME_DIRS = ("algorithms", "core", "processing_provider", "models", "ui")
#: Versioned top-level entries that are not shipped (developer set-up, tests, benchmarks, the sample;
#: tools/ ships only sarsen_runner.py). tests/test_package.py fails on any entry in neither list.
NOT_SHIPPED = (".ci", ".gitignore", "Makefile", "requirements-plugin.txt", "requirements-test.txt", "bench", "sample",
               "tests", "tools")
#: Never shipped, wherever they appear.
SKIPPED_DIRS = {"__pycache__", ".pytest_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".aux.xml", ".orig", ".rej", "~")


def plugin_version(repo: str = REPO) -> str:
    """``version`` of metadata.txt's [general] section."""
    parser = configparser.ConfigParser(interpolation=None)
    with open(os.path.join(repo, "metadata.txt"), encoding="utf-8") as handle:
        parser.read_file(handle)
    return parser["general"]["version"].strip()


def runtime_files(repo: str = REPO) -> List[str]:
    """Paths (relative to ``repo``, with ``/``) of every file the ZIP holds, sorted."""
    files = []
    for name in RUNTIME_FILES:
        if not os.path.isfile(os.path.join(repo, name)):
            raise SystemExit(f"package: {name} is missing in {repo}")
        files.append(name)
    for top in RUNTIME_DIRS:
        for folder, subfolders, names in os.walk(os.path.join(repo, top)):
            subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_DIRS and not d.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or name.endswith(SKIPPED_SUFFIXES):
                    continue
                files.append(os.path.relpath(os.path.join(folder, name), repo).replace(os.sep, "/"))
    return sorted(files)


def build(out_dir: str, repo: str = REPO) -> str:
    """Write ``<out_dir>/surface_motion-<version>.zip`` and return its path (written whole or not at all,
    checked with ``testzip`` before it takes its name)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{PLUGIN_NAME}-{plugin_version(repo)}.zip")
    files = runtime_files(repo)

    def verify(tmp: str) -> None:
        with zipfile.ZipFile(tmp) as archive:
            if archive.testzip() is not None or len(archive.namelist()) != len(files):
                raise OSError("the ZIP reads back incomplete")

    with atomic_file(path, verify=verify) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in files:
                archive.write(os.path.join(repo, name), f"{PLUGIN_NAME}/{name}")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "dist"), help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    path = build(args.out)
    with zipfile.ZipFile(path) as archive:
        count = len(archive.namelist())
    print(f"{path}: {count} files, {os.path.getsize(path) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
