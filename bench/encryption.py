"""Benchmark of encryption per data subject (casework.privacy): what sealing personal fields
costs the append path and the projections, each as a ratio to the same run without it.

- append: `EventStore.append` of one-event commits carrying a personal note (~300 bytes)
  over `--streams` cases of as many clients, sealed with each client's data key (the first
  event of a client creates its key in the key store) — beside the same appends unsealed;
- project: a `ConsumerRunner` applying the same events from Kafka to a read model that
  copies the note (a token when sealed: projections never decrypt) — beside the same
  events unsealed;
- open: the HTTP edge opening answers of `--answer-size` documents with one token each —
  beside encoding and decoding the same answers without tokens.

The two variants of a stage run alternately, `--rounds` times each, and the best run of
each is compared (the machine's other load affects both alike). Goal: ratio ≥ 0.8.

Run `make bench`, or `uv run python bench/encryption.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from casework.envelope import Envelope
from casework.events import DomainEvent, EventRegistry, Sealed, personal
from casework.eventstore import Document, EventStore
from casework.privacy import KeyService, LocalKeyFileProvider, create_key_file
from casework.privacy.sealing import Opener, Sealer
from casework.projections import ConsumerRunner, Projection
from casework.runtime import ensure_topics

from report import Row, against, measured, progress, server_options, table, write_json

TEXT = "Home visit completed; client engaged, mood improved, next visit agreed. " * 3


class NoteRecorded(DomainEvent):
    """A case note as the cases service records it: personal, of the client's `notes`."""

    service = "bench"

    case_id: str
    note_id: str
    text: str | Sealed = personal("The note.", subject="client_id", record_class="notes")
    recorded_by: str
    client_id: str


REGISTRY = EventRegistry([NoteRecorded])


class LatestNote(Projection):
    """Keeps each case's latest note as the event carries it (a token when sealed)."""

    name = "bench_latest_note"
    topics: ClassVar[tuple[str, ...]] = ()

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        assert isinstance(event, NoteRecorded)
        text = envelope.data["text"]
        return await self.read_model.apply(
            event.case_id, envelope, lambda doc: {**doc, "note": text, "last": event.note_id}
        )


async def concurrently(
    n: int, concurrency: int, op: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
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


def best(rows: list[Row]) -> Row:
    return max(rows, key=lambda r: r.rate)


class Bench:
    def __init__(self, args: argparse.Namespace, database: AsyncDatabase[Document]) -> None:
        self.args = args
        self.db = database
        self.run_id = uuid.uuid4().hex[:8]
        kek = Path(tempfile.mkdtemp(prefix="bench-kek-")) / "kek"
        create_key_file(kek)
        self.keys = KeyService(database.client[f"{database.name}_keys"], LocalKeyFileProvider(kek))
        self.rows: list[Row] = []

    def note(self, i: int, round_: int) -> NoteRecorded:
        case = i % self.args.streams
        return NoteRecorded(
            case_id=f"c{case}",
            note_id=f"n{i}",
            text=TEXT,
            recorded_by="bench",
            client_id=f"r{round_}-client-{case}",  # new clients each round: keys are created
        )

    async def run(self) -> list[Row]:
        await self.keys.verify()
        stores = await self.append_stage()
        await self.project_stage(stores)
        await self.open_stage()
        return self.rows

    async def append_stage(self) -> dict[str, EventStore]:
        a = self.args
        runs: dict[str, list[Row]] = {"plain": [], "sealed": []}
        stores: dict[str, EventStore] = {}
        for round_ in range(a.rounds):
            for variant in ("plain", "sealed"):
                progress(f"append round {round_ + 1}: {a.events} commits, {variant}")
                store = EventStore(
                    self.db,
                    source="/casework/bench",
                    collection=f"events_{variant}_{round_}",
                    sealer=Sealer(self.keys) if variant == "sealed" else None,
                )
                await store.ensure_indexes()
                runs[variant].append(await self._append_run(store, variant, round_))
                stores[variant] = store
        plain = best(runs["plain"])
        plain.stage = "append (event store), no encryption"
        sealed = best(runs["sealed"])
        sealed.stage = "append (event store), personal fields sealed"
        self.rows += [plain, against(sealed, plain)]
        return stores

    async def _append_run(self, store: EventStore, variant: str, round_: int) -> Row:
        a = self.args
        versions = [0] * a.streams

        async def append(i: int) -> None:
            s = i % a.streams
            version, versions[s] = versions[s], versions[s] + 1
            await store.append(f"case-c{s}", version, [self.note(i, round_)])

        seconds, latencies = await concurrently(a.events, a.concurrency, append)
        return measured(f"append, {variant}", a.events, seconds, latencies)

    async def project_stage(self, stores: dict[str, EventStore]) -> None:
        a = self.args
        topics = {v: f"bench.{self.run_id}.{v}" for v in stores}
        await ensure_topics(a.kafka, list(topics.values()), a.partitions)
        # idempotent: a retried batch (a fresh topic's leader moving) keeps its order
        producer = AIOKafkaProducer(
            bootstrap_servers=a.kafka, linger_ms=5, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for variant, store in stores.items():
                progress(f"producing the {variant} events to Kafka")
                sends = []
                async for commit in store.commits.find({}).sort([("stream_id", 1), ("first", 1)]):
                    for doc in commit["events"]:
                        envelope = Envelope.from_document(doc)
                        sends.append(
                            await producer.send(
                                topics[variant],
                                key=envelope.key,
                                value=envelope.value(),
                                headers=envelope.headers(),
                            )
                        )
                await asyncio.gather(*sends)
        finally:
            await producer.stop()
        runs: dict[str, list[Row]] = {"plain": [], "sealed": []}
        for round_ in range(a.rounds):
            for variant in ("plain", "sealed"):
                progress(f"project round {round_ + 1}: {variant}")
                runs[variant].append(await self._project(topics[variant], variant, round_))
        plain = best(runs["plain"])
        plain.stage = "project (consumer → read model), no encryption"
        sealed = best(runs["sealed"])
        sealed.stage = "project, tokens copied (never decrypted)"
        self.rows += [plain, against(sealed, plain)]

    async def _project(self, topic: str, variant: str, round_: int) -> Row:
        projection = LatestNote(self.db, f"latest_{variant}_{round_}")
        await projection.ensure_indexes()

        async def no_dead_letters(*_: Any) -> None:
            raise RuntimeError("the benchmark's events do not dead-letter")

        runner = ConsumerRunner(
            projection, REGISTRY, service="bench", publish_dead_letter=no_dead_letters
        )
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.args.kafka, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        latencies: list[float] = []
        try:
            done = 0
            started = time.perf_counter()
            while done < self.args.events:
                for records in (await consumer.getmany(timeout_ms=500, max_records=500)).values():
                    for record in records:
                        one = time.perf_counter()
                        outcome = await runner.process(record)
                        assert outcome == "applied", outcome
                        latencies.append(time.perf_counter() - one)
                        done += 1
            seconds = time.perf_counter() - started
        finally:
            await consumer.stop()
        return measured(f"project, {variant}", done, seconds, latencies)

    async def open_stage(self) -> None:
        a = self.args
        sealer, opener = Sealer(self.keys), Opener(self.keys)
        plain_docs = [self.note(i, 0).model_dump(mode="json") for i in range(a.answer_size)]
        sealed_docs = [await sealer.seal(self.note(i, 0)) for i in range(a.answer_size)]
        answers = a.answers

        async def encode_plain(_: int) -> None:
            json.dumps(json.loads(json.dumps(plain_docs)))

        async def encode_opened(_: int) -> None:
            body = json.loads(json.dumps(sealed_docs))
            opened, _shown = await opener.open(body)
            json.dumps(opened)

        progress(f"opening {answers} answers of {a.answer_size} documents")
        seconds, latencies = await concurrently(answers, 1, encode_plain)
        raw = measured(f"answer of {a.answer_size}: JSON only", answers, seconds, latencies)
        seconds, latencies = await concurrently(answers, 1, encode_opened)
        opened = measured(f"answer of {a.answer_size}: tokens opened", answers, seconds, latencies)
        self.rows += [raw, against(opened, raw)]


async def main_async(args: argparse.Namespace) -> list[Row]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(args.mongo_url, tz_aware=True)
    name = f"bench_enc_{uuid.uuid4().hex[:8]}"
    try:
        return await Bench(args, client[name]).run()
    finally:
        await client.drop_database(name)
        await client.drop_database(f"{name}_keys")
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Encryption benchmark (see the module doc).")
    parser.add_argument("--events", type=int, default=2000, help="commits per run")
    parser.add_argument("--streams", type=int, default=200, help="cases (one client each)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent appenders")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--answers", type=int, default=200, help="answers opened")
    parser.add_argument("--answer-size", type=int, default=50, help="documents per answer")
    server_options(parser)
    args = parser.parse_args(argv)
    rows = asyncio.run(main_async(args))
    print(
        table(
            rows,
            f"Encryption per data subject: {args.events} commits over {args.streams} clients' "
            f"cases, {args.concurrency} concurrent appenders, best of {args.rounds} runs; "
            f"Kafka {args.kafka}, MongoDB-wire {args.mongo_url} {args.label}".rstrip(),
            "ratio = ops/s with encryption over ops/s of the same run without it (goal ≥ 0.8); "
            "the first event of each client creates its data key.",
        )
    )
    write_json(args, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
