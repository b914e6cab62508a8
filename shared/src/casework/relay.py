"""The outbox relay: publishes committed events to Kafka, then deletes their outbox entries
(DESIGN §4; how the outbox is written: `casework.eventstore`).

- Idempotent producer with `acks=all`; key = stream id, so one stream stays in one partition.
- Per-stream order: a batch takes each stream's entries in version order, and its entries
  are deleted only after Kafka acknowledged every record of it. A failure anywhere leaves
  the whole batch in the outbox, to be sent again (at least once; consumers de-duplicate by
  stream version).
- An entry whose writer never confirmed the commit waits for a grace period, then is
  published from the stored commit, or dropped when no commit was stored.
- Woken right after an append (`wake`), with a poll as the fallback for commits written by
  other replicas or before a crash.
- Several replicas: a lease document, taken by inserting a unique `_id`, lets one relay work
  at a time. Should two ever overlap (a lease that expired during a long pause), the effect
  is duplicates, never loss or reordering within a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from casework.clock import Clock, SystemClock
from casework.envelope import Envelope
from casework.eventstore import Document, EventStore
from casework.health import Backlog, FailureKind, failure_kind
from casework.metrics import Metrics

log = logging.getLogger(__name__)


def kafka_producer(bootstrap_servers: str, client_id: str, **connection: Any) -> AIOKafkaProducer:
    """A producer with the durability settings every publisher here must use.

    `connection` adds the security options (`casework.kafka_clients.kafka_client_options`).
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        **connection,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


class RelayLease:
    """A time-limited claim that only one relay replica publishes at a time.

    Taken by inserting `{_id: name}` (unique); renewed by its owner; an expired lease is
    deleted by whoever notices, and the next insert wins it.
    """

    def __init__(
        self,
        collection: AsyncCollection[Document],
        name: str = "outbox-relay",
        *,
        ttl: timedelta = timedelta(seconds=15),
        clock: Clock | None = None,
    ) -> None:
        self._leases = collection
        self._name = name
        self._ttl = ttl
        self._clock = clock or SystemClock()
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._held_until: datetime | None = None

    async def acquire(self) -> bool:
        """True when this replica holds the lease (taking or renewing it)."""
        now = self._clock.now()
        if self._held_until is not None and self._held_until - now > self._ttl * 2 / 3:
            return True  # renewed recently: no round trip until a third of the term is used
        self._held_until = None
        try:
            await self._leases.insert_one(
                {"_id": self._name, "owner": self.owner, "expires_at": now + self._ttl}
            )
            self._held_until = now + self._ttl
            return True
        except DuplicateKeyError:
            pass
        current = await self._leases.find_one({"_id": self._name})
        if current is None:
            return False  # released meanwhile; try again on the next round
        if current["owner"] == self.owner:
            await self._leases.update_one(
                {"_id": self._name, "owner": self.owner},
                {"$set": {"expires_at": now + self._ttl}},
            )
            self._held_until = now + self._ttl
            return True
        if current["expires_at"] <= now:
            await self._leases.delete_one(
                {"_id": self._name, "owner": current["owner"], "expires_at": current["expires_at"]}
            )
        return False

    async def release(self) -> None:
        """Give the lease up, so another replica can take over at once."""
        self._held_until = None
        await self._leases.delete_one({"_id": self._name, "owner": self.owner})


class OutboxRelay:
    """Moves committed events from the event store to the service's Kafka topic."""

    def __init__(
        self,
        store: EventStore,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        lease: RelayLease | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        grace: timedelta = timedelta(seconds=10),
    ) -> None:
        self._store = store
        self._producer = producer
        self.topic = topic
        self._lease = lease
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._grace = grace
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # What `/readyz` reports (casework.health): a standby that does not hold the lease is
        # healthy; `last_error_kind` says which dependency the last failed round failed on.
        self.healthy = False
        self.holds_lease = False
        self.last_error_kind: FailureKind | None = None
        self.last_success_at: datetime | None = None

    def wake(self) -> None:
        """Ask the relay to look for new commits now (called after each append)."""
        self._wakeup.set()

    async def start(self) -> None:
        """Start the producer and the relay loop."""
        await self._producer.start()
        self._store.set_on_commit(self.wake)
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay:{self.topic}")

    async def stop(self) -> None:
        """Stop the loop, flush, and release the lease."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._lease:
            with contextlib.suppress(Exception):
                await self._lease.release()
        await self._producer.stop()

    async def _run(self) -> None:
        backoff = self._poll_interval
        while True:
            try:
                self.holds_lease = self._lease is None or await self._lease.acquire()
                sent = await self.relay_once() if self.holds_lease else 0
                self.healthy = True
                self.last_error_kind = None
                self.last_success_at = self._clock.now()
                backoff = self._poll_interval
                if sent >= self._batch_size:
                    continue  # more is waiting: no sleep
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.healthy = False
                self.last_error_kind = failure_kind(exc)
                log.exception("outbox relay round failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)

    async def relay_once(self) -> int:
        """Publish one batch of outbox entries; returns the number of commits sent.

        Entries are taken per stream in version order, streams by their oldest entry, so a
        commit is never sent before an earlier commit of its stream — even when writers'
        clocks disagree about `recorded_at`.
        """
        pending = await self._store.outbox.find({}, {"events": 0}).to_list(None)
        self._record_backlog(pending)
        if not pending:
            return 0
        confirmed = {
            d["_id"]
            async for d in self._store.confirmations.find(
                {"_id": {"$in": [p["_id"] for p in pending]}}, {"_id": 1}
            )
        }
        now = self._clock.now()
        chosen: list[str] = []
        settled_from_store: dict[str, Document] = {}
        dropped: list[str] = []
        for stream in _streams_oldest_first(pending):
            for entry in stream:
                if len(chosen) >= self._batch_size:
                    break
                if entry["_id"] in confirmed:
                    chosen.append(entry["_id"])
                    continue
                if now - entry["recorded_at"] < self._grace:
                    break  # its writer may still be at work: later commits of the stream wait
                stored = await self._store.commits.find_one({"_id": entry["_id"]})
                if stored is None:
                    dropped.append(entry["_id"])  # the append failed: nothing happened
                    continue
                settled_from_store[entry["_id"]] = stored
                chosen.append(entry["_id"])
        if dropped:
            await self._store.outbox.delete_many({"_id": {"$in": dropped}})
        if not chosen:
            return 0
        by_id = {d["_id"]: d async for d in self._store.outbox.find({"_id": {"$in": chosen}})}
        by_id.update(settled_from_store)
        deliveries = []
        for cid in chosen:
            for doc in by_id[cid]["events"]:
                envelope = Envelope.from_document(doc)
                deliveries.append(
                    await self._producer.send(
                        self.topic,
                        value=envelope.value(),
                        key=envelope.key,
                        headers=envelope.headers(),
                    )
                )
        await asyncio.gather(*deliveries)
        # Only now, with every record acknowledged by Kafka, is the batch done.
        await self._store.outbox.delete_many({"_id": {"$in": chosen}})
        await self._store.confirmations.delete_many({"_id": {"$in": chosen}})
        if self._metrics:
            self._metrics.events_published.inc(len(deliveries))
        return len(chosen)

    async def backlog(self) -> Backlog:
        """Commits stored but not yet published, and when the oldest was recorded."""
        count = await self._store.outbox.count_documents({})
        oldest = await self._store.outbox.find_one(
            {}, {"recorded_at": 1}, sort=[("recorded_at", 1)]
        )
        return Backlog(count, oldest["recorded_at"] if oldest else None)

    def _record_backlog(self, pending: list[Document]) -> None:
        if not self._metrics:
            return
        self._metrics.outbox_backlog.set(len(pending))
        oldest = min((p["recorded_at"] for p in pending), default=None)
        age = (self._clock.now() - oldest).total_seconds() if oldest else 0.0
        self._metrics.outbox_oldest_age.set(max(age, 0.0))


def _streams_oldest_first(pending: list[Document]) -> list[list[Document]]:
    """Outbox entries grouped by stream, each group in version order, the groups ordered by
    their oldest entry."""
    streams: dict[str, list[Document]] = {}
    for entry in pending:
        streams.setdefault(entry["stream_id"], []).append(entry)
    groups = [sorted(entries, key=lambda e: e["first"]) for entries in streams.values()]
    return sorted(groups, key=lambda g: min(e["recorded_at"] for e in g))
