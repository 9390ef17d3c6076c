"""Multi-step jobs built from the core pieces: pair metadata and batch correlation."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import pandas as pd

from .correlate import correlate_files
from .disparity import TAG_DT_DAYS, TAG_REF_DATE, TAG_REF_ID, TAG_SEC_DATE, TAG_SEC_ID
from .errors import Cancelled, UserInputError, check_canceled
from .planetscope import days_between, find_scene_ids, iso_utc
from .raster_io import ensure_writable_dir


def pair_tags(ref_path: str, sec_path: str) -> Dict[str, str]:
    """Disparity tags (ids, ISO dates, dt in days) from PlanetScope ids in the file names.

    Names without a PlanetScope id give no tags; the velocity step then asks for dates.
    """
    ref_ids = find_scene_ids(ref_path)
    sec_ids = find_scene_ids(sec_path)
    if not ref_ids or not sec_ids:
        return {}
    ref, sec = ref_ids[0], sec_ids[0]
    return {
        TAG_REF_ID: ref.scene_id,
        TAG_SEC_ID: sec.scene_id,
        TAG_REF_DATE: iso_utc(ref.acquired),
        TAG_SEC_DATE: iso_utc(sec.acquired),
        TAG_DT_DAYS: f"{days_between(ref.acquired, sec.acquired):.6f}",
    }


def pair_label(path: str) -> str:
    """Scene id of a file if its name has one, else the file stem."""
    ids = find_scene_ids(path)
    return ids[0].scene_id if ids else os.path.splitext(os.path.basename(path))[0]


def disparity_name(ref_path: str, sec_path: str) -> str:
    """Output name of a pair's disparity map: ``<ref_id>_<sec_id>_disp.tif``."""
    return f"{pair_label(ref_path)}_{pair_label(sec_path)}_disp.tif"


@dataclass
class PairOutcome:
    """What happened to one pair of a batch."""

    ref: str
    sec: str
    output: str
    status: str  # "done", "skipped" (output existed) or "failed"
    message: str = ""


def correlate_pair_table(table: pd.DataFrame, out_folder: str, chip_size: int, search_range: int,
                         step: int, subpixel: str = "lk", overwrite: bool = False,
                         log: Optional[Callable[[str], None]] = None,
                         progress=None, is_canceled=None) -> List[PairOutcome]:
    """Correlate every (ref, sec) row of ``table`` into ``out_folder``.

    Existing outputs are skipped unless ``overwrite``; a pair that fails is
    reported (status "failed" with the reason) and the others continue.
    Cancelling stops after removing the pair in progress; finished pairs stay.
    """
    missing = {"ref", "sec"} - set(table.columns)
    if missing:
        raise UserInputError(
            f"The pair table lacks the column(s) {sorted(missing)}; it has {list(table.columns)}. "
            "Use the output of surfacemotion:buildpairs or a CSV with 'ref' and 'sec' columns.")
    out_folder = ensure_writable_dir(out_folder)
    log = log or (lambda message: None)
    outcomes: List[PairOutcome] = []
    n_pairs = len(table)
    for index, (ref, sec) in enumerate(zip(table["ref"], table["sec"])):
        check_canceled(is_canceled)
        output = os.path.join(out_folder, disparity_name(ref, sec))
        if os.path.exists(output) and not overwrite:
            outcomes.append(PairOutcome(ref, sec, output, "skipped", "output exists"))
            log(f"[{index + 1}/{n_pairs}] skipped, exists: {output}")
            continue
        pair_progress = _sub_progress(progress, index, n_pairs)
        try:
            correlate_files(ref, sec, output, chip_size=chip_size, search_range=search_range, step=step,
                            subpixel=subpixel, tags=pair_tags(ref, sec),
                            progress=pair_progress, is_canceled=is_canceled)
        except Cancelled:
            raise
        except Exception as exc:  # one bad pair must not stop the batch
            outcomes.append(PairOutcome(ref, sec, output, "failed", str(exc)))
            log(f"[{index + 1}/{n_pairs}] FAILED {os.path.basename(ref)} / {os.path.basename(sec)}: {exc}")
            continue
        outcomes.append(PairOutcome(ref, sec, output, "done"))
        log(f"[{index + 1}/{n_pairs}] done: {output}")
    if progress is not None:
        progress(100.0)
    return outcomes


def _sub_progress(progress, index: int, count: int):
    """Map a pair's 0-100 % onto its share of the batch progress."""
    if progress is None:
        return None
    return lambda percent: progress((index + percent / 100.0) * 100.0 / max(count, 1))
