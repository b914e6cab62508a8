"""The Case aggregate: one episode of care, from opening to closure (and reopening).

The procedure moves a case through phases, each ended by one event:

    (new) --CaseOpened--> assessment --AssessmentRecorded--> planning
    planning --CasePlanApproved (the first plan)--> active
    active --ClosureRequested--> review --CaseClosed--> closed --CaseReopened--> assessment
    review --ClosureReturned--> active

`handle` decides every command with one `match (phase, command)`: read it as the table of
what each phase allows. Rules that do not depend on the phase (one open crisis at a time,
four eyes on approvals, ...) are checked in the step methods below it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from casework.aggregate import Aggregate
from casework.contracts.cases import (
    AssessmentRecorded,
    AssessmentReturned,
    AssessmentSignedOff,
    BreakGlassUsed,
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
    GoalProgressRecorded,
    InpatientAdmissionRecorded,
    InpatientDischargeRecorded,
    Intervention,
    RiskLevelChanged,
)
from casework.contracts.common import RiskLevel
from casework.events import DomainEvent

from casework_cases.domain.access import CaseScope
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
    UseBreakGlass,
)
from casework_cases.domain.errors import (
    AlreadyAssigned,
    CaseAlreadyClosed,
    CaseAlreadyOpened,
    CaseError,
    CaseNotOpened,
    CaseworkerChanged,
    CrisisAlreadyOpen,
    CrisisStillOpen,
    DecisionNotCurrent,
    GoalNotInPlan,
    IdAlreadyUsed,
    InpatientStateConflict,
    InpatientTimeInvalid,
    InvalidPlan,
    NoOpenCrisis,
    NoPendingTransfer,
    NoPlanAwaitingApproval,
    NoteNotFound,
    PlanAwaitingApproval,
    PlanNotApproved,
    RiskLevelUnchanged,
    SelfApprovalNotAllowed,
    TransferPending,
    TransferToSameSite,
    WrongPhase,
)

__all__ = ["Case", "CaseAlreadyOpened", "CaseError", "Phase", "PlanStatus"]

CRISIS_DECLARED_AT_INTAKE = (
    "Risk was screened as imminent at intake (referral {referral_id}): the case opened in crisis."
)
CRISIS_RAISES_RISK = "Crisis declared."


class Phase(StrEnum):
    """Where the case stands in the procedure."""

    ASSESSMENT = "assessment"
    PLANNING = "planning"
    ACTIVE = "active"
    REVIEW = "review"
    CLOSED = "closed"


class PlanStatus(StrEnum):
    """Where the case plan stands (the same words as the read models use)."""

    NONE = "none"
    PROPOSED = "proposed"
    """The first plan waits for a supervisor."""
    RETURNED = "returned"
    """The first plan was sent back; nothing is approved yet."""
    APPROVED = "approved"
    REVISION_PROPOSED = "revision_proposed"
    """The approved plan is in force; a revision of it waits for a supervisor."""


@dataclass(frozen=True)
class Plan:
    version: int
    goals: tuple[Goal, ...]
    interventions: tuple[Intervention, ...]
    proposed_by: str
    proposed_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None

    def goal(self, goal_id: str) -> Goal | None:
        return next((g for g in self.goals if g.goal_id == goal_id), None)


@dataclass(frozen=True)
class PendingTransfer:
    from_site: str
    to_site: str
    reason: str
    requested_by: str
    requested_at: datetime


@dataclass(frozen=True)
class OpenCrisis:
    crisis_id: str
    declared_by: str
    declared_at: datetime


@dataclass(frozen=True)
class PendingClosure:
    outcome: CaseOutcome
    requested_by: str
    requested_at: datetime


class Case(Aggregate):
    stream_type = "case"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.phase: Phase | None = None
        self.client_id: str | None = None
        self.client_name: str | None = None
        self.referral_id: str | None = None
        self.referral_received_at: datetime | None = None
        self.opened_at: datetime | None = None
        self.risk_level: RiskLevel | None = None
        self.caseworker_id: str | None = None
        self.team: str | None = None
        self.pending_transfer: PendingTransfer | None = None
        self.assessment_id: str | None = None
        self.assessed_by: str | None = None
        self.assessment_decided = False
        self.approved_plan: Plan | None = None
        self.proposed_plan: Plan | None = None
        self.plan_returned = False
        self.last_plan_version = 0
        self.goal_progress: dict[str, GoalProgress] = {}
        self.crisis: OpenCrisis | None = None
        self.crisis_ids: set[str] = set()
        self.note_ids: list[str] = []
        self.pending_closure: PendingClosure | None = None
        self.outcome: CaseOutcome | None = None
        self.admission: tuple[str, datetime] | None = None
        """The open inpatient admission: its id and when it began."""

    @property
    def scope(self) -> CaseScope:
        """What the access rule needs to know about this case."""
        return CaseScope(site=self.site, caseworker_id=self.caseworker_id, team=self.team)

    @property
    def plan_status(self) -> PlanStatus:
        if self.proposed_plan is not None:
            if self.approved_plan is not None:
                return PlanStatus.REVISION_PROPOSED
            return PlanStatus.PROPOSED
        if self.approved_plan is not None:
            return PlanStatus.APPROVED
        return PlanStatus.RETURNED if self.plan_returned else PlanStatus.NONE

    # -- deciding ---------------------------------------------------------------------------

    def handle(self, command: CaseCommand, at: datetime) -> None:
        """Decide `command` at time `at`: trigger its events, or raise a `CaseError`."""
        phase = self.phase
        match (phase, command):
            # opening; a closed case only reopens
            case (None, OpenCase() as c):
                self._open(c, at)
            case (_, OpenCase()):
                raise CaseAlreadyOpened(self.id)
            case (None, _):
                raise CaseNotOpened(self.id)
            # an emergency may need a closed case's history too
            case (_, UseBreakGlass() as c):
                self._break_glass(c, at)
            case (Phase.CLOSED, ReopenCase() as c):
                self._reopen(c, at)
            case (Phase.CLOSED, _):
                raise CaseAlreadyClosed(self.id)
            case (_, ReopenCase()):
                raise self._wrong_phase("only a closed case can be reopened")

            # any open phase: who holds the case, risk, crisis, notes
            case (_, AssignCaseworker() as c):
                self._assign(c, at)
            case (_, ChangeRiskLevel() as c):
                self._change_risk(c, at)
            case (_, DeclareCrisis() as c):
                self._declare_crisis(c, at)
            case (_, ResolveCrisis() as c):
                self._resolve_crisis(c, at)
            case (_, RecordCaseNote() as c):
                self._record_note(c, at)
            case (_, RecordInpatientAdmission() as c):
                self._record_admission(c, at)
            case (_, RecordInpatientDischarge() as c):
                self._record_discharge(c, at)

            # transfer to another site: not while the closure is under review
            case (Phase.REVIEW, RequestTransfer()):
                raise self._wrong_phase(
                    "its closure awaits a supervisor; have the closure returned before "
                    "requesting a transfer"
                )
            case (_, RequestTransfer() as c):
                self._request_transfer(c, at)
            case (_, AcceptTransfer() as c):
                self._accept_transfer(c, at)
            case (_, RejectTransfer() as c):
                self._reject_transfer(c, at)

            # assessment → planning
            case (Phase.ASSESSMENT, RecordAssessment() as c):
                self._assess(c, at)
            case (_, RecordAssessment()):
                raise self._wrong_phase(
                    "its assessment is recorded; a new assessment starts when a closed case "
                    "is reopened (record changes as case notes or a risk level change)"
                )
            case (_, SignOffAssessment() | ReturnAssessment() as c):
                self._decide_assessment(c, at)

            # planning → active: a plan, approved by a supervisor; revisions while active
            case (Phase.ASSESSMENT, ProposePlan()):
                raise self._wrong_phase("record an assessment before proposing a plan")
            case (Phase.REVIEW, ProposePlan()):
                raise self._wrong_phase(
                    "its closure awaits a supervisor; have the closure returned before "
                    "revising the plan"
                )
            case (Phase.PLANNING | Phase.ACTIVE, ProposePlan() as c):
                self._propose_plan(c, at)
            case (Phase.PLANNING | Phase.ACTIVE, ApprovePlan() as c):
                self._approve_plan(c, at)
            case (Phase.PLANNING | Phase.ACTIVE, ReturnPlan() as c):
                self._return_plan(c, at)
            case (Phase.ASSESSMENT, ApprovePlan() | ReturnPlan()):
                raise self._wrong_phase(
                    "record an assessment and propose a plan before a supervisor decides on it"
                )
            case (_, ApprovePlan() | ReturnPlan()):
                raise self._wrong_phase("no plan awaits approval while its closure is under review")

            # goal progress: against the approved plan
            case (Phase.ACTIVE | Phase.REVIEW, RecordGoalProgress() as c):
                self._record_progress(c, at)
            case (_, RecordGoalProgress()):
                raise PlanNotApproved(
                    self.id,
                    str(phase),
                    "no plan is approved yet; progress is recorded against the goals of an "
                    "approved plan",
                )

            # active → review → closed (or back to active)
            case (Phase.ACTIVE, RequestClosure() as c):
                self._request_closure(c, at)
            case (Phase.REVIEW, RequestClosure()):
                raise self._wrong_phase(
                    "closure is already requested; a supervisor approves or returns it"
                )
            case (_, RequestClosure()):
                raise self._wrong_phase(
                    "closure is requested once the case is active (its plan approved)"
                )
            case (Phase.REVIEW, ApproveClosure() as c):
                self._approve_closure(c, at)
            case (Phase.REVIEW, ReturnClosure() as c):
                self._return_closure(c, at)
            case (_, ApproveClosure() | ReturnClosure()):
                raise self._wrong_phase(
                    "no closure awaits a decision; closure is requested from active first"
                )

            case _:  # pragma: no cover - every command is matched above
                raise TypeError(f"not a case command: {command!r}")

    def _wrong_phase(self, hint: str) -> WrongPhase:
        return WrongPhase(self.id, str(self.phase), hint)

    # -- the steps ----------------------------------------------------------------------------

    def _open(self, c: OpenCase, at: datetime) -> None:
        self._trigger(
            CaseOpened(
                case_id=self.id,
                client_id=c.client_id,
                referral_id=c.referral_id,
                site=c.site,
                risk_level=c.risk_level,
                opened_at=at,
                referral_received_at=c.referral_received_at,
                client_name=c.client_name,
            )
        )
        if c.risk_level is RiskLevel.IMMINENT:
            # In the same commit: there is no moment when the case exists but is not in crisis.
            self._trigger(
                CrisisDeclared(
                    case_id=self.id,
                    client_id=self.client_id,
                    crisis_id=c.crisis_id,
                    site=c.site,
                    risk_level=RiskLevel.IMMINENT,
                    summary=CRISIS_DECLARED_AT_INTAKE.format(referral_id=c.referral_id),
                    declared_by=c.opened_by,
                    declared_at=at,
                )
            )

    def _assign(self, c: AssignCaseworker, at: datetime) -> None:
        if c.expected_caseworker_id is not None and c.expected_caseworker_id != self.caseworker_id:
            raise CaseworkerChanged(self.id, c.expected_caseworker_id, self.caseworker_id)
        if (c.caseworker_id, c.team) == (self.caseworker_id, self.team):
            raise AlreadyAssigned(self.id, c.caseworker_id, c.team)
        self._trigger(
            CaseworkerAssigned(
                case_id=self.id,
                client_id=self.client_id,
                caseworker_id=c.caseworker_id,
                team=c.team,
                previous_caseworker_id=self.caseworker_id,
                reason=c.reason,
                assigned_by=c.assigned_by,
                assigned_at=at,
                capacity_override_reason=c.capacity_override_reason,
            )
        )

    def _request_transfer(self, c: RequestTransfer, at: datetime) -> None:
        if self.pending_transfer is not None:
            raise TransferPending(self.id, self.pending_transfer.to_site, "another is requested")
        if c.to_site == self.site:
            raise TransferToSameSite(self.id, c.to_site)
        self._trigger(
            CaseTransferRequested(
                case_id=self.id,
                client_id=self.client_id,
                from_site=self._site,
                to_site=c.to_site,
                reason=c.reason,
                requested_by=c.requested_by,
                requested_at=at,
            )
        )

    def _accept_transfer(self, c: AcceptTransfer, at: datetime) -> None:
        pending = self._transfer()
        self._trigger(
            CaseTransferAccepted(
                case_id=self.id,
                from_site=pending.from_site,
                to_site=pending.to_site,
                accepted_by=c.accepted_by,
                accepted_at=at,
            )
        )

    def _reject_transfer(self, c: RejectTransfer, at: datetime) -> None:
        pending = self._transfer()
        self._trigger(
            CaseTransferRejected(
                case_id=self.id,
                client_id=self.client_id,
                from_site=pending.from_site,
                to_site=pending.to_site,
                reason=c.reason,
                rejected_by=c.rejected_by,
                rejected_at=at,
            )
        )

    def _transfer(self) -> PendingTransfer:
        if self.pending_transfer is None:
            raise NoPendingTransfer(self.id)
        return self.pending_transfer

    def _assess(self, c: RecordAssessment, at: datetime) -> None:
        self._trigger(
            AssessmentRecorded(
                case_id=self.id,
                client_id=self.client_id,
                assessment_id=c.assessment_id,
                needs=dict(c.needs),
                risk_factors=c.risk_factors,
                protective_factors=c.protective_factors,
                narrative=c.narrative,
                recorded_by=c.recorded_by,
                recorded_at=at,
            )
        )

    def _decide_assessment(self, c: SignOffAssessment | ReturnAssessment, at: datetime) -> None:
        if c.assessment_id != self.assessment_id:
            raise DecisionNotCurrent(self.id, c.approval_id, "another assessment is current")
        if self.assessment_decided:
            raise DecisionNotCurrent(self.id, c.approval_id, "the assessment is decided")
        by = c.signed_off_by if isinstance(c, SignOffAssessment) else c.returned_by
        if by == self.assessed_by:
            raise SelfApprovalNotAllowed(self.id, "the assessment", by)
        if isinstance(c, SignOffAssessment):
            self._trigger(
                AssessmentSignedOff(
                    case_id=self.id,
                    client_id=self.client_id,
                    assessment_id=c.assessment_id,
                    approval_id=c.approval_id,
                    signed_off_by=c.signed_off_by,
                    on_behalf_of=c.on_behalf_of,
                    comment=c.comment,
                    signed_off_at=at,
                )
            )
        else:
            self._trigger(
                AssessmentReturned(
                    case_id=self.id,
                    client_id=self.client_id,
                    assessment_id=c.assessment_id,
                    approval_id=c.approval_id,
                    reason=c.reason,
                    returned_by=c.returned_by,
                    on_behalf_of=c.on_behalf_of,
                    returned_at=at,
                )
            )

    def _propose_plan(self, c: ProposePlan, at: datetime) -> None:
        _check_plan(c.goals, c.interventions)
        self._trigger(
            CasePlanProposed(
                case_id=self.id,
                client_id=self.client_id,
                plan_version=self.last_plan_version + 1,
                goals=c.goals,
                interventions=c.interventions,
                proposed_by=c.proposed_by,
                proposed_at=at,
            )
        )

    def _plan_awaiting(self, by: str, c: ApprovePlan | ReturnPlan) -> Plan:
        proposed = self.proposed_plan
        if c.plan_version is not None and (proposed is None or proposed.version != c.plan_version):
            raise DecisionNotCurrent(
                self.id, c.approval_id, f"plan version {c.plan_version} no longer awaits approval"
            )
        if proposed is None:
            raise NoPlanAwaitingApproval(self.id)
        if by == proposed.proposed_by:
            raise SelfApprovalNotAllowed(self.id, f"plan version {proposed.version}", by)
        return proposed

    def _approve_plan(self, c: ApprovePlan, at: datetime) -> None:
        proposed = self._plan_awaiting(c.approved_by, c)
        self._trigger(
            CasePlanApproved(
                case_id=self.id,
                client_id=self.client_id,
                plan_version=proposed.version,
                approved_by=c.approved_by,
                approved_at=at,
                comment=c.comment,
                approval_id=c.approval_id,
                on_behalf_of=c.on_behalf_of,
            )
        )

    def _return_plan(self, c: ReturnPlan, at: datetime) -> None:
        proposed = self._plan_awaiting(c.returned_by, c)
        self._trigger(
            CasePlanReturned(
                case_id=self.id,
                client_id=self.client_id,
                plan_version=proposed.version,
                reason=c.reason,
                returned_by=c.returned_by,
                returned_at=at,
                approval_id=c.approval_id,
                on_behalf_of=c.on_behalf_of,
            )
        )

    def _record_progress(self, c: RecordGoalProgress, at: datetime) -> None:
        plan = self.approved_plan
        if plan is None:  # pragma: no cover - active and review always have one
            raise PlanNotApproved(self.id, str(self.phase), "no plan is approved yet")
        if plan.goal(c.goal_id) is None:
            raise GoalNotInPlan(self.id, c.goal_id, plan.version)
        self._trigger(
            GoalProgressRecorded(
                case_id=self.id,
                client_id=self.client_id,
                goal_id=c.goal_id,
                progress=c.progress,
                note=c.note,
                recorded_by=c.recorded_by,
                recorded_at=at,
            )
        )

    def _change_risk(self, c: ChangeRiskLevel, at: datetime) -> None:
        if c.risk_level == self.risk_level:
            raise RiskLevelUnchanged(self.id, c.risk_level.value)
        self._raise_risk(c.risk_level, c.reason, c.changed_by, at)

    def _raise_risk(self, level: RiskLevel, reason: str, by: str, at: datetime) -> None:
        self._trigger(
            RiskLevelChanged(
                case_id=self.id,
                client_id=self.client_id,
                site=self._site,
                previous_level=self.risk_level,
                risk_level=level,
                reason=reason,
                changed_by=by,
                changed_at=at,
            )
        )

    def _declare_crisis(self, c: DeclareCrisis, at: datetime) -> None:
        if self.crisis is not None:
            raise CrisisAlreadyOpen(self.id, self.crisis.crisis_id)
        if c.crisis_id in self.crisis_ids:
            raise IdAlreadyUsed(self.id, "crisis", c.crisis_id)
        self._trigger(
            CrisisDeclared(
                case_id=self.id,
                client_id=self.client_id,
                crisis_id=c.crisis_id,
                site=self._site,
                caseworker_id=self.caseworker_id,
                team=self.team,
                risk_level=RiskLevel.IMMINENT,
                summary=c.summary,
                declared_by=c.declared_by,
                declared_at=at,
            )
        )
        # A crisis is imminent risk: the risk level says so too, in the same commit, after
        # the crisis, so that a consumer of the case's events (notifications' first hop)
        # reaches the crisis before it does the work of the risk rise.
        if self.risk_level is not RiskLevel.IMMINENT:
            self._raise_risk(RiskLevel.IMMINENT, CRISIS_RAISES_RISK, c.declared_by, at)

    def _resolve_crisis(self, c: ResolveCrisis, at: datetime) -> None:
        if self.crisis is None:
            raise NoOpenCrisis(self.id)
        self._trigger(
            CrisisResolved(
                case_id=self.id,
                client_id=self.client_id,
                crisis_id=self.crisis.crisis_id,
                resolution=c.resolution,
                resolved_by=c.resolved_by,
                resolved_at=at,
            )
        )

    def _record_note(self, c: RecordCaseNote, at: datetime) -> None:
        if c.note_id in self.note_ids:
            raise IdAlreadyUsed(self.id, "note", c.note_id)
        if c.addendum_to is not None and c.addendum_to not in self.note_ids:
            raise NoteNotFound(self.id, c.addendum_to)
        self._trigger(
            CaseNoteRecorded(
                case_id=self.id,
                client_id=self.client_id,
                note_id=c.note_id,
                text=c.text,
                addendum_to=c.addendum_to,
                recorded_by=c.recorded_by,
                recorded_at=at,
            )
        )

    def _break_glass(self, c: UseBreakGlass, at: datetime) -> None:
        self._trigger(
            BreakGlassUsed(
                case_id=self.id,
                client_id=self.client_id,
                site=self._site,
                team=self.team,
                caseworker_id=self.caseworker_id,
                reason=c.reason,
                used_by=c.used_by,
                used_by_sites=c.used_by_sites,
                used_at=at,
            )
        )

    def _record_admission(self, c: RecordInpatientAdmission, at: datetime) -> None:
        if self.admission is not None:
            raise InpatientStateConflict(
                self.id, "the client is already recorded as an inpatient; record the discharge"
            )
        if c.admitted_at > at:
            raise InpatientTimeInvalid("an admission cannot be in the future", "body.admitted_at")
        self._trigger(
            InpatientAdmissionRecorded(
                case_id=self.id,
                admission_id=c.admission_id,
                admitted_at=c.admitted_at,
                recorded_by=c.recorded_by,
                recorded_at=at,
            )
        )

    def _record_discharge(self, c: RecordInpatientDischarge, at: datetime) -> None:
        if self.admission is None:
            raise InpatientStateConflict(
                self.id, "no inpatient admission is recorded; record the admission first"
            )
        admission_id, admitted_at = self.admission
        if c.discharged_at > at or c.discharged_at < admitted_at:
            raise InpatientTimeInvalid(
                "a discharge is between its admission and now", "body.discharged_at"
            )
        self._trigger(
            InpatientDischargeRecorded(
                case_id=self.id,
                admission_id=admission_id,
                discharged_at=c.discharged_at,
                recorded_by=c.recorded_by,
                recorded_at=at,
            )
        )

    def _request_closure(self, c: RequestClosure, at: datetime) -> None:
        if self.crisis is not None:
            raise CrisisStillOpen(self.id, self.crisis.crisis_id, "closure is requested")
        if self.pending_transfer is not None:
            raise TransferPending(self.id, self.pending_transfer.to_site, "closure is requested")
        if self.proposed_plan is not None:
            raise PlanAwaitingApproval(self.id, self.proposed_plan.version)
        self._trigger(
            ClosureRequested(
                case_id=self.id,
                client_id=self.client_id,
                outcome=c.outcome,
                evaluation=c.evaluation,
                requested_by=c.requested_by,
                requested_at=at,
            )
        )

    def _closure_awaiting(self, by: str, c: ApproveClosure | ReturnClosure) -> PendingClosure:
        closure = self.pending_closure
        assert closure is not None  # the review phase always has one
        if c.requested_at is not None and c.requested_at != closure.requested_at:
            raise DecisionNotCurrent(
                self.id, c.approval_id, "an earlier closure request was decided"
            )
        if by == closure.requested_by:
            raise SelfApprovalNotAllowed(self.id, "the closure", by)
        return closure

    def _approve_closure(self, c: ApproveClosure, at: datetime) -> None:
        closure = self._closure_awaiting(c.approved_by, c)
        if self.crisis is not None:
            raise CrisisStillOpen(self.id, self.crisis.crisis_id, "the case is closed")
        self._trigger(
            CaseClosed(
                case_id=self.id,
                client_id=self.client_id,
                outcome=closure.outcome,
                approved_by=c.approved_by,
                closed_at=at,
                comment=c.comment,
                approval_id=c.approval_id,
                on_behalf_of=c.on_behalf_of,
            )
        )

    def _return_closure(self, c: ReturnClosure, at: datetime) -> None:
        self._closure_awaiting(c.returned_by, c)
        self._trigger(
            ClosureReturned(
                case_id=self.id,
                client_id=self.client_id,
                reason=c.reason,
                returned_by=c.returned_by,
                returned_at=at,
                approval_id=c.approval_id,
                on_behalf_of=c.on_behalf_of,
            )
        )

    def _reopen(self, c: ReopenCase, at: datetime) -> None:
        self._trigger(
            CaseReopened(
                case_id=self.id,
                client_id=self.client_id,
                reason=c.reason,
                reopened_by=c.reopened_by,
                reopened_at=at,
            )
        )

    @property
    def _site(self) -> str:
        assert self.site is not None  # every opened case has a site
        return self.site

    # -- evolving -----------------------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case CaseOpened():
                self.phase = Phase.ASSESSMENT
                self.client_id = event.client_id
                self.client_name = event.client_name
                self.referral_id = event.referral_id
                self.referral_received_at = event.referral_received_at
                self.site = event.site
                self.risk_level = event.risk_level
                self.opened_at = event.opened_at
            case CaseworkerAssigned():
                self.caseworker_id = event.caseworker_id
                self.team = event.team
            case CaseTransferRequested():
                self.pending_transfer = PendingTransfer(
                    from_site=event.from_site,
                    to_site=event.to_site,
                    reason=event.reason,
                    requested_by=event.requested_by,
                    requested_at=event.requested_at,
                )
            case CaseTransferAccepted():
                # The receiving site takes the case; its own supervisor assigns a caseworker.
                self.site = event.to_site
                self.caseworker_id = None
                self.team = None
                self.pending_transfer = None
            case CaseTransferRejected():
                self.pending_transfer = None
            case AssessmentRecorded():
                self.phase = Phase.PLANNING
                self.assessment_id = event.assessment_id
                self.assessed_by = event.recorded_by
                self.assessment_decided = False
            case AssessmentSignedOff() | AssessmentReturned():
                self.assessment_decided = True
            case CasePlanProposed():
                self.last_plan_version = event.plan_version
                self.proposed_plan = Plan(
                    version=event.plan_version,
                    goals=event.goals,
                    interventions=event.interventions,
                    proposed_by=event.proposed_by,
                    proposed_at=event.proposed_at,
                )
            case CasePlanApproved():
                if self.proposed_plan is not None:
                    self.approved_plan = replace(
                        self.proposed_plan,
                        approved_by=event.approved_by,
                        approved_at=event.approved_at,
                    )
                self.proposed_plan = None
                self.plan_returned = False
                self.phase = Phase.ACTIVE
            case CasePlanReturned():
                self.proposed_plan = None
                self.plan_returned = True
            case GoalProgressRecorded():
                self.goal_progress[event.goal_id] = event.progress
            case RiskLevelChanged():
                self.risk_level = event.risk_level
            case CrisisDeclared():
                self.crisis = OpenCrisis(event.crisis_id, event.declared_by, event.declared_at)
                self.crisis_ids.add(event.crisis_id)
            case CrisisResolved():
                self.crisis = None
            case CaseNoteRecorded():
                self.note_ids.append(event.note_id)
            case InpatientAdmissionRecorded():
                self.admission = (event.admission_id, event.admitted_at)
            case InpatientDischargeRecorded():
                self.admission = None
            case ClosureRequested():
                self.phase = Phase.REVIEW
                self.pending_closure = PendingClosure(
                    event.outcome, event.requested_by, event.requested_at
                )
            case ClosureReturned():
                self.phase = Phase.ACTIVE
                self.pending_closure = None
            case CaseClosed():
                self.phase = Phase.CLOSED
                self.pending_closure = None
                self.outcome = event.outcome
            case CaseReopened():
                # A new assessment and a new plan: the old plan's goals no longer bind.
                self.phase = Phase.ASSESSMENT
                self.outcome = None
                self.approved_plan = None
                self.proposed_plan = None
                self.plan_returned = False
                self.goal_progress = {}


def _check_plan(goals: tuple[Goal, ...], interventions: tuple[Intervention, ...]) -> None:
    goal_ids = [g.goal_id for g in goals]
    if not goal_ids:
        raise InvalidPlan("a plan needs at least one goal", "body.goals")
    if len(set(goal_ids)) != len(goal_ids):
        raise InvalidPlan("two goals share an id", "body.goals")
    intervention_ids = [i.intervention_id for i in interventions]
    if len(set(intervention_ids)) != len(intervention_ids):
        raise InvalidPlan("two interventions share an id", "body.interventions")
    for intervention in interventions:
        unknown = sorted(set(intervention.goal_ids) - set(goal_ids))
        if unknown:
            raise InvalidPlan(
                f"intervention {intervention.intervention_id} serves goal(s) "
                f"{', '.join(unknown)}, which the plan does not have",
                "body.interventions",
            )
