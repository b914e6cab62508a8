"""The projection runner on real Kafka and FerretDB: commit after write, idempotency under
redelivery, dead letters, rebuild."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from casework.eventstore import Document, EventStore
from casework.metrics import Metrics
from casework.projections import ConsumerRunner, broker_dead_letter_publisher
from casework.runtime import ensure_topics, wait_until

from support.kafka import read_topic
from support.ledger import REGISTRY, AmountCredited, Balances, LedgerOpened, Poison
from support.outbox import relay_all, requeue_everything


@pytest.fixture
async def store(database: AsyncDatabase[Document]) -> EventStore:
    s = EventStore(database, source="/casework/test")
    await s.ensure_indexes()
    return s


class Running:
    def __init__(self, broker: KafkaBroker, runner: ConsumerRunner, metrics: Metrics) -> None:
        self.broker, self.runner, self.metrics = broker, runner, metrics

    @property
    def projection(self) -> Balances:
        assert isinstance(self.runner.handler, Balances)
        return self.runner.handler

    def outcomes(self, outcome: str) -> float:
        return self.metrics.events_projected.labels("balances", outcome)._value.get()


@pytest.fixture
async def running(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> AsyncIterator[Running]:
    service = f"test{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka_bootstrap, [topic, f"casework.{service}.balances.dlq"], 3)
    broker = KafkaBroker(kafka_bootstrap)
    metrics = Metrics("test")
    runner = ConsumerRunner(
        Balances.reading(topic, database),
        REGISTRY,
        service=service,
        publish_dead_letter=broker_dead_letter_publisher(broker, "balances"),
        metrics=metrics,
        max_attempts=3,
        retry_delay=0.01,
    )
    runner.subscribe(broker)
    await broker.start()
    try:
        yield Running(broker, runner, metrics)
    finally:
        await broker.stop()


async def test_projection_applies_events_once_even_when_redelivered(
    running: Running, store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    await store.append(sid, 1, [AmountCredited(ledger_id=sid, amount=5)])
    await store.append(sid, 2, [AmountCredited(ledger_id=sid, amount=7)])
    await relay_all(store, kafka_bootstrap, topic)
    read_model = running.projection.read_model

    async def applied_all() -> bool:
        doc = await read_model.get(sid)
        return doc is not None and doc["events"] == 3

    await wait_until(applied_all, within=20)

    # the relay died before deleting its outbox entries: every event is published a second time
    await requeue_everything(store)
    await relay_all(store, kafka_bootstrap, topic)

    async def saw_duplicates() -> bool:
        return running.outcomes("unchanged") >= 3

    await wait_until(saw_duplicates, within=20)
    doc = await read_model.get(sid)
    assert doc is not None
    assert (doc["balance"], doc["events"], doc["owner"]) == (12, 3, "ann")
    assert running.outcomes("applied") == 3


async def test_a_poison_event_is_dead_lettered_and_the_projection_moves_on(
    running: Running, store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    await store.append(sid, 1, [Poison(ledger_id=sid)])
    await store.append(sid, 2, [AmountCredited(ledger_id=sid, amount=4)])
    await relay_all(store, kafka_bootstrap, topic)
    read_model = running.projection.read_model

    async def moved_on() -> bool:
        doc = await read_model.get(sid)
        return doc is not None and doc["balance"] == 4

    await wait_until(moved_on, within=20)

    (letter,) = await read_topic(kafka_bootstrap, running.runner.dead_letter_topic, expect=1)
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["ce_type"] == "casework.test.Poison.v1"
    assert headers["x-dlq-topic"] == topic
    assert headers["x-dlq-attempts"] == "3"
    assert "cannot project a poison event" in headers["x-dlq-error"]
    assert letter.key == sid.encode()
    assert running.metrics.dead_letters.labels("balances")._value.get() == 1


async def test_offsets_are_committed_so_a_restarted_group_does_not_reprocess(
    running: Running,
    store: EventStore,
    kafka_bootstrap: str,
    topic: str,
    database: AsyncDatabase[Document],
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    await relay_all(store, kafka_bootstrap, topic)

    async def applied() -> bool:
        return await running.projection.read_model.get(sid) is not None

    await wait_until(applied, within=20)
    await running.broker.stop()
    calls_before = running.projection.calls

    # the same consumer group starts again: it resumes after the committed offset
    broker = KafkaBroker(kafka_bootstrap)
    again = ConsumerRunner(
        Balances.reading(topic, database),
        REGISTRY,
        service=running.runner.service,
        publish_dead_letter=broker_dead_letter_publisher(broker, "balances"),
    )
    again.subscribe(broker)
    await broker.start()
    try:
        await store.append(sid, 1, [AmountCredited(ledger_id=sid, amount=1)])
        await relay_all(store, kafka_bootstrap, topic)

        async def credited() -> bool:
            doc = await running.projection.read_model.get(sid)
            return doc is not None and doc["balance"] == 1

        await wait_until(credited, within=20)
        assert isinstance(again.handler, Balances)
        assert again.handler.calls == 1  # only the new event, not the old one again
        assert calls_before == 1
    finally:
        await broker.stop()
