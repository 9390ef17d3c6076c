"""Sentinel-1 product inventory (``surfacemotion:s1inventory``), the OpenSarToolkit way: footprint
records of GRD products (from a catalogue search, :mod:`.stac`, or a folder of downloaded
products), then the *refine* step — group by key (orbit direction + polarisations, OST's
``ASCENDING_VVVH``), track (relative orbit) and acquisition (UTC day), measure how much of the
area of interest each track's mosaic of the day covers, and preselect the key with the most
complete mosaics.

Conventions: times are ISO 8601 UTC text; the search keeps ``start ≤ start_time < end``;
coverages are area(AOI ∩ footprint(s)) / area(AOI) × 100 in a Lambert azimuthal equal-area
projection centred on the AOI (REFERENCE §3: never areas in degrees); a mosaic is *complete*
when its coverage is at least ``min_coverage`` % (default 99.5: footprints are rounded).
"""
from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..choices import Choices
from ..errors import UserInputError, check_canceled
from ..planet.areas import densified, equal_area_projector
from .ard import SAFE_PATTERN, product_footprint

#: (name, type, description). Types: "string", "int", "double", "bool". Defined once: the algorithm
#: builds its QGIS fields from it and s1download reads id, download_url, checksum and size_bytes.
INVENTORY_FIELDS: Tuple[Tuple[str, str, str], ...] = (
    ("id", "string", "product name (S1A_IW_GRDH_1SDV_…), without .SAFE / .zip"),
    ("platform", "string", "S1A, S1B, S1C or S1D"),
    ("start_time", "string", "sensing start, ISO 8601 UTC"),
    ("stop_time", "string", "sensing stop, ISO 8601 UTC"),
    ("relative_orbit", "int", "relative orbit (track), 1-175"),
    ("absolute_orbit", "int", "absolute orbit number"),
    ("orbit_direction", "string", "ASCENDING or DESCENDING"),
    ("slice_number", "int", "slice number within the datatake (NULL when the source does not give it)"),
    ("polarisations", "string", "polarisations, space-separated (VV VH)"),
    ("product_type", "string", "GRD"),
    ("mode", "string", "acquisition mode (IW, EW, SM)"),
    ("download_url", "string", "URL of the product archive (empty for local products)"),
    ("checksum", "string", "archive checksum as algorithm:hex (md5:…, sha256:…), empty when unknown"),
    ("size_bytes", "double", "archive size (bytes), NULL when unknown"),
    ("path", "string", "local .SAFE folder or .zip (folder mode), else empty"),
    ("key", "string", "OST key: orbit direction and polarisations (ASCENDING_VVVH)"),
    ("acquisition", "string", "acquisition day of the track (UTC date of start_time, YYYY-MM-DD)"),
    ("aoi_coverage_pct", "double", "area(AOI ∩ footprint) / area(AOI) × 100 (%)"),
    ("mosaic_coverage_pct", "double", "coverage of the AOI by all products of this key, track and day (%)"),
    ("complete", "bool", "the mosaic of this key, track and day covers the AOI (≥ minimum coverage)"),
    ("selected", "bool", "in a complete mosaic of the preselected key"),
)
FIELD_NAMES = tuple(name for name, _, _ in INVENTORY_FIELDS)
#: Fields of the mosaics layer (one polygon per key, track and day: the union of its footprints).
MOSAIC_FIELDS: Tuple[Tuple[str, str, str], ...] = (
    ("key", "string", "OST key (ASCENDING_VVVH)"),
    ("relative_orbit", "int", "relative orbit (track)"),
    ("acquisition", "string", "UTC day, YYYY-MM-DD"),
    ("n_products", "int", "products (slices) in the mosaic"),
    ("coverage_pct", "double", "area(AOI ∩ mosaic) / area(AOI) × 100 (%)"),
    ("complete", "bool", "coverage ≥ minimum coverage"),
    ("selected", "bool", "key preselected (most complete mosaics)"),
)

PRODUCT_TYPES = Choices(("GRD", "GRD (ground range detected)"))
MODES = Choices(("IW", "IW (interferometric wide swath)"), ("EW", "EW (extra wide swath)"),
                ("SM", "SM (stripmap)"))
#: Polarisation filter, OST's names (a product qualifies when it has every listed polarisation).
POLARISATION_FILTERS = Choices(("VV VH", "VV VH (dual)"), ("HH HV", "HH HV (dual)"), ("VV", "VV"), ("HH", "HH"),
                               ("any", "any"))
ORBIT_DIRECTIONS = Choices(("any", "any"), ("ASCENDING", "ascending"), ("DESCENDING", "descending"))
#: Order of the polarisations in keys (VVVH, HHHV).
_POL_ORDER = ("VV", "VH", "HH", "HV")
DEFAULT_MIN_COVERAGE = 99.5
#: First absolute orbit of each platform's relative orbit 1 minus 1 (ESA: rel = (abs − offset) mod 175 + 1).
_ORBIT_OFFSETS = {"S1A": 73, "S1B": 27}


@dataclass
class InventoryRequest:
    """What to list. ``aoi``: GeoJSON (Multi)Polygon, lon/lat; ``start`` ≤ start_time < ``end`` (UTC);
    ``relative_orbits`` empty = all tracks."""

    aoi: dict
    start: dt.datetime
    end: dt.datetime
    product_type: str = "GRD"
    mode: str = "IW"
    polarisation: str = "VV VH"
    orbit_direction: str = "any"
    relative_orbits: Sequence[int] = ()
    min_coverage: float = DEFAULT_MIN_COVERAGE

    def validate(self) -> None:
        from shapely.geometry import shape

        if not self.aoi or shape(self.aoi).is_empty or shape(self.aoi).area <= 0:
            raise UserInputError("The area of interest is empty: give an extent or a polygon layer with an area.")
        if self.end <= self.start:
            raise UserInputError(f"The end date ({self.end:%Y-%m-%d}) must be after the start date "
                                 f"({self.start:%Y-%m-%d}); the end date is excluded.")
        PRODUCT_TYPES.check(self.product_type, "product type")
        MODES.check(self.mode, "acquisition mode")
        POLARISATION_FILTERS.check(self.polarisation, "polarisation")
        ORBIT_DIRECTIONS.check(self.orbit_direction, "orbit direction")
        bad = [orbit for orbit in self.relative_orbits if not 1 <= int(orbit) <= 175]
        if bad:
            raise UserInputError(f"Relative orbits are 1 to 175 (got {', '.join(map(str, bad))}).")
        if not 0.0 < self.min_coverage <= 100.0:
            raise UserInputError(f"The minimum coverage must be in (0, 100] % (got {self.min_coverage:g}).")


def parse_relative_orbits(text: str) -> List[int]:
    """'22, 95 117' → [22, 95, 117]; a token that is not a whole number is a UserInputError."""
    tokens = [t for t in re.split(r"[,;\s]+", text or "") if t]
    try:
        return sorted({int(t) for t in tokens})
    except ValueError:
        raise UserInputError(f"Relative orbits must be whole numbers separated by commas (got '{text}').") from None


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time (Z or offset, or naive = UTC) as an aware UTC datetime."""
    value = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def iso_utc(moment: dt.datetime) -> str:
    """YYYY-MM-DDTHH:MM:SS.ffffffZ (microseconds dropped when zero)."""
    text = moment.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()
    return text + "Z"


def relative_orbit_of(platform: str, absolute_orbit: int) -> Optional[int]:
    """ESA's relative orbit of an absolute orbit (S1A, S1B); None for other platforms."""
    offset = _ORBIT_OFFSETS.get(platform)
    return None if offset is None or absolute_orbit is None else (int(absolute_orbit) - offset) % 175 + 1


def normalise_polarisations(values) -> List[str]:
    """['VV', 'VH'] from a list, 'VV+VH', 'VV VH', 'Dual VV' … in key order."""
    text = " ".join(values) if isinstance(values, (list, tuple)) else str(values or "")
    found = {p for p in re.findall(r"VV|VH|HH|HV", text.upper())}
    return [p for p in _POL_ORDER if p in found]


def key_of(record: Dict) -> str:
    """OST's key, e.g. ASCENDING_VVVH."""
    return f"{record['orbit_direction']}_{''.join(record['polarisations'].split())}"


def passes(record: Dict, request: InventoryRequest) -> bool:
    """Whether a record satisfies the request's property filters (not the AOI)."""
    try:
        start = parse_time(record["start_time"])
    except (KeyError, TypeError, ValueError):
        return False
    pols = record["polarisations"].split()
    wanted = [] if request.polarisation == "any" else request.polarisation.split()
    checks = [
        _aware(request.start) <= start < _aware(request.end),
        record["product_type"] == request.product_type,
        record["mode"] == request.mode,
        all(p in pols for p in wanted),
        request.orbit_direction == "any" or record["orbit_direction"] == request.orbit_direction,
        not request.relative_orbits or record["relative_orbit"] in set(request.relative_orbits),
    ]
    return all(checks)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment


def new_record(**values) -> Dict:
    """A record with every field (refine fields empty) and ``geometry`` (GeoJSON lon/lat)."""
    record = {name: None for name in FIELD_NAMES}
    record.update(download_url="", checksum="", path="", key="", acquisition="")
    record.update(values)
    if record.get("geometry") is None:
        raise UserInputError(f"Product {record.get('id')} has no footprint.")
    record["key"] = key_of(record)
    record["acquisition"] = parse_time(record["start_time"]).strftime("%Y-%m-%d")
    return record


# --------------------------------------------------------------------------- folder mode


def _tag(text: str, name: str, attribute: str = "") -> Optional[str]:
    match = re.search(rf"<[\w]+:{name}\b{attribute}[^>]*>([^<]+)</", text)
    return match.group(1).strip() if match else None


def manifest_record(manifest_text: str, name: str, path: str, footprint: Sequence[Tuple[float, float]]) -> Dict:
    """The record of a product from its manifest.safe text (orbit, pass, times, slice, polarisations)
    and its footprint [(lon, lat)]."""
    if len(footprint) < 3:
        raise UserInputError(f"The manifest.safe of {name} has no footprint (gml:coordinates).")
    match = SAFE_PATTERN.match(name)
    polarisations = re.findall(r"<[\w]+:transmitterReceiverPolarisation>(\w+)</", manifest_text)
    absolute = _tag(manifest_text, "orbitNumber", ' type="start"')
    relative = _tag(manifest_text, "relativeOrbitNumber", ' type="start"')
    slice_number = _tag(manifest_text, "sliceNumber")
    start, stop = _tag(manifest_text, "startTime"), _tag(manifest_text, "stopTime")
    direction = _tag(manifest_text, "pass")
    if not (start and stop and direction and absolute):
        raise UserInputError(f"The manifest.safe of {name} lacks sensing times, orbit number or pass; is it a "
                             "complete Sentinel-1 product?")
    ring = [list(p) for p in footprint] + [list(footprint[0])]
    return new_record(
        id=name, platform=match.group(1), start_time=iso_utc(parse_time(start)), stop_time=iso_utc(parse_time(stop)),
        relative_orbit=int(relative) if relative else relative_orbit_of(match.group(1), int(absolute)),
        absolute_orbit=int(absolute), orbit_direction=direction.upper(),
        slice_number=int(slice_number) if slice_number else None,
        polarisations=" ".join(normalise_polarisations(polarisations)),
        product_type=_tag(manifest_text, "productType") or "GRD", mode=match.group(2), path=path,
        size_bytes=float(os.path.getsize(path)) if os.path.isfile(path) else None,
        geometry={"type": "Polygon", "coordinates": [ring]})


def _product_name(path: str) -> str:
    name = os.path.basename(path.rstrip("/\\"))
    for suffix in (".zip", ".SAFE"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def local_product_record(path: str) -> Dict:
    """The record of a downloaded product: a .SAFE folder or a .zip holding one."""
    name = _product_name(path)
    if not SAFE_PATTERN.match(name):
        raise UserInputError(f"'{os.path.basename(path)}' is not named as a Sentinel-1 GRD product "
                             "(S1x_IW_GRDH_1SDV_…).")
    if os.path.isdir(path):
        manifest = os.path.join(path, "manifest.safe")
        if not os.path.isfile(manifest):
            raise UserInputError(f"'{path}' has no manifest.safe: not a complete .SAFE product.")
        with open(manifest, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        return manifest_record(text, name, path, product_footprint(path))
    if not zipfile.is_zipfile(path):
        raise UserInputError(f"'{path}' is not a readable zip file (incomplete download?). Download it again.")
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as scratch:
        members = [m for m in archive.namelist() if m.endswith(".SAFE/manifest.safe")]
        if not members:
            raise UserInputError(f"'{os.path.basename(path)}' holds no .SAFE product (no manifest.safe).")
        text = archive.read(members[0]).decode("utf-8", "replace")
        archive.extract(members[0], scratch)  # product_footprint reads a .SAFE folder
        footprint = product_footprint(os.path.dirname(os.path.join(scratch, members[0])))
    return manifest_record(text, name, path, footprint)


def folder_products(folder: str) -> List[str]:
    """The .SAFE folders and .zip files directly in ``folder`` (and in its sub-folders), sorted."""
    if not os.path.isdir(folder):
        raise UserInputError(f"The product folder '{folder}' does not exist; choose the folder holding the "
                             "downloaded .zip or .SAFE products.")
    found = []
    for root, dirs, files in os.walk(folder):
        safes = [d for d in dirs if d.endswith(".SAFE")]
        found += [os.path.join(root, d) for d in safes]
        dirs[:] = [d for d in dirs if not d.endswith(".SAFE") and not d.startswith(".")]
        found += [os.path.join(root, f) for f in files if f.lower().endswith(".zip") and not f.startswith(".")]
    return sorted(found)


def folder_inventory(folder: str, request: InventoryRequest, log: Optional[Callable[[str], None]] = None,
                     is_canceled=None) -> List[Dict]:
    """Records of the products in ``folder`` that pass the request's filters; unreadable products are
    reported through ``log`` and skipped; a product found both as .zip and .SAFE is listed once (.SAFE)."""
    records: Dict[str, Dict] = {}
    paths = folder_products(folder)
    for path in paths:
        check_canceled(is_canceled)
        try:
            record = local_product_record(path)
        except UserInputError as exc:
            if log is not None:
                log(f"Skipped {os.path.basename(path)}: {exc}")
            continue
        if record["id"] not in records or os.path.isdir(path):
            records[record["id"]] = record
    if not paths:
        raise UserInputError(f"No .zip or .SAFE product in '{folder}'.")
    return [r for r in records.values() if passes(r, request)]


# --------------------------------------------------------------------------- refine


@dataclass
class Mosaic:
    """The products of one key, track and day, and how much of the AOI their union covers."""

    key: str
    relative_orbit: int
    acquisition: str
    records: List[Dict]
    coverage_pct: float
    geometry: dict
    complete: bool = False
    selected: bool = False


@dataclass
class Refinement:
    """Records with their refine fields set, the mosaics, and the per-key counts."""

    records: List[Dict]
    mosaics: List[Mosaic]
    complete_by_key: Dict[str, int] = field(default_factory=dict)
    selected_key: Optional[str] = None


def refine(records: Sequence[Dict], aoi: dict, min_coverage: float = DEFAULT_MIN_COVERAGE) -> Refinement:
    """Group by key, track and day; set each record's ``aoi_coverage_pct``, ``mosaic_coverage_pct``,
    ``complete`` and ``selected``. The preselected key has the most complete mosaics (ties: more
    products, then the name). Records outside the AOI (0 % coverage) are dropped, duplicates (same id) too."""
    from shapely.geometry import mapping
    from shapely.ops import unary_union

    unique = list({r["id"]: r for r in records}.values())
    if not unique:
        return Refinement([], [])
    project = equal_area_projector([aoi])
    area = project(densified(aoi))
    total = area.area
    shapes = {}
    for record in unique:
        shape_lonlat = densified(record["geometry"])
        shapes[record["id"]] = shape_lonlat
        record["aoi_coverage_pct"] = min(100.0, 100.0 * area.intersection(project(shape_lonlat)).area / total)
    kept = [r for r in unique if r["aoi_coverage_pct"] > 0.0]
    groups: Dict[Tuple[str, int, str], List[Dict]] = {}
    for record in sorted(kept, key=lambda r: (r["key"], r["relative_orbit"] or 0, r["start_time"])):
        groups.setdefault((record["key"], record["relative_orbit"], record["acquisition"]), []).append(record)
    mosaics = []
    for (key, track, day), members in groups.items():
        union = unary_union([shapes[r["id"]] for r in members])
        coverage = 100.0 * area.intersection(project(union)).area / total
        mosaic = Mosaic(key, track, day, members, min(coverage, 100.0), mapping(union),
                        complete=coverage >= min_coverage)
        mosaics.append(mosaic)
        for record in members:
            record["mosaic_coverage_pct"] = mosaic.coverage_pct
            record["complete"] = mosaic.complete
    complete_by_key = {}
    products_by_key = {}
    for mosaic in mosaics:
        complete_by_key[mosaic.key] = complete_by_key.get(mosaic.key, 0) + int(mosaic.complete)
        products_by_key[mosaic.key] = products_by_key.get(mosaic.key, 0) + len(mosaic.records)
    best = min(complete_by_key, key=lambda k: (-complete_by_key[k], -products_by_key[k], k)) if mosaics else None
    if best is not None and complete_by_key[best] == 0:
        best = None
    for mosaic in mosaics:
        mosaic.selected = mosaic.key == best
        for record in mosaic.records:
            record["selected"] = mosaic.selected and mosaic.complete
    kept.sort(key=lambda r: (r["start_time"], r["id"]))
    return Refinement(kept, mosaics, complete_by_key, best)


def coverage_report(refinement: Refinement) -> List[str]:
    """One line per key and track: complete mosaics / days, and the coverage per day."""
    lines = []
    by_track: Dict[Tuple[str, int], List[Mosaic]] = {}
    for mosaic in refinement.mosaics:
        by_track.setdefault((mosaic.key, mosaic.relative_orbit), []).append(mosaic)
    for (key, track), mosaics in sorted(by_track.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        complete = sum(m.complete for m in mosaics)
        days = ", ".join(f"{m.acquisition} {m.coverage_pct:.1f} %" for m in mosaics)
        lines.append(f"{key} track {track}: {complete} of {len(mosaics)} day(s) cover the AOI ({days})")
    for key, count in sorted(refinement.complete_by_key.items()):
        mark = " ← preselected" if key == refinement.selected_key else ""
        lines.append(f"{key}: {count} complete mosaic(s){mark}")
    return lines
