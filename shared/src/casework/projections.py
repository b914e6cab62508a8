"""Projections and policies: Kafka consumer groups that build read models in MongoDB or act on
other services' events (DESIGN §5).

- Each handler is one FastStream batch subscriber with its own consumer group. Auto-commit
  is off; offsets are committed after the batch's writes (ack after processing).
- Idempotent: a read-model document remembers, per source stream, the last version applied
  to it; a redelivered or older event changes nothing.
- One writer per document: a document is keyed by an aggregate, so the partition that owns
  the aggregate's stream owns the document.
- Outages heal: a failure `transient_kind` recognises (database or broker unreachable, a
  timeout, a replica set without a primary) is retried with capped exponential backoff for
  as long as it lasts. So is *contention* — a handler's append that lost every write race on
  its stream (`ConcurrencyConflict`), typically because a killed process left its intent in
  the stream's next slot, which the relay clears only after its grace (10 s) — but only for
  `contention_patience_s` (60 s): a conflict that outlasts every way it can clear is a bug,
  and goes the poison way below. Nothing is skipped or dead-lettered and no offset moves past the
  record that failed; every `hold_s` seconds the runner rewinds its partitions to that record
  and returns to the poll loop, so the consumer stays in its group however long the outage.
- Poison parks its stream: any other failure is retried `max_attempts` times, then the record
  goes to the dead-letter topic (error class and a message without input values in its
  headers) and its stream is *parked* in `StreamParking`, durably: later records of the same
  stream are stored there instead of applied, so nothing is applied on top of a missing
  event; other streams go on. An operator replays the dead letter (then the parked records
  are applied in order) or discards it (then they are applied without it): `casework
  dead-letters` (`casework.rebuild`).
- Rebuild: `casework.rebuild` folds the topics into a fresh collection in memory and swaps it in.
- Concurrent batches: a handler marked `concurrent` has each batch applied one task per
  stream, its writes held in memory (`PendingWrites`) and written once per document (the
  partition counters first), and only then committed; see `ConsumerRunner._handle_concurrently`
  for the invariants.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import bson
from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import ValidationError as PydanticValidationError
from pymongo import errors as pymongo_errors
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.clock import Clock, SystemClock
from casework.envelope import Envelope, MalformedEnvelope, Position
from casework.events import DomainEvent, EventRegistry, UnknownEventType
from casework.eventstore import ConcurrencyConflict, Document
from casework.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

APPLIED = "_applied"
"""Field of a read-model document: {source stream id: last version applied}."""


# --- a batch's writes, held in memory -------------------------------------------------------


class WriteConflict(Exception):
    """A document this batch read as absent was inserted meanwhile (only a consumer that lost
    its partitions in a rebalance can have done it): the batch is applied again from the
    database."""


@dataclass
class PendingDocument:
    """One document as a batch read it (`stored`, None if absent) and as its events left it
    (`current`, None to delete it). `stage` orders the writes: every document of a lower
    stage is written before any of a higher one."""

    collection: AsyncCollection[Document]
    doc_id: Any
    stored: Document | None
    current: Document | None
    stage: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def changed(self) -> bool:
        return self.current != self.stored


class KnownDocuments:
    """The documents a concurrent runner last wrote or read, as they are in the database,
    kept between its batches (at most `limit`, the least recently used dropped first), so
    that a batch reads only documents it has not seen.

    Invariant: an entry equals the stored document, because this runner is the document's
    only writer while its partitions stay assigned (one writer per document, DESIGN §5: a
    document is fed by the streams of one partition; the operator commands refuse to run
    while the group is active). So everything is forgotten when partitions are assigned or
    revoked and when a batch fails (its writes may be half done)."""

    def __init__(self, limit: int = 5000) -> None:
        self.limit = limit
        self._docs: OrderedDict[tuple[str, Any], Document | None] = OrderedDict()

    def get(self, key: tuple[str, Any]) -> tuple[bool, Document | None]:
        """(whether `key` is known, its document or None if it is known to be absent)."""
        if key not in self._docs:
            return False, None
        self._docs.move_to_end(key)
        return True, self._docs[key]

    def remember(self, key: tuple[str, Any], doc: Document | None) -> None:
        self._docs[key] = doc
        self._docs.move_to_end(key)
        while len(self._docs) > self.limit:
            self._docs.popitem(last=False)

    def forget(self) -> None:
        self._docs.clear()

    def __len__(self) -> int:
        return len(self._docs)


class PendingWrites:
    """The read-model writes of one consumer batch, applied in memory and written **once per
    document** when the batch is done (`flush`).

    Invariants, for the runner that owns it (`ConsumerRunner`, concurrent handlers):
    - A document is read from the database at most once per batch; every event of the batch
      that touches it is applied to the one in-memory copy, under that copy's lock, in the
      order its stream delivered it (one task per stream). What an event sees is what the
      serial path would have read back: each new state is stored as the server would return
      it (a BSON round trip: datetimes in milliseconds, tuples as lists).
    - Nothing is written before every record of the batch has been applied, dead-lettered or
      parked; then all documents of stage 0 (the partition counters, `casework.counters`) are
      written, then those of stage 1 (the entities): the order the per-event path keeps (counters
      first, then the entity), so a crash between them leaves what that path leaves.
    - The offsets are committed only after `flush` returned. A failure anywhere (an outage that
      outlasts the hold, a `WriteConflict`) discards the whole batch and rewinds its partitions
      to the batch's first record: what was written is written idempotently (by stream version,
      by offset) and is skipped when the records come again.
    """

    def __init__(self, known: KnownDocuments | None = None) -> None:
        self._known = known
        self._documents: dict[tuple[str, Any], PendingDocument] = {}
        self._loading: dict[tuple[str, Any], asyncio.Future[PendingDocument]] = {}
        self.event_times: list[datetime] = []
        """When each event applied in this batch happened (for the lag, once written)."""

    async def document(
        self, collection: AsyncCollection[Document], doc_id: Any, *, stage: int = 1
    ) -> PendingDocument:
        """The batch's copy of a document: as the runner knows it from an earlier batch
        (`KnownDocuments`), else read from the database the first time (concurrent callers
        share that one read)."""
        key = (collection.full_name, doc_id)
        found = self._documents.get(key)
        if found is not None:
            return found
        if self._known is not None:
            known, doc = self._known.get(key)
            if known:
                pending = self._hold(collection, doc_id, doc, stage)
                self._documents[key] = pending
                return pending
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[PendingDocument] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            stored = await collection.find_one({"_id": doc_id})
        except BaseException as exc:
            del self._loading[key]
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters (if any) get it too
            raise
        pending = self._hold(collection, doc_id, dict(stored) if stored else None, stage)
        self._documents[key] = pending
        del self._loading[key]
        future.set_result(pending)
        return pending

    def _hold(
        self,
        collection: AsyncCollection[Document],
        doc_id: Any,
        stored: Document | None,
        stage: int,
    ) -> PendingDocument:
        # `current` is a copy of its own: a change that edits a nested list in place must not
        # edit what the batch compares against (and what the runner remembers)
        current = self.as_stored(collection, stored) if stored is not None else None
        return PendingDocument(collection, doc_id, stored, current, stage)

    def remember(self) -> None:
        """After the batch was written: every document it held, as it now is stored."""
        if self._known is not None:
            for key, doc in self._documents.items():
                self._known.remember(key, doc.current)

    @staticmethod
    def as_stored(collection: AsyncCollection[Document], doc: Document) -> Document:
        """`doc` as the server would return it."""
        return bson.decode(bson.encode(doc), codec_options=collection.codec_options)

    def pending(self) -> list[PendingDocument]:
        """The documents whose events changed them."""
        return [d for d in self._documents.values() if d.changed]

    async def flush(
        self,
        run: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
        *,
        in_flight: int = 16,
    ) -> int:
        """Write every changed document, stage by stage, `in_flight` writes at a time; `run`
        runs each write (the runner retries outages in it). Returns how many were written."""
        gate = asyncio.Semaphore(in_flight)
        written = 0

        async def write(doc: PendingDocument) -> None:
            async with gate:
                await run(lambda: _write(doc))

        for stage in sorted({d.stage for d in self._documents.values()}):
            docs = [d for d in self.pending() if d.stage == stage]
            await asyncio.gather(*(write(d) for d in docs))
            written += len(docs)
        return written


async def _write(doc: PendingDocument) -> None:
    if doc.current is None:
        await doc.collection.delete_one({"_id": doc.doc_id})
    elif doc.stored is None:
        try:
            await doc.collection.insert_one(dict(doc.current))
        except DuplicateKeyError as exc:
            raise WriteConflict(f"{doc.collection.name} {doc.doc_id!r} appeared") from exc
    else:
        await doc.collection.replace_one({"_id": doc.doc_id}, doc.current)


_PENDING: ContextVar[PendingWrites | None] = ContextVar("casework_pending_writes", default=None)


def pending_writes() -> PendingWrites | None:
    """The batch whose writes are being held, when a concurrent runner is applying one."""
    return _PENDING.get()


@contextmanager
def holding_writes(pending: PendingWrites) -> Iterator[PendingWrites]:
    """Within this block (and the tasks started in it), `ReadModel.apply` and
    `casework.counters.CountedDocuments.apply` change `pending` instead of the database."""
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)


class ReadModel:
    """A collection of read-model documents, each updated idempotently by stream version."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def apply(
        self,
        doc_id: str,
        envelope: Envelope,
        change: Callable[[Document], Document | None],
    ) -> bool:
        """Apply `change` to the document unless this event (or a later one) already was.

        `change` gets a copy of the current document (`{"_id": doc_id}` when new) and returns
        the new one, or None to delete it. Returns False for a duplicate. Inside a batch of a
        concurrent runner (`pending_writes`), the change is made to the batch's copy and
        written with the batch.
        """
        pending = pending_writes()
        if pending is not None:
            return await self._apply_pending(pending, doc_id, envelope, change)
        for attempt in range(3):
            current = await self.collection.find_one({"_id": doc_id})
            doc: Document = dict(current) if current else {"_id": doc_id}
            applied: dict[str, int] = dict(doc.get(APPLIED, {}))
            if applied.get(envelope.subject, 0) >= envelope.stream_version:
                return False
            new = change(doc)
            if new is None:
                await self.collection.delete_one({"_id": doc_id})
                return True
            applied[envelope.subject] = envelope.stream_version
            new[APPLIED] = applied
            new["_id"] = doc_id
            try:
                await self.collection.replace_one({"_id": doc_id}, new, upsert=True)
                return True
            except DuplicateKeyError:
                # FerretDB upserts read then write: a racing upsert of a new document can
                # fail this way (NOTES.md); the next round sees the document and goes on.
                if attempt == 2:
                    raise
        return False

    async def _apply_pending(
        self,
        pending: PendingWrites,
        doc_id: str,
        envelope: Envelope,
        change: Callable[[Document], Document | None],
    ) -> bool:
        held = await pending.document(self.collection, doc_id)
        async with held.lock:
            # a copy of its own, as a read would return: a change that fails half-way, or
            # edits nested values in place, leaves the held copy as it was
            doc: Document = (
                pending.as_stored(self.collection, held.current)
                if held.current
                else {"_id": doc_id}
            )
            applied: dict[str, int] = dict(doc.get(APPLIED, {}))
            if applied.get(envelope.subject, 0) >= envelope.stream_version:
                return False
            new = change(doc)
            if new is not None:
                applied[envelope.subject] = envelope.stream_version
                new[APPLIED] = applied
                new["_id"] = doc_id
                new = pending.as_stored(self.collection, new)
            held.current = new
            return True

    async def get(self, doc_id: str) -> Document | None:
        """One document without the bookkeeping field."""
        doc = await self.collection.find_one({"_id": doc_id}, {APPLIED: 0})
        return dict(doc) if doc else None

    async def get_many(self, doc_ids: Iterable[str], *, in_flight: int = 16) -> dict[str, Document]:
        """The documents of these ids that exist, by id, each without the bookkeeping field
        (ids asked twice are read once; missing ones are left out).

        Invariant: the cost is in proportion to the ids asked, never to the collection. Each
        id is one `get` by exact `_id`, at most `in_flight` at once, so one call never holds
        the whole connection pool: on MongoDB the `_id` index; on FerretDB pushed down to SQL,
        where PostgreSQL finds it by index once `scripts/ferretdb-indexes.sh` made the GIN
        index (without it, a sequential scan in SQL: far cheaper, still the collection's size).
        Not one `_id: {$in: …}` query, nor `$or`: FerretDB v1.24 decodes every document of the
        collection in Go for both (20,000 documents on PostgreSQL: two ids by `$in` 465 ms,
        `explain` `filterPushdown: false`; one by `_id` 6.6 ms, pushed down).
        """
        ids = list(dict.fromkeys(doc_ids))
        gate = asyncio.Semaphore(in_flight)

        async def read(doc_id: str) -> Document | None:
            async with gate:
                return await self.get(doc_id)

        reads = [asyncio.ensure_future(read(i)) for i in ids]
        try:
            found = await asyncio.gather(*reads)
        except BaseException:
            for pending in reads:  # one read failed: the rest would only hold connections
                pending.cancel()
            raise
        return {i: doc for i, doc in zip(ids, found, strict=True) if doc is not None}


FASTSTREAM_WAIT_MS = 200
"""FastStream's default `batch_timeout_ms`, which every other group keeps."""
URGENT_WAIT_MS = 40
"""An urgent handler's idle wait (`EventHandler.urgent`): at most ~40 ms added to its hop,
25 empty polls a second (each reads aiokafka's fetch buffer, not the broker)."""


class EventHandler(ABC):
    """Something fed by a consumer group: a projection or a policy."""

    name: ClassVar[str]
    """Short name, e.g. `caseload`; part of the consumer group and dead-letter topic names."""
    topics: ClassVar[tuple[str, ...]]
    concurrent: ClassVar[bool] = False
    """Whether the runner may apply a batch's streams concurrently and hold its read-model
    writes until the batch is done (`PendingWrites`). Only for a handler that writes through
    `ReadModel.apply` / `CountedDocuments.apply` (or with inserts keyed by the event), reads
    its own documents only through them while handling, and whose documents fed by several
    streams do not depend on the order of those streams' events (order across partitions is
    not guaranteed anyway). Policies that run commands stay serial."""
    urgent: ClassVar[bool] = False
    """Whether its consumer asks for records every `URGENT_WAIT_MS` when idle, not every
    FastStream default (`batch_timeout_ms` 200 ms, and as long a sleep after an empty poll,
    which a record arriving meanwhile waits out). For the few policies on the path of a crisis
    alert; every other group keeps the default and its load."""

    @abstractmethod
    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        """React to one event; return False when it changed nothing (duplicate or irrelevant).

        Must be idempotent: the same event can arrive more than once.
        """

    async def ensure_indexes(self) -> None:  # noqa: B027 - optional hook
        """Indexes the handler's queries need (none by default)."""


class Projection(EventHandler):
    """A read model fed by events; its collection is named after it unless told otherwise."""

    def __init__(self, database: AsyncDatabase[Document], collection: str | None = None) -> None:
        self.database = database
        self.read_model = ReadModel(database[collection or self.name])


def dead_letter_topic(service: str, projection: str) -> str:
    """Where a projection's poison events go."""
    return f"casework.{service}.{projection}.dlq"


def consumer_group(service: str, projection: str) -> str:
    """The consumer group of a projection."""
    return f"casework.{service}.{projection}"


# --- transient or poison -------------------------------------------------------------------

# Server error codes that mean "not now" rather than "never": shutdown, no primary, step-down,
# network trouble between servers, an operation timed out.
_TRANSIENT_MONGO_CODES = frozenset(
    {6, 7, 50, 89, 91, 189, 202, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436}
)


CONTENTION = "contention"
"""The transient kind of a lost write race (`ConcurrencyConflict`): retried, but not forever."""


def transient_kind(exc: BaseException) -> str | None:
    """`"database"` or `"broker"` when `exc` (or what caused it) is an outage that retrying
    heals, `"contention"` for a lost write race; None when it is deterministic (a bug, a
    contract violation: poison).

    Database: PyMongo's `ConnectionFailure` family (`AutoReconnect`, `NetworkTimeout`,
    `NotPrimaryError`, `ServerSelectionTimeoutError`), `ExecutionTimeout`, `WTimeoutError`,
    and server errors with a transient code or the `RetryableWriteError` label. Broker:
    aiokafka's `KafkaConnectionError`, `KafkaTimeoutError`, `NodeNotReadyError`,
    `RequestTimedOutError` and every other error aiokafka marks `retriable`.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConcurrencyConflict):
            return CONTENTION
        if isinstance(
            current,
            pymongo_errors.ConnectionFailure
            | pymongo_errors.ExecutionTimeout
            | pymongo_errors.WTimeoutError,
        ):
            return "database"
        if isinstance(current, pymongo_errors.PyMongoError) and (
            current.has_error_label("RetryableWriteError")
            or (
                isinstance(current, pymongo_errors.OperationFailure)
                and current.code in _TRANSIENT_MONGO_CODES
            )
        ):
            return "database"
        if isinstance(
            current,
            kafka_errors.KafkaConnectionError
            | kafka_errors.KafkaTimeoutError
            | kafka_errors.NodeNotReadyError
            | kafka_errors.RequestTimedOutError,
        ) or (isinstance(current, kafka_errors.KafkaError) and current.retriable):
            return "broker"
        current = current.__cause__ or current.__context__
    return None


def describe_error(exc: BaseException) -> str:
    """The error class and a message that quotes no input value, for dead-letter headers and
    logs (client data must not reach them).

    A pydantic `ValidationError` is reduced to each error's field location and type (its own
    text quotes the rejected values: a note, presenting concerns); a `UnicodeError` to its
    class (it quotes the bytes). Other messages are the code's own text, cut at 300
    characters, and the frame that raised is named.
    """
    name = type(exc).__name__
    if isinstance(exc, PydanticValidationError):
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['type']}" for e in errors
        )
        message = f"{exc.title}: {len(errors)} error(s): {fields}"
    elif isinstance(exc, UnicodeError):
        message = "undecodable input"
    else:
        message = str(exc)[:300]
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].name}, {Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return f"{name}: {message}{where if frames else ''}"


class _HoldOff(Exception):
    """The outage outlasted `hold_s`: hand the records back to the poll loop."""


class ParkedStream(Exception):
    """A record of a parked stream reached a step that must not apply it."""


def stream_of(record: ConsumerRecord[Any, Any]) -> str | None:
    """The stream a record belongs to: its `ce_subject`, else its key."""
    for key, value in record.headers or ():
        if key == "ce_subject" and value:
            return bytes(value).decode(errors="replace")
    if record.key:
        return bytes(record.key).decode(errors="replace")
    return None


def record_document(record: ConsumerRecord[Any, Any]) -> Document:
    """A Kafka record as stored by `StreamParking` (bytes kept as they came)."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key,
        "value": record.value,
        # FerretDB 1.24 stores no nested arrays: one small document per header
        "headers": [{"k": k, "v": bytes(v)} for k, v in (record.headers or ())],
    }


def record_from_document(doc: Mapping[str, Any]) -> ConsumerRecord[Any, Any]:
    """The Kafka record `record_document` stored."""
    key, value = doc.get("key"), doc.get("value")
    return ConsumerRecord(
        topic=doc["topic"],
        partition=doc["partition"],
        offset=doc["offset"],
        timestamp=doc.get("timestamp") or 0,
        timestamp_type=0,
        key=bytes(key) if key is not None else None,
        value=bytes(value) if value is not None else None,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=[(h["k"], bytes(h["v"])) for h in doc.get("headers", [])],
    )


class StreamParking:
    """The durable parked state of one handler (DESIGN §7 subset: inserts and deletes only).

    - `<base>__parked`: one *marker* per parked stream, `_id` = the stream id, holding the
      dead-lettered record (topic, partition, offset, key, value, headers) and its error.
    - `<base>__parked_records`: the later records of parked streams, `_id` =
      `<stream>|<topic>|<partition>|<offset>`, so a redelivered record is stored once.

    Invariant: while a stream's marker exists, no record of that stream after the dead
    letter is applied; each is in `__parked_records` (or will be, on redelivery, since its
    offset is committed only after the insert). Releasing applies them in offset order (one
    stream lives on one partition) and deletes the records, then the marker.
    """

    def __init__(self, database: AsyncDatabase[Document], base: str) -> None:
        self.markers = database[f"{base}__parked"]
        self.records = database[f"{base}__parked_records"]

    async def all(self) -> dict[str, Document]:
        """Every marker, by stream."""
        return {d["_id"]: dict(d) async for d in self.markers.find({})}

    async def park(
        self, stream: str, record: ConsumerRecord[Any, Any], error: str, attempts: int, at: Any
    ) -> Document:
        """Park `stream` at its dead letter `record`; returns the marker in force."""
        marker = {
            "_id": stream,
            **record_document(record),
            "error": error,
            "attempts": attempts,
            "since": at,
        }
        try:
            await self.markers.insert_one(marker)
        except DuplicateKeyError:
            existing = await self.markers.find_one({"_id": stream})
            return dict(existing) if existing else marker
        return marker

    async def hold(self, stream: str, record: ConsumerRecord[Any, Any]) -> bool:
        """Keep a later record of a parked stream; False if it was kept already."""
        doc_id = f"{stream}|{record.topic}|{record.partition}|{record.offset:020d}"
        try:
            await self.records.insert_one(
                {"_id": doc_id, "stream": stream, **record_document(record)}
            )
        except DuplicateKeyError:
            return False
        return True

    async def held(self, stream: str) -> list[Document]:
        """The records kept for `stream`, in stream order (a full scan: parked sets are small)."""
        docs = [dict(d) async for d in self.records.find({"stream": stream})]
        return sorted(docs, key=lambda d: (d["topic"], d["partition"], d["offset"]))

    async def forget(self, stream: str, held: Sequence[Document]) -> None:
        """Delete what was released: the held records first, then the marker."""
        for doc in held:
            await self.records.delete_one({"_id": doc["_id"]})
        await self.markers.delete_one({"_id": stream})

    async def forget_records(self, held: Sequence[Document]) -> None:
        """Delete held records that were released (or became the new dead letter)."""
        for doc in held:
            await self.records.delete_one({"_id": doc["_id"]})

    async def counts(self) -> dict[str, int]:
        """Held records per parked stream."""
        counts: dict[str, int] = dict.fromkeys(await self.all(), 0)
        async for doc in self.records.find({}, {"stream": 1}):
            counts[doc["stream"]] = counts.get(doc["stream"], 0) + 1
        return counts


def parking_base(handler: EventHandler) -> str:
    """Collections of a handler's parked state are named after its read model, else itself."""
    if isinstance(handler, Projection):
        return handler.read_model.collection.name
    return handler.name


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ConsumerRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # another consumer may write these partitions' documents from now on
        self.runner.known.forget()
        self.runner.held = frozenset()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # streams parked by another replica may now be ours: read the markers again; and
        # documents another consumer wrote while it held them are read afresh
        self.runner._parked_stale = True
        self.runner.known.forget()
        self.runner.held = frozenset(assigned)
        self.runner.assignments += 1


class ConsumerRunner:
    """Feeds one projection or policy from Kafka: decode, apply, retry transient failures for
    as long as they last, dead-letter poison and park its stream, ack.

    State for readiness (`/readyz`): `failing_since` and `failure_kind` ("database",
    "broker" or "contention") while a transient failure is being retried, `parked_streams`, and
    `last_event_time` (the time of the last event applied, for the lag in seconds).
    """

    def __init__(
        self,
        handler: EventHandler,
        registry: EventRegistry,
        *,
        service: str,
        publish_dead_letter: Callable[[str, ConsumerRecord[Any, Any], str, int], Any],
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        max_attempts: int = 5,
        retry_delay: float = 0.05,
        prefix: str = "",
        parking: StreamParking | None = None,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        hold_s: float | None = None,
        streams_in_flight: int = 32,
        contention_patience_s: float = 60.0,
    ) -> None:
        self.handler = handler
        self._prefix = prefix  # the namespace: before every topic and group name
        self._registry = registry
        self.service = service
        self._publish_dead_letter = publish_dead_letter
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self.parking = parking
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self.hold_s = hold_s
        self.contention_patience_s = contention_patience_s
        """How long lost write races are retried as transient before they count as poison
        (several times the relay's grace, after which an abandoned intent is cleared)."""
        self._contended_since: float | None = None
        self.streams_in_flight = streams_in_flight
        """Streams of one batch a `concurrent` handler applies at once (1: one by one)."""
        self.known = KnownDocuments()
        """A concurrent handler's documents as this runner last wrote or read them."""
        """Longest time one call of the batch handler retries an outage before it rewinds
        and returns to the poll loop (None: retry in place forever, for offline tools)."""
        self._parked: dict[str, Document] = {}
        self._parked_stale = parking is not None
        self._backoff = backoff_initial_s
        self.failing_since: datetime | None = None
        self.failure_kind: str | None = None
        self.last_event_time: datetime | None = None
        self.last_poison: str | None = None
        self.assignments = 0
        """Partition assignments this runner's consumer received (one per rebalance)."""
        self.held: frozenset[Any] = frozenset()
        """The partitions its consumer holds now (empty between a revocation and the next
        assignment; a rebalance may leave a member with none)."""

    @property
    def group_id(self) -> str:
        return self._prefix + consumer_group(self.service, self.handler.name)

    @property
    def dead_letter_topic(self) -> str:
        return self._prefix + dead_letter_topic(self.service, self.handler.name)

    @property
    def parked_streams(self) -> int:
        """Streams of this handler waiting for an operator (as last read or parked here)."""
        return len(self._parked)

    # --- transient failures ---

    async def _outage(self, exc: BaseException, kind: str, hold_until: float | None) -> None:
        """Note the outage, wait the next backoff step; `_HoldOff` when past `hold_until`."""
        if self.failing_since is None:
            self.failing_since = self._clock.now()
            log.warning(
                "%s: %s trouble (%s); retrying until it clears",
                self.handler.name,
                kind,
                type(exc).__name__,
            )
        self.failure_kind = kind
        if self._metrics:
            self._metrics.transient_retries.labels(self.handler.name, kind).inc()
        loop = asyncio.get_running_loop()
        delay = self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_max_s)
        if hold_until is not None:
            delay = min(delay, max(hold_until - loop.time(), 0.0))
        await asyncio.sleep(delay)
        if hold_until is not None and loop.time() >= hold_until:
            raise _HoldOff

    def _healthy(self) -> None:
        if self.failing_since is not None:
            log.info("%s: recovered after %s", self.handler.name, self.failure_kind)
        self.failing_since = None
        self.failure_kind = None
        self._contended_since = None
        self._backoff = self._backoff_initial_s

    def _patient_with(self, kind: str) -> bool:
        """Whether a transient failure of `kind` is still retried as one: always for an
        outage; for contention, until it has lasted `contention_patience_s` (loop time,
        since the first conflict of this run of failures)."""
        if kind != CONTENTION:
            return True
        now = asyncio.get_running_loop().time()
        if self._contended_since is None:
            self._contended_since = now
        return now - self._contended_since < self.contention_patience_s

    async def _retrying(self, step: Callable[[], Awaitable[T]], hold_until: float | None) -> T:
        """Run `step` until it does not fail transiently (poison is raised)."""
        while True:
            try:
                return await step()
            except Exception as exc:
                kind = transient_kind(exc)
                if kind is None or not self._patient_with(kind):
                    raise
                await self._outage(exc, kind, hold_until)

    # --- one record ---

    async def load_parked(self, hold_until: float | None = None) -> None:
        """Read the parked streams from the database (at start and after each rebalance)."""
        if self.parking is None:
            return
        parking = self.parking
        self._parked = await self._retrying(parking.all, hold_until)
        self._parked_stale = False
        self._set_parked_gauge()

    def _set_parked_gauge(self) -> None:
        if self._metrics:
            self._metrics.parked_streams.labels(self.handler.name).set(len(self._parked))

    async def process(
        self, record: ConsumerRecord[Any, Any], *, hold_until: float | None = None
    ) -> str:
        """Handle one record.

        Returns the outcome: `applied`, `unchanged` (a duplicate, an older version, or an
        event the handler ignores), `skipped` (a type unknown here), `dead_lettered` (its
        stream is now parked) or `parked` (a later record of a parked stream, kept for the
        operator's decision). Transient failures are retried inside; `_HoldOff` when they
        outlast `hold_until` (loop time).
        """
        if self._parked_stale:
            await self.load_parked(hold_until)
        stream = stream_of(record)
        if stream is not None and stream in self._parked:
            outcome = await self._park_later(stream, record, hold_until)
            if outcome is not None:
                self._count(outcome)
                return outcome
        outcome = await self._apply(record, stream, hold_until)
        self._count(outcome)
        return outcome

    async def reapply(self, record: ConsumerRecord[Any, Any]) -> str:
        """Apply a dead letter or a held record on an operator's word (`casework.rebuild`):
        like `process`, but past the stream's parking."""
        outcome = await self._apply(record, stream_of(record), None)
        self._count(outcome)
        return outcome

    def now(self) -> datetime:
        return self._clock.now()

    def _count(self, outcome: str) -> None:
        if self._metrics:
            self._metrics.events_projected.labels(self.handler.name, outcome).inc()

    async def _park_later(
        self, stream: str, record: ConsumerRecord[Any, Any], hold_until: float | None
    ) -> str | None:
        """Keep `record` if it comes after its parked stream's dead letter; None to apply it
        (a redelivered record from before the dead letter)."""
        marker = self._parked[stream]
        same_partition = (marker["topic"], marker["partition"]) == (record.topic, record.partition)
        if same_partition and record.offset == marker["offset"]:
            return "parked"  # the dead letter itself, redelivered: already in the topic
        if same_partition and record.offset < marker["offset"]:
            return None
        assert self.parking is not None
        parking = self.parking
        await self._retrying(lambda: parking.hold(stream, record), hold_until)
        return "parked"

    async def _apply(
        self, record: ConsumerRecord[Any, Any], stream: str | None, hold_until: float | None
    ) -> str:
        name = self.handler.name
        try:
            envelope = Envelope.from_kafka(record.value, record.headers or ())
            envelope = replace(
                envelope, position=Position(record.topic, record.partition, record.offset)
            )
        except MalformedEnvelope as exc:
            await self._poison(record, stream, exc, 1, hold_until)
            return "dead_lettered"
        if envelope.type not in self._registry:
            self._healthy()
            return "skipped"  # an event this version of the service does not know
        attempt = 0
        while True:
            try:
                event = self._registry.parse(envelope.type, dict(envelope.data))
                changed = await self.handler.handle(envelope, event)
                outcome = "applied" if changed else "unchanged"
                break
            except UnknownEventType:
                outcome = "skipped"
                break
            except Exception as exc:
                kind = transient_kind(exc)
                if kind is not None and self._patient_with(kind):
                    await self._outage(exc, kind, hold_until)
                    continue  # an outage costs no attempt: it says nothing about the event
                attempt += 1
                if attempt >= self._max_attempts:
                    await self._poison(record, envelope.subject, exc, attempt, hold_until)
                    return "dead_lettered"
                log.warning(
                    "%s: attempt %d on %s v%s failed: %s",
                    name,
                    attempt,
                    envelope.subject,
                    envelope.stream_version,
                    describe_error(exc),
                )
                await asyncio.sleep(self._retry_delay * 2 ** (attempt - 1))
        self._healthy()
        pending = pending_writes()
        if pending is not None:
            pending.event_times.append(envelope.time)  # observed once the batch is written
        else:
            self._observe_lag([envelope.time])
        return outcome

    async def _poison(
        self,
        record: ConsumerRecord[Any, Any],
        stream: str | None,
        exc: BaseException,
        attempts: int,
        hold_until: float | None,
    ) -> None:
        """Dead-letter `record`, then park its stream (in that order: a crash in between
        redelivers the record, which fails and is dead-lettered again — a duplicate letter,
        never a lost one)."""
        error = describe_error(exc)
        self.last_poison = error
        frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
        log.error(
            "%s gives up on %s at %s:%d@%d after %d attempt(s): %s\n%s",
            self.handler.name,
            stream,
            record.topic,
            record.partition,
            record.offset,
            attempts,
            error,
            frames.rstrip(),
        )
        await self._retrying(
            lambda: self._publish_dead_letter(self.dead_letter_topic, record, error, attempts),
            hold_until,
        )
        if self._metrics:
            self._metrics.dead_letters.labels(self.handler.name).inc()
        if self.parking is not None and stream is not None:
            parking = self.parking
            marker = await self._retrying(
                lambda: parking.park(stream, record, error, attempts, self._clock.now()),
                hold_until,
            )
            self._parked[stream] = marker
            self._set_parked_gauge()
        self._healthy()

    # --- the consumer ---

    def _record_consumer_lag(self, message: Any, last: ConsumerRecord[Any, Any]) -> None:
        """The lag gauge of the batch's last partition. **Invariant: a metric never fails a
        handled batch.** A rebalance may revoke the partition while the batch is handled (as
        groups join at a start); aiokafka's `highwater` then raises, and the handled batch
        was nacked (FastStream's `NACK_ON_ERROR`: its offsets not committed, the batch handled
        again) while the nack's own seek on the unassigned partition failed (FastStream 0.7
        logs that at CRITICAL and goes on consuming). So a partition no longer assigned is
        skipped: its new owner reports it."""
        consumer = getattr(message, "consumer", None)
        if self._metrics is None or consumer is None or not hasattr(consumer, "highwater"):
            return  # the in-memory test broker has no real consumer
        partition = TopicPartition(last.topic, last.partition)
        if partition not in consumer.assignment():
            return
        highwater = consumer.highwater(partition)
        if highwater is not None:
            self._metrics.consumer_lag.labels(
                self.handler.name, last.topic, str(last.partition)
            ).set(max(highwater - last.offset - 1, 0))

    async def handle_batch(self, records: Sequence[ConsumerRecord[Any, Any]], consumer: Any) -> int:
        """Process a batch; returns how many records were processed (and may be committed).

        A `concurrent` handler's batch goes to `_handle_concurrently`; any other is processed
        in order, one record after another.

        When an outage outlasts `hold_s`, each partition of the unprocessed rest is rewound
        (`consumer.seek`) to its first unprocessed record and the call returns: the ack then
        commits exactly what was processed, the poll loop runs (so the consumer stays in its
        group: aiokafka's `max_poll_interval_ms`), and the same records come back.
        """
        loop = asyncio.get_running_loop()
        hold_until = None if self.hold_s is None else loop.time() + self.hold_s
        if self.handler.concurrent and self.streams_in_flight > 1:
            return await self._handle_concurrently(records, consumer, hold_until)
        for done, record in enumerate(records):
            try:
                await self.process(record, hold_until=hold_until)
            except Exception as exc:
                if not isinstance(exc, _HoldOff):
                    # dead-lettering or parking itself failed, deterministically: never skip
                    # the record; say why without quoting it, and try again after a pause
                    log.error(
                        "%s cannot dead-letter or park %s:%d@%d: %s",
                        self.handler.name,
                        record.topic,
                        record.partition,
                        record.offset,
                        describe_error(exc),
                    )
                    await asyncio.sleep(self._backoff_max_s)
                rewind: dict[TopicPartition, int] = {}
                for rest in records[done:]:
                    rewind.setdefault(TopicPartition(rest.topic, rest.partition), rest.offset)
                for tp, offset in rewind.items():
                    consumer.seek(tp, offset)
                if self._metrics:
                    self._metrics.consumer_holdoffs.labels(self.handler.name).inc()
                return done
        return len(records)

    async def _handle_concurrently(
        self,
        records: Sequence[ConsumerRecord[Any, Any]],
        consumer: Any,
        hold_until: float | None,
    ) -> int:
        """Apply a batch with one task per stream (up to `streams_in_flight` at once), each
        stream's records in offset order, every read-model write held in a `PendingWrites`
        and written once per document after the last record; then the batch may be committed.

        Invariants (docs/architecture.md, "Concurrent batches"):
        - per stream, records are handled in offset order, one at a time (a stream is one
          Kafka key, so it lives in one partition); poison parks the stream as in the serial
          path, and the stream's later records of the batch are held;
        - a partition counter document (`casework.counters`) takes the changes of every
          record of the batch past the offset it stored at the batch's start, summed, and
          stores the highest such offset: the same documents the serial path writes, in one
          write instead of one per record;
        - all or nothing per batch: if anything fails (an outage past `hold_s`, a dead letter
          that cannot be published, a `WriteConflict`), the held writes are dropped, every
          partition of the batch is rewound to its first record and 0 is returned, so no
          offset is committed past a record whose writes were not made.
        """
        if self._parked_stale:
            await self.load_parked(hold_until)
        streams: dict[str | None, list[ConsumerRecord[Any, Any]]] = {}
        for record in records:
            streams.setdefault(stream_of(record), []).append(record)
        gate = asyncio.Semaphore(self.streams_in_flight)

        async def run(stream_records: list[ConsumerRecord[Any, Any]]) -> None:
            async with gate:
                for record in stream_records:
                    await self.process(record, hold_until=hold_until)

        loop = asyncio.get_running_loop()
        started = loop.time()
        failure: BaseException | None = None
        with holding_writes(PendingWrites(self.known)) as pending:
            results = await asyncio.gather(
                *(run(rs) for rs in streams.values()), return_exceptions=True
            )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        applied = loop.time()
        written = 0
        if failure is None:
            try:
                written = await pending.flush(lambda step: self._retrying(step, hold_until))
            except Exception as exc:
                failure = exc
        if failure is not None:
            if isinstance(failure, WriteConflict):
                log.warning("%s: %s; applying the batch again", self.handler.name, failure)
                await asyncio.sleep(self._retry_delay)
            elif not isinstance(failure, _HoldOff):
                log.error(
                    "%s cannot finish a batch of %d records: %s",
                    self.handler.name,
                    len(records),
                    describe_error(failure),
                )
                await asyncio.sleep(self._backoff_max_s)
            self.known.forget()  # the batch's writes may be half done
            self._rewind(records, consumer)
            return 0
        pending.remember()
        self._observe_lag(pending.event_times)
        log.debug(
            "%s: %d records of %d streams applied in %.0f ms, %d documents written in %.0f ms",
            self.handler.name,
            len(records),
            len(streams),
            (applied - started) * 1000,
            written,
            (loop.time() - applied) * 1000,
        )
        return len(records)

    def _rewind(self, records: Sequence[ConsumerRecord[Any, Any]], consumer: Any) -> None:
        """Seek each partition of `records` back to its first record there."""
        rewind: dict[TopicPartition, int] = {}
        for record in records:
            rewind.setdefault(TopicPartition(record.topic, record.partition), record.offset)
        if consumer is not None:
            for tp, offset in rewind.items():
                consumer.seek(tp, offset)
        if self._metrics:
            self._metrics.consumer_holdoffs.labels(self.handler.name).inc()

    def _observe_lag(self, times: Sequence[datetime]) -> None:
        if not times:
            return
        self.last_event_time = max(times)
        if self._metrics:
            now = self._clock.now()
            for moment in times:
                lag = (now - moment).total_seconds()
                self._metrics.projection_lag.labels(self.handler.name).observe(max(lag, 0.0))

    def subscribe(
        self, broker: KafkaBroker, *, max_records: int = 500, max_poll_interval_ms: int = 300_000
    ) -> Any:
        """Register this runner as a batch subscriber on the broker; returns the subscriber.

        Unless set, `hold_s` becomes a quarter of `max_poll_interval_ms`.
        """
        if self.hold_s is None:
            self.hold_s = max_poll_interval_ms / 4000

        async def on_batch(message: KafkaMessage) -> None:
            raw = message.raw_message
            records = raw if isinstance(raw, tuple) else (raw,)
            done = await self.handle_batch(records, getattr(message, "consumer", None))
            if done:
                self._record_consumer_lag(message, records[done - 1])

        subscriber = broker.subscriber(
            *(self._prefix + t for t in self.handler.topics),
            group_id=self.group_id,
            auto_offset_reset="earliest",
            batch=True,
            max_records=max_records,
            batch_timeout_ms=URGENT_WAIT_MS if self.handler.urgent else FASTSTREAM_WAIT_MS,
            max_poll_interval_ms=max_poll_interval_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            listener=_RebalanceListener(self),
            title=f"{self.group_id}",
            description=f"`{self.handler.name}` of the {self.service} service",
        )
        subscriber(on_batch)
        return subscriber


def dead_letter_headers(
    record: ConsumerRecord[Any, Any], error: str, attempts: int, projection: str
) -> dict[str, str]:
    """The original headers plus where the record came from and why it failed (`error` comes
    from `describe_error`: no input values)."""
    headers = {
        k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
        for k, v in (record.headers or ())
    }
    headers.update(
        {
            "x-dlq-projection": projection,
            "x-dlq-topic": record.topic,
            "x-dlq-partition": str(record.partition),
            "x-dlq-offset": str(record.offset),
            "x-dlq-attempts": str(attempts),
            "x-dlq-error": error[:4000],
        }
    )
    return headers


def broker_dead_letter_publisher(
    broker: KafkaBroker, projection: str
) -> Callable[[str, ConsumerRecord[Any, Any], str, int], Any]:
    """Publishes dead letters through the service's broker, awaiting Kafka's ack."""

    async def publish(
        topic: str, record: ConsumerRecord[Any, Any], error: str, attempts: int
    ) -> None:
        await broker.publish(
            record.value or b"",
            topic=topic,
            key=record.key,
            headers=dead_letter_headers(record, error, attempts, projection),
        )

    return publish


def runners(
    projections: Sequence[EventHandler],
    registry: EventRegistry,
    broker: KafkaBroker,
    *,
    service: str,
    metrics: Metrics | None = None,
    max_attempts: int = 5,
    prefix: str = "",
    database: AsyncDatabase[Document] | None = None,
) -> list[ConsumerRunner]:
    """One runner per projection or policy, dead-lettering through `broker` and parking
    poisoned streams in `database` (the service's)."""
    return [
        ConsumerRunner(
            p,
            registry,
            service=service,
            publish_dead_letter=broker_dead_letter_publisher(broker, p.name),
            metrics=metrics,
            max_attempts=max_attempts,
            prefix=prefix,
            parking=StreamParking(database, parking_base(p)) if database is not None else None,
        )
        for p in projections
    ]
