"""Regression guard on real Sentinel-2 glacier pairs (crops of Perito Moreno, tests/data/perito_moreno).

correlate_arrays runs with its CURRENT defaults (chip 32, search +-10, step 8, the crops'
nodata passed as ref_valid / sec_valid) on a clear 3-day pair and a 20-day pair with cloud
shadows, and is scored as the benchmark's real case (tests/realpairs.py): stable-ground
std and NMAD of dx and dy, glacier valid share, and the median glacier offset against
OpenCV matchTemplate NCC (bench/peers.py, cv2-match) on the cells both keep.

The bounds are what the engine of issue 9 (commit f93a0bc) achieves plus a margin
(std / NMAD x 1.15 + 0.005 px, valid shares - 0.03), measured with
``/usr/bin/python3`` on these crops:

| pair | std dx | std dy | NMAD dx | NMAD dy | glacier valid | stable valid | ratio to cv2-match |
|---|---|---|---|---|---|---|---|
| 0207 -> 0210 (3 d) | 0.213 | 0.060 | 0.128 | 0.058 | 0.999 | 0.913 | 0.996 |
| 0207 -> 0227 (20 d) | 0.068 | 0.092 | 0.061 | 0.102 | 0.833 | 0.913 | 1.009 |

Tighten them to the issue-10 targets (std <= 0.08, NMAD <= 0.06 px, glacier valid >= 0.90,
median within 2 %) once the engine meets them on the full pairs (make bench).
"""
import os
import sys

import numpy as np
import pytest

import realpairs

sys.path.insert(0, os.path.join(os.path.dirname(realpairs.HERE), "bench"))
from peers import Spec, run_cv2_match  # noqa: E402

#: pair -> upper bounds (px) of stable std / NMAD, lower bounds of valid shares, bound on |ratio - 1|.
BOUNDS = {
    ("20200207", "20200210"): dict(std_dx=0.25, std_dy=0.075, nmad_dx=0.153, nmad_dy=0.073,
                                   glacier_valid=0.97, stable_valid=0.88, agreement=0.02),
    ("20200207", "20200227"): dict(std_dx=0.084, std_dy=0.111, nmad_dx=0.076, nmad_dy=0.123,
                                   glacier_valid=0.80, stable_valid=0.88, agreement=0.02),
}


@pytest.fixture(scope="module", params=sorted(BOUNDS), ids=lambda pair: "->".join(pair))
def scored(request):
    from core.offsets.correlate import correlate_arrays
    first, second = request.param
    pair = realpairs.crop_pair(first, second)
    result = correlate_arrays(pair["ref"], pair["sec"], realpairs.CHIP, realpairs.SEARCH, realpairs.STEP,
                              ref_valid=pair["valid"], sec_valid=pair["valid"])
    scores = realpairs.scores_of(result, pair["cells"])
    peer = run_cv2_match(pair["ref"], pair["sec"], Spec(realpairs.CHIP, realpairs.SEARCH, realpairs.STEP),
                         pair["cells"]["domain"])[:2]
    ours = (np.where(result.valid, result.dx, np.nan), np.where(result.valid, result.dy, np.nan))
    agreement = realpairs.glacier_agreement({"ours": ours, "cv2-match": peer}, pair["cells"]["glacier"],
                                            ["cv2-match"])["ours"]
    return BOUNDS[request.param], scores, agreement


def test_the_crops_hold_stable_ground_and_glacier():
    masks = realpairs.read_crop_masks()
    assert not (masks["stable"] & masks["ice"]).any()
    assert not ((masks["stable"] | masks["glacier"]) & masks["nodata"]).any()
    cells = realpairs.crop_pair("20200207", "20200210")["cells"]
    assert cells["stable"].sum() >= 80 and cells["glacier"].sum() >= 1000
    assert not (cells["stable"] & cells["glacier"]).any()


def test_stable_ground_noise(scored):
    bounds, scores, _ = scored
    text = realpairs.describe(scores)
    for name in ("dx", "dy"):
        assert scores[f"stable_std_{name}"] <= bounds[f"std_{name}"], text
        assert scores[f"stable_nmad_{name}"] <= bounds[f"nmad_{name}"], text
    assert scores["stable_valid"] >= bounds["stable_valid"], text


def test_glacier_coverage(scored):
    bounds, scores, _ = scored
    assert scores["glacier_valid"] >= bounds["glacier_valid"], realpairs.describe(scores)


def test_glacier_offsets_agree_with_normalised_cross_correlation(scored):
    bounds, scores, (common, _) = scored
    assert abs(common - 1.0) <= bounds["agreement"], (common, realpairs.describe(scores))
