"""Which shipped style (``ui/styles/<name>.qml``) each Sentinel-1 output gets.

The core writes it as the output's sidecar ``.qml``; the Processing adapters load
the same style on completion.
"""
from __future__ import annotations

from .units import UNITS

#: Backscatter in dB (−25…0 dB grey ramp) or linear power (0…0.3).
BACKSCATTER_STYLES = {"db": "s1_backscatter_db", "linear": "s1_backscatter_linear"}
#: Layover/shadow mask (0 none, 1 layover, 2 shadow).
LS_MASK_STYLE = "s1_lsmask"
#: Timescan metrics other than dB levels (avg, max, min, median, model_mean, percentiles: backscatter dB).
METRIC_STYLES = {
    "std": "s1_std", "std_db": "s1_std_db", "cov": "s1_cov", "pdiff": "s1_pdiff", "count": "s1_count",
    "amplitude": "s1_amplitude", "phase": "s1_phase", "trend": "s1_trend", "residuals": "s1_residuals",
}


def backscatter_style(unit: str) -> str:
    """Style of backscatter stored in ``unit`` ("db" or "linear")."""
    return BACKSCATTER_STYLES[UNITS.check(unit, "backscatter unit")]


def metric_style(name: str) -> str:
    """Style of a timescan metric band (dB levels and percentiles: the dB backscatter style)."""
    return METRIC_STYLES.get(name, BACKSCATTER_STYLES["db"])
