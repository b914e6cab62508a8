"""Reading test topics back from the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord


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
