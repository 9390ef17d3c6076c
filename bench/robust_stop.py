"""Robust-loop stopping rule on the synthetic network of tests/test_series_inversion.py (y in m/yr):
RMS error of the recovered series for TICOI's absolute stop (mean |change| below 0.1 m/yr, and others) and
for the relative stop of core.series.inversion (below 0.1 × mean |v|, the default).

    /usr/bin/python3 bench/robust_stop.py
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

import numpy as np  # noqa: E402

from core.series import inversion as inv  # noqa: E402
from core.series import robust_kernel  # noqa: E402
from test_series_inversion import _displacement, _network  # noqa: E402


def absolute_stop(a, y, v, w_pair, lam, d, tolerance):
    """The numpy robust loop with TICOI's absolute rule: stop when mean |Δv| < tolerance (units of y)."""
    valid = np.isfinite(y)
    y0, w_obs, v = np.nan_to_num(y), valid * w_pair[:, None], v.copy()
    for step in range(1, inv.ROBUST_MAX_ITERATIONS + 1):
        new = inv.solve_weighted(a, y0, inv.robust_weights(a, y, v, w_pair) * w_obs, lam, d)
        change, v = np.abs(new - v).mean(), new
        if change < tolerance:
            break
    return v, step


def main() -> None:
    robust_kernel.USE_NUMBA = False
    for seed in (1, 2, 3):
        t1, t2, y, _ = _network(n_pix=2000, seed=seed)
        edges = inv.time_edges(t1, t2)
        a, d = inv.design_matrix(t1, t2, edges), inv.difference_operator(edges)
        truth = np.array([_displacement(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]) / np.diff(edges) * 730.5
        ym = y / (t2 - t1)[:, None] * 730.5   # px/day on a 2 m grid -> m/yr
        w_pair = inv.weights_from_sigmas(inv.pair_sigmas(a, ym, inv.solve_grouped(a, ym, np.ones(len(a)), 0.5, d)))
        start = inv.solve_grouped(a, ym, w_pair, 0.5, d, 3)
        rows = []
        for tolerance in (10.0, 1.0, 0.1, 0.01):
            v, steps = absolute_stop(a, ym, start, w_pair, 0.5, d, tolerance)
            rows.append(f"abs {tolerance:g} m/yr: {np.sqrt(np.nanmean((v - truth[:, None]) ** 2)):.3f} ({steps} it)")
        r = inv.invert(a, ym, d, lam=0.5, robust=True, min_pairs=3)
        rows.append(f"relative 0.1: {np.sqrt(np.nanmean((r.v - truth[:, None]) ** 2)):.3f} (max {r.iterations} it)")
        print(f"seed {seed} RMS m/yr | " + " | ".join(rows))


if __name__ == "__main__":
    main()
