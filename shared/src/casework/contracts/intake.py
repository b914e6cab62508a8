"""Events of the intake service (topic `casework.intake.events`).

One stream per referral (`referral-<referral_id>`) and one per client
(`client-<client_id>`, the client registry used to spot duplicates).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.events import DomainEvent, Sealed, personal


class IntakeEvent(DomainEvent):
    service = "intake"


PERSON = "subject_id"
"""The subject field of referral events: the person minted at referral (`person:<uuid>`)."""


class ClientDetails(BaseModel):
    """Who the referral is about (sealed per field, as the person's `identity` data; the
    subject is the `subject_id` of the event that holds them)."""

    model_config = ConfigDict(frozen=True)

    given_name: str | Sealed = personal("Given name.", subject=PERSON)
    family_name: str | Sealed = personal("Family name.", subject=PERSON)
    date_of_birth: date | Sealed = personal("Date of birth.", subject=PERSON)
    phone: str | Sealed | None = personal("Phone number.", subject=PERSON, default=None)
    email: str | Sealed | None = personal("Email address.", subject=PERSON, default=None)
    address: str | Sealed | None = personal("Postal address.", subject=PERSON, default=None)


class Frequency(StrEnum):
    """How often, in the screening items that ask."""

    NEVER = "never"
    PAST_MONTH = "past_month"
    PAST_WEEK = "past_week"
    NOW = "now"


class ScreeningAnswers(BaseModel):
    """A structured risk screen (suicide items in the style of the C-SSRS screener)."""

    model_config = ConfigDict(frozen=True)

    wish_to_be_dead: bool
    suicidal_thoughts: bool
    thoughts_with_method: bool = False
    suicidal_intent: bool = False
    intent_with_plan: bool = False
    suicidal_behaviour: Frequency = Frequency.NEVER
    harm_to_others: bool = False
    harm_to_others_intent: bool = False
    children_at_home_at_risk: bool = False
    vulnerable_adult_at_risk: bool = False
    substance_use: bool = False
    substance_use_severe: bool = False


class ReferralReceived(IntakeEvent):
    """A referral was taken and waits for an intake decision."""

    referral_id: str
    site: str
    client: ClientDetails
    source: ReferralSource
    referrer_name: str | Sealed | None = personal(
        "Who referred the person (kept as the referred person's data: erased with them).",
        subject=PERSON,
        default=None,
    )
    presenting_concerns: str | Sealed = personal(
        "Why the person was referred, in the referrer's words.",
        subject=PERSON,
        record_class="clinical",
    )
    urgency: Urgency
    consent_to_share: bool = False
    received_by: str
    received_at: datetime
    subject_id: str | None = None
    """The data subject the referral's personal fields belong to, `person:<uuid>`, minted at
    referral; linked to the client once known (`KeyService.link`), so erasing the client
    erases the referral's details too."""


class DuplicateClientsFound(IntakeEvent):
    """Registered clients that may be the person referred (same name and birth date, or phone)."""

    referral_id: str
    candidate_client_ids: tuple[str, ...]
    found_at: datetime


class ClientMatchConfirmed(IntakeEvent):
    """The intake worker confirmed the referral is about an existing client."""

    referral_id: str
    client_id: str
    confirmed_by: str
    confirmed_at: datetime


class ClientMatchOverridden(IntakeEvent):
    """The intake worker decided the referral is about a new person after all."""

    referral_id: str
    overridden_by: str
    overridden_at: datetime
    reason: str | None = None


class RiskScreened(IntakeEvent):
    referral_id: str
    site: str
    answers: ScreeningAnswers | Sealed = personal(
        "The screening answers.", subject=PERSON, record_class="clinical"
    )
    risk_level: RiskLevel
    rule: str | Sealed = personal(
        "Which clause of the screening rule decided the level, for the record (it names the "
        "screening item answered, so it is sealed like the answers).",
        subject=PERSON,
        record_class="clinical",
    )
    screened_by: str
    screened_at: datetime
    subject_id: str | None = None
    """The referred person (`person:<uuid>`), as in `ReferralReceived`."""


class ReferralAccepted(IntakeEvent):
    """The referral was accepted: a case is to be opened for the client."""

    referral_id: str
    case_id: str
    client_id: str
    site: str
    risk_level: RiskLevel | None = None
    accepted_by: str
    accepted_at: datetime
    new_client: bool = True
    urgency: Urgency | None = None
    received_at: datetime | None = None
    client_name: str | Sealed | None = personal(
        "The client's name (copied sealed from the referral).", subject="client_id", default=None
    )


class ReferralDeclined(IntakeEvent):
    referral_id: str
    site: str
    reason: str
    signposted_to: str | None = None
    declined_by: str
    declined_at: datetime


class ClientRegistered(IntakeEvent):
    """A new person entered the client registry (at acceptance)."""

    client_id: str
    site: str
    given_name: str | Sealed = personal("Given name.", subject="client_id")
    family_name: str | Sealed = personal("Family name.", subject="client_id")
    date_of_birth: date | Sealed = personal("Date of birth.", subject="client_id")
    phone: str | Sealed | None = personal("Phone number.", subject="client_id", default=None)
    match_key: str | Sealed = personal(
        "The blind-index term of the normalised name and birth date (a keyed hash, sealed: "
        "duplicates are found in intake's blind index, never by this field).",
        subject="client_id",
    )
    registered_at: datetime
