"""The outbox relay: publishes stored commits to Kafka (DESIGN §4; how an append writes its
intent and its commit: `casework.eventstore`).

One round:

1. **Scan** the intents (`events_pending`: `_id`, `stream_id`, `first`, `attempt`; small).
   Each intent is remembered in memory with the time the relay first saw it, by the relay's
   own clock. An intent is *ripe* once a scan that completed before the current scan began
   has seen it, or once this process's own append stored it (the event store's `on_commit`
   call, made after the intent's insert was acknowledged) before the current scan began; a
   round whose scan found unripe intents scans once more at once. So a commit written by
   this process costs one scan, not two.
2. Per stream, walk the intents of the current scan in version order, and stop at the first
   that is unripe or must wait (below): nothing of a stream goes past a commit that may still
   come.
3. **Read the commits** of the ripe intents, each by exact `_id`, many at once (on FerretDB
   an `_id: {$in: …}` query is not pushed down to SQL and decodes every stored commit; only
   when the batch is a large share of the store is one scan of it cheaper). For each intent:
   - its slot holds a commit: publish *that stored commit's* events, with their stored ids;
   - its slot holds a void: publish nothing;
   - its slot is empty: wait while the relay has seen the intent for less than `grace`;
     after that, **fence** the slot by inserting a void commit. A duplicate key means the
     real commit landed meanwhile: it is published, in its place in the stream. Otherwise
     the stalled writer can never store its commit (its insert meets the void).
4. **Produce** the whole batch with the idempotent producer (acks=all, key = stream id),
   every send in flight at once, then await every acknowledgement.
5. Only then **delete** the batch's intents (`_id: {$in: …}`: a scan, but of the intents
   only, which are as many as the backlog). A newer intent with the same
   `_id` (a writer that loaded a stale version) guards a slot that is taken for ever, so
   deleting it loses nothing: that writer's commit insert fails.

Invariants:
- *Every stored commit is published at least once, with its stored event ids.* A commit is
  inserted only after its intent; an intent is deleted only after its slot's stored commit
  was acknowledged by Kafka, after its slot was fenced by a void, or by its own writer after
  its commit insert met another commit or a void (then it has no commit).
- *Nothing unstored is published.* Records are built only from documents read from the
  commits collection; voids have no events.
- *Within a stream, commits are first published in version order.* Let C be a commit
  published in this round and P an earlier commit of its stream. P's writer inserted P's
  intent before P; C's writer loaded P before inserting C's intent; so P's intent was inserted
  before C's. C's intent is ripe: a scan that completed before the current scan began saw
  it, or this process's append of C stored C's intent before the scan began; either way
  C's intent, hence P's, existed before the current scan began. A scan returns every document
  that exists, unmodified, throughout it (intents are never modified); so either the
  current scan holds P's intent — and the walk in version order publishes P before C, or
  stops before C — or P's intent was deleted before the scan read it: P was published (or
  was a void) before. Records of one stream go to one partition; the idempotent producer
  writes them there in the order they were sent. Two relays overlapping (a lease that
  expired during a stall) each keep this order, so the effect is duplicates, never a commit
  first published ahead of an earlier one.
- *Clocks:* grace is measured by the relay's own clock from when it first saw an intent;
  the writer's `recorded_at` is never compared with it, so a writer's clock skew is harmless.

Woken right after an append (`wake`), with a poll as the fallback for commits written by
other replicas or before a crash. **Idle polling backs off**: the poll interval starts at
`poll_interval` (1 s) and doubles after every round whose scan found no intent, up to
`idle_poll_max` (setting `relay_idle_poll_max_s`, 1 s by default: with two replicas a crisis
declared on the one without the lease waits for this poll; a single replica may raise it);
a round that finds any intent, or a local append's wake, brings it back to `poll_interval`.
*Bound:* a commit no relay of this process was woken for (written by another replica while
this one holds the lease, or left by a crash) is found within `idle_poll_max` of being
stored (`poll_interval` while the relay is busy), then published in that round (its second
scan makes it ripe at once); a commit of this process's own append is published at once, as
before. A restarted process's relay runs its first round at start. A lease (one document
with a unique `_id`) lets one replica work at a time; safety does not depend on it. A
replica whose round failed on the broker gives the lease up before it backs off, so a
replica that can reach Kafka takes over
(liveness: one replica cut off from the broker does not hold publishing up). For readiness and
operations the relay exposes `healthy` (the last round, or the last attempt to take the lease,
did not fail), `holds_lease`, `last_error_kind` ("database", "broker" or None) and
`last_success_at`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from casework.clock import Clock, SystemClock
from casework.envelope import Envelope
from casework.eventstore import Document, EventStore, void_commit
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


@dataclass(frozen=True)
class _Intent:
    id: str
    stream_id: str
    first: int
    attempt: str | None

    @property
    def key(self) -> tuple[str, str | None]:
        # an `_id` can be reused by a later writer's intent once the first is gone: the
        # attempt tells the two apart
        return (self.id, self.attempt)


class OutboxRelay:
    """Moves stored commits from the event store to the service's Kafka topic (see the
    module docstring for the round and its invariants)."""

    def __init__(
        self,
        store: EventStore,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        lease: RelayLease | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        batch_size: int = 5000,
        poll_interval: float = 1.0,
        idle_poll_max: float = 1.0,
        grace: timedelta = timedelta(seconds=10),
        read_concurrency: int = 32,
    ) -> None:
        self._store = store
        self._producer = producer
        self.topic = topic
        self._lease = lease
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._idle_poll_max = max(idle_poll_max, poll_interval)
        self._grace = grace
        self._read_concurrency = read_concurrency
        self._first_seen: dict[tuple[str, str | None], datetime] = {}
        # intents this process's appends stored, not yet looked for by a scan (ripe at once)
        self._stored_here: set[tuple[str, str | None]] = set()
        self._found = False  # the last scan saw an intent
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._more = False
        self.healthy = False
        self.holds_lease = False
        self.last_error_kind: FailureKind | None = None
        self.last_success_at: datetime | None = None

    def wake(self, commit_id: str | None = None, attempt: str | None = None) -> None:
        """Ask the relay to look for new commits now (called after each append, with the
        commit's `_id` and attempt: that intent is stored, so the next scan takes it as ripe)."""
        if commit_id is not None:
            self._stored_here.add((commit_id, attempt))
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
        self.holds_lease = False
        await self._producer.stop()

    async def _run(self) -> None:
        backoff = self._poll_interval
        interval = self._poll_interval
        while True:
            self._wakeup.clear()
            try:
                settled = 0
                if self._lease is None or await self._lease.acquire():
                    self.holds_lease = True
                    settled = await self.relay_once()
                else:
                    # a standby forgets what it saw: should it take over, grace starts anew
                    self.holds_lease = False
                    self._first_seen.clear()
                    self._stored_here.clear()
                    self._found = False
                    self._more = False
                self.healthy = True
                self.last_error_kind = None
                self.last_success_at = self._clock.now()
                backoff = self._poll_interval
                if settled >= self._batch_size or self._more:
                    continue  # more is waiting: no sleep
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.healthy = False
                self.last_error_kind = failure_kind(exc)
                log.exception("outbox relay round failed; retrying in %.1fs", backoff)
                if self.last_error_kind == "broker":
                    await self._step_aside()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            # idle backoff (module docstring): fast while there is work, slower while none
            interval = (
                self._poll_interval if self._found else min(interval * 2, self._idle_poll_max)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), interval)
            if self._wakeup.is_set():
                interval = self._poll_interval

    async def _step_aside(self) -> None:
        """Give the lease up after a round failed on the broker, so that a replica that can
        reach Kafka takes over while this one backs off (a replica cut off from the broker
        alone would otherwise renew the lease and publish nothing for as long as it lasts).
        Its next round competes for the lease again like any standby."""
        if self._lease is None or not self.holds_lease:
            return
        self.holds_lease = False
        self._first_seen.clear()
        self._stored_here.clear()
        self._found = False
        self._more = False
        with contextlib.suppress(Exception):
            await self._lease.release()

    async def relay_once(self) -> int:
        """One round (module docstring): returns the number of intents settled (commits
        published and slots found or made void). Intents first seen by this round's first
        scan are settled after a second scan, in the same round."""
        intents, unripe = await self._scan()
        if unripe:
            intents, unripe = await self._scan()
        self._more = bool(unripe)
        self._found = bool(intents)
        self._record_backlog(len(intents))
        ready = self._ready_in_order(intents, unripe)
        if not ready:
            return 0
        stored = await self._read_commits([i.id for i in ready])
        now = self._clock.now()
        batch: list[Document] = []
        settled: list[str] = []
        blocked: set[str] = set()
        for intent in ready:
            if intent.stream_id in blocked:
                continue
            commit = stored.get(intent.id)
            if commit is None:
                if now - self._first_seen[intent.key] < self._grace:
                    blocked.add(intent.stream_id)  # its writer may still be at work
                    continue
                commit = await self._fence(intent)
            if not commit.get("void"):
                batch.append(commit)
            settled.append(intent.id)
        if not settled:
            return 0
        sent = await self._produce(batch)
        # Only now, with every record acknowledged by Kafka, are these intents done.
        await self._store.pending.delete_many({"_id": {"$in": settled}})
        if self._metrics:
            self._metrics.events_published.inc(sent)
        return len(settled)

    async def _scan(self) -> tuple[list[_Intent], set[tuple[str, str | None]]]:
        """Every intent, and the keys of those that are not ripe: no earlier completed scan
        saw them, and no append of this process stored them before this scan began."""
        # taken before the query is sent: these intents existed before this scan began
        stored_here, self._stored_here = self._stored_here, set()
        cursor = self._store.pending.find({}, {"stream_id": 1, "first": 1, "attempt": 1})
        intents = [
            _Intent(d["_id"], d["stream_id"], d["first"], d.get("attempt")) async for d in cursor
        ]
        now = self._clock.now()
        seen = self._first_seen
        unripe = {i.key for i in intents if i.key not in seen and i.key not in stored_here}
        self._first_seen = {i.key: seen.get(i.key, now) for i in intents}
        return intents, unripe

    def _ready_in_order(
        self, intents: list[_Intent], unripe: set[tuple[str, str | None]]
    ) -> list[_Intent]:
        """Per stream in version order up to the first unripe intent; streams seen longest
        first; at most a batch."""
        streams: dict[str, list[_Intent]] = {}
        for intent in intents:
            streams.setdefault(intent.stream_id, []).append(intent)
        groups = [sorted(g, key=lambda i: i.first) for g in streams.values()]
        groups.sort(key=lambda g: min(self._first_seen[i.key] for i in g))
        ready: list[_Intent] = []
        for group in groups:
            for intent in group:
                if intent.key in unripe or len(ready) >= self._batch_size:
                    break
                ready.append(intent)
        return ready

    async def _read_commits(self, ids: list[str]) -> dict[str, Document]:
        """The stored commits in these slots.

        Each by exact `_id`, many reads in flight at once: pushed down to SQL on FerretDB,
        where `_id: {$in: …}` is not (it decodes the whole commits collection in Go, so its
        cost grows with the event store). Only when the batch is a large share of all stored
        commits (a backlog after an outage, on a young store) is the one `$in` query the
        cheaper read: then the store is scanned once."""
        if len(ids) >= 64:
            stored = await self._store.commits.estimated_document_count()
            if len(ids) * 4 >= stored:
                # FerretDB tests `$in` against every document in Go, one list scan each; a
                # plain scan filtered here by a set costs what reading the store costs
                wanted = set(ids)
                return {
                    c["_id"]: c async for c in self._store.commits.find({}) if c["_id"] in wanted
                }
        limit = asyncio.Semaphore(self._read_concurrency)

        async def read(cid: str) -> Document | None:
            async with limit:
                return await self._store.commits.find_one({"_id": cid})

        found = await asyncio.gather(*(read(cid) for cid in ids))
        return {c["_id"]: c for c in found if c is not None}

    async def _fence(self, intent: _Intent) -> Document:
        """Make the slot void, or return the commit that landed in it first."""
        void = void_commit(intent.stream_id, intent.first, self._clock.now())
        try:
            await self._store.commits.insert_one(void)
            log.warning("fenced abandoned write %s (its version is skipped)", intent.id)
            return void
        except DuplicateKeyError:
            commit = await self._store.commits.find_one({"_id": intent.id})
            if commit is None:  # a commit is never deleted: this cannot be
                raise RuntimeError(f"slot {intent.id} is taken but empty") from None
            return commit

    async def _produce(self, commits: list[Document]) -> int:
        """Send every event of `commits` in order, all in flight at once; return when Kafka
        acknowledged all of them (or raise)."""
        deliveries: list[asyncio.Future[Any]] = []
        try:
            for commit in commits:
                for doc in commit["events"]:
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
        except BaseException:
            # Nothing is deleted; the next round sends the batch again (at least once). The
            # sends still in flight settle on their own; their outcome no longer matters.
            for d in deliveries:
                d.add_done_callback(_ignore_outcome)
            raise
        return len(deliveries)

    async def backlog(self) -> Backlog:
        """The intents waiting, and since when: by this relay's clock from when it first saw
        them if it is the one at work, else by their writers' `recorded_at` (informational:
        a writer's clock may be off)."""
        count = await self._store.pending.count_documents({})
        if not count:
            return Backlog(0, None)
        if self._first_seen:
            return Backlog(count, min(self._first_seen.values()))
        oldest = await self._store.pending.find_one(
            {}, {"recorded_at": 1}, sort=[("recorded_at", 1)]
        )
        return Backlog(count, oldest.get("recorded_at") if oldest else None)

    def _record_backlog(self, pending: int) -> None:
        if not self._metrics:
            return
        self._metrics.outbox_backlog.set(pending)
        oldest = min(self._first_seen.values(), default=None)
        age = (self._clock.now() - oldest).total_seconds() if oldest else 0.0
        self._metrics.outbox_oldest_age.set(max(age, 0.0))


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
