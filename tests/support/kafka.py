"""Writing events onto test topics as a service's relay would, and reading topics back, on
the real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from casework.events import DomainEvent

from support.envelopes import envelope_of


async def publish(bootstrap: str, topic: str, *events: tuple[DomainEvent, str, int]) -> None:
    """Each (event, stream, version) onto `topic`, enveloped as its service's relay would,
    in order, each acknowledged by every replica."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event, stream, version in events:
            envelope = envelope_of(event, stream, version, datetime.now(UTC))
            await producer.send_and_wait(
                topic, key=envelope.key, value=envelope.value(), headers=envelope.headers()
            )
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, within: float = 20.0
) -> list[ConsumerRecord[Any, Any]]:
    """Every record of `topic` from the beginning, waiting until at least `expect` arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while len(records) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for rs in batch.values():
                records.extend(rs)
        # a moment more, to catch records beyond the expected count (duplicates)
        for rs in (await consumer.getmany(timeout_ms=300)).values():
            records.extend(rs)
    finally:
        await consumer.stop()
    return records
