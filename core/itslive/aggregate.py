"""Temporal aggregation of cube layers (REFERENCE §8.3): bins of n years, months or days.

Bins are anchored at the start of the requested period (its year for "Y", its month for
"M", the day itself for "D"); the label of a bin is its start. Methods: mean, median, or
error-weighted mean Σ(v/σ²)/Σ(1/σ²). NaN cells are ignored; a bin with no valid value is NaN;
the number of values used per cell is returned as ``counts``.
"""
from __future__ import annotations

import datetime as _dt
from typing import Optional, Tuple

import numpy as np

from ..choices import Choices
from ..errors import UserInputError

UNITS = Choices(("Y", "years"), ("M", "months"), ("D", "days"))
METHODS = Choices(("mean", "Mean"), ("median", "Median"), ("weighted", "Error-weighted mean (1/σ²)"))


def bin_index(dates: np.ndarray, amount: int, unit: str, anchor: _dt.datetime) -> np.ndarray:
    """Integer bin of each datetime64 date."""
    if amount < 1:
        raise UserInputError(f"The aggregation bin must be at least 1 {unit}, not {amount}.")
    if unit not in UNITS:
        raise UserInputError(f"Unknown aggregation unit '{unit}' (Y, M or D).")
    dates = np.asarray(dates, dtype="datetime64[s]")
    if unit == "D":
        start = np.datetime64(anchor.replace(hour=0, minute=0, second=0, microsecond=0), "s")
        return ((dates - start) // np.timedelta64(1, "D")).astype(np.int64) // amount
    months = dates.astype("datetime64[M]").astype(np.int64)
    anchor_months = (anchor.year - 1970) * 12 + anchor.month - 1
    if unit == "Y":
        years = months // 12 - (anchor.year - 1970)
        return np.floor_divide(years, amount)
    return np.floor_divide(months - anchor_months, amount)


def bin_label(index: int, amount: int, unit: str, anchor: _dt.datetime) -> _dt.datetime:
    """Start date of bin ``index``."""
    if unit == "D":
        return anchor.replace(hour=0, minute=0, second=0, microsecond=0) + _dt.timedelta(days=int(index) * amount)
    if unit == "Y":
        return _dt.datetime(anchor.year + int(index) * amount, 1, 1)
    total = anchor.year * 12 + anchor.month - 1 + int(index) * amount
    return _dt.datetime(total // 12, total % 12 + 1, 1)


def aggregate(stack: np.ndarray, dates: np.ndarray, amount: int, unit: str, method: str,
              anchor: _dt.datetime, errors: Optional[np.ndarray] = None
              ) -> Tuple[list, np.ndarray, np.ndarray]:
    """Aggregate ``stack`` (time, rows, cols) → (labels, aggregated (bins, rows, cols), counts)."""
    if method not in METHODS:
        raise UserInputError(f"Unknown aggregation method '{method}' ({', '.join(METHODS)}).")
    if method == "weighted" and errors is None:
        raise UserInputError("The error-weighted mean needs the error variable of each velocity variable.")
    bins = bin_index(dates, amount, unit, anchor)
    labels, aggregated, counts = [], [], []
    for b in np.unique(bins):
        members = bins == b
        values = stack[members]
        valid = np.isfinite(values)
        count = valid.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if method == "mean":
                result = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), np.nan)
            elif method == "median":
                result = _nanmedian(values, count)
            else:
                sigma = errors[members]
                weights = np.where(valid & np.isfinite(sigma) & (sigma > 0), 1.0 / np.square(sigma), 0.0)
                total = weights.sum(axis=0)
                result = np.where(total > 0, np.nansum(np.where(weights > 0, values, 0.0) * weights, axis=0)
                                  / np.where(total > 0, total, 1.0), np.nan)
                count = (weights > 0).sum(axis=0)
        labels.append(bin_label(b, amount, unit, anchor))
        aggregated.append(result)
        counts.append(count)
    return labels, np.asarray(aggregated, dtype=np.float64), np.asarray(counts, dtype=np.int32)


def _nanmedian(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    filled = np.where(np.isfinite(values), values, np.inf)
    ordered = np.sort(filled, axis=0)
    lower = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
    upper = np.take_along_axis(ordered, np.maximum(count // 2, 0)[None], axis=0)[0]
    return np.where(count > 0, 0.5 * (lower + upper), np.nan)
