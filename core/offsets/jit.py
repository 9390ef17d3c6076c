"""Lazy numba compilation shared by the correlator's compiled kernels.

numba is imported on the first call of a kernel, never at import time; where it
is not installed, or installed but fails to import (a numba built for another
numpy), :func:`numba_available` is False and each kernel's caller runs its numpy
implementation instead.
"""
from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import Callable, Dict, Optional, Sequence

_numba_ok: Optional[bool] = None


def numba_available() -> bool:
    """True when numba is installed and imports."""
    global _numba_ok
    if _numba_ok is None:
        try:
            _numba_ok = importlib.util.find_spec("numba") is not None
            if _numba_ok:
                importlib.import_module("numba")
        except ImportError:
            _numba_ok = False
    return _numba_ok


def compiled(function: Callable, **options) -> Callable:
    """``numba.njit(**options)(function)``, its on-disk cache kept apart per top-level package name.

    numba names a cache entry after the source file and the function's qualified name, and the
    entry refers to its module by its import name: the same file imported as ``core....`` (tests,
    bench) and as ``surface_motion.core....`` (the QGIS plugin) would load each other's entries
    and fail ("No module named 'core'"). The package name is therefore put into the qualified
    name numba caches under."""
    import numba
    function.__qualname__ = f"{function.__module__.split('.')[0]}__{function.__name__}"
    return numba.njit(**options)(function)


class LazyKernel:
    """A numba kernel compiled once per process on first use (and cached on disk by numba).

    ``body`` is the kernel's Python source function; ``helpers`` name the functions it calls,
    whose Python versions the ``namespace`` (the kernel module's globals) holds as
    ``<name>_py``: they are compiled first and bound to ``<name>`` there, where the compiled
    body finds them. ``options`` go to ``numba.njit`` (default nogil, cache)."""

    def __init__(self, namespace: Dict[str, object], body: Callable, helpers: Sequence[str] = (), **options):
        self._namespace = namespace
        self._body = body
        self._helpers = tuple(helpers)
        self._options = dict(dict(nogil=True, cache=True), **options)
        self._compiled: Optional[Callable] = None
        self._lock = threading.Lock()

    def __call__(self) -> Optional[Callable]:
        """The compiled kernel, None without numba."""
        if not numba_available():
            return None
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    for name in self._helpers:
                        self._namespace[name] = compiled(self._namespace[name + "_py"], **self._options)
                    self._compiled = compiled(self._body, **self._options)
        return self._compiled
