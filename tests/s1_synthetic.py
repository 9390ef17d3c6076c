"""Synthetic Sentinel-1 GRD digital numbers from a known σ⁰ map, through the product's own calibration LUT.

Sentinel-1 radiometric calibration (ESA S1-RS-MDA-52-7441): σ⁰ = DN² / A_σ², A_σ bilinear in (line, pixel)
from the ``sigmaNought`` vectors of ``annotation/calibration/calibration-*.xml``. So DN = A_σ·√σ⁰ (σ⁰ linear
power, not dB). Speckle for a multilooked GRD is multiplicative, gamma distributed in intensity with mean 1
and shape = ENL (4.4 for IW GRDH), applied to σ⁰ before the square root.
"""
import xml.etree.ElementTree as ET
from typing import Optional, Tuple

import numpy as np
from scipy.interpolate import RegularGridInterpolator

IW_GRDH_ENL = 4.4


def sigma_lut(calibration_xml: str) -> RegularGridInterpolator:
    """Bilinear A_σ(line, pixel) from a calibration annotation (all vectors share one pixel list)."""
    vectors = ET.parse(calibration_xml).getroot().iter("calibrationVector")
    lines, pixels, values = [], None, []
    for vector in vectors:
        lines.append(int(vector.find("line").text))
        pixels = np.array(vector.find("pixel").text.split(), dtype=float)
        values.append(np.array(vector.find("sigmaNought").text.split(), dtype=float))
    return RegularGridInterpolator((np.array(lines, dtype=float), pixels), np.vstack(values),
                                   bounds_error=False, fill_value=None)


def lut_window(lut: RegularGridInterpolator, row0: int, col0: int, shape: Tuple[int, int]) -> np.ndarray:
    """A_σ on the GRD pixel centres of a window starting at (row0, col0) (line = row, pixel = column)."""
    rows = np.arange(row0, row0 + shape[0], dtype=float)
    cols = np.arange(col0, col0 + shape[1], dtype=float)
    grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
    return lut(np.column_stack([grid_rows.ravel(), grid_cols.ravel()])).reshape(shape)


def speckle(shape: Tuple[int, int], enl: float = IW_GRDH_ENL, seed: int = 0) -> np.ndarray:
    """Multiplicative intensity speckle: gamma(shape=ENL, scale=1/ENL), mean 1, variance 1/ENL."""
    return np.random.default_rng(seed).gamma(enl, 1.0 / enl, size=shape)


def sigma0_to_dn(sigma0: np.ndarray, a_sigma: np.ndarray, noise: Optional[np.ndarray] = None) -> np.ndarray:
    """uint16 DN = round(A_σ·√(σ⁰·noise)), σ⁰ linear; clipped to 1…65535 (0 is the GRD's no-data)."""
    power = sigma0 if noise is None else sigma0 * noise
    return np.clip(np.rint(a_sigma * np.sqrt(power)), 1, 65535).astype(np.uint16)


def dn_to_sigma0(dn: np.ndarray, a_sigma: np.ndarray) -> np.ndarray:
    """σ⁰ (linear) = DN² / A_σ², the inverse the ARD engines apply."""
    return dn.astype(float) ** 2 / a_sigma ** 2


def landcover_sigma0_db(reflectance: np.ndarray, low_db: float = -25.0, high_db: float = 0.0) -> np.ndarray:
    """A land-cover-like σ⁰ pattern (dB) by linear rescaling of an optical band's 2–98 % range to low…high."""
    finite = reflectance[np.isfinite(reflectance)]
    lo, hi = np.percentile(finite, [2, 98])
    scaled = np.clip((reflectance - lo) / (hi - lo), 0.0, 1.0)
    return low_db + scaled * (high_db - low_db)
