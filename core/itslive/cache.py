"""Resume cache of the ITS_LIVE downloads: ``<output folder>/.itslive_cache/<request>/<part>.npy|.npz``.

Every finished part of a download (one cube variable, one mosaic year) is saved at once
through :func:`core.io.atomic_file`, verified by loading it back, so a cached part is complete
or absent. A re-run of the same request loads it instead of reading the server again; a cached
part that does not load (cut off by a crash of the machine) is deleted and read again.
Temporary files of killed runs (:func:`core.io.remove_stale_temporaries`, and the
``<part>.partial.npy`` / ``.partial.npz`` names of earlier versions) are removed when a run
starts. A request's cache is removed once its outputs are written.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from typing import Callable, Dict, Iterator, Optional, Sequence

import numpy as np

from ..io import atomic_file, output_folder, remove_stale_temporaries, verify

CACHE_DIR = ".itslive_cache"
#: Temporary names of earlier versions (``vx.npy.partial.npy``): always left by an interrupted run.
_LEGACY_PARTIAL_SUFFIXES = (".partial.npy", ".partial.npz")
Log = Optional[Callable[[str], None]]


@contextlib.contextmanager
def resumable_folder(folder: str, log: Log = None) -> Iterator[str]:
    """The output folder of a download (:func:`core.io.output_folder`), kept when the run fails:
    its cache is what the re-run resumes from. A folder this run created and that holds no
    finished part is removed again, like the folder of any failed run."""
    with output_folder(folder, keep_on_failure=True, log=log) as path:
        try:
            yield path
        except BaseException:
            _remove_empty_folders(os.path.join(path, CACHE_DIR))
            raise


def clean_cache(folder: str, log: Log = None) -> None:
    """Remove the temporary files of killed runs from every request cache under ``folder``."""
    root = os.path.join(folder, CACHE_DIR)
    if not os.path.isdir(root):
        return
    for name in sorted(os.listdir(root)):
        cache = os.path.join(root, name)
        if not os.path.isdir(cache):
            continue
        remove_stale_temporaries(cache, log)
        for part in sorted(os.listdir(cache)):
            if part.endswith(_LEGACY_PARTIAL_SUFFIXES):
                _remove_part(os.path.join(cache, part), log, "was left by an interrupted run")


def request_cache(folder: str, key: str) -> str:
    """The cache folder of one request (created)."""
    path = os.path.join(folder, CACHE_DIR, key)
    os.makedirs(path, exist_ok=True)
    return path


def load_part(path: str, log: Log = None, shape: Optional[Sequence[int]] = None
              ) -> Optional[Dict[str, np.ndarray]]:
    """The arrays of a cached part ({"data": array} for a .npy file, every array of a .npz), or
    None when it is absent or does not load (it is then deleted, so the part is read again)."""
    if not os.path.exists(path):
        return None
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = {"data": loaded}
        else:
            with loaded:
                arrays = {name: loaded[name] for name in loaded.files}
        if shape is not None and tuple(arrays["data"].shape) != tuple(shape):
            raise ValueError(f"shape {arrays['data'].shape} instead of {tuple(shape)}")
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        _remove_part(path, log, f"does not load ({exc}); reading it again")
        return None
    return arrays


def save_part(path: str, data: np.ndarray, **extra: np.ndarray) -> None:
    """Cache a finished part: ``data`` alone in a .npy file, or with ``extra`` arrays in a .npz file."""
    arrays = {"data": data, **extra}
    needed = sum(np.asarray(array).nbytes for array in arrays.values())
    if path.endswith(".npy"):
        with atomic_file(path, verify=verify.npy_readable(data.shape), needed_bytes=needed) as tmp:
            np.save(tmp, data)
    else:
        with atomic_file(path, verify=verify.npy_readable(), needed_bytes=needed) as tmp:
            np.savez(tmp, **arrays)


def remove_request_cache(cache: str) -> None:
    """Remove a request's cache (its outputs are written) and the cache root when it is empty."""
    shutil.rmtree(cache, ignore_errors=True)
    _remove_empty_folders(os.path.dirname(cache))


def _remove_part(path: str, log: Log, why: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
    if log is not None and not os.path.exists(path):
        log(f"Removed the cached '{os.path.basename(path)}' in '{os.path.dirname(path)}': it {why}.")


def _remove_empty_folders(root: str) -> None:
    """Remove ``root`` and the folders below it that hold no file."""
    if not os.path.isdir(root):
        return
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only succeeds on an empty folder
