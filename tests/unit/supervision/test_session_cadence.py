"""Cadence rules and the two cadence aggregates: when supervision and case reviews fall due,
and that each due / overdue is raised once, only for the due time in force, never early,
never for a leaver or a closed case. Given events, when a command, then events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from casework.contracts.supervision import (
    CaseReviewCadenceSet,
    CaseReviewDue,
    CaseReviewOverdue,
    SupervisionCadenceSet,
    SupervisionDue,
    SupervisionOverdue,
)
from casework.events import DomainEvent

from casework_supervision.domain.cadence import (
    CadencePolicy,
    CaseReviewCadence,
    SupervisionCadence,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = CadencePolicy()
DAY = timedelta(days=1)


# -- the rules ---------------------------------------------------------------------------------


def test_a_newly_qualified_worker_is_supervised_weekly_then_fortnightly_then_monthly() -> None:
    started = date(2026, 1, 5)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    assert POLICY.supervision_rule(True, started, start) == ("newly_qualified_weekly", 7)
    assert POLICY.supervision_rule(True, started, start + 41 * DAY) == (
        "newly_qualified_weekly",
        7,
    )
    assert POLICY.supervision_rule(True, started, start + 42 * DAY) == (
        "newly_qualified_fortnightly",
        14,
    )
    assert POLICY.supervision_rule(True, started, start + 181 * DAY) == (
        "newly_qualified_fortnightly",
        14,
    )
    assert POLICY.supervision_rule(True, started, start + 182 * DAY) == ("standard", 30)
    assert POLICY.supervision_rule(False, started, start) == ("standard", 30)


def test_a_case_is_reviewed_by_risk_and_first_within_14_days_of_opening() -> None:
    assert POLICY.next_review("imminent", NOW, None) == (NOW + 14 * DAY, 14, "opened")
    assert POLICY.next_review("low", NOW, None) == (NOW + 14 * DAY, 14, "opened")
    assert POLICY.next_review("high", NOW, NOW + DAY) == (NOW + 15 * DAY, 14, "reviewed")
    assert POLICY.next_review("medium", NOW, NOW) == (NOW + 30 * DAY, 30, "reviewed")
    assert POLICY.next_review("low", NOW, NOW) == (NOW + 90 * DAY, 90, "reviewed")
    assert POLICY.next_review(None, NOW, NOW) == (NOW + 30 * DAY, 30, "reviewed")
    quick = CadencePolicy(review_days={"high": 7}, first_review_days=14)
    assert quick.next_review("high", NOW, None) == (NOW + 7 * DAY, 7, "opened")


def test_the_rules_are_configurable() -> None:
    policy = CadencePolicy(standard_days=28, review_days={"high": 10}, day=timedelta(seconds=1))
    assert policy.supervision_rule(False, None, NOW) == ("standard", 28)
    assert policy.next_review("high", NOW, NOW) == (NOW + timedelta(seconds=10), 10, "reviewed")


# -- the worker's cadence -----------------------------------------------------------------------


def worker(*events: DomainEvent) -> SupervisionCadence:
    return SupervisionCadence.rehydrate("carl", events)


def tracked(newly_qualified: bool = False) -> SupervisionCadence:
    cadence = SupervisionCadence("carl")
    cadence.note_profile(
        sites=("north",),
        roles=("caseworker",),
        newly_qualified=newly_qualified,
        started_on=date(2026, 3, 1),
        policy=POLICY,
        now=NOW,
    )
    cadence.note_supervisor("sue", NOW, POLICY, NOW)
    return worker(*cadence.pending_events)


def test_nothing_falls_due_before_the_worker_has_a_supervisor() -> None:
    cadence = SupervisionCadence("carl")
    cadence.note_profile(
        sites=("north",),
        roles=("caseworker",),
        newly_qualified=False,
        started_on=date(2026, 3, 1),
        policy=POLICY,
        now=NOW,
    )
    [event] = cadence.pending_events
    assert isinstance(event, SupervisionCadenceSet)
    assert event.due_at is None
    assert event.supervised_role  # remembered for when a supervisor comes


def test_a_supervisor_assigned_starts_the_cadence_and_a_held_session_moves_it() -> None:
    cadence = tracked()
    assert cadence.due_at == NOW + 30 * DAY
    cadence.record_held(NOW + 10 * DAY, POLICY, NOW + 10 * DAY)
    [event] = cadence.pending_events
    assert isinstance(event, SupervisionCadenceSet)
    assert event.due_at == NOW + 40 * DAY
    assert event.rule == "standard"


def test_a_newly_qualified_worker_falls_due_a_week_after_their_session() -> None:
    cadence = tracked(newly_qualified=True)
    assert cadence.due_at == NOW + 7 * DAY
    assert cadence.rule == "newly_qualified_weekly"


def test_the_same_fact_again_changes_nothing() -> None:
    cadence = tracked()
    cadence.note_supervisor("sue", NOW, POLICY, NOW + DAY)
    cadence.note_profile(
        sites=("north",),
        roles=("caseworker",),
        newly_qualified=False,
        started_on=date(2026, 3, 1),
        policy=POLICY,
        now=NOW + DAY,
    )
    cadence.record_held(NOW - DAY, POLICY, NOW + DAY)  # older than none held: moves it
    assert [type(e) for e in cadence.pending_events] == [SupervisionCadenceSet]
    cadence = worker(*tracked().pending_events, *cadence.pending_events)
    cadence.record_held(NOW - 2 * DAY, POLICY, NOW + DAY)  # older than the last held
    assert cadence.pending_events == []


def test_due_and_overdue_are_raised_once_each_at_their_times() -> None:
    cadence = tracked()
    due = NOW + 30 * DAY
    cadence.mark_due(due, POLICY.due_lead, due - POLICY.due_lead - timedelta(seconds=1))
    cadence.mark_overdue(due, due - timedelta(seconds=1))
    assert cadence.pending_events == []  # never early
    cadence.mark_due(due, POLICY.due_lead, due - POLICY.due_lead)
    cadence.mark_overdue(due, due)
    cadence.mark_due(due, POLICY.due_lead, due)
    cadence.mark_overdue(due, due + DAY)
    assert [type(e) for e in cadence.pending_events] == [SupervisionDue, SupervisionOverdue]
    again = worker(*tracked().pending_events, *cadence.pending_events)
    again.mark_overdue(due, due + DAY)  # a redelivered or taken-over deadline
    assert again.pending_events == []


def test_a_session_held_before_the_deadline_fires_means_nothing_is_overdue() -> None:
    cadence = tracked()
    old_due = NOW + 30 * DAY
    cadence.record_held(NOW + 29 * DAY, POLICY, NOW + 29 * DAY)
    cadence.mark_overdue(old_due, old_due)
    assert [type(e) for e in cadence.pending_events] == [SupervisionCadenceSet]


def test_a_cancelled_session_moves_nothing_and_a_leaver_falls_due_never() -> None:
    cadence = tracked()
    due = cadence.due_at
    assert due is not None
    cadence.note_left(POLICY, NOW + DAY)
    [event] = cadence.pending_events
    assert isinstance(event, SupervisionCadenceSet)
    assert event.due_at is None
    cadence.mark_overdue(due, due)
    assert len(cadence.pending_events) == 1


# -- the case's review cadence ------------------------------------------------------------------


def opened_case(risk: str = "high") -> CaseReviewCadence:
    cadence = CaseReviewCadence("c-1")
    cadence.note_case(
        {"site": "north", "risk_level": risk, "open": True, "opened_at": NOW}, POLICY, NOW
    )
    return CaseReviewCadence.rehydrate("c-1", cadence.pending_events)


def test_a_new_case_is_first_reviewed_within_14_days_then_by_its_risk() -> None:
    cadence = opened_case("low")
    assert cadence.due_at == NOW + 14 * DAY
    assert cadence.basis == "opened"
    cadence.record_review(NOW + 3 * DAY, POLICY, NOW + 3 * DAY)
    [event] = cadence.pending_events
    assert isinstance(event, CaseReviewCadenceSet)
    assert event.due_at == NOW + 93 * DAY
    assert event.basis == "reviewed"


def test_a_risk_raised_brings_the_review_forward() -> None:
    cadence = opened_case("low")
    cadence.record_review(NOW, POLICY, NOW)
    cadence.note_case({"risk_level": "imminent"}, POLICY, NOW + DAY)
    assert cadence.due_at == NOW + 14 * DAY


def test_a_closed_case_is_never_overdue_and_a_reopened_one_is_again() -> None:
    cadence = opened_case()
    due = cadence.due_at
    assert due is not None
    cadence.note_case({"open": False}, POLICY, NOW + DAY)
    cadence.mark_overdue(due, due)
    cadence.mark_due(due, POLICY.due_lead, due)
    assert [type(e) for e in cadence.pending_events] == [CaseReviewCadenceSet]
    assert cadence.due_at is None
    cadence.note_case({"open": True, "opened_at": NOW + 2 * DAY}, POLICY, NOW + 2 * DAY)
    assert cadence.due_at == NOW + 16 * DAY


def test_a_review_is_overdue_once_for_its_due_time() -> None:
    cadence = opened_case()
    due = cadence.due_at
    assert due is not None
    cadence.mark_overdue(due, due - timedelta(seconds=1))
    cadence.mark_overdue(due + DAY, due + DAY)  # a due time that is not the case's
    assert cadence.pending_events == []
    cadence.mark_due(due, POLICY.due_lead, due - POLICY.due_lead)
    cadence.mark_overdue(due, due)
    cadence.mark_overdue(due, due + DAY)
    assert [type(e) for e in cadence.pending_events] == [CaseReviewDue, CaseReviewOverdue]
    [_, overdue] = cadence.pending_events
    assert isinstance(overdue, CaseReviewOverdue)
    assert (overdue.site, overdue.risk_level, overdue.due_at) == ("north", "high", due)


def test_a_redelivered_event_of_the_case_changes_nothing() -> None:
    cadence = CaseReviewCadence("c-1")
    opened = {"site": "north", "risk_level": "high", "open": True, "opened_at": NOW}
    cadence.note_case({**opened, "caseworker_id": None}, POLICY, NOW, case_version=1)
    cadence.note_case({"caseworker_id": "carl"}, POLICY, NOW, case_version=2)
    cadence.note_case({"risk_level": "high"}, POLICY, NOW, case_version=3)  # no change
    cadence = CaseReviewCadence.rehydrate("c-1", cadence.pending_events)
    for version, change in (
        (1, {**opened, "caseworker_id": None}),
        (2, {"caseworker_id": "carl"}),
        (3, {"risk_level": "high"}),
    ):
        cadence.note_case(change, POLICY, NOW + DAY, case_version=version)
    assert cadence.pending_events == []
    assert cadence.caseworker_id == "carl"
    cadence.note_case({"risk_level": "low"}, POLICY, NOW + DAY, case_version=4)
    assert len(cadence.pending_events) == 1


def test_a_site_manager_with_a_supervisor_named_is_not_on_the_cadence() -> None:
    cadence = SupervisionCadence("mo")
    cadence.note_profile(
        sites=("north",),
        roles=("site_manager",),
        newly_qualified=False,
        started_on=date(2026, 3, 1),
        policy=POLICY,
        now=NOW,
    )
    cadence.note_supervisor("ra", NOW, POLICY, NOW)
    assert cadence.due_at is None
    cadence.note_profile(
        sites=("north",),
        roles=("site_manager", "supervisor"),
        newly_qualified=False,
        started_on=date(2026, 3, 1),
        policy=POLICY,
        now=NOW,
    )
    assert cadence.due_at == NOW + 30 * DAY
