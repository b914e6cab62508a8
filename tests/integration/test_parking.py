"""Outages heal and poison parks (issue 6 §2), on real Kafka and FerretDB: a poison event is
dead-lettered once and parks its stream (durably, across a restart and a redelivery) while the
other streams go on; an operator replays or discards it and the held events follow in order;
an outage longer than aiokafka's max_poll_interval_ms is retried in place without leaving the
consumer group, skipping or dead-lettering anything."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect

from casework.contracts import registry as contract_registry
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.metrics import Metrics
from casework.projections import (
    ConsumerRunner,
    Projection,
    StreamParking,
    broker_dead_letter_publisher,
    parking_base,
)
from casework.rebuild import parked_streams, replay_dead_letters
from casework.runtime import ensure_topics, wait_until
from casework.settings import Settings

from support.kafka import read_topic
from support.ledger import REGISTRY, AmountCredited, LedgerOpened, Poison


class History(Projection):
    """Per ledger, the amounts credited in the order applied; `Poison` and the amount in
    `broken` fail (a bug) until `broken` is cleared; `outage` makes every call fail as a
    database outage would."""

    name = "history"
    topics: tuple[str, ...] = ()
    broken: int | None = None
    outage = False

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if self.outage:
            raise AutoReconnect("connection closed")
        match event:
            case LedgerOpened(ledger_id=lid):
                return await self.read_model.apply(lid, envelope, lambda d: {**d, "amounts": []})
            case AmountCredited(ledger_id=lid, amount=amount):
                if amount == self.broken:
                    raise RuntimeError("credit bug")
                return await self.read_model.apply(
                    lid, envelope, lambda d: {**d, "amounts": [*d.get("amounts", []), amount]}
                )
            case Poison():
                if self.broken is not None:
                    raise RuntimeError("cannot project a poison event")
                return False
        return False


class Harness:
    def __init__(
        self, database: AsyncDatabase[Document], bootstrap: str, topic: str, service: str
    ) -> None:
        self.database, self.bootstrap, self.topic, self.service = (
            database,
            bootstrap,
            topic,
            service,
        )
        self.projection = type("History", (History,), {"topics": (topic,)})(database)
        self.versions: dict[str, int] = {}
        self.metrics = Metrics("test")
        self.broker: KafkaBroker | None = None
        self.runner: ConsumerRunner | None = None

    @property
    def settings(self) -> Settings:
        return Settings(
            service=self.service, kafka_bootstrap_servers=self.bootstrap, projection_max_attempts=2
        )

    async def start(self, *, max_poll_interval_ms: int = 300_000) -> ConsumerRunner:
        self.broker = KafkaBroker(self.bootstrap)
        self.runner = ConsumerRunner(
            self.projection,
            REGISTRY,
            service=self.service,
            publish_dead_letter=broker_dead_letter_publisher(self.broker, "history"),
            metrics=self.metrics,
            max_attempts=2,
            retry_delay=0.01,
            parking=StreamParking(self.database, parking_base(self.projection)),
            backoff_max_s=0.5,
        )
        self.runner.subscribe(self.broker, max_poll_interval_ms=max_poll_interval_ms)
        await self.broker.start()
        return self.runner

    async def stop(self) -> None:
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None

    async def publish(self, stream: str, *events: DomainEvent) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            for event in events:
                version = self.versions.get(stream, 0) + 1
                self.versions[stream] = version
                envelope = Envelope(
                    type=event.type_name(),
                    source="/casework/test",
                    subject=stream,
                    time=datetime.now(UTC),
                    data=event.model_dump(mode="json"),
                    stream_version=version,
                )
                await producer.send_and_wait(
                    self.topic,
                    key=envelope.key,
                    value=envelope.value(),
                    headers=envelope.headers(),
                )
        finally:
            await producer.stop()

    async def amounts(self, stream: str) -> list[int] | None:
        doc = await self.projection.read_model.get(stream)
        return None if doc is None else list(doc["amounts"])

    def outcomes(self, outcome: str) -> float:
        return float(self.metrics.events_projected.labels("history", outcome)._value.get())

    async def rewind_group(self) -> None:
        """Commit offset 0 on every partition: the next start redelivers everything."""
        assert self.runner is not None
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.runner.group_id)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(3)]
            consumer.assign(tps)
            await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in tps})
        finally:
            await consumer.stop()

    @property
    def dead_letter_topic(self) -> str:
        return f"casework.{self.service}.history.dlq"


@pytest.fixture
async def harness(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> AsyncIterator[Harness]:
    service = f"pk{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka_bootstrap, [topic, f"casework.{service}.history.dlq"], 3)
    h = Harness(database, kafka_bootstrap, topic, service)
    try:
        yield h
    finally:
        await h.stop()


async def test_poison_parks_its_stream_durably_while_other_streams_go_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.projection.broken = -1  # Poison fails; every credit works
    a, b = f"ledger-{uuid.uuid4()}", f"ledger-{uuid.uuid4()}"
    runner = await harness.start()
    await harness.publish(
        a, LedgerOpened(ledger_id=a, owner="Zebedee Quarrington"), Poison(ledger_id=a)
    )
    await harness.publish(a, AmountCredited(ledger_id=a, amount=4))
    await harness.publish(b, LedgerOpened(ledger_id=b, owner="bo"))
    await harness.publish(b, AmountCredited(ledger_id=b, amount=5))
    parking = runner.parking
    assert parking is not None

    async def settled() -> bool:
        return await harness.amounts(b) == [5] and harness.outcomes("parked") == 1

    await wait_until(settled, within=30)
    assert await harness.amounts(a) == []  # the credit after the poison is held, not applied
    assert runner.parked_streams == 1
    assert harness.metrics.parked_streams.labels("history")._value.get() == 1
    assert await held_versions(parking, a) == [3]
    (letter,) = await read_topic(harness.bootstrap, harness.dead_letter_topic, expect=1)
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["ce_subject"] == a
    assert headers["x-dlq-attempts"] == "2"
    assert headers["x-dlq-error"].startswith("RuntimeError: cannot project a poison event")

    # a restart, and a redelivery of everything: the stream stays parked, nothing is held or
    # dead-lettered twice, and a new event of the stream is held too
    await harness.stop()
    await harness.rewind_group()
    runner = await harness.start()
    await harness.publish(a, AmountCredited(ledger_id=a, amount=6))
    await harness.publish(b, AmountCredited(ledger_id=b, amount=7))

    async def redelivered() -> bool:
        return await harness.amounts(b) == [5, 7] and harness.outcomes("parked") >= 4

    await wait_until(redelivered, within=30)
    assert harness.outcomes("parked") == 4  # the letter and v3 again, then v4
    assert await harness.amounts(a) == []
    assert await held_versions(parking, a) == [3, 4]
    assert len(await read_topic(harness.bootstrap, harness.dead_letter_topic, expect=1)) == 1
    listed = await parked_streams(harness.database, [harness.projection])
    assert [(p.stream, p.held) for p in listed] == [(a, 2)]
    await harness.stop()

    # replayed with the bug still there: dead-lettered again, still parked, nothing applied
    report = await replay_dead_letters(
        harness.projection, REGISTRY, harness.settings, progress=lambda _: None
    )
    assert (report.outcomes, report.still_parked) == ({"dead_lettered": 1}, [a])
    assert await harness.amounts(a) == []
    assert len(await read_topic(harness.bootstrap, harness.dead_letter_topic, expect=2)) == 2

    # discarded: the held events are applied, in order, and the stream is free again
    report = await replay_dead_letters(
        harness.projection,
        REGISTRY,
        harness.settings,
        streams=[a],
        discard=True,
        progress=lambda _: None,
    )
    assert (report.outcomes, report.still_parked) == ({"discarded": 1}, [])
    assert await harness.amounts(a) == [4, 6]
    assert await parked_streams(harness.database, [harness.projection]) == []
    assert await parking.held(a) == []
    assert "Quarrington" not in caplog.text


async def test_a_replayed_letter_is_applied_before_the_held_events_in_order(
    harness: Harness,
) -> None:
    harness.projection.broken = 5
    a = f"ledger-{uuid.uuid4()}"
    runner = await harness.start()
    await harness.publish(
        a,
        LedgerOpened(ledger_id=a, owner="ann"),
        AmountCredited(ledger_id=a, amount=5),
        AmountCredited(ledger_id=a, amount=7),
        AmountCredited(ledger_id=a, amount=1),
    )

    async def held_two() -> bool:
        return runner.parking is not None and len(await runner.parking.held(a)) == 2

    await wait_until(held_two, within=30)
    assert await harness.amounts(a) == []
    await harness.stop()

    harness.projection.broken = None  # the bug is fixed and deployed
    report = await replay_dead_letters(
        harness.projection, REGISTRY, harness.settings, progress=lambda _: None
    )
    assert (report.outcomes, report.still_parked) == ({"applied": 1}, [])
    assert await harness.amounts(a) == [5, 7, 1]

    # started again, the stream is no longer parked: its next event is applied at once
    runner = await harness.start()
    await harness.publish(a, AmountCredited(ledger_id=a, amount=2))

    async def applied() -> bool:
        return await harness.amounts(a) == [5, 7, 1, 2]

    await wait_until(applied, within=30)
    assert runner.parked_streams == 0


async def test_an_outage_longer_than_max_poll_interval_is_waited_out_in_the_group(
    harness: Harness,
) -> None:
    a = f"ledger-{uuid.uuid4()}"
    runner = await harness.start(max_poll_interval_ms=4000)  # hold-offs every second
    await harness.publish(a, LedgerOpened(ledger_id=a, owner="ann"))
    await wait_until(lambda: _is(harness.amounts(a), []), within=30)
    assert runner.assignments == 1
    assert runner.failing_since is None
    assert runner.last_event_time is not None

    harness.projection.outage = True
    await harness.publish(a, *(AmountCredited(ledger_id=a, amount=n) for n in range(1, 6)))

    async def long_outage() -> bool:  # 3 max poll intervals of retrying
        since = runner.failing_since
        return since is not None and (datetime.now(UTC) - since).total_seconds() > 12

    await wait_until(long_outage, within=60)
    assert runner.failure_kind == "database"
    assert harness.metrics.consumer_holdoffs.labels("history")._value.get() >= 8
    assert harness.outcomes("dead_lettered") == 0
    assert await harness.amounts(a) == []
    harness.projection.outage = False

    await wait_until(lambda: _is(harness.amounts(a), [1, 2, 3, 4, 5]), within=30)
    assert runner.failing_since is None
    assert runner.failure_kind is None
    assert runner.assignments == 1  # never left the group: no rebalance happened
    assert harness.outcomes("dead_lettered") == 0
    retries = harness.metrics.transient_retries.labels("history", "database")._value.get()
    assert retries > 12


async def held_versions(parking: StreamParking, stream: str) -> list[int]:
    return [
        int(next(h["v"] for h in d["headers"] if h["k"] == "ce_streamversion"))
        for d in await parking.held(stream)
    ]


async def _is(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_a_contract_violation_dead_letters_without_quoting_sensitive_text(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A pydantic error on a referral's presenting concerns: the dead letter and the logs
    name the fields and error types, not the text."""
    concerns = "says the neighbours poison her water and she stopped drinking"
    broker = KafkaBroker(harness.bootstrap)
    policy = type("History", (History,), {"topics": (harness.topic,)})(harness.database)
    runner = ConsumerRunner(
        policy,
        contract_registry(),
        service=harness.service,
        publish_dead_letter=broker_dead_letter_publisher(broker, "history"),
        max_attempts=1,
        parking=StreamParking(harness.database, "history"),
    )
    runner.subscribe(broker)
    envelope = Envelope(
        type="casework.intake.ReferralReceived.v1",
        source="/casework/intake",
        subject="referral-r1",
        time=datetime.now(UTC),
        data={"referral_id": "r1", "presenting_concerns": {"text": concerns}, "urgency": concerns},
        stream_version=1,
    )
    caplog.set_level(logging.INFO)  # aiokafka debug lines quote what the test itself sends
    await broker.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=harness.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                harness.topic,
                key=envelope.key,
                value=envelope.value(),
                headers=envelope.headers(),
            )
        finally:
            await producer.stop()
        (letter,) = await read_topic(harness.bootstrap, harness.dead_letter_topic, expect=1)
    finally:
        await broker.stop()
    error = dict(letter.headers)["x-dlq-error"].decode()
    assert error.startswith("ValidationError: ReferralReceived: ")
    # a personal field is `str | Sealed`: pydantic names the union member that refused
    assert "presenting_concerns.str: string_type" in error
    for header, value in letter.headers:
        assert b"neighbours" not in value, header
    assert "neighbours" not in caplog.text
    assert "ValidationError" in caplog.text  # the log line was written, without the text
