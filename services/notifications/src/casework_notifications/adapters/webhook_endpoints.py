"""The webhook endpoints registered over the API, kept as their events in this service's
database (`webhook_endpoint_events`): one document per event, `_id` = `<endpoint>:<version>`.

**Invariant (one history per endpoint, no lost change):** a change is stored by inserting
the endpoint's next version; the unique `_id` is the concurrency primitive (DESIGN §7), so
of two concurrent changes built on the same version one is stored and the other gets
`ConcurrencyConflict` (409) and changes nothing. A command triggers at most one event, so
each change is one insert: all or nothing without transactions.

The events stay here: they carry the endpoint's secret, so they are never relayed to Kafka
(the service's event store is its outbox; this collection is not).
"""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.eventstore import ConcurrencyConflict, Document

from casework_notifications.domain.webhook_endpoint import EVENTS, WebhookEndpoint

COLLECTION = "webhook_endpoint_events"


class EndpointStore:
    def __init__(self, database: AsyncDatabase[Document], collection: str = COLLECTION) -> None:
        self.collection: AsyncCollection[Document] = database[collection]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("endpoint_id", 1), ("version", 1)])

    async def find(self, endpoint_id: str) -> WebhookEndpoint | None:
        cursor = self.collection.find({"endpoint_id": endpoint_id}).sort("version", 1)
        docs = [d async for d in cursor]
        return _rehydrate(endpoint_id, docs) if docs else None

    async def all(self) -> list[WebhookEndpoint]:
        """Every registered endpoint, by id (a handful: read whole)."""
        by_id: dict[str, list[Document]] = {}
        async for doc in self.collection.find({}):
            by_id.setdefault(str(doc["endpoint_id"]), []).append(doc)
        return [
            _rehydrate(endpoint_id, sorted(docs, key=lambda d: int(d["version"])))
            for endpoint_id, docs in sorted(by_id.items())
        ]

    async def save(self, endpoint: WebhookEndpoint) -> None:
        pending = endpoint.pending_events
        assert len(pending) <= 1, "an endpoint command triggers at most one event"
        for event in pending:
            version = endpoint.version + 1
            try:
                await self.collection.insert_one(
                    {
                        "_id": f"{endpoint.id}:{version}",
                        "endpoint_id": endpoint.id,
                        "version": version,
                        "type": type(event).__name__,
                        "data": event.model_dump(mode="json"),
                    }
                )
            except DuplicateKeyError:
                raise ConcurrencyConflict(endpoint.stream_id, endpoint.version) from None
        endpoint.mark_committed()


def _rehydrate(endpoint_id: str, docs: list[Document]) -> WebhookEndpoint:
    events = [EVENTS[str(d["type"])].model_validate(d["data"]) for d in docs]
    return WebhookEndpoint.rehydrate(endpoint_id, events)
