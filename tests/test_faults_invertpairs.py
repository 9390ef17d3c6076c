"""Faults of surfacemotion:invertpairs (issue 14): a truncated pair raster gives a clear error naming it and no
output; a full disk under the output folder leaves nothing and says so (the six rasters are one OutputSet)."""
import os
import re

import pytest

from conftest import PLUGIN_PARENT
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, error_log, leftovers, run_on_full_disk, truncated_copy
from test_series_inversion import write_network


@pytest.fixture(scope="module")
def small_network(tmp_path_factory):
    return write_network(str(tmp_path_factory.mktemp("faults_network")), n_pairs=12)


def test_truncated_pair_raster_gives_a_clear_error_and_no_output(small_network, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    cut = truncated_copy(small_network[3], str(tmp_path / "cut_disp.tif"), keep=0.3)
    # keep its dates: the copy has the tags, the name has no ids
    out = tmp_path / "out"
    feedback = error_log()
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm("surfacemotion:invertpairs", {"INPUT": small_network[:3] + [cut] + small_network[4:],
                                                    "MIN_PAIRS": 2, "OUTPUT_FOLDER": str(out)}, feedback=feedback)
    message = "\n".join([str(raised.value), *feedback.errors])
    assert re.search(TRUNCATED_MESSAGE.format(name="cut_disp.tif"), message, re.DOTALL), message
    assert "Traceback" not in message
    assert not out.exists() or leftovers(str(out)) == []


def test_full_disk_gives_a_clear_error_and_leaves_nothing(small_network, run_algorithm, tmp_path):
    message = run_on_full_disk(
        run_algorithm, "surfacemotion:invertpairs",
        lambda out: {"INPUT": small_network, "MIN_PAIRS": 2, "REGULARISATION": 0.1,
                     "OUTPUT_FOLDER": os.path.join(out, "series")},
        40_000, tmp_path, PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "Traceback" not in message
