"""Commands the intake service accepts: imperative, validated at the edge, decided by the
Referral and Client aggregates."""

from __future__ import annotations

from dataclasses import dataclass

from casework.contracts.common import ReferralSource, Urgency
from casework.contracts.intake import (
    ClientDetails,
    ErasureReason,
    HoldBasis,
    Requester,
    ScreeningAnswers,
)


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
    subject_id: str | None = None
    """The data subject minted for the person referred (`person:<uuid>`; the application
    mints one when the edge did not)."""


@dataclass(frozen=True)
class ScreenRisk:
    referral_id: str
    answers: ScreeningAnswers
    screened_by: str
    expected_version: int | None = None


@dataclass(frozen=True)
class ConfirmClientMatch:
    """The referral is about this registered client (one of the duplicate candidates)."""

    referral_id: str
    client_id: str
    confirmed_by: str
    expected_version: int | None = None


@dataclass(frozen=True)
class OverrideClientMatch:
    """The referral is about a new person, whatever the duplicate candidates suggested."""

    referral_id: str
    reason: str
    overridden_by: str
    expected_version: int | None = None


@dataclass(frozen=True)
class AcceptReferral:
    referral_id: str
    accepted_by: str
    case_id: str
    new_client_id: str
    """The id the client gets if the referral is not about an already registered client."""
    expected_version: int | None = None


@dataclass(frozen=True)
class DeclineReferral:
    referral_id: str
    reason: str
    declined_by: str
    signposted_to: str | None = None
    expected_version: int | None = None


@dataclass(frozen=True)
class RegisterClient:
    client_id: str
    site: str
    details: ClientDetails
    match_term: str
    """The blind-index term of the person's name and birth date (never the plaintext key)."""


@dataclass(frozen=True)
class RequestErasure:
    """Erase a client's data (all of it, or one record class), unless a legal hold stands."""

    client_id: str
    erasure_id: str
    reason: ErasureReason
    requester: Requester
    requested_by: str
    reference: str | None = None
    record_class: str | None = None
    rule: str | None = None


@dataclass(frozen=True)
class PlaceLegalHold:
    client_id: str
    hold_id: str
    basis: HoldBasis
    placed_by: str
    reference: str | None = None
    site: str | None = None


@dataclass(frozen=True)
class ReleaseLegalHold:
    client_id: str
    hold_id: str
    released_by: str
