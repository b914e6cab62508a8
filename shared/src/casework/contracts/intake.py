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
    reason: str | Sealed | None = personal(
        "Why the candidates are not this person.",
        subject=PERSON,
        record_class="notes",
        default=None,
    )
    subject_id: str | None = None
    """The referred person (`person:<uuid>`), as in `ReferralReceived`."""


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
    reason: str | Sealed = personal(
        "Why the referral is declined.", subject=PERSON, record_class="notes"
    )
    signposted_to: str | None = None
    declined_by: str
    declined_at: datetime
    subject_id: str | None = None
    """The referred person (`person:<uuid>`), as in `ReferralReceived`."""


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


# --- Data protection: legal holds, erasure and retention (stream `erasure-<client_id>`) ---
#
# None of these events carries personal data: they are the proof of an erasure and must stay
# readable after the client's keys are gone. Reasons, requesters and hold bases are codes,
# references are short identifiers (a ticket number), never free text.


class ErasureReason(StrEnum):
    """The legal ground of an erasure (UK GDPR / GDPR Art. 17(1), and retention)."""

    DATA_SUBJECT_REQUEST = "data_subject_request"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    NO_LONGER_NECESSARY = "no_longer_necessary"
    UNLAWFUL_PROCESSING = "unlawful_processing"
    LEGAL_OBLIGATION = "legal_obligation"
    RETENTION_EXPIRED = "retention_expired"


class Requester(StrEnum):
    """Who asked for the erasure (by kind: the proof names no private person)."""

    DATA_SUBJECT = "data_subject"
    REPRESENTATIVE = "representative"
    AGENCY = "agency"
    SUPERVISORY_AUTHORITY = "supervisory_authority"
    RETENTION_RULE = "retention_rule"


class HoldBasis(StrEnum):
    """Why an agency must keep a client's records (a legal hold)."""

    SAFEGUARDING_CHILD = "safeguarding_child"
    SAFEGUARDING_ADULT = "safeguarding_adult"
    LITIGATION = "litigation"
    INVESTIGATION = "investigation"


class ErasureOutcome(StrEnum):
    CARRIED_OUT = "carried_out"
    REFUSED = "refused"


class HoldFound(BaseModel):
    """A legal hold that refused an erasure: an open case, or a hold an agency placed."""

    model_config = ConfigDict(frozen=True)

    kind: str
    """`open_case` or `legal_hold`."""
    id: str
    """The case id, or the hold id."""
    basis: HoldBasis | None = None
    site: str | None = None


class LegalHoldPlaced(IntakeEvent):
    """An agency must keep this client's records: no erasure or retention destroys them
    while the hold stands."""

    client_id: str
    hold_id: str
    basis: HoldBasis
    reference: str | None = None
    site: str | None = None
    placed_by: str
    placed_at: datetime


class LegalHoldReleased(IntakeEvent):
    client_id: str
    hold_id: str
    released_by: str
    released_at: datetime


class ErasureRequested(IntakeEvent):
    """A data-protection officer (or a retention rule) asked for the client's data to be
    erased: all of it (`record_class` None) or one record class."""

    erasure_id: str
    client_id: str
    subject: str
    """The data subject whose keys are to be destroyed, `client:<client_id>`."""
    record_class: str | None = None
    reason: ErasureReason
    requester: Requester
    reference: str | None = None
    rule: str | None = None
    """The retention rule that asked, e.g. `notes:8y`."""
    requested_by: str
    requested_at: datetime


class ErasureDecided(IntakeEvent):
    """The legal-hold check's decision: carried out, or refused with the holds found."""

    erasure_id: str
    client_id: str
    outcome: ErasureOutcome
    holds: tuple[HoldFound, ...] = ()
    decided_by: str
    decided_at: datetime


class SubjectKeyDestroyed(IntakeEvent):
    """The subject's data keys are destroyed: everything sealed with them reads `[erased]`."""

    erasure_id: str
    client_id: str
    subject: str
    record_class: str | None = None
    key_ids: tuple[str, ...] = ()
    destroyed_at: datetime


class ErasureCompleted(IntakeEvent):
    """The last step: the subject's blind-index entries are gone too."""

    erasure_id: str
    client_id: str
    index_entries_deleted: int = 0
    completed_at: datetime
