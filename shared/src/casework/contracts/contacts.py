"""Events of the contacts service (topic `casework.contacts.events`).

Two kinds of stream:

- `contact-<contact_id>`: one contact with a client's case — scheduled, then logged (made, or
  attempted with a reason), missed or cancelled; corrected by addenda or a strike-through,
  never edited away; a home visit's lone-worker check-in and check-out.
- `obligations-<case_id>`: what the contact policy requires for one case — each obligation
  opened with the rule (and rule version) it came from, met by a contact, cancelled when the
  rule stops applying (risk or phase changed, case closed), and the due-soon and overdue
  facts, each at most once per obligation.

Every event that carries personal data carries the `client_id` it is about; named people who
are not the client appear only as `person:<uuid>` ids, never by name.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from casework.contracts.common import RiskLevel
from casework.events import DomainEvent, Sealed, personal


class ContactEvent(DomainEvent):
    service = "contacts"


class Medium(StrEnum):
    """How a contact is made."""

    HOME_VISIT = "home_visit"
    OFFICE_VISIT = "office_visit"
    PHONE = "phone"
    VIDEO = "video"
    TEXT_MESSAGE = "text_message"
    MESSAGING_APP = "messaging_app"
    """WeChat, WhatsApp, Signal and the like."""
    EMAIL = "email"
    LETTER = "letter"


class MediumClass(StrEnum):
    """What the contact policy counts: media grouped by how much of the person they reach."""

    FACE_TO_FACE = "face_to_face"
    LIVE_REMOTE = "live_remote"
    WRITTEN = "written"


MEDIUM_CLASS: dict[Medium, MediumClass] = {
    Medium.HOME_VISIT: MediumClass.FACE_TO_FACE,
    Medium.OFFICE_VISIT: MediumClass.FACE_TO_FACE,
    Medium.PHONE: MediumClass.LIVE_REMOTE,
    Medium.VIDEO: MediumClass.LIVE_REMOTE,
    Medium.TEXT_MESSAGE: MediumClass.WRITTEN,
    Medium.MESSAGING_APP: MediumClass.WRITTEN,
    Medium.EMAIL: MediumClass.WRITTEN,
    Medium.LETTER: MediumClass.WRITTEN,
}
"""Each medium's class (the contact policy's unit)."""


class ParticipantKind(StrEnum):
    CLIENT = "client"
    FAMILY = "family"
    CARER = "carer"
    PROFESSIONAL = "professional"
    """A doctor, a teacher, a housing officer: liaison about the client."""


class Participant(BaseModel):
    """Someone the contact was with. Named people other than the client are `person:<uuid>`
    ids (their names live with the client's record, not in contact events)."""

    model_config = ConfigDict(frozen=True)

    kind: ParticipantKind
    person_id: str | None = None
    """`person:<uuid>` for a family member or carer; None for the client."""
    role: str | None = None
    """For a professional: `gp`, `teacher`, `housing`, ... (a role, never a name)."""


class Outcome(StrEnum):
    MADE = "made"
    ATTEMPTED = "attempted"


class AttemptReason(StrEnum):
    """Why an attempted contact did not happen."""

    NO_ANSWER = "no_answer"
    VOICEMAIL = "voicemail"
    REFUSED = "refused"
    WRONG_NUMBER = "wrong_number"
    NOT_AT_HOME = "not_at_home"
    OTHER = "other"


class MissReason(StrEnum):
    NO_SHOW = "no_show"
    """The client did not come, or did not answer the door at the planned time."""
    WORKER_UNAVAILABLE = "worker_unavailable"
    OTHER = "other"


class CancelReason(StrEnum):
    CLIENT_REQUEST = "client_request"
    WORKER_UNAVAILABLE = "worker_unavailable"
    NO_LONGER_NEEDED = "no_longer_needed"
    REPLACED = "replaced"
    CASE_CLOSED = "case_closed"
    OTHER = "other"


class CorrectionKind(StrEnum):
    ADDENDUM = "addendum"
    """Adds to the record: the original stands."""
    STRUCK_THROUGH = "struck_through"
    """The record was wrong: it stays visible, struck through, and no longer counts."""


class ContactScheduled(ContactEvent):
    """A contact is planned: with whom, how, when (a time or a due window), by whom."""

    contact_id: str
    case_id: str
    client_id: str
    site: str
    medium: Medium
    participants: tuple[Participant, ...]
    planned_for: datetime
    window_ends_at: datetime | None = None
    """The latest acceptable time, when the contact is due within a window."""
    assigned_to: str
    purpose: str | Sealed | None = personal(
        "What the contact is for.", subject="client_id", record_class="notes", default=None
    )
    follow_up_of: str | None = None
    """The contact whose log asked for this follow-up."""
    expected_duration_minutes: int | None = None
    scheduled_by: str
    scheduled_at: datetime


class ContactLogged(ContactEvent):
    """A contact happened (made) or was tried (attempted, with the reason). Logged against a
    scheduled contact it completes it (`was_scheduled`); unscheduled contacts are logged too."""

    contact_id: str
    case_id: str
    client_id: str
    site: str
    medium: Medium
    occurred_at: datetime
    duration_minutes: int | None = None
    travel_minutes: int | None = None
    participants: tuple[Participant, ...]
    outcome: Outcome
    attempt_reason: AttemptReason | None = None
    notes: str | Sealed | None = personal(
        "What happened.", subject="client_id", record_class="notes", default=None
    )
    wellbeing: str | Sealed | None = personal(
        "The client's wellbeing as observed.",
        subject="client_id",
        record_class="clinical",
        default=None,
    )
    safety_plan_reviewed: bool = False
    follow_up_needed: bool = False
    was_scheduled: bool = False
    logged_by: str
    logged_at: datetime


class ContactMissed(ContactEvent):
    """A scheduled contact did not happen: a no-show, or the worker could not go."""

    contact_id: str
    case_id: str
    client_id: str
    site: str
    reason: MissReason
    missed_at: datetime
    recorded_by: str
    recorded_at: datetime


class ContactCancelled(ContactEvent):
    """A scheduled contact will not happen, with the reason."""

    contact_id: str
    case_id: str
    client_id: str
    site: str
    reason: CancelReason
    cancelled_by: str
    cancelled_at: datetime


class ContactCorrected(ContactEvent):
    """A logged contact is corrected: an addendum, or struck through (logged in error).
    Nothing is edited away; the original stays on the record."""

    contact_id: str
    case_id: str
    client_id: str
    site: str
    correction_id: str
    kind: CorrectionKind
    text: str | Sealed = personal(
        "The addendum or why it is struck through.", subject="client_id", record_class="notes"
    )
    corrected_by: str
    corrected_at: datetime


class LoneWorkerCheckedIn(ContactEvent):
    """A worker arrived at a home visit, alone: expected back by `due_back_at`."""

    contact_id: str
    case_id: str
    site: str
    worker_id: str
    checked_in_at: datetime
    expected_duration_minutes: int
    due_back_at: datetime
    """Check-in + expected duration + the service's grace: `LoneWorkerOverdue` after it."""


class LoneWorkerCheckedOut(ContactEvent):
    """The worker left the home visit safely."""

    contact_id: str
    case_id: str
    site: str
    worker_id: str
    checked_out_at: datetime


class LoneWorkerOverdue(ContactEvent):
    """A worker on a home visit did not check out in time: someone must call them now."""

    contact_id: str
    case_id: str
    site: str
    worker_id: str
    team: str | None = None
    checked_in_at: datetime
    due_back_at: datetime
    raised_at: datetime


# --- obligations (stream `obligations-<case_id>`) --------------------------------------------


class ContactObligationOpened(ContactEvent):
    """The policy requires a made contact with the client by `due_at` (rule `rule_id` of
    policy version `rule_version`)."""

    case_id: str
    obligation_id: str
    rule_id: str
    rule_version: str
    due_at: datetime
    media_classes: tuple[MediumClass, ...]
    """The medium classes a made contact must be of to meet it."""
    opened_at: datetime
    window: timedelta | None = None
    """For a standing rule: its rolling window."""
    contacts_required: int = 1
    """For a standing rule: made contacts required within every window."""
    trigger: str | None = None
    """For a one-off clock: what started it (`case_opened:<n>`, `crisis_resolved:<id>`, ...)."""
    trigger_at: datetime | None = None
    """For a one-off clock: when its trigger happened (contacts from then on meet it)."""
    risk_level: RiskLevel | None = None
    """The case's risk when the obligation opened (for statistics by risk)."""


class ContactObligationMet(ContactEvent):
    case_id: str
    obligation_id: str
    rule_id: str
    contact_id: str
    met_at: datetime
    """When the meeting contact happened."""
    due_at: datetime
    on_time: bool


class ContactObligationCancelled(ContactEvent):
    """The obligation no longer applies: its rule dropped out when risk or phase changed, or
    the case closed."""

    case_id: str
    obligation_id: str
    rule_id: str
    reason: str
    cancelled_at: datetime


class ContactCounted(ContactEvent):
    """How the policy counted a logged contact: towards which rules (none for an attempt, or
    for a medium that does not count as made at the case's risk)."""

    case_id: str
    contact_id: str
    occurred_at: datetime
    medium: Medium
    outcome: Outcome
    with_client: bool
    counted_for: tuple[str, ...]
    """Rule ids this contact counts towards."""


class ContactUncounted(ContactEvent):
    """A counted contact was struck through (logged in error): it no longer counts, and what
    it met is owed again (`ContactObligationRescheduled`, or a clock opened again)."""

    case_id: str
    contact_id: str
    uncounted_at: datetime


class ContactObligationRescheduled(ContactEvent):
    """An open obligation falls due earlier: a contact that counted for its rule was struck
    through."""

    case_id: str
    obligation_id: str
    rule_id: str
    due_at: datetime
    previous_due_at: datetime
    rescheduled_at: datetime


class ContactDueSoon(ContactEvent):
    """An obligation falls due within the configured lead."""

    case_id: str
    obligation_id: str
    rule_id: str
    due_at: datetime
    risk_level: RiskLevel | None = None
    caseworker_id: str | None = None
    team: str | None = None
    site: str
    raised_at: datetime


class ContactOverdue(ContactEvent):
    """An obligation passed its due time without a made contact: raised once per obligation."""

    case_id: str
    obligation_id: str
    rule_id: str
    rule_version: str
    due_at: datetime
    overdue_seconds: int
    risk_level: RiskLevel | None = None
    caseworker_id: str | None = None
    team: str | None = None
    site: str
    raised_at: datetime
    trigger: str | None = None
    """For a one-off clock: what started it, as `ContactObligationOpened.trigger`
    (`crisis_resolved:<id>`, `inpatient_discharge:<id>`, `case_opened:<n>`); None for a
    standing rule (and in events stored before it was carried)."""
