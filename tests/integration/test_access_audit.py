"""The access audit on the real servers (issue 8): records reach the audit store exactly once
under redelivery and a consumer restart, and a request whose record cannot be written is
refused (fail closed), its answer withheld."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from casework.audit import AUDIT_TOPIC, OUTBOX_COLLECTION, AuditRelay, AuditTrail
from casework.auditstore import AuditStore, AuditStoreConsumer, audit_consumer
from casework.auth import Principal, mint_dev_token
from casework.eventstore import CommitContext, Document
from casework.relay import kafka_producer
from casework.runtime import ensure_topics, wait_until
from casework.settings import Settings

from casework_cases.application.handlers import Cases
from casework_cases.bootstrap import create_app
from casework_cases.domain.commands import OpenCase
from support.tcp_proxy import TcpProxy

WORKER = Principal(
    sub="carl", name="Carl", roles=frozenset({"caseworker"}), sites=frozenset({"north"})
)


def audit_settings(kafka_bootstrap: str, mongo_url: str, **more: Any) -> Settings:
    namespace = f"au{uuid.uuid4().hex[:10]}"
    return Settings.for_service(
        "cases",
        0,
        namespace=namespace,
        kafka_bootstrap_servers=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"{namespace}_cases",
        audit_mongo_database=f"{namespace}_audit",
        environment="test",
        kafka_topic_partitions=3,
        **more,
    )


@pytest.fixture
async def mongo(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client
    await client.close()


async def end_offsets(kafka_bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    probe = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap)  # no group: no commits
    await probe.start()
    try:
        partitions = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic) or ()]
        assert partitions, topic
        ends: dict[TopicPartition, int] = await probe.end_offsets(partitions)
        return ends
    finally:
        await probe.stop()


async def consume_to_the_end(
    store: AuditStore, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> None:
    """Run a store consumer until it has committed the topic's end on every partition."""
    await consumer.start()
    runner = asyncio.create_task(AuditStoreConsumer(store, consumer, batch=7).run())

    async def committed_everything() -> bool:
        for tp, end in ends.items():
            if (await consumer.committed(tp) or 0) < end:
                return False
        return True

    try:
        await wait_until(committed_everything, within=60)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        await consumer.stop()


async def test_records_reach_the_store_exactly_once_under_redelivery_and_a_restart(
    kafka_bootstrap: str, mongo: AsyncMongoClient[Document]
) -> None:
    settings = audit_settings(kafka_bootstrap, "unused")
    topic = f"{settings.namespace}.{AUDIT_TOPIC}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)
    outbox = mongo[settings.database_name][OUTBOX_COLLECTION]
    store = AuditStore(mongo[settings.audit_mongo_database])
    await store.ensure_indexes()
    trail = AuditTrail(outbox, service="cases")
    producer = kafka_producer(kafka_bootstrap, "audit-test")
    relay = AuditRelay(outbox, producer, topic, batch=25)
    await producer.start()
    try:
        ids = [
            await trail.record(
                principal=WORKER,
                method="GET",
                template="/cases/{case_id}",
                resource=f"/cases/c{i}",
                outcome=200,
                subjects=[f"client:cl-{i}"],
            )
            for i in range(60)
        ]
        written = {d["_id"]: d["event"] for d in await outbox.find({}).to_list(None)}
        assert sorted(written) == sorted(ids)
        # The relay publishes everything, then dies before deleting: the next relay publishes
        # it all again (the crash window after Kafka's acknowledgement).
        while await relay.publish_once():
            pass
        await outbox.insert_many([{"_id": i, "event": e} for i, e in written.items()])
        while await relay.publish_once():
            pass
        assert await outbox.count_documents({}) == 0
        ends = await end_offsets(kafka_bootstrap, topic)
        assert sum(ends.values()) == 120  # every record twice on the topic

        # Consumer A stores part of the topic and dies before committing its offsets.
        first = audit_consumer(settings)
        await first.start()
        taken: list[Any] = []
        while not taken:
            batches = await first.getmany(timeout_ms=2000, max_records=40)
            taken = [r for part in batches.values() for r in part]
        await AuditStoreConsumer(store, first).store_batch(taken)
        await first.stop()  # no commit: its records come again
        assert 0 < await store.records.count_documents({}) <= 40

        # Its restart (same group) redelivers them and goes on to the end.
        await consume_to_the_end(store, audit_consumer(settings), ends)
        # A consumer with no offsets at all (lost, or a new store) reads the whole topic again.
        await consume_to_the_end(store, audit_consumer(settings, group="fresh"), ends)
    finally:
        await producer.stop()

    stored = await store.records.find({}).to_list(None)
    try:
        assert sorted(d["_id"] for d in stored) == sorted(ids)  # each exactly once
        assert all(d["event"] == written[d["_id"]] for d in stored)  # as written
        assert await store.unreadable.count_documents({}) == 0
        [one] = await store.about_subject("client:cl-7")
        assert (one["sub"], one["resource"], one["outcome"]) == ("carl", "/cases/c7", 200)
        assert len(await store.by_agent("carl")) == 60
    finally:
        await mongo.drop_database(settings.database_name)
        await mongo.drop_database(settings.audit_mongo_database)


def _port(offset: int) -> int:
    return int(os.environ.get("CASEWORK_E2E_BASE_PORT", "23000")) + offset


async def test_a_request_whose_record_cannot_be_written_is_refused_and_withheld(
    kafka_bootstrap: str, mongo_url: str, mongo: AsyncMongoClient[Document], tmp_path: Path
) -> None:
    # The service's own reads go straight to the database; its audit outbox goes through a
    # proxy this test cuts: the record cannot be written while the answer could be.
    upstream = urlparse(mongo_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 27017, _port(30))
    await proxy.start()
    settings = audit_settings(
        kafka_bootstrap, mongo_url, jwt_dev_key_path=tmp_path / "dev.pem", relay_poll_interval_s=0.2
    )
    app = create_app(settings)
    proxied: AsyncMongoClient[Document] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{proxy.port}", tz_aware=True, serverSelectionTimeoutMS=1000
    )
    outbox = proxied[settings.database_name][OUTBOX_COLLECTION]
    app.state.runtime.audit.records = outbox
    token = mint_dev_token(settings, "mia", ["site_manager"], ["north"])
    case_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    store = AuditStore(mongo[settings.audit_mongo_database])
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://cases",
                headers={"Authorization": f"Bearer {token}"},
            ) as http,
        ):
            cases: Cases = app.state.cases
            opening = OpenCase(
                case_id=case_id,
                client_id=client_id,
                referral_id=str(uuid.uuid4()),
                site="north",
                opened_by="policy",
                crisis_id=str(uuid.uuid4()),
                client_name="Alex Withheld",
            )
            await cases.open_case(opening, CommitContext())

            before = await http.get(f"/cases/{case_id}")
            answered = 1
            await proxy.cut()
            refused = await http.get(f"/cases/{case_id}")
            await proxy.restore()

            async def answered_again() -> bool:
                nonlocal answered
                if (await http.get(f"/cases/{case_id}")).status_code != 200:
                    return False
                answered += 1
                return True

            await wait_until(answered_again, within=30, every=0.5)
            await wait_until(lambda: _empty(outbox), within=30, every=0.2)  # relayed to the topic

        await store.ensure_indexes()
        await consume_to_the_end(
            store,
            audit_consumer(settings),
            await end_offsets(kafka_bootstrap, f"{settings.namespace}.{AUDIT_TOPIC}"),
        )
        records = await store.about_subject(f"client:{client_id}")
    finally:
        await proxied.close()
        await proxy.stop()
        await mongo.drop_database(settings.database_name)
        await mongo.drop_database(settings.audit_mongo_database)

    assert before.status_code == 200, before.text
    assert before.json()["client_name"] == "Alex Withheld"
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "AuditUnavailable"
    assert refused.headers["Retry-After"] == "1"
    assert "Alex" not in refused.text  # the answer was withheld
    # Every answered read has its record (a write that failed on the client's side may have
    # landed: a record of an answer withheld, never an answer without a record).
    assert answered == 2
    outcomes = [r["outcome"] for r in records]
    assert len(outcomes) >= answered
    assert set(outcomes) == {200}
    assert all(r["sub"] == "mia" and r["purpose"] == "HOPERAT" for r in records)
    assert all("Alex" not in str(r) for r in records)


async def _empty(outbox: Any) -> bool:
    left: int = await outbox.count_documents({})
    return left == 0
