"""The Approval aggregate: one assessment, plan version or closure request of a case waiting
for a supervisor (stream `approval-<approval_id>`).

    (new) --ApprovalRequested--> requested --ApprovalGranted--> granted
                                           --ApprovalReturned--> returned
                                           --ApprovalWithdrawn--> withdrawn

Invariants:
- the id says what is approved (`casework_supervision.domain.approval_rules`), and a request
  for an id that exists changes nothing: a redelivered `CasePlanProposed` is one approval;
- granted, returned and withdrawn are final: a decision on any of them is refused with
  `ApprovalAlreadyDecided` (a withdrawal or an overdue of them changes nothing);
- four eyes: who asked for it never decides it (`SelfApprovalNotAllowed`); only who the
  `Authority` names decides (`NotAnApprover`); a delegate's decision records for whom;
- a decision's comment or reason names the request's client (`client_id`), under whom it
  is sealed at append: the event store refuses a decision with words and no client
  (`MissingSubject`) rather than store them open;
- `ApprovalOverdue` is raised at most once, only while requested, only for the due time the
  approval holds, and only once the clock has reached it.
"""

from __future__ import annotations

from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.supervision import (
    ApprovalGranted,
    ApprovalOverdue,
    ApprovalRequested,
    ApprovalReturned,
    ApprovalWithdrawn,
)
from casework.events import DomainEvent

from casework_supervision.domain.approval_commands import (
    GrantApproval,
    MarkApprovalOverdue,
    RequestApproval,
    ReturnApproval,
    WithdrawApproval,
)
from casework_supervision.domain.approval_rules import ApprovalStatus, Authority
from casework_supervision.domain.errors import (
    ApprovalAlreadyDecided,
    NotAnApprover,
    ReasonRequired,
    SelfApprovalNotAllowed,
)


class Approval(Aggregate):
    stream_type = "approval"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status: ApprovalStatus | None = None
        self.requested: ApprovalRequested | None = None
        self.decided_by: str | None = None
        self.on_behalf_of: str | None = None
        self.decided_at: datetime | None = None
        self.comment: str | None = None
        self.reason: str | None = None
        self.overdue_at: datetime | None = None

    # -- deciding -----------------------------------------------------------------------------

    def request(self, c: RequestApproval) -> bool:
        """Open the approval; False (nothing happens) when it exists: a redelivery."""
        if self.status is not None:
            return False
        self._trigger(
            ApprovalRequested(
                approval_id=c.approval_id,
                kind=c.kind,
                case_id=c.case_id,
                site=c.site,
                team=c.team,
                caseworker_id=c.caseworker_id,
                subject_version=c.subject_version,
                subject_id=c.subject_id,
                requested_by=c.requested_by,
                requested_at=c.requested_at,
                due_at=c.due_at,
                client_id=c.client_id,
            )
        )
        return True

    def grant(self, c: GrantApproval, at: datetime) -> None:
        request, on_behalf_of = self._decidable(c.decided_by, c.authority)
        self._trigger(
            ApprovalGranted(
                approval_id=self.id,
                kind=request.kind,
                case_id=request.case_id,
                subject_version=request.subject_version,
                subject_id=request.subject_id,
                requested_at=request.requested_at,
                decided_by=c.decided_by,
                on_behalf_of=on_behalf_of,
                comment=c.comment,
                decided_at=at,
                client_id=request.client_id,
            )
        )

    def return_(self, c: ReturnApproval, at: datetime) -> None:
        request, on_behalf_of = self._decidable(c.decided_by, c.authority)
        if not c.reason.strip():
            raise ReasonRequired()
        self._trigger(
            ApprovalReturned(
                approval_id=self.id,
                kind=request.kind,
                case_id=request.case_id,
                subject_version=request.subject_version,
                subject_id=request.subject_id,
                requested_at=request.requested_at,
                reason=c.reason,
                decided_by=c.decided_by,
                on_behalf_of=on_behalf_of,
                decided_at=at,
                client_id=request.client_id,
            )
        )

    def withdraw(self, c: WithdrawApproval, at: datetime) -> bool:
        """Withdraw a waiting approval; False (nothing happens) once it is decided, withdrawn
        or was never requested."""
        if self.status is not ApprovalStatus.REQUESTED or self.requested is None:
            return False
        self._trigger(
            ApprovalWithdrawn(
                approval_id=self.id,
                kind=self.requested.kind,
                case_id=self.requested.case_id,
                reason=c.reason,
                withdrawn_at=at,
            )
        )
        return True

    def mark_overdue(self, c: MarkApprovalOverdue, at: datetime) -> bool:
        """Raise `ApprovalOverdue` once, while it still waits, for the due time it holds."""
        request = self.requested
        if (
            self.status is not ApprovalStatus.REQUESTED
            or request is None
            or self.overdue_at is not None
            or c.due_at != request.due_at
            or at < request.due_at
        ):
            return False
        self._trigger(
            ApprovalOverdue(
                approval_id=self.id,
                kind=request.kind,
                case_id=request.case_id,
                site=request.site,
                team=request.team,
                approver_ids=c.approver_ids,
                requested_at=request.requested_at,
                due_at=request.due_at,
                raised_at=at,
            )
        )
        return True

    def _decidable(self, by: str, authority: Authority) -> tuple[ApprovalRequested, str | None]:
        request = self.requested
        if self.status is not ApprovalStatus.REQUESTED or request is None:
            raise ApprovalAlreadyDecided(self.id, str(self.status or "unknown"))
        if by == request.requested_by:
            raise SelfApprovalNotAllowed(self.id, by)
        allowed, on_behalf_of = authority.decides(by, request.requested_by)
        if not allowed:
            raise NotAnApprover(self.id, by)
        return request, on_behalf_of

    # -- evolving -----------------------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ApprovalRequested():
                self.status = ApprovalStatus.REQUESTED
                self.requested = event
                self.site = event.site
            case ApprovalGranted():
                self.status = ApprovalStatus.GRANTED
                self._decided(event.decided_by, event.on_behalf_of, event.decided_at)
                self.comment = event.comment
            case ApprovalReturned():
                self.status = ApprovalStatus.RETURNED
                self._decided(event.decided_by, event.on_behalf_of, event.decided_at)
                self.reason = event.reason
            case ApprovalWithdrawn():
                self.status = ApprovalStatus.WITHDRAWN
                self.decided_at = event.withdrawn_at
                self.reason = event.reason
            case ApprovalOverdue():
                self.overdue_at = event.raised_at

    def _decided(self, by: str, on_behalf_of: str | None, at: datetime) -> None:
        self.decided_by = by
        self.on_behalf_of = on_behalf_of
        self.decided_at = at
