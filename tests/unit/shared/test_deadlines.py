"""The pure parts of the deadline scheduler: slots, identities, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from casework.deadlines import Deadline, backoff, identity, slot_of

T0 = datetime(2026, 11, 28, 9, 5, 59, 999_999, tzinfo=UTC)


def test_an_entry_is_queued_under_its_utc_minute() -> None:
    assert slot_of(T0) == "20261128T0905"
    assert slot_of(T0.astimezone(timezone(timedelta(hours=-5)))) == "20261128T0905"


def test_the_identity_is_the_key_the_due_time_in_utc_and_the_epoch() -> None:
    local = datetime(2026, 11, 28, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert identity("c1", local) == "c1@2026-11-28T09:00:00+00:00~0"
    assert Deadline("c1", "contact_overdue", local, {}).identity == identity("c1", local)
    assert Deadline("c1", "contact_overdue", local, {}, epoch=2).identity.endswith("~2")


def test_backoff_doubles_up_to_its_cap() -> None:
    base, cap = timedelta(seconds=5), timedelta(hours=1)
    assert [backoff(n, base, cap).total_seconds() for n in range(4)] == [5, 10, 20, 40]
    assert backoff(10, base, cap) == cap
    assert backoff(10_000, base, cap) == cap  # no overflow after months of failures
