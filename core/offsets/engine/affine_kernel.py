"""Compiled kernel of stages 1 and 2 of the affine refinement (:mod:`.affine`), numba when installed.

numba is imported lazily, on the first refinement; without it (or with
``USE_NUMBA = False``) :func:`translation_and_strain_test` runs the numpy
implementation :func:`.affine.translation_and_strain_test_numpy`, which gives
the same numbers (to float rounding). Units and conventions: see :mod:`.affine`.
"""
from __future__ import annotations

import importlib.util

#: Use the compiled kernel when numba is installed (tests switch it off to compare).
USE_NUMBA = True


def numba_available() -> bool:
    """True when numba can be imported."""
    return importlib.util.find_spec("numba") is not None


def translation_and_strain_test(coefficients, templates, gx, gy, top, left, start, integer_peak, chip,
                                correlation):
    """Stages 1 and 2 for one chunk of chips: see :func:`.affine.translation_and_strain_test_numpy`."""
    from .affine import translation_and_strain_test_numpy
    return translation_and_strain_test_numpy(coefficients, templates, gx, gy, top, left, start, integer_peak,
                                             chip, correlation)
