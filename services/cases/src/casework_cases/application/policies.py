"""How the cases service reacts to other services' events (`when_<event>_<action>`).

| policy                                   | reads             | does                           |
|------------------------------------------|-------------------|--------------------------------|
| `when_referral_accepted_open_case`       | intake topic      | opens the case                 |
| `when_approval_granted_carry_it_out`     | supervision topic | approves the plan, closes the  |
|                                          |                   | case, signs the assessment off |
| `when_approval_returned_send_it_back`    | supervision topic | returns the plan, the closure  |
|                                          |                   | or the assessment              |

Supervision decides who may approve (the worker's supervisor or their delegate, four eyes);
the case carries the decision out with its own rules, which keep four eyes as a defence. A
decision for something the case no longer waits for (a superseded plan version, an earlier
closure request, a redelivered decision already carried out) is refused by the case
(`DecisionNotCurrent`, or the phase): it is logged by approval id and skipped, never retried.
A granted closure that meets a crisis declared in the meantime is returned instead (the case
goes back to active with the reason), so that it never waits in review for a decision taken.
"""

from __future__ import annotations

import logging
import uuid

from casework.contracts.intake import ReferralAccepted
from casework.contracts.supervision import ApprovalGranted, ApprovalReturned
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.projections import EventHandler
from casework.runtime import events_topic

from casework_cases.application.handlers import Cases
from casework_cases.domain.commands import (
    ApproveClosure,
    ApprovePlan,
    CaseCommand,
    OpenCase,
    ReturnAssessment,
    ReturnClosure,
    ReturnPlan,
    SignOffAssessment,
)
from casework_cases.domain.errors import CaseAlreadyOpened, CaseError, CrisisStillOpen

log = logging.getLogger(__name__)


class WhenReferralAcceptedOpenCase(EventHandler):
    """An accepted referral opens its case — exactly once, however often the event arrives.

    A referral screened at imminent risk opens its case in crisis: the case's first commit
    holds both `CaseOpened` and `CrisisDeclared`, declared by the worker who accepted it.
    """

    name = "when_referral_accepted_open_case"
    topics = (events_topic("intake"),)

    def __init__(self, cases: Cases) -> None:
        self._cases = cases

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, ReferralAccepted):
            return False
        cmd = OpenCase(
            case_id=event.case_id,
            client_id=event.client_id,
            referral_id=event.referral_id,
            site=event.site,
            opened_by=event.accepted_by,
            crisis_id=str(uuid.uuid4()),
            risk_level=event.risk_level,
            referral_received_at=event.received_at,
            client_name=event.client_name,
        )
        ctx = CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)
        try:
            await self._cases.open_case(cmd, ctx)
        except CaseAlreadyOpened:
            return False  # a redelivery, or a replica that got there first
        # (a ConcurrencyConflict goes to the runner: the slot is held by an unfinished write,
        # retried as contention until the relay fences it — it never meant "already opened")
        return True


CRISIS_RETURN = (
    "A crisis was declared before the approved closure reached the case: request closure "
    "again once it is resolved."
)


def crisis_return(cmd: ApproveClosure) -> ReturnClosure:
    """The closure a crisis stopped, returned to active by the case in the approver's name."""
    return ReturnClosure(
        case_id=cmd.case_id,
        reason=CRISIS_RETURN,
        returned_by=cmd.approved_by,
        requested_at=cmd.requested_at,
        approval_id=cmd.approval_id,
        on_behalf_of=cmd.on_behalf_of,
    )


def carrying_out(event: ApprovalGranted | ApprovalReturned) -> CaseCommand | None:
    """The case's command that carries out a decision (None for a kind this service does
    not know: a newer supervision may approve more than it knows of)."""
    match event:
        case ApprovalGranted(kind="plan"):
            return ApprovePlan(
                case_id=event.case_id,
                approved_by=event.decided_by,
                comment=event.comment,
                plan_version=event.subject_version,
                approval_id=event.approval_id,
                on_behalf_of=event.on_behalf_of,
            )
        case ApprovalReturned(kind="plan"):
            return ReturnPlan(
                case_id=event.case_id,
                reason=event.reason,
                returned_by=event.decided_by,
                plan_version=event.subject_version,
                approval_id=event.approval_id,
                on_behalf_of=event.on_behalf_of,
            )
        case ApprovalGranted(kind="closure"):
            return ApproveClosure(
                case_id=event.case_id,
                approved_by=event.decided_by,
                requested_at=event.requested_at,
                approval_id=event.approval_id,
                on_behalf_of=event.on_behalf_of,
                comment=event.comment,
            )
        case ApprovalReturned(kind="closure"):
            return ReturnClosure(
                case_id=event.case_id,
                reason=event.reason,
                returned_by=event.decided_by,
                requested_at=event.requested_at,
                approval_id=event.approval_id,
                on_behalf_of=event.on_behalf_of,
            )
        case ApprovalGranted(kind="assessment") if event.subject_id:
            return SignOffAssessment(
                case_id=event.case_id,
                assessment_id=event.subject_id,
                approval_id=event.approval_id,
                signed_off_by=event.decided_by,
                on_behalf_of=event.on_behalf_of,
                comment=event.comment,
            )
        case ApprovalReturned(kind="assessment") if event.subject_id:
            return ReturnAssessment(
                case_id=event.case_id,
                assessment_id=event.subject_id,
                approval_id=event.approval_id,
                reason=event.reason,
                returned_by=event.decided_by,
                on_behalf_of=event.on_behalf_of,
            )
    return None


class _CarryOutDecision(EventHandler):
    decision: type[ApprovalGranted] | type[ApprovalReturned]
    topics = (events_topic("supervision"),)

    def __init__(self, cases: Cases) -> None:
        self._cases = cases

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, self.decision):
            return False
        cmd = carrying_out(event)
        if cmd is None:
            log.warning("approval %s: kind %s is not known here", event.approval_id, event.kind)
            return False
        ctx = CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)
        try:
            try:
                await self._cases.carry_out(cmd, ctx)
            except CrisisStillOpen:
                if not isinstance(cmd, ApproveClosure):
                    raise
                # a crisis was declared after the closure was requested: the case cannot
                # close, and must not wait in review for a decision already taken
                await self._cases.carry_out(crisis_return(cmd), ctx)
        except CaseError as refused:
            # ids and the refusal's class only: the detail may quote a reason
            log.info(
                "approval %s not carried out on case %s: %s",
                event.approval_id,
                event.case_id,
                type(refused).__name__,
            )
            return False
        return True


class WhenApprovalGrantedCarryItOut(_CarryOutDecision):
    """A granted approval approves the plan version it names, closes the case whose closure
    request it names, or signs off the assessment it names — once: a redelivery finds the
    case no longer waiting and is skipped."""

    name = "when_approval_granted_carry_it_out"
    decision = ApprovalGranted


class WhenApprovalReturnedSendItBack(_CarryOutDecision):
    """A returned approval returns the plan version, the closure request or the assessment
    it names, with the supervisor's reason — once, like a grant."""

    name = "when_approval_returned_send_it_back"
    decision = ApprovalReturned
