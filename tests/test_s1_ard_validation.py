"""Synthetic GRD digital numbers (tests/s1_synthetic.py) through the real product's calibration LUT.

Truth: a land-cover-like σ⁰ map (−25…0 dB) from the Sentinel-2 crop tests/data/s2_b03_crop.tif, encoded as
DN = A_σ·√σ⁰ on the GRD geometry of tests/data/s1's IW GRDH product, and decoded with σ⁰ = DN²/A_σ².
"""
import glob
import os

import numpy as np
import rasterio

from tests.s1_synthetic import (IW_GRDH_ENL, dn_to_sigma0, landcover_sigma0_db, lut_window, sigma0_to_dn,
                                sigma_lut, speckle)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAFE = os.path.join(REPO, "tests", "data", "s1",
                    "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
CALIBRATION = glob.glob(os.path.join(SAFE, "annotation", "calibration", "calibration-*.xml"))[0]


def truth_db() -> np.ndarray:
    with rasterio.open(os.path.join(REPO, "tests", "data", "s2_b03_crop.tif")) as ds:
        band = ds.read(1).astype(float)
    return landcover_sigma0_db(band)


def test_lut_matches_the_annotation_at_its_grid_nodes():
    lut = sigma_lut(CALIBRATION)
    assert lut_window(lut, 0, 0, (1, 1))[0, 0] == np.float64(6.638558e+02)  # first node of the first vector
    assert abs(lut_window(lut, 0, 20, (1, 1))[0, 0] - (6.638558e+02 + 6.635805e+02) / 2) < 1e-9  # midway


def test_speckle_free_round_trip_within_quantisation():
    sigma_db = truth_db()
    a_sigma = lut_window(sigma_lut(CALIBRATION), 8000, 12000, sigma_db.shape)
    recovered_db = 10 * np.log10(dn_to_sigma0(sigma0_to_dn(10 ** (sigma_db / 10), a_sigma), a_sigma))
    error = np.abs(recovered_db - sigma_db)
    # uint16 rounding: |Δ| ≤ −20·log10(1 − 0.5/DN); DN ≥ ≈560·10^(−25/20) ≈ 31 → ≤ 0.14 dB at −25 dB
    bound = -20 * np.log10(1 - 0.5 / (a_sigma * 10 ** (sigma_db / 20)))
    assert np.all(error <= bound + 1e-9)
    assert np.all(error[sigma_db > -20] < 0.1)
    assert sigma_db.min() == -25.0 and sigma_db.max() == 0.0


def test_speckled_means_over_areas_recover_the_input_and_the_enl():
    sigma_db = truth_db()
    a_sigma = lut_window(sigma_lut(CALIBRATION), 8000, 12000, sigma_db.shape)
    sigma0 = np.full(sigma_db.shape, 10 ** (-8 / 10))  # a homogeneous −8 dB field: DN well above quantisation
    noisy = dn_to_sigma0(sigma0_to_dn(sigma0, a_sigma, speckle(sigma0.shape, seed=1)), a_sigma)
    ratio = noisy / sigma0
    assert abs(10 * np.log10(ratio.mean())) < 0.1  # area mean unbiased within 0.1 dB
    assert abs(ratio.mean() ** 2 / ratio.var() - IW_GRDH_ENL) < 0.2  # ENL = mean²/variance
