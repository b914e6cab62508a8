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
from typing import Any, TypeVar

from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from casework.audit import AUDIT_TOPIC, OUTBOX_COLLECTION, AuditRelay, AuditTrail
from casework.clock import Clock, SystemClock
from casework.deadlines import Deadlines, DeadlineScheduler
from casework.events import EventRegistry
from casework.eventstore import Document, EventStore
from casework.health import BrokerProbe, ConsumerView, Readiness
from casework.kafka_clients import (
    RETENTION,
    TopicSpec,
    create_topics,
    faststream_security,
    kafka_client_options,
    topic_specs,
)
from casework.metrics import Metrics
from casework.privacy import KeyService, LocalKeyFileProvider
from casework.privacy.sealing import Opener, Sealer
from casework.projections import (
    ConsumerRunner,
    EventHandler,
    Projection,
    dead_letter_topic,
    runners,
    transient_kind,
)
from casework.relay import OutboxRelay, RelayLease, kafka_producer
from casework.settings import Settings

log = logging.getLogger(__name__)


def events_topic(service: str) -> str:
    """The topic a service publishes its events to."""
    return f"casework.{service}.events"


def topic_prefix(settings: Settings) -> str:
    """What the namespace puts before every topic and consumer group name."""
    return f"{settings.namespace}." if settings.namespace else ""


STOP_STEP_TIMEOUT_S = 8.0
"""How long one step of stopping a service may take (`ServiceRuntime.stop`)."""

SERVER_SELECTION_TIMEOUT_MS = 1000
"""How long an operation waits for a reachable database before `ServerSelectionTimeoutError`:
short, so that an outage is answered promptly (503 at the HTTP edge) and retried by the
consumers, instead of holding requests for seconds per operation."""


class DatabaseCommandMeter(monitoring.CommandListener):
    """Counts every database command and the time it took, by collection and command name,
    into `casework_db_commands_total` / `casework_db_command_seconds_total`.

    The driver calls these hooks synchronously around each command, so they only touch a dict
    and two counters. A command's collection is the value of its first key (`{"insert":
    "events", ...}`), or its `collection` field (`getMore`); commands of no collection
    (`hello`, `endSessions`, ...) count under `-`. Collection names are the service's own, so
    the label set stays small.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._started: dict[int, tuple[str, str]] = {}

    @property
    def in_flight(self) -> int:
        """Commands sent and not yet answered."""
        return len(self._started)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        target = command.get(event.command_name)
        collection = target if isinstance(target, str) else command.get("collection", "-")
        labels = (str(collection), event.command_name)
        self._started[event.request_id] = labels
        self._metrics.db_commands.labels(*labels).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finished(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finished(event.request_id, event.duration_micros)

    def _finished(self, request_id: int, micros: int) -> None:
        labels = self._started.pop(request_id, None)
        if labels is not None:
            self._metrics.db_command_seconds.labels(*labels).inc(micros / 1e6)


def mongo_client(settings: Settings, metrics: Metrics | None = None) -> AsyncMongoClient[Document]:
    """A client whose datetimes come back timezone-aware (UTC), as they went in; with
    `metrics`, every command is counted and timed (`DatabaseCommandMeter`).

    Invariant: no database operation waits forever. A server that stops answering on an open
    connection (a stalled process, a network black hole) fails the operation after
    `mongo_socket_timeout_ms` with `NetworkTimeout`, which `transient_kind` classes as a
    database outage; without it PyMongo would wait on the socket indefinitely.
    """
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        socketTimeoutMS=settings.mongo_socket_timeout_ms,
        event_listeners=[DatabaseCommandMeter(metrics)] if metrics is not None else [],
    )


async def ensure_topics(bootstrap_servers: str, topics: Sequence[str], partitions: int) -> None:
    """Create plain topics on a local broker (tests and benchmarks; services create theirs
    from their settings: `ServiceRuntime.topic_specs`). They keep everything, as the services'
    event topics do by default."""
    specs = [TopicSpec(t, partitions, 1, {RETENTION: "-1"}) for t in topics]
    await create_topics({"bootstrap_servers": bootstrap_servers}, specs)


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
    keys: KeyService
    opener: Opener
    handlers: list[EventHandler] = field(default_factory=list)
    embedded: dict[str, tuple[Projection, EventHandler]] = field(default_factory=dict)
    """Read models a policy writes in its own handler (no consumer group of their own), by
    name, with that policy: not consumed, but rebuilt offline like any read model."""
    consumers: list[ConsumerRunner] = field(default_factory=list)
    subscribers: list[Any] = field(default_factory=list)
    broker_probe: BrokerProbe | None = None
    audit_relay: AuditRelay | None = None
    startup: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

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
        client = mongo_client(settings, metrics)
        database = client[settings.database_name]
        deadlines = Deadlines(database, clock=clock)
        keys = KeyService(
            client[settings.keys_mongo_db],
            LocalKeyFileProvider(settings.kek_file),
            clock=clock,
            cache_ttl_s=settings.keys_cache_ttl_s,
        )
        store = EventStore(
            database,
            source=f"/casework/{settings.service}",
            metrics=metrics,
            clock=clock,
            sealer=Sealer(keys),
        )
        prefix = topic_prefix(settings)
        connection = kafka_client_options(settings)
        relay = OutboxRelay(
            store,
            kafka_producer(client_id=f"{settings.service}-relay", **connection),
            prefix + events_topic(settings.service),
            lease=RelayLease(database["relay_lease"], clock=clock),
            metrics=metrics,
            clock=clock,
            poll_interval=settings.relay_poll_interval_s,
            idle_poll_max=settings.relay_idle_poll_max_s,
        )
        broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=settings.service,
            acks="all",
            enable_idempotence=True,
            security=faststream_security(settings),
            middlewares=tuple(broker_middlewares),
            logger=logging.getLogger(f"casework.{settings.service}.broker"),
            # "Received"/"Processed" for every message is debug detail, not an INFO log line
            log_level=logging.DEBUG,
        )
        audit = AuditTrail(database[OUTBOX_COLLECTION], clock, service=settings.service)
        audit_relay = AuditRelay(
            database[OUTBOX_COLLECTION],
            kafka_producer(client_id=f"{settings.service}-audit-relay", **connection),
            prefix + AUDIT_TOPIC,
            lease=RelayLease(database["relay_lease"], "audit-relay", clock=clock),
            poll_interval=settings.relay_poll_interval_s,
            idle_poll_max=settings.audit_relay_idle_poll_max_s,
        )
        audit.on_record(audit_relay.wake)
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
            audit=audit,
            audit_relay=audit_relay,
            deadlines=deadlines,
            scheduler=DeadlineScheduler(
                deadlines,
                clock=clock,
                metrics=metrics,
                idle_tick_max=settings.deadline_idle_tick_max_s,
            ),
            keys=keys,
            opener=Opener(keys),
            broker_probe=BrokerProbe(
                connection,
                prefix + events_topic(settings.service),
                timeout_s=settings.readiness_timeout_s,
                cache_s=settings.readiness_broker_cache_s,
            ),
        )

    def on_start(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run `step` at start, after the platform's indexes (a service's own indexes)."""
        self.startup.append(step)

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
            database=self.database,
        )
        self.handlers.extend(handlers)
        self.consumers.extend(new)
        self.subscribers.extend(r.subscribe(self.broker) for r in new)

    @property
    def topics(self) -> list[str]:
        """Every topic this service writes or reads (with the namespace prefix)."""
        return sorted(spec.name for spec in self.topic_specs)

    @property
    def topic_specs(self) -> list[TopicSpec]:
        """Those topics with the partitions, replication and retention of the settings:
        event topics (its own and those it reads) and its dead-letter topics."""
        prefix = topic_prefix(self.settings)
        own = events_topic(self.settings.service)
        read = {t for h in self.handlers for t in h.topics}
        dead = [dead_letter_topic(self.settings.service, h.name) for h in self.handlers]
        return topic_specs(
            self.settings,
            # the audit topic keeps everything, as the event topics do
            events=[prefix + t for t in {own, *read, AUDIT_TOPIC}],
            dead_letters=[prefix + t for t in dead],
        )

    async def start(self) -> None:
        """The KEK check, indexes, topics, consumers, relay, deadline scheduler — in that
        order. A lost or wrong KEK raises `KekError` first: the service refuses to start."""
        await _while_transient(self.keys.verify, "checking the KEK", within=STARTUP_PATIENCE_S)
        await self.store.ensure_indexes()
        await self.audit.ensure_indexes()
        await self.deadlines.ensure_indexes()
        for handler in self.handlers:
            await handler.ensure_indexes()
        for step in self.startup:
            await step()
        await _while_transient(
            lambda: create_topics(kafka_client_options(self.settings), self.topic_specs),
            "creating the service's topics",
            within=STARTUP_PATIENCE_S,
        )
        await self.broker.start()
        await self.relay.start()
        if self.audit_relay is not None:
            await self.audit_relay.start()
        await self.scheduler.start()

    async def stop(self) -> None:
        """Everything `start` started, in reverse.

        Invariant: stopping ends. Each step gets `STOP_STEP_TIMEOUT_S`; a step that hangs (a
        producer flushing to an unreachable broker, a consumer leaving its group) is cut
        short and named in a warning, and the next step runs. Nothing is lost by it: what
        was not published stays in the outbox, what was not committed is redelivered.
        """
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("deadline scheduler", self.scheduler.stop),
            ("outbox relay", self.relay.stop),
        ]
        if self.audit_relay is not None:
            steps.append(("audit relay", self.audit_relay.stop))
        steps.append(("broker", self.broker.stop))
        if self.broker_probe is not None:
            steps.append(("broker probe", self.broker_probe.close))
        steps.append(("database client", self.client.close))
        for name, step in steps:
            try:
                async with asyncio.timeout(STOP_STEP_TIMEOUT_S):
                    await step()
            except TimeoutError:
                log.warning("stopping: the %s did not stop within %ss", name, STOP_STEP_TIMEOUT_S)
            except Exception:
                log.warning("stopping: the %s failed to stop", name, exc_info=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceRuntime]:
        """`start` on entry, `stop` on exit."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def readiness(self) -> Readiness:
        """What `/readyz` reports: the database and the broker, each probed for itself, the
        relay, and every consumer (`casework.health`)."""
        assert self.broker_probe is not None

        async def ping() -> object:
            return await self.client.admin.command("ping")

        return Readiness(
            service=self.settings.service,
            ping_database=ping,
            broker=self.broker_probe.probe,
            relay=self.relay,
            consumers=[
                subscriber_view(runner, subscriber)
                for runner, subscriber in zip(self.consumers, self.subscribers, strict=True)
            ],
            clock=self.clock,
            timeout_s=self.settings.readiness_timeout_s,
            lag_limit_s=self.settings.readiness_lag_limit_s,
        )


def subscriber_view(runner: ConsumerRunner, subscriber: Any) -> ConsumerView:
    """Readiness's view of a runner fed by a FastStream subscriber (its aiokafka consumer)."""

    def running() -> bool:
        tasks = getattr(subscriber, "tasks", [])
        return subscriber.consumer is not None and any(not t.done() for t in tasks)

    def partitions() -> int:
        consumer = subscriber.consumer
        return len(consumer.assignment()) if consumer is not None else 0

    async def records_behind() -> int | None:
        # Records not fetched yet (highwater of the last fetch minus position); a batch in hand
        # is not counted: a stuck one shows as `failing_since`.
        consumer = subscriber.consumer
        if consumer is None:
            return None
        total = 0
        for tp in list(consumer.assignment()):
            assert isinstance(tp, TopicPartition)
            high = consumer.highwater(tp)
            if high is None:
                return None
            total += max(high - await consumer.position(tp), 0)
        return total

    return ConsumerView(
        name=runner.handler.name,
        runner=runner,
        running=running,
        partitions=partitions,
        records_behind=records_behind,
    )


T = TypeVar("T")

STARTUP_PATIENCE_S = 120.0
"""How long a starting service waits out a broker or database that is slow or briefly away
(a broker still loading its logs, say) before it gives up and exits."""


async def _while_transient(step: Callable[[], Awaitable[T]], what: str, *, within: float) -> T:
    """`step()`, retried with capped backoff while it fails with a transient error (an outage
    or a timeout, `transient_kind`) and `within` seconds have not passed; anything else, or
    the same failure after `within`, is raised."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    backoff = 0.5
    while True:
        try:
            return await step()
        except Exception as exc:
            kind = transient_kind(exc)
            if kind is None or loop.time() + backoff > give_up:
                raise
            log.warning(
                "%s: the %s is not answering (%s); retrying in %.1fs",
                what,
                kind,
                type(exc).__name__,
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


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
