"""The site register's arithmetic: percentiles, ISO weeks, and the register from what the
case and referral summaries count (their contributions, summed as the counters sum them)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from casework.counters import fold_counts

from casework_cases.adapters.read_models import case_summaries, referral_summaries
from casework_cases.adapters.read_models.register import (
    DurationStats,
    SiteRegister,
    iso_week,
    percentile,
    register_from_totals,
    week_starts,
)

NOW = datetime(2026, 2, 25, 12, 0, tzinfo=UTC)  # a Wednesday in 2026-W09


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 90, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # unsorted input
        ([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 90, 9.1),
        ([0.0, 100.0], 90, 90.0),
        ([1.0, 2.0, 3.0], 0, 1.0),
        ([1.0, 2.0, 3.0], 100, 3.0),
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_or_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_duration_stats_round_and_say_nothing_without_data() -> None:
    assert DurationStats.of([]) == DurationStats(count=0, median_hours=None, p90_hours=None)
    stats = DurationStats.of([1.0, 2.0, 10.0 / 3])
    assert stats == DurationStats(count=3, median_hours=2.0, p90_hours=3.07)


@pytest.mark.parametrize(
    ("moment", "week"),
    [
        (datetime(2026, 2, 25, 12, tzinfo=UTC), "2026-W09"),
        (datetime(2026, 2, 23, 0, 0, tzinfo=UTC), "2026-W09"),  # Monday 00:00 starts a week
        (datetime(2026, 2, 22, 23, 59, tzinfo=UTC), "2026-W08"),
        (datetime(2025, 12, 29, 9, tzinfo=UTC), "2026-W01"),  # belongs to next ISO year
        (datetime(2027, 1, 1, 9, tzinfo=UTC), "2026-W53"),  # belongs to previous ISO year
        (datetime(2021, 1, 3, 9, tzinfo=UTC), "2020-W53"),
        # 23:30 on Sunday in UTC-2 is already Monday in UTC: weeks are UTC weeks
        (datetime(2026, 2, 22, 23, 30, tzinfo=timezone(timedelta(hours=-2))), "2026-W09"),
        (datetime(2026, 2, 23, 0, 30), "2026-W09"),  # naive = UTC (as stored)
    ],
)
def test_iso_week_labels(moment: datetime, week: str) -> None:
    assert iso_week(moment) == week


def test_week_starts_are_the_mondays_of_the_last_weeks_this_one_last() -> None:
    starts = week_starts(NOW, 3)
    assert starts == [at("2026-02-09"), at("2026-02-16"), at("2026-02-23")]
    assert [iso_week(s) for s in starts] == ["2026-W07", "2026-W08", "2026-W09"]
    assert week_starts(at("2026-01-02", 5), 2) == [at("2025-12-22"), at("2025-12-29")]
    with pytest.raises(ValueError, match="at least one week"):
        week_starts(NOW, 0)


def case(case_id: str, **fields: object) -> dict[str, object]:
    return {"_id": case_id, "site": "north", "opened_site": "north", **fields}


def site_register(
    site: str,
    *,
    cases: list[dict[str, object]],
    referrals: Mapping[str, Mapping[str, Any]],
    now: datetime,
    weeks: int,
) -> SiteRegister:
    """The register as the service answers it: every summary's contributions summed (what
    the partition counters hold, summed over partitions), read for the site and window."""
    return register_from_totals(
        site,
        now=now,
        weeks=weeks,
        cases=fold_counts(case_summaries.contributions(c) for c in cases),
        referrals=fold_counts(referral_summaries.contributions(r) for r in referrals.values()),
    )


def approximately(stats: DurationStats, count: int, median: float, p90: float) -> None:
    """Medians and 90th percentiles come from histograms: within 2.2% of the exact figure."""
    assert stats.count == count
    assert stats.median_hours == pytest.approx(median, rel=0.022)
    assert stats.p90_hours == pytest.approx(p90, rel=0.022)


def test_the_register_counts_the_sites_cases_by_phase_risk_and_crisis() -> None:
    cases = [
        case("c1", phase="active", risk_level="high", open_crises=[{"crisis_id": "x"}]),
        case("c2", phase="active", risk_level="high"),
        case("c3", phase="assessment", risk_level=None),
        case("c4", phase="closed", risk_level="imminent"),  # closed: no risk count
        case("c5", site="south", phase="active", risk_level="low"),  # transferred away
    ]

    register = site_register("north", cases=cases, referrals={}, now=NOW, weeks=2)

    assert register.cases_by_phase == {
        "assessment": 1,
        "planning": 0,
        "active": 2,
        "review": 0,
        "closed": 1,
    }
    assert register.cases_by_risk == {
        "low": 0,
        "medium": 0,
        "high": 2,
        "imminent": 0,
        "unrated": 1,
    }
    assert register.open_crises == 1


def test_referrals_are_counted_in_the_week_of_each_event_within_the_window() -> None:
    referrals = {
        # received last week, accepted this week
        "r1": {
            "site": "north",
            "received_at": at("2026-02-17", 9),
            "accepted_at": at("2026-02-24", 9),
        },
        # received and declined this week
        "r2": {
            "site": "north",
            "received_at": at("2026-02-23", 1),
            "declined_at": at("2026-02-23", 5),
        },
        # received before the window, accepted in it
        "r3": {
            "site": "north",
            "received_at": at("2026-02-01", 9),
            "accepted_at": at("2026-02-16", 9),
        },
        "r4": {"site": "south", "received_at": at("2026-02-24")},  # another site's
    }

    register = site_register("north", cases=[], referrals=referrals, now=NOW, weeks=2)

    weeks = [w.model_dump() for w in register.referrals_per_week]
    assert weeks == [
        {
            "week": "2026-W08",
            "starts_on": date(2026, 2, 16),
            "received": 1,
            "accepted": 1,
            "declined": 0,
        },
        {
            "week": "2026-W09",
            "starts_on": date(2026, 2, 23),
            "received": 1,
            "accepted": 1,
            "declined": 1,
        },
    ]
    # accepted in the window: r1 after 7 days, r3 after 15 days
    approximately(register.referral_to_acceptance, 2, 264.0, 340.8)


def test_time_to_first_assignment_counts_cases_opened_at_the_site_assigned_in_the_window() -> None:
    # the referral's own summary is not joined: cases topic and intake topic are counted
    # apart, and the opening repeats the arrival time
    referrals = {"r1": {"site": "north", "received_at": at("2026-02-19", 0)}}
    cases = [
        # 30 hours
        case(
            "c1",
            referral_id="r1",
            referral_received_at=at("2026-02-20", 0),
            first_assigned_at=at("2026-02-21", 6),
        ),
        # 10 hours
        case(
            "c2",
            referral_id="r2",
            referral_received_at=at("2026-02-24", 0),
            first_assigned_at=at("2026-02-24", 10),
        ),
        # opened here, transferred away since: still this site's intake work: 2 hours
        case(
            "c3",
            site="south",
            referral_id="r3",
            referral_received_at=at("2026-02-24", 0),
            first_assigned_at=at("2026-02-24", 2),
        ),
        # assigned before the window
        case(
            "c4",
            referral_id="r4",
            referral_received_at=at("2026-01-01"),
            first_assigned_at=at("2026-01-05"),
        ),
        # not assigned yet; and one whose opening did not say when the referral arrived
        case("c5", referral_id="r5", referral_received_at=at("2026-02-24")),
        case("c6", referral_id="r6", first_assigned_at=at("2026-02-24")),
        # opened at another site
        case(
            "c7",
            site="south",
            opened_site="south",
            referral_received_at=at("2026-02-24"),
            first_assigned_at=at("2026-02-24", 5),
        ),
    ]

    register = site_register("north", cases=cases, referrals=referrals, now=NOW, weeks=2)

    approximately(register.referral_to_first_assignment, 3, 10.0, 26.0)


def test_clock_skew_between_services_never_gives_negative_hours() -> None:
    cases = [
        case(
            "c1",
            referral_received_at=at("2026-02-24", 10),
            first_assigned_at=at("2026-02-24", 9),
        )
    ]
    register = site_register("north", cases=cases, referrals={}, now=NOW, weeks=1)
    assert register.referral_to_first_assignment.median_hours == 0.0
