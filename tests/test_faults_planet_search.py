"""Faults of surfacemotion:planetsearch (the fault matrix, issue 12): a full disk under the footprints
layer fails clearly and leaves nothing; the same run with room writes exactly the layer. The search runs
against the loopback fake Planet Data API (tests/planet_server.py)."""
import os
import re

import pytest

from conftest import PLUGIN_PARENT
from faults import FULL_DISK_MESSAGE, leftovers, run_on_full_disk
from test_planet_search import algorithm_parameters, key_never_written
from test_planet_search import planet_settings, server  # noqa: F401 (the loopback server fixtures)



def test_planetsearch_on_a_full_disk_gives_a_clear_error_and_leaves_nothing(planet_settings, run_algorithm,  # noqa: F811
                                                                             tmp_path):
    def make_parameters(folder):
        return algorithm_parameters(os.path.join(folder, "footprints.gpkg"))

    message = run_on_full_disk(run_algorithm, "surfacemotion:planetsearch", make_parameters, 32 << 10, tmp_path,
                               PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    folder = tmp_path / "roomy"
    results, _, _ = run_algorithm("surfacemotion:planetsearch", make_parameters(str(folder)))
    assert leftovers(str(folder)) == ["footprints.gpkg"] and results["N_SCENES"] > 0
    key_never_written(tmp_path, [message])
