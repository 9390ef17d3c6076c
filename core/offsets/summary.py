"""What a correlation run measured: the numbers of its final log line (cells, valid share, median
offset in pixels and in ground units, run time), gathered from the blocks as they are written."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np
from affine import Affine

#: CRS linear unit names (rasterio ``CRS.linear_units``) and their short symbols.
_UNIT_SYMBOLS = {"metre": "m", "meter": "m", "foot": "ft", "us survey foot": "US ft"}


@dataclass(frozen=True)
class CorrelationSummary:
    """Summary of a disparity raster written by :func:`core.offsets.correlate.correlate_files`.

    ``cells``: cells of the output grid; ``valid``: cells with a valid offset. ``median_dx`` /
    ``median_dy``: medians of the valid dx (reference px, + right) and dy (reference px, + down);
    ``median_magnitude``: median of the valid |(dx, dy)| (px). ``median_east`` / ``median_north``:
    the median offset vector (median_dx, median_dy) mapped through the reference pixel geometry
    into CRS units (+ along the CRS x and y axes, east and north on ordinary projected CRSes);
    ``median_ground_magnitude``: median of the valid offsets' lengths in CRS units. Medians are NaN
    without a valid cell. ``unit``: the CRS linear unit ("m"); ``seconds``: wall time of the run.
    """

    path: str
    cells: int
    valid: int
    median_dx: float
    median_dy: float
    median_magnitude: float
    median_east: float
    median_north: float
    median_ground_magnitude: float
    unit: str
    seconds: float

    @property
    def valid_percent(self) -> float:
        """Share of the grid cells with a valid offset, in %."""
        return 100.0 * self.valid / self.cells if self.cells else 0.0

    def describe(self) -> str:
        """The run's summary line, e.g. ``"Correlated 3,600 cells: 2,871 valid (79.8 %); median offset
        dx +0.512 px, dy -0.301 px (+1.536 m east, +0.903 m north), |offset| 0.610 px (1.830 m); 4.2 s"``."""
        u = self.unit
        return (f"Correlated {self.cells:,} cells: {self.valid:,} valid ({self.valid_percent:.1f} %); median offset "
                f"dx {self.median_dx:+.3f} px, dy {self.median_dy:+.3f} px ({self.median_east:+.3f} {u} east, "
                f"{self.median_north:+.3f} {u} north), |offset| {self.median_magnitude:.3f} px "
                f"({self.median_ground_magnitude:.3f} {u}); {self.seconds:.1f} s")


class SummaryCollector:
    """Collects the valid offsets of the blocks of one grid as they are written (float32, as in
    the file), then :meth:`summary` computes the medians. ``pixel``: the linear part of the
    reference pixel geometry (map units per reference pixel)."""

    def __init__(self, cells: int, pixel: Affine, crs) -> None:
        self.cells = int(cells)
        self.pixel = pixel
        self.unit = unit_symbol(crs)
        self.dx: List[np.ndarray] = []
        self.dy: List[np.ndarray] = []

    def add(self, dx: np.ndarray, dy: np.ndarray, valid: np.ndarray) -> None:
        """The written dx, dy bands of a block and its valid mask."""
        valid = np.asarray(valid, bool)
        self.dx.append(np.asarray(dx)[valid])
        self.dy.append(np.asarray(dy)[valid])

    def summary(self, path: str, seconds: float) -> CorrelationSummary:
        dx = np.concatenate(self.dx) if self.dx else np.zeros(0, np.float32)
        dy = np.concatenate(self.dy) if self.dy else np.zeros(0, np.float32)
        p = self.pixel
        wide_dx, wide_dy = dx.astype(np.float64), dy.astype(np.float64)
        ground = np.hypot(p.a * wide_dx + p.b * wide_dy, p.d * wide_dx + p.e * wide_dy)
        median_dx, median_dy = _median(dx), _median(dy)
        return CorrelationSummary(
            path=path, cells=self.cells, valid=int(dx.size), median_dx=median_dx, median_dy=median_dy,
            median_magnitude=_median(np.hypot(wide_dx, wide_dy)),
            median_east=p.a * median_dx + p.b * median_dy, median_north=p.d * median_dx + p.e * median_dy,
            median_ground_magnitude=_median(ground), unit=self.unit, seconds=float(seconds))


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if np.size(values) else float("nan")


def unit_symbol(crs) -> str:
    """Short symbol of a CRS's linear unit ("m"), the unit's name when it has none."""
    name = str(getattr(crs, "linear_units", "") or "").strip().lower()
    return _UNIT_SYMBOLS.get(name, name or "map units")
