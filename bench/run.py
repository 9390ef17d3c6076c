"""Run the benchmarks (`make bench`): each prints its own table and target checks.

Usage: python bench/run.py [names...]   (default: all; names: correlation)
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


def run_correlation() -> int:
    import correlation
    return correlation.main([])


BENCHMARKS = {"correlation": run_correlation}


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"Unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}.", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        print(f"\n===== {name} =====", flush=True)
        status |= BENCHMARKS[name]()
    return status


if __name__ == "__main__":
    sys.exit(main())
