"""The contacts service's local copy of what it needs from the cases service (DESIGN §2):
per case its client, site, phase, risk, caseworker, team, whether a crisis is open and
whether the client is an inpatient.

One document per case, keyed by case id (the cases topic is keyed by case stream, so one
partition writes each document), idempotent by stream version (`ReadModel.apply`). The
policy that keeps it (`WhenCaseChangedReplanObligations`) replans the case's obligations
after each write; reads use it to authorise (`scope`) and to find a worker's or a team's
cases by equality on an indexed field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

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
    InpatientAdmissionRecorded,
    InpatientDischargeRecorded,
    RiskLevelChanged,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, ReadModel

from casework_contacts.domain.access import CaseScope
from casework_contacts.domain.obligations import CaseFacts

COLLECTION = "case_facts"


def change_of(event: DomainEvent) -> dict[str, Any] | None:
    """The fields an event of the cases service sets, or None when it sets none."""
    match event:
        case CaseOpened():
            return {
                "client_id": event.client_id,
                "site": event.site,
                "phase": "assessment",
                "risk_level": _value(event.risk_level),
                "caseworker_id": None,
                "team": None,
                "crisis_open": False,
                "inpatient": False,
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
            return {"phase": "closed", "crisis_open": False}
        case CaseReopened():
            return {"phase": "assessment"}
        case RiskLevelChanged():
            return {"risk_level": _value(event.risk_level)}
        case CrisisDeclared():
            return {"crisis_open": True, "risk_level": _value(event.risk_level)}
        case CrisisResolved():
            return {"crisis_open": False}
        case InpatientAdmissionRecorded():
            return {"inpatient": True}
        case InpatientDischargeRecorded():
            return {"inpatient": False}
    return None


def _value(risk: Any) -> str | None:
    return None if risk is None else str(getattr(risk, "value", risk))


def facts_of(doc: Document) -> CaseFacts:
    """The policy's view of a case document."""
    return CaseFacts(
        case_id=str(doc["_id"]),
        site=doc.get("site") or "",
        phase=doc.get("phase") or "assessment",
        risk=doc.get("risk_level"),
        caseworker_id=doc.get("caseworker_id"),
        team=doc.get("team"),
    )


def scope_of(doc: Document) -> CaseScope:
    """The access rule's view of a case document."""
    return CaseScope(
        site=doc.get("site"), caseworker_id=doc.get("caseworker_id"), team=doc.get("team")
    )


class CaseFactsStore:
    """The `case_facts` collection: written by the policy, read by everyone here."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.read_model = ReadModel(database[COLLECTION])

    async def ensure_indexes(self) -> None:
        collection = self.read_model.collection
        await collection.create_index([("caseworker_id", ASCENDING)])
        await collection.create_index([("team", ASCENDING)])

    async def apply(self, envelope: Envelope, event: DomainEvent) -> bool:
        """Apply a cases event; False for a duplicate or an event that changes nothing."""
        change = change_of(event)
        case_id = getattr(event, "case_id", None)
        if change is None or not isinstance(case_id, str):
            return False
        update: Callable[[Document], Document] = lambda doc: {**doc, **change}  # noqa: E731
        return await self.read_model.apply(case_id, envelope, update)

    async def get(self, case_id: str) -> Document | None:
        return await self.read_model.get(case_id)

    async def by_ids(self, case_ids: list[str]) -> dict[str, Document]:
        """Several cases, each read by its `_id` (`ReadModel.get_many`)."""
        return await self.read_model.get_many(case_ids)

    async def of_worker(self, worker_id: str) -> list[Document]:
        """The open cases a worker holds (equality on an indexed field)."""
        cursor = self.read_model.collection.find({"caseworker_id": worker_id}, {APPLIED: 0})
        return [dict(d) async for d in cursor if d.get("phase") != "closed"]

    async def of_team(self, site: str, team: str) -> list[Document]:
        """The open cases of a team at a site (equality on an indexed field)."""
        cursor = self.read_model.collection.find({"team": team}, {APPLIED: 0})
        return [
            dict(d) async for d in cursor if d.get("site") == site and d.get("phase") != "closed"
        ]
