"""The supervision service's HTTP edge."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from casework.auth import Principal, require_roles
from casework.requests import Context

from casework_supervision.application.handlers import Supervision
from casework_supervision.domain.commands import RegisterSite

router = APIRouter(prefix="/sites", tags=["organisation directory"])

Administers = Annotated[Principal, Depends(require_roles("regional_admin"))]
Staff = Annotated[
    Principal,
    Depends(
        require_roles(
            "intake_worker",
            "caseworker",
            "supervisor",
            "crisis_worker",
            "site_manager",
            "regional_admin",
        )
    ),
]


def _supervision(request: Request) -> Supervision:
    app: Supervision = request.app.state.supervision
    return app


SupervisionApp = Annotated[Supervision, Depends(_supervision)]


class SiteIn(BaseModel):
    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={"examples": [{"site": "north", "name": "North Community Hub"}]},
    )

    site: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Site code: lower-case letters, digits, `-` and `_`",
    )
    name: str = Field(min_length=1, max_length=200)
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA timezone (e.g. `Europe/London`)"
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None and value not in available_timezones():
            raise ValueError("not an IANA timezone name (e.g. Europe/London)")
        return value


class SiteOut(BaseModel):
    site: str
    name: str


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register a site")
async def register_site(
    body: SiteIn,
    principal: Administers,
    supervision: SupervisionApp,
    ctx: Context,
    response: Response,
) -> SiteOut:
    site = await supervision.register_site(
        RegisterSite(site=body.site, name=body.name, timezone=body.timezone), ctx
    )
    response.headers["Location"] = f"/sites/{site.id}"
    return SiteOut(site=site.id, name=body.name)


@router.get("", summary="List the sites of the organisation directory")
async def list_sites(principal: Staff, supervision: SupervisionApp) -> list[SiteOut]:
    return [SiteOut(site=d["_id"], name=d["name"]) for d in await supervision.directory.all()]
