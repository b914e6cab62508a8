"""The webhook endpoints' edge: register one (its `whsec_` secret answered once), list them
(never a secret), rotate a secret, disable and enable.

Roles: `ops` and `regional_admin` read; `regional_admin` changes (as delivery health and
replay). Thin: the application (`WebhookEndpoints`) decides; every request is audited by
the shared audit middleware, a refused one (403, 404, 422) too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from casework.auth import Principal, require_roles
from casework.contracts.notifications import Trigger
from casework.http import Problem

from casework_notifications.adapters.webhooks import Endpoint
from casework_notifications.application.webhook_endpoints import Issued, WebhookEndpoints
from casework_notifications.domain.access import ENDPOINT_ADMINS, ENDPOINT_READERS
from casework_notifications.domain.webhook_endpoint import EndpointView

router = APIRouter(tags=["webhook endpoints"])

EndpointReader = Annotated[Principal, Depends(require_roles(*sorted(ENDPOINT_READERS)))]
EndpointAdmin = Annotated[Principal, Depends(require_roles(*sorted(ENDPOINT_ADMINS)))]
EndpointId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such endpoint"},
}
CHANGES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {
        "model": Problem,
        "description": "Configured by file (change it there), or changed meanwhile: re-read",
    },
}


def _endpoints(request: Request) -> WebhookEndpoints:
    endpoints: WebhookEndpoints = request.app.state.webhook_endpoints
    return endpoints


Endpoints = Annotated[WebhookEndpoints, Depends(_endpoints)]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2000,
        description=(
            "http(s), no credentials; must resolve to public addresses (or the service's "
            "allow-list): internal addresses are refused"
        ),
    )
    site: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Only this site's notifications; none: the whole agency's",
    )
    triggers: list[Trigger] = Field(
        default_factory=list, max_length=len(Trigger), description="Which triggers; none: all"
    )
    description: str | None = Field(default=None, max_length=200)


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_hours: float = Field(
        default=24,
        ge=0,
        le=72,
        description="How long the replaced secret still signs (beside the new one)",
    )


class DisableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200)


class ChangeOut(BaseModel):
    change: str
    by: str
    at: datetime
    reason: str | None


class DisabledByAnswersOut(BaseModel):
    reason: str = Field(description="`410 Gone`, or `failing for days`")
    at: datetime


class EndpointOut(BaseModel):
    """An endpoint as operators see it: never its secrets."""

    endpoint_id: str
    source: Literal["api", "file"]
    url: str
    site: str | None = Field(description="None: the whole agency")
    triggers: list[str] = Field(description="Empty: all")
    description: str | None
    disabled: bool = Field(description="Disabled by an operator")
    disabled_reason: str | None
    disabled_by_answers: DisabledByAnswersOut | None = Field(
        default=None,
        description=(
            "Disabled by the receiver's answers (410, or failing for days): nothing is sent "
            "until `/enable`"
        ),
    )
    rotating_until: datetime | None = Field(
        description="Until when deliveries carry two signatures (the new secret's first)"
    )
    registered_by: str | None
    registered_at: datetime | None
    history: list[ChangeOut] = Field(description="Every change, oldest first (api only)")


class IssuedOut(BaseModel):
    endpoint: EndpointOut
    secret: str = Field(description="`whsec_...`: shown this once, never again")


async def _seen(endpoints: WebhookEndpoints, out: EndpointOut) -> EndpointOut:
    """`out` with the delivery log's disable, if any: an operator sees one truth."""
    paused = await endpoints.disabled_by_answers(out.endpoint_id)
    if paused is None:
        return out
    return out.model_copy(
        update={
            "disabled_by_answers": DisabledByAnswersOut(
                reason=str(paused.get("reason", "")), at=paused["at"]
            )
        }
    )


def _out(found: EndpointView | Endpoint) -> EndpointOut:
    if isinstance(found, Endpoint):
        return EndpointOut(
            endpoint_id=found.endpoint_id,
            source="file",
            url=found.url,
            site=found.site,
            triggers=list(found.triggers),
            description=None,
            disabled=False,
            disabled_reason=None,
            rotating_until=None,
            registered_by=None,
            registered_at=None,
            history=[],
        )
    return EndpointOut(
        endpoint_id=found.endpoint_id,
        source="api",
        url=found.url,
        site=found.site,
        triggers=list(found.triggers),
        description=found.description,
        disabled=found.disabled,
        disabled_reason=found.disabled_reason,
        rotating_until=found.rotating_until,
        registered_by=found.registered_by,
        registered_at=found.registered_at,
        history=[
            ChangeOut(change=c.change, by=c.by, at=c.at, reason=c.reason) for c in found.history
        ],
    )


def _issued(issued: Issued) -> IssuedOut:
    return IssuedOut(endpoint=_out(issued.view), secret=issued.secret)


@router.post(
    "/webhooks",
    status_code=201,
    summary="Register a webhook endpoint",
    description=(
        "Signed deliveries (Standard Webhooks) of the agency's notifications, or of one "
        "site's, for the triggers named (none: all), added to the endpoints the "
        "configuration file names. The answer carries the endpoint's `whsec_` secret: the "
        "only time it is shown. Role: regional_admin."
    ),
    responses={422: {"model": Problem, "description": "A field refused, by name"}},
)
async def register_endpoint(
    body: RegisterIn, principal: EndpointAdmin, endpoints: Endpoints
) -> IssuedOut:
    triggers = [t.value for t in body.triggers]
    issued = await endpoints.register(body.url, body.site, triggers, body.description, principal)
    return _issued(issued)


@router.get(
    "/webhooks",
    summary="Every webhook endpoint",
    description=(
        "The configuration file's (`source` file) and those registered here (`source` api), "
        "with their state and history; never a secret. Roles: ops, regional_admin."
    ),
)
async def list_endpoints(principal: EndpointReader, endpoints: Endpoints) -> list[EndpointOut]:
    configured = [_out(e) for e in endpoints.configured.values()]
    every = [*configured, *(_out(v) for v in await endpoints.registered())]
    return list(await asyncio.gather(*(_seen(endpoints, out) for out in every)))


@router.get(
    "/webhooks/{endpoint_id}",
    summary="One webhook endpoint (never its secret)",
    description="Roles: ops, regional_admin.",
    responses=NOT_FOUND,
)
async def get_endpoint(
    endpoint_id: EndpointId, principal: EndpointReader, endpoints: Endpoints
) -> EndpointOut:
    return await _seen(endpoints, _out(await endpoints.view(endpoint_id)))


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    summary="Rotate an endpoint's secret",
    description=(
        "Issues a new `whsec_` secret (answered this once). For `grace_hours` the replaced "
        "secret still signs: every delivery carries both signatures, the new one first, so "
        "the receiver can switch at its pace. Role: regional_admin."
    ),
    responses={**CHANGES, 422: {"model": Problem, "description": "A field refused, by name"}},
)
async def rotate_secret(
    endpoint_id: EndpointId,
    principal: EndpointAdmin,
    endpoints: Endpoints,
    body: RotateIn | None = None,
) -> IssuedOut:
    grace = timedelta(hours=(body or RotateIn()).grace_hours)
    return _issued(await endpoints.rotate(endpoint_id, grace, principal))


@router.post(
    "/webhooks/{endpoint_id}/disable",
    summary="Disable a webhook endpoint",
    description=(
        "Nothing more is delivered to it, deliveries already scheduled included (they are "
        "recorded as skipped), until it is enabled again. Role: regional_admin."
    ),
    responses={**CHANGES, 422: {"model": Problem, "description": "A field refused, by name"}},
)
async def disable_endpoint(
    endpoint_id: EndpointId, body: DisableIn, principal: EndpointAdmin, endpoints: Endpoints
) -> EndpointOut:
    return _out(await endpoints.disable(endpoint_id, body.reason, principal))


@router.post(
    "/webhooks/{endpoint_id}/enable",
    summary="Enable a disabled webhook endpoint again",
    description=(
        "After an operator disabled it, or its receiver disabled it (it answered 410, or "
        "failed for days) and is fixed. Deliveries that were skipped or gave up meanwhile "
        "are not resent by this: replay them. Role: regional_admin."
    ),
    responses=CHANGES,
)
async def enable_endpoint(
    endpoint_id: EndpointId, principal: EndpointAdmin, endpoints: Endpoints
) -> dict[str, bool]:
    return {"was_disabled": await endpoints.enable(endpoint_id, principal)}
