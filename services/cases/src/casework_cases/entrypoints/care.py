"""Day-to-day care and its end: risk level, crisis, case notes, closure."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from casework.auth import Principal
from casework.http import text_body
from casework.requests import Context, IfMatch

from casework_cases.domain.commands import (
    ChangeRiskLevel,
    DeclareCrisis,
    RecordCaseNote,
    RecordInpatientAdmission,
    RecordInpatientDischarge,
    RequestClosure,
    ResolveCrisis,
)
from casework_cases.entrypoints.http import WRITE_RESPONSES, CaseId, CasesApp, answer, may_issue
from casework_cases.entrypoints.schemas import (
    ClosureIn,
    CrisisIn,
    CrisisResolutionIn,
    InpatientAdmissionIn,
    InpatientDischargeIn,
    NoteIn,
    RiskIn,
)
from casework_cases.entrypoints.views import CaseOut

risk = APIRouter(prefix="/cases/{case_id}", tags=["risk and crisis"])
notes = APIRouter(prefix="/cases/{case_id}", tags=["case notes"])
closure = APIRouter(prefix="/cases/{case_id}", tags=["closure"])
routers = (risk, notes, closure)


@risk.post(
    "/risk",
    summary="Change the risk level",
    description=(
        "Sets the case's risk level (low, medium, high, imminent) with the reason. 409 "
        "`RiskLevelUnchanged` when it already is at that level. Roles: caseworker, "
        "supervisor, crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def change_risk_level(
    case_id: CaseId,
    body: RiskIn,
    principal: Annotated[Principal, may_issue(ChangeRiskLevel)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = ChangeRiskLevel(
        case_id=case_id, risk_level=body.risk_level, reason=body.reason, changed_by=principal.sub
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@risk.post(
    "/crisis",
    summary="Declare a crisis",
    description=(
        "Someone is at imminent risk: the crisis is announced at once to those who must act. "
        "The risk level becomes imminent in the same change if it was not already. One open "
        "crisis at a time (409 `CrisisAlreadyOpen`). Roles: caseworker, supervisor, "
        "crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def declare_crisis(
    case_id: CaseId,
    body: CrisisIn,
    principal: Annotated[Principal, may_issue(DeclareCrisis)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = DeclareCrisis(
        case_id=case_id,
        crisis_id=body.crisis_id or str(uuid.uuid4()),
        summary=body.summary,
        declared_by=principal.sub,
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@risk.post(
    "/crisis/resolve",
    summary="Resolve the open crisis",
    description=(
        "Records how the open crisis was resolved (409 `NoOpenCrisis` when none is open). "
        "The risk level stays as it is: change it separately once reassessed. Roles: "
        "caseworker, supervisor, crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def resolve_crisis(
    case_id: CaseId,
    body: CrisisResolutionIn,
    principal: Annotated[Principal, may_issue(ResolveCrisis)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = ResolveCrisis(case_id=case_id, resolution=body.resolution, resolved_by=principal.sub)
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@risk.post(
    "/inpatient/admission",
    summary="Record an admission to inpatient care",
    description=(
        "The client was admitted to inpatient care (one open admission at a time: 409 "
        "`InpatientStateConflict`). Shown on the timeline. Roles: caseworker, supervisor, "
        "crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def record_inpatient_admission(
    case_id: CaseId,
    body: InpatientAdmissionIn,
    principal: Annotated[Principal, may_issue(RecordInpatientAdmission)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = RecordInpatientAdmission(
        case_id=case_id,
        admission_id=body.admission_id or str(uuid.uuid4()),
        admitted_at=body.admitted_at,
        recorded_by=principal.sub,
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@risk.post(
    "/inpatient/discharge",
    summary="Record a discharge from inpatient care",
    description=(
        "The client left inpatient care: the contacts service starts its 72-hour follow-up "
        "clock. 409 `InpatientStateConflict` with no admission open. Roles: caseworker, "
        "supervisor, crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def record_inpatient_discharge(
    case_id: CaseId,
    body: InpatientDischargeIn,
    principal: Annotated[Principal, may_issue(RecordInpatientDischarge)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = RecordInpatientDischarge(
        case_id=case_id, discharged_at=body.discharged_at, recorded_by=principal.sub
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@notes.post(
    "/notes",
    openapi_extra=text_body(),
    summary="Record a case note",
    description=(
        "Notes are append-only: a correction is a new note naming the note it corrects in "
        "`addendum_to` (422 when no such note exists). The new note's id is the last of "
        "`note_ids`. Roles: caseworker, supervisor."
    ),
    responses=WRITE_RESPONSES,
)
async def record_case_note(
    case_id: CaseId,
    body: NoteIn,
    principal: Annotated[Principal, may_issue(RecordCaseNote)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = RecordCaseNote(
        case_id=case_id,
        note_id=body.note_id or str(uuid.uuid4()),
        text=body.text,
        addendum_to=body.addendum_to,
        recorded_by=principal.sub,
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@closure.post(
    "/closure",
    openapi_extra=text_body(),
    summary="Request closure, with the outcome evaluation",
    description=(
        "Moves an active case into review until a supervisor decides (in the supervision "
        "service: `/approvals/{case_id}:closure:{n}`, n = the case's version after this "
        "request; the case closes, or is active again, when the decision arrives). Refused "
        "while a crisis "
        "is open (409 `CrisisStillOpen`), a transfer is pending or a plan awaits approval. "
        "Roles: caseworker, supervisor."
    ),
    responses=WRITE_RESPONSES,
)
async def request_closure(
    case_id: CaseId,
    body: ClosureIn,
    principal: Annotated[Principal, may_issue(RequestClosure)],
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = RequestClosure(
        case_id=case_id,
        outcome=body.outcome,
        evaluation=body.evaluation,
        requested_by=principal.sub,
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)
