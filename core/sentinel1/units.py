"""Power/dB conversion and integer scaling of backscatter (REFERENCE §9.2, §9.5)."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..choices import Choices

#: How a stack stores backscatter: decibels, dB = 10·log10(power), or linear power.
UNITS = Choices(("db", "dB"), ("linear", "linear power (γ⁰/σ⁰)"))

#: Smallest linear power kept; noise removal can leave non-positive values (-> -50 dB).
POWER_FLOOR = 1e-5

#: Maximum DN of the integer types (0 is nodata).
DN_MAX = {"uint8": 255, "uint16": 65535}

#: Physical ranges mapped to DN 1..DN_MAX (§9.5, "OST current" column unless noted).
BACKSCATTER_DB_RANGE = (-30.0, 5.0)
METRIC_RANGES = {
    "avg": BACKSCATTER_DB_RANGE, "max": BACKSCATTER_DB_RANGE, "min": BACKSCATTER_DB_RANGE,
    "median": BACKSCATTER_DB_RANGE, "model_mean": BACKSCATTER_DB_RANGE,
    "std": (1e-5, 0.2), "cov": (1e-5, 1.0),
    "std_db": (0.0, 15.0),  # plugin choice (not in OST)
    "pdiff": (0.0, 35.0),  # plugin choice: p_hi - p_lo in dB (OST's pDiff was linear)
    "amplitude": (-5.0, 5.0), "trend": (-5.0, 5.0), "residuals": (-10.0, 10.0),
    "phase": (-np.pi, np.pi),
}


def metric_range(metric: str) -> Tuple[float, float]:
    """Scaling range of a timescan metric; percentiles (p5, p95, ...) use the dB range."""
    if metric.startswith("p") and metric[1:].replace(".", "", 1).isdigit():
        return BACKSCATTER_DB_RANGE
    return METRIC_RANGES[metric]


def power_to_db(power: np.ndarray) -> np.ndarray:
    """10·log10(power) with power floored at :data:`POWER_FLOOR`; NaN stays NaN (new array)."""
    power = np.asarray(power, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        clipped = np.maximum(power, np.float32(POWER_FLOOR))
    out = np.log10(clipped, dtype=np.float32)
    out *= np.float32(10.0)
    return out


def db_to_power(db: np.ndarray) -> np.ndarray:
    """10^(dB/10) as float32; NaN stays NaN (new array)."""
    db = np.asarray(db, dtype=np.float32)
    return np.power(np.float32(10.0), db / np.float32(10.0), dtype=np.float32)


def clean_linear(values: np.ndarray) -> np.ndarray:
    """Linear power with exact 0 -> NaN (nodata) and negatives floored at :data:`POWER_FLOOR`."""
    out = np.array(values, dtype=np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        out[out == 0] = np.nan
        np.maximum(out, np.float32(POWER_FLOOR), out=out, where=np.isfinite(out))
    return out


def scale_step(value_range: Tuple[float, float], dtype: str) -> float:
    lo, hi = value_range
    return (hi - lo) / (DN_MAX[dtype] - 1)


def to_dn(values: np.ndarray, value_range: Tuple[float, float], dtype: str) -> np.ndarray:
    """Physical values -> DN 1..DN_MAX (clipped), NaN -> 0: DN = round((v − lo)/step) + 1."""
    lo, _ = value_range
    step = scale_step(value_range, dtype)
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    dn = np.zeros(values.shape, dtype=dtype)
    scaled = np.rint((values[valid] - lo) / step) + 1
    dn[valid] = np.clip(scaled, 1, DN_MAX[dtype]).astype(dtype)
    return dn


def gdal_scale_offset(value_range: Tuple[float, float], dtype: str) -> Tuple[float, float]:
    """GDAL (scale, offset) so that physical = DN·scale + offset, i.e. scale = step, offset = lo − step."""
    step = scale_step(value_range, dtype)
    return step, value_range[0] - step


def from_dn(dn: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """DN -> physical float32 with DN 0 -> NaN."""
    dn = np.asarray(dn)
    out = dn.astype(np.float64) * scale + offset
    out[dn == 0] = np.nan
    return out.astype(np.float32)


#: A dB stack whose median is above this is no dB backscatter (DN, amplitude or power ×1000, ...).
DB_MEDIAN_MAX = 10.0


def unit_problem(values: np.ndarray, unit: str, name: str) -> Optional[str]:
    """Why ``values`` (a sample of one input in its stored unit, NaN = no data) cannot be in ``unit``, or None.

    Linear power is ≥ 0 apart from a few noise-removal negatives, so a median below 0 means dB; dB
    backscatter lies around −30…+5 dB, so a median above :data:`DB_MEDIAN_MAX` means another quantity."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    median = float(np.median(finite))
    if unit == "linear" and median < 0:
        share = float(np.mean(finite < 0))
        return (f"'{name}' is declared linear power but {share:.0%} of its values are negative (median "
                f"{median:.3g}): these look like dB. Set the unit to dB.")
    if unit == "db" and median > DB_MEDIAN_MAX:
        return (f"'{name}' is declared dB but its values are mostly above {DB_MEDIAN_MAX:g} (median {median:.4g}), "
                "which is not dB backscatter (about −30…+5 dB): integer DN need their GDAL scale/offset, amplitude "
                "or power must be converted; set the unit to linear power if the values are linear power.")
    return None
