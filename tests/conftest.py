"""Test set-up: the repository is importable both as `core` (QGIS-free tests) and as the
installed plugin package `surface_motion` (QGIS tests, through a symlink)."""
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "sample")
DATA_DIR = os.path.join(REPO, "tests", "data")
PLUGIN_PARENT = tempfile.mkdtemp(prefix="sm-plugins-")
os.symlink(REPO, os.path.join(PLUGIN_PARENT, "surface_motion"))
for path in (REPO, PLUGIN_PARENT):
    if path not in sys.path:
        sys.path.insert(0, path)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
#: Algorithms and shipped models the provider registers (one number for every test that counts them:
#: a new algorithm must be added here on purpose, with its fault, bad-input and help cases).
ALGORITHM_COUNT = 32


def is_loopback(address) -> bool:
    """Whether a socket address (AF_INET/AF_INET6 tuple, or a Unix path) stays on this machine."""
    import ipaddress

    if not isinstance(address, tuple):
        return True  # AF_UNIX
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: it would be resolved and contacted


class NetworkContacted(AssertionError):
    """A test tried to reach a host that is not loopback."""


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """No test contacts anything but loopback: a TCP connection to another host fails the test at once
    (in this process; subprocesses are pointed at loopback servers by their tests). A UDP connect()
    sends nothing and stays allowed: Dask finds the machine's address that way (8.8.8.8:80)."""
    import socket

    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(original):
        def connect(sock, address):
            if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
                    and not is_loopback(address)):
                raise NetworkContacted(f"a test tried to contact {address!r}; only loopback is allowed")
            return original(sock, address)
        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(original_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(original_connect_ex))
    yield


def pytest_unconfigure(config):
    shutil.rmtree(PLUGIN_PARENT, ignore_errors=True)


@pytest.fixture(scope="session")
def provider(qgis_processing):
    """The surfacemotion provider registered in the session's processing registry."""
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("surfacemotion")
    if existing is not None:
        return existing
    from surface_motion.processing_provider.provider import SurfaceMotionProvider

    instance = SurfaceMotionProvider()
    assert registry.addProvider(instance)
    provider.keep = instance  # keep a Python reference for the whole session
    return instance


@pytest.fixture(scope="module")
def cube_server(tmp_path_factory):
    """The loopback ITS_LIVE server (tests/itslive_server.py) serving one real-data cube, per module."""
    from itslive_server import ITSLiveServer, build_cube

    root = str(tmp_path_factory.mktemp("itslive_root"))
    build_cube(root)
    server = ITSLiveServer(root).start()
    yield server
    server.stop()


@pytest.fixture
def run_algorithm(provider):
    """Run a surfacemotion algorithm in-process; returns (results, context, feedback)."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    def run(algorithm_id, parameters, feedback=None):
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        feedback = feedback or QgsProcessingFeedback()
        results = processing.run(algorithm_id, parameters, context=context, feedback=feedback)
        return results, context, feedback

    return run


@pytest.fixture(scope="session")
def qgis_process_env():
    """Environment for `qgis_process.bin` with the plugin discoverable and enabled."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import demo

    env = demo.qgis_process_env(PLUGIN_PARENT)
    done = subprocess.run(["qgis_process.bin", "plugins", "enable", "surface_motion"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


@pytest.fixture
def sample_scenes():
    """Paths of the embedded sample scenes (4-band L3B-like GeoTIFFs), oldest first."""
    import glob

    scenes = sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_3B_AnalyticMS_SR_clip.tif")))
    assert len(scenes) >= 4
    return scenes


def skip_unless_installed(what: str, how: str) -> None:
    """Skip a test whose optional tool is missing; under ``make test`` (SM_MAKE_TEST=1), whose ``make
    deps`` installs every such tool, a missing one fails instead: a skip there would hide a broken
    install step."""
    if os.environ.get("SM_MAKE_TEST") == "1":
        pytest.fail(f"{what} is missing although `make deps` installs it ({how}): check the install step")
    pytest.skip(f"{what} is not installed ({how})")


def require_numba():
    """Skip a test comparing a compiled kernel with its numpy fallback where numba is not installed
    (the fallbacks run in every other test); fails under ``make test``."""
    try:
        importlib.import_module("numba")
    except ImportError:
        skip_unless_installed("numba", "python3-numba")


def require_programs(*programs: str) -> None:
    """Skip (fail under ``make test``) unless every program is on PATH."""
    missing = [name for name in programs if shutil.which(name) is None]
    if missing:
        skip_unless_installed(", ".join(missing), "make system-deps installs the Debian packages")
