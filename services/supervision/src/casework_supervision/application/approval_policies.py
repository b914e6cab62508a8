"""How approvals react to events (`when_<event>_<action>`), and what their deadline does.

| handler                                  | reads             | does                            |
|------------------------------------------|-------------------|---------------------------------|
| `when_case_changed_request_approvals`    | cases topic       | keeps `case_facts` (the one     |
|                                          |                   | writer: sessions read it too),  |
|                                          |                   | then requests an approval for   |
|                                          |                   | an assessment, a plan proposal, |
|                                          |                   | a closure request; withdraws    |
|                                          |                   | the superseded plan version,    |
|                                          |                   | and what waits when the case    |
|                                          |                   | closes, reopens or is           |
|                                          |                   | transferred                     |
| `when_approval_changed_keep_deadline`    | supervision topic | schedules the `ApprovalOverdue` |
|                                          |                   | deadline at the due time, and   |
|                                          |                   | cancels it once decided         |

Each is idempotent: the approval id is derived from what is approved, so a redelivered
request finds the approval and changes nothing; a withdrawal or an overdue of an approval
that no longer waits changes nothing (the aggregate decides); scheduling what is scheduled
changes nothing (`casework.deadlines`). The deadline fires `Approvals.mark_overdue`; the
aggregate raises `ApprovalOverdue` at most once.
"""

from __future__ import annotations

from datetime import datetime

from casework.contracts.cases import (
    AssessmentRecorded,
    CaseClosed,
    CasePlanProposed,
    CaseReopened,
    CaseTransferAccepted,
    ClosureRequested,
)
from casework.contracts.supervision import (
    ApprovalGranted,
    ApprovalOverdue,
    ApprovalRequested,
    ApprovalReturned,
    ApprovalWithdrawn,
)
from casework.deadlines import Deadline, DeadlineHandler, Deadlines
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.projections import EventHandler, ReadModel
from casework.runtime import events_topic

from casework_supervision.adapters.case_facts import CaseFacts, CaseFactsStore, change_of
from casework_supervision.adapters.deadline_plans import DeadlinePlans
from casework_supervision.application.approvals import Approvals
from casework_supervision.domain.approval_commands import RequestApproval
from casework_supervision.domain.approval_rules import (
    ApprovalKind,
    DuePolicy,
    assessment_approval_id,
    closure_approval_id,
    plan_approval_id,
)

OVERDUE = "approval_overdue"

ACTED_ON = (
    AssessmentRecorded,
    CasePlanProposed,
    ClosureRequested,
    CaseClosed,
    CaseReopened,
    CaseTransferAccepted,
)
"""The case events that request or withdraw approvals (each also changes the case facts)."""


def overdue_key(approval_id: str) -> str:
    return f"approval-overdue:{approval_id}"


def _context(envelope: Envelope) -> CommitContext:
    return CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)


class WhenCaseChangedRequestApprovals(EventHandler):
    """Keeps the local case facts (`case_facts`, of which it is the only writer: sessions
    and the boards read them), then requests or withdraws approvals at once.

    One handler, so that a request always sees the facts its event wrote (site, team,
    caseworker, risk as they were at that point of the case's stream). The approvals step
    runs even when the facts found the event a duplicate (a replica may have died between
    the two): requesting and withdrawing twice changes nothing. A policy, not a projection:
    a rebuild must not replay it.
    """

    name = "when_case_changed_request_approvals"
    topics = (events_topic("cases"),)

    def __init__(self, facts: CaseFactsStore, approvals: Approvals, due: DuePolicy) -> None:
        self._facts = facts
        self._approvals = approvals
        self._due = due

    async def ensure_indexes(self) -> None:
        await self._facts.ensure_indexes()  # the facts are written here only

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, ACTED_ON) and change_of(envelope, event) is None:
            return False  # most case events (notes, goals, contacts) touch nothing kept here
        changed, written = await self._facts.apply_and_keep(envelope, event)
        case_id = getattr(event, "case_id", None)
        if not isinstance(case_id, str) or not isinstance(event, ACTED_ON):
            return changed
        # the facts as this event left them: as just written, else (a duplicate) as stored
        facts = (
            CaseFactsStore.facts_of(case_id, written)
            if written is not None
            else await self._facts.facts(case_id)
        )
        acted = await self._act(envelope, event, case_id, facts)
        return changed or acted

    async def _act(
        self, envelope: Envelope, event: DomainEvent, case_id: str, facts: CaseFacts | None
    ) -> bool:
        ctx = _context(envelope)
        match event:
            case AssessmentRecorded():
                if facts is None:
                    return False
                cmd = self._request(
                    facts,
                    ApprovalKind.ASSESSMENT,
                    assessment_approval_id(case_id, event.assessment_id),
                    envelope.stream_version,
                    event.recorded_by,
                    event.recorded_at,
                    subject_id=event.assessment_id,
                )
                return await self._approvals.request(cmd, ctx)
            case CasePlanProposed():
                if facts is None:
                    return False
                # a newer proposal replaces one still waiting (the case says so too)
                withdrawn = event.plan_version > 1 and await self._approvals.withdraw(
                    plan_approval_id(case_id, event.plan_version - 1), "superseded", ctx
                )
                cmd = self._request(
                    facts,
                    ApprovalKind.PLAN,
                    plan_approval_id(case_id, event.plan_version),
                    event.plan_version,
                    event.proposed_by,
                    event.proposed_at,
                )
                return await self._approvals.request(cmd, ctx) or withdrawn
            case ClosureRequested():
                if facts is None:
                    return False
                cmd = self._request(
                    facts,
                    ApprovalKind.CLOSURE,
                    closure_approval_id(case_id, envelope.stream_version),
                    envelope.stream_version,
                    event.requested_by,
                    event.requested_at,
                )
                return await self._approvals.request(cmd, ctx)
            case CaseClosed() | CaseReopened() | CaseTransferAccepted():
                reason = {
                    CaseClosed: "case_closed",
                    CaseReopened: "case_reopened",
                    CaseTransferAccepted: "case_transferred",
                }[type(event)]
                if facts is None:
                    return False
                acted = False
                for approval_id in _waiting_ids(facts):
                    acted = await self._approvals.withdraw(approval_id, reason, ctx) or acted
                return acted
        return False

    def _request(
        self,
        facts: CaseFacts,
        kind: ApprovalKind,
        approval_id: str,
        subject_version: int,
        requested_by: str,
        requested_at: datetime,
        *,
        subject_id: str | None = None,
    ) -> RequestApproval:
        return RequestApproval(
            approval_id=approval_id,
            kind=kind.value,
            case_id=facts.case_id,
            site=facts.site,
            team=facts.team,
            caseworker_id=facts.caseworker_id,
            subject_version=subject_version,
            subject_id=subject_id,
            requested_by=requested_by,
            requested_at=requested_at,
            due_at=self._due.due_at(requested_at, facts.risk_level),
            client_id=facts.client_id,
        )


def _waiting_ids(facts: CaseFacts) -> list[str]:
    """The approvals the case may still have waiting: its latest assessment, plan version
    and closure request (the aggregate withdraws only those still requested)."""
    ids = []
    if facts.assessment_id:
        ids.append(assessment_approval_id(facts.case_id, facts.assessment_id))
    if facts.plan_version:
        ids.append(plan_approval_id(facts.case_id, facts.plan_version))
    if facts.closure_version:
        ids.append(closure_approval_id(facts.case_id, facts.closure_version))
    return ids


class WhenApprovalChangedKeepDeadline(EventHandler):
    """A requested approval gets its overdue deadline at its due time; a decided or
    withdrawn one loses it (and an overdue one needs it no more).

    Per approval stream, an event is acted on once (`approval_deadline_plans` remembers the
    last version done, written after the deadline operation, which is idempotent; a crash in
    between repeats it): a redelivered `ApprovalRequested` cannot bring back a deadline its
    decision cancelled. Even then the aggregate would refuse to raise it: this saves work.
    """

    name = "when_approval_changed_keep_deadline"
    topics = (events_topic("supervision"),)

    def __init__(self, deadlines: Deadlines, plans: ReadModel) -> None:
        self._deadlines = deadlines
        self._plans = DeadlinePlans(plans)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(
            event,
            ApprovalRequested
            | ApprovalGranted
            | ApprovalReturned
            | ApprovalWithdrawn
            | ApprovalOverdue,
        ):
            return False
        seen, stored = await self._plans.seen(envelope)
        if seen:
            return False
        if isinstance(event, ApprovalRequested):
            payload = {"approval_id": event.approval_id, "due_at": event.due_at.isoformat()}
            await self._deadlines.schedule(
                overdue_key(event.approval_id), OVERDUE, event.due_at, payload
            )
        elif not isinstance(event, ApprovalOverdue):
            await self._deadlines.cancel(overdue_key(event.approval_id))
        return await self._plans.done(envelope, stored)


def deadline_handlers(approvals: Approvals) -> dict[str, DeadlineHandler]:
    """What the approvals' deadline does when it fires: ask the aggregate, which decides."""

    async def overdue(deadline: Deadline) -> None:
        payload = deadline.payload
        due_at = datetime.fromisoformat(str(payload["due_at"]))
        await approvals.mark_overdue(str(payload["approval_id"]), due_at)

    return {OVERDUE: overdue}
