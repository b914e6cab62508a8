"""Commands the intake service accepts: imperative, validated at the edge, decided by the
Referral aggregate."""

from __future__ import annotations

from dataclasses import dataclass

from casework.contracts.common import ReferralSource, Urgency
from casework.contracts.intake import ClientDetails


@dataclass(frozen=True)
class ReceiveReferral:
    referral_id: str
    site: str
    client: ClientDetails
    source: ReferralSource
    presenting_concerns: str
    urgency: Urgency
    received_by: str
    referrer_name: str | None = None
    consent_to_share: bool = False


@dataclass(frozen=True)
class AcceptReferral:
    referral_id: str
    accepted_by: str
    case_id: str
    client_id: str
