"""Regression guard on real Sentinel-2 glacier pairs (crops of Perito Moreno, tests/data/perito_moreno).

correlate_arrays runs with its CURRENT defaults (chip 32, search +-10, step 8, the crops'
nodata passed as ref_valid / sec_valid) on a clear 3-day pair and a 20-day pair with cloud
shadows, and is scored as the benchmark's real case (tests/realpairs.py): stable-ground
std and NMAD of dx and dy, glacier valid share, and the median glacier offset against
OpenCV matchTemplate NCC (bench/peers.py, cv2-match) on the cells both keep.

The bounds are what the defaults of issue 10 (affine refinement, high-pass pre-filter) achieve
plus a margin (std / NMAD x 1.15 + 0.005 px, valid shares - 0.03, agreement + 0.015), measured
with the venv's interpreter on these crops (issue 9's defaults in brackets):

| pair | std dx | std dy | NMAD dx | NMAD dy | glacier valid | stable valid | ratio to cv2-match |
|---|---|---|---|---|---|---|---|
| 0207 -> 0210 (3 d) | 0.215 (0.213) | 0.060 (0.060) | 0.117 (0.128) | 0.055 (0.058) | 1.000 (0.999) | 1.000 (0.913) | 0.937 (0.996) |
| 0207 -> 0227 (20 d) | 0.050 (0.068) | 0.081 (0.092) | 0.050 (0.061) | 0.085 (0.102) | 1.000 (0.833) | 1.000 (0.913) | 0.951 (1.009) |

The crops meet the issue-10 stable-ground targets on the 20-day pair in dx (std <= 0.08, NMAD <= 0.06
px) and the coverage target (glacier valid >= 0.90) on both; the 3-day pair's dx noise is that of the
data (the dates are not co-registered: stable mean 0.23 px, cross-orbit parallax). On the cells both
keep, the median glacier offset is 5-6 % below OpenCV NCC's (unfiltered); the high-pass alone gives
-4 %, the affine refinement alone -1 %, so the filter's weighting of fine texture on these JPEG
exports accounts for most of it; on the full pairs (make bench) ours is within 1-3 % of the NCC peers'
median on 3 of 4 pairs, and the peers disagree among themselves by up to 7 %.
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
    ("20200207", "20200210"): dict(std_dx=0.25, std_dy=0.075, nmad_dx=0.14, nmad_dy=0.069,
                                   glacier_valid=0.97, stable_valid=0.97, agreement=0.078),
    ("20200207", "20200227"): dict(std_dx=0.063, std_dy=0.098, nmad_dx=0.063, nmad_dy=0.103,
                                   glacier_valid=0.97, stable_valid=0.97, agreement=0.064),
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
