"""The `client_cases` read model: the cases of each client as intake knows them, so that the
erasure's legal-hold check and the retention rules know which of a client's cases are open.

Intake does not ask the cases service (no service calls another, DESIGN §2): it projects the
cases service's `CaseOpened`, `CaseClosed`, `CaseReopened` and `CaseTransferAccepted`, and
its own `ReferralAccepted` — the acceptance is intake's own event, so a case that is about to
open counts as open (`opening`) from the moment the referral is accepted, before the cases
service's event has come back. One document per case, keyed by case id; the two topics are
merged by field: the acceptance fills in what it knows and never overrides a state the case's
own events set (order across topics is not guaranteed).

After each change of a case's state, `on_change` is called with the case as it now stands
(the retention schedule: a deadline per record class when it closes, cancelled when it
reopens). It is called on every delivery, also of an event already applied, so that a crash
between the document write and the schedule is completed by the redelivery; what it does
depends only on the document, and scheduling the same thing again changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.cases import CaseClosed, CaseOpened, CaseReopened, CaseTransferAccepted
from casework.contracts.intake import ReferralAccepted
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

from casework_intake.application.ports import CLOSED, OPEN, OPENING, KnownCase

CaseChanged = Callable[[KnownCase], Awaitable[None]]


class ClientCases(Projection):
    """Cases by client: state (`opening`, `open`, `closed`), site, when closed."""

    name = "client_cases"
    topics = (events_topic("intake"), events_topic("cases"))

    def __init__(
        self,
        database: AsyncDatabase[Document],
        collection: str | None = None,
        *,
        on_change: CaseChanged | None = None,
    ) -> None:
        # a rebuild's fresh copy (`casework.rebuild.fresh_copy`) has no `on_change`: it
        # re-folds the documents and leaves the schedule as the live projection left it
        super().__init__(database, collection)
        self.on_change = on_change

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index("client_id")

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        match event:
            case ReferralAccepted():
                # the case's own events decide its retention: no `on_change` here
                return await self.read_model.apply(
                    event.case_id, envelope, lambda doc: _accepted(doc, event)
                )
            case CaseOpened():
                change = _opened(event)
            case CaseClosed():
                change = _closed(event.closed_at)
            case CaseReopened():
                change = _reopened
            case CaseTransferAccepted():
                to_site = event.to_site

                def change(doc: Document) -> Document:
                    return {**doc, "site": to_site}

            case _:
                return False
        case_id: str = event.case_id
        changed = await self.read_model.apply(case_id, envelope, change)
        if self.on_change is not None:
            doc = await self.read_model.get(case_id)
            if doc is not None and doc.get("client_id"):
                await self.on_change(_known(doc))
        return changed

    async def cases_of(self, client_id: str) -> list[KnownCase]:
        """Every case of the client intake knows of (equality on an indexed field)."""
        cursor = self.read_model.collection.find({"client_id": client_id}, {APPLIED: 0})
        return [_known(doc) async for doc in cursor if doc.get("state")]


def _accepted(doc: Document, event: ReferralAccepted) -> Document:
    return {
        **doc,
        "client_id": doc.get("client_id") or event.client_id,
        "site": doc.get("site") or event.site,
        "state": doc.get("state") or OPENING,
    }


def _opened(event: CaseOpened) -> Callable[[Document], Document]:
    def change(doc: Document) -> Document:
        # a case closed or reopened since (same stream, applied in order) keeps its state
        state = OPEN if doc.get("state") in (None, OPENING) else doc["state"]
        return {**doc, "client_id": event.client_id, "site": event.site, "state": state}

    return change


def _closed(at: datetime) -> Callable[[Document], Document]:
    def change(doc: Document) -> Document:
        return {**doc, "state": CLOSED, "closed_at": at}

    return change


def _reopened(doc: Document) -> Document:
    return {**doc, "state": OPEN, "closed_at": None}


def _known(doc: Document) -> KnownCase:
    return KnownCase(
        case_id=doc["_id"],
        client_id=doc["client_id"],
        site=doc.get("site"),
        state=doc.get("state") or OPENING,
        closed_at=doc.get("closed_at"),
    )
