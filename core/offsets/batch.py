"""Batch correlation of a pair table, resumable: pair metadata, outputs, skip/redo decisions.

An existing output counts as done only when it is complete (core.io.is_complete_raster:
completion tag written last, last block readable); anything else is redone and reported.
Temporary files of a killed run in the output folder are removed first.
"""
from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import pandas as pd

from ..cluster import POLL_SECONDS, connect, run_tasks
from ..errors import Cancelled, UserInputError, check_canceled
from ..io import is_complete_raster, output_folder
from .correlate import DEFAULT_SUBPIXEL, CorrelationSummary, correlate_files
from .disparity import TAG_DT_DAYS, TAG_REF_DATE, TAG_REF_ID, TAG_SEC_DATE, TAG_SEC_ID
from .planetscope import days_between, find_scene_ids, iso_utc


#: How often the threads' progress is polled (s): cancel is noticed within this time.
_POLL_SECONDS = POLL_SECONDS


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
    status: str  # "done", "skipped" (a complete output existed) or "failed"
    message: str = ""  # why it failed, or why an existing output was redone
    summary: Optional[CorrelationSummary] = None  # what a "done" pair measured


def correlate_pair_table(table: pd.DataFrame, out_folder: str, chip_size: int, search_range: int,
                         step: int, subpixel: str = DEFAULT_SUBPIXEL, overwrite: bool = False,
                         log: Optional[Callable[[str], None]] = None,
                         progress=None, is_canceled=None, workers: int = 1,
                         scheduler: Optional[str] = None, **options) -> List[PairOutcome]:
    """Correlate every (ref, sec) row of ``table`` into ``out_folder``.

    Complete existing outputs are skipped unless ``overwrite``; incomplete ones
    (truncated, unreadable, written by an interrupted run) are redone and the reason
    logged; temporary files of a killed run are removed first. A pair that fails is
    reported (status "failed" with the reason) and the others continue.
    Cancelling stops after removing the pairs in progress; finished pairs stay, and so
    does an output folder this run created (the batch resumes from it).
    ``workers`` > 1 correlates that many pairs at once in threads of this
    process (the engine releases the GIL); ``scheduler`` (a dask.distributed
    address such as ``tcp://10.0.0.5:8786``) runs the pairs on that cluster
    instead; its workers must be able to import this package and read and
    write the paths. ``options`` go to :func:`core.offsets.correlate.correlate_files`
    (prefilter, min_texture, median_test, forward_backward, mask_geometries...).
    Outcomes are returned in table order.
    """
    missing = {"ref", "sec"} - set(table.columns)
    if missing:
        raise UserInputError(
            f"The pair table lacks the column(s) {sorted(missing)}; it has {list(table.columns)}. "
            "Use the output of surfacemotion:buildpairs or a CSV with 'ref' and 'sec' columns.")
    if table.empty:
        raise UserInputError(
            "The pair table has no pair (no row): nothing to correlate. Build it with surfacemotion:buildpairs "
            "from at least two scenes, with time-separation limits that keep some pairs.")
    if int(workers) != workers or workers < 1:
        raise UserInputError(f"The number of parallel pairs must be a whole number >= 1; got {workers}.")
    log = log or (lambda message: None)
    with output_folder(out_folder, keep_on_failure=True, log=log) as folder:
        return _correlate_into(table, folder, overwrite, log, progress, is_canceled, int(workers), scheduler,
                               dict(options, chip_size=chip_size, search_range=search_range, step=step,
                                    subpixel=subpixel))


def _correlate_into(table: pd.DataFrame, out_folder: str, overwrite: bool, log, progress, is_canceled,
                    workers: int, scheduler: Optional[str], settings: dict) -> List[PairOutcome]:
    n_pairs = len(table)
    progress = _rising(progress)
    outcomes: List[Optional[PairOutcome]] = [None] * n_pairs
    redo_reasons: Dict[int, str] = {}
    jobs = []
    for index, (ref, sec) in enumerate(zip(table["ref"], table["sec"])):
        output = os.path.join(out_folder, disparity_name(ref, sec))
        if os.path.exists(output) and not overwrite:
            incomplete = is_complete_raster(output)
            if incomplete is None:
                outcomes[index] = PairOutcome(ref, sec, output, "skipped", "output exists")
                log(f"[{index + 1}/{n_pairs}] skipped, complete output exists: {output}")
                continue
            redo_reasons[index] = f"redone: the existing output was incomplete ({incomplete})"
            log(f"[{index + 1}/{n_pairs}] redoing {output}: {incomplete}")
        jobs.append((index, ref, sec, output))

    def record(index: int, ref: str, sec: str, output: str, status: str, message: str,
               summary: Optional[CorrelationSummary] = None) -> None:
        if status == "done" and index in redo_reasons:
            message = redo_reasons[index]
        outcomes[index] = PairOutcome(ref, sec, output, status, message, summary)
        if status == "done":
            log(f"[{index + 1}/{n_pairs}] done: {output}; {summary.describe()}")
        else:
            log(f"[{index + 1}/{n_pairs}] FAILED {os.path.basename(ref)} / {os.path.basename(sec)}: {message}")

    if scheduler:
        _run_on_dask(jobs, settings, scheduler, record, progress, is_canceled)
    elif workers > 1 and len(jobs) > 1:
        _run_in_threads(jobs, settings, workers, record, progress, is_canceled)
    else:
        for done, (index, ref, sec, output) in enumerate(jobs):
            check_canceled(is_canceled)
            record(index, ref, sec, output, *correlate_pair_job(ref, sec, output, settings,
                                                                _sub_progress(progress, done, len(jobs)), is_canceled))
    if progress is not None:
        progress(100.0)
    return [outcome for outcome in outcomes if outcome is not None]


def correlate_pair_job(ref: str, sec: str, output: str, settings: dict, progress=None,
                       is_canceled=None) -> Tuple[str, str, Optional[CorrelationSummary]]:
    """Correlate one pair; returns ("done", "", its summary) or ("failed", reason, None). Cancel propagates."""
    try:
        summary = correlate_files(ref, sec, output, tags=pair_tags(ref, sec), progress=progress,
                                  is_canceled=is_canceled, **settings)
    except Cancelled:
        raise
    except Exception as exc:  # one bad pair must not stop the batch
        return "failed", str(exc), None
    return "done", "", summary


def _run_in_threads(jobs, settings: dict, workers: int, record, progress, is_canceled) -> None:
    """Pairs in a thread pool. The workers only post their pairs' block progress and completion to
    a queue; the calling thread reports them (progress: the mean of the pairs' shares, rising with
    every block of any pair), logs and records, and notices a cancel within ``_POLL_SECONDS``."""
    events: "queue.Queue[Tuple[int, object]]" = queue.Queue()
    shares = [0.0] * len(jobs)

    def posting(slot: int):
        return lambda percent: events.put((slot, float(percent)))

    with ThreadPoolExecutor(workers) as pool:
        futures = []
        for slot, (index, ref, sec, output) in enumerate(jobs):
            future = pool.submit(correlate_pair_job, ref, sec, output, settings, posting(slot), is_canceled)
            future.add_done_callback(lambda done, slot=slot: events.put((slot, done)))
            futures.append(future)
        try:
            remaining = len(jobs)
            while remaining:
                check_canceled(is_canceled)
                try:
                    slot, event = events.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    continue
                if isinstance(event, float):
                    shares[slot] = event
                else:
                    remaining -= 1
                    shares[slot] = 100.0
                    record(*jobs[slot], *event.result())
                if progress is not None:
                    progress(sum(shares) / len(shares))
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_on_dask(jobs, settings: dict, scheduler: str, record, progress, is_canceled) -> None:
    """Pairs as tasks on a dask.distributed scheduler; cancel drops the queued ones."""
    client = connect(scheduler)
    try:
        arguments = [(ref, sec, output, settings) for _, ref, sec, output in jobs]
        for done, (index, outcome, error) in enumerate(
                run_tasks(client, correlate_pair_job, arguments, is_canceled, max_pending=len(arguments)), start=1):
            if error is not None:
                outcome = "failed", f"Dask worker error: {error}", None
            record(*jobs[index], *outcome)
            if progress is not None:
                progress(100.0 * done / len(jobs))
    finally:
        client.close()


def _rising(progress):
    """``progress`` passed only the values above the last one it was passed (the end of a pair and
    the end of the batch are the same 100 %; a failed pair stops short of its share)."""
    if progress is None:
        return None
    last = [float("-inf")]

    def report(percent: float) -> None:
        if percent > last[0]:
            last[0] = percent
            progress(percent)

    return report


def _sub_progress(progress, index: int, count: int):
    """Map a pair's 0-100 % onto its share of the batch progress."""
    if progress is None:
        return None
    return lambda percent: progress((index + percent / 100.0) * 100.0 / max(count, 1))
