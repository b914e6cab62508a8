"""Benchmark of the event pipeline: event store → outbox relay → Kafka → projection.

Each stage is measured beside its raw limit, taken in the same run on the same servers:

- load: `EventStore.load` of one stream among all stored (what every command does first),
  and `EventStore.load_after` (what a repository with the stream cached does: one probe for
  the next commit by exact `_id`), beside `find_one` by `_id`;
- append: `EventStore.append` of one-event commits (an intent, then the commit), beside
  `insert_one` of the same commit documents at the same concurrency; and, to say what bounds
  it, `insert_one` of intent-sized documents alone and of an intent then its commit in turn
  (the same two inserts as an append, without the event store's work);
- relay: `OutboxRelay` draining those commits to Kafka, beside reading the same commits and
  producing their records with the same settings (acks=all, idempotent, linger 5 ms, every
  send in flight, then every acknowledgement awaited);
- project: `ConsumerRunner` (a FastStream batch subscriber) applying them to a read model,
  beside `replace_one` upserts of the same documents, one at a time;
- end to end: append → read model updated, at a steady offered load, relay and projection
  running.

Run `make bench`, or `uv run python bench/pipeline.py --help`. It prints a table (progress on
stderr) and, with `--json FILE`, writes the figures too. It talks only to the servers named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ClassVar

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from casework.envelope import Envelope
from casework.events import DomainEvent, EventRegistry
from casework.eventstore import Document, EventStore
from casework.projections import ConsumerRunner, Projection, broker_dead_letter_publisher
from casework.relay import OutboxRelay, kafka_producer
from casework.runtime import ensure_topics, wait_until

from report import Row, against, measured, progress, server_options, write_json

TEXT = "Home visit completed; client engaged, mood improved, next visit agreed. " * 3


class NoteAdded(DomainEvent):
    """A payload the size of a typical case event (~300 bytes of JSON)."""

    service = "bench"

    case_id: str
    note_id: str
    text: str
    recorded_by: str


REGISTRY = EventRegistry([NoteAdded])


class NotesPerCase(Projection):
    """Counts notes per case, and remembers when each note reached the read model."""

    name = "bench_notes"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        super().__init__(database)
        self.applied_at: dict[str, float] = {}
        self.handle_seconds: list[float] = []

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        assert isinstance(event, NoteAdded)
        started = time.perf_counter()

        def add(doc: Document) -> Document:
            return {**doc, "notes": doc.get("notes", 0) + 1, "last": event.note_id}

        changed = await self.read_model.apply(event.case_id, envelope, add)
        done = time.perf_counter()
        self.handle_seconds.append(done - started)
        self.applied_at.setdefault(event.note_id, done)
        return changed


async def concurrently(
    n: int, concurrency: int, op: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run op(0..n-1) on `concurrency` workers; total seconds and per-call latencies."""
    latencies: list[float] = []
    indexes = iter(range(n))

    async def worker() -> None:
        for i in indexes:
            started = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


class Bench:
    def __init__(self, args: argparse.Namespace, database: AsyncDatabase[Document]) -> None:
        self.args = args
        self.db = database
        run = uuid.uuid4().hex[:8]
        self.topic = f"bench.{run}.events"
        self.raw_topic = f"bench.{run}.raw"
        self.store = EventStore(database, source="/casework/bench")
        self.projection = type("Notes", (NotesPerCase,), {"topics": (self.topic,)})(database)
        self.rows: list[Row] = []

    def note(self, i: int, prefix: str = "n") -> NoteAdded:
        case = f"c{i % self.args.streams}"
        return NoteAdded(case_id=case, note_id=f"{prefix}{i}", text=TEXT, recorded_by="bench")

    async def run(self) -> list[Row]:
        a = self.args
        await ensure_topics(
            a.kafka, [self.topic, self.raw_topic, f"{self.topic}.dlq"], a.partitions
        )
        await self.store.ensure_indexes()
        await self.append_stage()
        if a.append_only:
            return self.rows
        await self.relay_stage()
        await self.project_stage()
        return self.rows

    async def append_stage(self) -> None:
        a = self.args
        progress(f"raw insert_one of {a.events} commit-sized documents, {a.concurrency} at a time")
        sample = Envelope(
            type=NoteAdded.type_name(),
            source="/casework/bench",
            subject="case-c0",
            time=datetime.now(UTC),
            data=self.note(0).model_dump(mode="json"),
            stream_version=1,
        ).to_document()
        raw = self.db["raw_commits"]

        async def insert(i: int) -> None:
            # the same fields as a commit document
            await raw.insert_one(
                {
                    "_id": f"r{i}",
                    "attempt": uuid.uuid4().hex,
                    "stream_id": f"s{i}",
                    "first": 1,
                    "last": 1,
                    "recorded_at": datetime.now(UTC),
                    "events": [sample],
                }
            )

        seconds, latencies = await concurrently(a.events, a.concurrency, insert)
        raw_row = measured("raw insert_one", a.events, seconds, latencies)
        self.rows.append(raw_row)

        # What the append's two inserts cost as raw inserts: an intent alone (is its size a
        # lever?), and an intent then its commit, in sequence (the append's floor).
        raw_intents = self.db["raw_intents"]

        def intent(i: int, prefix: str) -> Document:
            return {
                "_id": f"{prefix}{i}",
                "stream_id": f"s{i}",
                "first": 1,
                "attempt": uuid.uuid4().hex,
                "recorded_at": datetime.now(UTC),
            }

        async def insert_intent(i: int) -> None:
            await raw_intents.insert_one(intent(i, "i"))

        seconds, latencies = await concurrently(a.events, a.concurrency, insert_intent)
        self.rows.append(
            against(
                measured("raw insert_one, intent-sized documents", a.events, seconds, latencies),
                raw_row,
            )
        )

        async def intent_then_commit(i: int) -> None:
            await raw_intents.insert_one(intent(i, "t"))
            await insert(a.events + i)

        seconds, latencies = await concurrently(a.events, a.concurrency, intent_then_commit)
        two_row = measured(
            "raw intent + commit (two inserts in turn)", a.events, seconds, latencies
        )
        self.rows.append(against(two_row, raw_row))

        progress(f"EventStore.append of {a.events} commits over {a.streams} streams")
        versions = [0] * a.streams

        async def append(i: int) -> None:
            s = i % a.streams
            version, versions[s] = versions[s], versions[s] + 1
            await self.store.append(f"case-c{s}", version, [self.note(i)])

        seconds, latencies = await concurrently(a.events, a.concurrency, append)
        self.rows.append(
            against(measured("append (event store)", a.events, seconds, latencies), raw_row)
        )
        self.rows.append(
            against(
                measured("  append / raw intent + commit", a.events, seconds, latencies), two_row
            )
        )
        await self.load_stage()

    async def load_stage(self) -> None:
        """What every command does first: load its aggregate's stream (by `stream_id`)."""
        a = self.args
        loads = min(a.loads, a.streams)
        progress(f"raw find_one by _id, then EventStore.load of {loads} streams")
        raw = self.db["raw_commits"]

        async def by_id(i: int) -> None:
            await raw.find_one({"_id": f"r{i * 7 % a.events}"})

        seconds, latencies = await concurrently(loads, 1, by_id)
        raw_row = measured("raw find_one by _id", loads, seconds, latencies)
        self.rows.append(raw_row)

        async def load(i: int) -> None:
            await self.store.load(f"case-c{i * 7 % a.streams}")

        seconds, latencies = await concurrently(loads, 1, load)
        stage = f"load a stream ({a.events} commits stored)"
        self.rows.append(against(measured(stage, loads, seconds, latencies), raw_row))

        versions = {
            f"case-c{i * 7 % a.streams}": (
                await self.store.load_stream(f"case-c{i * 7 % a.streams}")
            ).version
            for i in range(loads)
        }

        async def probe(i: int) -> None:
            stream = f"case-c{i * 7 % a.streams}"
            await self.store.load_after(stream, versions[stream])

        seconds, latencies = await concurrently(loads, 1, probe)
        stage = "load, stream cached (probe next commit)"
        self.rows.append(against(measured(stage, loads, seconds, latencies), raw_row))

    async def relay_stage(self) -> None:
        a = self.args
        progress(f"raw: read the {a.events} stored commits, produce their records")
        producer = kafka_producer(a.kafka, "bench-raw")
        await producer.start()
        try:
            started = time.perf_counter()
            envelopes = [
                Envelope.from_document(e)
                async for c in self.store.commits.find({})
                for e in c["events"]
            ]
            sent: list[tuple[float, asyncio.Future[object]]] = []
            for e in envelopes:
                future = await producer.send(
                    self.raw_topic, e.value(), key=e.key, headers=e.headers()
                )
                sent.append((time.perf_counter(), future))
            latencies = []
            for at, future in sent:
                await future
                latencies.append(time.perf_counter() - at)
            raw_row = measured(
                "raw read commits + produce",
                len(envelopes),
                time.perf_counter() - started,
                latencies,
            )
        finally:
            await producer.stop()
        self.rows.append(raw_row)

        progress("OutboxRelay draining the stored commits to Kafka")
        relay = OutboxRelay(
            self.store, kafka_producer(a.kafka, "bench-relay"), self.topic, batch_size=a.batch
        )
        await relay._producer.start()
        try:
            started, latencies = time.perf_counter(), []
            while True:
                round_started = time.perf_counter()
                commits = await relay.relay_once()
                if not commits:
                    break
                # every commit of a round is acknowledged when the round ends
                latencies += [time.perf_counter() - round_started] * commits
            row = measured(
                "relay (commits → Kafka)", a.events, time.perf_counter() - started, latencies
            )
        finally:
            await relay._producer.stop()
        self.rows.append(against(row, raw_row))

    async def project_stage(self) -> None:
        a = self.args
        progress(f"raw replace_one upserts of {a.events} read-model documents, one at a time")
        raw = self.db["raw_read_model"]

        async def upsert(i: int) -> None:
            await raw.replace_one({"_id": f"c{i % a.streams}"}, {"notes": i}, upsert=True)

        seconds, latencies = await concurrently(a.events, 1, upsert)
        raw_row = measured("raw upsert", a.events, seconds, latencies)
        self.rows.append(raw_row)

        progress("projection: FastStream batch subscriber → read model, offsets committed after")
        broker = KafkaBroker(a.kafka, log_level=logging.DEBUG)
        runner = ConsumerRunner(
            self.projection,
            REGISTRY,
            service=f"bench{uuid.uuid4().hex[:6]}",
            publish_dead_letter=broker_dead_letter_publisher(broker, self.projection.name),
        )
        runner.subscribe(broker)
        await broker.start()
        try:
            await wait_until(self._all_applied(a.events), within=600)
            applied = sorted(self.projection.applied_at.values())
            # from the first event applied to the last: group joining is not projection work
            seconds = applied[-1] - applied[0]
            self.rows.append(
                against(
                    measured(
                        "project (Kafka → read model)",
                        a.events - 1,
                        seconds,
                        self.projection.handle_seconds,
                    ),
                    raw_row,
                )
            )
            await self.end_to_end()
        finally:
            await broker.stop()

    def _all_applied(self, n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(self.projection.applied_at) >= n

        return check

    async def end_to_end(self) -> None:
        a = self.args
        total = a.rate * a.seconds
        progress(
            f"end to end: {a.rate} commits/s offered for {a.seconds} s, relay and projection live"
        )
        relay = OutboxRelay(
            self.store, kafka_producer(a.kafka, "bench-live"), self.topic, batch_size=a.batch
        )
        await relay.start()
        try:
            appended_at: dict[str, float] = {}
            versions: dict[str, int] = {}
            in_flight: set[asyncio.Task[object]] = set()
            started = time.perf_counter()
            for i in range(total):
                # open loop: each commit leaves on schedule, however long the previous took
                await asyncio.sleep(max(0.0, started + i / a.rate - time.perf_counter()))
                note = NoteAdded(
                    case_id=f"live{i % a.streams}", note_id=f"e{i}", text=TEXT, recorded_by="bench"
                )
                stream = f"case-{note.case_id}"
                version = versions.get(stream, 0)
                versions[stream] = version + 1
                appended_at[note.note_id] = time.perf_counter()
                task = asyncio.create_task(self.store.append(stream, version, [note]))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)
            offered_seconds = time.perf_counter() - started
            with contextlib.suppress(TimeoutError):  # report what arrived
                await wait_until(self._all_applied(len(appended_at) + a.events), within=60)
            latencies = [
                self.projection.applied_at[n] - t
                for n, t in appended_at.items()
                if n in self.projection.applied_at
            ]
            self.rows.append(
                measured(
                    f"end to end @ {a.rate}/s (append → read model)",
                    len(latencies),
                    offered_seconds,
                    latencies,
                )
            )
        finally:
            await relay.stop()


def render(rows: list[Row], header: str) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        header,
        "",
        "| stage                                         |      n |   ops/s | p50 ms | p99 ms "
        "| raw ops/s | ratio |",
        "|-----------------------------------------------|-------:|--------:|-------:|-------:"
        "|----------:|------:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.stage:<45} | {r.n:>6} | {r.rate:>7.0f} | {cell(r.p50_ms, '6.1f'):>6} | "
            f"{cell(r.p99_ms, '6.1f'):>6} | {cell(r.raw_rate, '9.0f'):>9} | "
            f"{cell(r.ratio, '5.2f'):>5} |"
        )
    lines += [
        "",
        "ratio = the stage's ops/s over the raw limit measured just before it (raw insert_one "
        "for append, find_one by _id for load, raw read of the commits + produce for relay, "
        "raw upsert for project).",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Row]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(args.mongo_url, tz_aware=True)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        return await Bench(args, client[name]).run()
    finally:
        await client.drop_database(name)
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Event pipeline benchmark (see the module doc).")
    parser.add_argument("--events", type=int, default=5000, help="commits in the burst stages")
    parser.add_argument("--streams", type=int, default=500, help="aggregates they spread over")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent appenders")
    parser.add_argument("--batch", type=int, default=5000, help="relay batch size")
    parser.add_argument("--loads", type=int, default=200, help="stream loads measured")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=int, default=100, help="offered commits/s, end to end")
    parser.add_argument("--seconds", type=int, default=10, help="length of the end-to-end run")
    parser.add_argument(
        "--append-only", action="store_true", help="only the append and load stages"
    )
    server_options(parser)
    args = parser.parse_args(argv)
    rows = asyncio.run(main_async(args))
    print(
        render(
            rows,
            f"Event pipeline: {args.events} commits over {args.streams} streams, "
            f"{args.concurrency} concurrent appenders, relay batch {args.batch}; "
            f"Kafka {args.kafka}, MongoDB-wire {args.mongo_url} {args.label}".rstrip(),
        )
    )
    write_json(args, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
