"""Readiness: what a replica needs to serve, and each part's own state (DESIGN §9).

`/readyz` answers with one JSON document an operator reads at once::

    {"status": "degraded", "service": "cases",
     "reasons": ["relay: failing on the broker; 12 commits wait, the oldest 41 s"],
     "database": {"status": "ok", "state": "reachable", "latency_ms": 2.1},
     "broker": {"status": "degraded", "state": "unreachable", "error": "KafkaConnectionError"},
     "relay": {"status": "degraded", "state": "failing", "failing_on": "broker", ...},
     "consumers": {"caseload": {"status": "ok", "state": "assigned", "partitions": 3,
                                "lag_s": 0.0, ...}, ...}}

Invariants:

- **Ready means able to serve** this replica's requests: the database answers and every
  consumer is running (assigned partitions, or waiting for an assignment — with more
  replicas than partitions some wait for good). Which replica holds the relay lease does not
  matter: a standby relay is healthy, so every replica of a service is ready, not only the
  lease holder.
- **Down** (HTTP 503: take this replica out of the load balancer) only when it cannot serve:
  the database is unreachable, or a consumer has stopped.
- **Degraded** (HTTP 200, still serving) when something is behind but commands are still
  stored: the broker unreachable, the relay failing (on the database or the broker), the
  outbox or a consumer behind by more than `readiness_lag_limit_s`, a consumer failing or
  with parked streams. A broker outage is degraded, not down, on purpose: commands are stored
  in the outbox and published when it is back — the outbox's whole point — and a 503 would
  take every replica out of service at once.
- Each dependency is reported as itself: the database by a `ping` of its own, the broker by a
  metadata request of its own (cached for `readiness_broker_cache_s`), never inferred from
  the relay; so a FerretDB outage reads "database", not "broker". A failing part names the
  dependency it fails on (`failure_kind`).
- Nothing in the document is client data: names of parts, counts, times, error classes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from pymongo.errors import PyMongoError

from casework.clock import Clock

Status = Literal["ok", "degraded", "down"]
FailureKind = Literal["database", "broker"]

_SEVERITY: Mapping[Status, int] = {"ok": 0, "degraded": 1, "down": 2}


def failure_kind(exc: BaseException) -> FailureKind | None:
    """Which dependency an exception says failed: the database (PyMongo), the broker
    (aiokafka), or neither (a bug: None)."""
    for cause in _causes(exc):
        if isinstance(cause, PyMongoError):
            return "database"
        if isinstance(cause, KafkaError):
            return "broker"
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@dataclass(frozen=True)
class Backlog:
    """Commits stored but not yet published."""

    count: int
    oldest_at: datetime | None


class RelayState(Protocol):
    """What the outbox relay tells readiness (`casework.relay.OutboxRelay`)."""

    @property
    def healthy(self) -> bool:
        """The last round did not fail (a standby without the lease is healthy)."""

    @property
    def holds_lease(self) -> bool: ...

    @property
    def last_error_kind(self) -> str | None: ...

    @property
    def last_success_at(self) -> datetime | None: ...

    async def backlog(self) -> Backlog: ...


class RunnerState(Protocol):
    """What a projection or policy runner tells readiness (`casework.projections`)."""

    @property
    def failing_since(self) -> datetime | None: ...

    @property
    def failure_kind(self) -> str | None: ...

    @property
    def parked_streams(self) -> int: ...

    @property
    def last_event_time(self) -> datetime | None: ...


@dataclass(frozen=True)
class ConsumerView:
    """One consumer group member as readiness sees it."""

    name: str
    runner: RunnerState
    running: Callable[[], bool]
    """The consumer is started and its loop alive."""
    partitions: Callable[[], int]
    """How many partitions it is assigned now (0: waiting for an assignment)."""
    records_behind: Callable[[], Awaitable[int | None]]
    """Records between its position and the end of its partitions (None: unknown)."""


@dataclass(frozen=True)
class Probe:
    """The answer of one reachability probe."""

    reachable: bool
    latency_ms: float
    error: str | None = None
    detail: Mapping[str, Any] | None = None


class BrokerProbe:
    """Asks the Kafka cluster for the metadata of the service's topic, with a short timeout,
    over a connection of its own; the answer is reused for `cache_s` seconds, and concurrent
    callers share one request."""

    def __init__(
        self,
        connection: Mapping[str, Any],
        topic: str,
        *,
        timeout_s: float = 1.0,
        cache_s: float = 3.0,
    ) -> None:
        self._connection = dict(connection)
        self._topic = topic
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._client: AIOKafkaClient | None = None
        self._last: tuple[float, Probe] | None = None
        self._lock = asyncio.Lock()

    async def probe(self) -> Probe:
        """The cached answer if fresh, else a new metadata request."""
        async with self._lock:
            if self._last and time.monotonic() - self._last[0] < self._cache_s:
                return self._last[1]
            started = time.monotonic()
            try:
                async with asyncio.timeout(self._timeout_s):
                    detail = await self._metadata()
                result = Probe(True, _ms_since(started), detail=detail)
            except Exception as exc:
                result = Probe(False, _ms_since(started), error=type(exc).__name__)
            self._last = (time.monotonic(), result)
            return result

    async def _metadata(self) -> dict[str, Any]:
        if self._client is None:
            self._client = AIOKafkaClient(**self._connection, client_id="casework-readiness")
        client = self._client
        node = client.get_random_node()
        if node is None:
            await client.bootstrap()
            node = client.get_random_node()
            if node is None:
                raise KafkaError("no broker in the cluster metadata")
        response = await client.send(
            node, MetadataRequest([self._topic], allow_auto_topic_creation=False)
        )
        cluster = ClusterMetadata()
        cluster.update_metadata(response)
        partitions = cluster.partitions_for_topic(self._topic) or set()
        led = cluster.available_partitions_for_topic(self._topic) or set()
        return {
            "brokers": len(cluster.brokers()),
            "topic": self._topic,
            "partitions": len(partitions),
            "partitions_without_leader": len(partitions) - len(led),
        }

    async def close(self) -> None:
        """Close the probe's connection."""
        if self._client is not None:
            await self._client.close()
            self._client = None


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


class Readiness:
    """Gathers each part's state and decides ok / degraded / down (see the module)."""

    def __init__(
        self,
        *,
        service: str,
        ping_database: Callable[[], Awaitable[object]],
        broker: Callable[[], Awaitable[Probe]],
        relay: RelayState | None,
        consumers: Sequence[ConsumerView],
        clock: Clock,
        timeout_s: float = 1.0,
        lag_limit_s: float = 30.0,
    ) -> None:
        self.service = service
        self._ping_database = ping_database
        self._broker = broker
        self._relay = relay
        self._consumers = consumers
        self._clock = clock
        self._timeout_s = timeout_s
        self._lag_limit_s = lag_limit_s
        self._behind_since: dict[str, datetime] = {}

    async def report(self) -> dict[str, Any]:
        """The readiness document (`status` is ok, degraded or down)."""
        database, broker, relay, consumers = await asyncio.gather(
            self._database_probe(),
            self._broker(),
            self._relay_facts(),
            asyncio.gather(*(self._consumer_facts(c) for c in self._consumers)),
        )
        return assess(
            service=self.service,
            now=self._clock.now(),
            lag_limit_s=self._lag_limit_s,
            database=database,
            broker=broker,
            relay=relay,
            consumers=dict(zip((c.name for c in self._consumers), consumers, strict=True)),
        )

    async def _database_probe(self) -> Probe:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._ping_database()
        except Exception as exc:
            return Probe(False, _ms_since(started), error=type(exc).__name__)
        return Probe(True, _ms_since(started))

    async def _relay_facts(self) -> RelayFacts | None:
        relay = self._relay
        if relay is None:
            return None
        backlog: Backlog | None
        try:
            async with asyncio.timeout(self._timeout_s):
                backlog = await relay.backlog()
        except Exception:
            backlog = None  # the database probe says why
        return RelayFacts(
            healthy=relay.healthy,
            holds_lease=relay.holds_lease,
            last_error_kind=relay.last_error_kind,
            last_success_at=relay.last_success_at,
            backlog=backlog,
        )

    async def _consumer_facts(self, consumer: ConsumerView) -> ConsumerFacts:
        running = consumer.running()
        partitions = consumer.partitions() if running else 0
        behind: int | None = None
        if running and partitions:
            try:
                async with asyncio.timeout(self._timeout_s):
                    behind = await consumer.records_behind()
            except Exception:
                behind = None
        # Since when this replica has seen the consumer behind, without a break.
        if behind:
            self._behind_since.setdefault(consumer.name, self._clock.now())
        elif behind == 0 or not partitions:
            self._behind_since.pop(consumer.name, None)
        runner = consumer.runner
        return ConsumerFacts(
            running=running,
            partitions=partitions,
            records_behind=behind,
            behind_since=self._behind_since.get(consumer.name),
            last_event_time=runner.last_event_time,
            failing_since=runner.failing_since,
            failure_kind=runner.failure_kind,
            parked_streams=runner.parked_streams,
        )


@dataclass(frozen=True)
class RelayFacts:
    """The relay's state as observed for one report."""

    healthy: bool
    holds_lease: bool
    last_error_kind: str | None
    last_success_at: datetime | None
    backlog: Backlog | None


@dataclass(frozen=True)
class ConsumerFacts:
    """One consumer's state as observed for one report."""

    running: bool
    partitions: int
    records_behind: int | None
    behind_since: datetime | None
    last_event_time: datetime | None
    failing_since: datetime | None
    failure_kind: str | None
    parked_streams: int


def assess(
    *,
    service: str,
    now: datetime,
    lag_limit_s: float,
    database: Probe,
    broker: Probe,
    relay: RelayFacts | None,
    consumers: Mapping[str, ConsumerFacts],
) -> dict[str, Any]:
    """The readiness document from observed facts: pure, so each rule has a unit test."""
    reasons: list[str] = []
    parts: dict[str, Any] = {}

    parts["database"] = _probe_part(database, "down")
    if not database.reachable:
        reasons.append(f"database: unreachable ({database.error}); nothing can be served")
    parts["broker"] = _probe_part(broker, "degraded")
    if not broker.reachable:
        reasons.append(
            f"broker: unreachable ({broker.error}); commands are still stored and will be "
            "published when it is back"
        )
    elif broker.detail and broker.detail.get("partitions_without_leader"):
        parts["broker"]["status"] = "degraded"
        reasons.append(
            f"broker: {broker.detail['partitions_without_leader']} partition(s) of "
            f"{broker.detail['topic']} have no leader"
        )
    if relay is not None:
        parts["relay"], relay_reasons = _relay_part(relay, now, lag_limit_s)
        reasons.extend(relay_reasons)
    consumer_parts: dict[str, Any] = {}
    for name, facts in consumers.items():
        consumer_parts[name], consumer_reasons = _consumer_part(name, facts, now, lag_limit_s)
        reasons.extend(consumer_reasons)
    statuses: list[Status] = [
        parts["database"]["status"],
        parts["broker"]["status"],
        *([parts["relay"]["status"]] if "relay" in parts else []),
        *(c["status"] for c in consumer_parts.values()),
    ]
    overall = max(statuses, key=lambda s: _SEVERITY[s])
    return {
        "status": overall,
        "service": service,
        "checked_at": now.isoformat(),
        "reasons": reasons,
        **parts,
        "consumers": consumer_parts,
    }


def status_code(report: Mapping[str, Any]) -> int:
    """200 while the replica serves (ok or degraded), 503 when it cannot (down)."""
    return 503 if report["status"] == "down" else 200


def _probe_part(probe: Probe, when_unreachable: Status) -> dict[str, Any]:
    part: dict[str, Any] = {
        "status": "ok" if probe.reachable else when_unreachable,
        "state": "reachable" if probe.reachable else "unreachable",
        "latency_ms": probe.latency_ms,
    }
    if probe.error:
        part["error"] = probe.error
    if probe.detail:
        part.update(probe.detail)
    return part


def _age_s(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max((now - then).total_seconds(), 0.0), 1)


def _relay_part(
    relay: RelayFacts, now: datetime, lag_limit_s: float
) -> tuple[dict[str, Any], list[str]]:
    reasons: list[str] = []
    status: Status = "ok"
    state = "failing" if not relay.healthy else "publishing" if relay.holds_lease else "standby"
    backlog = relay.backlog
    oldest_age = _age_s(now, backlog.oldest_at) if backlog else None
    part: dict[str, Any] = {
        "status": status,
        "state": state,
        "failing_on": relay.last_error_kind if state == "failing" else None,
        "outbox_backlog": backlog.count if backlog else None,
        "outbox_oldest_age_s": oldest_age,
        "last_success_at": relay.last_success_at.isoformat() if relay.last_success_at else None,
    }
    waiting = (
        f"{backlog.count} commit(s) wait, the oldest {oldest_age:.0f} s"
        if backlog and oldest_age is not None
        else "outbox size unknown"
        if backlog is None
        else "the outbox is empty"
    )
    if state == "failing":
        part["status"] = "degraded"
        on = relay.last_error_kind or "an unexpected error"
        reasons.append(f"relay: failing on the {on}; {waiting}")
    elif oldest_age is not None and oldest_age > lag_limit_s:
        part["status"] = "degraded"
        reasons.append(f"relay: behind; {waiting}")
    return part, reasons


def _consumer_part(
    name: str, facts: ConsumerFacts, now: datetime, lag_limit_s: float
) -> tuple[dict[str, Any], list[str]]:
    reasons: list[str] = []
    if not facts.running:
        state = "stopped"
    elif facts.partitions:
        state = "assigned"
    else:
        state = "waiting"  # joining the group, or more members than partitions
    lag_s: float | None
    if facts.records_behind == 0 or state == "waiting":
        lag_s = 0.0
    elif facts.records_behind is None:
        lag_s = None
    else:
        # The oldest record not yet applied is younger than the last event applied, and it
        # arrived after the consumer was last seen caught up: both ages bound its wait.
        ages = [
            a
            for a in (_age_s(now, facts.last_event_time), _age_s(now, facts.behind_since))
            if a is not None
        ]
        lag_s = min(ages, default=None)
    part: dict[str, Any] = {
        "status": "ok",
        "state": state,
        "partitions": facts.partitions,
        "records_behind": facts.records_behind,
        "lag_s": lag_s,
        "failing_since": facts.failing_since.isoformat() if facts.failing_since else None,
        "failing_on": facts.failure_kind if facts.failing_since else None,
        "parked_streams": facts.parked_streams,
    }
    if state == "stopped":
        part["status"] = "down"
        reasons.append(f"consumer {name}: stopped; its read model or policy gets no events")
        return part, reasons
    if facts.failing_since is not None:
        part["status"] = "degraded"
        on = facts.failure_kind or "an unexpected error"
        reasons.append(
            f"consumer {name}: failing on the {on} for "
            f"{_age_s(now, facts.failing_since):.0f} s; retrying"
        )
    if facts.parked_streams:
        part["status"] = "degraded"
        reasons.append(
            f"consumer {name}: {facts.parked_streams} stream(s) parked behind a dead letter"
        )
    if lag_s is not None and lag_s > lag_limit_s:
        part["status"] = "degraded"
        reasons.append(
            f"consumer {name}: {facts.records_behind} record(s) behind, lag {lag_s:.0f} s"
        )
    return part, reasons
