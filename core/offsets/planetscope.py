"""PlanetScope scene ids and acquisition times (REFERENCE §2.1).

Two id forms exist:

* PS2 (Dove Classic), 3 tokens ``YYYYMMDD_HHMMSS_SSSS``, e.g. ``20200101_101010_1014``;
* SuperDove (PS2.SD, PSB.SD), 4 tokens ``YYYYMMDD_HHMMSS_FF_SSSS`` with FF the
  hundredths of a second, e.g. ``20220907_140709_64_24a3``.

SSSS is the satellite id. The product level (``1B`` unrectified, ``3B``
orthorectified) is the token right after the id. All times are UTC.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import List, Optional

from ..errors import UserInputError

FORM_PS2 = "PS2"
FORM_SUPERDOVE = "SD"

_ALNUM = "0-9A-Za-z"
# Tokens are whole: the optional hundredths group only matches "_FF_" followed by a
# 4-character satellite token, so a 3-token id never reads as 4-token and vice versa.
_ID_PATTERN = (r"(?P<date>\d{8})_(?P<time>\d{6})(?:_(?P<frac>\d{2}))?"
               rf"_(?P<sat>[{_ALNUM}]{{4}})(?![{_ALNUM}])")
_LEVEL_PATTERN = rf"_(?P<level>[13][Bb])(?![{_ALNUM}])"
_ANCHORED = re.compile("^" + _ID_PATTERN + _LEVEL_PATTERN)
_ANYWHERE = re.compile(rf"(?<![{_ALNUM}])" + _ID_PATTERN + f"(?:{_LEVEL_PATTERN})?")

ACCEPTED_FORMS = (
    "PS2 (Dove Classic) 'YYYYMMDD_HHMMSS_SSSS_<level>_...', "
    "e.g. 20200101_101010_1014_3B_AnalyticMS_SR_clip.tif; "
    "SuperDove (PS2.SD/PSB.SD) 'YYYYMMDD_HHMMSS_FF_SSSS_<level>_...' (FF = hundredths of a second), "
    "e.g. 20220907_140709_64_24a3_3B_AnalyticMS_SR_clip.tif; "
    "<level> is 1B (unrectified) or 3B (orthorectified)"
)

_ISO_PATTERN = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SceneId:
    """A PlanetScope scene id and what it encodes."""

    scene_id: str          # e.g. "20220907_140709_64_24a3" or "20200101_101010_1014"
    acquired: datetime     # timezone-aware UTC; SuperDove ids include hundredths of a second
    satellite: str         # "24a3" / "1014"
    id_form: str           # "PS2" (3 tokens) or "SD" (4 tokens, PS2.SD / PSB.SD)
    level: Optional[str]   # "1B", "3B" or None when the name does not carry it


def parse_scene_id(name_or_path: str) -> SceneId:
    """Scene id at the start of a file's basename, followed by ``_1B_`` or ``_3B_``.

    Raises :class:`UserInputError` naming the file when the name does not match
    either accepted form or encodes an impossible date/time.
    """
    name = os.path.basename(name_or_path)
    match = _ANCHORED.match(name)
    if match is None:
        raise UserInputError(
            f"The file name '{name}' does not start with a PlanetScope scene id and product level. "
            f"Accepted forms: {ACCEPTED_FORMS}. Rename the file or keep Planet's original name.")
    scene = _scene_from_match(match)
    if scene is None:
        raise UserInputError(
            f"The file name '{name}' starts like a PlanetScope scene id but "
            f"'{match.group('date')}_{match.group('time')}' is not a valid UTC date and time. "
            f"Accepted forms: {ACCEPTED_FORMS}.")
    return scene


def find_scene_ids(name_or_path: str) -> List[SceneId]:
    """Every scene id anywhere in the basename, left to right (the level is optional).

    Used for names that carry two ids, e.g. disparity maps
    ``<ref_id>_<sec_id>_disp.tif``. Matches with an impossible date are not ids
    and are skipped.
    """
    name = os.path.basename(name_or_path)
    scenes = (_scene_from_match(match) for match in _ANYWHERE.finditer(name))
    return [scene for scene in scenes if scene is not None]


def _scene_from_match(match: "re.Match[str]") -> Optional[SceneId]:
    """Build a :class:`SceneId` from a regex match; None if the date/time is impossible."""
    date, time, frac, sat = match.group("date", "time", "frac", "sat")
    try:
        acquired = datetime(int(date[:4]), int(date[4:6]), int(date[6:]),
                            int(time[:2]), int(time[2:4]), int(time[4:]),
                            int(frac or 0) * 10_000, tzinfo=timezone.utc)
    except ValueError:
        return None
    level = match.group("level")
    scene_id = f"{date}_{time}_{frac}_{sat}" if frac is not None else f"{date}_{time}_{sat}"
    return SceneId(scene_id=scene_id, acquired=acquired, satellite=sat,
                   id_form=FORM_SUPERDOVE if frac is not None else FORM_PS2,
                   level=level.upper() if level else None)


def days_between(a: datetime, b: datetime) -> float:
    """Signed time from ``a`` to ``b`` in fractional days (positive when b is later)."""
    return (b - a) / timedelta(days=1)


def iso_utc(dt: datetime) -> str:
    """ISO 8601 UTC text with microseconds and a ``Z``, e.g. ``2022-09-07T14:07:09.640000Z``.

    A naive datetime is taken to be UTC already.
    """
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso_utc(text: str) -> datetime:
    """Inverse of :func:`iso_utc`: timezone-aware UTC datetime from ISO 8601 text.

    Accepts a ``Z`` or ``±HH:MM`` offset (no offset = UTC), seconds and
    fractions optional, and a date alone (midnight UTC).
    """
    match = _ISO_PATTERN.match(str(text).strip())
    if match is None:
        raise UserInputError(
            f"'{text}' is not an ISO 8601 date/time; use e.g. 2022-09-07T14:07:09.64Z or 2022-09-07.")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         int(second or 0), micro, tzinfo=_zone(zone))
    except ValueError as exc:
        raise UserInputError(
            f"'{text}' is not a valid date/time ({exc}); use e.g. 2022-09-07T14:07:09.64Z.") from exc
    return value.astimezone(timezone.utc)


def _zone(text: Optional[str]) -> timezone:
    """tzinfo for ``Z``, ``+HH:MM``/``+HHMM`` or None (UTC)."""
    if text is None or text.upper() == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
