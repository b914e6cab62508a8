"""Offline operations on a projection: rebuild from the beginning, replay dead letters
(DESIGN §5).

The rebuild reads every topic the projection consumes from offset 0 up to the end offsets
taken when it starts, applies each event to a fresh collection (`<name>__rebuild`) through
the same runner the service uses (retries, dead letters), then swaps the fresh collection in
and commits the projection's consumer group at those end offsets, so that the service, once
started again, goes on from exactly where the rebuild stopped.

Run it with the service stopped (`python -m casework_<service> rebuild <projection>`):
committing a consumer group's offsets is refused while the group has live members, and the
swap drops the old collection before renaming the new one (FerretDB 1.24 implements
`renameCollection` without `dropTarget`), so readers could briefly see nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from casework.events import EventRegistry
from casework.kafka_clients import kafka_client_options
from casework.projections import (
    ConsumerRunner,
    Projection,
    consumer_group,
    dead_letter_headers,
    dead_letter_topic,
)
from casework.relay import kafka_producer
from casework.runtime import topic_prefix
from casework.settings import Settings


class GroupStillActive(RuntimeError):
    """The projection's consumer group has live members: stop the service first."""


@dataclass
class RebuildReport:
    projection: str
    collection: str
    events: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    end_offsets: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def producer_dead_letter_publisher(
    producer: AIOKafkaProducer, projection: str
) -> Callable[[str, ConsumerRecord[Any, Any], str, int], Any]:
    """Dead letters sent with a plain producer (no broker runs during a rebuild)."""

    async def publish(
        topic: str, record: ConsumerRecord[Any, Any], error: str, attempts: int
    ) -> None:
        headers = dead_letter_headers(record, error, attempts, projection)
        await producer.send_and_wait(
            topic,
            value=record.value,
            key=record.key,
            headers=[(k, v.encode()) for k, v in headers.items()],
        )

    return publish


async def rebuild_projection(
    live: Projection,
    registry: EventRegistry,
    settings: Settings,
    *,
    progress: Callable[[str], None] = print,
    every: int = 1000,
) -> RebuildReport:
    """Rebuild `live`'s read model from its topics; see the module docstring."""
    started = time.perf_counter()
    prefix = topic_prefix(settings)
    group = prefix + consumer_group(settings.service, live.name)
    await _refuse_if_active(settings, group)
    target = live.read_model.collection.name
    fresh_name = f"{target}__rebuild"
    await live.database.drop_collection(fresh_name)
    fresh = type(live)(live.database, fresh_name)
    await fresh.ensure_indexes()
    report = RebuildReport(projection=live.name, collection=target)

    producer = kafka_producer(
        client_id=f"{settings.service}-rebuild", **kafka_client_options(settings)
    )
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    try:
        runner = ConsumerRunner(
            fresh,
            registry,
            service=settings.service,
            publish_dead_letter=producer_dead_letter_publisher(producer, live.name),
            max_attempts=settings.projection_max_attempts,
            prefix=prefix,
        )
        partitions = [
            TopicPartition(topic, p)
            for topic in (prefix + t for t in live.topics)
            for p in sorted(await producer.partitions_for(topic))  # fetches the metadata
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        total = sum(end.values())
        progress(f"rebuilding {live.name} from {total} records on {len(partitions)} partitions")
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        remaining.discard(tp)
                        break
                    outcome = await runner.process(record)
                    report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
                    report.events += 1
                    if report.events % every == 0:
                        progress(f"  {report.events} events")
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        report.end_offsets = {f"{tp.topic}:{tp.partition}": end[tp] for tp in partitions}

        # the swap, then the group's offsets: the service resumes after what was rebuilt
        await live.database.drop_collection(target)
        if report.events or fresh_name in await live.database.list_collection_names():
            await live.database.client.admin.command(
                "renameCollection",
                f"{live.database.name}.{fresh_name}",
                to=f"{live.database.name}.{target}",
            )
        await _commit_group(settings, runner.group_id, {tp: end[tp] for tp in partitions})
    finally:
        await consumer.stop()
        await producer.stop()
    report.seconds = time.perf_counter() - started
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items()))
    progress(
        f"rebuilt {live.name}: {report.events} events in {report.seconds:.1f}s "
        f"({outcomes or 'nothing to apply'})"
    )
    return report


async def _refuse_if_active(settings: Settings, group_id: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group_id])
        groups = response.to_object()["groups"]
    finally:
        await admin.close()
    members = [m for g in groups for m in g["members"]]
    if members:
        raise GroupStillActive(
            f"consumer group {group_id} has {len(members)} live member(s): the service is "
            "running. Stop it, then rebuild (nothing was changed)"
        )


async def _commit_group(
    settings: Settings, group_id: str, offsets: dict[TopicPartition, int]
) -> None:
    committer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
    )
    await committer.start()
    try:
        committer.assign(list(offsets))
        try:
            await committer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        except Exception as exc:
            raise GroupStillActive(
                f"could not commit the offsets of consumer group {group_id} ({exc}); is the "
                "service still running? Stop it and run the rebuild again"
            ) from exc
    finally:
        await committer.stop()


@dataclass
class ReplayReport:
    projection: str
    topic: str
    letters: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


async def replay_dead_letters(
    live: Projection,
    registry: EventRegistry,
    settings: Settings,
    *,
    progress: Callable[[str], None] = print,
) -> ReplayReport:
    """Apply a projection's dead letters again, once the cause is fixed.

    Reads the dead-letter topic from where the last replay stopped (consumer group
    `<group>.replay`) up to its current end, passes each letter through the projection's
    runner again, and commits. A letter that fails again is dead-lettered again (after the
    end taken at the start, so this run does not see it twice). A letter whose stream has
    since moved past it is reported as `unchanged`: version-idempotent documents cannot take
    an older event, so rebuild the projection to include it. Like a rebuild, it refuses to
    run while the service consumes, so that each document keeps one writer.
    """
    prefix = topic_prefix(settings)
    group = prefix + consumer_group(settings.service, live.name)
    await _refuse_if_active(settings, group)
    topic = prefix + dead_letter_topic(settings.service, live.name)
    report = ReplayReport(projection=live.name, topic=topic)
    producer = kafka_producer(
        client_id=f"{settings.service}-replay", **kafka_client_options(settings)
    )
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=f"{group}.replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    try:
        runner = ConsumerRunner(
            live,
            registry,
            service=settings.service,
            publish_dead_letter=producer_dead_letter_publisher(producer, live.name),
            max_attempts=settings.projection_max_attempts,
            prefix=prefix,
        )
        partitions = [
            TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))
        ]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if await consumer.position(tp) < end[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        break
                    outcome = await runner.process(record)
                    report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
                    report.letters += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        await consumer.commit({tp: OffsetAndMetadata(end[tp], "") for tp in partitions})
    finally:
        await consumer.stop()
        await producer.stop()
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items()))
    progress(
        f"replayed {report.letters} dead letters of {live.name} ({outcomes or 'none waiting'})"
    )
    return report
