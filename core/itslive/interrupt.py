"""Network calls the user can cancel while they are stalled.

A request waiting for a silent server returns only at its TIMEOUT (60 s by default); the Processing
cancel button must not wait for it. :func:`interruptible` runs the call in a daemon thread and polls
the cancel callback every :data:`POLL_SECONDS`: a cancel raises :class:`core.errors.Cancelled` at
once and the abandoned call ends on its own at its timeout. Only reading calls go through it (their
result is dropped): every file is written by the calling thread, so an abandoned call leaves nothing.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, TypeVar

from ..errors import check_canceled

#: How often a waiting call looks at the cancel callback (s).
POLL_SECONDS = 0.1

T = TypeVar("T")


def interruptible(call: Callable[[], T], is_canceled: Optional[Callable[[], bool]] = None) -> T:
    """``call()``, or :class:`core.errors.Cancelled` within :data:`POLL_SECONDS` of a cancel."""
    check_canceled(is_canceled)
    if is_canceled is None:
        return call()
    outcome = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 — re-raised in the calling thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="itslive-request", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(POLL_SECONDS)
        if worker.is_alive():
            check_canceled(is_canceled)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
