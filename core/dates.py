"""The time scale shared by every pipeline: years of 365.25 days.

Velocities are m/yr with a year of :data:`DAYS_PER_YEAR` days (ITS_LIVE's and
the tutorials' convention). Decimal years are continuous on that scale:
``decimal_year(2000-01-01T00:00) = 2000.0`` and one unit is 365.25 days, so
durations and rates stay exact across leap years (a calendar decimal year,
whose unit is 365 or 366 days, differs from it by at most 0.75 day).
"""
from __future__ import annotations

import datetime as _dt

DAYS_PER_YEAR = 365.25
_EPOCH = _dt.datetime(2000, 1, 1)


def decimal_year(moment: _dt.datetime) -> float:
    """Time in years of 365.25 days since 2000-01-01T00:00, plus 2000 (naive times are UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return 2000.0 + (moment - _EPOCH).total_seconds() / 86400.0 / DAYS_PER_YEAR


def datetime_from_decimal_year(t_yr: float) -> _dt.datetime:
    """Inverse of :func:`decimal_year` (naive UTC, to the second)."""
    return _EPOCH + _dt.timedelta(seconds=round((t_yr - 2000.0) * DAYS_PER_YEAR * 86400.0))
