"""Readiness decisions (`casework.health`) on faked relay and runner states, and `/readyz`
over HTTP as a service serves it: what is down, what is degraded, and who is named."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from fastapi import FastAPI
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from casework.clock import FixedClock
from casework.health import (
    Backlog,
    ConsumerView,
    Probe,
    Readiness,
    failure_kind,
    status_code,
)
from casework.service import readiness_router

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@dataclass
class FakeRelay:
    healthy: bool = True
    holds_lease: bool = True
    last_error_kind: str | None = None
    last_success_at: datetime | None = NOW
    waiting: Backlog = field(default_factory=lambda: Backlog(0, None))

    async def backlog(self) -> Backlog:
        return self.waiting


@dataclass
class FakeRunner:
    failing_since: datetime | None = None
    failure_kind: str | None = None
    parked_streams: int = 0
    last_event_time: datetime | None = None


def consumer(
    name: str,
    runner: FakeRunner | None = None,
    *,
    running: bool = True,
    partitions: int = 2,
    behind: int | None = 0,
) -> ConsumerView:
    async def records_behind() -> int | None:
        return behind

    return ConsumerView(
        name=name,
        runner=runner or FakeRunner(),
        running=lambda: running,
        partitions=lambda: partitions,
        records_behind=records_behind,
    )


def reachable() -> Probe:
    return Probe(True, 1.0, detail={"brokers": 1, "partitions": 6, "partitions_without_leader": 0})


async def report(
    *,
    database_up: bool = True,
    broker: Probe | None = None,
    relay: FakeRelay | None = None,
    consumers: tuple[ConsumerView, ...] = (),
    clock: FixedClock | None = None,
) -> dict[str, Any]:
    return await readiness(
        database_up=database_up, broker=broker, relay=relay, consumers=consumers, clock=clock
    ).report()


def readiness(
    *,
    database_up: bool = True,
    broker: Probe | None = None,
    relay: FakeRelay | None = None,
    consumers: tuple[ConsumerView, ...] = (),
    clock: FixedClock | None = None,
) -> Readiness:
    async def ping() -> object:
        if not database_up:
            raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")
        return {"ok": 1}

    async def probe() -> Probe:
        return broker or reachable()

    return Readiness(
        service="cases",
        ping_database=ping,
        broker=probe,
        relay=relay or FakeRelay(),
        consumers=consumers,
        clock=clock or FixedClock(NOW),
        lag_limit_s=30,
    )


async def test_everything_fine_is_ok_with_no_reasons() -> None:
    body = await report(consumers=(consumer("caseload"),))

    assert body["status"] == "ok"
    assert body["reasons"] == []
    assert status_code(body) == 200
    assert body["relay"]["state"] == "publishing"
    assert body["consumers"]["caseload"]["state"] == "assigned"


async def test_a_standby_relay_is_ready_so_every_replica_serves() -> None:
    # Today's bug: only the lease holder was ready, so a rolling update stalled.
    body = await report(relay=FakeRelay(holds_lease=False))

    assert body["status"] == "ok"
    assert body["relay"]["state"] == "standby"
    assert status_code(body) == 200


async def test_a_consumer_waiting_for_its_assignment_is_ready() -> None:
    body = await report(consumers=(consumer("caseload", partitions=0, behind=None),))

    assert body["status"] == "ok"
    part = body["consumers"]["caseload"]
    assert (part["state"], part["status"], part["partitions"], part["lag_s"]) == (
        "waiting",
        "ok",
        0,
        0.0,
    )


async def test_a_stopped_consumer_is_down() -> None:
    body = await report(consumers=(consumer("timeline", running=False),))

    assert body["status"] == "down"
    assert status_code(body) == 503
    assert body["consumers"]["timeline"]["state"] == "stopped"
    assert any("consumer timeline: stopped" in r for r in body["reasons"])


async def test_a_database_outage_is_down_and_named_as_the_database_not_the_broker() -> None:
    # The relay fails on the database too: it must not turn the broker red.
    relay = FakeRelay(healthy=False, last_error_kind="database")
    body = await report(database_up=False, relay=relay)

    assert body["status"] == "down"
    assert status_code(body) == 503
    assert body["database"] == {
        "status": "down",
        "state": "unreachable",
        "latency_ms": body["database"]["latency_ms"],
        "error": "ServerSelectionTimeoutError",
    }
    assert body["broker"]["status"] == "ok"
    assert body["relay"]["state"] == "failing"
    assert body["relay"]["failing_on"] == "database"
    assert body["relay"]["outbox_backlog"] == 0
    assert body["reasons"][0].startswith("database: unreachable")
    assert not any(r.startswith("broker") for r in body["reasons"])


async def test_a_relay_failing_on_the_broker_is_degraded_and_still_serves() -> None:
    # Commands are still stored (the outbox's point): degraded, not down.
    waiting = Backlog(12, NOW - timedelta(seconds=41))
    relay = FakeRelay(healthy=False, last_error_kind="broker", waiting=waiting)
    body = await report(broker=Probe(False, 1000.0, error="KafkaConnectionError"), relay=relay)

    assert body["status"] == "degraded"
    assert status_code(body) == 200
    assert body["database"]["status"] == "ok"
    assert (body["broker"]["status"], body["broker"]["state"]) == ("degraded", "unreachable")
    assert body["broker"]["error"] == "KafkaConnectionError"
    relay_part = body["relay"]
    assert (relay_part["state"], relay_part["failing_on"]) == ("failing", "broker")
    assert (relay_part["outbox_backlog"], relay_part["outbox_oldest_age_s"]) == (12, 41.0)
    assert "relay: failing on the broker; 12 commit(s) wait, the oldest 41 s" in body["reasons"]


async def test_a_relay_failing_on_the_database_while_it_answers_again_is_degraded() -> None:
    relay = FakeRelay(healthy=False, last_error_kind="database")
    body = await report(relay=relay)

    assert body["status"] == "degraded"
    assert body["database"]["status"] == body["broker"]["status"] == "ok"
    assert body["relay"]["failing_on"] == "database"
    assert body["reasons"] == ["relay: failing on the database; the outbox is empty"]


async def test_an_outbox_older_than_the_limit_is_degraded() -> None:
    relay = FakeRelay(waiting=Backlog(3, NOW - timedelta(seconds=95)))
    body = await report(relay=relay)

    assert body["status"] == "degraded"
    assert body["relay"]["state"] == "publishing"
    assert body["reasons"] == ["relay: behind; 3 commit(s) wait, the oldest 95 s"]


async def test_a_consumer_failing_on_the_database_says_since_when() -> None:
    runner = FakeRunner(failing_since=NOW - timedelta(seconds=20), failure_kind="database")
    body = await report(consumers=(consumer("caseload", runner),))

    assert body["status"] == "degraded"
    part = body["consumers"]["caseload"]
    assert part["failing_since"] == (NOW - timedelta(seconds=20)).isoformat()
    assert part["failing_on"] == "database"
    assert body["reasons"] == ["consumer caseload: failing on the database for 20 s; retrying"]


async def test_parked_streams_are_degraded() -> None:
    body = await report(consumers=(consumer("timeline", FakeRunner(parked_streams=2)),))

    assert body["status"] == "degraded"
    assert body["consumers"]["timeline"]["parked_streams"] == 2


async def test_lag_counts_from_when_the_consumer_fell_behind_not_from_its_last_event() -> None:
    # Its last event is an hour old (nothing happened since); a record arrives now.
    clock = FixedClock(NOW)
    runner = FakeRunner(last_event_time=NOW - timedelta(hours=1))
    behind = {"records": 0}

    async def records_behind() -> int | None:
        return behind["records"]

    view = ConsumerView("caseload", runner, lambda: True, lambda: 3, records_behind)
    checks = readiness(consumers=(view,), clock=clock)
    assert (await checks.report())["consumers"]["caseload"]["lag_s"] == 0.0
    behind["records"] = 4
    first = await checks.report()
    clock.advance(timedelta(seconds=45))
    later = await checks.report()

    assert first["status"] == "ok"
    assert first["consumers"]["caseload"]["lag_s"] == 0.0
    assert later["consumers"]["caseload"]["lag_s"] == 45.0
    assert later["status"] == "degraded"
    assert later["reasons"] == ["consumer caseload: 4 record(s) behind, lag 45 s"]


async def test_a_partition_without_leader_is_degraded() -> None:
    probe = Probe(
        True,
        2.0,
        detail={"brokers": 2, "topic": "casework.cases.events", "partitions": 6,
                "partitions_without_leader": 2},
    )  # fmt: skip
    body = await report(broker=probe)

    assert body["status"] == "degraded"
    assert body["reasons"] == ["broker: 2 partition(s) of casework.cases.events have no leader"]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ServerSelectionTimeoutError("no servers"), "database"),
        (AutoReconnect("connection reset"), "database"),
        (KafkaConnectionError("refused"), "broker"),
        (KafkaTimeoutError(), "broker"),
        (ValueError("a bug"), None),
    ],
)
def test_failure_kind_names_the_dependency(error: Exception, kind: str | None) -> None:
    assert failure_kind(error) == kind


def test_failure_kind_looks_through_a_wrapping_exception() -> None:
    wrapped = RuntimeError("append failed")
    wrapped.__cause__ = AutoReconnect("reset")

    assert failure_kind(wrapped) == "database"


def failing_on_the_broker() -> Readiness:
    return readiness(relay=FakeRelay(healthy=False, last_error_kind="broker"))


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda: readiness(), "ok", 200),
        (failing_on_the_broker, "degraded", 200),
        (lambda: readiness(database_up=False), "down", 503),
    ],
    ids=["ok", "degraded", "down"],
)
async def test_readyz_answers_200_while_serving_and_503_when_down(
    make: Callable[[], Readiness], status: str, code: int
) -> None:
    app = FastAPI()
    app.include_router(readiness_router(make()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        response = await http.get("/readyz")

    assert response.status_code == code
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status"] == status
