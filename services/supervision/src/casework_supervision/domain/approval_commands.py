"""Commands of the Approval aggregate (imperative; the edge or a policy builds them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casework_supervision.domain.approval_rules import Authority


@dataclass(frozen=True)
class RequestApproval:
    """Issued by the policy on the cases topic; the id says what is approved."""

    approval_id: str
    kind: str
    case_id: str
    site: str
    team: str | None
    caseworker_id: str | None
    subject_version: int
    subject_id: str | None
    requested_by: str
    requested_at: datetime
    due_at: datetime
    client_id: str | None = None


@dataclass(frozen=True)
class GrantApproval:
    approval_id: str
    decided_by: str
    authority: Authority
    comment: str | None = None


@dataclass(frozen=True)
class ReturnApproval:
    approval_id: str
    decided_by: str
    authority: Authority
    reason: str


@dataclass(frozen=True)
class WithdrawApproval:
    approval_id: str
    reason: str


@dataclass(frozen=True)
class MarkApprovalOverdue:
    """Fired by the approval's deadline: raise `ApprovalOverdue` if it is still waiting."""

    approval_id: str
    due_at: datetime
    approver_ids: tuple[str, ...]
