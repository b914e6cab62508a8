"""Supervision's local copy of what it needs from the cases service (DESIGN §2): per case its
client, site, team, caseworker, phase, risk, since when a crisis is open, and when it opened.

One document per case (`caseload_facts`), keyed by case id: the cases topic is keyed by the
case's stream, so one partition writes each document; idempotent by stream version
(`ReadModel.apply`). Read by equality on `caseworker_id` (a worker's caseload) and `site`
(indexed), by `_id` otherwise. (The `approvals` work keeps its own copy in
`adapters/case_facts.py`; the two can be merged into one projection.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING

from casework.contracts.cases import (
    AssessmentRecorded,
    CaseClosed,
    CaseOpened,
    CasePlanApproved,
    CaseReopened,
    CaseTransferAccepted,
    CaseworkerAssigned,
    ClosureRequested,
    ClosureReturned,
    CrisisDeclared,
    CrisisResolved,
    RiskLevelChanged,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic


def _value(risk: Any) -> str | None:
    return None if risk is None else str(getattr(risk, "value", risk))


def change_of(event: DomainEvent) -> dict[str, Any] | None:
    """The fields an event of the cases service sets, or None when it sets none."""
    match event:
        case CaseOpened():
            return {
                "client_id": event.client_id,
                "site": event.site,
                "phase": "assessment",
                "open": True,
                "risk_level": _value(event.risk_level),
                "caseworker_id": None,
                "team": None,
                "crisis_open_since": None,
                "opened_at": event.opened_at,
            }
        case CaseworkerAssigned():
            return {"caseworker_id": event.caseworker_id, "team": event.team}
        case CaseTransferAccepted():
            return {"site": event.to_site, "caseworker_id": None, "team": None}
        case AssessmentRecorded():
            return {"phase": "planning"}
        case CasePlanApproved() | ClosureReturned():
            return {"phase": "active"}
        case ClosureRequested():
            return {"phase": "review"}
        case CaseClosed():
            return {"phase": "closed", "open": False, "crisis_open_since": None}
        case CaseReopened():
            return {"phase": "assessment", "open": True, "opened_at": event.reopened_at}
        case RiskLevelChanged():
            return {"risk_level": _value(event.risk_level)}
        case CrisisDeclared():
            return {"crisis_open_since": event.declared_at, "risk_level": _value(event.risk_level)}
        case CrisisResolved():
            return {"crisis_open_since": None}
    return None


class CaseloadFacts(Projection):
    """Per case what the agenda and the boards need (`caseload_facts`)."""

    name = "caseload_facts"
    topics = (events_topic("cases"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("caseworker_id", ASCENDING)])
        await self.read_model.collection.create_index([("site", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change = change_of(event)
        case_id = getattr(event, "case_id", None)
        if change is None or not isinstance(case_id, str):
            return False
        if isinstance(event, CrisisDeclared):
            # a second crisis declared while one is open keeps the first one's start
            def crisis(doc: Document) -> Document:
                since = doc.get("crisis_open_since") or event.declared_at
                return {**doc, **change, "crisis_open_since": since}

            return await self.read_model.apply(case_id, envelope, crisis)
        update: Callable[[Document], Document] = lambda doc: {**doc, **change}  # noqa: E731
        return await self.read_model.apply(case_id, envelope, update)

    async def get(self, case_id: str) -> Document | None:
        return await self.read_model.get(case_id)

    async def of_worker(self, worker_id: str) -> list[Document]:
        """The open cases a worker holds (equality on an indexed field)."""
        cursor = self.read_model.collection.find({"caseworker_id": worker_id}, {APPLIED: 0})
        return [dict(d) async for d in cursor if d.get("phase") != "closed"]

    async def at_site(self, site: str) -> list[Document]:
        """The open cases at a site (equality on an indexed field)."""
        cursor = self.read_model.collection.find({"site": site}, {APPLIED: 0})
        return [dict(d) async for d in cursor if d.get("phase") != "closed"]
