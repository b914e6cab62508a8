"""How the notifications service reacts to other services' events (`when_<event>_<action>`).

| handler                              | reads          | does                                   |
|--------------------------------------|----------------|----------------------------------------|
| `when_case_changed_raise_alerts`     | cases topic    | keeps `case_facts`, then raises crisis,|
|                                      |                | risk-raised and transfer alerts, and   |
|                                      |                | closes them when they are over         |
| `when_work_overdue_raise_alerts`     | contacts topic | raises contact-overdue and lone-worker |
|                                      |                | alerts                                 |

Each is idempotent because the `Alert` aggregate is: a source it has seen changes nothing,
so a redelivered or replayed event notifies nobody twice. Policies, not projections:
rebuilding them would fire history again (harmlessly, but pointlessly).
"""

from __future__ import annotations

from datetime import datetime

from casework.contracts.cases import (
    CaseOpened,
    CaseTransferAccepted,
    CaseTransferRejected,
    CaseTransferRequested,
    CrisisDeclared,
    CrisisResolved,
    RiskLevelChanged,
)
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import ContactOverdue, LoneWorkerCheckedOut, LoneWorkerOverdue
from casework.contracts.notifications import Trigger
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.projections import EventHandler
from casework.runtime import events_topic

from casework_notifications.adapters.case_facts import CaseFactsStore, change_of
from casework_notifications.application.handlers import Alerts, Firing, alert_id_for
from casework_notifications.domain.alert import ANY_SOURCE

ORDER = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.IMMINENT)


def _raised(previous: RiskLevel | None, level: RiskLevel) -> bool:
    """A rise into high or imminent (high → imminent counts; imminent → high does not)."""
    before = ORDER.index(previous) if previous is not None else -1
    return ORDER.index(level) >= ORDER.index(RiskLevel.HIGH) and ORDER.index(level) > before


def _context(envelope: Envelope) -> CommitContext:
    return CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)


class WhenCaseChangedRaiseAlerts(EventHandler):
    """Keeps the local copy of the case, then fires or closes alerts. One handler, so that
    a decision always sees the facts its event wrote. The alert step runs even when the
    facts found the event a duplicate: a replica may have died between the two."""

    name = "when_case_changed_raise_alerts"
    topics = (events_topic("cases"),)

    def __init__(self, facts: CaseFactsStore, alerts: Alerts) -> None:
        self._facts = facts
        self._alerts = alerts

    async def ensure_indexes(self) -> None:
        await self._facts.ensure_indexes()

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        changed = False
        if change_of(event) is not None:
            changed = await self._facts.apply(envelope, event)
        ctx = _context(envelope)
        match event:
            case CrisisDeclared():
                worker = event.caseworker_id
                if worker is None:  # declared before anyone was assigned? ask the copy
                    worker = (await self._facts.get(event.case_id) or {}).get("caseworker_id")
                firing = Firing(
                    Trigger.CRISIS,
                    event.case_id,
                    event.crisis_id,
                    event.site,
                    event.case_id,
                    worker,
                    event.declared_at,
                )
                return await self._alerts.fire(firing, ctx) or changed
            case CrisisResolved():
                alert_id = alert_id_for(Trigger.CRISIS, event.case_id)
                closed = await self._alerts.close(
                    alert_id,
                    event.crisis_id,
                    "crisis resolved",
                    event.resolved_by,
                    event.resolved_at,
                    ctx,
                )
                return closed or changed
            case RiskLevelChanged() if _raised(event.previous_level, event.risk_level):
                return await self._risk(envelope, event.case_id, event.changed_at, ctx) or changed
            case CaseOpened() if event.risk_level is RiskLevel.IMMINENT:
                return await self._risk(envelope, event.case_id, event.opened_at, ctx) or changed
            case CaseTransferRequested():
                firing = Firing(
                    Trigger.TRANSFER_WAITING,
                    event.case_id,
                    f"transfer:{envelope.stream_version}",
                    event.to_site,
                    event.case_id,
                    None,
                    event.requested_at,
                )
                return await self._alerts.fire(firing, ctx) or changed
            case CaseTransferAccepted() | CaseTransferRejected():
                alert_id = alert_id_for(Trigger.TRANSFER_WAITING, event.case_id)
                at = (
                    event.accepted_at
                    if isinstance(event, CaseTransferAccepted)
                    else event.rejected_at
                )
                closed = await self._alerts.close(
                    alert_id, ANY_SOURCE, "transfer decided", None, at, ctx
                )
                return closed or changed
        return changed

    async def _risk(
        self, envelope: Envelope, case_id: str, at: datetime, ctx: CommitContext
    ) -> bool:
        facts = await self._facts.get(case_id) or {}
        site = facts.get("site")
        if not site:
            return False
        firing = Firing(
            Trigger.RISK_RAISED,
            case_id,
            f"risk:{envelope.stream_version}",
            str(site),
            case_id,
            facts.get("caseworker_id"),
            at,
        )
        return await self._alerts.fire(firing, ctx)


class WhenWorkOverdueRaiseAlerts(EventHandler):
    """`ContactOverdue` (grouped per case) and `LoneWorkerOverdue` (per visit, critical);
    the worker's check-out closes the lone-worker alert."""

    name = "when_work_overdue_raise_alerts"
    topics = (events_topic("contacts"),)

    def __init__(self, facts: CaseFactsStore, alerts: Alerts) -> None:
        self._facts = facts
        self._alerts = alerts

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        ctx = _context(envelope)
        match event:
            case ContactOverdue():
                worker = event.caseworker_id
                if worker is None:
                    worker = (await self._facts.get(event.case_id) or {}).get("caseworker_id")
                firing = Firing(
                    Trigger.CONTACT_OVERDUE,
                    event.case_id,
                    event.obligation_id,
                    event.site,
                    event.case_id,
                    worker,
                    event.raised_at,
                )
                return await self._alerts.fire(firing, ctx)
            case LoneWorkerOverdue():
                firing = Firing(
                    Trigger.LONE_WORKER_OVERDUE,
                    event.contact_id,
                    event.contact_id,
                    event.site,
                    event.case_id,
                    event.worker_id,
                    event.raised_at,
                )
                return await self._alerts.fire(firing, ctx)
            case LoneWorkerCheckedOut():
                alert_id = alert_id_for(Trigger.LONE_WORKER_OVERDUE, event.contact_id)
                return await self._alerts.close(
                    alert_id, ANY_SOURCE, "worker checked out", None, event.checked_out_at, ctx
                )
        return False
