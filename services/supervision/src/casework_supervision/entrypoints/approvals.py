"""The approvals' HTTP edge: the queue, one approval, approve, return. Thin: roles here,
reach and the rules in `application.approvals` and the aggregate. Every read is audited (the
shared `AuditMiddleware`) with the cases and clients the approvals shown are about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from casework import audit
from casework.auth import Principal, require_roles
from casework.eventstore import Document
from casework.http import Problem
from casework.requests import Context

from casework_supervision.application.approvals import (
    DECIDERS,
    QUEUE_READERS,
    READERS,
    Approvals,
)
from casework_supervision.domain.approval import Approval

router = APIRouter(prefix="/approvals", tags=["approvals"])

Decides = Annotated[Principal, Depends(require_roles(*sorted(DECIDERS)))]
ReadsQueue = Annotated[Principal, Depends(require_roles(*sorted(QUEUE_READERS)))]
Reads = Annotated[Principal, Depends(require_roles(*sorted(READERS)))]
ApprovalId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        pattern=r"^[^.$/][^./]*$",
        description="`<case_id>:plan:<version>`, `<case_id>:closure:<n>` or "
        "`<case_id>:assessment:<assessment_id>`",
    ),
]


def _approvals(request: Request) -> Approvals:
    app: Approvals = request.app.state.approvals
    return app


ApprovalsApp = Annotated[Approvals, Depends(_approvals)]


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: _problem("No such approval, or not one you may reach"),
}
DECIDE_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: _problem(
        "Not the worker's supervisor or their delegate (`NotAnApprover`), or the one who asked "
        "for it (`SelfApprovalNotAllowed`: four eyes)"
    ),
    404: _problem("No such approval, or not one you may reach"),
    409: _problem("Already granted, returned or withdrawn (`ApprovalAlreadyDecided`)"),
}


class ApprovalOut(BaseModel):
    approval_id: str
    kind: str
    case_id: str
    site: str
    team: str | None
    caseworker_id: str | None
    subject_version: int
    requested_by: str
    requested_at: datetime
    due_at: datetime
    status: str
    overdue: bool
    decided_by: str | None = None
    on_behalf_of: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None
    reason: str | None = None


class QueueItem(BaseModel):
    approval_id: str
    kind: str
    case_id: str
    site: str
    team: str | None
    caseworker_id: str | None
    requested_by: str
    requested_at: datetime
    due_at: datetime
    overdue: bool
    waited_hours: float = Field(description="Hours since it was requested, to one decimal")


class ApproveIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"comment": "Good plan"}]}
    )

    comment: Annotated[str, Field(max_length=2_000)] | None = None


class ReturnIn(BaseModel):
    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "Add a review date to the housing goal"}]},
    )

    reason: str = Field(min_length=1, max_length=2_000)


def _view(approval: Approval) -> ApprovalOut:
    request = approval.requested
    assert request is not None  # visible approvals are requested ones
    return ApprovalOut(
        approval_id=approval.id,
        kind=request.kind,
        case_id=request.case_id,
        site=request.site,
        team=request.team,
        caseworker_id=request.caseworker_id,
        subject_version=request.subject_version,
        requested_by=request.requested_by,
        requested_at=request.requested_at,
        due_at=request.due_at,
        status=str(approval.status),
        overdue=approval.overdue_at is not None,
        decided_by=approval.decided_by,
        on_behalf_of=approval.on_behalf_of,
        decided_at=approval.decided_at,
        comment=approval.comment,
        reason=approval.reason,
    )


def _item(doc: Document, now: datetime) -> QueueItem:
    requested_at: datetime = doc["requested_at"]
    due_at: datetime = doc["due_at"]
    waited = (now - _aware(requested_at)).total_seconds() / 3600
    return QueueItem(
        approval_id=str(doc["_id"]),
        kind=doc["kind"],
        case_id=doc["case_id"],
        site=doc["site"],
        team=doc.get("team"),
        caseworker_id=doc.get("caseworker_id"),
        requested_by=doc["requested_by"],
        requested_at=_aware(requested_at),
        due_at=_aware(due_at),
        overdue=doc.get("overdue_at") is not None or now >= _aware(due_at),
        waited_hours=round(max(waited, 0.0), 1),
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _note(request: Request, approval: Approval) -> None:
    asked = approval.requested
    if asked is not None:
        audit.note(request, case_id=asked.case_id, client_id=asked.client_id)


@router.get(
    "",
    summary="The approvals waiting for you, oldest first",
    description=(
        "A supervisor's queue: what their supervisees' cases wait for, what they decide as "
        "a delegate now, and — for workers with no supervisor in the directory — their site "
        "and team's. A site manager sees their sites' (`site` narrows it); a regional admin "
        "every site's (or `site`). Each item says how long it has waited."
    ),
)
async def approval_queue(
    principal: ReadsQueue,
    approvals: ApprovalsApp,
    request: Request,
    site: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> list[QueueItem]:
    docs = await approvals.queue_of(principal, site)
    audit.note(
        request,
        case_ids=[str(d["case_id"]) for d in docs],
        client_ids=[str(d["client_id"]) for d in docs if d.get("client_id")],
    )
    now = approvals.clock.now()
    return [_item(doc, now) for doc in docs]


@router.get(
    "/{approval_id}",
    summary="One approval",
    description=(
        "Its status and decision. Readable by who asked for it, the case's caseworker, "
        "supervisors and site managers of its site, whoever may decide it, regional admins."
    ),
    responses=READ_RESPONSES,
)
async def get_approval(
    approval_id: ApprovalId, principal: Reads, approvals: ApprovalsApp, request: Request
) -> ApprovalOut:
    approval = await approvals.get(approval_id, principal)
    _note(request, approval)
    return _view(approval)


@router.post(
    "/{approval_id}/approve",
    summary="Approve (the worker's supervisor or their delegate)",
    description=(
        "Signs it off for good: the cases service approves the plan version, closes the "
        "case, or records the assessment's sign-off when the decision reaches it."
    ),
    responses=DECIDE_RESPONSES,
)
async def approve(
    approval_id: ApprovalId,
    principal: Decides,
    approvals: ApprovalsApp,
    ctx: Context,
    request: Request,
    body: ApproveIn | None = None,
) -> ApprovalOut:
    comment = body.comment if body else None
    approval = await approvals.grant(approval_id, principal, comment, ctx)
    _note(request, approval)
    return _view(approval)


@router.post(
    "/{approval_id}/return",
    summary="Return with a reason (the worker's supervisor or their delegate)",
    description="The reason is required. The case gets it back when the decision reaches it.",
    responses=DECIDE_RESPONSES,
)
async def return_approval(
    approval_id: ApprovalId,
    body: ReturnIn,
    principal: Decides,
    approvals: ApprovalsApp,
    ctx: Context,
    request: Request,
) -> ApprovalOut:
    approval = await approvals.return_(approval_id, principal, body.reason, ctx)
    _note(request, approval)
    return _view(approval)
