"""The HTTP edge of supervision sessions, action items and concerns.

Every route turns its request into one command (or one query) for the application, which
authorises against the directory (`domain/session_access.py`) and lets the aggregate
decide. Reads are audited with the cases and clients they showed; practice notes have their
own route, readable by the worker and their supervisor only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from casework import audit
from casework.access import AccessDenied, NotVisible
from casework.auth import Principal, require_roles
from casework.contracts.supervision import AgendaItem, PracticeTopic, SessionKind
from casework.http import Problem, text_body
from casework.requests import Context

from casework_supervision.adapters.session_read_models import ActionItems, Concerns
from casework_supervision.application.sessions import Sessions
from casework_supervision.domain.action_item import ActionItem
from casework_supervision.domain.concern import Concern
from casework_supervision.domain.session import SupervisionSession
from casework_supervision.domain.session_access import (
    CONCERN_READERS,
    CONCERN_RESOLVERS,
    SESSION_ROLES,
    SUPERVISORS,
)

router = APIRouter(tags=["supervision sessions"])

Reads = Annotated[Principal, Depends(require_roles(*sorted(SESSION_ROLES)))]
Supervises = Annotated[Principal, Depends(require_roles(*sorted(SUPERVISORS)))]
ReadsConcerns = Annotated[Principal, Depends(require_roles(*sorted(CONCERN_READERS)))]
ResolvesConcerns = Annotated[Principal, Depends(require_roles(*sorted(CONCERN_RESOLVERS)))]
ID = r"^[A-Za-z0-9_-]{1,128}$"
STAFF_ID = r"^[A-Za-z0-9][A-Za-z0-9_:@-]{0,63}$"
"""The directory's staff ids."""
CASE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
Id = Annotated[str, Path(pattern=ID, description="A session, action item or concern id")]
WorkerId = Annotated[str, Path(pattern=STAFF_ID, description="A staff id")]
NewId = Field(default=None, pattern=ID, description="Omit to have one generated")


def _sessions(request: Request) -> Sessions:
    app: Sessions = request.app.state.sessions
    return app


def _action_items(request: Request) -> ActionItems:
    items: ActionItems = request.app.state.action_items
    return items


def _concerns(request: Request) -> Concerns:
    concerns: Concerns = request.app.state.concerns
    return concerns


SessionsApp = Annotated[Sessions, Depends(_sessions)]
ActionItemsView = Annotated[ActionItems, Depends(_action_items)]
ConcernsView = Annotated[Concerns, Depends(_concerns)]


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


READ: dict[int | str, dict[str, Any]] = {
    403: _problem("Not a role that may do this"),
    404: _problem("No such session, item or concern, or not one you may reach"),
}
WRITE: dict[int | str, dict[str, Any]] = {
    **READ,
    409: _problem(
        "Supervision refused the command (`code` says which rule), or another change won a "
        "race: reload and try again"
    ),
}


class Strict(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")


class ScheduleIn(Strict):
    session_id: str | None = NewId
    worker_id: str = Field(pattern=STAFF_ID)
    kind: SessionKind = SessionKind.ONE_TO_ONE
    planned_for: AwareDatetime


class ReviewIn(Strict):
    case_id: str = Field(pattern=CASE_ID)
    findings: str = Field(min_length=1, max_length=20_000)
    decision: str = Field(min_length=1, max_length=5_000)
    reasons: str = Field(min_length=1, max_length=20_000)


class ActionItemIn(Strict):
    action_item_id: str | None = NewId
    owner_id: str | None = Field(
        default=None, pattern=STAFF_ID, description="The worker (default) or the supervisor"
    )
    due_at: AwareDatetime
    description: str = Field(min_length=1, max_length=5_000)
    case_id: str | None = Field(default=None, pattern=CASE_ID)


class PracticeNoteIn(Strict):
    note_id: str | None = NewId
    topic: PracticeTopic
    text: str = Field(min_length=1, max_length=20_000)


class CancelIn(Strict):
    reason: str = Field(min_length=1, max_length=2_000)
    reschedule_to: AwareDatetime | None = None


class RescheduleIn(Strict):
    planned_for: AwareDatetime


class ConcernIn(Strict):
    concern_id: str | None = NewId
    site: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    worker_id: str | None = Field(default=None, pattern=STAFF_ID)
    case_id: str | None = Field(default=None, pattern=CASE_ID)
    summary: str = Field(min_length=1, max_length=5_000)


class ResolveIn(Strict):
    resolution: str = Field(min_length=1, max_length=5_000)


class ReviewOut(BaseModel):
    review_id: str
    case_id: str
    client_id: str
    risk_level: str | None
    findings: str
    decision: str
    reasons: str
    reviewed_by: str
    reviewed_at: datetime


class ActionItemOut(BaseModel):
    action_item_id: str
    session_id: str | None = None
    worker_id: str
    owner_id: str
    case_id: str | None = None
    description: str
    due_at: datetime
    status: str
    overdue: bool = False


class SessionOut(BaseModel):
    session_id: str
    worker_id: str
    supervisor_id: str | None
    site: str | None
    kind: str | None
    status: str
    planned_for: datetime | None
    replaces: str | None = None
    rescheduled_as: str | None = None
    cancel_reason: str | None = None
    agenda: list[AgendaItem]
    reviews: list[ReviewOut]
    action_items: list[ActionItemOut] = Field(
        default_factory=list, description="Set in this session (as projected; may lag a moment)"
    )
    held_at: datetime | None = None
    acknowledged_at: datetime | None = None
    version: int


class PracticeNoteOut(BaseModel):
    note_id: str
    topic: str
    text: str
    recorded_by: str
    recorded_at: datetime


class ConcernOut(BaseModel):
    concern_id: str
    site: str
    worker_id: str | None
    case_id: str | None
    summary: str
    raised_by: str
    raised_at: datetime
    status: str
    resolution: str | None = None
    resolved_by: str | None = None


def _item(doc: dict[str, Any]) -> ActionItemOut:
    return ActionItemOut(
        action_item_id=str(doc["action_item_id"]),
        session_id=doc.get("session_id"),
        worker_id=str(doc["worker_id"]),
        owner_id=str(doc["owner_id"]),
        case_id=doc.get("case_id"),
        description=str(doc.get("description")),
        due_at=doc["due_at"],
        status=str(doc.get("status")),
        overdue=bool(doc.get("overdue")),
    )


def _item_of(item: ActionItem) -> ActionItemOut:
    assert item.set is not None
    s = item.set
    return ActionItemOut(
        action_item_id=item.id,
        session_id=s.session_id,
        worker_id=s.worker_id,
        owner_id=s.owner_id,
        case_id=s.case_id,
        description=str(s.description),
        due_at=s.due_at,
        status="done" if item.done else "open",
        overdue=item.overdue_raised,
    )


async def _view(
    request: Request, session: SupervisionSession, items: ActionItems | None = None
) -> SessionOut:
    reviews = [
        ReviewOut(
            review_id=r.review_id,
            case_id=r.case_id,
            client_id=r.client_id,
            risk_level=r.risk_level,
            findings=str(r.findings),
            decision=str(r.decision),
            reasons=str(r.reasons),
            reviewed_by=r.reviewed_by,
            reviewed_at=r.reviewed_at,
        )
        for r in session.reviews
    ]
    action_items = [_item(d) for d in await items.of_session(session.id)] if items else []
    audit.note(
        request,
        case_ids=[
            *(r.case_id for r in reviews),
            *(i.case_id for i in session.agenda if i.case_id),
            *(a.case_id for a in action_items if a.case_id),
        ],
        client_ids=[r.client_id for r in reviews],
    )
    cancelled = session.cancelled
    return SessionOut(
        session_id=session.id,
        worker_id=session.worker,
        supervisor_id=session.supervisor_id,
        site=session.site,
        kind=session.kind.value if session.kind else None,
        status=str(session.status),
        planned_for=session.planned_for,
        replaces=session.replaces,
        rescheduled_as=cancelled.rescheduled_as if cancelled else None,
        cancel_reason=str(cancelled.reason) if cancelled else None,
        agenda=list(session.agenda),
        reviews=reviews,
        action_items=action_items,
        held_at=session.held_at,
        acknowledged_at=session.status_at.get("acknowledged"),
        version=session.version,
    )


@router.post(
    "/sessions",
    status_code=201,
    summary="Schedule a supervision session with a worker you supervise",
    description=(
        "One-to-one, group or remote. You must supervise the worker per the directory (or "
        "be their supervisor's delegate now): else 409 `NotTheSupervisor`. Role: supervisor."
    ),
    responses=WRITE,
)
async def schedule_session(
    body: ScheduleIn, principal: Supervises, sessions: SessionsApp, ctx: Context, request: Request
) -> SessionOut:
    session = await sessions.schedule(
        session_id=body.session_id or str(uuid.uuid4()),
        worker_id=body.worker_id,
        kind=body.kind,
        planned_for=body.planned_for,
        principal=principal,
        ctx=ctx,
    )
    return await _view(request, session)


@router.get(
    "/sessions",
    summary="A worker's supervision sessions",
    description=(
        "Newest planned first. Your own, or a worker you supervise, or at your sites "
        "(site_manager), or anyone's (regional_admin)."
    ),
    responses=READ,
)
async def list_sessions(
    principal: Reads,
    sessions: SessionsApp,
    request: Request,
    worker_id: Annotated[str | None, Query(pattern=STAFF_ID)] = None,
) -> list[SessionOut]:
    worker = worker_id or principal.sub
    if not await sessions.may_read_worker(worker, principal):
        raise NotVisible(f"no sessions of {worker} you may read")
    docs = await request.app.state.session_list.of_worker(worker)
    found = []
    for doc in sorted(docs, key=lambda d: d.get("planned_for"), reverse=True):
        session = await sessions.sessions.find(str(doc["_id"]))
        if session is not None:
            found.append(await _view(request, session))
    return found


@router.get("/sessions/{session_id}", summary="A session: agenda and record", responses=READ)
async def read_session(
    session_id: Id,
    principal: Reads,
    sessions: SessionsApp,
    items: ActionItemsView,
    request: Request,
) -> SessionOut:
    session, _ = await sessions.readable_session(session_id, principal)
    return await _view(request, session, items)


@router.post(
    "/sessions/{session_id}/prepare",
    summary="Build the agenda from the caseload now",
    description=(
        "Cases in crisis, high and imminent risk, missed 72-hour follow-ups, overdue contacts, "
        "reviews due, approvals waiting, open action items — each with its reason and a "
        "snapshot of the figures. Preparing again replaces the agenda. Role: supervisor."
    ),
    responses=WRITE,
)
async def prepare_session(
    session_id: Id, principal: Supervises, sessions: SessionsApp, ctx: Context, request: Request
) -> SessionOut:
    return await _view(request, await sessions.prepare(session_id, principal, ctx))


@router.post(
    "/sessions/{session_id}/reviews",
    status_code=201,
    openapi_extra=text_body(),
    summary="Record a case review in the session",
    description="Findings, decision and reasons for one of the worker's cases. Role: supervisor.",
    responses=WRITE,
)
async def record_review(
    session_id: Id,
    body: ReviewIn,
    principal: Supervises,
    sessions: SessionsApp,
    ctx: Context,
    request: Request,
) -> SessionOut:
    session = await sessions.record_review(
        session_id,
        case_id=body.case_id,
        findings=body.findings,
        decision=body.decision,
        reasons=body.reasons,
        principal=principal,
        ctx=ctx,
    )
    return await _view(request, session)


@router.post(
    "/sessions/{session_id}/action-items",
    status_code=201,
    openapi_extra=text_body(),
    summary="Set an action item",
    description=(
        "Owner (the worker by default, or the supervisor), due time, what is to be done, and "
        "optionally the case it is about. Carried to each next session until done; "
        "`ActionItemOverdue` once if not done by then. Role: supervisor."
    ),
    responses=WRITE,
)
async def set_action_item(
    session_id: Id,
    body: ActionItemIn,
    principal: Supervises,
    sessions: SessionsApp,
    ctx: Context,
    request: Request,
) -> ActionItemOut:
    session, _ = await sessions.readable_session(session_id, principal)
    item = await sessions.set_action_item(
        session_id,
        action_item_id=body.action_item_id or str(uuid.uuid4()),
        owner_id=body.owner_id or session.worker,
        due_at=body.due_at,
        description=body.description,
        case_id=body.case_id,
        principal=principal,
        ctx=ctx,
    )
    audit.note(request, case_id=body.case_id)
    return _item_of(item)


@router.post(
    "/sessions/{session_id}/practice-notes",
    status_code=201,
    openapi_extra=text_body(),
    summary="Record a note on the worker's practice, learning or wellbeing",
    description=(
        "Kept apart from client files (sealed under the worker), readable by the worker and "
        "their supervisor only. Role: supervisor."
    ),
    responses=WRITE,
)
async def record_practice_note(
    session_id: Id,
    body: PracticeNoteIn,
    principal: Supervises,
    sessions: SessionsApp,
    ctx: Context,
) -> PracticeNoteOut:
    note_id = body.note_id or str(uuid.uuid4())
    session = await sessions.record_practice_note(
        session_id, note_id=note_id, topic=body.topic, text=body.text, principal=principal, ctx=ctx
    )
    note = next(n for n in session.notes if n.note_id == note_id)
    return _note(note)


def _note(note: Any) -> PracticeNoteOut:
    return PracticeNoteOut(
        note_id=note.note_id,
        topic=note.topic.value,
        text=str(note.text),
        recorded_by=note.recorded_by,
        recorded_at=note.recorded_at,
    )


@router.get(
    "/sessions/{session_id}/practice-notes",
    summary="The session's practice notes",
    description="The worker and their supervisor only; anyone else: 404.",
    responses=READ,
)
async def read_practice_notes(
    session_id: Id, principal: Reads, sessions: SessionsApp
) -> list[PracticeNoteOut]:
    if not await sessions.may_read_practice_notes(session_id, principal):
        raise NotVisible(f"no session {session_id}")
    session, _ = await sessions.readable_session(session_id, principal)
    return [_note(n) for n in session.notes]


@router.post(
    "/sessions/{session_id}/hold",
    summary="Close the session's record: it was held",
    description="Moves the worker's supervision cadence on. Role: supervisor.",
    responses=WRITE,
)
async def hold_session(
    session_id: Id, principal: Supervises, sessions: SessionsApp, ctx: Context, request: Request
) -> SessionOut:
    return await _view(request, await sessions.hold(session_id, principal, ctx))


@router.post(
    "/sessions/{session_id}/acknowledge",
    summary="The worker acknowledges the session's record",
    responses=WRITE,
)
async def acknowledge_session(
    session_id: Id, principal: Reads, sessions: SessionsApp, ctx: Context, request: Request
) -> SessionOut:
    return await _view(request, await sessions.acknowledge(session_id, principal, ctx))


@router.post(
    "/sessions/{session_id}/cancel",
    openapi_extra=text_body(),
    summary="Cancel a session (with a reason), optionally rescheduling it",
    description=(
        "The worker's supervision stays due until a session is held. With `reschedule_to`, a "
        "new session replaces it (its `replaces` names this one). Role: supervisor."
    ),
    responses=WRITE,
)
async def cancel_session(
    session_id: Id,
    body: CancelIn,
    principal: Supervises,
    sessions: SessionsApp,
    ctx: Context,
    request: Request,
) -> SessionOut:
    session, _ = await sessions.cancel(
        session_id,
        reason=body.reason,
        reschedule_to=body.reschedule_to,
        principal=principal,
        ctx=ctx,
    )
    return await _view(request, session)


@router.post(
    "/sessions/{session_id}/reschedule",
    summary="Move a session still to be held",
    responses=WRITE,
)
async def reschedule_session(
    session_id: Id,
    body: RescheduleIn,
    principal: Supervises,
    sessions: SessionsApp,
    ctx: Context,
    request: Request,
) -> SessionOut:
    return await _view(
        request, await sessions.reschedule(session_id, body.planned_for, principal, ctx)
    )


@router.get(
    "/workers/{worker_id}/action-items",
    summary="A worker's action items (open first)",
    responses=READ,
)
async def worker_action_items(
    worker_id: WorkerId,
    principal: Reads,
    sessions: SessionsApp,
    items: ActionItemsView,
    request: Request,
) -> list[ActionItemOut]:
    if not await sessions.may_read_worker(worker_id, principal):
        raise NotVisible(f"no action items of {worker_id} you may read")
    found = [_item(d) for d in await items.of_worker(worker_id)]
    found.sort(key=lambda i: (i.status != "open", i.due_at))
    audit.note(request, case_ids=[i.case_id for i in found if i.case_id])
    return found


@router.post(
    "/action-items/{action_item_id}/done",
    summary="Mark an action item done",
    description="Its owner, the worker, or whoever supervises the worker.",
    responses=WRITE,
)
async def complete_action_item(
    action_item_id: Id, principal: Reads, sessions: SessionsApp, ctx: Context
) -> ActionItemOut:
    return _item_of(await sessions.complete_action_item(action_item_id, principal, ctx))


def _concern_out(concern: Concern) -> ConcernOut:
    e = concern.escalated
    assert e is not None
    return ConcernOut(
        concern_id=concern.id,
        site=e.site,
        worker_id=e.worker_id,
        case_id=e.case_id,
        summary=str(e.summary),
        raised_by=e.raised_by,
        raised_at=e.raised_at,
        status="resolved" if concern.resolved else "open",
    )


@router.post(
    "/concerns",
    status_code=201,
    openapi_extra=text_body(),
    summary="Escalate a concern to the site manager",
    description=(
        "About a worker you supervise or a case at the site. Visible on your board and the "
        "site manager's view. Role: supervisor at the site."
    ),
    responses=WRITE,
)
async def escalate_concern(
    body: ConcernIn, principal: Supervises, sessions: SessionsApp, ctx: Context, request: Request
) -> ConcernOut:
    concern = await sessions.escalate_concern(
        concern_id=body.concern_id or str(uuid.uuid4()),
        site=body.site,
        worker_id=body.worker_id,
        case_id=body.case_id,
        summary=body.summary,
        principal=principal,
        ctx=ctx,
    )
    audit.note(request, case_id=body.case_id)
    return _concern_out(concern)


@router.get(
    "/concerns",
    summary="Concerns escalated at a site (site manager), or raised by you (supervisor)",
    responses=READ,
)
async def list_concerns(
    principal: ReadsConcerns,
    concerns: ConcernsView,
    request: Request,
    site: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = None,
) -> list[ConcernOut]:
    if site is not None:
        manages = "regional_admin" in principal.roles or (
            "site_manager" in principal.roles and site in principal.sites
        )
        if not manages:
            raise AccessDenied("a site manager of the site reads its concerns")
        docs = await concerns.at_site(site)
    else:
        docs = await concerns.raised_by(principal.sub)
    found = [
        ConcernOut(
            concern_id=str(d["concern_id"]),
            site=str(d["site"]),
            worker_id=d.get("worker_id"),
            case_id=d.get("case_id"),
            summary=str(d.get("summary")),
            raised_by=str(d.get("raised_by")),
            raised_at=d["raised_at"],
            status=str(d.get("status")),
            resolution=d.get("resolution"),
            resolved_by=d.get("resolved_by"),
        )
        for d in docs
    ]
    audit.note(request, case_ids=[c.case_id for c in found if c.case_id])
    return found


@router.post(
    "/concerns/{concern_id}/resolve",
    openapi_extra=text_body(),
    summary="Resolve a concern",
    description="Role: site_manager of the site, or regional_admin.",
    responses=WRITE,
)
async def resolve_concern(
    concern_id: Id,
    body: ResolveIn,
    principal: ResolvesConcerns,
    sessions: SessionsApp,
    ctx: Context,
) -> ConcernOut:
    concern = await sessions.resolve_concern(concern_id, body.resolution, principal, ctx)
    out = _concern_out(concern)
    out.resolution = body.resolution
    out.resolved_by = principal.sub
    return out
