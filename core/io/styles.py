"""QML styles shipped with the plugin (``ui/styles/<name>.qml``), written as sidecars of outputs,
their colour ranges fitted to the data, and the short layer names of the map.

A style listed in :data:`DATA_RANGES` gets the 2nd-98th percentile of the band it colours as its
colour range when an output is written (:func:`fitted_style`), symmetric around 0 for signed
quantities (offsets, strain rates, divergence); the other styles (azimuth, phase, masks) keep the
fixed range they were made with (make_styles.py in tools). The percentiles come from at most
:data:`SAMPLE_CELLS` cells of the band (a decimated read of the written file), so memory stays
bounded on any raster size.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import xml.etree.ElementTree as ET
from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import UserInputError

STYLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "ui", "styles")

#: Percentiles of the colour range fitted to the data.
RANGE_PERCENTILES = (2.0, 98.0)
#: At most this many cells of a band are read to fit a colour range (a decimated read).
SAMPLE_CELLS = 1_000_000
#: How each data-fitted style spans its band: "percentile" (p2..p98) or "symmetric" (-m..m with
#: m = max(|p2|, |p98|), so 0 keeps the ramp's middle colour). Unlisted styles keep a fixed range.
DATA_RANGES = {
    "disparity_dx": "symmetric", "disparity_dy": "symmetric",
    "velocity_speed": "percentile",
    "strain_e1": "symmetric", "strain_longitudinal": "symmetric", "strain_effective": "percentile",
    "flux_divergence": "symmetric",
    "itslive_speed": "percentile", "itslive_component": "symmetric",
    "s1_backscatter_db": "percentile", "s1_backscatter_linear": "percentile", "s1_std": "percentile",
    "s1_std_db": "percentile", "s1_cov": "percentile", "s1_pdiff": "percentile", "s1_count": "percentile",
    "s1_amplitude": "percentile", "s1_residuals": "percentile", "s1_trend": "symmetric",
    "dem_dh": "symmetric",
}
_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def style_path(name: str) -> str:
    """Path of the style ``name``; a missing style is a packaging error, reported clearly."""
    path = os.path.join(STYLES_DIR, name + ".qml")
    if not os.path.isfile(path):
        raise UserInputError(f"The style '{name}' is missing from {STYLES_DIR}; reinstall the plugin.")
    return path


def percentile_range(values: np.ndarray, symmetric: bool = False) -> Optional[Tuple[float, float]]:
    """The (low, high) colour range of ``values``: their 2nd and 98th percentiles, or (-m, m) with
    m = max(|p2|, |p98|) when ``symmetric``. Non-finite values are ignored; None when no finite
    value is left or the range is empty (a constant band), so the style keeps its fixed range."""
    finite = np.asarray(values, dtype="float64").ravel()
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    low, high = (float(v) for v in np.percentile(finite, RANGE_PERCENTILES))
    if symmetric:
        half = max(abs(low), abs(high))
        low, high = -half, half
    return (low, high) if high > low else None


def band_sample(dataset, band: int, max_cells: int = SAMPLE_CELLS) -> np.ndarray:
    """The valid values (float64, 1-D) of ``band`` of an open rasterio ``dataset``: every cell when
    the band has at most ``max_cells``, else a nearest-neighbour decimated read of about
    ``max_cells`` cells (memory bounded by the sample, whatever the raster size)."""
    from .read import valid_mask_from_nodata

    height, width = dataset.height, dataset.width
    factor = max(1.0, float(np.sqrt(height * width / float(max_cells))))
    shape = (max(1, int(height / factor)), max(1, int(width / factor)))
    values = dataset.read(band, out_shape=shape) if factor > 1.0 else dataset.read(band)
    valid = valid_mask_from_nodata(values, dataset.nodatavals[band - 1]) & np.isfinite(values.astype("float64"))
    return values[valid].astype("float64")


def style_band(qml_text: str) -> Optional[int]:
    """The band a single-band pseudocolour style colours, or None for other renderers."""
    renderer = ET.fromstring(_without_doctype(qml_text)).find(".//rasterrenderer")
    if renderer is None or renderer.get("type") != "singlebandpseudocolor":
        return None
    return int(renderer.get("band", "1"))


def with_colour_range(qml_text: str, low: float, high: float) -> str:
    """``qml_text`` (a single-band pseudocolour style) with its colour range set to [low, high]:
    the renderer's classification bounds, the shader's bounds, and every ramp item moved in
    proportion (colours kept, labels and the legend's numbers with 3 significant digits)."""
    root = ET.fromstring(_without_doctype(qml_text))
    renderer = root.find(".//rasterrenderer")
    shader = root.find(".//rasterrenderer//colorrampshader")
    if renderer is None or shader is None:
        return qml_text
    old_low = float(shader.get("minimumValue", renderer.get("classificationMin", "0")))
    old_high = float(shader.get("maximumValue", renderer.get("classificationMax", "1")))
    span = (old_high - old_low) or 1.0
    for element, low_key, high_key in ((renderer, "classificationMin", "classificationMax"),
                                       (shader, "minimumValue", "maximumValue")):
        element.set(low_key, repr(float(low)))
        element.set(high_key, repr(float(high)))
    for option in shader.findall("./rampLegendSettings/numericFormat/Option/Option"):
        if option.get("name") == "rounding_type":
            option.set("value", "1")  # significant figures: the legend reads 8.37, not 8.373826
        elif option.get("name") == "decimals":
            option.set("value", "3")
    for item in shader.findall("item"):
        fraction = (float(item.get("value")) - old_low) / span
        value = low + fraction * (high - low)
        item.set("value", repr(float(value)))
        item.set("label", f"{value:.3g}")
    return _DOCTYPE + ET.tostring(root, encoding="unicode")


def fitted_style(name: str, dataset) -> str:
    """The QML text of style ``name`` for the open rasterio ``dataset``: with its colour range fitted
    to the data when :data:`DATA_RANGES` lists the style (see :func:`percentile_range`), else as
    shipped."""
    with open(style_path(name), encoding="utf-8") as handle:
        text = handle.read()
    mode = DATA_RANGES.get(name)
    band = style_band(text) if mode else None
    if band is None or band > dataset.count:
        return text
    colour_range = percentile_range(band_sample(dataset, band), symmetric=mode == "symmetric")
    return text if colour_range is None else with_colour_range(text, *colour_range)


def fitted_style_of_file(name: str, path: str) -> str:
    """:func:`fitted_style` for the raster at ``path`` (e.g. a companion view being loaded)."""
    from .read import open_raster

    with open_raster(path) as dataset:
        return fitted_style(name, dataset)


def _without_doctype(text: str) -> str:
    return re.sub(r"^\s*<!DOCTYPE[^>]*>\s*", "", text)


# ---------------------------------------------------------------- short layer names

_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")


def dates_in_name(path: str) -> list:
    """The calendar dates (``datetime.date``) written in a file name as YYYYMMDD or YYYY-MM-DD, in
    order of appearance and without repeats (e.g. the reference and secondary date of a pair)."""
    found = []
    for match in _DATE.finditer(os.path.basename(path)):
        try:
            day = _dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            continue
        if day not in found:
            found.append(day)
    return found


def date_label(path: str) -> Optional[str]:
    """``2020-07-15 → 2021-01-12`` for a pair file, ``2020-07-15`` for a one-date file, else None."""
    days = dates_in_name(path)
    if not days:
        return None
    return days[0].isoformat() if len(days) == 1 else f"{days[0].isoformat()} → {days[1].isoformat()}"


def layer_label(path: str, role: str = "") -> str:
    """The short map name of an output: its date label and ``role`` (``2020-07-15 → 2021-01-12
    speed``), or the file stem and role when the name holds no date."""
    base = date_label(path) or os.path.splitext(os.path.basename(path))[0]
    return f"{base} {role}".strip()


def run_label(paths: Sequence[str]) -> str:
    """The date part of a run's group name: the pair or date of one output, else the span of all
    outputs' dates with their count (``2020-07-15 → 2022-07-16, 9 pairs``); empty without dates."""
    labels = [date_label(path) for path in paths]
    if len(paths) == 1 and labels[0]:
        return labels[0]
    days = sorted({day for path in paths for day in dates_in_name(path)})
    if not days:
        return ""
    pairs = sum(1 for path in paths if len(dates_in_name(path)) >= 2)
    what = f"{pairs} pairs" if pairs == len(paths) else f"{len(paths)} layers"
    return f"{days[0].isoformat()} → {days[-1].isoformat()}, {what}"
