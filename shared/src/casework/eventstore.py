"""The MongoDB event store, whose commits are also the outbox (DESIGN §4).

A command's events are written as **one commit document**, so a command is all-or-nothing
without transactions. The commit's `_id` is `<stream id>:<first version>`, zero-padded: two
writers that loaded the same version both try to insert the same `_id`, and the unique index
lets exactly one win — the only concurrency primitive that behaves the same on MongoDB and
FerretDB (DESIGN §7). The loser gets `ConcurrencyConflict`.

**The stored commit is the truth.** The relay (`casework.relay`) publishes only what it reads
from the `events` collection, with the event ids stored there. To find what is unpublished
without scanning the commits, an append writes two documents, inserts only (FerretDB rewrites
a whole document per update):

1. `events_pending` — a small **intent** `{_id: <commit id>, stream_id, first, attempt}`,
   `attempt` a fresh id of this append, *before* the commit, so that no stored commit can
   lack an intent, whatever crashes when. Its unique `_id` also keeps a second writer of the
   same slot out while the first is in flight or unpublished (`ConcurrencyConflict`).
2. `events` — the commit `{_id, attempt, stream_id, first, last, recorded_at, events}`: the
   one write that decides whether the command happened.

A writer whose commit insert meets a duplicate key lost the slot (to another writer, or to a
**void** the relay stored there, see below): it deletes its *own* intent, matched by
`{_id, attempt}` — never another writer's — and raises `ConcurrencyConflict`.

**Voids.** An intent whose commit does not appear within the relay's grace period (the writer
died or stalls) is *fenced*: the relay inserts a void commit `{_id, void: true, stream_id,
first: N, last: N}` into the slot. Either the void lands — then the stalled writer's commit
insert can only fail with a duplicate key, its command fails with 409 and never happened — or
the real commit landed first and is published. A void burns version N: a stream's version is
the `last` of its last commit, voids included, so the next writer targets N + 1, and the
versions consumers see increase but may skip N. Loading a stream skips voids (no events).

Invariants (held with `casework.relay`, tried by tests/integration/test_outbox_faults.py):
- every stored commit is published at least once, with the event ids that were stored;
- nothing that was not stored is ever published;
- within a stream, commits are first published in version order.
The crash windows and why each is safe are listed in docs/architecture.md.

**Inline applies** (`apply_inline`): a read model whose apply of an event is insert-once by
that event (a notification's inbox entry: its `_id` is the notification id) may be given the
events of every commit by the writing process itself, right after the commit is stored, and
so readable a Kafka round trip sooner. Invariant: an inline apply never changes what the
read model would hold without it — the consumer applies the same envelope later and finds it
applied (the same document, version marker included) — and it never fails the command: the
commit is stored, so a failed or crashed inline apply is left to the consumer. A commit's
inline applies run concurrently (each writes a document of its own, so their order is not
theirs to keep): the last entry of a commit is not held behind the others' inserts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

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


class EventSealer(Protocol):
    """What turns an event into the data stored and published (`casework.privacy.Sealer`:
    personal fields sealed per data subject)."""

    async def seal(self, event: DomainEvent) -> dict[str, Any]: ...


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


def void_commit(stream_id: str, first: int, recorded_at: Any) -> Document:
    """The commit that fences slot `first` of a stream: it burns that version, no events."""
    return {
        "_id": commit_id(stream_id, first),
        "void": True,
        "stream_id": stream_id,
        "first": first,
        "last": first,
        "recorded_at": recorded_at,
    }


@dataclass
class StreamHistory:
    """Events of a stream (voids skipped) and its version: the `last` of its last commit."""

    version: int = 0
    events: list[Envelope] = field(default_factory=list)


InlineApply = Callable[[Envelope, DomainEvent], Awaitable[object]]


async def _inline(apply: InlineApply, envelope: Envelope, event: DomainEvent) -> None:
    try:
        await apply(envelope, event)
    except Exception as exc:  # the commit is stored: its consumer applies it instead
        log.warning(
            "inline apply of %s failed (%s); left to its consumer",
            envelope.type,
            type(exc).__name__,
        )


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
        on_commit: Callable[[str, str], None] | None = None,
        sealer: EventSealer | None = None,
    ) -> None:
        """`sealer`: personal fields are sealed before anything is stored (the services'
        runtime passes one; without it, event data is stored as `model_dump` gives it)."""
        self.commits: AsyncCollection[Document] = database[collection]
        self.pending: AsyncCollection[Document] = database[f"{collection}_pending"]
        self.source = source
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._on_commit = on_commit
        self.sealer = sealer
        self._inline: list[tuple[tuple[type[DomainEvent], ...], InlineApply]] = []

    def set_on_commit(self, callback: Callable[[str, str], None]) -> None:
        """Register the relay's wake-up call, run right after every successful append with
        the commit's `_id` and the append's attempt: its intent was stored (acknowledged)
        before the call, which the relay uses to take it as ripe (`casework.relay`)."""
        self._on_commit = callback

    def apply_inline(self, apply: InlineApply, *types: type[DomainEvent]) -> None:
        """After each stored commit, hand its events of `types` to `apply` (see module:
        only for an insert-once apply whose consumer finds the event applied)."""
        self._inline.append((types, apply))

    async def ensure_indexes(self) -> None:
        """The index that stream loading uses (the pending collection stays small)."""
        await self.commits.create_index([("stream_id", ASCENDING), ("first", ASCENDING)])

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[DomainEvent],
        context: CommitContext | None = None,
    ) -> list[Envelope]:
        """Store `events` as the next commit of the stream, or raise `ConcurrencyConflict`.

        Any other exception leaves the outcome open (the commit may or may not be stored);
        the relay settles it: published if stored, fenced by a void if not.
        """
        if not events:
            return []
        context = context or CommitContext()
        now = self._clock.now()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        # sealed before the intent is written: a key that cannot be had fails the command
        # before anything is stored
        data = [
            await self.sealer.seal(event) if self.sealer else event.model_dump(mode="json")
            for event in events
        ]
        envelopes = [
            Envelope(
                type=event.type_name(),
                source=self.source,
                subject=stream_id,
                time=now,
                data=event_data,
                stream_version=expected_version + offset,
                site=context.site,
                correlation_id=context.correlation_id,
                causation_id=context.causation_id,
                traceparent=carrier.get("traceparent"),
                tracestate=carrier.get("tracestate"),
            )
            for offset, (event, event_data) in enumerate(zip(events, data, strict=True), start=1)
        ]
        first = expected_version + 1
        cid = commit_id(stream_id, first)
        attempt = uuid.uuid4().hex
        try:
            await self.pending.insert_one(
                {
                    "_id": cid,
                    "stream_id": stream_id,
                    "first": first,
                    "attempt": attempt,
                    "recorded_at": now,
                }
            )
        except DuplicateKeyError:
            # another writer of this slot is in flight, or its commit is not yet published
            self._conflict()
            raise ConcurrencyConflict(stream_id, expected_version) from None
        try:
            await self.commits.insert_one(
                {
                    "_id": cid,
                    "attempt": attempt,
                    "stream_id": stream_id,
                    "first": first,
                    "last": expected_version + len(events),
                    "recorded_at": now,
                    "events": [e.to_document() for e in envelopes],
                }
            )
        except DuplicateKeyError:
            stored = await self.commits.find_one({"_id": cid}, {"attempt": 1})
            if stored is None or stored.get("attempt") != attempt:
                # The slot holds another writer's commit or a void: ours never happened.
                # Only our own intent goes; the slot is taken for ever, so it guards nothing.
                await self.pending.delete_one({"_id": cid, "attempt": attempt})
                self._conflict()
                raise ConcurrencyConflict(stream_id, expected_version) from None
            # else: a retried insert whose first try had landed: the commit is ours
        if self._metrics:
            for e in envelopes:
                self._metrics.events_appended.labels(e.type).inc()
        if self._on_commit:
            self._on_commit(cid, attempt)
        # each inline apply is its own insert-once document: the commit's go at once
        await asyncio.gather(
            *(
                _inline(apply, envelope, event)
                for types, apply in self._inline
                for envelope, event in zip(envelopes, events, strict=True)
                if isinstance(event, types)
            )
        )
        return envelopes

    def _conflict(self) -> None:
        if self._metrics:
            self._metrics.commit_conflicts.inc()

    async def load(self, stream_id: str) -> list[Envelope]:
        """Every event of the stream in version order (empty when the stream is unknown)."""
        return (await self.load_stream(stream_id)).events

    async def load_stream(self, stream_id: str) -> StreamHistory:
        """The stream's events in version order and its version (voids count, see above)."""
        history = StreamHistory()
        cursor = self.commits.find({"stream_id": stream_id}).sort("first", ASCENDING)
        async for commit in cursor:
            history.version = commit["last"]
            history.events += [Envelope.from_document(e) for e in commit.get("events", ())]
        return history

    async def load_after(self, stream_id: str, version: int) -> StreamHistory:
        """The commits after `version`, found by exact `_id` (pushed down on every backend):
        commits are contiguous, so the next one, if any, is `commit_id(stream, version + 1)`.
        One probe when nothing is new."""
        history = StreamHistory(version=version)
        while True:
            commit = await self.commits.find_one({"_id": commit_id(stream_id, history.version + 1)})
            if commit is None:
                return history
            history.version = commit["last"]
            history.events += [Envelope.from_document(e) for e in commit.get("events", ())]


A = TypeVar("A", bound=Aggregate)


class AggregateNotFound(LookupError):
    """The aggregate was never created."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"no {kind} with id {id}")
        self.kind = kind
        self.id = id


@dataclass
class _Cached:
    """What a repository remembers of one stream: a prefix of what is stored (commits are
    immutable and their slots never reused), as plain event documents."""

    version: int
    events: list[tuple[str, dict[str, Any]]]


class Repository(Generic[A]):
    """Loads aggregates of one type from their streams and commits their pending events.

    A bounded LRU cache keeps each recently used stream's stored history (event types and
    data, and the stream version). A load then reads only the commits after the cached
    version, by exact `_id` (`EventStore.load_after`: one probe when nothing is new; none for
    a caller that retries a conflict, `find(..., trust_cache=True)`), and a miss of the cache
    loads the whole stream. Every load rehydrates a *fresh* aggregate by
    parsing the cached data again, so no mutable state is shared between commands; the
    cache can only be behind the store, never ahead of it or different from it.
    """

    def __init__(
        self,
        store: EventStore,
        aggregate: type[A],
        registry: EventRegistry,
        *,
        cache_size: int = 2048,
    ) -> None:
        self._store = store
        self._aggregate = aggregate
        self._registry = registry
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Cached] = OrderedDict()

    async def _history(self, stream_id: str, *, trust_cache: bool = False) -> _Cached:
        cached = self._cache.get(stream_id)
        if cached is None:
            loaded = await self._store.load_stream(stream_id)
            cached = _Cached(0, [])
        elif trust_cache:
            self._remember(stream_id, cached)
            return cached
        else:
            loaded = await self._store.load_after(stream_id, cached.version)
        if loaded.version != cached.version:
            cached = _Cached(
                loaded.version, cached.events + [(e.type, dict(e.data)) for e in loaded.events]
            )
        self._remember(stream_id, cached)
        return cached

    def _remember(self, stream_id: str, cached: _Cached) -> None:
        if self._cache_size <= 0:
            return
        self._cache[stream_id] = cached
        self._cache.move_to_end(stream_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def find(self, id: str, *, trust_cache: bool = False) -> A | None:
        """The aggregate, or None when its stream holds no events.

        `trust_cache`: a cached stream as the cache holds it, without the probe for newer
        commits (a read saved on a hot stream). Only for a caller that commits what it
        decides and, on `ConcurrencyConflict`, decides again on a load without it: the cache
        is never ahead of the store, so a stale history can only make the commit target a
        slot that is taken — the conflict — never commit a decision made on old state."""
        history = await self._history(self._aggregate.stream_id_for(id), trust_cache=trust_cache)
        if not history.events:
            return None
        return self._aggregate.rehydrate(
            id,
            (self._registry.parse(t, dict(data)) for t, data in history.events),
            version=history.version,
        )

    async def get(self, id: str) -> A:
        """The aggregate, or `AggregateNotFound`."""
        aggregate = await self.find(id)
        if aggregate is None:
            raise AggregateNotFound(self._aggregate.stream_type, id)
        return aggregate

    def knows(self, id: str) -> bool:
        """Whether the cache holds events of the aggregate's stream (it exists, then; False
        says nothing either way)."""
        cached = self._cache.get(self._aggregate.stream_id_for(id))
        return cached is not None and bool(cached.events)

    def new(self, id: str) -> A:
        """A fresh aggregate with no history. Should its stream hold only voids (a first
        write that was abandoned and fenced), the version that `find` just read is kept, so
        that the first commit targets the next free slot."""
        aggregate = self._aggregate(id)
        cached = self._cache.get(aggregate.stream_id)
        if cached is not None and not cached.events:
            aggregate.version = cached.version
        return aggregate

    async def save(self, aggregate: A, context: CommitContext | None = None) -> list[Envelope]:
        """Commit the aggregate's pending events as one commit."""
        context = context or CommitContext()
        if context.site is None and aggregate.site is not None:
            context = CommitContext(context.correlation_id, context.causation_id, aggregate.site)
        expected = aggregate.version
        envelopes = await self._store.append(
            aggregate.stream_id, expected, aggregate.pending_events, context
        )
        aggregate.mark_committed()
        cached = self._cache.get(aggregate.stream_id)
        if cached is None and expected == 0:
            # a stream's first commit, saved without a load (a fresh aggregate decided on a
            # guess): its whole history is what was just stored
            cached = _Cached(0, [])
        if cached is not None and cached.version == expected and envelopes:
            self._remember(
                aggregate.stream_id,
                _Cached(
                    envelopes[-1].stream_version,
                    cached.events + [(e.type, dict(e.data)) for e in envelopes],
                ),
            )
        return envelopes


# A load-decide-save that loses a write race on its stream reloads and decides again (the
# stream's commit key lets only one writer have each version). Writers on one busy stream (a
# session whose record eight people write at once) can lose several times in a row.
RACE_RETRIES = 8


async def after_lost_race(attempt: int) -> None:
    """Between tries of a load-decide-save that lost a write race: a short random pause (full
    jitter, 5 ms doubling, at most 0.2 s) so that writers who collided do not collide again
    in lockstep. Not a wait for anything: the next try reloads the stream."""
    await asyncio.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))


R = TypeVar("R")


async def retrying_lost_races(attempt: Callable[[], Awaitable[R]]) -> R:
    """Run a load-decide-save `attempt`; when it loses a write race (`ConcurrencyConflict`),
    pause (`after_lost_race`) and run it again from its load, `RACE_RETRIES` times in all;
    the last loss propagates. Safe because an attempt reloads the stream and decides again
    against what it now holds: nothing decided on a stale state is ever stored."""

    async def unnumbered(_tried: int) -> R:
        return await attempt()

    return await retrying_lost_races_by_try(unnumbered)


async def retrying_lost_races_by_try(attempt: Callable[[int], Awaitable[R]]) -> R:
    """`retrying_lost_races` for an attempt that is told which try it is (0 first): the first
    may take a shortcut (decide on a cached or a guessed-new aggregate) that a lost race rules
    out for the next."""
    for tried in range(RACE_RETRIES - 1):
        try:
            return await attempt(tried)
        except ConcurrencyConflict:
            await after_lost_race(tried)
    return await attempt(RACE_RETRIES - 1)
