"""Concurrent batches (`casework.projections.PendingWrites`), tried on real Kafka and FerretDB:
a burst of interleaved ledgers, several events of each stream in one batch, poison in the
middle of three streams; the consumer process is killed (SIGKILL) in the middle of a batch's
counter writes, then again in the middle of its entity writes; everything is redelivered from
offset 0 afterwards. The read model must be what the events say (per stream in order, up to
each poison), the partition counters the fold of the entities of their partition, every
poison dead-lettered once with its stream parked, and all of it equal to what the serial path
builds from the same records."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from casework.counters import decode_counts, fold_counts, is_counter
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.metrics import Metrics
from casework.projections import APPLIED, ConsumerRunner
from casework.runtime import ensure_topics, wait_until

from support.counted_ledger import CountedLedgers, contributions, runner_for
from support.kafka import read_topic
from support.ledger import AmountCredited, LedgerOpened, Poison

LEDGERS = 30
CREDITS = 5
POISONED = 3  # of the ledgers, each with a poison event after its second credit
PARTITIONS = 3
TESTS_DIR = Path(__file__).resolve().parent.parent


class Burst:
    """The events published, and what the read model must say about them."""

    def __init__(self, rng: random.Random) -> None:
        self.streams = [f"ledger-{uuid.uuid4()}" for _ in range(LEDGERS)]
        self.poisoned = set(self.streams[:POISONED])
        self.events: dict[str, list[DomainEvent]] = {}
        for stream in self.streams:
            events: list[DomainEvent] = [LedgerOpened(ledger_id=stream, owner="o")]
            for n in range(CREDITS):
                events.append(AmountCredited(ledger_id=stream, amount=rng.randint(1, 9)))
                if n == 1 and stream in self.poisoned:
                    events.append(Poison(ledger_id=stream))
            self.events[stream] = events

    def expected(self, stream: str) -> tuple[int, list[int]]:
        """(version applied, amounts) of a ledger: up to its poison, if any."""
        version, amounts = 0, []
        for event in self.events[stream]:
            if isinstance(event, Poison):
                break
            version += 1
            if isinstance(event, AmountCredited):
                amounts.append(event.amount)
        return version, amounts

    def held(self, stream: str) -> int:
        """Records of a poisoned stream after its dead letter."""
        events = self.events[stream]
        return len(events) - 1 - next(i for i, e in enumerate(events) if isinstance(e, Poison))

    async def publish(self, bootstrap: str, topic: str) -> int:
        """Round-robin over the streams, so that every batch mixes them; returns the count."""
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        sent = []
        try:
            for i in range(max(len(e) for e in self.events.values())):
                for stream in self.streams:
                    if i >= len(self.events[stream]):
                        continue
                    event = self.events[stream][i]
                    envelope = Envelope(
                        type=event.type_name(),
                        source="/casework/test",
                        subject=stream,
                        time=datetime.now(UTC),
                        data=event.model_dump(mode="json"),
                        stream_version=i + 1,
                    )
                    sent.append(
                        await producer.send(
                            topic,
                            key=envelope.key,
                            value=envelope.value(),
                            headers=envelope.headers(),
                        )
                    )
            for future in sent:
                await future
        finally:
            await producer.stop()
        return len(sent)


async def documents(projection: CountedLedgers) -> tuple[dict[str, Document], list[Document]]:
    """(ledger documents by id, counter documents sorted by id)."""
    docs = [dict(d) async for d in projection.read_model.collection.find({})]
    ledgers = {d["_id"]: d for d in docs if not is_counter(d)}
    counters = sorted((d for d in docs if is_counter(d)), key=lambda d: d["_id"])
    return ledgers, counters


async def consume(projection: CountedLedgers, bootstrap: str, service: str, **options: Any) -> Any:
    broker = KafkaBroker(bootstrap)
    runner = runner_for(projection, broker, service, metrics=Metrics("test"), **options)
    runner.subscribe(broker)
    await broker.start()
    return broker, runner


def outcomes(runner: ConsumerRunner) -> float:
    assert runner._metrics is not None
    return sum(
        runner._metrics.events_projected.labels(runner.handler.name, o)._value.get()
        for o in ("applied", "unchanged", "skipped", "dead_lettered", "parked")
    )


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """The offsets the group committed, summed over the partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum([(await consumer.committed(tp)) or 0 for tp in tps])
    finally:
        await consumer.stop()


async def rewind(bootstrap: str, group: str, topic: str) -> None:
    """Commit offset 0 on every partition for the group, and read it back: a fresh-clone CI
    run once restarted the group and got nothing in three minutes, as if the rewind had not
    taken (a commit from the stopped consumer landing after it, or refused while it had not
    left yet). Committed again until the group's offsets read 0 (bounded)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        for _ in range(50):
            with contextlib.suppress(KafkaError):
                await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in tps})
                if all([await consumer.committed(tp) == 0 for tp in tps]):
                    return
            await asyncio.sleep(0.2)  # the old member's session is still leaving the group
        raise AssertionError(f"the offsets of {group} could not be rewound to 0")
    finally:
        await consumer.stop()


async def killed_consumer(
    bootstrap: str, mongo_url: str, database: str, topic: str, service: str, kill_at: str
) -> int | None:
    """Run `support.counted_ledger` in a process of its own; its exit code (None: it was
    still running after a minute)."""
    env = {**os.environ, "PYTHONPATH": f"{TESTS_DIR}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "support.counted_ledger",
        bootstrap,
        mongo_url,
        database,
        topic,
        service,
        kill_at,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None  # it never reached the write it was to die at
    assert process.returncode is not None
    if process.returncode != -9:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
    return process.returncode


@pytest.fixture
async def service(kafka_bootstrap: str, topic: str) -> str:
    name = f"cb{uuid.uuid4().hex[:6]}"
    await ensure_topics(
        kafka_bootstrap,
        [
            topic,
            f"casework.{name}.counted_ledgers.dlq",
            f"casework.{name}s.counted_ledgers.dlq",  # the serial run's
        ],
        PARTITIONS,
    )
    return name


@pytest.mark.timeout(300)  # ~30 s on a quiet machine; the serial replay is slow under load
async def test_concurrent_batches_survive_kills_poison_and_redelivery_as_the_serial_path(
    database: AsyncDatabase[Document],
    kafka_bootstrap: str,
    mongo_url: str,
    topic: str,
    service: str,
) -> None:
    burst = Burst(random.Random(6))
    total = await burst.publish(kafka_bootstrap, topic)
    group = f"casework.{service}.counted_ledgers"

    # killed in the middle of the first batch's counter writes, then of its entity writes:
    # nothing of the batch may be committed
    for kill_at in ("counter:2", "entity:3"):
        code = await killed_consumer(
            kafka_bootstrap, mongo_url, database.name, topic, service, kill_at
        )
        assert code == -9, f"the consumer was to die at {kill_at}, it exited with {code}"
        assert await committed(kafka_bootstrap, group, topic) == 0
    ledgers, counters = await documents(CountedLedgers.reading(topic, database))
    assert counters, "the kill came after some counter writes"
    assert len(ledgers) < LEDGERS, "the kill came before every ledger was written"

    projection = CountedLedgers.reading(topic, database)
    broker, runner = await consume(projection, kafka_bootstrap, service)
    try:

        async def settled() -> bool:
            ledgers, _ = await documents(projection)
            return runner.parked_streams == POISONED and all(
                ledgers.get(s, {}).get(APPLIED, {}).get(s) == burst.expected(s)[0]
                for s in burst.streams
            )

        await wait_until(settled, within=60)
    finally:
        await broker.stop()
    ledgers, counters = await documents(projection)
    # per stream, in order, up to the poison
    for stream in burst.streams:
        version, amounts = burst.expected(stream)
        assert ledgers[stream][APPLIED] == {stream: version}
        assert ledgers[stream]["amounts"] == amounts
        assert ledgers[stream]["balance"] == sum(amounts)
    # several events of one stream came in one batch, and several streams
    batches: dict[int, Counter[str]] = {}
    for batch, stream in zip(projection.batches, projection.streams_seen, strict=True):
        assert batch is not None  # every event was applied inside a concurrent batch
        batches.setdefault(id(batch), Counter())[stream] += 1
    assert max(max(c.values()) for c in batches.values()) >= 2
    assert max(len(c) for c in batches.values()) >= 10
    # each poison dead-lettered once (by the first, killed process), its stream parked
    letters = await read_topic(
        kafka_bootstrap, f"casework.{service}.counted_ledgers.dlq", expect=POISONED
    )
    assert sorted(dict(r.headers)["ce_subject"].decode() for r in letters) == sorted(burst.poisoned)
    assert runner.parking is not None
    for stream in burst.poisoned:
        assert len(await runner.parking.held(stream)) == burst.held(stream)
    # the counters: per partition, the fold of that partition's ledgers
    partition_of = {
        dict(r.headers)["ce_subject"].decode(): r.partition
        for r in await read_topic(kafka_bootstrap, topic, expect=total)
    }
    for partition in range(PARTITIONS):
        expected = fold_counts(
            contributions(d) for s, d in ledgers.items() if partition_of[s] == partition
        )
        held = {
            c["counter"]: decode_counts(c)
            for c in counters
            if c["partition"] == partition and decode_counts(c)  # a count back to zero
        }
        assert held == {k: dict(v) for k, v in expected.items() if v}, partition

    # everything again from offset 0: nothing changes, nothing is dead-lettered again
    await rewind(kafka_bootstrap, group, topic)
    again = CountedLedgers.reading(topic, database)
    # and the serial path over the same records, into a collection of its own
    serial = CountedLedgers.reading(topic, database, "serial_ledgers", concurrent=False)
    broker, runner = await consume(again, kafka_bootstrap, service)
    serial_broker, serial_runner = await consume(serial, kafka_bootstrap, f"{service}s")
    try:

        async def both_done() -> bool:
            return outcomes(runner) >= total and outcomes(serial_runner) >= total

        # bounded generously: the serial path writes one record at a time, slow under load
        await wait_until(both_done, within=180)
    finally:
        await broker.stop()
        await serial_broker.stop()
    assert await documents(again) == (ledgers, counters)
    assert all(b is None for b in serial.batches)  # it did run one record at a time
    serial_ledgers, serial_counters = await documents(serial)
    assert serial_ledgers == ledgers
    assert serial_counters == counters
    assert (
        len(
            await read_topic(
                kafka_bootstrap, f"casework.{service}.counted_ledgers.dlq", expect=POISONED
            )
        )
        == POISONED
    )


async def test_documents_remembered_between_batches_are_forgotten_when_partitions_move(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str, service: str
) -> None:
    """A runner keeps the documents it wrote for its next batches (`KnownDocuments`); a
    second replica joins (the partitions are split), writes some of them, and leaves (they
    come back): what the first remembered from before must not be written over them."""
    rng = random.Random(7)
    streams = [f"ledger-{uuid.uuid4()}" for _ in range(12)]
    sent: dict[str, list[int]] = {s: [] for s in streams}
    versions: dict[str, int] = {}

    async def wave(credits: int) -> int:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for _ in range(credits):
                for stream in streams:
                    version = versions.get(stream, 0) + 1
                    versions[stream] = version
                    if version == 1:
                        event: DomainEvent = LedgerOpened(ledger_id=stream, owner="o")
                    else:
                        amount = rng.randint(1, 9)
                        sent[stream].append(amount)
                        event = AmountCredited(ledger_id=stream, amount=amount)
                    envelope = Envelope(
                        type=event.type_name(),
                        source="/casework/test",
                        subject=stream,
                        time=datetime.now(UTC),
                        data=event.model_dump(mode="json"),
                        stream_version=version,
                    )
                    await producer.send_and_wait(
                        topic, key=envelope.key, value=envelope.value(), headers=envelope.headers()
                    )
        finally:
            await producer.stop()
        return sum(versions.values())

    async def caught_up(projection: CountedLedgers) -> bool:
        ledgers, _ = await documents(projection)
        return all(
            ledgers.get(s, {}).get("amounts") == sent[s] and ledgers[s][APPLIED][s] == versions[s]
            for s in streams
        )

    first = CountedLedgers.reading(topic, database)
    broker, runner = await consume(first, kafka_bootstrap, service)
    try:
        await wave(3)
        await wait_until(lambda: caught_up(first), within=30)
        assert len(runner.known) >= len(streams)  # it remembers what it wrote
        assert runner.assignments == 1

        second = CountedLedgers.reading(topic, database)
        other, other_runner = await consume(second, kafka_bootstrap, service)
        try:

            async def split() -> bool:
                # each holds partitions now (a rebalance may hand a member none at first)
                return bool(runner.held) and bool(other_runner.held)

            await wait_until(split, within=30)
            await wave(3)
            await wait_until(lambda: caught_up(first), within=30)
            assert any(b is not None for b in second.batches)  # the second one wrote some
        finally:
            await other.stop()

        async def back() -> bool:
            return runner.assignments >= 3

        await wait_until(back, within=30)
        await wave(3)
        await wait_until(lambda: caught_up(first), within=30)
    finally:
        await broker.stop()
    _, counters = await documents(first)
    totals: Counter[str] = Counter()
    for c in counters:
        if c["counter"] == "all":
            totals.update(decode_counts(c))
    assert totals == Counter(
        {"ledgers": len(streams), "balance": sum(sum(a) for a in sent.values())}
    )
