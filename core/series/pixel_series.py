"""The time series of one pixel, read from the files of a series output (QGIS-free; the panel of
``ui/timeseries_panel.py`` plots it).

Three kinds of file are recognised by their tags:

* ``series``: an ``invertpairs`` output (the issue-14 time-series raster format): one multi-band float32
  GeoTIFF per quantity ``<prefix>_velocity_east.tif``, ``_velocity_north.tif``, ``_speed.tif``,
  ``_displacement_east.tif``, ``_displacement_north.tif``; one band per date, dataset tags
  ``SM_SERIES_KIND`` (the quantity), ``SM_SERIES_UNIT``, ``SM_SERIES_DATES`` (comma-separated ISO dates)
  and ``SM_SERIES_SOURCES`` (JSON list of ``{"path", "ref_date", "sec_date"}`` of the pair rasters used).
  An optional sibling ``<prefix>_<quantity>_error.tif`` of the same layout gives 1-σ error bars.
* ``stack``: a ``stackvelocity`` output: tag ``SM_SERIES_SOURCES`` without ``SM_SERIES_DATES``; only the
  pairs' segments are drawn.
* ``its_live``: a GeoTIFF of ``itslivedownload`` (``<cube>_<variable>.tif``, tag ``SM_VARIABLE`` = v, vx
  or vy, band descriptions = layer dates, band tags ``SM_MID_DATE``); the siblings ``<cube>_v.tif``,
  ``_vx.tif``, ``_vy.tif`` give speed and components, ``<cube>_<variable>_error.tif`` the error bars. A
  download that kept the image pairs (not aggregated: band tag ``SM_DATE_DT_DAYS``) also gives each layer
  as a segment over its acquisition span, mid_date ± date_dt / 2.
  (The NetCDF of the same download is not read: the GeoTIFFs carry the same layers.)

Components are ``speed``, ``east`` (grid x, positive east) and ``north`` (grid y, positive north); the unit
is the file's (m/yr for velocities, m for cumulative displacements). The pair segments are each source pair
velocity raster (bands ``speed (m/yr)``, ``east velocity (m/yr, grid x)``, ``north velocity (m/yr, grid y)``,
see ``core/offsets/velocity.py``) read at the same map position: a horizontal segment from the reference to
the secondary date at the pair's velocity. Disparity and ASP pairs are converted to m/yr the way the inversion
does (``core.series.network.read_pair``). Clicking ``<prefix>_quality.tif`` shows the velocity series too,
and its residual RMS and number of pairs used are shown with any series of the prefix.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import UserInputError
from ..io import band_index_by_description, open_raster, valid_mask_from_nodata

TAG_KIND, TAG_UNIT, TAG_DATES, TAG_SOURCES = "SM_SERIES_KIND", "SM_SERIES_UNIT", "SM_SERIES_DATES", "SM_SERIES_SOURCES"
#: Component of each SM_SERIES_KIND quantity, per family (velocity, displacement).
SERIES_COMPONENTS = {"speed": "speed", "velocity_east": "east", "velocity_north": "north",
                     "displacement_east": "east", "displacement_north": "north"}
FAMILIES = {"velocity": ("speed", "velocity_east", "velocity_north"),
            "displacement": ("displacement_east", "displacement_north")}
#: ITS_LIVE variables and their component.
ITSLIVE_COMPONENTS = {"v": "speed", "vx": "east", "vy": "north"}
COMPONENT_ORDER = ("speed", "east", "north")
#: Speed band of a pair velocity raster (core/offsets/velocity.py VELOCITY_DESCRIPTIONS).
SPEED_BAND = "speed (m/yr)"
CSV_COLUMNS = ("date", "value", "component", "kind", "error", "end_date", "unit")


@dataclass
class Series:
    """One component's values at the dates (NaN where the pixel has no value); ``errors``: 1-σ or None."""

    component: str
    unit: str
    dates: List[_dt.datetime]
    values: np.ndarray
    errors: Optional[np.ndarray] = None
    path: str = ""
    kind: str = "series"  # "series" (inverted) or "its_live" (one point per ITS_LIVE layer)
    #: ITS_LIVE layers that are image pairs: (first, second) acquisition dates per layer, else None
    spans: Optional[List[Tuple[_dt.datetime, _dt.datetime]]] = None


@dataclass
class Segment:
    """A source pair at the pixel: ``value`` (m/yr) of ``component`` from ``ref_date`` to ``sec_date``."""

    component: str
    ref_date: _dt.datetime
    sec_date: _dt.datetime
    value: float
    path: str


@dataclass
class PixelSeries:
    """Everything the panel shows for one click; ``message`` is non-empty when there is nothing to plot."""

    path: str
    family: str  # "velocity", "displacement", "stack" or "its_live"
    x: float
    y: float
    row: int = -1
    col: int = -1
    series: List[Series] = field(default_factory=list)
    segments: List[Segment] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    message: str = ""

    @property
    def unit(self) -> str:
        return self.series[0].unit if self.series else "m/yr"

    def has_data(self) -> bool:
        return any(np.isfinite(s.values).any() for s in self.series) or bool(self.segments)


def _date(text: str) -> _dt.datetime:
    """An ISO date or date-time (``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS``, optional ``Z``) as naive UTC."""
    text = text.strip().replace("Z", "")
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        moment = _dt.datetime.fromisoformat(text[:10])
    return moment.replace(tzinfo=None)


def file_kind(path: str) -> Optional[str]:
    """``"series"``, ``"stack"``, ``"its_live"`` or None (not a file the panel reads); never raises."""
    try:
        with open_raster(path) as ds:
            tags = ds.tags()
    except (UserInputError, OSError):
        return None
    if tags.get(TAG_KIND) in SERIES_COMPONENTS or tags.get(TAG_KIND) == "quality":
        return "series"
    if tags.get(TAG_SOURCES):
        return "stack"
    if tags.get("SM_VARIABLE") in ITSLIVE_COMPONENTS or tags.get("SM_VARIABLE", "").endswith("_error"):
        return "its_live"
    return None


def _with_suffix(path: str, old: str, new: str) -> str:
    folder, name = os.path.split(path)
    stem = name[:-len(old)] if name.endswith(old) else os.path.splitext(name)[0]
    return os.path.join(folder, stem + new)


def family_files(path: str) -> Tuple[str, Dict[str, str], Dict[str, str]]:
    """(family, {component: path}, {component: error path}) of the existing sibling files of ``path``."""
    kind = file_kind(path)
    if kind is None:
        raise UserInputError(
            f"'{os.path.basename(path)}' is not a time-series raster: click a layer written by "
            "invertpairs, stackvelocity or itslivedownload (a GeoTIFF, not the NetCDF).")
    with open_raster(path) as ds:
        tags = ds.tags()
    if kind == "stack":
        return "stack", {}, {}
    if kind == "series":
        quantity = tags[TAG_KIND]  # a quantity, or "quality" (the residuals of the velocity series)
        family = "displacement" if quantity.startswith("displacement") else "velocity"
        names = {SERIES_COMPONENTS[q]: q for q in FAMILIES[family]}
        old = f"_{quantity}.tif"
    else:
        variable = tags["SM_VARIABLE"]
        family, names, old = "its_live", {c: v for v, c in ITSLIVE_COMPONENTS.items()}, f"_{variable}.tif"
    files = {c: _with_suffix(path, old, f"_{n}.tif") for c, n in names.items()}
    errors = {c: _with_suffix(path, old, f"_{n}_error.tif") for c, n in names.items()}
    return (family, {c: p for c, p in files.items() if os.path.exists(p)},
            {c: p for c, p in errors.items() if os.path.exists(p)})


def _pixel_of(ds, x: float, y: float, crs=None) -> Optional[Tuple[int, int]]:
    """(row, col) of map position (x, y) (in ``crs``, default the raster's) or None outside the raster."""
    if crs is not None and ds.crs is not None and crs != ds.crs:
        from rasterio.warp import transform as transform_points
        xs, ys = transform_points(crs, ds.crs, [x], [y])
        x, y = xs[0], ys[0]
    col, row = ~ds.transform * (x, y)
    if not (math.isfinite(col) and math.isfinite(row)):
        return None
    row, col = int(math.floor(row)), int(math.floor(col))
    if 0 <= row < ds.height and 0 <= col < ds.width:
        return row, col
    return None


def _read_all_bands(ds, row: int, col: int) -> np.ndarray:
    """Every band's value at (row, col) as float64, nodata as NaN."""
    values = ds.read(window=Window(col, row, 1, 1)).astype(np.float64).reshape(-1)
    for index, nodata in enumerate(ds.nodatavals):
        if not valid_mask_from_nodata(values[index:index + 1], nodata)[0]:
            values[index] = np.nan
    return values


def _dates_of(ds) -> List[_dt.datetime]:
    """The band dates: tag SM_SERIES_DATES, else band tag SM_MID_DATE, else the description's ISO prefix."""
    tags = ds.tags()
    if tags.get(TAG_DATES):
        dates = [_date(text) for text in tags[TAG_DATES].split(",") if text.strip()]
        if len(dates) == ds.count:
            return dates
    dates = []
    for band, description in enumerate(ds.descriptions, start=1):
        mid = ds.tags(band).get("SM_MID_DATE")
        try:
            dates.append(_date(mid or (description or "")[:10]))
        except ValueError as exc:
            raise UserInputError(
                f"Band {band} of '{ds.path}' has no date (description '{description}'): the panel reads "
                "time-series rasters whose band descriptions start with an ISO date YYYY-MM-DD.") from exc
    return dates


def _layer_spans(ds, dates: List[_dt.datetime]) -> Optional[List[Tuple[_dt.datetime, _dt.datetime]]]:
    """(mid − dt/2, mid + dt/2) per band from the band tag SM_DATE_DT_DAYS (days) of a download that kept
    the image pairs (not aggregated); None when a band lacks it."""
    spans = []
    for band, mid in enumerate(dates, start=1):
        try:
            half = _dt.timedelta(days=float(ds.tags(band)["SM_DATE_DT_DAYS"]) / 2)
        except (KeyError, ValueError):
            return None
        spans.append((mid - half, mid + half))
    return spans


def _pair_segments_of(series: Series) -> List[Segment]:
    """An ITS_LIVE pair layer's value as a segment over its acquisition span (finite values only)."""
    return [Segment(series.component, start, end, float(value), series.path)
            for (start, end), value in zip(series.spans or [], series.values) if math.isfinite(value)]


def _unit_of(ds) -> str:
    tags = ds.tags()
    return tags.get(TAG_UNIT) or tags.get("SM_UNITS") or "m/yr"


def _read_series(path: str, component: str, x: float, y: float, error_path: Optional[str],
                 kind: str) -> Tuple[Optional[Series], Optional[Tuple[int, int]]]:
    with open_raster(path) as ds:
        cell = _pixel_of(ds, x, y)
        if cell is None:
            return None, None
        series = Series(component, _unit_of(ds), _dates_of(ds), _read_all_bands(ds, *cell), None, path, kind)
        series.spans = _layer_spans(ds, series.dates) if kind == "its_live" else None
    if error_path:
        with open_raster(error_path) as ds:
            error_cell = _pixel_of(ds, x, y)
            if error_cell is not None and ds.count == series.values.size:
                series.errors = np.abs(_read_all_bands(ds, *error_cell))
    return series, cell


def _sources(path: str) -> List[dict]:
    with open_raster(path) as ds:
        text = ds.tags().get(TAG_SOURCES)
    if not text:
        return []
    try:
        sources = json.loads(text)
    except ValueError as exc:
        raise UserInputError(f"The tag {TAG_SOURCES} of '{path}' is not valid JSON: {exc}.") from exc
    return [s for s in sources if isinstance(s, dict) and {"path", "ref_date", "sec_date"} <= set(s)]


def _pair_segments(pair, cell: Tuple[int, int]) -> List[Segment]:
    """Speed, east and north segments (m/yr) of one pair raster at (row, col); none where it has no value.
    Speed: the velocity raster's speed band (what its map shows), else √(east² + north²)."""
    window = Window(cell[1], cell[0], 1, 1)
    east, north = (float(v[0, 0]) for v in pair.read_velocity(window))
    if not (math.isfinite(east) and math.isfinite(north)):
        return []
    speed = math.hypot(east, north)
    if pair.kind == "velocity":
        with open_raster(pair.path) as ds:
            band = band_index_by_description(ds, SPEED_BAND)
            speed = float(ds.read_float(band, window=window)[0, 0]) if band else speed
    ref, sec = (moment.astimezone(_dt.timezone.utc).replace(tzinfo=None) for moment in (pair.ref_date, pair.sec_date))
    return [Segment(component, ref, sec, value, pair.path)
            for component, value in (("speed", speed), ("east", east), ("north", north))]


def _read_segments(path: str, x: float, y: float, crs, notes: List[str]) -> List[Segment]:
    """The source pairs of ``path`` read at (x, y) (map coordinates in ``crs``): velocity, disparity or
    ASP pair rasters (``core.series.network.read_pair``, velocities in m/yr); missing or unreadable files
    are noted."""
    from .network import read_pair

    segments, missing, unreadable = [], 0, 0
    folder = os.path.dirname(os.path.abspath(path))
    for source in _sources(path):
        pair_path = source["path"] if os.path.isabs(source["path"]) else os.path.join(folder, source["path"])
        if not os.path.exists(pair_path):
            missing += 1
            continue
        try:
            pair = read_pair(pair_path, source["ref_date"], source["sec_date"])
            with open_raster(pair_path) as ds:
                cell = _pixel_of(ds, x, y, crs)
            if cell is not None:
                segments += _pair_segments(pair, cell)
        except UserInputError:
            unreadable += 1
    name = os.path.basename(path)
    if missing:
        notes.append(f"{missing} source pair file(s) of {name} no longer exist; their segments are not drawn.")
    if unreadable:
        notes.append(f"{unreadable} source pair file(s) of {name} cannot be read as pair rasters; "
                     "their segments are not drawn.")
    return segments


def _quality_note(path: str, x: float, y: float) -> Optional[str]:
    """'residual RMS …, pairs used …' at (x, y) from the invertpairs ``<prefix>_quality.tif``, if any."""
    if not os.path.exists(path):
        return None
    with open_raster(path) as ds:
        cell = _pixel_of(ds, x, y)
        if cell is None:
            return None
        values = dict(zip(ds.descriptions, _read_all_bands(ds, *cell)))
    rms, used = values.get("residual RMS (m/yr)"), values.get("pairs used (count)")
    if rms is None or used is None or not math.isfinite(used):
        return None
    return f"Residual RMS {rms:.3g} m/yr, {int(used)} pair(s) used."


def read_pixel_series(path: str, x: float, y: float) -> PixelSeries:
    """The time series of the pixel at map position (x, y) (in the CRS of ``path``) of a series output.

    Outside the raster, or with no value at any date: a :class:`PixelSeries` whose ``message`` says so.
    Raises :class:`UserInputError` when ``path`` is not a time-series raster or cannot be read.
    """
    with rasterio.Env():  # one GDAL environment for the many small reads (not one per file opened)
        return _read_pixel_series(path, x, y)


def _read_pixel_series(path: str, x: float, y: float) -> PixelSeries:
    family, files, errors = family_files(path)
    pixel = PixelSeries(path, family, x, y)
    with open_raster(path) as ds:
        crs, cell = ds.crs, _pixel_of(ds, x, y)
    if cell is None:
        pixel.message = f"({x:.1f}, {y:.1f}) is outside {os.path.basename(path)}; click inside the raster."
        return pixel
    pixel.row, pixel.col = cell
    for component in COMPONENT_ORDER:
        if component in files:
            series, _ = _read_series(files[component], component, x, y, errors.get(component),
                                     "its_live" if family == "its_live" else "series")
            if series is not None:
                pixel.series.append(series)
                pixel.segments += _pair_segments_of(series)
    if family in ("velocity", "stack"):
        pixel.segments = _read_segments(path, x, y, crs, pixel.notes)
    if family in ("velocity", "displacement") and files:
        prefix_file = next(iter(files.values()))
        kind = next(q for q in FAMILIES[family] if prefix_file.endswith(f"_{q}.tif"))
        note = _quality_note(_with_suffix(prefix_file, f"_{kind}.tif", "_quality.tif"), x, y)
        if note:
            pixel.notes.insert(0, note)
    if not pixel.has_data():
        pixel.message = (f"No value at row {pixel.row}, column {pixel.col} of {os.path.basename(path)} "
                         "(NaN at every date and in every source pair).")
    return pixel


def _number(value: float) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def csv_text(pixel: PixelSeries) -> str:
    """CSV of a pixel's series and segments: ``date, value, component, kind, error, end_date, unit``.

    ``kind`` is ``series`` (inverted or ITS_LIVE layer) or ``pair`` (a source pair: ``date`` = reference,
    ``end_date`` = secondary date); empty ``value`` / ``error`` = no value.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for series in pixel.series:
        errors = series.errors if series.errors is not None else [None] * len(series.dates)
        for date, value, error in zip(series.dates, series.values, errors):
            writer.writerow([date.date().isoformat(), _number(value), series.component, series.kind,
                             _number(error), "", series.unit])
    for segment in pixel.segments:
        writer.writerow([segment.ref_date.date().isoformat(), _number(segment.value), segment.component, "pair",
                         "", segment.sec_date.date().isoformat(), "m/yr"])
    return buffer.getvalue()


def read_csv_rows(text: str) -> List[Dict[str, str]]:
    """The rows of :func:`csv_text` as dicts (to check an export)."""
    return list(csv.DictReader(io.StringIO(text)))


def series_of(pixel: PixelSeries, component: str) -> Optional[Series]:
    """The series of ``component`` or None."""
    return next((s for s in pixel.series if s.component == component), None)


def components(pixel: PixelSeries) -> Sequence[str]:
    """The components present (series or segments), in the order speed, east, north."""
    present = {s.component for s in pixel.series} | {s.component for s in pixel.segments}
    return [c for c in COMPONENT_ORDER if c in present]
