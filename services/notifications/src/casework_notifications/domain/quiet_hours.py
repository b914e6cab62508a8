"""Quiet hours and digest times, in a person's own timezone.

- A person's timezone is their own (their profile's), else their site's (the first of their
  sites, as the directory lists them), else the agency's default (`local_zone`).

- A person's quiet hours (default 21:00 to 07:00 local) hold their non-critical e-mail until
  the quiet period ends; **critical notices (crisis, lone worker) are never held**. The
  inbox and its live stream are not held: an open console is someone looking.
- Overdue notices (the routing rule's `digest`) are not e-mailed one by one: they go into a
  daily digest per worker at `digest_hour` local, and a weekly one per supervisor on Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from casework.contracts.notifications import Urgency


def zone(name: str | None, default: str) -> ZoneInfo:
    """The named IANA timezone, or the default when unnamed or unknown."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def local_zone(own: str | None, site: str | None, default: str) -> ZoneInfo:
    """A person's timezone: their own, else their site's, else the agency's default; a name
    that is not a known IANA timezone is passed over."""
    for name in (own, site):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return zone(None, default)


@dataclass(frozen=True)
class QuietHours:
    start: time = time(21, 0)
    end: time = time(7, 0)

    def _quiet(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release_at(self, at: datetime, tz: ZoneInfo, urgency: Urgency) -> datetime:
        """When a notice sent at `at` may go out: at once, or at the end of the quiet
        period it fell in (never later for a critical one)."""
        local = at.astimezone(tz)
        if urgency is Urgency.CRITICAL or not self._quiet(local.time()):
            return at
        end = datetime.combine(local.date(), self.end, tzinfo=tz)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=tz)
        return end.astimezone(UTC)


def next_local(at: datetime, tz: ZoneInfo, hour: int, weekday: int | None = None) -> datetime:
    """The first `hour`:00 local after `at` (on `weekday`, 0 = Monday, if given), in UTC."""
    local = at.astimezone(tz)
    candidate = datetime.combine(local.date(), time(hour, 0), tzinfo=tz)
    while candidate <= local or (weekday is not None and candidate.weekday() != weekday):
        candidate = datetime.combine(candidate.date() + timedelta(days=1), time(hour, 0), tzinfo=tz)
    return candidate.astimezone(UTC)
