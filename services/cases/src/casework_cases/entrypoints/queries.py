"""The cases service's read-side HTTP edge: caseloads, case timelines, the site register.

Thin: each route checks the caller's roles, asks `app.state.read_models`, and returns the
answer. Which cases a caller reaches is decided by the read models with the case access rule;
`AccessDenied` becomes 403 and `NotVisible` 404 at the platform's error mapping.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request

from casework import audit
from casework.auth import Principal, require_roles
from casework.http import PROBLEM_CONTENT_TYPE
from casework.requests import Context

from casework_cases.adapters.read_models import Caseload, ReadModels
from casework_cases.adapters.read_models.register import SiteRegister
from casework_cases.adapters.read_models.timeline import CaseTimeline
from casework_cases.entrypoints.http import BreakGlass, CasesApp, stated_reason

router = APIRouter()

ReadsCaseloads = Annotated[
    Principal,
    Depends(require_roles("caseworker", "supervisor", "site_manager", "regional_admin")),
]
ReadsTimelines = Annotated[
    Principal,
    Depends(
        require_roles("caseworker", "supervisor", "crisis_worker", "site_manager", "regional_admin")
    ),
]
ReadsRegisters = Annotated[Principal, Depends(require_roles("site_manager", "regional_admin"))]

WorkerId = Annotated[
    str, Path(min_length=1, max_length=128, description="The caseworker's staff id (token `sub`)")
]
CaseId = Annotated[str, Path(min_length=1, max_length=128, description="The case id")]
Site = Annotated[str, Path(min_length=1, max_length=64, description="Site code, e.g. `north`")]
Weeks = Annotated[
    int, Query(ge=1, le=104, description="How many ISO weeks, this one included, to cover")
]


def _read_models(request: Request) -> ReadModels:
    read_models: ReadModels = request.app.state.read_models
    return read_models


ReadModelsDep = Annotated[ReadModels, Depends(_read_models)]


def _ok(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}


def _problem(description: str) -> dict[str, Any]:
    # The shape `casework.http` documents its problem responses with.
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}}}


CASELOAD_EXAMPLE: Final[dict[str, Any]] = {
    "worker_id": "carl",
    "cases": [
        {
            "case_id": "0b6f5f0e-3c5e-4d53-9d4e-6a1f0c2b9e11",
            "site": "north",
            "client_id": "5d7c1a52-8a43-4d1e-b2b5-0f9f1c6a2d40",
            "client_name": "Alex Morgan",
            "referral_id": "c1f2d3e4-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            "phase": "active",
            "risk_level": "high",
            "crisis_open": True,
            "plan_status": "approved",
            "approved_plan_version": 2,
            "caseworker_id": "carl",
            "team": "t1",
            "transfer_requested_to": None,
            "opened_at": "2026-01-12T09:30:00Z",
            "first_assigned_at": "2026-01-12T14:05:00Z",
            "last_activity_at": "2026-02-20T16:45:12Z",
            "next_activity_due": "2026-03-01",
            "next_activity": "Goal: Attend two job-centre appointments",
            "closed_at": None,
            "outcome": None,
        }
    ],
    "next_after": None,
}

TIMELINE_EXAMPLE: Final[dict[str, Any]] = {
    "case_id": "0b6f5f0e-3c5e-4d53-9d4e-6a1f0c2b9e11",
    "referral_id": "c1f2d3e4-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
    "entries": [
        {
            "event_id": "9e0c4d1a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
            "time": "2026-01-12T08:10:00Z",
            "type": "casework.intake.ReferralReceived.v1",
            "event": "ReferralReceived",
            "stream": "referral-c1f2d3e4-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            "version": 1,
            "summary": "Referral received from gp (urgency soon) by ivy",
            "actor": "ivy",
            "detail": {
                "referral_id": "c1f2d3e4-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                "site": "north",
                "source": "gp",
                "urgency": "soon",
                "presenting_concerns": "Low mood for three months, stopped going to work.",
                "received_by": "ivy",
                "received_at": "2026-01-12T08:10:00Z",
            },
        },
        {
            "event_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "time": "2026-01-12T14:05:00Z",
            "type": "casework.cases.CaseworkerAssigned.v1",
            "event": "CaseworkerAssigned",
            "stream": "case-0b6f5f0e-3c5e-4d53-9d4e-6a1f0c2b9e11",
            "version": 2,
            "summary": "Caseworker carl assigned (team t1) by sam",
            "actor": "sam",
            "detail": {
                "case_id": "0b6f5f0e-3c5e-4d53-9d4e-6a1f0c2b9e11",
                "caseworker_id": "carl",
                "team": "t1",
                "assigned_by": "sam",
                "assigned_at": "2026-01-12T14:05:00Z",
            },
        },
    ],
}

REGISTER_EXAMPLE: Final[dict[str, Any]] = {
    "site": "north",
    "generated_at": "2026-02-23T10:00:00Z",
    "weeks": 2,
    "cases_by_phase": {"assessment": 12, "planning": 7, "active": 96, "review": 4, "closed": 310},
    "cases_by_risk": {"low": 41, "medium": 52, "high": 22, "imminent": 2, "unrated": 2},
    "open_crises": 1,
    "referrals_per_week": [
        {
            "week": "2026-W08",
            "starts_on": "2026-02-16",
            "received": 9,
            "accepted": 6,
            "declined": 2,
        },
        {
            "week": "2026-W09",
            "starts_on": "2026-02-23",
            "received": 2,
            "accepted": 1,
            "declined": 0,
        },
    ],
    "referral_to_acceptance": {"count": 7, "median_hours": 26.5, "p90_hours": 70.2},
    "referral_to_first_assignment": {"count": 6, "median_hours": 51.0, "p90_hours": 118.75},
}


@router.get(
    "/caseloads/{worker_id}",
    tags=["caseloads"],
    summary="A caseworker's caseload",
    description=(
        "The worker's open cases (every phase but closed) with phase, risk, crisis flag, plan "
        "status, last activity and next activity due; crises first, then by risk (imminent, "
        "high, medium, low, unrated), then by the next activity due.\n\n"
        "A caseworker reads their own caseload only. Supervisors, site managers and regional "
        "admins read anyone's, and see the cases they reach: a supervisor their team's, a site "
        "manager their sites'.\n\n"
        "Paged: at most `limit` cases; when more follow, `next_after` names the last one, "
        "to pass as `after` for the next page."
    ),
    responses={
        200: _ok("The caseload", CASELOAD_EXAMPLE),
        403: _problem("Another worker's caseload, asked for by a caseworker"),
    },
)
async def get_caseload(
    worker_id: WorkerId,
    principal: ReadsCaseloads,
    read_models: ReadModelsDep,
    cases: CasesApp,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many cases")] = 100,
    after: Annotated[
        str | None,
        Query(min_length=1, max_length=128, description="The previous page's `next_after`"),
    ] = None,
) -> Caseload:
    # Reach is decided on who holds each case now (its stream), not on the read model.
    caseload = await read_models.caseload(
        worker_id, principal, cases.current_scopes, limit=limit, after=after
    )
    audit.note(
        request,
        case_ids=[c.case_id for c in caseload.cases],
        client_ids=[c.client_id for c in caseload.cases if c.client_id],
    )
    audit.subjects_shown(audit.client_subject(c.client_id) for c in caseload.cases if c.client_id)
    return caseload


@router.get(
    "/cases/{case_id}/timeline",
    tags=["cases"],
    summary="A case's timeline",
    description=(
        "Every event of the case in order, from the referral on (intake's events included), "
        "each with a one-line summary, who did it, and the event's full detail (sensitive "
        "text included: this read is audited). Ordered by time, then by stream version.\n\n"
        "A crisis worker may read the timeline of a case outside their reach in an emergency "
        "with `X-Break-Glass: <reason>`, as for the case itself (a review for its "
        "supervisor; the audit record's purpose is `BTG`); any other role sending it: 403."
    ),
    responses={
        200: _ok("The timeline, oldest first", TIMELINE_EXAMPLE),
        403: _problem("`X-Break-Glass` from a role that may not break the glass"),
        404: _problem("No such case, or not one the caller may reach"),
    },
)
async def get_case_timeline(
    case_id: CaseId,
    principal: ReadsTimelines,
    read_models: ReadModelsDep,
    cases: CasesApp,
    request: Request,
    ctx: Context,
    break_glass: BreakGlass = None,
) -> CaseTimeline:
    granted = False
    if break_glass is not None:
        # as for the case read: the review is committed before anything is shown
        _, review = await cases.case_in_emergency(
            case_id, principal, stated_reason(break_glass), ctx
        )
        if review is not None:
            audit.break_glass(request, review_event_id=review)
            granted = True
    timeline = await read_models.case_timeline(
        case_id, principal, cases.current_scopes, reach_granted=granted
    )
    if timeline.referral_id:
        audit.note(request, referral_ids=[timeline.referral_id])
    audit.subjects_shown(
        audit.client_subject(client_id)
        for entry in timeline.entries
        if isinstance(client_id := entry.detail.get("client_id"), str)
    )
    return timeline


@router.get(
    "/sites/{site}/register",
    tags=["site register"],
    summary="A site's register",
    description=(
        "The site's cases by phase, open cases by risk level, open crises, referrals received, "
        "accepted and declined per ISO week (UTC) over the last `weeks` weeks, and the median "
        "and 90th-percentile hours from referral to acceptance and to first caseworker "
        "assignment within those weeks.\n\n"
        "Site managers read the sites they work at; regional admins any site."
    ),
    responses={
        200: _ok("The register", REGISTER_EXAMPLE),
        403: _problem("A site the manager does not work at"),
    },
)
async def get_site_register(
    site: Site, principal: ReadsRegisters, read_models: ReadModelsDep, weeks: Weeks = 12
) -> SiteRegister:
    return await read_models.site_register(site, principal, weeks)
