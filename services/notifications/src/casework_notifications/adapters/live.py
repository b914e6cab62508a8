"""The live stream of each person's inbox, in this process (server-sent events).

The inbox and alert projections publish here after their write, so a pushed entry is
already readable through `GET /inbox`. A console connected to another replica than the one
holding the projection's partition does not get the push: the stream endpoint also re-reads
the inbox every `resync_s` (an indexed equality query) and sends what it has not sent, so
every entry arrives — at once from the replica that wrote it, within `resync_s` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

QUEUE_SIZE = 256


class LiveHub:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def publish(self, recipient_id: str, message: dict[str, Any]) -> None:
        for queue in list(self._queues.get(recipient_id, ())):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)  # a console that stopped reading resyncs instead

    @contextlib.asynccontextmanager
    async def subscribe(self, recipient_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues[recipient_id].add(queue)
        try:
            yield queue
        finally:
            self._queues[recipient_id].discard(queue)
            if not self._queues[recipient_id]:
                del self._queues[recipient_id]

    def listeners(self, recipient_id: str) -> int:
        return len(self._queues.get(recipient_id, ()))
