"""The demo's PNG maps, drawn with matplotlib: one raster band coloured over an optional grey
background, outlines or tracks on top, and what makes a map readable — a title, a colour bar with
the quantity and its units, a scale bar and a north arrow (true north, computed from the CRS).

Colour ranges come from the data: the 2nd-98th percentile of the finite values, or, for signed
quantities (offsets, strain rates, flux divergence), symmetric around zero: ±max(|p2|, |p98|).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from affine import Affine
from matplotlib import patheffects
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from core.io.styles import percentile_range

#: Lengths a scale bar may take: 1, 2 or 5 times a power of ten (map units).
_NICE_STEPS = (1.0, 2.0, 5.0)
#: The gid of the north arrow's annotation (found by tests).
NORTH_ARROW = "north-arrow"


@dataclass
class Band:
    """A raster band on its grid: ``values`` (2-D, NaN = nodata), ``transform`` (pixel corner to map)."""

    values: np.ndarray
    transform: Affine

    @property
    def extent(self) -> Tuple[float, float, float, float]:
        """(left, right, bottom, top) in map units, as ``imshow`` wants it (north-up grids)."""
        height, width = self.values.shape
        left, top = self.transform * (0, 0)
        right, bottom = self.transform * (width, height)
        return left, right, bottom, top


@dataclass
class MapStyle:
    """How the band is shown: ``quantity`` and ``units`` label the colour bar; ``symmetric``
    centres the colour range on zero (signed quantities)."""

    quantity: str
    units: str
    cmap: str = "viridis"
    symmetric: bool = False
    alpha: float = 1.0
    lines: List[Tuple[np.ndarray, str]] = field(default_factory=list)  # (N, 2) map coordinates, colour


def colour_range(values: np.ndarray, symmetric: bool = False) -> Tuple[float, float]:
    """The range the plugin's styles use (:func:`core.io.styles.percentile_range`: 2nd-98th
    percentile, ``symmetric``: ±max(|p2|, |p98|)); an empty band gets 0..1 (±1 symmetric), a
    constant one ±0.5 around its value."""
    fitted = percentile_range(values, symmetric)
    if fitted is not None:
        return fitted
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if symmetric or finite.size == 0:
        return (-1.0, 1.0) if symmetric else (0.0, 1.0)
    return float(finite[0]) - 0.5, float(finite[0]) + 0.5


def grey_stretch(values: np.ndarray) -> np.ndarray:
    """A background image stretched to 0..1 over its 2nd-98th percentile (NaN stays NaN)."""
    low, high = colour_range(values)
    return np.clip((np.asarray(values, np.float64) - low) / (high - low), 0.0, 1.0)


def scale_length(width: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k map units) of at most a fifth of ``width``."""
    target = width / 5.0
    power = 10.0 ** math.floor(math.log10(target))
    return max(step * power for step in _NICE_STEPS if step * power <= target)


def length_label(length: float, units: str) -> str:
    """'500 m', '2 km' (metres), else the length in the CRS units."""
    if units == "m":
        return f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    return f"{length:g} {units}"


def true_north_angle(crs, x: float, y: float) -> float:
    """Direction of true north at map point (x, y), in degrees clockwise from the grid's up
    (0 on north-up UTM near its central meridian; large on polar stereographic grids)."""
    from rasterio.warp import transform as transform_points

    (lon,), (lat,) = transform_points(crs, "EPSG:4326", [x], [y])
    (x_north,), (y_north,) = transform_points("EPSG:4326", crs, [lon], [min(lat + 0.01, 89.999)])
    return math.degrees(math.atan2(x_north - x, y_north - y))


def map_figure(band: Band, crs, title: str, style: MapStyle, background: Optional[Band] = None,
               size: Tuple[float, float] = (9.0, 7.5)) -> Figure:
    """A figure of ``band`` in ``style`` (over ``background`` in grey) with its title, colour bar,
    scale bar (CRS linear units) and north arrow."""
    figure = Figure(figsize=size, dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    if background is not None:
        axes.imshow(grey_stretch(background.values), cmap="gray", extent=background.extent, interpolation="nearest")
    vmin, vmax = colour_range(band.values, style.symmetric)
    image = axes.imshow(np.ma.masked_invalid(band.values), cmap=style.cmap, vmin=vmin, vmax=vmax,
                        alpha=style.alpha, extent=band.extent, interpolation="nearest")
    for coordinates, colour in style.lines:
        axes.plot(coordinates[:, 0], coordinates[:, 1], color=colour, linewidth=1.0)
    left, right, bottom, top = (background or band).extent
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title)
    colour_bar = figure.colorbar(image, ax=axes, shrink=0.85, extend="both")
    colour_bar.set_label(f"{style.quantity} ({style.units})")
    units = linear_units(crs)
    add_scale_bar(axes, right - left, units)
    add_north_arrow(axes, true_north_angle(crs, 0.5 * (left + right), 0.5 * (bottom + top)))
    return figure


def linear_units(crs) -> str:
    """'m' for metre CRSes, else the CRS's unit name."""
    from rasterio.crs import CRS

    name = (CRS.from_user_input(crs).linear_units or "").lower()
    return "m" if name in ("metre", "meter") else name or "map units"


def add_scale_bar(axes, width: float, units: str) -> AnchoredSizeBar:
    """A scale bar in the lower left corner, 1/5 of the map width or less, labelled in ``units``."""
    length = scale_length(width)
    bar = AnchoredSizeBar(axes.transData, length, length_label(length, units), loc="lower left", pad=0.5,
                          borderpad=0.8, sep=4, frameon=True, size_vertical=width / 150.0, color="black")
    bar.patch.set_alpha(0.8)
    axes.add_artist(bar)
    return bar


def add_north_arrow(axes, angle_deg: float, length_points: float = 36.0) -> None:
    """A north arrow in the upper right corner pointing ``angle_deg`` clockwise from up, labelled N."""
    dx = math.sin(math.radians(angle_deg))
    dy = math.cos(math.radians(angle_deg))
    tip = (0.9, 0.88)
    halo = [patheffects.withStroke(linewidth=4, foreground="white")]  # readable on dark and light maps
    arrow = axes.annotate("", xy=tip, xycoords="axes fraction", xytext=(-dx * length_points, -dy * length_points),
                          textcoords="offset points", gid=NORTH_ARROW,
                          arrowprops=dict(arrowstyle="-|>", color="black", linewidth=2, mutation_scale=18))
    arrow.arrow_patch.set_path_effects(halo)
    axes.annotate("N", xy=tip, xycoords="axes fraction", xytext=(dx * 10, dy * 10), textcoords="offset points",
                  ha="center", va="center", fontsize=13, fontweight="bold", path_effects=halo)


def geometry_lines(geometry: dict) -> List[np.ndarray]:
    """The rings or lines of a GeoJSON geometry as (N, 2) arrays."""
    kind, coordinates = geometry["type"], geometry["coordinates"]
    if kind == "LineString":
        return [np.asarray(coordinates, float)[:, :2]]
    if kind in ("Polygon", "MultiLineString"):
        return [np.asarray(ring, float)[:, :2] for ring in coordinates]
    if kind == "MultiPolygon":
        return [np.asarray(ring, float)[:, :2] for polygon in coordinates for ring in polygon]
    return []


def save(figure: Figure, path: str) -> str:
    """Write the figure as a PNG (tight layout, 100 dpi)."""
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def coloured_lines(geometries: Sequence[dict], colour: str) -> List[Tuple[np.ndarray, str]]:
    """The lines of GeoJSON ``geometries`` in one colour, for :attr:`MapStyle.lines`."""
    return [(line, colour) for geometry in geometries for line in geometry_lines(geometry)]
