"""Rebuilding a projection from the beginning of its topics, on real Kafka and FerretDB."""

from __future__ import annotations

import uuid

import pytest
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document, EventStore
from casework.projections import (
    ConsumerRunner,
    StreamParking,
    broker_dead_letter_publisher,
    parking_base,
)
from casework.rebuild import GroupStillActive, rebuild_projection, replay_dead_letters
from casework.runtime import ensure_topics, wait_until
from casework.settings import Settings

from support.kafka import read_topic
from support.ledger import REGISTRY, AmountCredited, Balances, LedgerOpened, Poison
from support.outbox import relay_all


async def test_a_rebuild_restores_the_read_model_and_the_service_resumes_after_it(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> None:
    service = f"rb{uuid.uuid4().hex[:6]}"
    settings = Settings(service=service, kafka_bootstrap_servers=kafka_bootstrap)
    await ensure_topics(kafka_bootstrap, [topic, f"casework.{service}.balances.dlq"], 3)
    store = EventStore(database, source="/casework/test")
    streams = [f"ledger-{uuid.uuid4()}" for _ in range(4)]
    for sid in streams:
        await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
        await store.append(sid, 1, [AmountCredited(ledger_id=sid, amount=5)])
    await store.append(streams[0], 2, [Poison(ledger_id=streams[0])])
    await relay_all(store, kafka_bootstrap, topic)

    def live_runner(broker: KafkaBroker) -> ConsumerRunner:
        runner = ConsumerRunner(
            Balances.reading(topic, database),
            REGISTRY,
            service=service,
            publish_dead_letter=broker_dead_letter_publisher(broker, "balances"),
            max_attempts=1,
        )
        runner.subscribe(broker)
        return runner

    broker = KafkaBroker(kafka_bootstrap)
    live = live_runner(broker)
    assert isinstance(live.handler, Balances)
    projection = live.handler
    await broker.start()

    async def projected() -> bool:
        return await projection.read_model.collection.count_documents({}) == 4

    await wait_until(projected, within=30)

    # while the service runs, the rebuild refuses before it touches anything
    with pytest.raises(GroupStillActive, match="live member"):
        await rebuild_projection(projection, REGISTRY, settings, progress=lambda _: None)
    assert await projection.read_model.collection.count_documents({}) == 4
    await broker.stop()

    # the read model is damaged (a bad migration, a bug since fixed)
    await projection.read_model.collection.delete_many({})
    await projection.read_model.collection.insert_one({"_id": "junk"})

    lines: list[str] = []
    report = await rebuild_projection(projection, REGISTRY, settings, progress=lines.append)

    docs = {d["_id"]: d async for d in projection.read_model.collection.find({})}
    assert set(docs) == set(streams)
    assert all(d["balance"] == 5 and d["events"] == 2 for d in docs.values())
    assert report.events == 9
    assert report.outcomes == {"applied": 8, "dead_lettered": 1}
    assert lines[0].startswith("rebuilding balances from 9 records")
    names = await database.list_collection_names()
    assert "balances__rebuild" not in names

    # started again, the service's group goes on after the rebuilt records, not from 0
    broker = KafkaBroker(kafka_bootstrap)
    again = live_runner(broker)
    assert isinstance(again.handler, Balances)
    await broker.start()
    try:
        await store.append(streams[1], 2, [AmountCredited(ledger_id=streams[1], amount=1)])
        await relay_all(store, kafka_bootstrap, topic)

        async def credited() -> bool:
            doc = await projection.read_model.get(streams[1])
            return doc is not None and doc["balance"] == 6

        await wait_until(credited, within=30)
        assert again.handler.calls == 1
    finally:
        await broker.stop()


class CreditsFailing(Balances):
    """Balances with a bug in crediting, fixed by setting `fixed`."""

    fixed = False

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if isinstance(event, AmountCredited) and not self.fixed:
            raise RuntimeError("credit bug")
        return await super().handle(envelope, event)


async def test_dead_letters_are_applied_again_once_the_bug_is_fixed(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> None:
    service = f"rp{uuid.uuid4().hex[:6]}"
    settings = Settings(
        service=service, kafka_bootstrap_servers=kafka_bootstrap, projection_max_attempts=1
    )
    await ensure_topics(kafka_bootstrap, [topic, f"casework.{service}.balances.dlq"], 3)
    store = EventStore(database, source="/casework/test")
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    await store.append(sid, 1, [AmountCredited(ledger_id=sid, amount=5)])
    await relay_all(store, kafka_bootstrap, topic)

    projection = type("Flaky", (CreditsFailing,), {"topics": (topic,)})(database)
    broker = KafkaBroker(kafka_bootstrap)
    runner = ConsumerRunner(
        projection,
        REGISTRY,
        service=service,
        publish_dead_letter=broker_dead_letter_publisher(broker, "balances"),
        max_attempts=1,
        parking=StreamParking(database, parking_base(projection)),
    )
    runner.subscribe(broker)
    await broker.start()
    try:
        (letter,) = await read_topic(kafka_bootstrap, runner.dead_letter_topic, expect=1)
    finally:
        await broker.stop()
    assert b"credit bug" in dict(letter.headers)["x-dlq-error"]
    doc = await projection.read_model.get(sid)
    assert doc is not None
    assert doc["balance"] == 0

    projection.fixed = True
    report = await replay_dead_letters(projection, REGISTRY, settings, progress=lambda _: None)
    assert (report.letters, report.outcomes, report.still_parked) == (1, {"applied": 1}, [])
    doc = await projection.read_model.get(sid)
    assert doc is not None
    assert doc["balance"] == 5

    again = await replay_dead_letters(projection, REGISTRY, settings, progress=lambda _: None)
    assert again.letters == 0  # the stream was released: nothing is parked any more
