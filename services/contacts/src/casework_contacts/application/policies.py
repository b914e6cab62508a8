"""How the contacts service reacts to events (`when_<event>_<action>`), and what its durable
deadlines do when they fire.

| handler                                   | reads           | does                             |
|-------------------------------------------|-----------------|----------------------------------|
| `when_case_changed_replan_obligations`    | cases topic     | keeps `case_facts`, then replans |
|                                           |                 | the case's obligations           |
| `when_contact_logged_count_it`            | contacts topic  | counts a logged contact towards  |
|                                           |                 | the obligations, and uncounts a  |
|                                           |                 | struck-through one (a backstop:  |
|                                           |                 | the HTTP edge does it first)     |
| `when_obligation_changed_keep_deadlines`  | contacts topic  | schedules / cancels the overdue, |
|                                           |                 | due-soon and lone-worker         |
|                                           |                 | deadlines                        |

Each is idempotent: replanning and counting are decided by the `CaseObligations` aggregate
(a second time finds nothing to do), and scheduling a deadline that is already scheduled
changes nothing (`casework.deadlines`). Deadlines fire commands; the aggregates decide.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from casework.contracts.cases import (
    CaseOpened,
    CaseReopened,
    CrisisResolved,
    InpatientDischargeRecorded,
)
from casework.contracts.contacts import (
    ContactCorrected,
    ContactLogged,
    ContactObligationCancelled,
    ContactObligationMet,
    ContactObligationOpened,
    ContactObligationRescheduled,
    LoneWorkerCheckedIn,
    LoneWorkerCheckedOut,
    LoneWorkerOverdue,
)
from casework.deadlines import Deadline, DeadlineHandler, Deadlines
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.projections import APPLIED, EventHandler, ReadModel
from casework.runtime import events_topic

from casework_contacts.adapters.case_facts import CaseFactsStore, change_of
from casework_contacts.application.handlers import Contacts
from casework_contacts.domain.obligations import CaseTrigger

OVERDUE = "contact_overdue"
DUE_SOON = "contact_due_soon"
LONE_WORKER = "lone_worker_overdue"


def _context(envelope: Envelope) -> CommitContext:
    return CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)


def trigger_of(envelope: Envelope, event: DomainEvent) -> CaseTrigger | None:
    """The clock a cases event starts, named so that a redelivery names the same one."""
    match event:
        case CaseOpened():
            return CaseTrigger(
                f"case_opened:{envelope.stream_version}", "case_opened", event.opened_at
            )
        case CaseReopened():
            return CaseTrigger(
                f"case_opened:{envelope.stream_version}", "case_opened", event.reopened_at
            )
        case CrisisResolved():
            return CaseTrigger(
                f"crisis_resolved:{event.crisis_id}", "crisis_resolved", event.resolved_at
            )
        case InpatientDischargeRecorded():
            return CaseTrigger(
                f"inpatient_discharge:{event.admission_id}",
                "inpatient_discharge",
                event.discharged_at,
            )
    return None


class WhenCaseChangedReplanObligations(EventHandler):
    """Keeps the local projection of a case, then replans its obligations at once.

    One handler, so that a replan always sees the facts its event wrote (two consumer groups
    would race). The replan runs even when the projection found the event a duplicate: a
    replica may have died between the two steps, and replanning twice changes nothing. A
    policy, not a projection: rebuilding it would replan every case on historic facts.
    """

    name = "when_case_changed_replan_obligations"
    topics = (events_topic("cases"),)

    def __init__(self, facts: CaseFactsStore, contacts: Contacts) -> None:
        self._facts = facts
        self._contacts = contacts

    async def ensure_indexes(self) -> None:
        await self._facts.ensure_indexes()

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if change_of(event) is None:
            return False
        changed = await self._facts.apply(envelope, event)
        case_id: str = getattr(event, "case_id")  # noqa: B009 - every cases event has one
        replanned = await self._contacts.replan(
            case_id, trigger_of(envelope, event), _context(envelope)
        )
        return changed or replanned


class WhenContactLoggedCountIt(EventHandler):
    """A logged contact counts towards its case's obligations (once: the aggregate keeps
    the ids it counted), and no longer counts once struck through."""

    name = "when_contact_logged_count_it"
    topics = (events_topic("contacts"),)

    def __init__(self, contacts: Contacts) -> None:
        self._contacts = contacts

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if isinstance(event, ContactCorrected):
            return await self._contacts.uncount_contact(event, _context(envelope))
        if not isinstance(event, ContactLogged):
            return False
        return await self._contacts.count_contact(event, _context(envelope))


def overdue_key(case_id: str, obligation_id: str) -> str:
    return f"overdue:{case_id}:{obligation_id}"


def due_soon_key(case_id: str, obligation_id: str) -> str:
    return f"due-soon:{case_id}:{obligation_id}"


def lone_worker_key(contact_id: str) -> str:
    return f"lone-worker:{contact_id}"


class WhenObligationChangedKeepDeadlines(EventHandler):
    """An opened obligation gets its overdue deadline (and a due-soon one `due_soon_lead`
    before, when that is after it opened); a met or cancelled one loses both. A lone
    worker's check-in gets its deadline; the check-out (or the overdue raised) cancels it.

    Per stream, an event is acted on once (`deadline_plans` remembers the last version done,
    written after the deadline operation, so a crash in between repeats the operation, which
    is idempotent): a redelivered `…Opened` cannot bring back a deadline its `…Met` cancelled.
    Even then the aggregate would refuse to raise it: this only saves work.
    """

    name = "when_obligation_changed_keep_deadlines"
    topics = (events_topic("contacts"),)

    def __init__(self, deadlines: Deadlines, plans: ReadModel, *, due_soon_lead: timedelta) -> None:
        self._deadlines = deadlines
        self._plans = plans
        self._lead = due_soon_lead

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(
            event,
            ContactObligationOpened
            | ContactObligationRescheduled
            | ContactObligationMet
            | ContactObligationCancelled
            | LoneWorkerCheckedIn
            | LoneWorkerCheckedOut
            | LoneWorkerOverdue,
        ):
            return False
        done = await self._plans.collection.find_one({"_id": envelope.subject}, {APPLIED: 1})
        if done and done.get(APPLIED, {}).get(envelope.subject, 0) >= envelope.stream_version:
            return False
        await self.keep(event)
        return await self._plans.apply(envelope.subject, envelope, lambda doc: doc)

    async def keep(self, event: DomainEvent) -> None:
        """Schedule or cancel the deadlines one event asks for (idempotent)."""
        match event:
            case ContactObligationOpened():
                payload = {
                    "case_id": event.case_id,
                    "obligation_id": event.obligation_id,
                    "due_at": event.due_at.isoformat(),
                }
                key = overdue_key(event.case_id, event.obligation_id)
                await self._deadlines.schedule(key, OVERDUE, event.due_at, payload)
                soon = event.due_at - self._lead
                if soon > event.opened_at:
                    key = due_soon_key(event.case_id, event.obligation_id)
                    await self._deadlines.schedule(key, DUE_SOON, soon, payload)
            case ContactObligationRescheduled():
                payload = {
                    "case_id": event.case_id,
                    "obligation_id": event.obligation_id,
                    "due_at": event.due_at.isoformat(),
                }
                key = overdue_key(event.case_id, event.obligation_id)
                await self._deadlines.schedule(key, OVERDUE, event.due_at, payload)
                soon_key = due_soon_key(event.case_id, event.obligation_id)
                soon = event.due_at - self._lead
                if soon > event.rescheduled_at:
                    await self._deadlines.schedule(soon_key, DUE_SOON, soon, payload)
                else:
                    await self._deadlines.cancel(soon_key)
            case ContactObligationMet() | ContactObligationCancelled():
                await self._deadlines.cancel(overdue_key(event.case_id, event.obligation_id))
                await self._deadlines.cancel(due_soon_key(event.case_id, event.obligation_id))
            case LoneWorkerCheckedIn():
                payload = {
                    "contact_id": event.contact_id,
                    "due_back_at": event.due_back_at.isoformat(),
                }
                await self._deadlines.schedule(
                    lone_worker_key(event.contact_id), LONE_WORKER, event.due_back_at, payload
                )
            case LoneWorkerCheckedOut() | LoneWorkerOverdue():
                await self._deadlines.cancel(lone_worker_key(event.contact_id))


def deadline_handlers(contacts: Contacts) -> dict[str, DeadlineHandler]:
    """What each kind of deadline does when it fires: send its command; the aggregate
    decides (a met obligation is not overdue, a worker who checked out is safe)."""

    def payload_time(payload: Any, name: str) -> datetime:
        return datetime.fromisoformat(str(payload[name]))

    async def overdue(deadline: Deadline) -> None:
        p = deadline.payload
        await contacts.mark_overdue(p["case_id"], p["obligation_id"], payload_time(p, "due_at"))

    async def due_soon(deadline: Deadline) -> None:
        p = deadline.payload
        await contacts.mark_due_soon(p["case_id"], p["obligation_id"], payload_time(p, "due_at"))

    async def lone_worker(deadline: Deadline) -> None:
        p = deadline.payload
        await contacts.raise_lone_worker_overdue(p["contact_id"], payload_time(p, "due_back_at"))

    return {OVERDUE: overdue, DUE_SOON: due_soon, LONE_WORKER: lone_worker}
