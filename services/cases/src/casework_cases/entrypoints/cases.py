"""Who holds a case and where: assignment, caseload moves, transfers between sites, reopening."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from casework.auth import Principal
from casework.requests import Context, IfMatch

from casework_cases.domain.commands import (
    AcceptTransfer,
    AssignCaseworker,
    MoveCaseload,
    RejectTransfer,
    ReopenCase,
    RequestTransfer,
)
from casework_cases.entrypoints.http import WRITE_RESPONSES, CaseId, CasesApp, answer, may_issue
from casework_cases.entrypoints.schemas import (
    AssignmentIn,
    CaseloadMoveIn,
    ReopenIn,
    TransferIn,
    TransferRejectionIn,
)
from casework_cases.entrypoints.views import CaseloadMoveOut, CaseOut, caseload_move_view

router = APIRouter(tags=["cases"])

Assigns = Annotated[Principal, may_issue(AssignCaseworker)]
RequestsTransfers = Annotated[Principal, may_issue(RequestTransfer)]
MovesCaseloads = Annotated[Principal, may_issue(MoveCaseload)]
AcceptsTransfers = Annotated[Principal, may_issue(AcceptTransfer)]
RejectsTransfers = Annotated[Principal, may_issue(RejectTransfer)]
Reopens = Annotated[Principal, may_issue(ReopenCase)]
WorkerId = Annotated[str, Path(description="The staff id of the worker whose caseload moves")]


@router.post(
    "/cases/{case_id}/assignment",
    summary="Assign or reassign the caseworker",
    description=(
        "Makes a caseworker (and their team) responsible for the case. Roles: supervisor, "
        "site_manager, regional_admin. The assignee is checked against the organisation "
        "directory (this service's copy of it): active, holding `caseworker`, working at "
        "the case's site with their team there; the team recorded is the directory's "
        "(`team`, if sent, must be it). 409 `AssigneeNotInDirectory`, `AssigneeHasLeft`, "
        "`AssigneeNotCaseworker`, `AssigneeNotAtSite`, `AssigneeHasNoTeamAtSite`, "
        "`AssigneeTeamMismatch`; `AlreadyAssigned` when nothing would change; "
        "`CaseAlreadyClosed` on a closed case."
    ),
    responses=WRITE_RESPONSES,
)
async def assign_caseworker(
    case_id: CaseId,
    body: AssignmentIn,
    principal: Assigns,
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = AssignCaseworker(
        case_id=case_id,
        caseworker_id=body.caseworker_id,
        team=body.team,
        reason=body.reason,
        assigned_by=principal.sub,
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@router.post(
    "/caseloads/{worker_id}/move",
    summary="Move a worker's whole caseload to another worker",
    description=(
        "Reassigns every open case the worker holds to another worker (checked against the "
        "organisation directory as an assignment is) and their team, one commit "
        "per case, and reports each case as moved or failed (with the reason). Cases outside "
        "your reach are left alone and only counted. The worker's cases are found in an index "
        "kept from the case events, which trails them by a moment: a case assigned a second "
        "ago may be missed (run the move again). Roles: supervisor, site_manager, "
        "regional_admin."
    ),
)
async def move_caseload(
    worker_id: WorkerId,
    body: CaseloadMoveIn,
    principal: MovesCaseloads,
    cases: CasesApp,
    ctx: Context,
) -> CaseloadMoveOut:
    cmd = MoveCaseload(
        from_caseworker_id=worker_id,
        to_caseworker_id=body.to_caseworker_id,
        to_team=body.to_team,
        reason=body.reason,
        moved_by=principal.sub,
    )
    report = await cases.move_caseload(cmd, principal, ctx)
    return caseload_move_view(report, worker_id, body)


@router.post(
    "/cases/{case_id}/transfer",
    summary="Request a transfer to another site",
    description=(
        "Asks another site to take the case; the receiving site accepts or rejects it. One "
        "transfer may be pending at a time (409 `TransferPending`), and none while closure "
        "is under review. Roles: supervisor or site_manager of the case's current site. "
        "422 when the receiving site is not in the organisation directory."
    ),
    responses=WRITE_RESPONSES,
)
async def request_transfer(
    case_id: CaseId,
    body: TransferIn,
    principal: RequestsTransfers,
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = RequestTransfer(
        case_id=case_id, to_site=body.to_site, reason=body.reason, requested_by=principal.sub
    )
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@router.post(
    "/cases/{case_id}/transfer/accept",
    summary="Accept a pending transfer (receiving site)",
    description=(
        "The receiving site takes the case: its site changes, and it waits for the new "
        "site's supervisor to assign a caseworker. Roles: supervisor or site_manager at the "
        "receiving site. No request body."
    ),
    responses=WRITE_RESPONSES,
)
async def accept_transfer(
    case_id: CaseId,
    principal: AcceptsTransfers,
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = AcceptTransfer(case_id=case_id, accepted_by=principal.sub)
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@router.post(
    "/cases/{case_id}/transfer/reject",
    summary="Reject a pending transfer (receiving site)",
    description=(
        "The receiving site declines the case, saying why; it stays where it is. Roles: "
        "supervisor or site_manager at the receiving site."
    ),
    responses=WRITE_RESPONSES,
)
async def reject_transfer(
    case_id: CaseId,
    body: TransferRejectionIn,
    principal: RejectsTransfers,
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = RejectTransfer(case_id=case_id, reason=body.reason, rejected_by=principal.sub)
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)


@router.post(
    "/cases/{case_id}/reopen",
    summary="Reopen a closed case",
    description=(
        "A closed case starts again in assessment (a new assessment and plan follow). Only a "
        "closed case can be reopened. Roles: supervisor, site_manager."
    ),
    responses=WRITE_RESPONSES,
)
async def reopen_case(
    case_id: CaseId,
    body: ReopenIn,
    principal: Reopens,
    cases: CasesApp,
    ctx: Context,
    if_match: IfMatch,
    response: Response,
) -> CaseOut:
    cmd = ReopenCase(case_id=case_id, reason=body.reason, reopened_by=principal.sub)
    return answer(await cases.execute(cmd, principal, ctx, if_match), response)
