"""Assessment and the case plan: assess, propose or revise, record progress. Approving or
returning them is the supervision service's (`/approvals`); the case acts on its decisions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response

from casework.auth import Principal
from casework.contracts.cases import Goal, Intervention
from casework.http import text_body
from casework.requests import Context, IfMatch

from casework_cases.domain.commands import ProposePlan, RecordAssessment, RecordGoalProgress
from casework_cases.entrypoints.http import WRITE_RESPONSES, CaseId, CasesApp, answer, may_issue
from casework_cases.entrypoints.schemas import AssessmentIn, GoalProgressIn, PlanIn
from casework_cases.entrypoints.views import CaseOut

router = APIRouter(prefix="/cases/{case_id}", tags=["assessment and plan"])

GoalId = Annotated[str, Path(description="A goal of the approved plan (see `active_plan`)")]


def _new_id() -> str:
    return str(uuid.uuid4())


@router.post(
    "/assessment",
    openapi_extra=text_body(),
    summary="Record the assessment",
    description=(
        "A structured assessment — needs by domain, risk and protective factors, narrative — "
        "moves the case from assessment to planning. Only in the assessment phase (409 "
        "`WrongPhase` otherwise). Roles: caseworker, supervisor."
    ),
    responses=WRITE_RESPONSES,
)
async def record_assessment(
    case_id: CaseId,
    body: AssessmentIn,
    principal: Annotated[Principal, may_issue(RecordAssessment)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = RecordAssessment(
        case_id=case_id,
        assessment_id=_new_id(),
        needs=body.needs,
        risk_factors=tuple(body.risk_factors),
        protective_factors=tuple(body.protective_factors),
        narrative=body.narrative,
        recorded_by=principal.sub,
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@router.post(
    "/plan",
    openapi_extra=text_body(),
    summary="Propose the plan, or a revision of it",
    description=(
        "Goals with target dates, and interventions saying who does what and which goals "
        "they serve. The proposal waits for a supervisor's approval (in the supervision "
        "service: `POST /approvals/{case_id}:plan:{plan_version}/approve`): the first "
        "approved plan makes the case active; while active, the approved plan stays in force "
        "until a revision is approved. A new proposal replaces one still waiting. Give a goal "
        "the id of a goal of the current plan to carry it (and its progress) over. Roles: "
        "caseworker, supervisor. 409 `WrongPhase` before the assessment or during closure "
        "review; 422 `InvalidPlan` when an intervention names a goal the plan lacks."
    ),
    responses=WRITE_RESPONSES,
)
async def propose_plan(
    case_id: CaseId,
    body: PlanIn,
    principal: Annotated[Principal, may_issue(ProposePlan)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = ProposePlan(
        case_id=case_id,
        goals=tuple(
            Goal(
                goal_id=g.goal_id or _new_id(),
                description=g.description,
                target_date=g.target_date,
            )
            for g in body.goals
        ),
        interventions=tuple(
            Intervention(
                intervention_id=i.intervention_id or _new_id(),
                description=i.description,
                responsible=i.responsible,
                frequency=i.frequency,
                goal_ids=tuple(i.goal_ids),
            )
            for i in body.interventions
        ),
        proposed_by=principal.sub,
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@router.post(
    "/goals/{goal_id}/progress",
    summary="Record progress on a goal",
    description=(
        "Progress on a goal of the approved plan (404 `GoalNotInPlan` for any other goal; "
        "409 `PlanNotApproved` before a plan is approved). Roles: caseworker, supervisor."
    ),
    responses=WRITE_RESPONSES,
)
async def record_goal_progress(
    case_id: CaseId,
    goal_id: GoalId,
    body: GoalProgressIn,
    principal: Annotated[Principal, may_issue(RecordGoalProgress)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = RecordGoalProgress(
        case_id=case_id,
        goal_id=goal_id,
        progress=body.progress,
        note=body.note,
        recorded_by=principal.sub,
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)
