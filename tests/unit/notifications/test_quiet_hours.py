"""Quiet hours in the person's timezone hold non-critical e-mail until they end, never a
critical one; digests come at the next local hour (weekly: on Monday)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from casework.contracts.notifications import Urgency

from casework_notifications.domain.quiet_hours import QuietHours, local_zone, next_local, zone

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
QUIET = QuietHours(time(21, 0), time(7, 0))


@pytest.mark.parametrize(
    ("at", "tz", "urgency", "released"),
    [
        # 22:30 in London in winter (UTC+0): held to 07:00 the next morning
        (
            datetime(2026, 12, 2, 22, 30, tzinfo=UTC),
            LONDON,
            Urgency.NORMAL,
            datetime(2026, 12, 3, 7, 0, tzinfo=UTC),
        ),
        # 03:00: held to 07:00 the same morning
        (
            datetime(2026, 12, 3, 3, 0, tzinfo=UTC),
            LONDON,
            Urgency.HIGH,
            datetime(2026, 12, 3, 7, 0, tzinfo=UTC),
        ),
        # 12:00: not quiet
        (
            datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
            LONDON,
            Urgency.NORMAL,
            datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
        ),
        # a crisis is never held
        (
            datetime(2026, 12, 2, 23, 0, tzinfo=UTC),
            LONDON,
            Urgency.CRITICAL,
            datetime(2026, 12, 2, 23, 0, tzinfo=UTC),
        ),
        # 02:00 UTC is 21:00 in New York (UTC-5): quiet there, until 07:00 local = 12:00 UTC
        (
            datetime(2026, 12, 3, 2, 0, tzinfo=UTC),
            NEW_YORK,
            Urgency.NORMAL,
            datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
        ),
        # summer time: 06:30 UTC is 07:30 in London (UTC+1), no longer quiet
        (
            datetime(2026, 7, 1, 6, 30, tzinfo=UTC),
            LONDON,
            Urgency.NORMAL,
            datetime(2026, 7, 1, 6, 30, tzinfo=UTC),
        ),
    ],
)
def test_quiet_hours_hold_until_they_end(
    at: datetime, tz: ZoneInfo, urgency: Urgency, released: datetime
) -> None:
    assert QUIET.release_at(at, tz, urgency) == released


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    at = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
    assert QuietHours(time(0, 0), time(0, 0)).release_at(at, LONDON, Urgency.NORMAL) == at


def test_digests_come_at_the_next_local_hour_and_weekly_on_monday() -> None:
    wednesday = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert next_local(wednesday, LONDON, 8) == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert next_local(wednesday, LONDON, 8, weekday=0) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    early = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    assert next_local(early, LONDON, 8) == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    assert next_local(early, NEW_YORK, 8) == datetime(2026, 12, 2, 13, 0, tzinfo=UTC)


def test_an_unknown_timezone_falls_back_to_the_default() -> None:
    assert zone("Mars/Olympus", "Europe/London") == LONDON
    assert zone(None, "America/New_York") == NEW_YORK


@pytest.mark.parametrize(
    ("own", "site", "expected"),
    [
        ("America/New_York", "Asia/Tokyo", NEW_YORK),  # their own first
        (None, "America/New_York", NEW_YORK),  # none of their own: their site's
        ("Mars/Olympus", "America/New_York", NEW_YORK),  # an unknown name is passed over
        (None, None, LONDON),  # neither: the agency's default
        (None, "Mars/Olympus", LONDON),
    ],
)
def test_a_persons_timezone_is_their_own_else_their_sites_else_the_agencys(
    own: str | None, site: str | None, expected: ZoneInfo
) -> None:
    assert local_zone(own, site, "Europe/London") == expected
