"""Supervision's local copy of what approvals need from the cases service (DESIGN §2): per
case its site, team, caseworker, risk, client id, and the latest assessment, plan version and
closure request (so that a closed, reopened or transferred case's waiting approvals can be
named and withdrawn).

A narrow interface (`CaseFactsStore.apply`, `.get`), one document per case keyed by case
id: the cases topic is keyed by case stream, so one partition writes each document; applied
idempotently by stream version (`ReadModel.apply`). Kept by the approvals policy itself
(`WhenCaseChangedRequestApprovals`), in the same handler that requests approvals, so that a
request always sees the facts its own event wrote. (The `sessions` work keeps case facts of
its own for the agenda; the two can be merged into one projection later.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.cases import (
    AssessmentRecorded,
    CaseClosed,
    CaseOpened,
    CasePlanProposed,
    CaseReopened,
    CaseTransferAccepted,
    CaseworkerAssigned,
    ClosureRequested,
    CrisisDeclared,
    RiskLevelChanged,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import ReadModel

COLLECTION = "approval_case_facts"


@dataclass(frozen=True)
class CaseFacts:
    """What approvals know of a case."""

    case_id: str
    site: str
    team: str | None
    caseworker_id: str | None
    risk_level: str | None
    client_id: str | None
    assessment_id: str | None
    plan_version: int | None
    closure_version: int | None


def change_of(envelope: Envelope, event: DomainEvent) -> dict[str, Any] | None:
    """The fields a cases event sets, or None when it sets none."""
    match event:
        case CaseOpened():
            return {
                "site": event.site,
                "risk_level": _value(event.risk_level),
                "client_id": event.client_id,
                "team": None,
                "caseworker_id": None,
            }
        case CaseworkerAssigned():
            return {"caseworker_id": event.caseworker_id, "team": event.team}
        case CaseTransferAccepted():
            return {"site": event.to_site, "caseworker_id": None, "team": None}
        case RiskLevelChanged() | CrisisDeclared():
            return {"risk_level": _value(event.risk_level)}
        case AssessmentRecorded():
            return {"assessment_id": event.assessment_id}
        case CasePlanProposed():
            return {"plan_version": event.plan_version}
        case ClosureRequested():
            return {"closure_version": envelope.stream_version}
        case CaseClosed() | CaseReopened():
            return {}
    return None


def _value(risk: Any) -> str | None:
    return None if risk is None else str(getattr(risk, "value", risk))


class CaseFactsStore:
    """The `approval_case_facts` collection: written by the approvals policy only."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.read_model = ReadModel(database[COLLECTION])

    async def apply(self, envelope: Envelope, event: DomainEvent) -> bool:
        """Apply a cases event; False for a duplicate or an event that changes nothing."""
        change = change_of(envelope, event)
        case_id = getattr(event, "case_id", None)
        if change is None or not isinstance(case_id, str):
            return False
        return await self.read_model.apply(case_id, envelope, lambda doc: {**doc, **change})

    async def get(self, case_id: str) -> CaseFacts | None:
        doc = await self.read_model.get(case_id)
        if doc is None or not doc.get("site"):
            return None
        return CaseFacts(
            case_id=case_id,
            site=str(doc["site"]),
            team=doc.get("team"),
            caseworker_id=doc.get("caseworker_id"),
            risk_level=doc.get("risk_level"),
            client_id=doc.get("client_id"),
            assessment_id=doc.get("assessment_id"),
            plan_version=doc.get("plan_version"),
            closure_version=doc.get("closure_version"),
        )
