"""Commands the cases service accepts: what someone asks a case to do, in the imperative.

Ids of things a command creates (a crisis, a note, an assessment, plan goals) are chosen
before the command reaches the aggregate — by the HTTP edge or the policy — so that the
aggregate stays free of randomness and a client may pick its own id for a safe retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from casework.contracts.cases import CaseOutcome, Goal, GoalProgress, Intervention
from casework.contracts.common import RiskLevel


@dataclass(frozen=True)
class OpenCase:
    case_id: str
    client_id: str
    referral_id: str
    site: str
    opened_by: str
    crisis_id: str
    """The id the crisis gets if the case opens in crisis (imminent risk at screening)."""
    risk_level: RiskLevel | None = None
    referral_received_at: datetime | None = None
    client_name: str | None = None


@dataclass(frozen=True)
class AssignCaseworker:
    case_id: str
    caseworker_id: str
    team: str | None
    """The team the request names; the handler records the directory's
    (`domain.assignment.assignee_team`)."""
    assigned_by: str
    reason: str | None = None
    expected_caseworker_id: str | None = None
    """When moving a caseload: assign only if the case is still with this worker."""
    capacity_override_reason: str | None = None
    """Why the worker takes the case into the red band of their weighted caseload."""


@dataclass(frozen=True)
class RequestTransfer:
    case_id: str
    to_site: str
    reason: str
    requested_by: str


@dataclass(frozen=True)
class AcceptTransfer:
    case_id: str
    accepted_by: str


@dataclass(frozen=True)
class RejectTransfer:
    case_id: str
    reason: str
    rejected_by: str


@dataclass(frozen=True)
class RecordAssessment:
    case_id: str
    assessment_id: str
    needs: Mapping[str, str]
    narrative: str
    recorded_by: str
    risk_factors: tuple[str, ...] = ()
    protective_factors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProposePlan:
    """Propose the first plan, or a revision of it; either waits for a supervisor."""

    case_id: str
    goals: tuple[Goal, ...]
    interventions: tuple[Intervention, ...]
    proposed_by: str


@dataclass(frozen=True)
class SignOffAssessment:
    """Carry out supervision's approval of an assessment (issued by a policy, not a route)."""

    case_id: str
    assessment_id: str
    approval_id: str
    signed_off_by: str
    on_behalf_of: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class ReturnAssessment:
    """Carry out supervision's return of an assessment (issued by a policy, not a route)."""

    case_id: str
    assessment_id: str
    approval_id: str
    reason: str
    returned_by: str
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class ApprovePlan:
    """Issued by the policy that carries out supervision's approvals; `plan_version` names
    the proposal decided (a decision for a superseded one is refused)."""

    case_id: str
    approved_by: str
    comment: str | None = None
    plan_version: int | None = None
    approval_id: str | None = None
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class ReturnPlan:
    case_id: str
    reason: str
    returned_by: str
    plan_version: int | None = None
    approval_id: str | None = None
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class RecordGoalProgress:
    case_id: str
    goal_id: str
    progress: GoalProgress
    recorded_by: str
    note: str | None = None


@dataclass(frozen=True)
class ChangeRiskLevel:
    case_id: str
    risk_level: RiskLevel
    reason: str
    changed_by: str


@dataclass(frozen=True)
class DeclareCrisis:
    case_id: str
    crisis_id: str
    summary: str
    declared_by: str


@dataclass(frozen=True)
class ResolveCrisis:
    case_id: str
    resolution: str
    resolved_by: str


@dataclass(frozen=True)
class UseBreakGlass:
    """Open the case in an emergency, outside the worker's reach, for a stated reason."""

    case_id: str
    reason: str
    used_by: str
    used_by_sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordCaseNote:
    case_id: str
    note_id: str
    text: str
    recorded_by: str
    addendum_to: str | None = None


@dataclass(frozen=True)
class RequestClosure:
    case_id: str
    outcome: CaseOutcome
    evaluation: str
    requested_by: str


@dataclass(frozen=True)
class ApproveClosure:
    """Issued by the policy that carries out supervision's approvals; `requested_at` names
    the closure request decided (a decision for an earlier request is refused)."""

    case_id: str
    approved_by: str
    requested_at: datetime | None = None
    approval_id: str | None = None
    on_behalf_of: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class ReturnClosure:
    case_id: str
    reason: str
    returned_by: str
    requested_at: datetime | None = None
    approval_id: str | None = None
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class ReopenCase:
    case_id: str
    reason: str
    reopened_by: str


@dataclass(frozen=True)
class RecordInpatientAdmission:
    case_id: str
    admission_id: str
    admitted_at: datetime
    recorded_by: str


@dataclass(frozen=True)
class RecordInpatientDischarge:
    case_id: str
    discharged_at: datetime
    recorded_by: str


CaseCommand = (
    OpenCase
    | AssignCaseworker
    | RequestTransfer
    | AcceptTransfer
    | RejectTransfer
    | RecordAssessment
    | SignOffAssessment
    | ReturnAssessment
    | ProposePlan
    | ApprovePlan
    | ReturnPlan
    | RecordGoalProgress
    | ChangeRiskLevel
    | DeclareCrisis
    | ResolveCrisis
    | RecordCaseNote
    | RequestClosure
    | ApproveClosure
    | ReturnClosure
    | ReopenCase
    | UseBreakGlass
    | RecordInpatientAdmission
    | RecordInpatientDischarge
)
"""Every command one case handles."""


@dataclass(frozen=True)
class MoveCaseload:
    """Give every open case of one worker to another worker (one assignment per case)."""

    from_caseworker_id: str
    to_caseworker_id: str
    to_team: str | None
    reason: str
    moved_by: str
    capacity_override_reason: str | None = None
