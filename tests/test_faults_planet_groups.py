"""Faults of surfacemotion:planetgroups and of buildpairs with footprints (issue 12): a full disk under
both outputs leaves nothing and says so; a truncated footprints file gives a clear error, not a
traceback, and no output."""
import os
import re

import pytest

from conftest import PLUGIN_PARENT
from faults import FULL_DISK_MESSAGE, error_log, leftovers, run_on_full_disk
from planet_footprints import SAMPLE_SCENES, sample_footprints


@pytest.fixture(scope="module")
def footprints_file(tmp_path_factory):
    return sample_footprints(str(tmp_path_factory.mktemp("footprints") / "footprints.geojson"))


FULL_DISK_CASES = {
    "planetgroups": ("surfacemotion:planetgroups", 6_000, lambda layer, out: {
        "INPUT": layer, "MIN_GROUP_SIZE": 2, "MIN_DAYS": 0, "DEM_MIN_VIEW_ANGLE": 2, "DEM_MAX_DAYS": 200,
        "OUTPUT": os.path.join(out, "groups.gpkg"), "DEM_PAIRS": os.path.join(out, "dem_pairs.gpkg")}),
    "buildpairs FOOTPRINTS": ("surfacemotion:buildpairs", 8_000, lambda layer, out: {
        "INPUTS": SAMPLE_SCENES, "FOOTPRINTS": layer, "OUTPUT": os.path.join(out, "pairs.gpkg"),
        "OUTPUT_CSV": os.path.join(out, "pairs.csv")}),
}


@pytest.mark.parametrize("case", sorted(FULL_DISK_CASES))
def test_full_disk_gives_a_clear_error_and_leaves_nothing(case, footprints_file, run_algorithm, tmp_path):
    algorithm, free_bytes, parameters = FULL_DISK_CASES[case]
    message = run_on_full_disk(run_algorithm, algorithm, lambda out: parameters(footprints_file, out), free_bytes,
                               tmp_path, PLUGIN_PARENT)
    assert re.search(FULL_DISK_MESSAGE, message), message
    assert "Traceback" not in message


@pytest.mark.parametrize("algorithm", ["surfacemotion:planetgroups", "surfacemotion:buildpairs"])
def test_truncated_footprints_give_a_clear_error_and_no_output(algorithm, footprints_file, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    with open(footprints_file, encoding="utf-8") as handle:
        text = handle.read()
    cut = tmp_path / "cut_footprints.geojson"
    cut.write_text(text[: len(text) // 2], encoding="utf-8")
    out = tmp_path / "out"
    parameters = ({"INPUT": str(cut), "OUTPUT": str(out / "g.gpkg"), "DEM_PAIRS": str(out / "d.gpkg")}
                  if algorithm.endswith("planetgroups") else
                  {"INPUTS": SAMPLE_SCENES, "FOOTPRINTS": str(cut), "OUTPUT": str(out / "p.gpkg"),
                   "OUTPUT_CSV": str(out / "p.csv")})
    feedback = error_log()
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(algorithm, parameters, feedback=feedback)
    message = "\n".join([str(raised.value), *feedback.errors])
    assert "cut_footprints.geojson" in message and "Traceback" not in message, message
    assert not out.exists() or leftovers(str(out)) == []
