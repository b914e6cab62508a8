"""Read models of supervision sessions, their records and what follows from them, fed by the
supervision topic. One writer per document: each document is keyed by the aggregate whose
stream feeds it (a session, a practice note of a session, an action item, a cadence, a
concern), so one partition writes it; idempotent by stream version. Approvals waiting are the
approvals' own `approval_queue` (`adapters/approval_queue.py`), not a copy here.

| collection | `_id` | read by |
|---|---|---|
| `supervision_sessions` | session id | `worker_id`, `supervisor_id` (indexed) |
| `action_items` | action item id | `worker_id`, `session_id` (indexed) |
| `cadence_view` | `worker:<id>` / `case:<id>` | `_id`, `site` (indexed) |
| `concerns` | concern id | `site`, `raised_by` (indexed) |

Practice notes are in no read model: they are read from the session's own stream, by the one
route that authorises the worker and their supervisor only, so that no list or board can show
them by mistake. Tokens (sealed values) are copied as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING

from casework.contracts.supervision import (
    ActionItemDone,
    ActionItemOverdue,
    ActionItemSet,
    CaseReviewCadenceSet,
    CaseReviewDue,
    CaseReviewOverdue,
    CaseReviewRecorded,
    ConcernEscalated,
    ConcernResolved,
    SupervisionAgendaPrepared,
    SupervisionCadenceSet,
    SupervisionDue,
    SupervisionOverdue,
    SupervisionRecordAcknowledged,
    SupervisionSessionCancelled,
    SupervisionSessionHeld,
    SupervisionSessionRescheduled,
    SupervisionSessionScheduled,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

SUPERVISION = (events_topic("supervision"),)


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


Change = Callable[[Document], Document]


def _set(**fields: Any) -> Change:
    return lambda doc: {**doc, **fields}


async def _find(projection: Projection, query: Document, limit: int = 500) -> list[Document]:
    cursor = projection.read_model.collection.find(query, {APPLIED: 0}).limit(limit)
    return [dict(d) async for d in cursor]


class SupervisionSessions(Projection):
    """A session's schedule, agenda and record (reviews sealed under their clients)."""

    name = "supervision_sessions"
    topics = SUPERVISION

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("worker_id", ASCENDING)])
        await self.read_model.collection.create_index([("supervisor_id", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change: Change | None = None
        session_id = getattr(event, "session_id", None)
        match event:
            case SupervisionSessionScheduled():
                change = _set(
                    session_id=event.session_id,
                    worker_id=event.worker_id,
                    supervisor_id=event.supervisor_id,
                    site=event.site,
                    kind=event.kind.value,
                    planned_for=event.planned_for,
                    replaces=event.replaces,
                    status="scheduled",
                    scheduled_at=event.scheduled_at,
                    agenda=[],
                    reviews=[],
                )
            case SupervisionAgendaPrepared():
                change = _set(
                    status="prepared",
                    agenda=[item.model_dump(mode="json") for item in event.items],
                    prepared_at=event.prepared_at,
                    prepared_by=event.prepared_by,
                )
            case CaseReviewRecorded():
                review = {
                    "review_id": event.review_id,
                    "case_id": event.case_id,
                    "client_id": event.client_id,
                    "risk_level": event.risk_level,
                    "findings": event.findings,
                    "decision": event.decision,
                    "reasons": event.reasons,
                    "reviewed_by": event.reviewed_by,
                    "reviewed_at": event.reviewed_at,
                }

                def reviewed(doc: Document) -> Document:
                    return {**doc, "reviews": [*doc.get("reviews", []), review]}

                change = reviewed
            case SupervisionSessionHeld():
                change = _set(status="held", held_at=event.held_at)
            case SupervisionRecordAcknowledged():
                change = _set(status="acknowledged", acknowledged_at=event.acknowledged_at)
            case SupervisionSessionCancelled():
                change = _set(
                    status="cancelled",
                    cancelled_at=event.cancelled_at,
                    cancel_reason=event.reason,
                    worker_subject=event.worker_subject,
                    rescheduled_as=event.rescheduled_as,
                )
            case SupervisionSessionRescheduled():
                change = _set(planned_for=event.planned_for)
        if change is None or not isinstance(session_id, str):
            return False
        return await self.read_model.apply(session_id, envelope, change)

    async def get(self, session_id: str) -> Document | None:
        return await self.read_model.get(session_id)

    async def of_worker(self, worker_id: str) -> list[Document]:
        return await _find(self, {"worker_id": worker_id})


class ActionItems(Projection):
    """Action items: open, done, overdue."""

    name = "action_items"
    topics = SUPERVISION

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("worker_id", ASCENDING)])
        await self.read_model.collection.create_index([("session_id", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        match event:
            case ActionItemSet():
                change = _set(
                    action_item_id=event.action_item_id,
                    session_id=event.session_id,
                    worker_id=event.worker_id,
                    supervisor_id=event.supervisor_id,
                    owner_id=event.owner_id,
                    site=event.site,
                    case_id=event.case_id,
                    subject_id=event.subject_id,
                    description=event.description,
                    due_at=event.due_at,
                    set_at=event.set_at,
                    status="open",
                    overdue=False,
                )
            case ActionItemDone():
                change = _set(status="done", done_at=event.done_at, done_by=event.done_by)
            case ActionItemOverdue():
                change = _set(overdue=True, overdue_raised_at=event.raised_at)
            case _:
                return False
        return await self.read_model.apply(event.action_item_id, envelope, change)

    async def get(self, item_id: str) -> Document | None:
        return await self.read_model.get(item_id)

    async def of_worker(self, worker_id: str) -> list[Document]:
        return await _find(self, {"worker_id": worker_id})

    async def of_session(self, session_id: str) -> list[Document]:
        return await _find(self, {"session_id": session_id})


class CadenceView(Projection):
    """When each worker's next supervision and each case's next review is due, and whether
    it is overdue (`_id` `worker:<id>` or `case:<id>`)."""

    name = "cadence_view"
    topics = SUPERVISION

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("site", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        match event:
            case SupervisionCadenceSet():
                doc_id = f"worker:{event.worker_id}"
                change = _set(
                    kind="worker",
                    worker_id=event.worker_id,
                    supervisor_id=event.supervisor_id,
                    site=event.site if event.due_at is not None else None,
                    due_at=event.due_at,
                    rule=event.rule,
                    last_held_at=event.last_held_at,
                    overdue=False,
                    due_soon=False,
                )
            case CaseReviewCadenceSet():
                doc_id = f"case:{event.case_id}"
                change = _set(
                    kind="case",
                    case_id=event.case_id,
                    site=event.site if event.due_at is not None else None,
                    team=event.team,
                    caseworker_id=event.caseworker_id,
                    risk_level=event.risk_level,
                    due_at=event.due_at,
                    last_reviewed_at=event.last_reviewed_at,
                    overdue=False,
                    due_soon=False,
                )
            case SupervisionOverdue() | SupervisionDue():
                doc_id = f"worker:{event.worker_id}"
                change = self._raised(event)
            case CaseReviewOverdue() | CaseReviewDue():
                doc_id = f"case:{event.case_id}"
                change = self._raised(event)
            case _:
                return False
        return await self.read_model.apply(doc_id, envelope, change)

    @staticmethod
    def _raised(event: Any) -> Change:
        flag = "overdue" if type(event).__name__.endswith("Overdue") else "due_soon"

        def raised(doc: Document) -> Document:
            due = doc.get("due_at")
            # only for the due time the document holds (a later cadence set resets it); the
            # database keeps milliseconds
            if due is None or abs(_naive(due) - _naive(event.due_at)) >= timedelta(milliseconds=1):
                return doc
            return {**doc, flag: True}

        return raised

    async def get(self, doc_id: str) -> Document | None:
        return await self.read_model.get(doc_id)

    async def many(self, doc_ids: list[str]) -> dict[str, Document]:
        return await self.read_model.get_many(doc_ids)

    async def at_site(self, site: str) -> list[Document]:
        return await _find(self, {"site": site}, limit=100_000)


class Concerns(Projection):
    """Concerns escalated to site managers, open or resolved."""

    name = "concerns"
    topics = SUPERVISION

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("site", ASCENDING)])
        await self.read_model.collection.create_index([("raised_by", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        match event:
            case ConcernEscalated():
                change = _set(
                    concern_id=event.concern_id,
                    site=event.site,
                    worker_id=event.worker_id,
                    case_id=event.case_id,
                    subject_id=event.subject_id,
                    summary=event.summary,
                    raised_by=event.raised_by,
                    raised_at=event.raised_at,
                    status="open",
                )
            case ConcernResolved():
                change = _set(
                    status="resolved",
                    resolution=event.resolution,
                    resolved_by=event.resolved_by,
                    resolved_at=event.resolved_at,
                )
            case _:
                return False
        return await self.read_model.apply(event.concern_id, envelope, change)

    async def get(self, concern_id: str) -> Document | None:
        return await self.read_model.get(concern_id)

    async def at_site(self, site: str) -> list[Document]:
        return await _find(self, {"site": site})

    async def raised_by(self, staff_id: str) -> list[Document]:
        return await _find(self, {"raised_by": staff_id})
