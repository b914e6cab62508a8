"""The site register for managers, read from counters the projections keep (DESIGN §5).

A site has up to ~10,000 cases and the region ~200,000: counting them when asked costs
seconds on FerretDB. The case and referral summaries keep partition counters instead
(`casework.counters`): per site, the cases by phase, open cases by risk and open crises; per
site and ISO week, referrals received, accepted and declined, and histograms of the hours
from referral to acceptance and to first assignment. The register sums the few partition
documents of the site and of each week of the window, and reads the medians and 90th
percentiles from the summed histograms: within 2.2% of the exact figure (the buckets grow by
2^(1/16), `casework.counters.duration_bucket`).

Weeks are ISO weeks in UTC (`2026-W47`, Monday to Sunday).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field

from casework.counters import histogram_percentile

from casework_cases.adapters.read_models.case_summaries import PHASES, RISK_LEVELS, TO_ASSIGNMENT
from casework_cases.adapters.read_models.documents import UNRATED, as_utc, iso_week, quarter_key
from casework_cases.adapters.read_models.referral_summaries import TO_ACCEPTANCE

__all__ = [
    "UNRATED",
    "DurationStats",
    "ReferralWeek",
    "SiteRegister",
    "histogram_of",
    "iso_week",
    "percentile",
    "register_from_counts",
    "register_from_totals",
    "week_starts",
    "weekly",
]


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

    @classmethod
    def of_histogram(cls, histogram: Mapping[int, int]) -> DurationStats:
        """From a histogram of durations ({bucket: n}): within 2.2% of the exact figures."""
        count = sum(histogram.values())
        if count <= 0:
            return cls(count=0)
        return cls(
            count=count,
            median_hours=round(histogram_percentile(histogram, 50), 2),
            p90_hours=round(histogram_percentile(histogram, 90), 2),
        )


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


def histogram_of(counts: Mapping[str, int], stat: str) -> Counter[int]:
    """The histogram `{bucket: n}` of one duration among a counter's counts
    (`<stat>|<bucket>`)."""
    histogram: Counter[int] = Counter()
    for name, n in counts.items():
        kind, _, bucket = name.partition("|")
        if kind == stat and n:
            histogram[int(bucket)] += n
    return histogram


def weekly(
    totals: Mapping[str, Mapping[str, int]], site: str, weeks: Sequence[str]
) -> dict[str, Counter[str]]:
    """The figures of each of these weeks from the site's quarter counters
    (`documents.quarter_key`), by name without the week."""
    out: dict[str, Counter[str]] = {w: Counter() for w in weeks}
    for key in dict.fromkeys(quarter_key(site, w) for w in weeks):
        for name, n in totals.get(key, {}).items():
            week, _, rest = name.partition("|")
            if week in out:
                out[week][rest] += n
    return out


def register_from_totals(
    site: str,
    *,
    now: datetime,
    weeks: int,
    cases: Mapping[str, Mapping[str, int]],
    referrals: Mapping[str, Mapping[str, int]],
) -> SiteRegister:
    """The register from the summed counters of the case and referral summaries, by key
    (`documents.register_keys`). One pass over each quarter's figures: a 10,000-case site
    holds thousands of histogram names per quarter, each read once."""
    starts = week_starts(now, weeks)
    window = {iso_week(start): start for start in starts}
    quarters = list(dict.fromkeys(quarter_key(site, w) for w in window))
    per_week: dict[str, dict[str, int]] = {w: {} for w in window}
    to_acceptance: dict[int, int] = {}
    to_assignment: dict[int, int] = {}
    for totals, stat, histogram in (
        (referrals, TO_ACCEPTANCE, to_acceptance),
        (cases, TO_ASSIGNMENT, to_assignment),
    ):
        for key in quarters:
            for name, n in totals.get(key, {}).items():
                week, _, rest = name.partition("|")
                counted = per_week.get(week)
                if counted is None or not n:
                    continue
                kind, _, bucket = rest.partition("|")
                if kind == stat:
                    b = int(bucket)
                    histogram[b] = histogram.get(b, 0) + n
                elif totals is referrals:
                    counted[rest] = counted.get(rest, 0) + n
    return _register(
        site,
        now=now,
        weeks=weeks,
        current=cases.get(site, {}),
        referral_weeks=per_week,
        to_acceptance=to_acceptance,
        to_assignment=to_assignment,
    )


def register_from_counts(
    site: str,
    *,
    now: datetime,
    weeks: int,
    current: Mapping[str, int],
    case_weeks: Mapping[str, Mapping[str, int]],
    referral_weeks: Mapping[str, Mapping[str, int]],
) -> SiteRegister:
    """The register from the site's summed counters: `current` (cases by phase and risk,
    open crises), and per ISO week of the window those of the cases (first assignments) and
    of the referrals (received, accepted, declined, acceptances)."""
    to_acceptance: Counter[int] = Counter()
    to_assignment: Counter[int] = Counter()
    for start in week_starts(now, weeks):
        week = iso_week(start)
        to_acceptance.update(histogram_of(referral_weeks.get(week, {}), TO_ACCEPTANCE))
        to_assignment.update(histogram_of(case_weeks.get(week, {}), TO_ASSIGNMENT))
    return _register(
        site,
        now=now,
        weeks=weeks,
        current=current,
        referral_weeks=referral_weeks,
        to_acceptance=to_acceptance,
        to_assignment=to_assignment,
    )


def _register(
    site: str,
    *,
    now: datetime,
    weeks: int,
    current: Mapping[str, int],
    referral_weeks: Mapping[str, Mapping[str, int]],
    to_acceptance: Mapping[int, int],
    to_assignment: Mapping[int, int],
) -> SiteRegister:
    by_phase = {n.partition("|")[2]: c for n, c in current.items() if n.startswith("phase|")}
    by_risk = {n.partition("|")[2]: c for n, c in current.items() if n.startswith("risk|")}
    per_week = []
    for start in week_starts(now, weeks):
        referrals = referral_weeks.get(iso_week(start), {})
        per_week.append(
            ReferralWeek(
                week=iso_week(start),
                starts_on=start.date(),
                received=referrals.get("received", 0),
                accepted=referrals.get("accepted", 0),
                declined=referrals.get("declined", 0),
            )
        )
    return SiteRegister(
        site=site,
        generated_at=as_utc(now),
        weeks=weeks,
        cases_by_phase={**dict.fromkeys(PHASES, 0), **by_phase},
        cases_by_risk={**dict.fromkeys((*RISK_LEVELS, UNRATED), 0), **by_risk},
        open_crises=current.get("crises", 0),
        referrals_per_week=per_week,
        referral_to_acceptance=DurationStats.of_histogram(to_acceptance),
        referral_to_first_assignment=DurationStats.of_histogram(to_assignment),
    )
