"""Fault injection for the I/O tests: truncated rasters and full disks.

* :func:`truncated_copy` copies a GeoTIFF and cuts it so its header (at the start
  of the file) still opens but later blocks are missing.
* :func:`small_disk` yields a folder on a file system with only ``free_bytes``
  left: a tmpfs mounted for the test when running as root, else ``None`` (the
  tests then use :func:`run_with_file_size_limit`, an ``RLIMIT_FSIZE`` limit in a
  subprocess, which makes every write beyond the limit fail with EFBIG).
"""
from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import uuid
from typing import Iterator, List, Optional

import numpy as np


def truncated_copy(source: str, target: str, keep: float = 0.55) -> str:
    """``target``: ``source`` rewritten uncompressed with its header first, then cut to
    ``keep`` of its size (the header and the first blocks survive)."""
    import rasterio

    with rasterio.open(source) as src:
        profile = src.profile.copy()
        data = src.read()
        descriptions = src.descriptions
        tags = src.tags()
        band_tags = [src.tags(band) for band in range(1, src.count + 1)]
    profile.update(driver="GTiff", compress=None, tiled=True, blockxsize=16, blockysize=16, interleave="pixel")
    profile.pop("predictor", None)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        for band, text in enumerate(descriptions, start=1):
            if text:
                dst.set_band_description(band, text)
        dst.update_tags(**tags)
        for band, values in enumerate(band_tags, start=1):
            if values:
                dst.update_tags(band, **values)
    with open(target, "rb") as handle:
        header = handle.read(8)
    first_ifd = int.from_bytes(header[4:8], "little")
    size = os.path.getsize(target)
    assert first_ifd < size * keep, "the TIFF directory is not at the start of the file"
    with open(target, "r+b") as handle:
        handle.truncate(int(size * keep))
    with rasterio.open(target) as check:  # the header still opens ...
        assert check.count == len(descriptions)
    return target


@functools.lru_cache(maxsize=None)
def can_mount_tmpfs() -> bool:
    """True as root where mounting works; ``SM_TEST_NO_TMPFS=1`` forces the RLIMIT_FSIZE variant."""
    if os.geteuid() != 0 or os.environ.get("SM_TEST_NO_TMPFS") == "1":
        return False
    folder = tempfile.mkdtemp(prefix="sm-mount-probe-")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder],
                              capture_output=True, timeout=30)
        if done.returncode != 0:
            return False
        subprocess.run(["umount", folder], capture_output=True, timeout=30)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(folder)


@contextlib.contextmanager
def small_disk(free_bytes: int, size_bytes: int = 4 << 20) -> Iterator[str]:
    """A folder on a fresh tmpfs of ``size_bytes`` with about ``free_bytes`` left free."""
    mount_point = tempfile.mkdtemp(prefix="sm-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", mount_point], check=True,
                   capture_output=True, timeout=30)
    try:
        filler = os.path.join(mount_point, "filler.bin")
        with open(filler, "wb") as handle:
            remaining = os.statvfs(mount_point).f_bavail * os.statvfs(mount_point).f_frsize - free_bytes
            chunk = b"\0" * (1 << 16)
            while remaining > 0:
                handle.write(chunk[:min(remaining, len(chunk))])
                remaining -= len(chunk)
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", mount_point], capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            os.rmdir(mount_point)


def leftovers(folder: str, expected: Optional[List[str]] = None) -> List[str]:
    """Every file and folder below ``folder`` apart from the tmpfs filler and ``expected``."""
    found = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            relative = os.path.relpath(os.path.join(root, name), folder)
            if relative != "filler.bin" and relative not in (expected or []):
                found.append(relative)
    return sorted(found)


def run_with_file_size_limit(code: str, limit_bytes: int, env: Optional[dict] = None,
                             timeout: float = 600) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a subprocess whose files may not grow beyond ``limit_bytes``."""
    script = os.path.join(tempfile.gettempdir(), f"sm-fsize-{uuid.uuid4().hex}.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write("import resource\n")
        handle.write(f"resource.setrlimit(resource.RLIMIT_FSIZE, ({int(limit_bytes)}, {int(limit_bytes)}))\n")
        handle.write(code)
    try:
        return subprocess.run([sys.executable, script], capture_output=True, text=True, env=env, timeout=timeout)
    finally:
        os.remove(script)


def random_texture(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 20.0, shape).astype(np.float32)


# --------------------------------------------------------------------------- algorithms on a full disk

_RUNNER = r'''
import json, os, sys
sys.path.insert(0, {plugin_parent!r}); sys.path.insert(0, "/usr/share/qgis/python/plugins")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback, QgsProject

class ErrorLog(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.errors = []

    def reportError(self, error, fatalError=False):
        self.errors.append(error)
        super().reportError(error, fatalError)

app = QgsApplication([], False); app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
import processing
from surface_motion.processing_provider.provider import SurfaceMotionProvider
provider = SurfaceMotionProvider(); QgsApplication.processingRegistry().addProvider(provider)
context = QgsProcessingContext(); context.setProject(QgsProject.instance())
feedback = ErrorLog()
try:
    processing.run({algorithm!r}, json.loads({parameters!r}), context=context, feedback=feedback)
    print("RESULT " + json.dumps({{"ok": True, "error": ""}}))
except Exception as exc:
    print("RESULT " + json.dumps({{"ok": False, "error": "\\n".join([str(exc), *feedback.errors])}}))
'''


def run_algorithm_with_file_size_limit(algorithm: str, parameters: dict, limit_bytes: int, plugin_parent: str):
    """(succeeded, error text) of ``algorithm`` run in a QGIS subprocess under RLIMIT_FSIZE."""
    import json

    code = _RUNNER.format(plugin_parent=plugin_parent, algorithm=algorithm, parameters=json.dumps(parameters))
    done = run_with_file_size_limit(code, max(limit_bytes, 4096))
    line = [text for text in done.stdout.splitlines() if text.startswith("RESULT ")]
    assert line, f"the subprocess did not report:\n{done.stdout}\n{done.stderr}"
    result = json.loads(line[-1][len("RESULT "):])
    return result["ok"], result["error"]


def error_log():
    """A Processing feedback that keeps the errors reported: a model reports its failing step's error
    there and raises only 'Error encountered while running <step>'."""
    from qgis.core import QgsProcessingFeedback

    class ErrorLog(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.errors = []

        def reportError(self, error, fatalError=False):  # noqa: N802 (QGIS API name)
            self.errors.append(error)
            super().reportError(error, fatalError)

    return ErrorLog()


def run_on_full_disk(run_algorithm, algorithm: str, make_parameters, free_bytes: int, tmp_path,
                     plugin_parent: str) -> str:
    """Run ``algorithm`` with every output on a disk that has only ``free_bytes`` left and check
    that it fails and leaves nothing there; returns the error text.

    ``make_parameters(folder)`` gives the parameters with the outputs inside ``folder``.
    As root a tmpfs is mounted for it; otherwise an RLIMIT_FSIZE of ``free_bytes`` in a
    subprocess makes the writes fail the same way (EFBIG instead of ENOSPC).
    """
    from qgis.core import QgsProcessingException

    if can_mount_tmpfs():
        with small_disk(free_bytes) as folder:
            parameters = make_parameters(os.path.join(folder, "out"))
            feedback = error_log()
            try:
                run_algorithm(algorithm, parameters, feedback=feedback)
            except QgsProcessingException as exc:
                message = "\n".join([str(exc), *feedback.errors])
            else:
                raise AssertionError(f"{algorithm} succeeded on a full disk; left {leftovers(folder)}")
            assert leftovers(folder) == [], f"{algorithm} left {leftovers(folder)} on the full disk"
            return message
    folder = os.path.join(str(tmp_path), "limited")
    os.makedirs(folder)
    ok, message = run_algorithm_with_file_size_limit(algorithm, make_parameters(os.path.join(folder, "out")),
                                                     free_bytes, plugin_parent)
    assert not ok, f"{algorithm} succeeded under a file size limit"
    assert leftovers(folder) == [], f"{algorithm} left {leftovers(folder)}"
    return message


#: What the error on a full disk (tmpfs) or under a file size limit (RLIMIT_FSIZE) says.
FULL_DISK_MESSAGE = r"No space left on .*|.*file size limit"
TRUNCATED_MESSAGE = r"Cannot read the pixels of '.*{name}'.*truncated or corrupt"
