"""Case and referral summaries as pure folds over events, and the caseload's order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from casework.contracts.cases import (
    AssessmentRecorded,
    CaseClosed,
    CaseOpened,
    CaseOutcome,
    CasePlanApproved,
    CasePlanProposed,
    CasePlanReturned,
    CaseReopened,
    CaseTransferAccepted,
    CaseTransferRequested,
    CaseworkerAssigned,
    ClosureRequested,
    ClosureReturned,
    CrisisDeclared,
    CrisisResolved,
    Goal,
    GoalProgress,
    GoalProgressRecorded,
    RiskLevelChanged,
)
from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import (
    ClientDetails,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    RiskScreened,
    ScreeningAnswers,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED

from casework_cases.adapters.read_models import case_summaries, referral_summaries
from casework_cases.adapters.read_models.case_summaries import (
    CaseSummary,
    PlanStatus,
    caseload_order,
)

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
CASE = "c1"


def fold(events: list[DomainEvent], start: Document | None = None) -> Document:
    """The case summary after these events, one hour apart."""
    doc: Document = start or {"_id": CASE}
    for n, event in enumerate(events, start=1):
        envelope = Envelope(
            type=event.type_name(),
            source="/casework/cases",
            subject=f"case-{CASE}",
            time=T0 + timedelta(hours=n),
            data=event.model_dump(mode="json"),
            stream_version=n,
        )
        doc = case_summaries.evolve(doc, event, envelope)
    return doc


def opened(**changes: Any) -> CaseOpened:
    fields: dict[str, Any] = {
        "case_id": CASE,
        "client_id": "k1",
        "referral_id": "r1",
        "site": "north",
        "risk_level": RiskLevel.MEDIUM,
        "opened_at": T0,
        "client_name": "Alex Morgan",
        **changes,
    }
    return CaseOpened(**fields)


def assigned(worker: str = "carl", team: str | None = "t1", hours: int = 0) -> CaseworkerAssigned:
    return CaseworkerAssigned(
        case_id=CASE,
        caseworker_id=worker,
        team=team,
        assigned_by="sam",
        assigned_at=T0 + timedelta(hours=hours),
    )


def assessed() -> AssessmentRecorded:
    return AssessmentRecorded(
        case_id=CASE,
        assessment_id="a1",
        needs={"housing": "unstable"},
        narrative="...",
        recorded_by="carl",
        recorded_at=T0,
    )


def goal(goal_id: str, target: str) -> Goal:
    return Goal(
        goal_id=goal_id, description=f"Goal {goal_id}", target_date=date.fromisoformat(target)
    )


def proposed(version: int, *goals: Goal) -> CasePlanProposed:
    return CasePlanProposed(
        case_id=CASE,
        plan_version=version,
        goals=goals,
        interventions=(),
        proposed_by="carl",
        proposed_at=T0,
    )


def approved(version: int) -> CasePlanApproved:
    return CasePlanApproved(case_id=CASE, plan_version=version, approved_by="sue", approved_at=T0)


def returned(version: int) -> CasePlanReturned:
    return CasePlanReturned(
        case_id=CASE, plan_version=version, reason="more", returned_by="sue", returned_at=T0
    )


def progress(goal_id: str, how: GoalProgress) -> GoalProgressRecorded:
    return GoalProgressRecorded(
        case_id=CASE, goal_id=goal_id, progress=how, recorded_by="carl", recorded_at=T0
    )


def crisis(crisis_id: str) -> CrisisDeclared:
    return CrisisDeclared(
        case_id=CASE,
        crisis_id=crisis_id,
        site="north",
        risk_level=RiskLevel.IMMINENT,
        summary="...",
        declared_by="ana",
        declared_at=T0,
    )


def resolved(crisis_id: str) -> CrisisResolved:
    return CrisisResolved(
        case_id=CASE, crisis_id=crisis_id, resolution="...", resolved_by="ana", resolved_at=T0
    )


def test_an_opened_case_is_in_assessment_with_the_referral_it_came_from() -> None:
    doc = fold([opened(referral_received_at=T0 - timedelta(days=2))])

    assert doc["phase"] == "assessment"
    assert doc["site"] == doc["opened_site"] == "north"
    assert (doc["client_id"], doc["client_name"], doc["referral_id"]) == ("k1", "Alex Morgan", "r1")
    assert doc["referral_received_at"] == T0 - timedelta(days=2)
    assert doc["risk_level"] == "medium"
    assert doc["plan_status"] == "none"
    assert doc["crisis_open"] is False
    assert doc["last_activity_at"] == T0 + timedelta(hours=1)


def test_the_phase_follows_the_procedure_through_closure_and_reopening() -> None:
    phases = []
    doc: Document = {"_id": CASE}
    for event in [
        opened(),
        assessed(),
        proposed(1, goal("g1", "2026-03-01")),
        approved(1),
        ClosureRequested(
            case_id=CASE,
            outcome=CaseOutcome.GOALS_MET,
            evaluation="...",
            requested_by="carl",
            requested_at=T0,
        ),
        ClosureReturned(case_id=CASE, reason="not yet", returned_by="sue", returned_at=T0),
        ClosureRequested(
            case_id=CASE,
            outcome=CaseOutcome.GOALS_MET,
            evaluation="...",
            requested_by="carl",
            requested_at=T0,
        ),
        CaseClosed(case_id=CASE, outcome=CaseOutcome.GOALS_MET, approved_by="sue", closed_at=T0),
    ]:
        doc = fold([event], doc)
        phases.append(doc["phase"])
    assert phases == [
        "assessment",
        "planning",
        "planning",
        "active",
        "review",
        "active",
        "review",
        "closed",
    ]
    assert (doc["closed_at"], doc["outcome"]) == (T0, "goals_met")

    assert doc["next_activity_due"] == "2026-03-01"

    doc = fold(
        [CaseReopened(case_id=CASE, reason="relapse", reopened_by="sue", reopened_at=T0)], doc
    )
    assert (doc["phase"], doc["closed_at"], doc["outcome"]) == ("assessment", None, None)
    # a reopened case is assessed and planned anew: the old plan no longer binds
    assert (doc["plan_status"], doc["approved_plan_version"]) == ("none", None)
    assert (doc["next_activity_due"], doc["goals"]) == (None, [])


def test_a_revision_approved_while_active_leaves_the_phase_alone() -> None:
    doc = fold([opened(), assessed(), proposed(1), approved(1), proposed(2), approved(2)])
    assert doc["phase"] == "active"
    assert doc["approved_plan_version"] == 2


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([], PlanStatus.NONE),
        ([proposed(1)], PlanStatus.PROPOSED),
        ([proposed(1), returned(1)], PlanStatus.RETURNED),
        ([proposed(1), returned(1), proposed(2)], PlanStatus.PROPOSED),
        ([proposed(1), approved(1)], PlanStatus.APPROVED),
        ([proposed(1), approved(1), proposed(2)], PlanStatus.REVISION_PROPOSED),
        # a returned revision leaves the approved plan in force
        ([proposed(1), approved(1), proposed(2), returned(2)], PlanStatus.APPROVED),
        ([proposed(1), approved(1), proposed(2), approved(2)], PlanStatus.APPROVED),
    ],
)
def test_plan_status(events: list[DomainEvent], status: PlanStatus) -> None:
    assert fold([opened(), assessed(), *events])["plan_status"] == status


def test_the_next_activity_is_the_earliest_open_goal_of_the_approved_plan() -> None:
    doc = fold(
        [
            opened(),
            assessed(),
            proposed(
                1, goal("g1", "2026-04-01"), goal("g2", "2026-03-01"), goal("g3", "2026-05-01")
            ),
        ]
    )
    assert doc["next_activity_due"] is None  # proposed is not approved

    doc = fold([approved(1)], doc)
    assert (doc["next_activity_due"], doc["next_activity"]) == ("2026-03-01", "Goal: Goal g2")

    doc = fold([progress("g2", GoalProgress.ACHIEVED)], doc)
    assert doc["next_activity_due"] == "2026-04-01"
    doc = fold([progress("g1", GoalProgress.IN_PROGRESS)], doc)
    assert doc["next_activity_due"] == "2026-04-01"  # in progress is still to do
    doc = fold([progress("g1", GoalProgress.ABANDONED)], doc)
    assert doc["next_activity_due"] == "2026-05-01"

    # a revision's goals count only once approved; progress carries over by goal id
    doc = fold([proposed(2, goal("g1", "2026-03-10"), goal("g4", "2026-03-20"))], doc)
    assert doc["next_activity_due"] == "2026-05-01"
    doc = fold([approved(2)], doc)
    assert doc["next_activity_due"] == "2026-03-20"

    doc = fold([progress("g4", GoalProgress.ACHIEVED)], doc)
    assert (doc["next_activity_due"], doc["next_activity"]) == (None, None)


def test_crises_open_and_resolve_one_by_one() -> None:
    doc = fold([opened(), crisis("x1"), crisis("x2"), resolved("x1")])
    assert doc["crisis_open"] is True
    assert [c["crisis_id"] for c in doc["open_crises"]] == ["x2"]
    doc = fold([resolved("x2")], doc)
    assert (doc["crisis_open"], doc["open_crises"]) == (False, [])


def test_assignment_keeps_the_first_time_and_a_transfer_unassigns() -> None:
    doc = fold([opened(), assigned("carl", "t1", hours=5), assigned("cara", "t2", hours=9)])
    assert (doc["caseworker_id"], doc["team"]) == ("cara", "t2")
    assert doc["first_assigned_at"] == T0 + timedelta(hours=5)

    doc = fold(
        [
            CaseTransferRequested(
                case_id=CASE,
                from_site="north",
                to_site="south",
                reason="moved",
                requested_by="cara",
                requested_at=T0,
            )
        ],
        doc,
    )
    assert doc["transfer_requested_to"] == "south"
    doc = fold(
        [
            CaseTransferAccepted(
                case_id=CASE, from_site="north", to_site="south", accepted_by="mo", accepted_at=T0
            )
        ],
        doc,
    )
    assert (doc["site"], doc["opened_site"]) == ("south", "north")
    assert (doc["caseworker_id"], doc["team"], doc["transfer_requested_to"]) == (None, None, None)
    assert doc["first_assigned_at"] == T0 + timedelta(hours=5)


def test_risk_changes_and_the_input_document_is_not_changed() -> None:
    before = fold([opened(), crisis("x1")])
    snapshot = {k: (list(v) if isinstance(v, list) else v) for k, v in before.items()}
    after = fold(
        [
            RiskLevelChanged(
                case_id=CASE,
                site="north",
                previous_level=RiskLevel.MEDIUM,
                risk_level=RiskLevel.HIGH,
                reason="...",
                changed_by="carl",
                changed_at=T0,
            ),
            resolved("x1"),
        ],
        before,
    )
    assert after["risk_level"] == "high"
    assert before == snapshot


def summary(case_id: str, **fields: Any) -> dict[str, Any]:
    return {"_id": case_id, **fields}


def test_the_caseload_puts_crises_first_then_risk_then_the_next_activity() -> None:
    cases = [
        summary("low-soon", risk_level="low", next_activity_due="2026-03-01"),
        summary("unrated", risk_level=None),
        summary("high-late", risk_level="high", next_activity_due="2026-06-01"),
        summary("crisis-medium", risk_level="medium", crisis_open=True),
        summary("high-none", risk_level="high"),
        summary("imminent", risk_level="imminent", next_activity_due="2026-09-01"),
        summary("high-soon", risk_level="high", next_activity_due="2026-03-01"),
        summary("crisis-high", risk_level="high", crisis_open=True),
    ]
    assert [c["_id"] for c in sorted(cases, key=caseload_order)] == [
        "crisis-high",
        "crisis-medium",
        "imminent",
        "high-soon",
        "high-late",
        "high-none",
        "low-soon",
        "unrated",
    ]


def test_a_summary_document_reads_as_the_api_shows_it() -> None:
    doc = fold(
        [opened(), assigned(), assessed(), proposed(1, goal("g1", "2026-03-01")), approved(1)]
    )
    doc[APPLIED] = {"case-c1": 5}

    view = CaseSummary.from_document(doc)

    assert view.case_id == CASE
    assert view.next_activity_due == date(2026, 3, 1)
    assert view.plan_status is PlanStatus.APPROVED
    assert view.risk_level is RiskLevel.MEDIUM
    assert view.last_activity_at == T0 + timedelta(hours=5)
    assert (view.caseworker_id, view.team, view.phase) == ("carl", "t1", "active")


# --- referral summaries -------------------------------------------------------------------


def referral_fold(events: list[DomainEvent]) -> Document:
    doc: Document = {"_id": "r1"}
    for event in events:
        doc = referral_summaries.evolve(doc, event)
    return doc


def received() -> ReferralReceived:
    return ReferralReceived(
        referral_id="r1",
        site="north",
        client=ClientDetails(
            given_name="Alex", family_name="Morgan", date_of_birth=date(1990, 4, 12)
        ),
        source=ReferralSource.GP,
        presenting_concerns="...",
        urgency=Urgency.SOON,
        received_by="ivy",
        received_at=T0,
    )


def test_a_referral_summary_follows_the_referral_to_its_decision() -> None:
    doc = referral_fold([received()])
    assert (doc["status"], doc["site"], doc["urgency"], doc["source"]) == (
        "waiting",
        "north",
        "soon",
        "gp",
    )
    assert (doc["client_name"], doc["received_at"], doc["latest_at"]) == ("Alex Morgan", T0, T0)

    later = T0 + timedelta(hours=26)
    doc = referral_fold(
        [
            received(),
            RiskScreened(
                referral_id="r1",
                site="north",
                answers=ScreeningAnswers(wish_to_be_dead=False, suicidal_thoughts=False),
                risk_level=RiskLevel.LOW,
                rule="no items",
                screened_by="ivy",
                screened_at=T0,
            ),
            ReferralAccepted(
                referral_id="r1",
                case_id="c1",
                client_id="k1",
                site="north",
                accepted_by="ivy",
                accepted_at=later,
            ),
        ]
    )
    assert (doc["status"], doc["accepted_at"], doc["case_id"], doc["client_id"]) == (
        "accepted",
        later,
        "c1",
        "k1",
    )
    assert (doc["risk_level"], doc["latest_at"]) == ("low", later)


def test_a_declined_referral_keeps_when_it_was_declined() -> None:
    later = T0 + timedelta(hours=3)
    doc = referral_fold(
        [
            received(),
            ReferralDeclined(
                referral_id="r1", site="north", reason="x", declined_by="ivy", declined_at=later
            ),
        ]
    )
    assert (doc["status"], doc["declined_at"], doc["latest_at"]) == ("declined", later, later)
