"""Projections: Kafka consumer groups that build read models in MongoDB (DESIGN §5).

- Each projection is one FastStream batch subscriber with its own consumer group. Auto-commit
  is off; offsets are committed after the batch's read-model writes (ack after processing).
- Idempotent: a read-model document remembers, per source stream, the last version applied
  to it; a redelivered or older event changes nothing.
- One writer per document: a document is keyed by an aggregate, so the partition that owns
  the aggregate's stream owns the document.
- Poison events: after `max_attempts` failures the record goes to the dead-letter topic with
  the error in its headers, and the projection moves on.
- Rebuild: replays the topics from the beginning into a fresh collection and swaps it in.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from aiokafka import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.clock import Clock, SystemClock
from casework.envelope import Envelope, MalformedEnvelope, Position
from casework.events import DomainEvent, EventRegistry, UnknownEventType
from casework.eventstore import Document
from casework.metrics import Metrics

log = logging.getLogger(__name__)

APPLIED = "_applied"
"""Field of a read-model document: {source stream id: last version applied}."""


class ReadModel:
    """A collection of read-model documents, each updated idempotently by stream version."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def apply(
        self,
        doc_id: str,
        envelope: Envelope,
        change: Callable[[Document], Document | None],
    ) -> bool:
        """Apply `change` to the document unless this event (or a later one) already was.

        `change` gets a copy of the current document (`{"_id": doc_id}` when new) and returns
        the new one, or None to delete it. Returns False for a duplicate.
        """
        for attempt in range(3):
            current = await self.collection.find_one({"_id": doc_id})
            doc: Document = dict(current) if current else {"_id": doc_id}
            applied: dict[str, int] = dict(doc.get(APPLIED, {}))
            if applied.get(envelope.subject, 0) >= envelope.stream_version:
                return False
            new = change(doc)
            if new is None:
                await self.collection.delete_one({"_id": doc_id})
                return True
            applied[envelope.subject] = envelope.stream_version
            new[APPLIED] = applied
            new["_id"] = doc_id
            try:
                await self.collection.replace_one({"_id": doc_id}, new, upsert=True)
                return True
            except DuplicateKeyError:
                # FerretDB upserts read then write: a racing upsert of a new document can
                # fail this way (NOTES.md); the next round sees the document and goes on.
                if attempt == 2:
                    raise
        return False

    async def get(self, doc_id: str) -> Document | None:
        """One document without the bookkeeping field."""
        doc = await self.collection.find_one({"_id": doc_id}, {APPLIED: 0})
        return dict(doc) if doc else None


class EventHandler(ABC):
    """Something fed by a consumer group: a projection or a policy."""

    name: ClassVar[str]
    """Short name, e.g. `caseload`; part of the consumer group and dead-letter topic names."""
    topics: ClassVar[tuple[str, ...]]

    @abstractmethod
    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        """React to one event; return False when it changed nothing (duplicate or irrelevant).

        Must be idempotent: the same event can arrive more than once.
        """

    async def ensure_indexes(self) -> None:  # noqa: B027 - optional hook
        """Indexes the handler's queries need (none by default)."""


class Projection(EventHandler):
    """A read model fed by events; its collection is named after it unless told otherwise."""

    def __init__(self, database: AsyncDatabase[Document], collection: str | None = None) -> None:
        self.database = database
        self.read_model = ReadModel(database[collection or self.name])


def dead_letter_topic(service: str, projection: str) -> str:
    """Where a projection's poison events go."""
    return f"casework.{service}.{projection}.dlq"


def consumer_group(service: str, projection: str) -> str:
    """The consumer group of a projection."""
    return f"casework.{service}.{projection}"


class ConsumerRunner:
    """Feeds one projection or policy from Kafka: decode, apply with retries, dead-letter, ack."""

    def __init__(
        self,
        handler: EventHandler,
        registry: EventRegistry,
        *,
        service: str,
        publish_dead_letter: Callable[[str, ConsumerRecord[Any, Any], str, int], Any],
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        max_attempts: int = 5,
        retry_delay: float = 0.05,
        prefix: str = "",
    ) -> None:
        self.handler = handler
        self._prefix = prefix  # the namespace: before every topic and group name
        self._registry = registry
        self.service = service
        self._publish_dead_letter = publish_dead_letter
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay

    @property
    def group_id(self) -> str:
        return self._prefix + consumer_group(self.service, self.handler.name)

    @property
    def dead_letter_topic(self) -> str:
        return self._prefix + dead_letter_topic(self.service, self.handler.name)

    async def process(self, record: ConsumerRecord[Any, Any]) -> str:
        """Handle one record.

        Returns the outcome: `applied`, `unchanged` (a duplicate, an older version, or an
        event the handler ignores), `skipped` (a type unknown here) or `dead_lettered`.
        """
        name = self.handler.name
        try:
            envelope = Envelope.from_kafka(record.value, record.headers or ())
            envelope = replace(
                envelope, position=Position(record.topic, record.partition, record.offset)
            )
        except MalformedEnvelope as exc:
            await self._dead_letter(record, f"MalformedEnvelope: {exc}", 1)
            return "dead_lettered"
        if envelope.type not in self._registry:
            outcome = "skipped"  # an event this version of the service does not know
        else:
            attempt = 0
            while True:
                attempt += 1
                try:
                    event = self._registry.parse(envelope.type, dict(envelope.data))
                    changed = await self.handler.handle(envelope, event)
                    outcome = "applied" if changed else "unchanged"
                    break
                except UnknownEventType:
                    outcome = "skipped"
                    break
                except Exception as exc:
                    if attempt >= self._max_attempts:
                        log.exception(
                            "projection %s gives up on %s v%s after %d attempts",
                            name,
                            envelope.subject,
                            envelope.stream_version,
                            attempt,
                        )
                        detail = "".join(traceback.format_exception_only(exc)).strip()
                        await self._dead_letter(record, detail, attempt)
                        return "dead_lettered"
                    await asyncio.sleep(self._retry_delay * 2 ** (attempt - 1))
            if self._metrics:
                lag = (self._clock.now() - envelope.time).total_seconds()
                self._metrics.projection_lag.labels(name).observe(max(lag, 0.0))
        if self._metrics:
            self._metrics.events_projected.labels(name, outcome).inc()
        return outcome

    def _record_consumer_lag(self, message: Any, last: ConsumerRecord[Any, Any]) -> None:
        consumer = getattr(message, "consumer", None)
        if self._metrics is None or consumer is None or not hasattr(consumer, "highwater"):
            return  # the in-memory test broker has no real consumer
        highwater = consumer.highwater(TopicPartition(last.topic, last.partition))
        if highwater is not None:
            self._metrics.consumer_lag.labels(
                self.handler.name, last.topic, str(last.partition)
            ).set(max(highwater - last.offset - 1, 0))

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], error: str, attempts: int
    ) -> None:
        await self._publish_dead_letter(self.dead_letter_topic, record, error, attempts)
        if self._metrics:
            self._metrics.dead_letters.labels(self.handler.name).inc()
            self._metrics.events_projected.labels(self.handler.name, "dead_lettered").inc()

    def subscribe(self, broker: KafkaBroker, *, max_records: int = 500) -> Any:
        """Register this runner as a batch subscriber on the broker; returns the subscriber."""

        async def on_batch(message: KafkaMessage) -> None:
            raw = message.raw_message
            records = raw if isinstance(raw, tuple) else (raw,)
            for record in records:
                await self.process(record)
            self._record_consumer_lag(message, records[-1])

        subscriber = broker.subscriber(
            *(self._prefix + t for t in self.handler.topics),
            group_id=self.group_id,
            auto_offset_reset="earliest",
            batch=True,
            max_records=max_records,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            title=f"{self.group_id}",
            description=f"`{self.handler.name}` of the {self.service} service",
        )
        subscriber(on_batch)
        return subscriber


def dead_letter_headers(
    record: ConsumerRecord[Any, Any], error: str, attempts: int, projection: str
) -> dict[str, str]:
    """The original headers plus where the record came from and why it failed."""
    headers = {
        k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
        for k, v in (record.headers or ())
    }
    headers.update(
        {
            "x-dlq-projection": projection,
            "x-dlq-topic": record.topic,
            "x-dlq-partition": str(record.partition),
            "x-dlq-offset": str(record.offset),
            "x-dlq-attempts": str(attempts),
            "x-dlq-error": error[:4000],
        }
    )
    return headers


def broker_dead_letter_publisher(
    broker: KafkaBroker, projection: str
) -> Callable[[str, ConsumerRecord[Any, Any], str, int], Any]:
    """Publishes dead letters through the service's broker, awaiting Kafka's ack."""

    async def publish(
        topic: str, record: ConsumerRecord[Any, Any], error: str, attempts: int
    ) -> None:
        await broker.publish(
            record.value or b"",
            topic=topic,
            key=record.key,
            headers=dead_letter_headers(record, error, attempts, projection),
        )

    return publish


def runners(
    projections: Sequence[EventHandler],
    registry: EventRegistry,
    broker: KafkaBroker,
    *,
    service: str,
    metrics: Metrics | None = None,
    max_attempts: int = 5,
    prefix: str = "",
) -> list[ConsumerRunner]:
    """One runner per projection or policy, dead-lettering through `broker`."""
    return [
        ConsumerRunner(
            p,
            registry,
            service=service,
            publish_dead_letter=broker_dead_letter_publisher(broker, p.name),
            metrics=metrics,
            max_attempts=max_attempts,
            prefix=prefix,
        )
        for p in projections
    ]
