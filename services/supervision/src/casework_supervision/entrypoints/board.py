"""The supervisor board and the site manager view (read edge; audited with the cases shown)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from casework import audit
from casework.access import AccessDenied
from casework.auth import Principal, require_roles
from casework.http import Problem

from casework_supervision.adapters.board import BoardQueries, SiteSupervisionView, SupervisorBoard
from casework_supervision.domain.session_access import SITE_VIEW, SUPERVISORS

router = APIRouter(tags=["supervision boards"])

Supervises = Annotated[Principal, Depends(require_roles(*sorted(SUPERVISORS)))]
ManagesSites = Annotated[Principal, Depends(require_roles(*sorted(SITE_VIEW)))]
Site = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


def _queries(request: Request) -> BoardQueries:
    queries: BoardQueries = request.app.state.board
    return queries


Queries = Annotated[BoardQueries, Depends(_queries)]


@router.get(
    "/board",
    summary="Your supervisor board",
    description=(
        "Per worker you supervise now (per the directory, delegations included): caseload by "
        "risk, crises, overdue contacts and missed 72-hour follow-ups, reviews due and "
        "overdue, approvals waiting, action items open and overdue, last and next "
        "supervision; and the team's totals. Role: supervisor."
    ),
    responses={403: {"model": Problem, "description": "Not a supervisor"}},
)
async def supervisor_board(
    principal: Supervises, queries: Queries, request: Request
) -> SupervisorBoard:
    board = await queries.board(principal.sub)
    audit.note(request, case_ids=[c for w in board.workers for c in w.case_ids])
    return board


@router.get(
    "/sites/{site}/supervision",
    summary="Supervision at a site: coverage and escalations",
    description=(
        "Share of the site's open cases reviewed within cadence, by risk; share of its "
        "supervised workers supervised within cadence; concerns escalated and open. Role: "
        "site_manager of the site, or regional_admin."
    ),
    responses={403: {"model": Problem, "description": "Not a manager of this site"}},
)
async def site_supervision(
    site: Site, principal: ManagesSites, queries: Queries, request: Request
) -> SiteSupervisionView:
    if "regional_admin" not in principal.roles and site not in principal.sites:
        raise AccessDenied("a site manager of the site reads its supervision view")
    view = await queries.site_view(site)
    audit.note(request, case_ids=[c.case_id for c in view.escalations_open if c.case_id])
    return view
