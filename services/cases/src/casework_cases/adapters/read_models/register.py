"""The site register for managers: totals computed when asked, from per-case and per-referral
documents (no shared counters, DESIGN §5). A site has hundreds to a few thousand cases.

Weeks are ISO weeks in UTC (`2026-W47`, Monday to Sunday).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from casework_cases.adapters.read_models.case_summaries import CLOSED, PHASES, RISK_LEVELS
from casework_cases.adapters.read_models.documents import as_utc, maybe_utc

UNRATED = "unrated"
"""The `cases_by_risk` key of open cases without a risk level yet."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating linearly between the closest ranks (the
    method of numpy's default and of spreadsheets' PERCENTILE.INC)."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    below, above = math.floor(rank), math.ceil(rank)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


class DurationStats(BaseModel):
    """How long something took, over `count` cases or referrals."""

    count: int
    median_hours: float | None = None
    p90_hours: float | None = None

    @classmethod
    def of(cls, hours: Sequence[float]) -> DurationStats:
        if not hours:
            return cls(count=0)
        return cls(
            count=len(hours),
            median_hours=round(percentile(hours, 50), 2),
            p90_hours=round(percentile(hours, 90), 2),
        )


def iso_week(moment: datetime) -> str:
    """The ISO week of a moment, in UTC: `2026-W01`."""
    year, week, _ = as_utc(moment).isocalendar()
    return f"{year}-W{week:02d}"


def week_starts(now: datetime, weeks: int) -> list[datetime]:
    """The Mondays (00:00 UTC) of the last `weeks` ISO weeks, this one last."""
    if weeks < 1:
        raise ValueError("at least one week")
    today = as_utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=n) for n in reversed(range(weeks))]


class ReferralWeek(BaseModel):
    """Referrals of one ISO week, each counted in the week of its own event."""

    week: str = Field(description="ISO week, e.g. `2026-W47`")
    starts_on: date = Field(description="Its Monday")
    received: int
    accepted: int
    declined: int


class SiteRegister(BaseModel):
    """A site's cases and referrals in numbers."""

    site: str
    generated_at: datetime
    weeks: int = Field(description="How many ISO weeks the referral figures cover")
    cases_by_phase: dict[str, int] = Field(description="Cases now at the site, by phase")
    cases_by_risk: dict[str, int] = Field(
        description=f"Open cases at the site by risk level (`{UNRATED}`: not rated yet)"
    )
    open_crises: int = Field(description="Crises declared and not resolved at the site")
    referrals_per_week: list[ReferralWeek]
    referral_to_acceptance: DurationStats = Field(
        description="Referrals accepted in the window: hours from received to accepted"
    )
    referral_to_first_assignment: DurationStats = Field(
        description=(
            "Cases opened at the site and first assigned in the window: hours from the "
            "referral's arrival to the first caseworker assignment"
        )
    )


def _hours(start: Any, end: Any) -> float | None:
    begin, finish = maybe_utc(start), maybe_utc(end)
    if begin is None or finish is None:
        return None
    # Two services' clocks stamp the two ends; a little skew must not give negative times.
    return max((finish - begin).total_seconds() / 3600, 0.0)


def site_register(
    site: str,
    *,
    cases: Iterable[Mapping[str, Any]],
    referrals: Mapping[str, Mapping[str, Any]],
    now: datetime,
    weeks: int,
) -> SiteRegister:
    """The register from the summaries of the cases at (or opened at) the site, and of the
    referrals they and the window need, keyed by referral id."""
    starts = week_starts(now, weeks)
    window_start = starts[0]
    week_of = {iso_week(s): s for s in starts}

    def in_window(moment: Any) -> bool:
        at = maybe_utc(moment)
        return at is not None and at >= window_start

    by_phase: Counter[str] = Counter()
    by_risk: Counter[str] = Counter()
    open_crises = 0
    to_assignment: list[float] = []
    for case in cases:
        if case.get("site") == site:
            phase = case.get("phase") or "unknown"
            by_phase[phase] += 1
            if phase != CLOSED:
                by_risk[case.get("risk_level") or UNRATED] += 1
            open_crises += len(case.get("open_crises") or ())
        if case.get("opened_site") == site and in_window(case.get("first_assigned_at")):
            referral = referrals.get(case.get("referral_id") or "", {})
            received = referral.get("received_at") or case.get("referral_received_at")
            hours = _hours(received, case.get("first_assigned_at"))
            if hours is not None:
                to_assignment.append(hours)

    counts: dict[str, Counter[str]] = {w: Counter() for w in week_of}
    to_acceptance: list[float] = []
    for referral in referrals.values():
        if referral.get("site") != site:
            continue
        for what, field in (
            ("received", "received_at"),
            ("accepted", "accepted_at"),
            ("declined", "declined_at"),
        ):
            moment = maybe_utc(referral.get(field))
            if moment is not None and (week := iso_week(moment)) in counts:
                counts[week][what] += 1
        if in_window(referral.get("accepted_at")):
            hours = _hours(referral.get("received_at"), referral.get("accepted_at"))
            if hours is not None:
                to_acceptance.append(hours)

    return SiteRegister(
        site=site,
        generated_at=as_utc(now),
        weeks=weeks,
        cases_by_phase={**dict.fromkeys(PHASES, 0), **by_phase},
        cases_by_risk={**dict.fromkeys((*RISK_LEVELS, UNRATED), 0), **by_risk},
        open_crises=open_crises,
        referrals_per_week=[
            ReferralWeek(
                week=week,
                starts_on=start.date(),
                received=counts[week]["received"],
                accepted=counts[week]["accepted"],
                declined=counts[week]["declined"],
            )
            for week, start in week_of.items()
        ],
        referral_to_acceptance=DurationStats.of(to_acceptance),
        referral_to_first_assignment=DurationStats.of(to_assignment),
    )
