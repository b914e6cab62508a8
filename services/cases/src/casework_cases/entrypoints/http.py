"""The cases service's HTTP edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel

from casework.auth import Principal, require_roles
from casework.contracts.common import RiskLevel

from casework_cases.application.handlers import Cases
from casework_cases.domain.case import Case

router = APIRouter(prefix="/cases", tags=["cases"])

ReadsCases = Annotated[
    Principal,
    Depends(
        require_roles("caseworker", "supervisor", "crisis_worker", "site_manager", "regional_admin")
    ),
]
CaseId = Annotated[str, Path(description="The case id, as returned when the referral was accepted")]


def _cases(request: Request) -> Cases:
    app: Cases = request.app.state.cases
    return app


CasesApp = Annotated[Cases, Depends(_cases)]


class CaseOut(BaseModel):
    case_id: str
    client_id: str | None
    referral_id: str | None
    site: str | None
    phase: str | None
    risk_level: RiskLevel | None
    opened_at: datetime | None
    version: int


def _view(case: Case) -> CaseOut:
    return CaseOut(
        case_id=case.id,
        client_id=case.client_id,
        referral_id=case.referral_id,
        site=case.site,
        phase=case.phase.value if case.phase else None,
        risk_level=case.risk_level,
        opened_at=case.opened_at,
        version=case.version,
    )


@router.get("/{case_id}", summary="Read a case")
async def get_case(
    case_id: CaseId, principal: ReadsCases, cases: CasesApp, response: Response
) -> CaseOut:
    case = await cases.case(case_id, principal)
    response.headers["ETag"] = f'"{case.version}"'
    return _view(case)
