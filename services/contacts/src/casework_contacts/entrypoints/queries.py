"""The contacts service's read edge: agendas, a case's contact history and compliance, and
the contact policy in force. Thin: roles here, reach in the queries; every read is audited
(the shared `AuditMiddleware`) with the cases and clients it showed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from casework import audit
from casework.auth import Principal, require_roles
from casework.http import Problem

from casework_contacts.adapters.queries import (
    Agenda,
    Compliance,
    ContactHistoryOut,
    ContactQueries,
    SiteContactStatistics,
    months_between,
)
from casework_contacts.domain.access import AGENDA_READERS, READERS, TEAM_AGENDA_READERS
from casework_contacts.domain.policy import PolicyTable

router = APIRouter(tags=["agendas and history"])

Reads = Annotated[Principal, Depends(require_roles(*sorted(READERS)))]
ReadsAgendas = Annotated[Principal, Depends(require_roles(*sorted(AGENDA_READERS)))]
ReadsTeamAgendas = Annotated[Principal, Depends(require_roles(*sorted(TEAM_AGENDA_READERS)))]
CaseId = Annotated[str, Path(min_length=1, max_length=128, description="The case id")]
WorkerId = Annotated[str, Path(min_length=1, max_length=128, description="A staff id (`sub`)")]
Site = Annotated[str, Path(min_length=1, max_length=64, description="Site code")]
Team = Annotated[str, Path(min_length=1, max_length=64, description="Team code at the site")]


def _queries(request: Request) -> ContactQueries:
    queries: ContactQueries = request.app.state.contact_queries
    return queries


Queries = Annotated[ContactQueries, Depends(_queries)]

RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "Not an agenda you may read"},
    404: {"model": Problem, "description": "No such case, or not one you may reach"},
}


def _note(request: Request, agenda: Agenda) -> None:
    items = [*agenda.overdue, *agenda.today, *agenda.upcoming]
    audit.note(
        request,
        case_ids=[i.case_id for i in items],
        client_ids=[i.client_id for i in items if i.client_id],
    )


@router.get(
    "/agenda/workers/{worker_id}",
    summary="A worker's agenda: overdue, today, the next 7 days",
    description=(
        "Open contact obligations of the worker's cases and the contacts scheduled for the "
        "worker, ordered by risk then lateness. Your own (caseworker, crisis_worker), or "
        "anyone's for supervisor, site_manager, regional_admin (cases within your reach)."
    ),
    responses=RESPONSES,
)
async def worker_agenda(
    worker_id: WorkerId, principal: ReadsAgendas, queries: Queries, request: Request
) -> Agenda:
    agenda = await queries.worker_agenda(worker_id, principal)
    _note(request, agenda)
    return agenda


@router.get(
    "/agenda/sites/{site}/teams/{team}",
    summary="A team's agenda at a site",
    description=(
        "As a worker's agenda, for every case of the team. Roles: supervisor (of that team, "
        "at that site), site_manager (of the site), regional_admin."
    ),
    responses=RESPONSES,
)
async def team_agenda(
    site: Site, team: Team, principal: ReadsTeamAgendas, queries: Queries, request: Request
) -> Agenda:
    agenda = await queries.team_agenda(site, team, principal)
    _note(request, agenda)
    return agenda


@router.get(
    "/agenda/sites/{site}",
    summary="A site's agenda: open obligations overdue, today, the next 7 days",
    description=(
        "The site's open contact obligations, ordered by risk then lateness, with each case's "
        "worker and team. Roles: site_manager (of the site), supervisor (at the site: the "
        "cases of your team and the unassigned ones), regional_admin."
    ),
    responses=RESPONSES,
)
async def site_agenda(
    site: Site, principal: ReadsTeamAgendas, queries: Queries, request: Request
) -> Agenda:
    agenda = await queries.site_agenda(site, principal)
    _note(request, agenda)
    return agenda


@router.get(
    "/cases/{case_id}/contacts",
    summary="A case's contact history: attempts and made contacts",
    description=(
        "Every contact of the case, newest first, with notes and observations; counts of "
        "made and attempted contacts (struck-through records excluded), scheduled, missed and "
        "cancelled. Roles: caseworker, supervisor, crisis_worker, site_manager, regional_admin."
    ),
    responses=RESPONSES,
)
async def case_contact_history(
    case_id: CaseId, principal: Reads, queries: Queries
) -> ContactHistoryOut:
    return await queries.case_history(case_id, principal)  # the path names the case audited


@router.get(
    "/cases/{case_id}/contact-compliance",
    summary="A case's compliance with the contact policy",
    description=(
        "Per rule in force: made contacts counted in the current window against those "
        "required, the open obligation and whether it is overdue; per rule, how its "
        "obligations ended. Roles: as for the history."
    ),
    responses=RESPONSES,
)
async def case_compliance(case_id: CaseId, principal: Reads, queries: Queries) -> Compliance:
    return await queries.case_compliance(case_id, principal)


@router.get(
    "/contact-policy",
    summary="The contact policy in force (the agency table and site overrides)",
    description="The versioned rule table. Roles: any staff role that works with cases.",
)
async def contact_policy(
    principal: Reads,
    queries: Queries,
    site: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Only this site's")
    ] = None,
) -> PolicyTable:
    table = queries.policy.table
    if site is None:
        return table
    return table.model_copy(update={"sites": {k: v for k, v in table.sites.items() if k == site}})


ReadsStatistics = Annotated[Principal, Depends(require_roles("site_manager", "regional_admin"))]
Month = Annotated[str | None, Query(pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$")]
MAX_MONTHS = 36


@router.get(
    "/sites/{site}/contact-statistics",
    summary="A site's contact statistics over a period of months",
    description=(
        "Contacts per case per month by medium and outcome; the share of obligations met on "
        "time by risk level; median hours from a case's opening to its first contact and "
        "from a crisis resolved or a discharge from inpatient care to the follow-up "
        "(medians from histograms: within ~2% of the exact value). `from` and `to` are "
        "`YYYY-MM` (UTC; default: the last three months, this one included; at most 36 "
        "months). Roles: site_manager (of the site), regional_admin."
    ),
    responses={
        **RESPONSES,
        422: {"model": Problem, "description": "`from` after `to`, or more than 36 months"},
    },
)
async def site_contact_statistics(
    site: Site,
    principal: ReadsStatistics,
    queries: Queries,
    first: Annotated[Month, Query(alias="from", description="First month, `YYYY-MM`")] = None,
    last: Annotated[Month, Query(alias="to", description="Last month, `YYYY-MM`")] = None,
) -> SiteContactStatistics:
    now = queries.clock.now()
    last = last or now.strftime("%Y-%m")
    if first is None:
        year, month = int(last[:4]), int(last[5:]) - 2
        if month < 1:
            year, month = year - 1, month + 12
        first = f"{year:04d}-{month:02d}"
    if first > last or len(months_between(first, last)) > MAX_MONTHS:
        raise HTTPException(
            status_code=422,
            detail=f"from must not be after to, and span at most {MAX_MONTHS} months",
        )
    return await queries.site_statistics(site, principal, first, last)
