"""A policy whose command meets a stream slot a killed writer left taken — its intent stored,
its commit never — waits until the relay clears the slot (after its grace) and then carries
the command out: nothing dead-lettered, nothing parked, nothing lost. Contention that nothing
clears is poison after `contention_patience_s`, like any bug.

Found by the kill-and-resume test of notifications: a restarted process's alert for a crisis
went to the dead letters when the killed process had died between the two inserts of an
append on that alert's stream (the policy gave up within ~3 s, the relay fences after 10 s).
On the real Kafka and FerretDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import pytest
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import (
    CommitContext,
    Document,
    EventStore,
    Repository,
    retrying_lost_races,
)
from casework.metrics import Metrics
from casework.projections import (
    ConsumerRunner,
    EventHandler,
    StreamParking,
    broker_dead_letter_publisher,
)
from casework.relay import OutboxRelay, kafka_producer
from casework.runtime import ensure_topics, wait_until

from support.faults import Crash, Plan, faulty_store
from support.kafka import publish, read_topic
from support.ledger import REGISTRY, Ledger, LedgerOpened

LEDGER = "L"


class CreditOnOpening(EventHandler):
    """A policy: each ledger opened elsewhere credits ledger `L` with 1 (once per event: the
    ids it carried out are remembered, in memory — enough for one process in a test)."""

    name = "credit"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ledgers: Repository[Ledger]) -> None:
        self.ledgers = ledgers
        self.tries = 0
        self.done: set[str] = set()

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, LedgerOpened) or envelope.id in self.done:
            return False

        async def credit() -> None:
            self.tries += 1
            ledger = await self.ledgers.get(LEDGER)
            ledger.credit(1)
            await self.ledgers.save(ledger, CommitContext(causation_id=envelope.id))

        await retrying_lost_races(credit)
        self.done.add(envelope.id)
        return True


@dataclass
class World:
    database: AsyncDatabase[Document]
    bootstrap: str
    topic: str
    service: str
    store: EventStore
    ledgers: Repository[Ledger]

    @property
    def dead_letters(self) -> str:
        return f"casework.{self.service}.credit.dlq"

    async def opened_elsewhere(self) -> None:
        """A `LedgerOpened` on another stream, as another service's relay publishes it."""
        stream = f"ledger-{uuid.uuid4().hex[:6]}"
        await publish(
            self.bootstrap, self.topic, (LedgerOpened(ledger_id=stream, owner="bo"), stream, 1)
        )

    async def killed_mid_append(self) -> None:
        """A writer of `L` dies after its intent for the next slot, before its commit."""
        plan = Plan(scripted={("killed", "events.insert_one:before"): "crash"})
        killed = Repository(faulty_store(self.database, plan, "killed"), Ledger, REGISTRY)
        ledger = await killed.get(LEDGER)
        ledger.credit(100)
        with pytest.raises(Crash):
            await killed.save(ledger, CommitContext())

    async def balance(self) -> int:
        fresh = Repository(EventStore(self.database, source="/casework/test"), Ledger, REGISTRY)
        ledger = await fresh.get(LEDGER)
        return int(ledger.balance)

    def runner(
        self, policy: CreditOnOpening, contention_patience_s: float = 60.0
    ) -> tuple[ConsumerRunner, Metrics]:
        metrics = Metrics("test")
        broker = KafkaBroker(self.bootstrap)
        runner = ConsumerRunner(
            policy,
            REGISTRY,
            service=self.service,
            publish_dead_letter=broker_dead_letter_publisher(broker, "credit"),
            metrics=metrics,
            max_attempts=2,
            retry_delay=0.01,
            parking=StreamParking(self.database, "credit"),
            backoff_max_s=0.5,
            contention_patience_s=contention_patience_s,
        )
        runner.subscribe(broker)
        self._brokers.append(broker)
        return runner, metrics

    _brokers: list[KafkaBroker]


@pytest.fixture
async def world(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> AsyncIterator[World]:
    service = f"ct{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka_bootstrap, [topic, f"casework.{service}.credit.dlq"], 1)
    store = EventStore(database, source="/casework/test")
    await store.ensure_indexes()
    ledgers = Repository(store, Ledger, REGISTRY)
    ledger = Ledger(LEDGER)
    ledger.open("ann")
    await ledgers.save(ledger, CommitContext())
    w = World(database, kafka_bootstrap, topic, service, store, ledgers, [])
    try:
        yield w
    finally:
        for broker in w._brokers:
            await broker.stop()


def outcomes(metrics: Metrics, outcome: str) -> float:
    return float(metrics.events_projected.labels("credit", outcome)._value.get())


async def test_a_slot_a_killed_writer_left_is_waited_out_then_the_command_is_carried_out(
    world: World,
) -> None:
    await world.killed_mid_append()
    policy = type("Credit", (CreditOnOpening,), {"topics": (world.topic,)})(world.ledgers)
    runner, metrics = world.runner(policy)
    await world._brokers[-1].start()
    await world.opened_elsewhere()

    # the policy meets the taken slot and keeps trying (contention, not poison) ...
    async def contended() -> bool:
        return runner.failure_kind == "contention"

    await wait_until(contended, within=30)
    assert outcomes(metrics, "dead_lettered") == 0

    # ... until the relay, past its grace, fences the killed writer's slot
    relay = OutboxRelay(
        world.store,
        kafka_producer(world.bootstrap, "test"),
        f"{world.topic}.relayed",
        poll_interval=0.2,
        grace=timedelta(seconds=1),
    )
    await relay.start()
    try:

        async def applied() -> bool:
            return outcomes(metrics, "applied") == 1

        await wait_until(applied, within=60)
    finally:
        await relay.stop()
    assert outcomes(metrics, "dead_lettered") == 0
    assert runner.parked_streams == 0
    assert runner.failure_kind is None  # healthy again
    assert await world.balance() == 1  # credited once; the killed writer's 100 never happened
    assert policy.tries > RACE_TRIES_BEFORE_A_FIX  # it did meet the taken slot, many times
    assert await read_topic(world.bootstrap, world.dead_letters, expect=0, within=1) == []


RACE_TRIES_BEFORE_A_FIX = 8
"""One call of the policy (`RACE_RETRIES`): the old runner gave up after two such calls."""


async def test_contention_nothing_clears_is_poison_after_the_patience(world: World) -> None:
    await world.killed_mid_append()
    policy = type("Credit", (CreditOnOpening,), {"topics": (world.topic,)})(world.ledgers)
    runner, metrics = world.runner(policy, contention_patience_s=1.0)
    await world._brokers[-1].start()
    await world.opened_elsewhere()

    async def dead_lettered() -> bool:
        return outcomes(metrics, "dead_lettered") == 1

    await wait_until(dead_lettered, within=60)
    assert runner.parked_streams == 1
    letters = await read_topic(world.bootstrap, world.dead_letters, expect=1)
    assert len(letters) == 1
    assert await world.balance() == 0
