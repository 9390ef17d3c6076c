"""The plugin's Python dependencies: which are missing, and installing them into the profile.

QGIS-free on purpose: the caller passes the dependencies folder (the QGIS side uses
``<profile>/python/dependencies``, the folder the QPIP plugin installs into, so both share it).

Installing works with the Python QGIS runs on, on every platform, and under PEP 668
(Debian/Ubuntu "externally managed" Pythons) without ``--break-system-packages``:

1. pip resolves the requirements with ``--dry-run --report --prefix <temporary folder>``
   (``--prefix`` lifts the PEP 668 check and keeps the installed packages: only what is really
   missing is listed), with a constraints file pinning the running numpy, GDAL and the other
   scientific packages QGIS is built against, so pip never picks a version that needs new ones;
2. exactly that list is installed with ``--target <dependencies folder> --no-deps``.

Old pips without ``--report`` (< 22.2) install in one step with ``--target`` and the constraints.
The folder is appended to ``sys.path`` (:func:`add_to_path`), after QGIS's own packages, so it
can add packages but never shadow QGIS's numpy or GDAL.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .errors import Cancelled, UserInputError

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: pip-only runtime packages (read by QPIP, by :func:`read_requirements` and by ``make venv``).
REQUIREMENTS_FILE = os.path.join(PLUGIN_DIR, "requirements.txt")
#: Where a user finds the installer (named by every missing-package message).
INSTALL_ACTION = "Plugins → Surface Motion Toolbox → Install Python dependencies…"

#: Distributions QGIS (or the system) ships and pip must never replace: mixing numpy/GDAL
#: builds crashes QGIS. Pinned to the running versions in every install (:func:`constraints`).
#: (Not xarray: Debian's reports the version 999.)
PINNED = ("numpy", "GDAL", "scipy", "pandas", "rasterio", "pytest", "matplotlib", "affine",
          "scikit-image", "shapely", "pyproj", "Pillow", "opencv", "netCDF4", "h5py", "numba",
          "llvmlite", "zarr", "numcodecs", "dask", "distributed", "fsspec", "aiohttp",
          "requests", "urllib3", "python-dateutil")

#: Optional packages, by import name: (pip requirement, Debian package or None). The installer
#: adds the pip requirement of every one that cannot be imported (on Debian/Ubuntu apt is the
#: better way for those with a Debian package; the installer says so).
OPTIONAL: Dict[str, Tuple[str, Optional[str]]] = {
    "scipy": ("scipy", "python3-scipy"), "pandas": ("pandas", "python3-pandas"),
    "rasterio": ("rasterio", "python3-rasterio"), "shapely": ("shapely", "python3-shapely"),
    "pyproj": ("pyproj", "python3-pyproj"), "requests": ("requests", "python3-requests"),
    "xarray": ("xarray", "python3-xarray"), "zarr": ("zarr>=2.13,<3", "python3-zarr"),
    "fsspec": ("fsspec", "python3-fsspec"), "aiohttp": ("aiohttp", "python3-aiohttp"),
    "matplotlib": ("matplotlib", "python3-matplotlib"), "PIL": ("pillow", "python3-pil"),
    "netCDF4": ("netCDF4", "python3-netcdf4"), "dask": ("dask", "python3-dask"),
    "distributed": ("distributed", "python3-distributed"),
}
#: Import name of each requirements.txt distribution (for the messages).
PIP_ONLY = {"pystac_client": "pystac-client", "pystac": "pystac", "planet": "planet", "httpx": "httpx"}
#: What the requirements.txt distributions are for, for the start-up notice: (feature, verb, what
#: happens until they are installed), by distribution name.
PURPOSES = {
    "pystac-client": ("The ITS_LIVE STAC cube search", "needs", "until then cubes are found in the legacy catalogue"),
    "pystac": ("The ITS_LIVE STAC cube search", "needs", "until then cubes are found in the legacy catalogue"),
    "planet": ("The Planet catalogue search and orders", "need", "until then they stop with an install hint"),
}

_PEP440 = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def missing_notice(names: Sequence[str]) -> str:
    """The start-up notice naming the missing distributions ``names`` and what each group is for:
    "The ITS_LIVE STAC cube search needs pystac-client and pystac, not installed (until then …)."."""
    groups: Dict[Tuple[str, str, str], List[str]] = {}
    for name in names:
        groups.setdefault(PURPOSES.get(name, ("The plugin", "needs", "until then some algorithms stop with an "
                                                              "install hint")), []).append(name)
    return " ".join(f"{feature} {verb} {' and '.join(group)}, not installed ({until})."
                    for (feature, verb, until), group in groups.items())


def _packaging():
    """``packaging.requirements``/``version`` (standalone or the copy pip vendors)."""
    try:
        from packaging import requirements, version
    except ImportError:  # QGIS Pythons without packaging still have pip
        from pip._vendor.packaging import requirements, version
    return requirements, version


# --------------------------------------------------------------------------- what is needed

def read_requirements(path: str = REQUIREMENTS_FILE) -> List[str]:
    """Requirement lines of a requirements file (comments, blank lines and options dropped)."""
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                lines.append(line)
    return lines


def requirement_name(requirement: str) -> str:
    """Distribution name of a requirement string (``'pystac>=1.8,<1.9'`` → ``'pystac'``)."""
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"Not a requirement: {requirement!r}")
    return match.group(1)


def missing_requirements(requirements: Sequence[str]) -> List[str]:
    """The requirements not satisfied by the distributions importable now (``sys.path``)."""
    requirements_module, _ = _packaging()
    missing = []
    for text in requirements:
        requirement = requirements_module.Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            missing.append(text)
    return missing


def missing_optional() -> List[str]:
    """pip requirements of the :data:`OPTIONAL` packages that cannot be imported."""
    import importlib.util

    return [pip for module, (pip, _) in OPTIONAL.items() if importlib.util.find_spec(module) is None]


def constraints(names: Sequence[str] = PINNED) -> List[str]:
    """pip constraints ``name==version`` pinning the installed version of each of ``names``.

    Debian's local suffixes are dropped (``2.13.6+ds`` → ``==2.13.6``, which the installed
    ``2.13.6+ds`` satisfies); absent packages and unparsable versions are left out.
    """
    pins = []
    for name in names:
        try:
            version = (metadata.version(name) or "").split("+", 1)[0]
        except metadata.PackageNotFoundError:
            continue
        if _PEP440.match(version):
            pins.append(f"{name}=={version}")
    return pins


# --------------------------------------------------------------------------- where

def qgis_python(executable: str = sys.executable, exec_prefix: str = sys.exec_prefix,
                platform: str = sys.platform, version: Tuple[int, int] = sys.version_info[:2]) -> str:
    """The Python interpreter of the running QGIS (inside QGIS ``sys.executable`` is QGIS itself).

    Linux: ``<exec_prefix>/bin/python3.X`` (Debian/Ubuntu: /usr/bin/python3.11); Windows
    (OSGeo4W, standalone installer): ``<exec_prefix>\\python.exe`` (``apps\\Python39``);
    macOS QGIS.app: ``<exec_prefix>/bin/python3.X`` (the bundled Python.framework) or
    ``Contents/MacOS/bin/python3``; in a virtual or conda environment its own Python.
    Raises :class:`UserInputError` naming the places tried.
    """
    major, minor = version
    if platform.startswith("win"):
        candidates = [os.path.join(exec_prefix, "python.exe"), os.path.join(exec_prefix, "python3.exe"),
                      os.path.join(os.path.dirname(executable), "python.exe"),
                      os.path.join(os.path.dirname(executable), "python3.exe")]
    else:
        names = [f"python{major}.{minor}", f"python{major}"]
        candidates = [os.path.join(exec_prefix, "bin", name) for name in names]
        if platform == "darwin":  # QGIS.app/Contents/MacOS/QGIS → QGIS.app/Contents/MacOS/bin/python3
            candidates += [os.path.join(os.path.dirname(executable), "bin", name) for name in names]
    # sys.executable last: inside QGIS it is QGIS itself, or whatever `python3` comes first on PATH
    # (a pyenv shim, another version), so it counts only when the interpreter's own prefix has none
    if re.match(r"^python[\d.]*(\.exe)?$", os.path.basename(executable).lower()):
        candidates.append(executable)
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise UserInputError(
        f"Cannot find the Python interpreter of this QGIS (QGIS runs as {executable}); tried: "
        f"{', '.join(candidates)}. Install the packages of requirements.txt with that Python's pip "
        "(see the plugin's README, 'Installing into a desktop QGIS').")


def add_to_path(folder: str) -> bool:
    """Append ``folder`` to ``sys.path`` (after QGIS's own packages: it never shadows them).

    Returns True if it was added now. The folder need not exist yet; once pip has filled it,
    :func:`refresh_imports` makes new packages importable without restarting QGIS.
    """
    folder = os.path.normpath(folder)
    if any(os.path.normpath(entry) == folder for entry in sys.path if entry):
        return False
    sys.path.append(folder)
    return True


def refresh_imports(folder: str) -> None:
    """Forget cached import lookups so packages just installed in ``folder`` import."""
    import importlib

    sys.path_importer_cache.pop(os.path.normpath(folder), None)
    sys.path_importer_cache.pop(folder, None)
    importlib.invalidate_caches()


# --------------------------------------------------------------------------- installing

@dataclass
class InstallResult:
    """What an install did: ``installed`` as ``name==version`` (empty: nothing was missing)."""

    folder: str
    python: str
    installed: List[str] = field(default_factory=list)
    log: List[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.installed:
            return f"Nothing to install: every package is already available (folder {self.folder})."
        return f"Installed {', '.join(self.installed)} into {self.folder}."


def install(requirements: Sequence[str], folder: str, python: Optional[str] = None,
            log: Callable[[str], None] = lambda line: None, progress: Callable[[float], None] = lambda p: None,
            is_canceled: Optional[Callable[[], bool]] = None, timeout: float = 900.0) -> InstallResult:
    """Install ``requirements`` that are missing into ``folder`` with the QGIS Python's pip.

    ``log`` receives pip's output line by line, ``progress`` 0–100 %. Raises
    :class:`UserInputError` (pip missing, no network, no compatible version: the message holds
    pip's last lines) or :class:`Cancelled`.
    """
    python = python or qgis_python()
    result = InstallResult(folder=folder, python=python)
    if not requirements:
        progress(100.0)
        return result

    def emit(line: str) -> None:
        result.log.append(line)
        log(line)

    os.makedirs(folder, exist_ok=True)
    # pip sees the packages already in the folder (so they count as installed)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONPATH=os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH", "")) if p))
    with tempfile.TemporaryDirectory(prefix="sm-pip-") as scratch:
        pins, pinned = os.path.join(scratch, "constraints.txt"), constraints()
        with open(pins, "w", encoding="utf-8") as handle:
            handle.write("\n".join(pinned) + "\n")
        emit(f"Python: {python}; target folder: {folder}; constraints: {', '.join(pinned)}")
        code, _ = _run([python, "-m", "pip", "--version"], env, emit, is_canceled, timeout)
        if code != 0:
            raise UserInputError(
                f"pip is not available for {python}. Debian/Ubuntu: sudo apt install python3-pip; "
                "Windows: run the OSGeo4W setup and add python3-pip; macOS: "
                f"{python} -m ensurepip --user. Then try again.")
        progress(10.0)
        report = os.path.join(scratch, "report.json")
        code, output = _run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", report,
                             "--prefix", os.path.join(scratch, "prefix"), "-c", pins, *requirements],
                            env, emit, is_canceled, timeout)
        if code != 0 and "no such option: --report" in output:
            emit("This pip has no --report (pip < 22.2): installing in one step with --target.")
            command = [python, "-m", "pip", "install", "--target", folder, "--upgrade", "-c", pins,
                       *requirements]
            result.installed = list(requirements)
        elif code != 0:
            raise _pip_failure("resolve", requirements, result.log)
        else:
            with open(report, encoding="utf-8") as handle:
                items = json.load(handle).get("install", [])
            result.installed = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items]
            if not result.installed:
                progress(100.0)
                return result
            emit("To install: " + ", ".join(result.installed))
            command = [python, "-m", "pip", "install", "--target", folder, "--no-deps", "--upgrade",
                       "-c", pins, *result.installed]
        progress(50.0)
        code, _ = _run(command, env, emit, is_canceled, timeout)
        if code != 0:
            raise _pip_failure("install", requirements, result.log)
    refresh_imports(folder)
    progress(100.0)
    return result


def _pip_failure(step: str, requirements: Sequence[str], lines: Sequence[str]) -> UserInputError:
    tail = " | ".join(line for line in lines[-12:] if line.strip())
    return UserInputError(
        f"pip could not {step} {', '.join(requirements)}: {tail[-1500:]}. Check the network (pip must "
        "reach https://pypi.org, or set a proxy in pip's configuration) and try again.")


def _run(command: List[str], env: dict, emit: Callable[[str], None],
         is_canceled: Optional[Callable[[], bool]], timeout: float) -> Tuple[int, str]:
    """Run ``command``, passing its output to ``emit`` line by line; killed on cancel or timeout."""
    import threading
    import time

    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window on Windows
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               stdin=subprocess.DEVNULL, text=True, errors="replace", creationflags=flags,
                               start_new_session=os.name == "posix")  # its own group: killed with its children
    lines: List[str] = []

    def read() -> None:
        for line in process.stdout:
            lines.append(line.rstrip())
            emit(line.rstrip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.monotonic()
    while process.poll() is None:
        if (is_canceled is not None and is_canceled()) or time.monotonic() - start > timeout:
            _kill_tree(process)
            reader.join(5)
            if is_canceled is not None and is_canceled():
                raise Cancelled("Cancelled by the user: pip was stopped.")
            raise UserInputError(f"pip did not finish within {timeout:.0f} s: {' '.join(command[:4])}…")
        time.sleep(0.1)
    reader.join(5)
    return process.returncode, "\n".join(lines)


def _kill_tree(process: subprocess.Popen) -> None:
    """Kill ``process`` and the processes it started (pip's build back-ends hold its output pipe)."""
    if os.name == "posix":
        import signal

        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True,
                       creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        process.kill()
    process.wait()
