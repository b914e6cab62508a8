"""The cases service's HTTP edge: what every route shares, and reading a case.

Every route turns its request into one command and hands it to the application; the
application authorises (roles, then reach) and the aggregate decides. Reads return the case
with its version as body `version` and `ETag`; writes accept `If-Match` and return the same.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from casework import audit
from casework.auth import Principal, require_roles
from casework.http import Problem

from casework_cases.application.handlers import Cases
from casework_cases.domain.case import Case
from casework_cases.domain.permissions import READERS, roles_for
from casework_cases.entrypoints.views import CaseOut, case_view

__all__ = ["CaseId", "CaseOut", "Cases", "CasesApp", "ReadsCases", "may_issue", "router"]

router = APIRouter(prefix="/cases", tags=["cases"])

ReadsCases = Annotated[Principal, Depends(require_roles(*sorted(READERS)))]
CaseId = Annotated[str, Path(description="The case id, as returned when the referral was accepted")]


def may_issue(command: type) -> Any:
    """A dependency: the caller, if one of their roles may issue `command` (else 403)."""
    return Depends(require_roles(*roles_for(command)))


def _cases(request: Request) -> Cases:
    app: Cases = request.app.state.cases
    return app


CasesApp = Annotated[Cases, Depends(_cases)]


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: _problem("No such case, or not one you may reach"),
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **READ_RESPONSES,
    409: _problem(
        "The case refused the command (`code` says which rule; `detail` what to do), or "
        "another change won a race: reload and try again"
    ),
    412: _problem("`If-Match` names an older version: someone changed the case since"),
}


def answer(case: Case, response: Response) -> CaseOut:
    """The case as the answer to a request, with its version as `ETag`."""
    response.headers["ETag"] = f'"{case.version}"'
    return case_view(case)


@router.get(
    "/{case_id}",
    summary="Read a case",
    description=(
        "The case as it stands: phase, risk, crisis, plan, caseworker, team, site, pending "
        "transfer or closure. `version` (also the `ETag` header) is what a change sends back "
        "as `If-Match`. Roles: caseworker, supervisor, crisis_worker, site_manager, "
        "regional_admin — and only for cases within your reach (else 404)."
    ),
    responses=READ_RESPONSES,
)
async def get_case(
    case_id: CaseId, principal: ReadsCases, cases: CasesApp, response: Response, request: Request
) -> CaseOut:
    case = await cases.case(case_id, principal)
    audit.note(request, client_id=case.client_id, referral_id=case.referral_id)
    return answer(case, response)
