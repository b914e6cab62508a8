"""Events of the cases service (topic `casework.cases.events`).

One stream per case (`case-<case_id>`). The phase moves
assessment → planning → active → review → closed, and a closed case can be reopened.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from casework.contracts.common import RiskLevel
from casework.events import DomainEvent, Sealed, personal


class CaseEvent(DomainEvent):
    service = "cases"


class CaseOutcome(StrEnum):
    """How an episode of care ended."""

    GOALS_MET = "goals_met"
    GOALS_PARTLY_MET = "goals_partly_met"
    GOALS_NOT_MET = "goals_not_met"
    DISENGAGED = "disengaged"
    TRANSFERRED_OUT = "transferred_out"
    OTHER = "other"


class GoalProgress(StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    ACHIEVED = "achieved"
    ABANDONED = "abandoned"


class Goal(BaseModel):
    model_config = ConfigDict(frozen=True)

    goal_id: str
    description: str | Sealed = personal(
        "What the client works towards.", subject="client_id", record_class="clinical"
    )
    target_date: date


class Intervention(BaseModel):
    model_config = ConfigDict(frozen=True)

    intervention_id: str
    description: str | Sealed = personal(
        "What is done.", subject="client_id", record_class="clinical"
    )
    responsible: str
    """Who carries it out: a staff id, or a named other (the client, a family member, a GP)."""
    frequency: str | None = None
    goal_ids: tuple[str, ...] = ()


class CaseOpened(CaseEvent):
    """An episode of care began, in the assessment phase."""

    case_id: str
    client_id: str
    referral_id: str
    site: str
    risk_level: RiskLevel | None = None
    opened_at: datetime
    referral_received_at: datetime | None = None
    client_name: str | Sealed | None = personal(
        "The client's name (copied sealed from the referral).", subject="client_id", default=None
    )


class CaseworkerAssigned(CaseEvent):
    """The case has a (new) responsible caseworker."""

    case_id: str
    caseworker_id: str
    team: str | None = None
    previous_caseworker_id: str | None = None
    reason: str | Sealed | None = personal(
        "Why this worker, in the assigner's words.",
        subject="client_id",
        record_class="notes",
        default=None,
    )
    assigned_by: str
    assigned_at: datetime
    capacity_override_reason: str | Sealed | None = personal(
        "Why the worker takes the case although it brings their weighted caseload into the "
        "red band (required then; absent otherwise).",
        subject="client_id",
        record_class="notes",
        default=None,
    )
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CaseTransferRequested(CaseEvent):
    case_id: str
    from_site: str
    to_site: str
    reason: str | Sealed = personal(
        "Why the case moves.", subject="client_id", record_class="notes"
    )
    requested_by: str
    requested_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CaseTransferAccepted(CaseEvent):
    """The receiving site took the case; its site changes and it awaits a new caseworker."""

    case_id: str
    from_site: str
    to_site: str
    accepted_by: str
    accepted_at: datetime


class CaseTransferRejected(CaseEvent):
    case_id: str
    from_site: str
    to_site: str
    reason: str | Sealed = personal(
        "Why the receiving site declined.", subject="client_id", record_class="notes"
    )
    rejected_by: str
    rejected_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class AssessmentRecorded(CaseEvent):
    """A structured assessment; the case moves on to planning."""

    case_id: str
    assessment_id: str
    needs: dict[str, str] | Sealed = personal(
        "Needs by domain (housing, health, family, ...).",
        subject="client_id",
        record_class="clinical",
    )
    risk_factors: tuple[str, ...] | Sealed = personal(
        "Risk factors identified.", subject="client_id", record_class="clinical", default=()
    )
    protective_factors: tuple[str, ...] | Sealed = personal(
        "Protective factors identified.", subject="client_id", record_class="clinical", default=()
    )
    narrative: str | Sealed = personal(
        "The assessor's narrative.", subject="client_id", record_class="clinical"
    )
    recorded_by: str
    recorded_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CasePlanProposed(CaseEvent):
    """A plan (or a revision of it) waits for supervisor approval."""

    case_id: str
    plan_version: int
    goals: tuple[Goal, ...]
    interventions: tuple[Intervention, ...]
    proposed_by: str
    proposed_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CasePlanApproved(CaseEvent):
    """A supervisor approved the proposed plan; it is now the active plan."""

    case_id: str
    plan_version: int
    approved_by: str
    approved_at: datetime
    comment: str | Sealed | None = personal(
        "The approver's comment.", subject="client_id", record_class="notes", default=None
    )
    approval_id: str | None = None
    """The supervision service's approval this carries out (None before approvals moved)."""
    on_behalf_of: str | None = None
    """The supervisor a delegate decided for."""
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CasePlanReturned(CaseEvent):
    """A supervisor sent the proposed plan back for revision."""

    case_id: str
    plan_version: int
    reason: str | Sealed = personal(
        "What the plan needs before it is approved.", subject="client_id", record_class="notes"
    )
    returned_by: str
    returned_at: datetime
    approval_id: str | None = None
    """The supervision service's approval this carries out (None before approvals moved)."""
    on_behalf_of: str | None = None
    """The supervisor a delegate decided for."""
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class AssessmentSignedOff(CaseEvent):
    """A supervisor signed the assessment off (supervision's approval, carried out here): the
    case timeline shows it. The assessment itself never changes; a new one comes with a
    reopened case."""

    case_id: str
    assessment_id: str
    approval_id: str
    signed_off_by: str
    on_behalf_of: str | None = None
    comment: str | Sealed | None = personal(
        "The approver's comment.", subject="client_id", record_class="notes", default=None
    )
    signed_off_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class AssessmentReturned(CaseEvent):
    """A supervisor returned the assessment with a reason (shown on the timeline); the case
    goes on, and the worker records what is missing as notes or a risk change."""

    case_id: str
    assessment_id: str
    approval_id: str
    reason: str | Sealed = personal(
        "What the assessment lacks, in the approver's words.",
        subject="client_id",
        record_class="notes",
    )
    returned_by: str
    on_behalf_of: str | None = None
    returned_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class GoalProgressRecorded(CaseEvent):
    case_id: str
    goal_id: str
    progress: GoalProgress
    note: str | Sealed | None = personal(
        "What was observed.", subject="client_id", record_class="notes", default=None
    )
    recorded_by: str
    recorded_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class RiskLevelChanged(CaseEvent):
    case_id: str
    site: str
    previous_level: RiskLevel | None
    risk_level: RiskLevel
    reason: str | Sealed = personal(
        "Why the risk level changed.", subject="client_id", record_class="clinical"
    )
    changed_by: str
    changed_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CrisisDeclared(CaseEvent):
    """Someone is at imminent risk: the right people must know in seconds."""

    case_id: str
    crisis_id: str
    site: str
    caseworker_id: str | None = None
    team: str | None = None
    risk_level: RiskLevel
    summary: str | Sealed = personal(
        "What is happening.", subject="client_id", record_class="clinical"
    )
    declared_by: str
    declared_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CrisisResolved(CaseEvent):
    case_id: str
    crisis_id: str
    resolution: str | Sealed = personal(
        "How the crisis was resolved.", subject="client_id", record_class="clinical"
    )
    resolved_by: str
    resolved_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CaseNoteRecorded(CaseEvent):
    """An append-only case note; a correction is an addendum naming the original."""

    case_id: str
    note_id: str
    text: str | Sealed = personal("The note.", subject="client_id", record_class="notes")
    addendum_to: str | None = None
    recorded_by: str
    recorded_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class ClosureRequested(CaseEvent):
    """The caseworker asks to close the case; it is in review until a supervisor decides."""

    case_id: str
    outcome: CaseOutcome
    evaluation: str | Sealed = personal(
        "Outcome evaluation: what changed for the client.",
        subject="client_id",
        record_class="clinical",
    )
    requested_by: str
    requested_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class ClosureReturned(CaseEvent):
    """A supervisor declined the closure; the case is active again."""

    case_id: str
    reason: str | Sealed = personal(
        "Why the case is not closed yet.", subject="client_id", record_class="notes"
    )
    returned_by: str
    returned_at: datetime
    approval_id: str | None = None
    """The supervision service's approval this carries out (None before approvals moved)."""
    on_behalf_of: str | None = None
    """The supervisor a delegate decided for."""
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CaseClosed(CaseEvent):
    """A supervisor approved the closure."""

    case_id: str
    outcome: CaseOutcome
    approved_by: str
    closed_at: datetime
    comment: str | Sealed | None = personal(
        "The approver's comment.", subject="client_id", record_class="notes", default=None
    )
    approval_id: str | None = None
    """The supervision service's approval this carries out (None before approvals moved)."""
    on_behalf_of: str | None = None
    """The supervisor a delegate decided for."""
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class CaseReopened(CaseEvent):
    """A closed case reopens, back in assessment."""

    case_id: str
    reason: str | Sealed = personal(
        "Why the case reopens.", subject="client_id", record_class="notes"
    )
    reopened_by: str
    reopened_at: datetime
    client_id: str | None = None
    """The client whose data the personal fields are (the subject of their key)."""


class BreakGlassUsed(CaseEvent):
    """A crisis worker opened this case, outside their reach, in an emergency ("breaking the
    glass"). Allowed, and a review for the case's supervisor: the case timeline and the
    supervisor's caseload view show it. The access itself is in the audit trail with the
    HL7 purpose of use `BTG`, naming this event (`case-<id>@<version>`), never the reason."""

    case_id: str
    client_id: str | None = None
    """The data subject of `reason` (the case's client)."""
    site: str
    """Where the case was when the glass was broken."""
    team: str | None = None
    caseworker_id: str | None = None
    reason: str | Sealed = personal(
        "Why the emergency access was needed, as the worker stated it.",
        subject="client_id",
        record_class="clinical",
    )
    used_by: str
    used_by_sites: tuple[str, ...] = ()
    used_at: datetime


class InpatientAdmissionRecorded(CaseEvent):
    """The client was admitted to inpatient care (recorded on the case so that the contact
    policy can start its discharge follow-up clock when they leave)."""

    case_id: str
    admission_id: str
    admitted_at: datetime
    recorded_by: str
    recorded_at: datetime


class InpatientDischargeRecorded(CaseEvent):
    """The client was discharged from inpatient care: a follow-up contact is due within 72
    hours (risk peaks on days 2-3 after discharge)."""

    case_id: str
    admission_id: str
    discharged_at: datetime
    recorded_by: str
    recorded_at: datetime
