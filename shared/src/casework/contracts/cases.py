"""Events of the cases service (topic `casework.cases.events`).

One stream per case (`case-<case_id>`). The phase moves
assessment → planning → active → review → closed, and a closed case can be reopened.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from casework.contracts.common import RiskLevel
from casework.events import DomainEvent, sensitive


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
    description: str
    target_date: date


class Intervention(BaseModel):
    model_config = ConfigDict(frozen=True)

    intervention_id: str
    description: str
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
    client_name: str | None = None


class CaseworkerAssigned(CaseEvent):
    """The case has a (new) responsible caseworker."""

    case_id: str
    caseworker_id: str
    team: str | None = None
    previous_caseworker_id: str | None = None
    reason: str | None = None
    assigned_by: str
    assigned_at: datetime


class CaseTransferRequested(CaseEvent):
    case_id: str
    from_site: str
    to_site: str
    reason: str
    requested_by: str
    requested_at: datetime


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
    reason: str
    rejected_by: str
    rejected_at: datetime


class AssessmentRecorded(CaseEvent):
    """A structured assessment; the case moves on to planning."""

    case_id: str
    assessment_id: str
    needs: dict[str, str] = sensitive("Needs by domain (housing, health, family, ...).")
    risk_factors: tuple[str, ...] = sensitive("Risk factors identified.", default=())
    protective_factors: tuple[str, ...] = sensitive("Protective factors identified.", default=())
    narrative: str = sensitive("The assessor's narrative.")
    recorded_by: str
    recorded_at: datetime


class CasePlanProposed(CaseEvent):
    """A plan (or a revision of it) waits for supervisor approval."""

    case_id: str
    plan_version: int
    goals: tuple[Goal, ...]
    interventions: tuple[Intervention, ...]
    proposed_by: str
    proposed_at: datetime


class CasePlanApproved(CaseEvent):
    """A supervisor approved the proposed plan; it is now the active plan."""

    case_id: str
    plan_version: int
    approved_by: str
    approved_at: datetime
    comment: str | None = None


class CasePlanReturned(CaseEvent):
    """A supervisor sent the proposed plan back for revision."""

    case_id: str
    plan_version: int
    reason: str
    returned_by: str
    returned_at: datetime


class GoalProgressRecorded(CaseEvent):
    case_id: str
    goal_id: str
    progress: GoalProgress
    note: str | None = sensitive("What was observed.", default=None)
    recorded_by: str
    recorded_at: datetime


class RiskLevelChanged(CaseEvent):
    case_id: str
    site: str
    previous_level: RiskLevel | None
    risk_level: RiskLevel
    reason: str = sensitive("Why the risk level changed.")
    changed_by: str
    changed_at: datetime


class CrisisDeclared(CaseEvent):
    """Someone is at imminent risk: the right people must know in seconds."""

    case_id: str
    crisis_id: str
    site: str
    caseworker_id: str | None = None
    team: str | None = None
    risk_level: RiskLevel
    summary: str = sensitive("What is happening.")
    declared_by: str
    declared_at: datetime


class CrisisResolved(CaseEvent):
    case_id: str
    crisis_id: str
    resolution: str = sensitive("How the crisis was resolved.")
    resolved_by: str
    resolved_at: datetime


class CaseNoteRecorded(CaseEvent):
    """An append-only case note; a correction is an addendum naming the original."""

    case_id: str
    note_id: str
    text: str = sensitive("The note.")
    addendum_to: str | None = None
    recorded_by: str
    recorded_at: datetime


class ClosureRequested(CaseEvent):
    """The caseworker asks to close the case; it is in review until a supervisor decides."""

    case_id: str
    outcome: CaseOutcome
    evaluation: str = sensitive("Outcome evaluation: what changed for the client.")
    requested_by: str
    requested_at: datetime


class ClosureReturned(CaseEvent):
    """A supervisor declined the closure; the case is active again."""

    case_id: str
    reason: str
    returned_by: str
    returned_at: datetime


class CaseClosed(CaseEvent):
    """A supervisor approved the closure."""

    case_id: str
    outcome: CaseOutcome
    approved_by: str
    closed_at: datetime


class CaseReopened(CaseEvent):
    """A closed case reopens, back in assessment."""

    case_id: str
    reason: str
    reopened_by: str
    reopened_at: datetime


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
