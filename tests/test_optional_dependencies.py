"""Every algorithm is registered even when optional heavy packages are missing; the one that needs
a missing package says how to install it."""
import subprocess
import sys

import pytest

from conftest import PLUGIN_PARENT

OPTIONAL = ("xarray", "zarr", "fsspec", "aiohttp", "pystac_client", "pystac", "matplotlib", "PIL",
            "dask", "distributed", "cv2", "skimage", "netCDF4")

SCRIPT = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {OPTIONAL!r}:
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {PLUGIN_PARENT!r})
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
sys.path.insert(0, '/usr/share/qgis/python/plugins')
from surface_motion.processing_provider.provider import SurfaceMotionProvider
provider = SurfaceMotionProvider()
QgsApplication.processingRegistry().addProvider(provider)
ids = sorted(a.id() for a in provider.algorithms())
print(len(ids))
print(' '.join(ids))
"""


def test_all_algorithms_register_without_optional_packages():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    count, ids = done.stdout.strip().splitlines()[-2:]
    assert int(count) >= 19
    for expected in ("surfacemotion:itslivedownload", "surfacemotion:itslivefindcubes",
                     "surfacemotion:s1animation", "surfacemotion:s1grdtoard", "surfacemotion:correlatepair",
                     "surfacemotion:planetscopel3bvelocity"):
        assert expected in ids.split()


def test_a_missing_package_gives_an_install_hint(provider):
    from qgis.core import QgsProcessingException

    from surface_motion.algorithms.base import run_core

    def needs_xarray(progress=None, is_canceled=None):
        raise ModuleNotFoundError("No module named 'xarray'", name="xarray")

    with pytest.raises(QgsProcessingException) as raised:
        run_core(needs_xarray, None)
    message = str(raised.value)
    assert "'xarray'" in message and "sudo apt install python3-xarray" in message
    assert "Plugins → Surface Motion Toolbox → Install Python dependencies…" in message
    assert "python3 -m pip install --target <profile>/python/dependencies xarray" in message


# --------------------------------------------------------------------------- ITS_LIVE without pystac-client

@pytest.fixture
def no_pystac_client(monkeypatch):
    """pystac-client unimportable (None in sys.modules makes every import of it raise ImportError)."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("pystac_client", "pystac")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pystac_client", None)
    monkeypatch.setitem(sys.modules, "pystac_client.stac_api_io", None)


def test_the_legacy_catalogue_answers_without_pystac_client(cube_server, no_pystac_client):
    from core.dependencies import INSTALL_ACTION
    from core.itslive.cubes import NetworkError, StacClientMissing, cubes_from_stac, find_cubes

    aoi = cube_server.items[0]["geometry"]
    with pytest.raises(StacClientMissing, match="pystac-client is not installed"):
        cubes_from_stac(cube_server.url + "/stac", aoi)
    messages = []
    start = len(cube_server.log)
    cubes = find_cubes(aoi, cube_server.url + "/stac", cube_server.url + "/catalog_v02.json", messages=messages)
    assert [cube.epsg for cube in cubes] == [3413] and cubes[0].zarr_url.endswith(".zarr")
    assert [entry["path"] for entry in cube_server.log[start:]] == ["/catalog_v02.json"]  # no STAC request
    assert len(messages) == 1 and INSTALL_ACTION in messages[0] and "legacy catalogue" in messages[0]
    # no catalogue either: the error still says how to install pystac-client
    with pytest.raises(NetworkError) as raised:
        find_cubes(aoi, cube_server.url + "/stac", cube_server.url + "/missing.json")
    assert INSTALL_ACTION in str(raised.value) and "HTTP 404" in str(raised.value)


def test_itslivefindcubes_uses_the_catalogue_without_pystac_client(run_algorithm, cube_server, no_pystac_client):
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.errors = []

        def reportError(self, error, fatalError=False):  # noqa: N802,N803 (QGIS API names)
            self.errors.append(error)

    from test_itslive_algorithms import window_extent

    extent, _ = window_extent(cube_server)
    feedback = Feedback()
    results, _, _ = run_algorithm("surfacemotion:itslivefindcubes", {
        "AOI_EXTENT": extent, "STAC_URL": cube_server.url + "/stac",
        "CATALOG_URL": cube_server.url + "/catalog_v02.json", "OUTPUT": "memory:"}, feedback=feedback)
    assert results["N_CUBES"] == 1 and next(results["OUTPUT"].getFeatures())["epsg"] == 3413
    assert any("pystac-client is not installed" in e and "legacy catalogue instead" in e for e in feedback.errors)
