"""The bad-input table (issue 11, point 6): shared runner for the ``tests/test_bad_inputs_*.py`` tables.

Each table module defines ``CASES``: a list of :class:`Case`. A case names the algorithm, builds its
parameters from a :class:`Workspace` (real inputs made on demand, outputs inside ``ws.out``), and gives a
fragment the error must contain (case-insensitive regular expression). :func:`check_case` runs it in-process
and asserts that it fails with a ``QgsProcessingException`` whose message (or the errors the feedback
reported: a model reports its failing step there) contains the fragment, and that nothing was left in
``ws.out``.

``tests/test_bad_inputs_coverage.py`` collects every table and checks that together they cover every
algorithm id with at least 150 cases.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, Dict, List, Optional

from faults import error_log, leftovers


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of the table: ``parameters(ws)`` -> dict, ``fragment`` a regex the message must contain."""

    id: str
    algorithm: str
    parameters: Callable[["Workspace"], Dict]
    fragment: str
    #: Files that may exist below ws.out after the failure (inputs the case itself put there).
    allowed_leftovers: tuple = ()

    def __str__(self) -> str:
        return self.id


class Workspace:
    """The folders of one case: ``inputs`` for files the case makes, ``out`` for the outputs."""

    def __init__(self, root: str):
        self.root = root
        self.inputs = os.path.join(root, "inputs")
        self.out = os.path.join(root, "out")
        os.makedirs(self.inputs, exist_ok=True)
        os.makedirs(self.out, exist_ok=True)

    def input(self, name: str) -> str:
        return os.path.join(self.inputs, name)

    def output(self, name: str) -> str:
        return os.path.join(self.out, name)


def error_text(exc: BaseException, feedback) -> str:
    return "\n".join([str(exc), *getattr(feedback, "errors", [])])


def check_case(case: Case, run_algorithm, tmp_path) -> str:
    """Run ``case``; assert a clear error containing the fragment and no output left; return the text."""
    from qgis.core import QgsProcessingException

    ws = Workspace(str(tmp_path))
    parameters = case.parameters(ws)
    feedback = error_log()
    algorithm = case.algorithm if ":" in case.algorithm else f"surfacemotion:{case.algorithm}"
    try:
        run_algorithm(algorithm, parameters, feedback=feedback)
    except QgsProcessingException as exc:
        text = error_text(exc, feedback)
    else:
        raise AssertionError(f"{case.id}: {algorithm} succeeded; expected an error matching {case.fragment!r}")
    assert "Traceback" not in text, f"{case.id}: a traceback reached the user:\n{text}"
    assert re.search(case.fragment, text, re.IGNORECASE | re.DOTALL), \
        f"{case.id}: the error does not say {case.fragment!r}:\n{text}"
    left = leftovers(ws.out, list(case.allowed_leftovers))
    assert left == [], f"{case.id}: files left behind after the failure: {left}"
    return text


def case_ids(cases: List[Case]) -> List[str]:
    ids = [case.id for case in cases]
    duplicated = sorted({name for name in ids if ids.count(name) > 1})
    assert not duplicated, f"duplicate case ids: {duplicated}"
    return ids


def algorithm_id(case: Case) -> str:
    return case.algorithm.split(":")[-1]


def find_case(cases: List[Case], case_id: str) -> Optional[Case]:
    return next((case for case in cases if case.id == case_id), None)
