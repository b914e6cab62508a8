"""The `erasure_proofs` read model: one proof record per erasure, for the data-protection
officer — who asked (and on what ground), who decided and how, when, which keys were
destroyed, when it completed. Nothing about the person: the events it is fed by carry none
(codes, ids, times), so the proof stays readable after the client's keys are gone, and a
rebuild from the topics gives the same records.

Fed by the erasure events of intake's own topic, one document per `erasure_id` (all events of
an erasure are on its client's `erasure-<client_id>` stream, hence one partition).
"""

from __future__ import annotations

from typing import Any

from casework.contracts.intake import (
    ErasureCompleted,
    ErasureDecided,
    ErasureRequested,
    SubjectKeyDestroyed,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

from casework_intake.application.ports import ErasureProof


class ErasureProofs(Projection):
    """Proof records of erasures and retention destructions, by erasure id."""

    name = "erasure_proofs"
    topics = (events_topic("intake"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index("client_id")

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        match event:
            case ErasureRequested():
                fields: dict[str, Any] = {
                    "client_id": event.client_id,
                    "subject": event.subject,
                    "record_class": event.record_class,
                    "reason": event.reason.value,
                    "requester": event.requester.value,
                    "reference": event.reference,
                    "rule": event.rule,
                    "requested_by": event.requested_by,
                    "requested_at": event.requested_at,
                    # newest first, then by id: a string both sorts and pages by
                    "order": f"{event.requested_at.isoformat()}|{event.erasure_id}",
                    "status": "requested",
                }
            case ErasureDecided():
                fields = {
                    "outcome": event.outcome.value,
                    "decided_by": event.decided_by,
                    "decided_at": event.decided_at,
                    "holds": [h.model_dump(mode="json") for h in event.holds],
                    "status": "carrying_out" if event.outcome.value == "carried_out" else "refused",
                }
            case SubjectKeyDestroyed():
                fields = {
                    "key_ids": list(event.key_ids),
                    "keys_destroyed_at": event.destroyed_at,
                    "status": "keys_destroyed",
                }
            case ErasureCompleted():
                fields = {
                    "index_entries_deleted": event.index_entries_deleted,
                    "completed_at": event.completed_at,
                    "status": "completed",
                }
            case _:
                return False
        erasure_id: str = event.erasure_id

        def change(doc: Document) -> Document:
            return {**doc, **fields}

        return await self.read_model.apply(erasure_id, envelope, change)

    async def proof(self, erasure_id: str) -> ErasureProof | None:
        doc = await self.read_model.get(erasure_id)
        return _proof(doc) if doc is not None and "requested_at" in doc else None

    async def proofs(
        self, client_id: str | None, limit: int, after: str | None
    ) -> list[ErasureProof]:
        """Most recent first, `limit` of them, after the erasure `after` if given."""
        query: Document = {"order": {"$exists": True}}
        if client_id is not None:
            query["client_id"] = client_id
        if after is not None:
            last = await self.read_model.get(after)
            if last is None or "order" not in last:
                return []
            query["order"] = {"$lt": last["order"]}
        cursor = self.read_model.collection.find(query, {APPLIED: 0}).sort("order", -1).limit(limit)
        return [_proof(doc) async for doc in cursor]


def _proof(doc: Document) -> ErasureProof:
    return ErasureProof(
        erasure_id=doc["_id"],
        client_id=doc["client_id"],
        subject=doc["subject"],
        record_class=doc.get("record_class"),
        reason=doc["reason"],
        requester=doc["requester"],
        reference=doc.get("reference"),
        rule=doc.get("rule"),
        requested_by=doc["requested_by"],
        requested_at=doc["requested_at"],
        status=doc.get("status", "requested"),
        outcome=doc.get("outcome"),
        decided_by=doc.get("decided_by"),
        decided_at=doc.get("decided_at"),
        holds=list(doc.get("holds", [])),
        key_ids=list(doc.get("key_ids", [])),
        keys_destroyed_at=doc.get("keys_destroyed_at"),
        index_entries_deleted=doc.get("index_entries_deleted"),
        completed_at=doc.get("completed_at"),
    )
