"""The contacts service's command edge: schedule, log, miss, cancel, correct, and a lone
worker's check-in and check-out; and reading one contact.

Every route turns its request into one command and hands it to the application, which
authorises (roles, then reach through the local projection of the case) and lets the
aggregate decide. Answers name the contact's state, never its notes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from casework import audit
from casework.auth import Principal, require_roles
from casework.contracts.contacts import Participant
from casework.http import Problem, text_body
from casework.requests import Context

from casework_contacts.adapters.queries import VisitAddress
from casework_contacts.application.handlers import Contacts
from casework_contacts.domain.access import CONTACT_WORKERS, READERS
from casework_contacts.domain.commands import (
    CancelContact,
    CheckIn,
    CheckOut,
    CorrectContact,
    LogContact,
    MarkMissed,
    ScheduleContact,
)
from casework_contacts.domain.contact import Contact
from casework_contacts.entrypoints.schemas import (
    CancelIn,
    CheckInIn,
    CorrectionIn,
    LogIn,
    MissedIn,
    ParticipantIn,
    ScheduleIn,
)

router = APIRouter(tags=["contacts"])

Reads = Annotated[Principal, Depends(require_roles(*sorted(READERS)))]
Works = Annotated[Principal, Depends(require_roles(*sorted(CONTACT_WORKERS)))]
CaseId = Annotated[str, Path(min_length=1, max_length=128, description="The case id")]
ContactId = Annotated[str, Path(min_length=1, max_length=128, description="The contact id")]


def _contacts(request: Request) -> Contacts:
    app: Contacts = request.app.state.contacts
    return app


ContactsApp = Annotated[Contacts, Depends(_contacts)]


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: _problem("No such contact or case, or not one you may reach"),
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **READ_RESPONSES,
    409: _problem(
        "The contact refused the command (`code` says which rule; `detail` what to do), or "
        "another change won a race: reload and try again"
    ),
}


class LoneWorkerOut(BaseModel):
    worker_id: str
    checked_in_at: datetime
    due_back_at: datetime
    checked_out_at: datetime | None = None
    overdue_raised: bool = False


class ContactOut(BaseModel):
    """A contact's state (its notes and observations are in the case's contact history)."""

    contact_id: str
    case_id: str | None
    status: str | None = Field(description="scheduled, logged, missed or cancelled")
    medium: str | None
    outcome: str | None = None
    occurred_at: datetime | None = None
    planned_for: datetime | None = None
    assigned_to: str | None = None
    struck_through: bool = False
    correction_ids: list[str] = Field(default_factory=list)
    lone_worker: LoneWorkerOut | None = None
    address: VisitAddress | None = Field(
        default=None,
        description="Home visits, when read: the client's address (none when intake has none)",
    )
    version: int


def view(contact: Contact) -> ContactOut:
    visit = contact.visit
    return ContactOut(
        contact_id=contact.id,
        case_id=contact.case_id,
        status=contact.status.value if contact.status else None,
        medium=contact.medium.value if contact.medium else None,
        outcome=contact.outcome.value if contact.outcome else None,
        occurred_at=contact.occurred_at,
        planned_for=contact.planned_for,
        assigned_to=contact.assigned_to,
        struck_through=contact.struck_through,
        correction_ids=list(contact.correction_ids),
        lone_worker=LoneWorkerOut(**vars(visit)) if visit else None,
        version=contact.version,
    )


def _participants(items: list[ParticipantIn]) -> tuple[Participant, ...]:
    return tuple(Participant(kind=p.kind, person_id=p.person_id, role=p.role) for p in items)


def _answer(request: Request, contact: Contact) -> ContactOut:
    audit.note(request, case_id=contact.case_id, client_id=contact.client_id)
    return view(contact)


@router.post(
    "/cases/{case_id}/contacts",
    status_code=201,
    openapi_extra=text_body(),
    summary="Schedule a contact",
    description=(
        "Plans a contact with the client (or a family member, carer, professional): medium, "
        "planned time or due window, who makes it (default: you), purpose; a follow-up names "
        "the contact that asked for it (`follow_up_of`). 409 "
        "`CaseClosedForContacts` on a closed case. Roles: caseworker, supervisor, "
        "crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def schedule_contact(
    case_id: CaseId,
    body: ScheduleIn,
    principal: Works,
    contacts: ContactsApp,
    ctx: Context,
    request: Request,
) -> ContactOut:
    case = await contacts.case_ref(case_id, principal, for_writing=True)
    cmd = ScheduleContact(
        contact_id=body.contact_id or str(uuid.uuid4()),
        case=case,
        medium=body.medium,
        participants=_participants(body.participants),
        planned_for=body.planned_for,
        window_ends_at=body.window_ends_at,
        assigned_to=body.assigned_to or principal.sub,
        purpose=body.purpose,
        expected_duration_minutes=body.expected_duration_minutes,
        follow_up_of=body.follow_up_of,
        scheduled_by=principal.sub,
    )
    return _answer(request, await contacts.execute(cmd, principal, ctx))


def _log(contact_id: str, case: Any, body: LogIn, principal: Principal) -> LogContact:
    return LogContact(
        contact_id=contact_id,
        case=case,
        medium=body.medium,
        occurred_at=body.occurred_at,
        participants=_participants(body.participants),
        outcome=body.outcome,
        attempt_reason=body.attempt_reason,
        duration_minutes=body.duration_minutes,
        travel_minutes=body.travel_minutes,
        notes=body.notes,
        wellbeing=body.wellbeing,
        safety_plan_reviewed=body.safety_plan_reviewed,
        follow_up_needed=body.follow_up_needed,
        logged_by=principal.sub,
    )


@router.post(
    "/cases/{case_id}/contacts/log",
    status_code=201,
    openapi_extra=text_body(),
    summary="Log an unscheduled contact",
    description=(
        "Records a contact that happened (`made`) or was tried (`attempted`, with the "
        "`attempt_reason`) without being scheduled. `occurred_at` is never in the future "
        "(422). It counts towards the case's contact obligations at once, if its medium "
        "counts as made at the case's risk. Roles: caseworker, supervisor, crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def log_unscheduled_contact(
    case_id: CaseId,
    body: LogIn,
    principal: Works,
    contacts: ContactsApp,
    ctx: Context,
    request: Request,
) -> ContactOut:
    case = await contacts.case_ref(case_id, principal, for_writing=True)
    cmd = _log(body.contact_id or str(uuid.uuid4()), case, body, principal)
    return _answer(request, await contacts.execute(cmd, principal, ctx))


@router.post(
    "/contacts/{contact_id}/log",
    openapi_extra=text_body(),
    summary="Log a scheduled contact (completes it)",
    description=(
        "As logging an unscheduled contact, against a scheduled one: it is completed. 409 "
        "`ContactNotScheduled` when it was logged, missed or cancelled already. Roles: "
        "caseworker, supervisor, crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def log_scheduled_contact(
    contact_id: ContactId,
    body: LogIn,
    principal: Works,
    contacts: ContactsApp,
    ctx: Context,
    request: Request,
) -> ContactOut:
    existing = await contacts.contact(contact_id, principal)
    if existing.case_id is None:  # pragma: no cover - a found contact has its case
        raise LookupError(contact_id)
    case = await contacts.case_ref(existing.case_id, principal, for_writing=False)
    return _answer(
        request, await contacts.execute(_log(contact_id, case, body, principal), principal, ctx)
    )


@router.post(
    "/contacts/{contact_id}/missed",
    summary="Record a missed contact (no-show)",
    description=(
        "A scheduled contact did not happen: the client did not come or answer, or the worker "
        "could not go. Roles: caseworker, supervisor, crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def record_missed_contact(
    contact_id: ContactId,
    body: MissedIn,
    principal: Works,
    contacts: ContactsApp,
    ctx: Context,
    request: Request,
) -> ContactOut:
    cmd = MarkMissed(contact_id, body.reason, principal.sub, body.missed_at)
    return _answer(request, await contacts.execute(cmd, principal, ctx))


@router.post(
    "/contacts/{contact_id}/cancel",
    summary="Cancel a scheduled contact",
    description="With the reason. Roles: caseworker, supervisor, crisis_worker.",
    responses=WRITE_RESPONSES,
)
async def cancel_contact(
    contact_id: ContactId,
    body: CancelIn,
    principal: Works,
    contacts: ContactsApp,
    ctx: Context,
    request: Request,
) -> ContactOut:
    cmd = CancelContact(contact_id, body.reason, principal.sub)
    return _answer(request, await contacts.execute(cmd, principal, ctx))


@router.post(
    "/contacts/{contact_id}/corrections",
    openapi_extra=text_body(),
    summary="Correct a logged contact: an addendum, or strike it through",
    description=(
        "Nothing is edited away: an addendum adds to the record; `struck_through` marks it as "
        "logged in error (it stays visible, and no longer counts in the history's totals). "
        "Roles: caseworker, supervisor, crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def correct_contact(
    contact_id: ContactId,
    body: CorrectionIn,
    principal: Works,
    contacts: ContactsApp,
    ctx: Context,
    request: Request,
) -> ContactOut:
    cmd = CorrectContact(
        contact_id,
        body.correction_id or str(uuid.uuid4()),
        body.kind,
        body.text,
        principal.sub,
    )
    return _answer(request, await contacts.execute(cmd, principal, ctx))


@router.post(
    "/contacts/{contact_id}/check-in",
    summary="Lone worker: check in at a home visit",
    description=(
        "You arrived at a scheduled home visit. If you have not checked out by the expected "
        "duration plus the service's grace, `LoneWorkerOverdue` is raised for someone to call "
        "you. Roles: caseworker, supervisor, crisis_worker."
    ),
    responses=WRITE_RESPONSES,
)
async def check_in(
    contact_id: ContactId,
    body: CheckInIn,
    principal: Works,
    contacts: ContactsApp,
    ctx: Context,
    request: Request,
) -> ContactOut:
    cmd = CheckIn(
        contact_id, principal.sub, body.expected_duration_minutes, contacts.lone_worker_grace
    )
    return _answer(request, await contacts.execute(cmd, principal, ctx))


@router.post(
    "/contacts/{contact_id}/check-out",
    summary="Lone worker: check out of a home visit",
    description="You left safely. Roles: caseworker, supervisor, crisis_worker.",
    responses=WRITE_RESPONSES,
)
async def check_out(
    contact_id: ContactId,
    principal: Works,
    contacts: ContactsApp,
    ctx: Context,
    request: Request,
) -> ContactOut:
    cmd = CheckOut(contact_id, principal.sub)
    return _answer(request, await contacts.execute(cmd, principal, ctx))


@router.get(
    "/contacts/{contact_id}",
    summary="Read a contact's state",
    description=(
        "Status, medium, outcome, times, lone-worker check-in; for a home visit, the "
        "client's address (from intake's referral; `[erased]` once the client is erased). "
        "Roles: caseworker, supervisor, crisis_worker, site_manager, regional_admin — for "
        "cases within your reach (else 404)."
    ),
    responses=READ_RESPONSES,
)
async def get_contact(
    contact_id: ContactId, principal: Reads, contacts: ContactsApp, request: Request
) -> ContactOut:
    contact = await contacts.contact(contact_id, principal)
    answer = _answer(request, contact)
    address = await contacts.visit_address(contact)  # a token: the edge opens it
    if address is not None:
        answer.address = VisitAddress.of(address)
    return answer
