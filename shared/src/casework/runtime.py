"""The moving parts every service runs, composed once in a service's `bootstrap`.

A `ServiceRuntime` owns the service's MongoDB client and database, its event store and
outbox relay, its FastStream Kafka broker with the projections and policies subscribed to it,
and the readiness checks over all of them. `lifespan` starts them in order and stops them in
reverse; nothing connects before the app starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from casework.audit import AuditTrail
from casework.clock import Clock, SystemClock
from casework.deadlines import Deadlines, DeadlineScheduler
from casework.events import EventRegistry
from casework.eventstore import Document, EventStore
from casework.metrics import Metrics
from casework.projections import ConsumerRunner, EventHandler, dead_letter_topic, runners
from casework.relay import OutboxRelay, RelayLease, kafka_producer
from casework.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 6


def events_topic(service: str) -> str:
    """The topic a service publishes its events to."""
    return f"casework.{service}.events"


def topic_prefix(settings: Settings) -> str:
    """What the namespace puts before every topic and consumer group name."""
    return f"{settings.namespace}." if settings.namespace else ""


def mongo_client(settings: Settings) -> AsyncMongoClient[Document]:
    """A client whose datetimes come back timezone-aware (UTC), as they went in."""
    return AsyncMongoClient(settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000)


async def ensure_topics(bootstrap_servers: str, topics: Sequence[str], partitions: int) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
    finally:
        await admin.close()


@dataclass
class ServiceRuntime:
    """One service's database, event store, relay, broker and consumers."""

    settings: Settings
    metrics: Metrics
    registry: EventRegistry
    client: AsyncMongoClient[Document]
    database: AsyncDatabase[Document]
    store: EventStore
    relay: OutboxRelay
    broker: KafkaBroker
    clock: Clock
    audit: AuditTrail
    deadlines: Deadlines
    scheduler: DeadlineScheduler
    handlers: list[EventHandler] = field(default_factory=list)
    consumers: list[ConsumerRunner] = field(default_factory=list)
    subscribers: list[Any] = field(default_factory=list)
    partitions: int = DEFAULT_PARTITIONS

    @classmethod
    def build(
        cls,
        settings: Settings,
        registry: EventRegistry,
        *,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        broker_middlewares: Sequence[Any] = (),
    ) -> ServiceRuntime:
        """Wire the parts; nothing connects until `start`."""
        metrics = metrics or Metrics(settings.service)
        clock = clock or SystemClock()
        client = mongo_client(settings)
        database = client[settings.database_name]
        deadlines = Deadlines(database, clock=clock)
        store = EventStore(
            database, source=f"/casework/{settings.service}", metrics=metrics, clock=clock
        )
        prefix = topic_prefix(settings)
        relay = OutboxRelay(
            store,
            kafka_producer(settings.kafka_bootstrap_servers, f"{settings.service}-relay"),
            prefix + events_topic(settings.service),
            lease=RelayLease(database["relay_lease"], clock=clock),
            metrics=metrics,
            clock=clock,
            poll_interval=settings.relay_poll_interval_s,
        )
        broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=settings.service,
            acks="all",
            enable_idempotence=True,
            middlewares=tuple(broker_middlewares),
            logger=logging.getLogger(f"casework.{settings.service}.broker"),
            # "Received"/"Processed" for every message is debug detail, not an INFO log line
            log_level=logging.DEBUG,
        )
        return cls(
            settings=settings,
            metrics=metrics,
            registry=registry,
            client=client,
            database=database,
            store=store,
            relay=relay,
            broker=broker,
            clock=clock,
            audit=AuditTrail(database["audit"], clock),
            deadlines=deadlines,
            scheduler=DeadlineScheduler(deadlines, clock=clock, metrics=metrics),
        )

    def consume(self, *handlers: EventHandler) -> None:
        """Subscribe projections and policies to their topics (before `start`)."""
        new = runners(
            handlers,
            self.registry,
            self.broker,
            service=self.settings.service,
            metrics=self.metrics,
            max_attempts=self.settings.projection_max_attempts,
            prefix=topic_prefix(self.settings),
        )
        self.handlers.extend(handlers)
        self.consumers.extend(new)
        self.subscribers.extend(r.subscribe(self.broker) for r in new)

    @property
    def topics(self) -> list[str]:
        """Every topic this service writes or reads (with the namespace prefix)."""
        own = [events_topic(self.settings.service)]
        read = {t for h in self.handlers for t in h.topics}
        dead = [dead_letter_topic(self.settings.service, h.name) for h in self.handlers]
        prefix = topic_prefix(self.settings)
        return sorted(prefix + t for t in {*own, *read, *dead})

    async def start(self) -> None:
        """Indexes, topics, consumers, relay, deadline scheduler — in that order."""
        await self.store.ensure_indexes()
        await self.audit.ensure_indexes()
        await self.deadlines.ensure_indexes()
        for handler in self.handlers:
            await handler.ensure_indexes()
        await ensure_topics(self.settings.kafka_bootstrap_servers, self.topics, self.partitions)
        await self.broker.start()
        await self.relay.start()
        await self.scheduler.start()

    async def stop(self) -> None:
        """Everything `start` started, in reverse."""
        with contextlib.suppress(Exception):
            await self.scheduler.stop()
        with contextlib.suppress(Exception):
            await self.relay.stop()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        await self.client.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceRuntime]:
        """`start` on entry, `stop` on exit."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def readiness(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        """Checks behind `/readyz`: the database answers, Kafka takes events, consumers hold
        their partitions."""

        async def database() -> bool:
            await self.client.admin.command("ping")
            return True

        async def kafka() -> bool:
            return self.relay.healthy

        async def consumers() -> bool:
            for subscriber in self.subscribers:
                consumer = getattr(subscriber, "consumer", None)
                if consumer is None or not consumer.assignment():
                    return False
            return True

        return {"database": database, "kafka": kafka, "consumers": consumers}


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float, every: float = 0.1
) -> None:
    """Poll `check` until it is true or `within` seconds pass (then TimeoutError)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        with contextlib.suppress(Exception):
            if await check():
                return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"not true after {within:.0f}s: {check.__qualname__}")
        await asyncio.sleep(every)
