"""Events and commands for given-when-then tests of the Case aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from casework.contracts.cases import (
    AssessmentRecorded,
    CaseClosed,
    CaseNoteRecorded,
    CaseOpened,
    CaseOutcome,
    CasePlanApproved,
    CasePlanProposed,
    CasePlanReturned,
    CaseReopened,
    CaseTransferAccepted,
    CaseTransferRejected,
    CaseTransferRequested,
    CaseworkerAssigned,
    ClosureRequested,
    ClosureReturned,
    CrisisDeclared,
    CrisisResolved,
    Goal,
    GoalProgress,
    Intervention,
)
from casework.contracts.common import RiskLevel
from casework.events import DomainEvent

from casework_cases.domain.case import Case
from casework_cases.domain.commands import (
    AcceptTransfer,
    ApproveClosure,
    ApprovePlan,
    AssignCaseworker,
    CaseCommand,
    ChangeRiskLevel,
    DeclareCrisis,
    OpenCase,
    ProposePlan,
    RecordAssessment,
    RecordCaseNote,
    RecordGoalProgress,
    RecordInpatientAdmission,
    RecordInpatientDischarge,
    RejectTransfer,
    ReopenCase,
    RequestClosure,
    RequestTransfer,
    ResolveCrisis,
    ReturnAssessment,
    ReturnClosure,
    ReturnPlan,
    SignOffAssessment,
)

C = "c-1"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 2, 10, 30, tzinfo=UTC)
CARL = "carl"  # the caseworker: proposes plans, requests closure
SUE = "sue"  # the supervisor: approves

GOAL = Goal(goal_id="g-1", description="Keep the tenancy", target_date=date(2025, 6, 30))
GOAL_2 = Goal(goal_id="g-2", description="Sleep six hours", target_date=date(2025, 5, 31))
VISITS = Intervention(
    intervention_id="i-1", description="Weekly home visit", responsible=CARL, goal_ids=("g-1",)
)

# -- events --------------------------------------------------------------------------------

OPENED = CaseOpened(
    case_id=C,
    client_id="cl-1",
    referral_id="r-1",
    site="north",
    risk_level=RiskLevel.MEDIUM,
    opened_at=T0,
)
ASSIGNED = CaseworkerAssigned(
    case_id=C, caseworker_id=CARL, team="t1", assigned_by=SUE, assigned_at=T0
)
ASSESSED = AssessmentRecorded(
    case_id=C,
    assessment_id="a-1",
    needs={"housing": "arrears"},
    narrative="...",
    recorded_by=CARL,
    recorded_at=T0,
)


def proposed(version: int, *goals: Goal, by: str = CARL) -> CasePlanProposed:
    return CasePlanProposed(
        case_id=C,
        plan_version=version,
        goals=goals or (GOAL,),
        interventions=(VISITS,),
        proposed_by=by,
        proposed_at=T0,
    )


def approved(version: int) -> CasePlanApproved:
    return CasePlanApproved(case_id=C, plan_version=version, approved_by=SUE, approved_at=T0)


def returned(version: int) -> CasePlanReturned:
    return CasePlanReturned(
        case_id=C, plan_version=version, reason="more", returned_by=SUE, returned_at=T0
    )


TRANSFER_REQUESTED = CaseTransferRequested(
    case_id=C, from_site="north", to_site="south", reason="moved", requested_by=SUE,
    requested_at=T0,
)  # fmt: skip
TRANSFER_ACCEPTED = CaseTransferAccepted(
    case_id=C, from_site="north", to_site="south", accepted_by="sam", accepted_at=T0
)
TRANSFER_REJECTED = CaseTransferRejected(
    case_id=C, from_site="north", to_site="south", reason="full", rejected_by="sam",
    rejected_at=T0,
)  # fmt: skip
CRISIS = CrisisDeclared(
    case_id=C,
    crisis_id="k-1",
    site="north",
    risk_level=RiskLevel.IMMINENT,
    summary="...",
    declared_by=CARL,
    declared_at=T0,
)
CRISIS_RESOLVED = CrisisResolved(
    case_id=C, crisis_id="k-1", resolution="...", resolved_by=CARL, resolved_at=T0
)
NOTE = CaseNoteRecorded(case_id=C, note_id="n-1", text="...", recorded_by=CARL, recorded_at=T0)
CLOSURE_REQUESTED = ClosureRequested(
    case_id=C,
    outcome=CaseOutcome.GOALS_MET,
    evaluation="...",
    requested_by=CARL,
    requested_at=T0,
)
CLOSURE_RETURNED = ClosureReturned(case_id=C, reason="not yet", returned_by=SUE, returned_at=T0)
CLOSED = CaseClosed(case_id=C, outcome=CaseOutcome.GOALS_MET, approved_by=SUE, closed_at=T0)
REOPENED = CaseReopened(case_id=C, reason="again", reopened_by=SUE, reopened_at=T0)

# -- histories, one per phase ---------------------------------------------------------------

IN_ASSESSMENT: tuple[DomainEvent, ...] = (OPENED, ASSIGNED)
IN_PLANNING: tuple[DomainEvent, ...] = (*IN_ASSESSMENT, ASSESSED, proposed(1))
"""Planning, with plan version 1 awaiting approval."""
IN_ACTIVE: tuple[DomainEvent, ...] = (*IN_PLANNING, approved(1))
IN_REVIEW: tuple[DomainEvent, ...] = (*IN_ACTIVE, CLOSURE_REQUESTED)
IN_CLOSED: tuple[DomainEvent, ...] = (*IN_REVIEW, CLOSED)

# -- commands --------------------------------------------------------------------------------

OPEN = OpenCase(
    case_id=C,
    client_id="cl-1",
    referral_id="r-1",
    site="north",
    opened_by="ivy",
    crisis_id="k-0",
    risk_level=RiskLevel.MEDIUM,
)
ASSIGN = AssignCaseworker(case_id=C, caseworker_id="cara", team="t1", assigned_by=SUE)
REQUEST_TRANSFER = RequestTransfer(case_id=C, to_site="south", reason="moved", requested_by=SUE)
ACCEPT_TRANSFER = AcceptTransfer(case_id=C, accepted_by="sam")
REJECT_TRANSFER = RejectTransfer(case_id=C, reason="full", rejected_by="sam")
ASSESS = RecordAssessment(
    case_id=C,
    assessment_id="a-2",
    needs={"health": "low mood"},
    narrative="...",
    recorded_by=CARL,
)
SIGN_OFF = SignOffAssessment(
    case_id=C, assessment_id="a-1", approval_id=f"{C}:assessment:a-1", signed_off_by=SUE
)
RETURN_ASSESSMENT = ReturnAssessment(
    case_id=C,
    assessment_id="a-1",
    approval_id=f"{C}:assessment:a-1",
    reason="name the sister as a protective factor",
    returned_by=SUE,
)
PROPOSE = ProposePlan(case_id=C, goals=(GOAL, GOAL_2), interventions=(VISITS,), proposed_by=CARL)
APPROVE_PLAN = ApprovePlan(case_id=C, approved_by=SUE)
RETURN_PLAN = ReturnPlan(case_id=C, reason="add a review date", returned_by=SUE)
PROGRESS = RecordGoalProgress(
    case_id=C, goal_id="g-1", progress=GoalProgress.IN_PROGRESS, recorded_by=CARL
)
RAISE_RISK = ChangeRiskLevel(case_id=C, risk_level=RiskLevel.HIGH, reason="...", changed_by=CARL)
DECLARE = DeclareCrisis(case_id=C, crisis_id="k-2", summary="...", declared_by=CARL)
RESOLVE = ResolveCrisis(case_id=C, resolution="...", resolved_by=CARL)
NOTE_2 = RecordCaseNote(case_id=C, note_id="n-2", text="...", recorded_by=CARL)
REQUEST_CLOSURE = RequestClosure(
    case_id=C, outcome=CaseOutcome.GOALS_MET, evaluation="...", requested_by=CARL
)
APPROVE_CLOSURE = ApproveClosure(case_id=C, approved_by=SUE)
RETURN_CLOSURE = ReturnClosure(case_id=C, reason="not yet", returned_by=SUE)
REOPEN = ReopenCase(case_id=C, reason="asked for help again", reopened_by=SUE)
ADMIT = RecordInpatientAdmission(case_id=C, admission_id="ad-1", admitted_at=T0, recorded_by=CARL)
DISCHARGE = RecordInpatientDischarge(case_id=C, discharged_at=NOW, recorded_by=CARL)


def given(*history: DomainEvent | Sequence[DomainEvent]) -> Case:
    """A case rebuilt from past events (histories may be nested one level)."""
    events: list[DomainEvent] = []
    for item in history:
        events.extend([item] if isinstance(item, DomainEvent) else item)
    return Case.rehydrate(C, events)


def when(case: Case, command: CaseCommand) -> list[DomainEvent]:
    """The events the command triggers (raises the case's refusal)."""
    case.handle(command, NOW)
    return case.pending_events
