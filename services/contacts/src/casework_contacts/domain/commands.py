"""Commands the contacts service accepts, in the imperative.

Ids (a contact, a correction) are chosen before a command reaches the aggregate — by the
HTTP edge, or by the caller for a safe retry — so the aggregates stay free of randomness.
Case facts a contact carries (client, site) come from the service's local projection of the
cases' events, looked up by the application.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from casework.contracts.contacts import (
    AttemptReason,
    CancelReason,
    CorrectionKind,
    Medium,
    MissReason,
    Outcome,
    Participant,
)

from casework_contacts.domain.obligations import CaseFacts


@dataclass(frozen=True)
class CaseRef:
    """What a contact records of its case: from the local projection of the case (and the
    case as that projection said when it was read, for counting a logged contact at once)."""

    case_id: str
    client_id: str
    site: str
    facts: CaseFacts | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ScheduleContact:
    contact_id: str
    case: CaseRef
    medium: Medium
    participants: tuple[Participant, ...]
    planned_for: datetime
    assigned_to: str
    scheduled_by: str
    window_ends_at: datetime | None = None
    purpose: str | None = None
    follow_up_of: str | None = None
    expected_duration_minutes: int | None = None


@dataclass(frozen=True)
class LogContact:
    """Log a contact: against a scheduled one (completing it) or as a new, unscheduled one."""

    contact_id: str
    case: CaseRef
    medium: Medium
    occurred_at: datetime
    participants: tuple[Participant, ...]
    outcome: Outcome
    logged_by: str
    attempt_reason: AttemptReason | None = None
    duration_minutes: int | None = None
    travel_minutes: int | None = None
    notes: str | None = None
    wellbeing: str | None = None
    safety_plan_reviewed: bool = False
    follow_up_needed: bool = False


@dataclass(frozen=True)
class MarkMissed:
    contact_id: str
    reason: MissReason
    recorded_by: str
    missed_at: datetime | None = None


@dataclass(frozen=True)
class CancelContact:
    contact_id: str
    reason: CancelReason
    cancelled_by: str


@dataclass(frozen=True)
class CorrectContact:
    contact_id: str
    correction_id: str
    kind: CorrectionKind
    text: str
    corrected_by: str


@dataclass(frozen=True)
class CheckIn:
    contact_id: str
    worker_id: str
    expected_duration_minutes: int
    grace: timedelta
    """How long after the expected end a missing check-out raises `LoneWorkerOverdue`."""


@dataclass(frozen=True)
class CheckOut:
    contact_id: str
    worker_id: str


@dataclass(frozen=True)
class RaiseLoneWorkerOverdue:
    """Sent by the lone-worker deadline: the contact decides whether it is still overdue."""

    contact_id: str
    due_back_at: datetime
    team: str | None = None


ContactCommand = (
    ScheduleContact
    | LogContact
    | MarkMissed
    | CancelContact
    | CorrectContact
    | CheckIn
    | CheckOut
    | RaiseLoneWorkerOverdue
)
