"""Benchmark of a projection rebuild (`casework rebuild`): events folded per second, beside
the raw limit measured in the same run on the same servers.

A mixed history of referrals and cases (`casework.samples`, ~12 events per referral)
is published to a private namespace; then each read model of the cases service is rebuilt
from it with `casework.rebuild.rebuild_projection` (fold in memory, one `insert_many` per
1,000 documents), and its figure is printed beside:

- raw: `insert_many` of the same resulting documents into a fresh collection, expressed as
  events/s (events of the rebuild / seconds of the raw insert): the floor of any rebuild that
  writes each document once;
- before: the per-event path the rebuild used until now (the live runner on the server: a read
  and a replace per event), on the first `--before` events.

Run `make bench`, or `uv run python bench/rebuild.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from casework.eventstore import Document
from casework.projections import ConsumerRunner, Projection, dead_letter_topic
from casework.rebuild import fresh_copy, rebuild_projection
from casework.runtime import ensure_topics, topic_prefix
from casework.samples import story
from casework.settings import Settings

from report import Row, measured, progress, server_options, write_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the story generator

EVENTS_PER_REFERRAL = 12.3


async def publish(bootstrap: str, prefix: str, records: dict[str, list[Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        pending = []
        for topic, envelopes in records.items():
            for e in envelopes:
                pending.append(
                    await producer.send(
                        prefix + topic, key=e.key, value=e.value(), headers=e.headers()
                    )
                )
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def before(projection: Projection, settings: Settings, registry: Any, limit: int) -> Row:
    """The old rebuild's path: the runner applying each event on the server."""
    fresh = fresh_copy(projection, f"{projection.read_model.collection.name}__before")
    await fresh.database.drop_collection(fresh.read_model.collection.name)
    runner = ConsumerRunner(
        fresh,
        registry,
        service=settings.service,
        publish_dead_letter=_no_dead_letters,
        prefix=topic_prefix(settings),
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        prefix = topic_prefix(settings)
        tps = [
            TopicPartition(t, p)
            for t in (prefix + t for t in projection.topics)
            for p in sorted(consumer.partitions_for_topic(t) or await _partitions(consumer, t))
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done, started = 0, time.perf_counter()
        while done < limit:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    if done >= limit:
                        break
                    await runner.process(record)
                    done += 1
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
        await fresh.database.drop_collection(fresh.read_model.collection.name)
    return measured(f"before: per-event rebuild of {projection.name}", done, seconds, [])


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or {0}


async def _no_dead_letters(*args: Any) -> None:
    raise RuntimeError("no event of the benchmark should be dead-lettered")


async def raw_insert(projection: Projection, events: int) -> tuple[Row, int]:
    """insert_many of the rebuilt documents into a fresh collection, as events/s."""
    docs: list[Document] = [d async for d in projection.read_model.collection.find({})]
    scratch = projection.database[f"{projection.read_model.collection.name}__raw"]
    await scratch.drop()
    started = time.perf_counter()
    for start in range(0, len(docs), 1000):
        await scratch.insert_many(docs[start : start + 1000], ordered=False)
    seconds = time.perf_counter() - started
    await scratch.drop()
    return measured(f"raw insert_many of its {len(docs)} documents", events, seconds, []), len(docs)


def render(rows: list[Row], header: str) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        header,
        "",
        "| stage                                              |      n | events/s |  seconds "
        "| raw events/s | ratio |",
        "|----------------------------------------------------|-------:|---------:|---------:"
        "|-------------:|------:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.stage:<50} | {r.n:>6} | {r.rate:>8.0f} | {r.seconds:>8.1f} | "
            f"{cell(r.raw_rate, '12.0f'):>12} | {cell(r.ratio, '5.2f'):>5} |"
        )
    lines += [
        "",
        "ratio = the rebuild's events/s over raw insert_many of the documents it wrote (events "
        "of the rebuild / seconds to insert its documents); `before` rows: the per-event path "
        "(a read and a replace per event) on the first events, its ratio against this rebuild.",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Row]:
    from casework_cases import bootstrap  # the cases service's read models, unchanged

    namespace = f"benchrb{uuid.uuid4().hex[:6]}"
    settings = Settings.for_service(
        "cases",
        bootstrap.PORT,
        environment="test",
        kafka_bootstrap_servers=args.kafka,
        mongo_url=args.mongo_url,
        mongo_database=f"bench_{namespace}",
        namespace=namespace,
    )
    runtime, _, _ = bootstrap.build(settings)
    prefix = topic_prefix(settings)
    rows: list[Row] = []
    try:
        history = story(int(args.events / EVENTS_PER_REFERRAL) + 1, seed=3)
        progress(f"publishing {history.events} events to namespace {namespace}")
        topics = [prefix + t for t in history.records] + [
            prefix + dead_letter_topic("cases", h.name) for h in runtime.handlers
        ]
        await ensure_topics(args.kafka, topics, args.partitions)
        await publish(args.kafka, prefix, history.records)
        chosen = [
            h for h in runtime.handlers if isinstance(h, Projection) and h.name in args.projections
        ]
        for projection in chosen:
            progress(f"rebuilding {projection.name}")
            report = await rebuild_projection(
                projection, runtime.registry, settings, progress=progress, every=25_000
            )
            row = measured(f"rebuild {projection.name}", report.events, report.seconds, [])
            raw, documents = await raw_insert(projection, report.events)
            row.stage = f"rebuild {projection.name} ({documents} docs)"
            row.raw_rate, row.ratio = raw.rate, row.rate / raw.rate if raw.rate else None
            rows += [row]
            if args.before:
                progress(f"per-event path of {projection.name} on {args.before} events")
                old = await before(projection, settings, runtime.registry, args.before)
                old.raw_rate, old.ratio = row.rate, old.rate / row.rate if row.rate else None
                rows.append(old)
    finally:
        await runtime.client.drop_database(settings.database_name)
        await runtime.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild benchmark (see the module doc).")
    parser.add_argument("--events", type=int, default=100_000, help="events in the history")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--projections",
        nargs="+",
        default=["case_summaries", "timeline"],
        help="read models of the cases service to rebuild",
    )
    parser.add_argument(
        "--before", type=int, default=3000, help="events through the per-event path (0: skip)"
    )
    server_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = asyncio.run(main_async(args))
    print(
        render(
            rows,
            f"Rebuild: ~{args.events} events of referrals and cases, {args.partitions} "
            f"partitions; Kafka {args.kafka}, MongoDB-wire {args.mongo_url} {args.label}".rstrip(),
        )
    )
    write_json(args, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
