"""PlanetScope orders (``surfacemotion:planetorder``): request, quota estimate, polling, verified download.

QGIS-free; the ``planet`` SDK is imported lazily. Every function that talks to Planet takes an open
synchronous ``planet.Planet`` client (``core.planet.client.open_planet``), so authentication, proxy,
timeouts and retries are the shared client's.

Conventions:

* item ids are PSScene ids (PS2 ``YYYYMMDD_HHMMSS_SSSS``, SuperDove ``YYYYMMDD_HHMMSS_FF_SSSS``);
* geometries are GeoJSON in lon/lat (EPSG:4326); areas are km² computed in a Lambert azimuthal
  equal-area projection centred on the geometries (never in degrees);
* the output folder holds every delivered file flat (``<id>_3B_AnalyticMS_SR_clip.tif`` next to
  ``<id>_3B_udm2_clip.tif``, L1B ``<id>_1B_AnalyticMS.tif`` with ``_RPC.TXT`` and ``_metadata.xml``),
  Planet's ``manifest.json`` and :data:`ORDER_FILE`, the order id of the folder (no secret in it).

A file is downloaded under a temporary name, its MD5 compared with the manifest, then renamed
(``core.io.files.AtomicFile``): a file under its final name is always complete and verified, so a
later run skips exactly the files whose MD5 matches and fetches the others.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..choices import Choices
from ..errors import Cancelled, UserInputError, check_canceled
from ..io.files import atomic_file, write_text
from .areas import projected

#: Order bundles of PSScene (the choice list of ``planetorder``): value, label.
BUNDLES = Choices(
    ("analytic_sr_udm2", "L3B surface reflectance, 4 bands + UDM2 (clipped to the AOI)"),
    ("analytic_8b_sr_udm2", "L3B surface reflectance, 8 bands + UDM2 (clipped to the AOI)"),
    ("basic_analytic_udm2", "L1B basic analytic + UDM2, RPC and XML metadata (full scenes, no clip)"),
)
#: Bundles clipped to the AOI (L3B); the others are delivered as full scenes (L1B, for the RPC chain).
CLIPPED_BUNDLES = ("analytic_sr_udm2", "analytic_8b_sr_udm2")
ITEM_TYPE = "PSScene"
#: The small JSON in the output folder naming the order it holds.
ORDER_FILE = "planet_order.json"
MANIFEST = "manifest.json"
FINAL_STATES = ("success", "partial", "failed", "cancelled")
ID_PATTERN = re.compile(r"^\d{8}_\d{6}(_\d{1,2})?_[0-9a-f]{4}$")
#: Scene rasters (not masks) among the delivered files: what ``extractband`` reads.
SCENE_PATTERN = re.compile(r"_(3B_AnalyticMS_SR[^/]*|1B_AnalyticMS)\.tif$", re.IGNORECASE)
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- ids and request


def parse_ids(text_or_ids) -> List[str]:
    """Item ids from a comma/space-separated text or a sequence, in order, without repeats.

    Raises UserInputError naming the ids that are not PSScene ids."""
    if isinstance(text_or_ids, str):
        parts = re.split(r"[\s,;]+", text_or_ids)
    else:
        parts = [str(part) for part in text_or_ids]
    ids = list(dict.fromkeys(part.strip() for part in parts if part and part.strip()))
    if not ids:
        raise UserInputError("No scene to order: select features of 'Footprints (selected features)' (or give "
                             "'Item ids', comma-separated, e.g. 20210718_151502_62_2455).")
    wrong = [item for item in ids if not ID_PATTERN.match(item)]
    if wrong:
        raise UserInputError(
            f"Not PlanetScope item ids: {', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}. Ids look like "
            "20210718_151502_62_2455 (SuperDove) or 20170614_113217_0e0f (PS2).")
    return ids


def is_clipped(bundle: str) -> bool:
    """True for the L3B bundles, which are clipped to the AOI."""
    return BUNDLES.check(bundle, "bundle") in CLIPPED_BUNDLES


def order_request(ids: Sequence[str], bundle: str, aoi: Optional[dict], name: str) -> dict:
    """The Orders API request (``planet.order_request``): one PSScene product, the clip tool for L3B.

    Raises UserInputError when an L3B bundle has no AOI to clip to."""
    from planet import order_request as request

    clipped = is_clipped(bundle)
    if clipped and not aoi:
        raise UserInputError(f"The bundle {bundle} is clipped to the area of interest: give an 'Area of interest' "
                             "(or choose basic_analytic_udm2 for full L1B scenes).")
    tools = [request.clip_tool(aoi)] if clipped else None
    product = request.product(list(ids), bundle, ITEM_TYPE)
    return request.build_request(name, products=[product], tools=tools)


# --------------------------------------------------------------------------- quota


def quota_km2(footprints: Dict[str, dict], aoi: Optional[dict], clipped: bool) -> Tuple[float, Dict[str, float]]:
    """Estimated quota of an order (km²) and the area of each item (km²).

    Clipped orders count area(footprint ∩ AOI), full scenes the whole footprint; areas in an
    equal-area projection. Planet's billing may round up per scene (e.g. a minimum per item)."""
    ids = list(footprints)
    shapes = projected([footprints[item] for item in ids] + ([aoi] if clipped and aoi else []))
    region = shapes[-1] if clipped and aoi else None
    areas = {}
    for item, shape in zip(ids, shapes):
        geometry = shape.intersection(region) if region is not None else shape
        areas[item] = geometry.area / 1e6
    return sum(areas.values()), areas


def item_footprints(client, ids: Sequence[str], known: Dict[str, dict], scrub=str) -> Dict[str, dict]:
    """Footprints (GeoJSON lon/lat) of ``ids``: those in ``known``, the others from the Data API."""
    footprints = {}
    for item in ids:
        if item in known and known[item]:
            footprints[item] = known[item]
            continue
        footprints[item] = _call(lambda: _get_item(client, item), scrub, f"Looking up scene {item}")["geometry"]
    return footprints


def _get_item(client, item: str) -> dict:
    from planet import exceptions

    try:
        return client.data.get_item(ITEM_TYPE, item)
    except exceptions.MissingResource:
        raise UserInputError(f"Scene {item} is not in the Planet catalogue (or not visible to this API key): check "
                             "the id, e.g. with 'Search the PlanetScope catalogue'.") from None


# --------------------------------------------------------------------------- the order file


def read_order_file(folder: str) -> Optional[dict]:
    """The order recorded in ``folder`` (:data:`ORDER_FILE`), or None."""
    path = os.path.join(folder, ORDER_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        str(record["order_id"]), list(record["ids"]), str(record["bundle"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserInputError(f"'{path}' is not an order file of this plugin ({exc}). Remove it, or choose another "
                             "output folder.") from exc
    return record


def write_order_file(folder: str, order_id: str, ids: Sequence[str], bundle: str, aoi: Optional[dict]) -> str:
    """Record the placed order in ``folder`` (atomically); holds no secret."""
    record = {"order_id": order_id, "ids": list(ids), "bundle": bundle, "aoi": aoi,
              "placed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return write_text(os.path.join(folder, ORDER_FILE), json.dumps(record, indent=1) + "\n")


def matching_order(record: Optional[dict], ids: Sequence[str], bundle: str, folder: str) -> Optional[str]:
    """The order id of ``record`` if it ordered exactly ``ids`` and ``bundle``; an error if it ordered
    something else (a folder holds one order)."""
    if record is None:
        return None
    if sorted(record["ids"]) == sorted(ids) and record["bundle"] == bundle:
        return record["order_id"]
    raise UserInputError(
        f"'{folder}' already holds Planet order {record['order_id']} ({len(record['ids'])} scene(s), "
        f"{record['bundle']}), not this one ({len(ids)} scene(s), {bundle}). Choose another output folder, or "
        f"remove {ORDER_FILE} there to place a new order.")


# --------------------------------------------------------------------------- Planet calls


def _call(function, scrub, what: str):
    """``function()`` with the SDK's errors as UserInputError (text passed through ``scrub``)."""
    from planet import exceptions

    try:
        return function()
    except (UserInputError, Cancelled, exceptions.InvalidAPIKey, exceptions.NoPermission):
        raise  # a refused key: the client's message names where the key came from
    except exceptions.PlanetError as exc:
        raise UserInputError(f"{what} failed: {scrub(str(exc))[:400]}") from None
    except Exception as exc:  # httpx transport errors (timeout, refused, closed connection)
        if type(exc).__module__.split(".")[0] not in ("httpx", "httpcore", "h11"):
            raise
        raise UserInputError(f"{what} failed: {type(exc).__name__}: {scrub(str(exc))[:300]}. Check the network "
                             "(and the proxy settings of QGIS), then run again: the run resumes.") from None


def place_order(client, request: dict, scrub=str) -> str:
    """POST the order; returns its id."""
    order = _call(lambda: client.orders.create_order(request), scrub, "Placing the Planet order")
    return str(order["id"])


def wait_for_order(client, order_id: str, poll_seconds: float = 10.0, progress=None, is_canceled=None,
                   log: Optional[Callable[[str], None]] = None, scrub=str, max_hours: float = 48.0) -> dict:
    """Poll the order until it reaches a final state; returns the order JSON.

    Cancel is checked every 0.2 s (a cancel ends the wait within about a second plus one request)
    and raises :class:`Cancelled`; ``progress`` (0-100) grows with each poll towards 95."""
    deadline = time.monotonic() + max_hours * 3600.0
    state, polls = None, 0
    while True:
        order = _call(lambda: client.orders.get_order(order_id), scrub, f"Reading Planet order {order_id}")
        polls += 1
        if order.get("state") != state:
            state = order.get("state")
            if log is not None:
                log(f"Order {order_id}: {state}")
        if state in FINAL_STATES:
            return order
        if progress is not None:
            progress(95.0 * (1.0 - 1.0 / (1.0 + 0.1 * polls)))
        if time.monotonic() > deadline:
            raise UserInputError(f"Planet order {order_id} is still {state} after {max_hours:g} h. Run again later "
                                 "with the same output folder: the run resumes this order.")
        end = time.monotonic() + poll_seconds
        while time.monotonic() < end:
            check_canceled(is_canceled)
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))


def cancel_order(client, order_id: str, scrub=str) -> bool:
    """Ask Planet to cancel a queued order; True when Planet reports it cancelled. The client's own
    cancel check (the run is being cancelled) is suspended for this one request."""
    session = getattr(client, "_session", None)
    saved = getattr(session, "is_canceled", None)
    if saved is not None:
        session.is_canceled = None
    try:
        answer = _call(lambda: client.orders.cancel_order(order_id), scrub, f"Cancelling Planet order {order_id}")
    except Exception:  # noqa: BLE001 - a cancel that fails leaves the order as it is; the caller says so
        return False
    finally:
        if saved is not None:
            session.is_canceled = saved
    return answer.get("state") == "cancelled"


# --------------------------------------------------------------------------- results


@dataclass
class Delivery:
    """The downloadable part of a final order."""

    order_id: str
    state: str
    files: List[dict] = field(default_factory=list)  # {"name", "location", "path"}
    manifest: Optional[dict] = None  # {"name", "location"}
    failed_ids: List[str] = field(default_factory=list)
    hints: List[str] = field(default_factory=list)


def delivery_of(order: dict, ids: Sequence[str]) -> Delivery:
    """Split a final order's results into files, the manifest and the items without a delivered file."""
    order_id = str(order["id"])
    results = (order.get("_links") or {}).get("results") or []
    delivery = Delivery(order_id, str(order.get("state")), hints=[str(h) for h in order.get("error_hints") or []])
    for result in results:
        if not result or result.get("delivery", "success") != "success":
            continue
        name = str(result["name"])
        path = name[len(order_id) + 1:] if name.startswith(order_id + "/") else name
        entry = {"name": name, "location": result["location"], "path": path}
        if os.path.basename(path) == MANIFEST:
            delivery.manifest = entry
        else:
            delivery.files.append(entry)
    delivered = " ".join(os.path.basename(entry["path"]) for entry in delivery.files)
    delivery.failed_ids = [item for item in ids if item not in delivered]
    return delivery


def state_problem(delivery: Delivery, folder: str) -> Optional[str]:
    """The message for an order that failed or was cancelled (None for success / partial)."""
    if delivery.state in ("success", "partial"):
        return None
    hints = f" Planet says: {'; '.join(delivery.hints)}." if delivery.hints else ""
    listed = ", ".join(delivery.failed_ids)
    return (f"Planet order {delivery.order_id} {delivery.state}: no scene was delivered ({listed}).{hints} "
            f"Remove {ORDER_FILE} from '{folder}' (or choose another folder) and run again to place a new order.")


def partial_message(delivery: Delivery) -> Optional[str]:
    """A warning listing the items a partial (or success) order did not deliver, or None."""
    if not delivery.failed_ids:
        return None
    hints = f" Planet says: {'; '.join(delivery.hints)}." if delivery.hints else ""
    return (f"Planet order {delivery.order_id} is {delivery.state}: {len(delivery.failed_ids)} scene(s) were not "
            f"delivered: {', '.join(delivery.failed_ids)}.{hints} Order them again in another folder.")


# --------------------------------------------------------------------------- downloads


def md5_of(path: str) -> str:
    """Hex MD5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_verified(client, location: str, path: str, md5: Optional[str], size: int, scrub=str,
                   what: str = "") -> str:
    """Download ``location`` to ``path`` through a temporary name; MD5 (and size) checked before the rename.

    A wrong checksum or a broken connection leaves no file and raises UserInputError."""
    name = os.path.basename(path)

    def verify(tmp: str) -> None:
        got = os.path.getsize(tmp)
        if size and got != size:
            raise UserInputError(f"The download of {name} is incomplete ({got} of {size} bytes): nothing was kept. "
                                 "Run again to resume.")
        if md5 and md5_of(tmp) != md5.lower():
            raise UserInputError(f"The download of {name} does not match its MD5 checksum in Planet's manifest: "
                                 "the file was corrupted on the way and was not kept. Run again to fetch it anew.")

    with atomic_file(path, verify=verify, needed_bytes=size) as tmp:
        folder, tmp_name = os.path.split(tmp)
        _call(lambda: client.orders.download_asset(location, filename=tmp_name, directory=folder, overwrite=True,
                                                   progress_bar=False),
              scrub, f"Downloading {what or name}")
    return path


def manifest_entries(manifest_path: str) -> Dict[str, dict]:
    """Manifest entries by path (relative to the order): {"md5", "size"}."""
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            data = json.load(handle)
        return {str(entry["path"]): {"md5": str(entry["digests"]["md5"]), "size": int(entry.get("size") or 0)}
                for entry in data["files"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserInputError(f"Planet's manifest of the order cannot be read ({exc}); run again to fetch it "
                             "anew.") from exc


def _entry_for(entries: Dict[str, dict], path: str) -> Optional[dict]:
    if path in entries:
        return entries[path]
    base = os.path.basename(path)
    matches = [entry for key, entry in entries.items() if os.path.basename(key) == base]
    return matches[0] if len(matches) == 1 else None


@dataclass
class DownloadReport:
    """What :func:`download_delivery` did: every final path, and how many files it fetched / skipped."""

    paths: List[str] = field(default_factory=list)
    fetched: int = 0
    skipped: int = 0


def download_delivery(client, delivery: Delivery, folder: str, progress=None, is_canceled=None,
                      log: Optional[Callable[[str], None]] = None, scrub=str) -> DownloadReport:
    """Download every delivered file into ``folder`` (flat), skipping files whose MD5 matches the manifest;
    zip archives are verified, then unpacked next to them. Cancel is checked between files."""
    if delivery.manifest is None:
        raise UserInputError(f"Planet order {delivery.order_id} lists no {MANIFEST}, so its files cannot be "
                             "verified; nothing was downloaded.")
    report = DownloadReport()
    manifest_path = os.path.join(folder, MANIFEST)
    fetch_verified(client, delivery.manifest["location"], manifest_path, None, 0, scrub, MANIFEST)
    entries = manifest_entries(manifest_path)
    for number, entry in enumerate(delivery.files):
        check_canceled(is_canceled)
        target = os.path.join(folder, os.path.basename(entry["path"]))
        expected = _entry_for(entries, entry["path"])
        if expected is None:
            raise UserInputError(f"{entry['path']} of order {delivery.order_id} is not in Planet's manifest, so "
                                 "it cannot be verified; nothing more was downloaded.")
        if os.path.isfile(target) and md5_of(target) == expected["md5"].lower():
            report.skipped += 1
        else:
            fetch_verified(client, entry["location"], target, expected["md5"], expected["size"], scrub)
            report.fetched += 1
            if log is not None:
                log(f"Downloaded {os.path.basename(target)} (MD5 verified)")
        report.paths.append(target)
        if target.lower().endswith(".zip"):
            report.paths += unpack(target, folder, is_canceled)
        if progress is not None:
            progress(100.0 * (number + 1) / max(1, len(delivery.files)))
    report.paths.append(manifest_path)
    return report


def unpack(archive: str, folder: str, is_canceled=None) -> List[str]:
    """Unpack a verified zip flat into ``folder`` (members already there with the same size and CRC are
    kept); each member through a temporary name. Returns the member paths."""
    paths = []
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                if member.is_dir() or os.path.basename(member.filename) in ("", MANIFEST):
                    continue
                check_canceled(is_canceled)
                target = os.path.join(folder, os.path.basename(member.filename))
                paths.append(target)
                if os.path.isfile(target) and os.path.getsize(target) == member.file_size and \
                        _crc_of(target) == member.CRC:
                    continue
                with atomic_file(target, needed_bytes=member.file_size) as tmp:
                    with bundle.open(member) as source, open(tmp, "wb") as out:
                        for chunk in iter(lambda: source.read(_CHUNK), b""):
                            out.write(chunk)
    except zipfile.BadZipFile as exc:
        raise UserInputError(f"'{archive}' is not a readable zip archive ({exc}); remove it and run again.") from exc
    return paths


def _crc_of(path: str) -> int:
    crc = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            crc = zipfile.crc32(chunk, crc)
    return crc & 0xFFFFFFFF


def scene_paths(paths: Sequence[str]) -> List[str]:
    """The scene rasters among the delivered files (inputs of ``extractband``), sorted."""
    return sorted({path for path in paths if SCENE_PATTERN.search(os.path.basename(path))})


# --------------------------------------------------------------------------- the whole run


@dataclass
class OrderResult:
    """Outcome of :func:`run_order`: ``order_id`` empty when only the estimate was reported."""

    order_id: str
    quota_km2: float
    scenes: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    failed_ids: List[str] = field(default_factory=list)
    fetched: int = 0
    skipped: int = 0
    resumed: bool = False


def run_order(client, ids: Sequence[str], bundle: str, aoi: Optional[dict], folder: str, confirm: bool,
              footprints: Optional[Dict[str, dict]] = None, name: str = "surfacemotion",
              poll_seconds: float = 10.0, progress=None, is_canceled=None,
              log: Optional[Callable[[str], None]] = None, warn: Optional[Callable[[str], None]] = None,
              scrub=str) -> OrderResult:
    """Estimate, (with ``confirm``) place or resume, wait for, and download a PSScene order into ``folder``.

    Without ``confirm`` and without an order of these scenes recorded in ``folder`` nothing is
    ordered or written: the result carries the estimate only. ``folder`` must exist."""
    log = log or (lambda text: None)
    warn = warn or log
    progress = progress or (lambda percent: None)
    ids = parse_ids(ids)
    clipped = is_clipped(bundle)
    if clipped and not aoi:
        order_request(ids, bundle, aoi, name)  # raises the clear message
    order_id = matching_order(read_order_file(folder), ids, bundle, folder)
    total, areas = quota_km2(item_footprints(client, ids, footprints or {}, scrub), aoi, clipped)
    log(f"Estimated quota: {total:,.2f} km² for {len(ids)} scene(s) "
        f"({'footprint ∩ area of interest' if clipped else 'full footprints'}, equal-area)")
    if order_id:
        log(f"Resuming Planet order {order_id} recorded in {ORDER_FILE} (no new order, no further quota)")
    elif not confirm:
        warn(f"Nothing ordered: this order would use about {total:,.2f} km² of your Planet quota. Tick "
             "'Place the order (uses quota)' to order it.")
        return OrderResult("", total)
    else:
        request = order_request(ids, bundle, aoi, name)
        order_id = place_order(client, request, scrub)
        write_order_file(folder, order_id, ids, bundle, aoi)
        log(f"Placed Planet order {order_id} ({total:,.2f} km²)")
    progress(5.0)
    try:
        order = wait_for_order(client, order_id, poll_seconds, lambda p: progress(5.0 + 0.45 * p), is_canceled,
                               log, scrub)
    except Cancelled:  # noqa: B014 - the order is cancelled at Planet while it is still queued
        if cancel_order(client, order_id, scrub):
            _remove_order_file(folder)
            raise Cancelled(f"Cancelled by the user: Planet order {order_id} was cancelled, nothing was "
                            "written.") from None
        raise Cancelled(f"Cancelled by the user while Planet order {order_id} is processed: Planet no longer "
                        f"cancels it and charges its quota. Run again with the same output folder to download "
                        f"it ({ORDER_FILE} keeps the order id).") from None
    delivery = delivery_of(order, ids)
    problem = state_problem(delivery, folder)
    if problem:
        raise UserInputError(problem)
    try:
        report = download_delivery(client, delivery, folder, lambda p: progress(50.0 + 0.5 * p), is_canceled,
                                   log, scrub)
    except Cancelled:
        raise Cancelled(f"Cancelled by the user: the files of order {order_id} downloaded so far are complete and "
                        "kept; run again with the same output folder to download the rest.") from None
    message = partial_message(delivery)
    if message:
        warn(message)
    return OrderResult(order_id, total, scene_paths(report.paths), report.paths, delivery.failed_ids,
                       report.fetched, report.skipped, resumed=report.skipped > 0)


def _remove_order_file(folder: str) -> None:
    try:
        os.remove(os.path.join(folder, ORDER_FILE))
    except OSError:
        pass
