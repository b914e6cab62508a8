"""The local copy of what notifications needs to know of a case: its site, team,
caseworker, risk and crises (from the cases topic), keyed by case id; written by the policy
that reacts to cases events, before it decides, so the decision sees the event's facts.

A case's crises are kept as the stream versions they span (`crises`: one
`{crisis_id, declared, resolved}` per crisis, `resolved` None while open), not only as "open
now", so that `in_crisis(facts, version)` answers for the moment of any event of the stream:
the same answer on first delivery, redelivery or a replay from offset 0 (when the copy is
already ahead of the event). A copy written before crises were kept reads as having had none
until the case's next crisis."""

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
    CrisisResolved,
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
        case CrisisResolved():
            return {}  # only `crises` changes (`_crises`)
        case CaseClosed():
            return {"phase": "closed"}
        case CaseReopened():
            return {"phase": "open"}
    return None


def _crises(doc: Document, event: DomainEvent, version: int) -> dict[str, Any]:
    crises: list[dict[str, Any]] = list(doc.get("crises", []))
    match event:
        case CrisisDeclared():
            crises.append({"crisis_id": event.crisis_id, "declared": version, "resolved": None})
        case CrisisResolved():
            crises = [
                {**c, "resolved": version}
                if c["crisis_id"] == event.crisis_id and c["resolved"] is None
                else c
                for c in crises
            ]
        case _:
            return {}
    return {"crises": crises}


def in_crisis(facts: Document, version: int) -> bool:
    """Whether the case had a crisis open at its stream's event `version`: declared by an
    earlier event, not resolved by an earlier one. History does not change, so neither does
    the answer, whenever it is asked (first delivery, redelivery, replay)."""
    return any(
        c["declared"] < version and (c["resolved"] is None or version < c["resolved"])
        for c in facts.get("crises", [])
    )


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
        version = envelope.stream_version
        return await self.read_model.apply(
            case_id, envelope, lambda doc: {**doc, **values, **_crises(doc, event, version)}
        )

    async def get(self, case_id: str) -> Document | None:
        return await self.read_model.get(case_id)
