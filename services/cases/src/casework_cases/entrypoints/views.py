"""What the cases API answers: the case as it stands, and a caseload move's report."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from casework.contracts.cases import CaseOutcome, GoalProgress, Intervention
from casework.contracts.common import RiskLevel

from casework_cases.application.handlers import CaseloadMoveReport
from casework_cases.domain.case import Case, Plan, PlanStatus
from casework_cases.entrypoints.schemas import CaseloadMoveIn


class GoalOut(BaseModel):
    goal_id: str
    description: str
    target_date: date
    progress: GoalProgress | None = None


class PlanOut(BaseModel):
    plan_version: int
    goals: list[GoalOut]
    interventions: list[Intervention]
    proposed_by: str
    proposed_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None


class PendingTransferOut(BaseModel):
    from_site: str
    to_site: str
    reason: str
    requested_by: str
    requested_at: datetime


class CrisisOut(BaseModel):
    crisis_id: str
    declared_by: str
    declared_at: datetime


class PendingClosureOut(BaseModel):
    outcome: CaseOutcome
    requested_by: str
    requested_at: datetime


class CaseOut(BaseModel):
    """A case as it stands; `version` is also the `ETag` to send back as `If-Match`."""

    case_id: str
    client_id: str | None
    client_name: str | None = None
    referral_id: str | None
    referral_received_at: datetime | None = None
    opened_at: datetime | None
    site: str | None
    phase: str | None
    risk_level: RiskLevel | None
    in_crisis: bool = False
    open_crisis: CrisisOut | None = None
    inpatient: bool = Field(
        default=False, description="An admission to inpatient care is recorded, no discharge"
    )
    caseworker_id: str | None = None
    team: str | None = None
    pending_transfer: PendingTransferOut | None = None
    assessment_id: str | None = None
    plan_status: PlanStatus = PlanStatus.NONE
    active_plan: PlanOut | None = Field(default=None, description="The approved plan in force")
    proposed_plan: PlanOut | None = Field(default=None, description="Awaiting approval")
    pending_closure: PendingClosureOut | None = None
    outcome: CaseOutcome | None = None
    note_ids: list[str] = Field(default_factory=list, description="In the order recorded")
    version: int


def _plan(plan: Plan | None, progress: dict[str, GoalProgress]) -> PlanOut | None:
    if plan is None:
        return None
    return PlanOut(
        plan_version=plan.version,
        goals=[
            GoalOut(
                goal_id=g.goal_id,
                description=g.description,
                target_date=g.target_date,
                progress=progress.get(g.goal_id),
            )
            for g in plan.goals
        ],
        interventions=list(plan.interventions),
        proposed_by=plan.proposed_by,
        proposed_at=plan.proposed_at,
        approved_by=plan.approved_by,
        approved_at=plan.approved_at,
    )


def case_view(case: Case) -> CaseOut:
    """The API's view of a case."""
    transfer, crisis, closure = case.pending_transfer, case.crisis, case.pending_closure
    return CaseOut(
        case_id=case.id,
        client_id=case.client_id,
        client_name=case.client_name,
        referral_id=case.referral_id,
        referral_received_at=case.referral_received_at,
        opened_at=case.opened_at,
        site=case.site,
        phase=case.phase.value if case.phase else None,
        risk_level=case.risk_level,
        in_crisis=crisis is not None,
        open_crisis=CrisisOut(**vars(crisis)) if crisis else None,
        inpatient=case.admission is not None,
        caseworker_id=case.caseworker_id,
        team=case.team,
        pending_transfer=PendingTransferOut(**vars(transfer)) if transfer else None,
        assessment_id=case.assessment_id,
        plan_status=case.plan_status,
        active_plan=_plan(case.approved_plan, case.goal_progress),
        proposed_plan=_plan(case.proposed_plan, case.goal_progress),
        pending_closure=PendingClosureOut(**vars(closure)) if closure else None,
        outcome=case.outcome,
        note_ids=list(case.note_ids),
        version=case.version,
    )


class CaseMovedOut(BaseModel):
    case_id: str
    version: int


class CaseNotMovedOut(BaseModel):
    case_id: str
    code: str
    detail: str


class CaseloadMoveOut(BaseModel):
    """Each open case of the worker: moved (one commit each), or why not."""

    from_caseworker_id: str
    to_caseworker_id: str
    to_team: str | None = Field(description="As sent; each case records the directory's team")
    moved: list[CaseMovedOut]
    failed: list[CaseNotMovedOut]
    out_of_reach: int = Field(
        description="Open cases of the worker outside your reach: not moved, not named"
    )


def caseload_move_view(
    report: CaseloadMoveReport, worker_id: str, body: CaseloadMoveIn
) -> CaseloadMoveOut:
    return CaseloadMoveOut(
        from_caseworker_id=worker_id,
        to_caseworker_id=body.to_caseworker_id,
        to_team=body.to_team,
        moved=[CaseMovedOut(case_id=m.case_id, version=m.version) for m in report.moved],
        failed=[CaseNotMovedOut(**vars(f)) for f in report.failed],
        out_of_reach=report.out_of_reach,
    )
