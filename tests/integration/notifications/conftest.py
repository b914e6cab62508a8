"""An in-process notifications service on the real servers, with its clock under the test's
control and an in-memory directory (the directory's own projections are tested with it)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from casework.clock import Clock, FixedClock
from casework.envelope import Envelope
from casework.eventstore import Document
from casework.runtime import events_topic, topic_prefix
from casework.settings import Settings

from casework_notifications.application.ports import Rota, StaffDirectory
from casework_notifications.bootstrap import Wired, build
from casework_notifications.settings import NotificationsSettings
from support.notifications import FakeDirectory, crisis_directory

SITE = "north"


def notifications_settings(
    kafka_bootstrap: str,
    mongo_url: str,
    namespace: str | None = None,
    jwt_dev_key_path: Path | None = None,
) -> Settings:
    namespace = namespace or f"nt{uuid.uuid4().hex[:10]}"
    more = {"jwt_dev_key_path": jwt_dev_key_path} if jwt_dev_key_path else {}
    return Settings.for_service(
        "notifications",
        0,
        namespace=namespace,
        kafka_bootstrap_servers=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"{namespace}_notifications",
        environment="test",
        relay_poll_interval_s=0.2,
        **more,
    )


@pytest.fixture
def directory() -> FakeDirectory:
    return crisis_directory(SITE, datetime.now(UTC))


@contextlib.asynccontextmanager
async def running(
    kafka_bootstrap: str,
    mongo_url: str,
    own: NotificationsSettings,
    clock: Clock,
    *,
    staff: StaffDirectory | None = None,
    rota: Rota | None = None,
    jwt_dev_key_path: Path | None = None,
    before_start: Callable[[Wired], None] | None = None,
) -> AsyncIterator[Wired]:
    """The service built as production builds it (`bootstrap.build`) in a fresh namespace,
    running on the real servers; its database dropped afterwards. Without `staff`/`rota` it
    keeps its own copy of the directory from the supervision topic; `before_start` may
    change the wiring (a test that reads the audit outbox stops its relay)."""
    settings = notifications_settings(kafka_bootstrap, mongo_url, jwt_dev_key_path=jwt_dev_key_path)
    wired = build(settings, clock=clock, own=own, staff=staff, rota=rota)
    if before_start is not None:
        before_start(wired)
    try:
        async with wired.runtime.running():
            yield wired
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await client.drop_database(settings.database_name)
        await client.close()


@pytest.fixture
async def service(
    kafka_bootstrap: str, mongo_url: str, directory: FakeDirectory
) -> AsyncIterator[Wired]:
    own = NotificationsSettings(deadline_tick_s=0.2)
    clock = FixedClock(datetime.now(UTC))
    async with running(
        kafka_bootstrap, mongo_url, own, clock, staff=directory, rota=directory
    ) as wired:
        yield wired


Publish = Callable[[str, Envelope], object]


@pytest.fixture
async def publish(kafka_bootstrap: str) -> AsyncIterator[Callable[[Wired, str, Envelope], object]]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()

    async def send(wired: Wired, service: str, envelope: Envelope) -> None:
        await producer.send_and_wait(
            topic_prefix(wired.runtime.settings) + events_topic(service),
            envelope.value(),
            key=envelope.key,
            headers=envelope.headers(),
        )

    try:
        yield send
    finally:
        await producer.stop()
