"""Faults of surfacemotion:stackvelocity and surfacemotion:aoitimeline: a truncated pair raster (named, nothing
written) and a full disk (clear message, nothing left). Inputs: the small UTM velocity network of series_data,
made bigger so that a truncated copy loses pixel blocks."""
import os
import re

import numpy as np
import pytest

from conftest import PLUGIN_PARENT
from faults import FULL_DISK_MESSAGE, TRUNCATED_MESSAGE, leftovers, run_on_full_disk, truncated_copy
from series_data import aoi_geojson, velocity_raster

SHAPE = (96, 96)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series_faults")
    rng = np.random.default_rng(0)
    paths = [velocity_raster(os.path.join(str(folder), f"pair{i}_velocity.tif"), rng.normal(5, 1, SHAPE),
                             rng.normal(-2, 1, SHAPE), sec=f"2020-02-1{i + 1}") for i in range(3)]
    # the AOI rectangle, buffered by 400 m (BUFFER below) to cover the whole raster: every block is read
    return {"paths": paths, "aoi": aoi_geojson(folder)[0]}


def parameters(algorithm, inputs, folder):
    folder = str(folder)
    if algorithm == "stackvelocity":
        return {"INPUT": inputs["paths"], "OUTPUT": os.path.join(folder, "stack.tif")}
    return {"INPUT": inputs["paths"], "AOI": inputs["aoi"], "BUFFER": 400.0,
            "OUTPUT": os.path.join(folder, "timeline.gpkg"), "OUTPUT_CSV": os.path.join(folder, "timeline.csv"),
            "PLOT_FOLDER": os.path.join(folder, "plots")}


@pytest.mark.parametrize("algorithm", ["stackvelocity", "aoitimeline"])
def test_a_truncated_input_is_named_and_nothing_is_written(network, run_algorithm, tmp_path, algorithm):
    from qgis.core import QgsProcessingException

    broken = truncated_copy(network["paths"][1], str(tmp_path / "pair1_truncated.tif"))
    inputs = dict(network, paths=[network["paths"][0], broken, network["paths"][2]])
    out = tmp_path / "out"
    pattern = TRUNCATED_MESSAGE.format(name=re.escape(os.path.basename(broken)))
    with pytest.raises(QgsProcessingException, match=pattern):
        run_algorithm(f"surfacemotion:{algorithm}", parameters(algorithm, inputs, out))
    assert not out.exists() or leftovers(str(out)) == []


@pytest.mark.parametrize("algorithm", ["stackvelocity", "aoitimeline"])
def test_full_disk_gives_a_clear_error_and_leaves_nothing(network, run_algorithm, tmp_path, algorithm):
    message = run_on_full_disk(run_algorithm, f"surfacemotion:{algorithm}",
                               lambda out: parameters(algorithm, network, out), 20_000, tmp_path, PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "Traceback" not in message
