"""The local copy of what notifications needs to know of a case: its site, team,
caseworker and risk (from the cases topic), keyed by case id; written by the policy that
reacts to cases events, before it decides, so the decision sees the event's facts."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.cases import (
    CaseClosed,
    CaseOpened,
    CaseReopened,
    CaseTransferAccepted,
    CaseworkerAssigned,
    CrisisDeclared,
    RiskLevelChanged,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import ReadModel


def change_of(event: DomainEvent) -> dict[str, Any] | None:
    """The fields a cases event sets, or None when it says nothing notifications keeps."""
    match event:
        case CaseOpened():
            return {"site": event.site, "risk_level": event.risk_level, "phase": "open"}
        case CaseworkerAssigned():
            return {"caseworker_id": event.caseworker_id, "team": event.team}
        case RiskLevelChanged():
            return {"risk_level": event.risk_level, "site": event.site}
        case CaseTransferAccepted():
            return {"site": event.to_site}
        case CrisisDeclared():
            change: dict[str, Any] = {"site": event.site, "risk_level": event.risk_level}
            if event.caseworker_id:
                change["caseworker_id"] = event.caseworker_id
            return change
        case CaseClosed():
            return {"phase": "closed"}
        case CaseReopened():
            return {"phase": "open"}
    return None


class CaseFactsStore:
    """`case_facts`: one document per case."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.read_model = ReadModel(database["case_facts"])

    async def ensure_indexes(self) -> None:
        """Reads are by `_id` only."""

    async def apply(self, envelope: Envelope, event: DomainEvent) -> bool:
        change = change_of(event)
        if change is None:
            return False
        case_id: str = getattr(event, "case_id")  # noqa: B009 - every cases event has one
        values = {k: (v.value if hasattr(v, "value") else v) for k, v in change.items()}
        return await self.read_model.apply(case_id, envelope, lambda doc: {**doc, **values})

    async def get(self, case_id: str) -> Document | None:
        return await self.read_model.get(case_id)
