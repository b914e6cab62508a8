"""Readiness and topics of a real service on the real Kafka broker and MongoDB-wire server.

- A healthy service reports every part ok over `/readyz`: the database and the broker
  reachable, the relay publishing, every consumer assigned or waiting, nothing behind.
- The topics a service creates keep everything: `retention.ms=-1` on its event and
  dead-letter topics, as the broker itself describes them; `min.insync.replicas` and the
  partition count come from the settings.
- An existing topic with a shorter retention is left alone and reported in a warning naming
  the topic and the setting.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from casework.eventstore import Document
from casework.health import BrokerProbe
from casework.kafka_clients import (
    RETENTION,
    create_topics,
    describe_topic_configs,
    kafka_client_options,
    topic_specs,
)
from casework.runtime import ServiceRuntime, wait_until
from casework.settings import Settings

from casework_cases.bootstrap import create_app
from support.tcp_proxy import TcpProxy


def cases_settings(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> Settings:
    namespace = f"rd{uuid.uuid4().hex[:10]}"
    return Settings.for_service(
        "cases",
        0,
        namespace=namespace,
        kafka_bootstrap_servers=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"{namespace}_cases",
        environment="test",
        jwt_dev_key_path=tmp_path / "dev.pem",
        relay_poll_interval_s=0.2,
        readiness_broker_cache_s=0,
    )


@pytest.fixture
async def cases_app(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = cases_settings(kafka_bootstrap, mongo_url, tmp_path)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await client.drop_database(settings.database_name)
        await client.close()


async def test_a_healthy_service_reports_every_part_ok(cases_app: FastAPI) -> None:
    runtime: ServiceRuntime = cases_app.state.runtime
    transport = httpx.ASGITransport(app=cases_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cases") as http:

        async def relay_publishing_and_consumers_assigned() -> bool:
            body = (await http.get("/readyz")).json()
            # right after an assignment the lag is unknown until the first fetch answers
            return body["relay"]["state"] == "publishing" and all(
                c["state"] == "assigned" and c["lag_s"] is not None
                for c in body["consumers"].values()
            )

        await wait_until(relay_publishing_and_consumers_assigned, within=30)
        response = await http.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok", body["reasons"]
    assert body["reasons"] == []
    assert body["database"]["status"] == body["broker"]["status"] == "ok"
    assert body["database"]["state"] == body["broker"]["state"] == "reachable"
    assert body["broker"]["brokers"] >= 1
    assert body["broker"]["partitions"] == runtime.settings.kafka_topic_partitions
    assert body["broker"]["partitions_without_leader"] == 0
    relay = body["relay"]
    assert (relay["status"], relay["failing_on"], relay["outbox_backlog"]) == ("ok", None, 0)
    assert set(body["consumers"]) == {h.name for h in runtime.handlers}
    for name, consumer in body["consumers"].items():
        assert consumer["status"] == "ok", name
        assert consumer["partitions"] >= 1, name
        assert consumer["failing_since"] is None, name
        assert consumer["parked_streams"] == 0, name
        assert consumer["lag_s"] == 0.0, name


async def test_the_topics_a_service_creates_keep_everything(cases_app: FastAPI) -> None:
    runtime: ServiceRuntime = cases_app.state.runtime
    settings = runtime.settings
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        configs = await describe_topic_configs(admin, runtime.topics)
        described = await admin.describe_topics(runtime.topics)
    finally:
        await admin.close()

    assert set(configs) == set(runtime.topics)
    assert any(t.endswith(".dlq") for t in configs)
    for topic, config in configs.items():
        assert config[RETENTION] == "-1", topic
        assert config["min.insync.replicas"] == str(settings.kafka_min_insync_replicas), topic
    for topic in described:
        wanted = (
            settings.kafka_dead_letter_partitions
            if topic["topic"].endswith(".dlq")
            else settings.kafka_topic_partitions
        )
        assert len(topic["partitions"]) == wanted, topic["topic"]


async def test_an_existing_topic_with_short_retention_is_reported_not_altered(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = cases_settings(kafka_bootstrap, mongo_url, tmp_path)
    topic = f"{settings.namespace}.casework.cases.events"
    connection = kafka_client_options(settings)
    admin = AIOKafkaAdminClient(**connection)
    await admin.start()
    try:
        week = str(7 * 24 * 3600 * 1000)
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={RETENTION: week})])
        # the broker describes a new topic once its metadata caught up with the controller:
        # from then on the topic "exists" for this test (a condition, polled with a deadline)
        deadline = asyncio.get_running_loop().time() + 30
        while topic not in await describe_topic_configs(admin, [topic]):
            assert asyncio.get_running_loop().time() < deadline, "the topic was never described"
            await asyncio.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="casework.kafka_clients"):
            problems = await create_topics(
                connection, topic_specs(settings, events=[topic], dead_letters=[])
            )
        after = await describe_topic_configs(admin, [topic])
    finally:
        await admin.close()

    assert after[topic][RETENTION] == week  # left alone
    (problem,) = problems
    assert topic in problem
    assert "CASEWORK_KAFKA_EVENTS_RETENTION_MS" in problem
    assert f"retention.ms={week}" in problem
    assert problem in caplog.text


async def test_the_broker_probe_asks_the_real_cluster_and_names_an_unreachable_one(
    kafka_bootstrap: str, cases_app: FastAPI
) -> None:
    runtime: ServiceRuntime = cases_app.state.runtime
    topic = runtime.relay.topic
    live = BrokerProbe({"bootstrap_servers": kafka_bootstrap}, topic, cache_s=60)
    # a port in this run's range where nothing listens
    gone = BrokerProbe({"bootstrap_servers": f"127.0.0.1:{_closed_port()}"}, topic, timeout_s=1)
    try:
        answer = await live.probe()
        cached = await live.probe()
        started = asyncio.get_running_loop().time()
        unreachable = await gone.probe()
        took = asyncio.get_running_loop().time() - started
    finally:
        await live.close()
        await gone.close()

    assert answer.reachable
    assert answer.detail is not None
    assert answer.detail["brokers"] >= 1
    assert {**answer.detail, "brokers": 1} == {
        "brokers": 1,
        "topic": topic,
        "partitions": runtime.settings.kafka_topic_partitions,
        "partitions_without_leader": 0,
    }
    assert cached is answer  # within cache_s: no second request
    assert not unreachable.reachable
    assert unreachable.error in {"KafkaConnectionError", "TimeoutError"}
    assert took < 3


def _closed_port() -> int:
    port = _port(999)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"
    return port


async def test_a_database_outage_is_named_as_the_database_and_heals(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    # The review found the relay failing on FerretDB turned "kafka" red. Cut this service's
    # database connections (a proxy in front of the shared server) and read /readyz.
    upstream = urlparse(mongo_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 27017, _port(10))
    await proxy.start()
    settings = cases_settings(kafka_bootstrap, f"mongodb://127.0.0.1:{proxy.port}", tmp_path)
    app = create_app(settings)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://cases"
            ) as http,
        ):

            async def relay_state(status: str, state: str) -> bool:
                body = (await http.get("/readyz")).json()
                return (body["status"], body["relay"]["state"]) == (status, state)

            await wait_until(lambda: relay_state("ok", "publishing"), within=30)
            await proxy.cut()
            # the relay's own round gives up after the driver's server selection timeout
            await wait_until(lambda: relay_state("down", "failing"), within=20, every=0.5)
            during = await http.get("/readyz")
            await proxy.restore()
            await wait_until(lambda: relay_state("ok", "publishing"), within=30, every=0.5)
    finally:
        await proxy.stop()
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await client.drop_database(settings.database_name)
        await client.close()

    assert during.status_code == 503
    body = during.json()
    assert (body["database"]["status"], body["database"]["state"]) == ("down", "unreachable")
    assert (body["broker"]["status"], body["broker"]["state"]) == ("ok", "reachable")
    assert body["relay"]["failing_on"] == "database"
    assert body["reasons"][0].startswith("database: unreachable")
    assert not [r for r in body["reasons"] if r.startswith("broker")]


def _port(offset: int) -> int:
    return int(os.environ.get("CASEWORK_E2E_BASE_PORT", "23000")) + offset
