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
                    import numba
                    for name in self._helpers:
                        self._namespace[name] = numba.njit(**self._options)(self._namespace[name + "_py"])
                    self._compiled = numba.njit(**self._options)(self._body)
        return self._compiled
