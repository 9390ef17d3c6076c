"""One BLAS thread while the correlator's blocks run in parallel (OpenBLAS, when numpy uses it).

The engine runs ``THREADS`` blocks at once; their small linear-algebra calls
(8 x 8 solves and eigenvalues of the affine refinement) gain nothing from
OpenBLAS's own threads, whose busy-waiting after each call takes a core from
the other block (measured on the 2-core bench machine: case "a" 0.49 s ->
0.30 s for ten pairs). :func:`single_threaded_blas` sets OpenBLAS to one
thread while any block runs and restores the previous count after; it does
nothing when numpy's BLAS is not OpenBLAS (it is found among the loaded
libraries, /proc/self/maps). Results do not change (the same BLAS routines,
one thread).
"""
from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager
from typing import Optional

_lock = threading.Lock()
_users = 0
_threads_before = 0
_library: Optional[ctypes.CDLL] = None
_searched = False


def _openblas() -> Optional[ctypes.CDLL]:
    """The loaded OpenBLAS library (with ``openblas_set_num_threads``), None when there is none."""
    global _library, _searched
    if not _searched:
        _searched = True
        import numpy as np
        np.linalg.eigvalsh(np.eye(2))  # numpy's LAPACK loads its BLAS
        try:
            with open("/proc/self/maps") as maps:
                paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
        except OSError:
            paths = []
        for path in paths:
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            if hasattr(library, "openblas_set_num_threads") and hasattr(library, "openblas_get_num_threads"):
                _library = library
                break
    return _library


@contextmanager
def single_threaded_blas():
    """OpenBLAS on one thread inside the block (re-entrant, thread-safe), then restored."""
    global _users, _threads_before
    library = _openblas()
    if library is None:
        yield
        return
    with _lock:
        if _users == 0:
            _threads_before = int(library.openblas_get_num_threads())
            library.openblas_set_num_threads(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                library.openblas_set_num_threads(_threads_before)
