"""The data-protection routes: legal holds on a client's records, erasure of a client, and
the proof records of erasures, for the data-protection officer (`dpo`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status

from casework import audit
from casework.auth import Principal, require_roles
from casework.requests import Context

from casework_intake.application.data_protection import DataProtection
from casework_intake.application.ports import ErasureProof
from casework_intake.domain.commands import PlaceLegalHold, ReleaseLegalHold, RequestErasure
from casework_intake.domain.erasure import Erasure, ErasureRecord
from casework_intake.entrypoints.data_protection_schemas import (
    ERASURE_EXAMPLES,
    HOLD_EXAMPLES,
    ClientHoldsOut,
    ErasureIn,
    ErasureOut,
    HoldFoundOut,
    HoldIn,
    HoldOut,
)
from casework_intake.entrypoints.dependencies import problems

router = APIRouter(tags=["data protection"])

Officer = Annotated[Principal, Depends(require_roles("dpo"))]
"""Data-protection officers (organisation-wide)."""

HoldKeeper = Annotated[Principal, Depends(require_roles("dpo", "site_manager", "regional_admin"))]
"""Data-protection officers and regional administrators (any client), site managers (clients
registered at their sites)."""

ClientId = Annotated[
    str, Path(description="The client's id", max_length=64, examples=["5b1c0f3e-8d2a-4c55"])
]
HoldId = Annotated[str, Path(description="The hold's id", max_length=64)]
ErasureId = Annotated[str, Path(description="The erasure's id", max_length=64)]

NO_CLIENT = "No such client (or, for a site manager, not registered at a site you hold)"


def _app(request: Request) -> DataProtection:
    app: DataProtection = request.app.state.data_protection
    return app


App = Annotated[DataProtection, Depends(_app)]


def _from_record(record: ErasureRecord) -> ErasureOut:
    requested, decided = record.requested, record.decided
    destroyed, completed = record.destroyed, record.completed
    return ErasureOut(
        erasure_id=requested.erasure_id,
        client_id=requested.client_id,
        subject=requested.subject,
        record_class=requested.record_class,
        status=record.status,
        reason=requested.reason,
        requester=requested.requester,
        reference=requested.reference,
        rule=requested.rule,
        requested_by=requested.requested_by,
        requested_at=requested.requested_at,
        outcome=decided.outcome.value if decided else None,
        decided_by=decided.decided_by if decided else None,
        decided_at=decided.decided_at if decided else None,
        holds=[HoldFoundOut(**h.model_dump()) for h in decided.holds] if decided else [],
        key_ids=list(destroyed.key_ids) if destroyed else [],
        keys_destroyed_at=destroyed.destroyed_at if destroyed else None,
        index_entries_deleted=completed.index_entries_deleted if completed else None,
        completed_at=completed.completed_at if completed else None,
    )


def _from_proof(proof: ErasureProof) -> ErasureOut:
    return ErasureOut.model_validate(
        {**proof.__dict__, "holds": [HoldFoundOut.model_validate(h) for h in proof.holds]}
    )


def _holds(erasure: Erasure, open_cases: list[str]) -> ClientHoldsOut:
    return ClientHoldsOut(
        client_id=erasure.client_id,
        open_cases=open_cases,
        holds=[
            HoldOut(
                hold_id=h.hold_id,
                basis=h.basis,
                reference=h.reference,
                site=h.site,
                placed_by=h.placed_by,
                placed_at=h.placed_at,
            )
            for h in erasure.holds.values()
        ],
        erasures=list(erasure.erasures),
        erased=erasure.erased_by() is not None,
    )


@router.post(
    "/clients/{client_id}/erasure",
    status_code=status.HTTP_201_CREATED,
    summary="Erase a client",
    description=(
        "Asks for the client's personal data to be erased everywhere, and decides at once.\n\n"
        "The request is checked for legal holds: an open case of the client (including one "
        "accepted a moment ago and still opening), or a hold an agency placed "
        "(`POST /clients/{client_id}/holds`). If any stands, the erasure is **refused** and "
        "the holds found are named (`outcome: refused`, `holds`); it can be asked for again "
        "once they are gone. Otherwise it is **carried out**: the client's data keys are "
        "destroyed, so that everything sealed with them — in every service's events, topics, "
        "dead letters and read models — reads `[erased]`, and the client's duplicate-matching "
        "entries are deleted. The answer is the erasure's proof record (`status` "
        "`completed`, or how far it got: the rest is finished in the background).\n\n"
        "Only data-protection officers (`dpo`). The `Location` header names the proof record."
    ),
    responses=problems(
        r403="You are not a data-protection officer",
        r404="No such client",
        r409="The client is already erased, or an erasure of the client is being carried out",
    ),
)
async def request_erasure(
    client_id: ClientId,
    body: Annotated[ErasureIn, Body(openapi_examples=ERASURE_EXAMPLES)],
    principal: Officer,
    app: App,
    ctx: Context,
    response: Response,
    request: Request,
) -> ErasureOut:
    audit.note(request, client_id=client_id)
    cmd = RequestErasure(
        client_id=client_id,
        erasure_id=str(uuid.uuid4()),
        reason=body.reason,
        requester=body.requester,
        reference=body.reference,
        requested_by=principal.sub,
    )
    _, record = await app.request_erasure(cmd, ctx)
    response.headers["Location"] = f"/erasures/{cmd.erasure_id}"
    return _from_record(record)


@router.get(
    "/erasures/{erasure_id}",
    summary="The proof record of an erasure",
    description=(
        "Who asked (and on what ground), who decided and how, when, which data keys were "
        "destroyed and when the erasure completed — nothing about the person. A record "
        "appears a moment after the request (it is a read model fed by events)."
    ),
    responses=problems(r403="You are not a data-protection officer", r404="No such erasure"),
)
async def get_erasure(
    erasure_id: ErasureId, principal: Officer, app: App, request: Request
) -> ErasureOut:
    proof = await app.proof(erasure_id)
    audit.note(request, client_id=proof.client_id)
    return _from_proof(proof)


@router.get(
    "/erasures",
    summary="Proof records of erasures",
    description=(
        "Every erasure (and retention destruction), most recent first; `client_id` for one "
        "client's. Paged: at most `limit`; for the next page pass the last one's "
        "`erasure_id` as `after`."
    ),
    responses=problems(r403="You are not a data-protection officer"),
)
async def list_erasures(
    principal: Officer,
    app: App,
    request: Request,
    client_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> list[ErasureOut]:
    proofs = await app.proof_list(client_id, limit, after)
    audit.note(request, client_ids=sorted({p.client_id for p in proofs}))
    return [_from_proof(p) for p in proofs]


@router.get(
    "/clients/{client_id}/holds",
    summary="Legal holds on a client",
    description=(
        "What would refuse an erasure of the client now — the legal holds standing on the "
        "client's records and the client's open cases — and the client's erasures so far."
    ),
    responses=problems(r403="You may not manage legal holds", r404=NO_CLIENT),
)
async def client_holds(
    client_id: ClientId, principal: HoldKeeper, app: App, request: Request
) -> ClientHoldsOut:
    audit.note(request, client_id=client_id)
    erasure = await app.record(client_id, principal)
    return _holds(erasure, await app.open_cases(client_id))


@router.post(
    "/clients/{client_id}/holds",
    status_code=status.HTTP_201_CREATED,
    summary="Place a legal hold on a client's records",
    description=(
        "The agency must keep this client's records (a safeguarding enquiry, litigation, an "
        "investigation): while the hold stands, an erasure is refused naming it, and "
        "retention does not destroy anything. Data-protection officers, regional "
        "administrators, and site managers for clients registered at their sites."
    ),
    responses=problems(
        r403="You may not manage legal holds",
        r404=NO_CLIENT,
        r409="The client is already erased",
    ),
)
async def place_hold(
    client_id: ClientId,
    body: Annotated[HoldIn, Body(openapi_examples=HOLD_EXAMPLES)],
    principal: HoldKeeper,
    app: App,
    ctx: Context,
    request: Request,
) -> ClientHoldsOut:
    audit.note(request, client_id=client_id)
    erasure = await app.place_hold(
        PlaceLegalHold(
            client_id=client_id,
            hold_id=str(uuid.uuid4()),
            basis=body.basis,
            reference=body.reference,
            placed_by=principal.sub,
        ),
        principal,
        ctx,
    )
    return _holds(erasure, await app.open_cases(client_id))


@router.post(
    "/clients/{client_id}/holds/{hold_id}/release",
    summary="Release a legal hold",
    description="The hold no longer stands; releasing it again changes nothing.",
    responses=problems(r403="You may not manage legal holds", r404=NO_CLIENT + ", or hold"),
)
async def release_hold(
    client_id: ClientId,
    hold_id: HoldId,
    principal: HoldKeeper,
    app: App,
    ctx: Context,
    request: Request,
) -> ClientHoldsOut:
    audit.note(request, client_id=client_id)
    erasure = await app.release_hold(
        ReleaseLegalHold(client_id=client_id, hold_id=hold_id, released_by=principal.sub),
        principal,
        ctx,
    )
    return _holds(erasure, await app.open_cases(client_id))
