"""In-process services on one test namespace of the real broker and MongoDB-wire server: their
settings, another service's events published as its relay would, the databases dropped after.

Shared by the supervision integration tests (and any test that runs a service in-process and
feeds it another service's topic): each used to carry its own copy of these few lines.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.runtime import events_topic, topic_prefix
from casework.settings import Settings


def namespaced_settings(
    service: str,
    namespace: str,
    kafka_bootstrap: str,
    mongo_url: str,
    *,
    partitions: int = 2,
    relay_poll_interval_s: float = 0.2,
) -> Settings:
    """A service's settings on the test's namespace (topics and consumer groups prefixed,
    database `<namespace>_<service>`). Two partitions per topic by default: enough for two
    replicas to split them, and supervision has some fifteen consumer groups, each with its
    dead-letter topic, on a broker whose open files are finite."""
    return Settings.for_service(
        service,
        0,
        namespace=namespace,
        kafka_bootstrap_servers=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"{namespace}_{service}",
        environment="test",
        relay_poll_interval_s=relay_poll_interval_s,
        kafka_topic_partitions=partitions,
    )


@dataclass
class Publisher:
    """Publishes other services' events on the namespace's topics as their relays would:
    binary-mode CloudEvents, keyed by stream, each stream's versions counted from 1."""

    producer: AIOKafkaProducer
    settings: Settings
    site: str = "north"
    versions: dict[str, int] = field(default_factory=dict)
    published: list[tuple[str, Envelope]] = field(default_factory=list)
    """(topic, envelope) of everything published, in order."""

    def topic(self, service: str) -> str:
        return topic_prefix(self.settings) + events_topic(service)

    async def publish(
        self,
        service: str,
        stream: str,
        event: DomainEvent,
        *,
        time: datetime | None = None,
        version: int | None = None,
    ) -> Envelope:
        """`event` on `stream` of `service`'s topic, at the stream's next version (or
        `version`), stamped `time` (now by default)."""
        if version is None:
            version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        envelope = Envelope(
            type=event.type_name(),
            source=f"/casework/{service}",
            subject=stream,
            time=time or datetime.now(UTC),
            data=event.model_dump(mode="json"),
            stream_version=version,
            site=self.site,
        )
        await self.send(self.topic(service), envelope)
        return envelope

    async def send(self, topic: str, envelope: Envelope) -> None:
        """An envelope on `topic` as it is (a redelivery, when it was sent before)."""
        self.published.append((topic, envelope))
        await self.producer.send_and_wait(
            topic, envelope.value(), key=envelope.key, headers=envelope.headers()
        )


@contextlib.asynccontextmanager
async def publisher(settings: Settings, site: str = "north") -> AsyncIterator[Publisher]:
    """A started `Publisher` on the broker and namespace of `settings`, stopped after."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        yield Publisher(producer, settings, site)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def dropped_afterwards(mongo_url: str, *settings: Settings) -> AsyncIterator[None]:
    """The services' databases are dropped when the block ends, however it ends."""
    try:
        yield
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        try:
            for each in settings:
                await client.drop_database(each.database_name)
        finally:
            await client.close()
