"""The webhook endpoints registered over the API, kept as their events in this service's
database (`webhook_endpoint_events`): one document per event, `_id` = `<endpoint>:<version>`.

**Invariant (one history per endpoint, no lost change):** a change is stored by inserting
the endpoint's next version; the unique `_id` is the concurrency primitive (DESIGN §7), so
of two concurrent changes built on the same version one is stored and the other gets
`ConcurrencyConflict` (409) and changes nothing. A command triggers at most one event, so
each change is one insert: all or nothing without transactions.

The events stay here: they carry the endpoint's secret, so they are never relayed to Kafka
(the service's event store is its outbox; this collection is not).

**Secrets are sealed at rest.** A stored event holds no `secret`: it holds `secret_sealed`,
the secret encrypted (AES-GCM) with the key-encryption key that wraps the data keys
(`casework.privacy.kek`, the KEK file or a KMS), bound to the document's `_id`, so a copy of
the database (a backup, a dump) signs nothing, and a sealed secret moved to another
document does not open. Documents stored before sealing keep their plain `secret` and are
read as they are. A KEK rotation keeps the old KEK in the file until every wrapping made
with it is gone (`casework keys`); these wrappings name their KEK like the data keys' do.
"""

from __future__ import annotations

import base64
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.eventstore import ConcurrencyConflict, Document
from casework.privacy.kek import KekProvider

from casework_notifications.domain.webhook_endpoint import EVENTS, WebhookEndpoint

COLLECTION = "webhook_endpoint_events"


class EndpointStore:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        kek: KekProvider,
        collection: str = COLLECTION,
    ) -> None:
        self.collection: AsyncCollection[Document] = database[collection]
        self.kek = kek

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("endpoint_id", 1), ("version", 1)])

    async def find(self, endpoint_id: str) -> WebhookEndpoint | None:
        cursor = self.collection.find({"endpoint_id": endpoint_id}).sort("version", 1)
        docs = [d async for d in cursor]
        return self._rehydrate(endpoint_id, docs) if docs else None

    async def all(self) -> list[WebhookEndpoint]:
        """Every registered endpoint, by id (a handful: read whole)."""
        by_id: dict[str, list[Document]] = {}
        async for doc in self.collection.find({}):
            by_id.setdefault(str(doc["endpoint_id"]), []).append(doc)
        return [
            self._rehydrate(endpoint_id, sorted(docs, key=lambda d: int(d["version"])))
            for endpoint_id, docs in sorted(by_id.items())
        ]

    async def save(self, endpoint: WebhookEndpoint) -> None:
        pending = endpoint.pending_events
        assert len(pending) <= 1, "an endpoint command triggers at most one event"
        for event in pending:
            version = endpoint.version + 1
            doc_id = f"{endpoint.id}:{version}"
            try:
                await self.collection.insert_one(
                    {
                        "_id": doc_id,
                        "endpoint_id": endpoint.id,
                        "version": version,
                        "type": type(event).__name__,
                        "data": self._seal(doc_id, event.model_dump(mode="json")),
                    }
                )
            except DuplicateKeyError:
                raise ConcurrencyConflict(endpoint.stream_id, endpoint.version) from None
        endpoint.mark_committed()

    def _seal(self, doc_id: str, data: dict[str, Any]) -> dict[str, Any]:
        secret = data.pop("secret", None)
        if secret is not None:
            kek_id, wrapped = self.kek.wrap(str(secret).encode(), context=_context(doc_id))
            data["secret_sealed"] = {
                "kek": kek_id,
                "wrapped": base64.b64encode(wrapped).decode("ascii"),
            }
        return data

    def _open(self, doc: Document) -> dict[str, Any]:
        data = dict(doc["data"])
        sealed = data.pop("secret_sealed", None)
        if sealed is not None:
            wrapped = base64.b64decode(sealed["wrapped"])
            secret = self.kek.unwrap(sealed["kek"], wrapped, context=_context(str(doc["_id"])))
            data["secret"] = secret.decode()
        return data

    def _rehydrate(self, endpoint_id: str, docs: list[Document]) -> WebhookEndpoint:
        events = [EVENTS[str(d["type"])].model_validate(self._open(d)) for d in docs]
        return WebhookEndpoint.rehydrate(endpoint_id, events)


def _context(doc_id: str) -> str:
    return f"casework-webhook-secret:{doc_id}"
