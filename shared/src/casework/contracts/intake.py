"""Events of the intake service (topic `casework.intake.events`)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.events import DomainEvent, sensitive


class IntakeEvent(DomainEvent):
    service = "intake"


class ClientDetails(BaseModel):
    """Who the referral is about."""

    model_config = ConfigDict(frozen=True)

    given_name: str
    family_name: str
    date_of_birth: date
    phone: str | None = None
    email: str | None = None
    address: str | None = None


class ReferralReceived(IntakeEvent):
    """A referral was taken and waits for an intake decision."""

    referral_id: str
    site: str
    client: ClientDetails
    source: ReferralSource
    referrer_name: str | None = None
    presenting_concerns: str = sensitive("Why the person was referred, in the referrer's words.")
    urgency: Urgency
    consent_to_share: bool = False
    received_by: str
    received_at: datetime


class ReferralAccepted(IntakeEvent):
    """The referral was accepted: a case is to be opened for the client."""

    referral_id: str
    case_id: str
    client_id: str
    site: str
    risk_level: RiskLevel | None = None
    accepted_by: str
    accepted_at: datetime
