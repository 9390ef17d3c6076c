"""Running independent tasks on a dask.distributed scheduler (correlatepairs' pairs, invertpairs' blocks).

dask.distributed is imported only when a scheduler address is given. The workers must see the input and
output paths as the client does (a shared file system) and import this package.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple

from .dependencies import INSTALL_ACTION
from .errors import UserInputError, check_canceled

#: How often pending futures are polled (s): a cancel is noticed within this time.
POLL_SECONDS = 0.2


def connect(scheduler: str):
    """A ``dask.distributed.Client`` of ``scheduler`` (not made the default client); clear errors."""
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise UserInputError(
            "Running on a Dask cluster needs dask.distributed: install python3-distributed "
            f"(Debian/Ubuntu), or run {INSTALL_ACTION} in QGIS, which installs it into this profile.") from exc
    try:
        return Client(scheduler, timeout="10s", set_as_default=False)
    except Exception as exc:  # OSError/TimeoutError from the comm layer
        raise UserInputError(
            f"Cannot reach the Dask scheduler at '{scheduler}' ({exc}). Check the address "
            "(e.g. tcp://host:8786) and that the scheduler is running.") from exc


def run_tasks(client, function: Callable, arguments: Sequence[Tuple], is_canceled=None,
              max_pending: Optional[int] = None) -> Iterator[Tuple[int, object, Optional[BaseException]]]:
    """Yield (index, result, error) of ``function(*arguments[i])`` as the tasks finish, at most ``max_pending``
    submitted at once (bounded memory on the client; default: twice the cluster's threads). A cancel drops
    the pending tasks and raises :class:`core.errors.Cancelled`."""
    if max_pending is None:
        max_pending = max(2, 2 * sum(client.nthreads().values()))
    queued: Iterable[int] = iter(range(len(arguments)))
    pending = {}

    def submit_more() -> None:
        for index in queued:
            pending[client.submit(function, *arguments[index], pure=False)] = index
            if len(pending) >= max_pending:
                return

    submit_more()
    while pending:
        if is_canceled is not None and is_canceled():
            client.cancel(list(pending))
            check_canceled(is_canceled)
        finished = [future for future in pending if future.done()]
        if not finished:
            time.sleep(POLL_SECONDS)
            continue
        for future in finished:
            index = pending.pop(future)
            try:
                yield index, future.result(), None
            except Exception as exc:  # the task raised, its worker died or could not import the package
                yield index, None, exc
        submit_more()
