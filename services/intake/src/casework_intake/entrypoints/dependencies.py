"""What intake's routes take from a request besides its body: the caller, the application."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request

from casework.auth import Principal, require_roles
from casework.http import Problem

from casework_intake.application.handlers import Intake

INTAKE_ROLES = ("intake_worker", "site_manager", "regional_admin")

IntakeStaff = Annotated[Principal, Depends(require_roles(*INTAKE_ROLES))]
"""Intake workers and site managers (at their sites), regional administrators (anywhere)."""

ReferralId = Annotated[
    str,
    Path(
        description="The referral's id, as returned when it was taken",
        max_length=64,
        examples=["3f2c1a9e-6b0d-4d8e-9a51-0c7e2b4f9d11"],
    ),
]


def _intake(request: Request) -> Intake:
    app: Intake = request.app.state.intake
    return app


IntakeApp = Annotated[Intake, Depends(_intake)]


def problems(**described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, e.g. `problems(r404="...")`."""
    return {
        int(code.removeprefix("r")): {"model": Problem, "description": description}
        for code, description in described.items()
    }


NOT_FOUND = "No such referral, or it is at a site you do not work at"
STALE = "`If-Match` names a version other than the referral's current one: reload it"
