"""The cases service's HTTP edge: what every route shares, and reading a case.

Every route turns its request into one command and hands it to the application; the
application authorises (roles, then reach) and the aggregate decides. Reads return the case
with its version as body `version` and `ETag`; writes accept `If-Match` and return the same.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError

from casework import audit
from casework.auth import Principal, require_roles
from casework.http import Problem
from casework.requests import Context

from casework_cases.application.handlers import Cases
from casework_cases.domain.case import Case
from casework_cases.domain.permissions import READERS, roles_for
from casework_cases.entrypoints.views import CaseOut, case_view

__all__ = [
    "BreakGlass",
    "CaseId",
    "CaseOut",
    "Cases",
    "CasesApp",
    "ReadsCases",
    "may_issue",
    "router",
    "stated_reason",
]

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


BREAK_GLASS_HEADER = "X-Break-Glass"
BREAK_GLASS_MAX = 500

BreakGlass = Annotated[
    str | None,
    Header(
        alias=BREAK_GLASS_HEADER,
        min_length=1,
        max_length=BREAK_GLASS_MAX,
        description=(
            "Break the glass (crisis workers only): open a case outside your reach in an "
            "emergency. The value is the reason (required, at most 500 characters). Allowed, "
            "recorded as `BreakGlassUsed` on the case (a review for its supervisor) and "
            "audited with the purpose of use `BTG`."
        ),
    ),
]


def stated_reason(value: str) -> str:
    """The break-glass reason, or 422 naming the header when it says nothing."""
    reason = value.strip()
    if not reason:
        raise RequestValidationError(
            [
                {
                    "loc": ("header", BREAK_GLASS_HEADER),
                    "type": "missing_reason",
                    "msg": "break-glass access needs a reason: say why this is an emergency",
                }
            ]
        )
    return reason


@router.get(
    "/{case_id}",
    summary="Read a case",
    description=(
        "The case as it stands: phase, risk, crisis, plan, caseworker, team, site, pending "
        "transfer or closure. `version` (also the `ETag` header) is what a change sends back "
        "as `If-Match`. Roles: caseworker, supervisor, crisis_worker, site_manager, "
        "regional_admin — and only for cases within your reach (else 404).\n\n"
        "In an emergency a crisis worker may open a case outside their reach with "
        "`X-Break-Glass: <reason>`: the case is shown, `BreakGlassUsed` raises a review for "
        "its supervisor, and the audit record carries the purpose `BTG`. Another role "
        "sending the header gets 403; an empty reason 422."
    ),
    responses={
        **READ_RESPONSES,
        403: _problem("`X-Break-Glass` from a role that may not break the glass"),
    },
)
async def get_case(
    case_id: CaseId,
    principal: ReadsCases,
    cases: CasesApp,
    response: Response,
    request: Request,
    ctx: Context,
    break_glass: BreakGlass = None,
) -> CaseOut:
    if break_glass is None:
        case = await cases.case(case_id, principal)
    else:
        case, review = await cases.case_in_emergency(
            case_id, principal, stated_reason(break_glass), ctx
        )
        if review is not None:
            audit.break_glass(request, review_event_id=review)
    audit.note(request, client_id=case.client_id, referral_id=case.referral_id)
    if case.client_id:
        audit.subjects_shown([audit.client_subject(case.client_id)])
    return answer(case, response)
