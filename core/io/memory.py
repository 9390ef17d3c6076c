"""Memory estimates before full-raster allocations: a clear error instead of a MemoryError or swap."""
from __future__ import annotations

import os
from typing import Optional

from ..errors import UserInputError

#: Share of the available memory a run may plan to use.
USABLE_SHARE = 0.8


def available_memory_bytes() -> Optional[int]:
    """Memory available to a new allocation (MemAvailable on Linux, free physical pages elsewhere),
    or None where the platform does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2 ** 30:,.1f} GiB"


def require_memory(needed_bytes: float, what: str, hint: str) -> None:
    """Raise a UserInputError when ``what`` would need more than :data:`USABLE_SHARE` of the available
    memory; ``hint`` says how to need less (a coarser resolution, a smaller area)."""
    available = available_memory_bytes()
    if available is None or needed_bytes <= USABLE_SHARE * available:
        return
    raise UserInputError(
        f"{what} needs about {gib(needed_bytes)} of memory but only {gib(available)} is available; "
        f"nothing was written. {hint}")
