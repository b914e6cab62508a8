"""The sites' contact statistics as the obligations view counts them: each case's
contribution by site and month (summed by the partition counters), read back as contacts per
case by medium and outcome, the share met on time by risk, and median hours to a follow-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casework.contracts.common import RiskLevel
from casework.contracts.contacts import (
    ContactCounted,
    ContactObligationMet,
    ContactObligationOpened,
    ContactOverdue,
    ContactUncounted,
    Medium,
    MediumClass,
    Outcome,
)
from casework.counters import bucket_hours, duration_bucket
from casework.events import DomainEvent

from casework_contacts.adapters.queries import months_between
from casework_contacts.adapters.read_models import (
    contributions,
    evolve_obligations,
    open_obligation_change,
)

T0 = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def opened(
    obligation_id: str, due: datetime, trigger: str | None = None
) -> ContactObligationOpened:
    return ContactObligationOpened(
        case_id="c-1", obligation_id=obligation_id, rule_id=obligation_id.rsplit("-", 1)[0],
        rule_version="v1", due_at=due, media_classes=(MediumClass.FACE_TO_FACE,), opened_at=T0,
        trigger=trigger, trigger_at=T0 if trigger else None, risk_level=RiskLevel.HIGH,
    )  # fmt: skip


def counted(contact_id: str, at: datetime, medium: Medium, outcome: Outcome) -> ContactCounted:
    return ContactCounted(
        case_id="c-1", contact_id=contact_id, occurred_at=at, medium=medium, outcome=outcome,
        with_client=True, counted_for=(),
    )  # fmt: skip


def met(obligation_id: str, at: datetime, due: datetime) -> ContactObligationMet:
    return ContactObligationMet(
        case_id="c-1", obligation_id=obligation_id, rule_id=obligation_id.rsplit("-", 1)[0],
        contact_id="k", met_at=at, due_at=due, on_time=at <= due,
    )  # fmt: skip


def overdue(obligation_id: str, due: datetime) -> ContactOverdue:
    return ContactOverdue(
        case_id="c-1", obligation_id=obligation_id, rule_id=obligation_id.rsplit("-", 1)[0],
        rule_version="v1", due_at=due, overdue_seconds=60, risk_level=RiskLevel.HIGH,
        site="north", raised_at=due + timedelta(minutes=1),
    )  # fmt: skip


def fold(*events: DomainEvent) -> dict[str, dict[str, int]]:
    doc: dict[str, object] = {"_id": "c-1"}
    for event in events:
        doc = evolve_obligations(doc, event, "north")
    return {k: dict(v) for k, v in contributions(doc).items()}


def test_contacts_by_medium_and_outcome_and_cases_contacted_once_per_month() -> None:
    april = T0 + 3 * 24 * HOUR
    stats = fold(
        counted("k1", T0, Medium.PHONE, Outcome.ATTEMPTED),
        counted("k2", T0 + HOUR, Medium.HOME_VISIT, Outcome.MADE),
        counted("k3", april, Medium.PHONE, Outcome.MADE),
    )
    assert stats == {
        "north|2026-03": {
            "contacts|phone|attempted": 1,
            "contacts|home_visit|made": 1,
            "cases_contacted": 1,
        },
        "north|2026-04": {"contacts|phone|made": 1, "cases_contacted": 1},
    }


def test_due_once_per_obligation_on_time_only_before_an_overdue() -> None:
    due = T0 + 24 * HOUR
    stats = fold(
        opened("high-weekly-1", due),
        opened("high-3-days-2", due),
        met("high-weekly-1", T0 + HOUR, due),  # on time
        overdue("high-3-days-2", due),
        met("high-3-days-2", due + HOUR, due),  # late: counted once, as the overdue
    )
    assert stats["north|2026-03"] == {"due|high": 2, "on_time|high": 1}


def test_hours_from_the_trigger_to_the_meeting_contact() -> None:
    due = T0 + 24 * HOUR
    stats = fold(
        opened("first-contact-24h-1", due, trigger="case_opened:1"),
        met("first-contact-24h-1", T0 + 5 * HOUR, due),
    )
    [name] = [n for n in stats["north|2026-03"] if n.startswith("hours|")]
    assert name == f"hours|case_opened|{duration_bucket(5.0)}"
    assert abs(bucket_hours(duration_bucket(5.0)) - 5.0) < 0.15


def test_months_between() -> None:
    assert months_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert months_between("2026-03", "2026-03") == ["2026-03"]


def test_an_open_obligation_is_listed_by_site_and_day_until_met() -> None:
    due = T0 + 24 * HOUR
    listed = open_obligation_change(opened("high-weekly-1", due), "north")
    assert listed is not None
    assert (listed["site"], listed["due_day"], listed["overdue"]) == ("north", "2026-03-31", False)
    assert open_obligation_change(overdue("high-weekly-1", due), "north") == {"overdue": True}
    gone = open_obligation_change(met("high-weekly-1", due, due), "north")
    assert gone is not None
    assert gone["site"] is None  # a tombstone no site's query finds


def test_a_struck_through_contact_leaves_the_contact_counts() -> None:
    uncounted = ContactUncounted(case_id="c-1", contact_id="k1", uncounted_at=T0 + HOUR)
    stats = fold(counted("k1", T0, Medium.HOME_VISIT, Outcome.MADE), uncounted)
    assert stats["north|2026-03"] == {"cases_contacted": 1}
