"""Who holds each case: the index a caseload move needs to find a worker's open cases.

One document per case (keyed by case id, so one partition writes it), fed by the service's
own topic. It trails the event store by the relay's and the consumer's latency; a move
re-checks each case against its stream (`AssignCaseworker.expected_caseworker_id`), so a
stale entry can make a case be missed or refused, never moved wrongly.

The query filters on `caseworker_id`. MongoDB uses the index; FerretDB on SQLite scans the
collection (NOTES.md). One small document per case is fine at an agency's scale (thousands
of cases); a busier deployment would keep one document per worker instead.
"""

from __future__ import annotations

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
from casework.projections import Projection
from casework.runtime import events_topic

from casework_cases.domain.caseload import HeldCase


class Assignments(Projection):
    """Case id → site, caseworker, team, phase, risk level and whether in crisis (what a
    caseload move and the caseload weighting need)."""

    name = "assignments"
    concurrent = True  # writes only through its read model: casework.projections
    topics = (events_topic("cases"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("caseworker_id", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change: dict[str, Any]
        match event:
            case CaseOpened(case_id=case_id):
                change = {
                    "site": event.site,
                    "phase": "assessment",
                    "caseworker_id": None,
                    "risk_level": event.risk_level.value if event.risk_level else None,
                    "in_crisis": False,
                }
            case RiskLevelChanged(case_id=case_id):
                change = {"risk_level": event.risk_level.value}
            case CrisisDeclared(case_id=case_id):
                change = {"in_crisis": True, "risk_level": event.risk_level.value}
            case CrisisResolved(case_id=case_id):
                change = {"in_crisis": False}
            case CaseworkerAssigned(case_id=case_id):
                change = {"caseworker_id": event.caseworker_id, "team": event.team}
            case CaseTransferAccepted(case_id=case_id):
                change = {"site": event.to_site, "caseworker_id": None, "team": None}
            case AssessmentRecorded(case_id=case_id):
                change = {"phase": "planning"}
            case CasePlanApproved(case_id=case_id) | ClosureReturned(case_id=case_id):
                change = {"phase": "active"}
            case ClosureRequested(case_id=case_id):
                change = {"phase": "review"}
            case CaseClosed(case_id=case_id):
                change = {"phase": "closed"}
            case CaseReopened(case_id=case_id):
                change = {"phase": "assessment"}
            case _:
                return False

        def update(doc: Document) -> Document:
            return {**doc, **change}

        return await self.read_model.apply(case_id, envelope, update)

    async def open_cases_of(self, caseworker_id: str) -> list[str]:
        """Ids of the cases the worker holds that are not closed, sorted by id."""
        cursor = self.read_model.collection.find(
            {"caseworker_id": caseworker_id, "phase": {"$ne": "closed"}}, {"_id": 1}
        ).sort("_id", ASCENDING)
        return [str(doc["_id"]) async for doc in cursor]

    async def held_by(self, caseworker_id: str) -> list[HeldCase]:
        """The open cases the worker holds, with what weighs them (risk, crisis)."""
        cursor = self.read_model.collection.find(
            {"caseworker_id": caseworker_id},
            {"_id": 1, "phase": 1, "risk_level": 1, "in_crisis": 1},
        )
        return [
            HeldCase(str(doc["_id"]), doc.get("risk_level"), bool(doc.get("in_crisis")))
            async for doc in cursor
            if doc.get("phase") != "closed"
        ]
