"""Helpers for read-model documents that must stay inside the MongoDB subset (DESIGN §7)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

UNRATED: Final = "unrated"
"""How the register names open cases without a risk level yet."""

# Keys with "." or a leading "$" are refused by FerretDB and ambiguous on MongoDB. Event data
# can carry such keys (an assessment's `needs` is keyed by whatever the assessor typed), so
# they are stored with look-alike characters and restored on reading: the approach MongoDB's
# own documentation suggests.
_DOT, _DOT_STAND_IN = ".", "\uff0e"
_DOLLAR, _DOLLAR_STAND_IN = "$", "\uff04"


def _escape_key(key: str) -> str:
    key = key.replace(_DOT, _DOT_STAND_IN)
    if key.startswith(_DOLLAR):
        key = _DOLLAR_STAND_IN + key[1:]
    return key


def _unescape_key(key: str) -> str:
    key = key.replace(_DOT_STAND_IN, _DOT)
    if key.startswith(_DOLLAR_STAND_IN):
        key = _DOLLAR + key[1:]
    return key


def escape_keys(value: Any) -> Any:
    """`value` with every dict key made storable (recursively)."""
    if isinstance(value, dict):
        return {_escape_key(str(k)): escape_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_keys(v) for v in value]
    return value


def unescape_keys(value: Any) -> Any:
    """The inverse of `escape_keys`."""
    if isinstance(value, dict):
        return {_unescape_key(str(k)): unescape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape_keys(v) for v in value]
    return value


def as_utc(moment: datetime) -> datetime:
    """A stored datetime as an aware UTC one (a client without `tz_aware` returns naive UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def maybe_utc(moment: Any) -> datetime | None:
    """`as_utc` for an optional field."""
    return as_utc(moment) if isinstance(moment, datetime) else None


def enum_value(member: Enum | None) -> str | None:
    """An enum member as the plain string stored in a document."""
    return None if member is None else str(member.value)


def iso_week(moment: datetime) -> str:
    """The ISO week of a moment, in UTC: `2026-W01`."""
    year, week, _ = as_utc(moment).isocalendar()
    return f"{year}-W{week:02d}"


def quarter_key(site: str, week: str) -> str:
    """The counter key (`casework.counters`) holding a site's figures of the ISO weeks of
    one quarter (`north|2026-Q1`; week 53 goes with the fourth); each figure's name starts
    with its week (`2026-W09|received`). A window of weeks is read as the few documents per
    partition of the quarters it touches, not one per week."""
    number = min((int(week[6:]) - 1) // 13 + 1, 4)
    return f"{site}|{week[:4]}-Q{number}"


def register_keys(site: str, weeks: list[str]) -> list[str]:
    """The counter keys the register of these weeks reads: the site's current figures and
    the quarters the weeks fall in."""
    return [site, *dict.fromkeys(quarter_key(site, w) for w in weeks)]


def hours_between(start: Any, end: Any) -> float | None:
    """Hours from `start` to `end`, never negative: two services' clocks stamp the two ends,
    and a little skew must not give negative times. None if either is unknown."""
    begin, finish = maybe_utc(start), maybe_utc(end)
    if begin is None or finish is None:
        return None
    return max((finish - begin).total_seconds() / 3600, 0.0)
