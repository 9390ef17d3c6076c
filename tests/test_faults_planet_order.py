"""planetorder in the fault matrix: a full disk during the download of an order, and a download cut
short by the network (the truncated input of this algorithm; also in tests/test_planet_order.py).

A download that cannot finish leaves no partial file: what stays in the folder is complete and
verified (the files fetched before the disk filled up, Planet's manifest and planet_order.json, which
a later run needs to resume the order instead of paying for a new one)."""
import os
import re

import pytest

from faults import FULL_DISK_MESSAGE, can_mount_tmpfs, small_disk
import test_planet_order
from test_planet_order import ids_of, manifest_md5, md5, order_parameters

#: The loopback server fixtures of tests/test_planet_order.py.
orders_server, server = test_planet_order.orders_server, test_planet_order.server

#: Files of a run that may stay after a failure: they let the next run resume.
RESUME_FILES = {"planet_order.json", "manifest.json"}


def check_resumable_leftovers(folder):
    """Nothing temporary, and every delivered file left matches Planet's MD5."""
    names = sorted(os.listdir(folder))
    assert [name for name in names if name.startswith(".")] == [], names
    assert RESUME_FILES <= set(names)
    digests = manifest_md5(folder)
    for name in set(names) - RESUME_FILES - {"filler.bin"}:
        assert md5(os.path.join(folder, name)) == digests[name], name
    return names


@pytest.fixture
def full_disk(monkeypatch):
    """A folder whose disk has about 9 kB free: a tmpfs as root, else the free-space query says so."""
    if can_mount_tmpfs():
        with small_disk(9 << 10) as folder:
            yield folder, lambda: os.remove(os.path.join(folder, "filler.bin"))
        return
    import tempfile

    from surface_motion.core.io import files

    folder = tempfile.mkdtemp(prefix="sm-planet-full-")
    monkeypatch.setattr(files, "free_bytes", lambda path: 9 << 10)
    yield folder, monkeypatch.undo


def test_a_full_disk_during_the_download_stops_clearly_and_the_rerun_resumes(
        server, run_algorithm, full_disk, tmp_path):
    from qgis.core import QgsProcessingException

    folder, make_room = full_disk
    out = os.path.join(folder, "out")
    ids = ids_of(server, 2)
    with pytest.raises(QgsProcessingException) as error:
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    assert re.search(FULL_DISK_MESSAGE, str(error.value)), str(error.value)
    left = check_resumable_leftovers(out)
    assert len([name for name in left if name not in RESUME_FILES]) < 8
    make_room()
    results, _, _ = run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    assert len(server.order_posts()) == 1 and len(results["SCENES"]) == 2
    assert len(check_resumable_leftovers(out)) == 10


def test_a_download_cut_short_leaves_only_verified_files(server, run_algorithm, tmp_path):
    from qgis.core import QgsProcessingException

    out = str(tmp_path / "order")
    ids = ids_of(server, 2)
    victim = f"{ids[0]}_3B_udm2_clip.tif"
    server.truncate(victim, count=1)
    with pytest.raises(QgsProcessingException, match=f"Downloading {victim} failed.*run again"):
        run_algorithm("surfacemotion:planetorder", order_parameters(tmp_path, ids, out))
    assert victim not in check_resumable_leftovers(out)
