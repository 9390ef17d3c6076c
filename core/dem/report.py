"""The CSV table of a co-registration run: one ``result`` row, then one row per iteration.

Signs: ``shift_x_m``, ``shift_y_m`` (east, north) and ``shift_z_m`` (up) are the correction that was
applied: the output is the input DEM moved by (shift_x_m, shift_y_m) and raised by shift_z_m (at
the DEM's centre; with the tilt option ``tilt_x_m_per_km``/``tilt_y_m_per_km`` give the gradient of the
vertical correction added, east and north). A DEM displaced by +2 m east relative to the
reference has shift_x_m = −2. Iteration rows give the cumulative horizontal correction after that
iteration and the length of its step in DEM pixels; median/NMAD there are those of dh (detrended)
before the step.
"""
from __future__ import annotations

import csv
import io
from typing import List

from .nuth_kaab import FitResult

COLUMNS = ["row", "iteration", "shift_x_m", "shift_y_m", "shift_z_m", "tilt_x_m_per_km", "tilt_y_m_per_km",
           "step_px", "iterations", "converged", "median_before_m", "median_after_m", "nmad_before_m",
           "nmad_after_m", "n_stable_cells", "n_aspect_bins"]


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def report_rows(fit: FitResult) -> List[dict]:
    """The rows of the table (dicts keyed by :data:`COLUMNS`; empty strings where a column does not apply)."""
    trend = fit.trend
    last = fit.iterations[-1] if fit.iterations else None
    rows = [{
        "row": "result", "iteration": "", "shift_x_m": _number(-fit.offset_x), "shift_y_m": _number(-fit.offset_y),
        "shift_z_m": _number(-trend.c0), "tilt_x_m_per_km": _number(-trend.cx * 1000.0, 6),
        "tilt_y_m_per_km": _number(-trend.cy * 1000.0, 6), "step_px": _number(last.step_px, 6) if last else "",
        "iterations": str(len(fit.iterations)), "converged": "yes" if fit.converged else "no",
        "median_before_m": _number(fit.median_before), "median_after_m": _number(fit.median_after),
        "nmad_before_m": _number(fit.nmad_before), "nmad_after_m": _number(fit.nmad_after),
        "n_stable_cells": str(fit.n_cells), "n_aspect_bins": str(last.n_bins) if last else "",
    }]
    for step in fit.iterations:
        row = dict.fromkeys(COLUMNS, "")
        row.update({"row": "iteration", "iteration": str(step.iteration), "shift_x_m": _number(-step.offset_x),
                    "shift_y_m": _number(-step.offset_y), "step_px": _number(step.step_px, 6),
                    "median_before_m": _number(step.median), "nmad_before_m": _number(step.nmad),
                    "n_stable_cells": str(step.n_cells), "n_aspect_bins": str(step.n_bins)})
        rows.append(row)
    return rows


def report_text(fit: FitResult) -> str:
    """The CSV text of the table."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report_rows(fit))
    return buffer.getvalue()
