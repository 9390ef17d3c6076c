"""The bad-input table covers every algorithm id with at least 150 cases (issue 11, point 6)."""
import glob
import importlib
import os

from bad_inputs import algorithm_id, case_ids
from conftest import REPO

MINIMUM_CASES = 150


def _tables():
    modules = sorted(os.path.splitext(os.path.basename(path))[0]
                     for path in glob.glob(os.path.join(REPO, "tests", "test_bad_inputs_*.py")))
    return [importlib.import_module(name) for name in modules if name != "test_bad_inputs_coverage"]


def test_the_table_covers_every_algorithm_with_enough_cases(provider):
    cases = [case for module in _tables() for case in module.CASES]
    case_ids(cases)
    names = {algorithm.name() for algorithm in provider.algorithms()}
    covered = {algorithm_id(case) for case in cases}
    assert sorted(names - covered) == [], "algorithms without a bad-input case"
    assert len(cases) >= MINIMUM_CASES, f"{len(cases)} cases; the issue asks for at least {MINIMUM_CASES}"
