"""Acquisition dates and polarisations from ARD file names or band descriptions (REFERENCE §2.2)."""
from __future__ import annotations

import datetime as dt
import os
import re
from typing import Optional

from ..choices import Choices

#: Polarisations of Sentinel-1 GRD products (value = label).
POLARISATIONS = Choices(("VV", "VV"), ("VH", "VH"), ("HH", "HH"), ("HV", "HV"))
#: Value of "take the polarisation from the file names" in :data:`POLARISATION_SOURCES`.
FROM_FILE_NAMES = "names"
#: Where the polarisation of an input comes from: its file name, or one forced for all.
POLARISATION_SOURCES = Choices((FROM_FILE_NAMES, "from file names"),
                               *zip(POLARISATIONS.values, POLARISATIONS.labels))

_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{8})T(\d{6})(?!\d)"), "%Y%m%d%H%M%S"),
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):?(\d{2}):?(\d{2}))?"), None),
    (re.compile(r"(?<!\d)(\d{8})(?!\d)"), "%Y%m%d"),
    (re.compile(r"\.(\d{6})\."), "%y%m%d"),  # OST time series: NN.<YYMMDD>.TC.<POL>.tif
)
_POL_PATTERN = re.compile(rf"(?<![A-Za-z])({'|'.join(POLARISATIONS)})(?![A-Za-z])", re.IGNORECASE)


def _valid_datetime(text: str, fmt: str) -> Optional[dt.datetime]:
    try:
        value = dt.datetime.strptime(text, fmt)
    except ValueError:
        return None
    return value if 1990 <= value.year <= 2100 else None


def parse_datetime(text: str) -> Optional[dt.datetime]:
    """First acquisition time (naive UTC) found in ``text``, or None.

    Tried in order: ``YYYYMMDDTHHMMSS``, ISO ``YYYY-MM-DD[THH:MM:SS]``, ``YYYYMMDD``,
    OST ``.YYMMDD.`` (read as 20YY).
    """
    for pattern, fmt in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            if fmt is None:
                parts = [p or "00" for p in match.groups()]
                value = _valid_datetime("".join(parts), "%Y%m%d%H%M%S")
            else:
                value = _valid_datetime("".join(match.groups()), fmt)
            if value is not None:
                return value
    return None


def parse_polarisation(text: str) -> Optional[str]:
    """Polarisation token (VV, VH, HH, HV; upper case) in ``text``, or None."""
    match = _POL_PATTERN.search(os.path.basename(text))
    return match.group(1).upper() if match else None
