"""Offline operations on a projection or policy: rebuild from the beginning, replay or discard
dead letters, list parked streams (DESIGN §5). Run them with the service stopped, through
`casework rebuild | dead-letters | parked` (`casework.cli`).

Rebuild reads every topic the projection consumes from offset 0 up to the end offsets taken
when it starts and folds the events *in memory* (`BufferedCollection`: the handlers run
unchanged, their reads and writes by `_id` hit a dict) into a fresh collection
(`<name>__rebuild`), written once per document with `insert_many`. Then it swaps the fresh
collection (and its parked state) in and commits the projection's consumer group at those end
offsets, so that the service, once started again, goes on from exactly where the rebuild
stopped. Invariant: the rebuilt documents equal what the live runner builds from the same
events (same handler code; tested for every read model of cases and intake).

Replay and discard work on the parked streams (`casework.projections.StreamParking`): replay
applies the dead letter again, discard drops it; either way the stream's held records are then
applied in order and the marker deleted. A record that fails again becomes the stream's new
dead letter (dead-lettered again, the stream stays parked from it). Every step is idempotent,
so an interrupted run is finished by running it again.

All of them refuse while the service consumes (the group has live members), so that each
document keeps one writer; the swap drops the old collection before renaming the new one
(FerretDB 1.24 implements `renameCollection` without `dropTarget`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import bson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError

from casework.events import EventRegistry
from casework.eventstore import Document
from casework.kafka_clients import kafka_client_options
from casework.projections import (
    ConsumerRunner,
    EventHandler,
    Projection,
    StreamParking,
    consumer_group,
    dead_letter_headers,
    dead_letter_topic,
    parking_base,
    record_from_document,
)
from casework.relay import kafka_producer
from casework.runtime import ServiceRuntime, topic_prefix
from casework.settings import Settings


class GroupStillActive(RuntimeError):
    """The projection's consumer group has live members: stop the service first."""


@dataclass
class RebuildReport:
    projection: str
    collection: str
    events: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    end_offsets: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    write_seconds: float = 0.0
    """Of `seconds`, the time spent writing the folded documents."""


def producer_dead_letter_publisher(
    producer: AIOKafkaProducer, projection: str
) -> Callable[[str, ConsumerRecord[Any, Any], str, int], Any]:
    """Dead letters sent with a plain producer (no broker runs during a rebuild)."""

    async def publish(
        topic: str, record: ConsumerRecord[Any, Any], error: str, attempts: int
    ) -> None:
        headers = dead_letter_headers(record, error, attempts, projection)
        await producer.send_and_wait(
            topic,
            value=record.value,
            key=record.key,
            headers=[(k, v.encode()) for k, v in headers.items()],
        )

    return publish


class BufferedCollection:
    """A fresh collection folded in memory: what a handler reads and writes by `_id` stays in a
    dict, and `flush` writes each new document once, with `insert_many`.

    Invariant: a handler sees exactly what it would see on the real collection (reads by
    `_id` come from the buffer, or the server for documents already flushed; `insert_one` of
    an existing `_id` raises `DuplicateKeyError`); a `find_one` by anything else flushes first
    and asks the server; `find` is refused while documents are buffered, and so is every other
    write (`update_one`, `delete_many`, ...), rather than bypassing the buffer. Memory is
    bounded by `max_buffered` documents: beyond it the buffer is flushed (documents flushed
    before and changed since are written with `replace_one`).
    """

    def __init__(self, collection: AsyncCollection[Document], max_buffered: int = 200_000):
        self.collection = collection
        self.max_buffered = max_buffered
        self._buffer: dict[Any, Document | None] = {}  # None: deleted
        self._flushed: set[Any] = set()
        self.written = 0

    _PASSED_THROUGH = frozenset(
        {"name", "full_name", "database", "create_index", "create_indexes", "index_information"}
    )

    def __getattr__(self, name: str) -> Any:
        # Anything else (update_one, delete_many, ...) would bypass the buffer: refused loudly.
        if name in self._PASSED_THROUGH:
            return getattr(self.collection, name)
        raise AttributeError(f"{name} is not supported on a collection being rebuilt in memory")

    @staticmethod
    def _by_id(filter: Mapping[str, Any]) -> Any:
        if set(filter) != {"_id"} or isinstance(filter["_id"], dict):
            raise _NotById
        return filter["_id"]

    async def find_one(
        self, filter: Mapping[str, Any], projection: Mapping[str, Any] | None = None
    ) -> Document | None:
        try:
            doc_id = self._by_id(filter)
        except _NotById:
            await self.flush()
            return await self.collection.find_one(filter, projection)
        if doc_id in self._buffer:
            doc = self._buffer[doc_id]
        elif doc_id in self._flushed:
            return await self.collection.find_one(filter, projection)
        else:
            doc = None
        return None if doc is None else _project(doc, projection)

    async def replace_one(
        self, filter: Mapping[str, Any], replacement: Document, upsert: bool = False
    ) -> None:
        doc_id = self._by_id(filter)
        if upsert or await self.find_one({"_id": doc_id}, {"_id": 1}) is not None:
            await self._put(doc_id, {**replacement, "_id": doc_id})

    async def insert_one(self, document: Document) -> None:
        doc_id = document.setdefault("_id", ObjectId())
        if await self.find_one({"_id": doc_id}, {"_id": 1}) is not None:
            raise DuplicateKeyError(f"E11000 duplicate key error: _id {doc_id!r}", code=11000)
        await self._put(doc_id, dict(document))

    async def delete_one(self, filter: Mapping[str, Any]) -> None:
        await self._put(self._by_id(filter), None)

    def find(self, *args: Any, **kwargs: Any) -> Any:
        if self._buffer:
            raise RuntimeError("a query other than by _id during a rebuild: flush() first")
        return self.collection.find(*args, **kwargs)

    async def _put(self, doc_id: Any, doc: Document | None) -> None:
        # Kept as the server would return it (datetimes cut to milliseconds, tuples as
        # lists, ...): a handler that derives a field from what it reads back must see the
        # same values as on the live collection, or the rebuild would differ from it.
        self._buffer[doc_id] = None if doc is None else self._as_stored(doc)
        if len(self._buffer) >= self.max_buffered:
            await self.flush()

    def _as_stored(self, doc: Document) -> Document:
        return bson.decode(bson.encode(doc), codec_options=self.collection.codec_options)

    async def flush(self, batch: int = 1000) -> None:
        """Write what the buffer holds: new documents in bulk, the rest one by one."""
        new = [d for i, d in self._buffer.items() if d is not None and i not in self._flushed]
        for start in range(0, len(new), batch):
            await self.collection.insert_many(new[start : start + batch], ordered=False)
        for doc_id, doc in self._buffer.items():
            if doc_id not in self._flushed:
                continue
            if doc is None:
                await self.collection.delete_one({"_id": doc_id})
            else:
                await self.collection.replace_one({"_id": doc_id}, doc)
        self.written += len(self._buffer)
        self._flushed.update(i for i, d in self._buffer.items() if d is not None)
        self._flushed.difference_update(i for i, d in self._buffer.items() if d is None)
        self._buffer.clear()


class _NotById(Exception):
    pass


def _project(doc: Document, projection: Mapping[str, Any] | None) -> Document:
    if not projection:
        return dict(doc)
    if any(projection.values()):  # inclusion
        return {k: v for k, v in doc.items() if k == "_id" or projection.get(k)}
    return {k: v for k, v in doc.items() if k not in projection}


def fresh_copy(live: Projection, collection: str) -> Projection:
    """A projection of the same class over another collection."""
    return type(live)(live.database, collection)


async def rebuild_projection(
    live: Projection,
    registry: EventRegistry,
    settings: Settings,
    *,
    progress: Callable[[str], None] = print,
    every: int = 10_000,
    writer: EventHandler | None = None,
) -> RebuildReport:
    """Rebuild `live`'s read model from its topics; see the module docstring.

    `writer`: the policy that keeps this read model in its own handler (it has no consumer
    group): the rebuild refuses while the policy's group has live members, and leaves that
    group's offsets alone — the policy resumes where it was, and what it applies again is
    older than the rebuilt documents' versions, so it changes nothing."""
    started = time.perf_counter()
    prefix = topic_prefix(settings)
    group = prefix + consumer_group(settings.service, (writer or live).name)
    await _refuse_if_active(settings, group)
    database = live.database
    target = live.read_model.collection.name
    fresh_name = f"{target}__rebuild"
    for name in _with_parking(fresh_name):
        await database.drop_collection(name)
    fresh = fresh_copy(live, fresh_name)
    await fresh.ensure_indexes()
    buffered = BufferedCollection(fresh.read_model.collection)
    fresh.read_model.collection = cast("AsyncCollection[Document]", buffered)
    report = RebuildReport(projection=live.name, collection=target)

    producer = kafka_producer(
        client_id=f"{settings.service}-rebuild", **kafka_client_options(settings)
    )
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await producer.start()
    await consumer.start()
    try:
        runner = ConsumerRunner(
            fresh,
            registry,
            service=settings.service,
            publish_dead_letter=producer_dead_letter_publisher(producer, live.name),
            max_attempts=settings.projection_max_attempts,
            prefix=prefix,
            parking=StreamParking(database, fresh_name),
        )
        partitions = [
            TopicPartition(topic, p)
            for topic in (prefix + t for t in live.topics)
            for p in sorted(await producer.partitions_for(topic))  # fetches the metadata
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        total = sum(end.values())
        progress(f"rebuilding {live.name} from {total} records on {len(partitions)} partitions")
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        remaining.discard(tp)
                        break
                    outcome = await runner.process(record)
                    report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
                    report.events += 1
                    if report.events % every == 0:
                        progress(f"  {report.events} events")
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        flush_started = time.perf_counter()
        await buffered.flush()
        report.write_seconds = time.perf_counter() - flush_started
        report.end_offsets = {f"{tp.topic}:{tp.partition}": end[tp] for tp in partitions}

        # the swap, then the group's offsets: the service resumes after what was rebuilt
        existing = set(await database.list_collection_names())
        if report.events and fresh_name not in existing:
            # no event of its topics was the projection's (nothing written, no index made):
            # the rebuilt read model is empty, and the swap must still replace the old one
            with contextlib.suppress(CollectionInvalid):
                await database.create_collection(fresh_name)
            existing.add(fresh_name)
        for old, new in zip(_with_parking(target), _with_parking(fresh_name), strict=True):
            await database.drop_collection(old)
            if new in existing or (new == fresh_name and report.events):
                await database.client.admin.command(
                    "renameCollection", f"{database.name}.{new}", to=f"{database.name}.{old}"
                )
        if writer is None:
            await _commit_group(settings, runner.group_id, {tp: end[tp] for tp in partitions})
    finally:
        await consumer.stop()
        await producer.stop()
    report.seconds = time.perf_counter() - started
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items()))
    progress(
        f"rebuilt {live.name}: {report.events} events in {report.seconds:.1f}s "
        f"({report.events / max(report.seconds, 1e-9):.0f} events/s, "
        f"{report.write_seconds:.1f}s of it writing; "
        f"{outcomes or 'nothing to apply'})"
    )
    return report


def _with_parking(collection: str) -> tuple[str, str, str]:
    return (collection, f"{collection}__parked", f"{collection}__parked_records")


async def _refuse_if_active(settings: Settings, group_id: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group_id])
        groups = response.to_object()["groups"]
    finally:
        await admin.close()
    members = [m for g in groups for m in g["members"]]
    if members:
        raise GroupStillActive(
            f"consumer group {group_id} has {len(members)} live member(s): the service is "
            "running. Stop it, then try again (nothing was changed)"
        )


async def _commit_group(
    settings: Settings, group_id: str, offsets: dict[TopicPartition, int]
) -> None:
    committer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
    )
    await committer.start()
    try:
        committer.assign(list(offsets))
        try:
            await committer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        except Exception as exc:
            raise GroupStillActive(
                f"could not commit the offsets of consumer group {group_id} ({exc}); is the "
                "service still running? Stop it and run the rebuild again"
            ) from exc
    finally:
        await committer.stop()


@dataclass
class ReplayReport:
    projection: str
    topic: str
    letters: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    still_parked: list[str] = field(default_factory=list)


@dataclass
class ParkedStream:
    """One parked stream, as the ops surface lists it (no client data: ids and error only)."""

    handler: str
    stream: str
    since: Any
    error: str
    held: int
    letter: str


async def parked_streams(
    database: AsyncDatabase[Document], handlers: list[EventHandler]
) -> list[ParkedStream]:
    """Every parked stream of these handlers."""
    found: list[ParkedStream] = []
    for handler in handlers:
        parking = StreamParking(database, parking_base(handler))
        counts = await parking.counts()
        for stream, marker in sorted((await parking.all()).items()):
            found.append(
                ParkedStream(
                    handler=handler.name,
                    stream=stream,
                    since=marker.get("since"),
                    error=str(marker.get("error", "")),
                    held=counts.get(stream, 0),
                    letter=f"{marker['topic']}:{marker['partition']}@{marker['offset']}",
                )
            )
    return found


async def replay_dead_letters(
    handler: EventHandler,
    registry: EventRegistry,
    settings: Settings,
    database: AsyncDatabase[Document] | None = None,
    *,
    streams: list[str] | None = None,
    discard: bool = False,
    progress: Callable[[str], None] = print,
) -> ReplayReport:
    """Release parked streams of `handler` (all, or `streams`): apply each dead letter again
    (or, with `discard`, drop it), then the records held behind it, in order; see the module
    docstring. Refuses while the service consumes."""
    prefix = topic_prefix(settings)
    group = prefix + consumer_group(settings.service, handler.name)
    await _refuse_if_active(settings, group)
    if database is None:
        if not isinstance(handler, Projection):
            raise ValueError("a policy's parked streams live in the service database: pass it")
        database = handler.database
    parking = StreamParking(database, parking_base(handler))
    topic = prefix + dead_letter_topic(settings.service, handler.name)
    report = ReplayReport(projection=handler.name, topic=topic)
    producer = kafka_producer(
        client_id=f"{settings.service}-replay", **kafka_client_options(settings)
    )
    await producer.start()
    try:
        runner = ConsumerRunner(
            handler,
            registry,
            service=settings.service,
            publish_dead_letter=producer_dead_letter_publisher(producer, handler.name),
            max_attempts=settings.projection_max_attempts,
            prefix=prefix,
            parking=parking,
        )
        markers = await parking.all()
        for stream in streams if streams is not None else sorted(markers):
            marker = markers.get(stream)
            if marker is None:
                progress(f"  {stream}: not parked")
                continue
            report.letters += 1
            if discard:
                outcome = "discarded"
            else:
                outcome = await runner.reapply(record_from_document(marker))
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
            if outcome == "dead_lettered":
                report.still_parked.append(stream)
                progress(f"  {stream}: fails again ({runner.last_poison}); still parked")
                continue
            held = await parking.held(stream)
            released: list[Document] = []
            for doc in held:
                result = await runner.reapply(record_from_document(doc))
                if result == "dead_lettered":  # the new dead letter: the stream parks from it
                    await parking.markers.replace_one(
                        {"_id": stream},
                        {
                            **marker,
                            **{k: doc[k] for k in doc if k not in ("_id", "stream")},
                            "error": runner.last_poison,
                            "since": runner.now(),
                        },
                    )
                    report.still_parked.append(stream)
                    progress(f"  {stream}: a held record fails ({runner.last_poison})")
                    break
                released.append(doc)
            else:
                await parking.forget(stream, held)
                progress(f"  {stream}: {outcome}, {len(held)} held record(s) applied")
                continue
            await parking.forget_records([*released, doc])
    finally:
        await producer.stop()
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items()))
    verb = "discarded" if discard else "replayed"
    progress(
        f"{verb} {report.letters} dead letter(s) of {handler.name} "
        f"({outcomes or 'none parked'}); {len(report.still_parked)} stream(s) still parked"
    )
    return report


async def run_offline(
    runtime: ServiceRuntime,
    command: str,
    name: str | None = None,
    *,
    streams: list[str] | None = None,
    out: Callable[[str], None] = print,
    progress: Callable[[str], None] = print,
) -> int:
    """One operator command on a built (not started) service runtime; returns the exit
    status. Commands: `projections`, `parked`, `rebuild NAME`, `replay NAME`, `discard NAME`
    (`streams`: only these; None: every parked stream of NAME)."""
    settings = runtime.settings
    handlers = {h.name: h for h in runtime.handlers}
    if command == "projections":
        for each in runtime.handlers:
            kind = "read model" if isinstance(each, Projection) else "policy"
            out(f"{each.name:<40} {kind:<11} {', '.join(each.topics)}")
        for name, (_, writer) in runtime.embedded.items():
            out(f"{name:<40} {'read model':<11} {', '.join(writer.topics)} (kept by {writer.name})")
        return 0
    if command == "rebuild" and name in runtime.embedded:
        projection, writer = runtime.embedded[name]
        await rebuild_projection(
            projection, runtime.registry, settings, progress=progress, writer=writer
        )
        return 0
    if command == "parked":
        chosen = [handlers[name]] if name in handlers else list(runtime.handlers)
        found = await parked_streams(runtime.database, chosen)
        for p in found:
            out(f"{p.handler}\t{p.stream}\t{p.held} held\tsince {p.since}\t{p.letter}\t{p.error}")
        progress(f"{settings.service}: {len(found)} parked stream(s)")
        return 0
    handler = handlers.get(name or "")
    if handler is None or (command == "rebuild" and not isinstance(handler, Projection)):
        kinds = [
            n
            for n, h in sorted(handlers.items())
            if command != "rebuild" or isinstance(h, Projection)
        ]
        progress(
            f"no {'read model' if command == 'rebuild' else 'projection or policy'} "
            f"{name!r} in {settings.service}; it has: {', '.join(kinds)}"
        )
        return 2
    if command == "rebuild":
        assert isinstance(handler, Projection)
        await rebuild_projection(handler, runtime.registry, settings, progress=progress)
        return 0
    if command in ("replay", "discard"):
        report = await replay_dead_letters(
            handler,
            runtime.registry,
            settings,
            runtime.database,
            streams=streams,
            discard=command == "discard",
            progress=progress,
        )
        return 1 if report.still_parked else 0
    raise ValueError(f"unknown command {command!r}")
