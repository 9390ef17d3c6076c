"""PNG plots of AOI timelines (surfacemotion:aoitimeline), drawn with matplotlib's Agg canvas.

matplotlib is imported lazily, and through ``matplotlib.figure.Figure`` + ``FigureCanvasAgg`` so the global
pyplot backend of a QGIS session is never switched. Each pair is a horizontal segment from its first to its
last date at its median speed (m/yr), with a p25–p75 error bar at the mid-date. Files are written atomically
(core.io.atomic_file).
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..io import atomic_file
from ..offsets.planetscope import parse_iso_utc


def _check_png(path: str) -> None:
    with open(path, "rb") as handle:
        if handle.read(8) != b"\x89PNG\r\n\x1a\n":
            raise OSError("the PNG plot reads back without its PNG signature")


def timeline_figure(rows: Sequence[dict], title: str, quantity: str = "speed"):
    """A matplotlib Figure of ``rows`` (timeline rows of one feature, see core.series.timeline)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for row in rows:
        median = row[f"median_{quantity}"]
        if not row[f"n_valid_{quantity}"] or median != median:
            continue
        start, end = sorted((parse_iso_utc(row["date_ref"]), parse_iso_utc(row["date_sec"])))
        mid = parse_iso_utc(row["mid_date"])
        axes.plot([start, end], [median, median], color="tab:blue", linewidth=1.5)
        axes.errorbar([mid], [median], yerr=[[median - row[f"p25_{quantity}"]], [row[f"p75_{quantity}"] - median]],
                      fmt="o", color="tab:blue", markersize=3, capsize=2, linewidth=0.8)
    axes.set_ylabel(f"{quantity.replace('_', ' ')} (m/yr), median and p25-p75")
    axes.set_xlabel("date (UTC)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    figure.autofmt_xdate()
    return figure


def write_timeline_png(path: str, rows: Sequence[dict], title: str, output_set=None,
                       quantity: str = "speed") -> Optional[str]:
    """Write the timeline plot of one feature to ``path`` (PNG, atomic); returns ``path``."""
    figure = timeline_figure(rows, title, quantity)
    with atomic_file(path, verify=_check_png, output_set=output_set) as tmp:
        figure.savefig(tmp, format="png")
    return path
