"""surfacemotion:stackvelocity end to end: in-process and with qgis_process.bin, numbers equal to
core.series.stack.stack_statistics of the inputs, band descriptions, CRS, nodata, SM_SERIES_SOURCES, pair table."""
import json
import os
import subprocess

import numpy as np
import pytest
import rasterio

from core.series.stack import STACK_BANDS, STACK_DESCRIPTIONS, stack_statistics
from series_data import DATES, velocity_network


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    return velocity_network(tmp_path_factory.mktemp("stackvelocity"))


def check_output(path, fields, paths):
    e = np.array([f[0] for f in fields])
    n = np.array([f[1] for f in fields])
    want = stack_statistics(np.hypot(e, n), e, n)
    with rasterio.open(path) as ds:
        assert ds.descriptions == STACK_DESCRIPTIONS and ds.count == 11
        assert ds.crs.to_epsg() == 32618 and np.isnan(ds.nodata) and ds.dtypes[0] == "float32"
        for index, (name, _) in enumerate(STACK_BANDS, start=1):
            np.testing.assert_allclose(ds.read(index), want[name].astype(np.float32), rtol=2e-6, atol=1e-5,
                                       equal_nan=True, err_msg=name)
        sources = json.loads(ds.tags()["SM_SERIES_SOURCES"])
    assert [s["path"] for s in sources] == [os.path.abspath(p) for p in paths]
    assert [(s["ref_date"][:10], s["sec_date"][:10]) for s in sources] == list(DATES)
    assert os.path.isfile(path[:-4] + ".qml")  # the velocity speed style sidecar


def test_stackvelocity_in_process(network, run_algorithm, tmp_path):
    paths, fields = network
    out = str(tmp_path / "stack.tif")
    results, _, feedback = run_algorithm("surfacemotion:stackvelocity", {"INPUT": paths, "OUTPUT": out})
    assert results["OUTPUT"] == out
    check_output(out, fields, paths)


def test_stackvelocity_from_a_pair_table(network, run_algorithm, tmp_path):
    paths, fields = network
    table = tmp_path / "pairs.csv"
    table.write_text("path\n" + "\n".join(paths) + "\n")
    out = str(tmp_path / "stack.tif")
    run_algorithm("surfacemotion:stackvelocity", {"PAIR_TABLE": str(table), "OUTPUT": out})
    check_output(out, fields, paths)


def test_stackvelocity_runs_from_the_command_line(network, tmp_path, qgis_process_env):
    paths, fields = network
    out = str(tmp_path / "cli_stack.tif")
    arguments = ["--json", "run", "surfacemotion:stackvelocity", "--"] + [f"INPUT={p}" for p in paths] + \
        [f"OUTPUT={out}"]
    done = subprocess.run(["qgis_process.bin", *arguments], env=qgis_process_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout)["results"]["OUTPUT"] == out
    check_output(out, fields, paths)
