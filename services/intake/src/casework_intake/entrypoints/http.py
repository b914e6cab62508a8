"""Intake's HTTP edge: turn requests into commands, dispatch, shape the answer."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from casework.auth import Principal, require_roles
from casework.contracts.common import ReferralSource, Urgency
from casework.contracts.intake import ClientDetails
from casework.requests import Context

from casework_intake.application.handlers import Intake
from casework_intake.domain.commands import AcceptReferral, ReceiveReferral
from casework_intake.domain.referral import Referral

router = APIRouter(prefix="/referrals", tags=["referrals"])

TakesReferrals = Annotated[
    Principal, Depends(require_roles("intake_worker", "site_manager", "regional_admin"))
]
DecidesReferrals = Annotated[
    Principal, Depends(require_roles("intake_worker", "site_manager", "regional_admin"))
]
ReferralId = Annotated[str, Path(description="The referral's id, as returned when it was taken")]


def _intake(request: Request) -> Intake:
    app: Intake = request.app.state.intake
    return app


IntakeApp = Annotated[Intake, Depends(_intake)]


class ClientIn(BaseModel):
    """The person the referral is about."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    given_name: str = Field(min_length=1, max_length=100, examples=["Alex"])
    family_name: str = Field(min_length=1, max_length=100, examples=["Morgan"])
    date_of_birth: date = Field(examples=["1990-04-12"])
    phone: str | None = Field(
        default=None, pattern=r"^\+?[0-9][0-9 ()-]{5,19}$", examples=["+44 7700 900123"]
    )
    email: str | None = Field(
        default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", examples=["alex@example.org"]
    )
    address: str | None = Field(default=None, max_length=500)

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_birth_date(cls, value: date) -> date:
        if value > date.today():
            raise ValueError("date of birth is in the future")
        if value.year < 1900:
            raise ValueError("date of birth is before 1900")
        return value


class ReferralIn(BaseModel):
    """A new referral."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "site": "north",
                    "client": {
                        "given_name": "Alex",
                        "family_name": "Morgan",
                        "date_of_birth": "1990-04-12",
                        "phone": "+44 7700 900123",
                    },
                    "source": "gp",
                    "referrer_name": "Dr Patel",
                    "presenting_concerns": "Low mood for three months, stopped going to work.",
                    "urgency": "soon",
                    "consent_to_share": True,
                }
            ]
        },
    )

    site: str = Field(min_length=1, max_length=64, description="Site code, e.g. `north`")
    client: ClientIn
    source: ReferralSource
    referrer_name: str | None = Field(default=None, max_length=200)
    presenting_concerns: str = Field(min_length=1, max_length=10_000)
    urgency: Urgency
    consent_to_share: bool = False


class ReferralOut(BaseModel):
    referral_id: str
    status: str
    site: str | None
    urgency: Urgency | None = None
    received_at: datetime | None = None
    case_id: str | None = None
    client_id: str | None = None
    version: int


class Accepted(BaseModel):
    referral_id: str
    case_id: str
    client_id: str
    version: int


def _view(referral: Referral) -> ReferralOut:
    received, accepted = referral.received, referral.accepted
    return ReferralOut(
        referral_id=referral.id,
        status=referral.status.value,
        site=referral.site,
        urgency=received.urgency if received else None,
        received_at=received.received_at if received else None,
        case_id=accepted.case_id if accepted else None,
        client_id=accepted.client_id if accepted else None,
        version=referral.version,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Take a referral",
    response_description="The referral, waiting for an intake decision",
)
async def receive_referral(
    body: ReferralIn, principal: TakesReferrals, intake: IntakeApp, ctx: Context, response: Response
) -> ReferralOut:
    cmd = ReceiveReferral(
        referral_id=str(uuid.uuid4()),
        site=body.site,
        client=ClientDetails(**body.client.model_dump()),
        source=body.source,
        referrer_name=body.referrer_name,
        presenting_concerns=body.presenting_concerns,
        urgency=body.urgency,
        consent_to_share=body.consent_to_share,
        received_by=principal.sub,
    )
    referral = await intake.receive_referral(cmd, principal, ctx)
    response.headers["Location"] = f"/referrals/{referral.id}"
    response.headers["ETag"] = f'"{referral.version}"'
    return _view(referral)


@router.get("/{referral_id}", summary="Read a referral")
async def get_referral(
    referral_id: ReferralId, principal: TakesReferrals, intake: IntakeApp, response: Response
) -> ReferralOut:
    referral = await intake.referral(referral_id, principal)
    response.headers["ETag"] = f'"{referral.version}"'
    return _view(referral)


@router.post(
    "/{referral_id}/accept",
    summary="Accept a referral",
    response_description="The ids of the case the cases service opens and of the client",
)
async def accept_referral(
    referral_id: ReferralId, principal: DecidesReferrals, intake: IntakeApp, ctx: Context
) -> Accepted:
    cmd = AcceptReferral(
        referral_id=referral_id,
        accepted_by=principal.sub,
        case_id=str(uuid.uuid4()),
        client_id=str(uuid.uuid4()),
    )
    referral = await intake.accept_referral(cmd, principal, ctx)
    assert referral.accepted is not None
    return Accepted(
        referral_id=referral.id,
        case_id=referral.accepted.case_id,
        client_id=referral.accepted.client_id,
        version=referral.version,
    )
