"""The MongoDB event store, which is also the outbox (DESIGN §4).

A command's events are written as **one commit document**, so a command is all-or-nothing
without transactions. The commit's `_id` is `<stream id>:<first version>`, zero-padded: two
writers that loaded the same version both try to insert the same `_id`, and the unique index
lets exactly one win — the only concurrency primitive that behaves the same on MongoDB and
FerretDB (DESIGN §7). The loser gets `ConcurrencyConflict`.

The outbox is kept with inserts and deletes only, never updates: FerretDB rewrites a whole
document per update (measured on its SQLite backend at ~50 ms per document in a 10k-document
collection, against ~1 ms per insert; docs/benchmarks.md). An append writes three documents,
each with the commit's `_id`:

1. `outbox` — a copy of the commit, *before* the commit itself, so that no stored commit
   can lack an outbox entry, whatever crashes when;
2. `events` — the commit: the one write that decides whether the command happened;
3. `outbox_committed` — the writer's confirmation that step 2 succeeded.

The relay publishes confirmed entries and deletes them. An entry left unconfirmed (the writer
died between steps) is settled by the relay after a grace period: published from the stored
commit if there is one, dropped if there is none. The `events` collection is append-only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from opentelemetry import propagate
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.aggregate import Aggregate
from casework.clock import Clock, SystemClock
from casework.envelope import Envelope
from casework.events import DomainEvent, EventRegistry
from casework.metrics import Metrics

Document = dict[str, Any]

log = logging.getLogger(__name__)


class ConcurrencyConflict(Exception):
    """Another writer committed to the stream after this one loaded it."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(
            f"{stream_id} changed after version {expected_version} was read; "
            "reload it and try again"
        )
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass(frozen=True)
class CommitContext:
    """Who and what caused a commit, carried on every event's envelope."""

    correlation_id: str | None = None
    causation_id: str | None = None
    site: str | None = None


def commit_id(stream_id: str, first_version: int) -> str:
    """The `_id` of the commit whose first event has this version."""
    return f"{stream_id}:{first_version:010d}"


class EventStore:
    """Appends and loads the event streams of one service."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        source: str,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        collection: str = "events",
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.commits: AsyncCollection[Document] = database[collection]
        self.outbox: AsyncCollection[Document] = database[f"{collection}_outbox"]
        self.confirmations: AsyncCollection[Document] = database[f"{collection}_committed"]
        self.source = source
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._on_commit = on_commit

    def set_on_commit(self, callback: Callable[[], None]) -> None:
        """Register the relay's wake-up call, run right after every successful append."""
        self._on_commit = callback

    async def ensure_indexes(self) -> None:
        """The index that stream loading uses (the outbox collections stay small)."""
        await self.commits.create_index([("stream_id", ASCENDING), ("first", ASCENDING)])

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommitContext | None = None,
    ) -> list[Envelope]:
        """Store `events` as the next commit of the stream, or raise `ConcurrencyConflict`."""
        if not events:
            return []
        context = context or CommitContext()
        now = self._clock.now()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        envelopes = [
            Envelope(
                type=event.type_name(),
                source=self.source,
                subject=stream_id,
                time=now,
                data=event.model_dump(mode="json"),
                stream_version=expected_version + offset,
                site=context.site,
                correlation_id=context.correlation_id,
                causation_id=context.causation_id,
                traceparent=carrier.get("traceparent"),
                tracestate=carrier.get("tracestate"),
            )
            for offset, event in enumerate(events, start=1)
        ]
        first = expected_version + 1
        commit = {
            "_id": commit_id(stream_id, first),
            "stream_id": stream_id,
            "first": first,
            "last": expected_version + len(events),
            "recorded_at": now,
            "events": [e.to_document() for e in envelopes],
        }
        try:
            # another writer's entry for this version, in flight or unpublished: it won
            await self.outbox.insert_one(commit)
        except DuplicateKeyError:
            self._conflict()
            raise ConcurrencyConflict(stream_id, expected_version) from None
        try:
            await self.commits.insert_one(commit)
        except DuplicateKeyError:
            # the winner's entry was already published and gone; ours must not linger
            await self.outbox.delete_one({"_id": commit["_id"]})
            self._conflict()
            raise ConcurrencyConflict(stream_id, expected_version) from None
        try:
            await self.confirmations.insert_one({"_id": commit["_id"]})
        except Exception:
            # The command happened (the commit is stored); the relay will find the entry
            # unconfirmed and publish it from the commit after its grace period.
            log.warning("could not confirm commit %s; it will be relayed late", commit["_id"])
        if self._metrics:
            for e in envelopes:
                self._metrics.events_appended.labels(e.type).inc()
        if self._on_commit:
            self._on_commit()
        return envelopes

    def _conflict(self) -> None:
        if self._metrics:
            self._metrics.commit_conflicts.inc()

    async def load(self, stream_id: str) -> list[Envelope]:
        """Every event of the stream in version order (empty when the stream is unknown)."""
        cursor = self.commits.find({"stream_id": stream_id}).sort("first", ASCENDING)
        return [Envelope.from_document(e) async for c in cursor for e in c["events"]]


A = TypeVar("A", bound=Aggregate)


class AggregateNotFound(LookupError):
    """The aggregate was never created."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"no {kind} with id {id}")
        self.kind = kind
        self.id = id


class Repository(Generic[A]):
    """Loads aggregates of one type from their streams and commits their pending events."""

    def __init__(self, store: EventStore, aggregate: type[A], registry: EventRegistry) -> None:
        self._store = store
        self._aggregate = aggregate
        self._registry = registry

    async def find(self, id: str) -> A | None:
        """The aggregate, or None when its stream is empty."""
        history = await self._store.load(self._aggregate.stream_id_for(id))
        if not history:
            return None
        return self._aggregate.rehydrate(
            id, (self._registry.parse(e.type, dict(e.data)) for e in history)
        )

    async def get(self, id: str) -> A:
        """The aggregate, or `AggregateNotFound`."""
        aggregate = await self.find(id)
        if aggregate is None:
            raise AggregateNotFound(self._aggregate.stream_type, id)
        return aggregate

    def new(self, id: str) -> A:
        """A fresh aggregate with no history."""
        return self._aggregate(id)

    async def save(self, aggregate: A, context: CommitContext | None = None) -> list[Envelope]:
        """Commit the aggregate's pending events as one commit."""
        context = context or CommitContext()
        if context.site is None and aggregate.site is not None:
            context = CommitContext(context.correlation_id, context.causation_id, aggregate.site)
        envelopes = await self._store.append(
            aggregate.stream_id, aggregate.version, aggregate.pending_events, context
        )
        aggregate.mark_committed()
        return envelopes
