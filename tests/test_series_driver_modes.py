"""invertpairs' driver: blocks on a Dask cluster (the same numbers as in process) and weights from the pairs'
uncertainty bands (issue 14, point 3).

The uncertainty case: every observation has its own noise σ (0.02-0.6 px, log-uniform per pair and pixel)
and the pair rasters carry that σ in their 'uncertainty (px, 1 sigma)' band. Weighting by it must beat the
residual-spread weights (which only know each pair's typical noise), and the driver's numbers must equal an
independent per-pixel weighted least squares (numpy lstsq on the stacked, √w-scaled system).
"""
import os

import numpy as np
import pytest
from affine import Affine

from core.errors import UserInputError
from core.io import Grid, open_raster, write_raster
from core.series.driver import invert_network
from core.series.network import read_network
from test_series_inversion import DATES, PAIRS, _day, _displacement, network_dir, write_network  # noqa: F401

GRID = Grid("EPSG:32719", Affine(2.0, 0, 400000.0, 0, -2.0, 4500000.0), 24, 20)
LAMBDA = 0.3


def _read(path):
    with open_raster(path) as ds:
        return ds.read().astype(float)


# --------------------------------------------------------------------------- Dask

def test_blocks_on_a_dask_cluster_give_the_in_process_numbers(network_dir, tmp_path):  # noqa: F811
    distributed = pytest.importorskip("distributed")
    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    here = invert_network(pairs, str(tmp_path / "here"), prefix="s", block_rows=4, lam=LAMBDA)
    progress = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        there = invert_network(pairs, str(tmp_path / "dask"), prefix="s", block_rows=4, lam=LAMBDA,
                               scheduler=cluster.scheduler_address, progress=progress.append)
    assert progress[-1] == 100.0 and len(progress) == 4  # 15 rows in blocks of 4
    for kind in here:
        np.testing.assert_array_equal(_read(there[kind]), _read(here[kind]), err_msg=kind)


def test_unreachable_scheduler_is_a_clear_error_and_writes_nothing(network_dir, tmp_path):  # noqa: F811
    pytest.importorskip("distributed")
    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    with pytest.raises(UserInputError, match="Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        invert_network(pairs, str(tmp_path / "out"), lam=LAMBDA, scheduler="tcp://127.0.0.1:9")
    assert not os.path.exists(tmp_path / "out")  # refused before anything is read or written


def test_cancel_on_dask_leaves_no_output(network_dir, tmp_path):  # noqa: F811
    distributed = pytest.importorskip("distributed")
    from core.errors import Cancelled

    pairs = read_network(sorted(str(p) for p in network_dir.glob("*_disp.tif")))
    calls = []

    def cancel_after_first_block(percent):
        calls.append(percent)

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with pytest.raises(Cancelled):
            invert_network(pairs, str(tmp_path / "out"), lam=LAMBDA, block_rows=2, progress=cancel_after_first_block,
                           is_canceled=lambda: len(calls) >= 1, scheduler=cluster.scheduler_address)
    assert calls and calls[-1] < 100.0
    out = tmp_path / "out"
    assert not out.exists() or not [name for name in os.listdir(out) if not name.startswith(".")]
