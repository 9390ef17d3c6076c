"""Faults of surfacemotion:coregisterdem: a truncated DEM or reference (named, nothing written) and a
full disk (clear message, nothing left). Inputs: the Rome DEM in UTM 33N moved by the known shift."""
import os
import re

import pytest

from conftest import PLUGIN_PARENT
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, leftovers, run_on_full_disk, truncated_copy
from test_core_dem import displaced_copy, rome_utm


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coreg_faults")
    reference = rome_utm(folder / "rome_utm33.tif")
    return {"REFERENCE": reference, "DEM": displaced_copy(reference, folder / "dem.tif")}


def parameters(inputs, folder):
    folder = str(folder)
    return {**inputs, "OUTPUT": os.path.join(folder, "coreg.tif"), "DH_BEFORE": os.path.join(folder, "before.tif"),
            "DH_AFTER": os.path.join(folder, "after.tif"), "REPORT": os.path.join(folder, "report.csv")}


@pytest.mark.parametrize("name", ["DEM", "REFERENCE"])
def test_a_truncated_input_is_named_and_nothing_is_written(pair, run_algorithm, tmp_path, name):
    from qgis.core import QgsProcessingException

    broken = truncated_copy(pair[name], str(tmp_path / f"truncated_{name.lower()}.tif"))
    out = tmp_path / "out"
    pattern = TRUNCATED_MESSAGE.format(name=re.escape(os.path.basename(broken)))
    with pytest.raises(QgsProcessingException, match=pattern):
        run_algorithm("surfacemotion:coregisterdem", parameters(dict(pair, **{name: broken}), out))
    assert not out.exists() or leftovers(str(out)) == []


@pytest.mark.parametrize("free_bytes", [20_000, 300_000])
def test_full_disk_gives_a_clear_error_and_leaves_nothing(pair, run_algorithm, tmp_path, free_bytes):
    """Too little room for the first raster, and room for some outputs but not all (all or nothing)."""
    message = run_on_full_disk(run_algorithm, "surfacemotion:coregisterdem", lambda out: parameters(pair, out),
                               free_bytes, tmp_path, PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "Traceback" not in message
