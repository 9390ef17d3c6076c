"""Every algorithm is registered even when optional heavy packages are missing; the one that needs
a missing package says how to install it."""
import subprocess
import sys

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
    import pytest
    from qgis.core import QgsProcessingException

    from surface_motion.algorithms.base import run_core

    def needs_xarray(progress=None, is_canceled=None):
        raise ModuleNotFoundError("No module named 'xarray'", name="xarray")

    with pytest.raises(QgsProcessingException) as raised:
        run_core(needs_xarray, None)
    message = str(raised.value)
    assert "'xarray'" in message and "sudo apt install python3-xarray" in message
    assert "python3 -m pip install xarray" in message
