"""Waiting, in integration tests, until services running in-process have nothing in flight.

`Quiescence(bootstrap, runtimes).wait()` returns once, twice in a row with nothing new in
between: every runtime's outbox is empty (the relay published every stored commit), and
every consumer group of every runtime has committed up to the end of each topic it reads
(offsets are committed only after a batch's writes: everything on the topics is applied).
Then what the read models show is a function of what is on the topics, which is what a test
that compares a read model with an outside count of the topics needs. A deadline that fell
due is not in flight until it fires: call the schedulers' `fire_due()` first.

Bounded: raises `AssertionError` naming what was still in flight after `within` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from casework.projections import consumer_group
from casework.runtime import ServiceRuntime, topic_prefix

Ends = dict[TopicPartition, int]


class Quiescence:
    """An admin client and a consumer (for end offsets) kept open across many waits."""

    def __init__(self, bootstrap: str, runtimes: Sequence[ServiceRuntime]) -> None:
        self.runtimes = list(runtimes)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> Quiescence:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._consumer.stop()
        await self._admin.close()

    def _partitions(self, runtime: ServiceRuntime, topic: str) -> list[TopicPartition]:
        count = runtime.settings.kafka_topic_partitions
        return [TopicPartition(topic, p) for p in range(count)]

    async def _ends(self) -> Ends:
        wanted: set[TopicPartition] = set()
        for runtime in self.runtimes:
            prefix = topic_prefix(runtime.settings)
            for handler in runtime.handlers:
                for topic in handler.topics:
                    wanted.update(self._partitions(runtime, prefix + topic))
        return dict(await self._consumer.end_offsets(sorted(wanted)))

    async def _behind(
        self, runtime: ServiceRuntime, handler_name: str, topics: Sequence[str], ends: Ends
    ) -> list[str]:
        prefix = topic_prefix(runtime.settings)
        group = prefix + consumer_group(runtime.settings.service, handler_name)
        committed = await self._admin.list_consumer_group_offsets(group)
        return [
            f"{group} behind on {tp.topic}[{tp.partition}]"
            for topic in topics
            for tp in self._partitions(runtime, prefix + topic)
            if (committed[tp].offset if tp in committed else 0) < ends.get(tp, 0)
        ]

    async def in_flight(self) -> tuple[list[str], Ends]:
        """What is still in flight now (empty: nothing), and the topics' ends it compared
        the consumer groups with."""
        busy: list[str] = []
        for runtime in self.runtimes:
            pending = await runtime.store.pending.count_documents({})
            if pending:
                busy.append(f"{runtime.settings.service}: {pending} commits not yet published")
        if busy:  # the consumers have more to come anyway: spare the broker the questions
            return busy, {}
        ends = await self._ends()
        checks = [
            self._behind(runtime, handler.name, handler.topics, ends)
            for runtime in self.runtimes
            for handler in runtime.handlers
        ]
        for behind in await asyncio.gather(*checks):
            busy.extend(behind)
        return busy, ends

    async def wait(self, within: float = 60.0, every: float = 0.1) -> None:
        """Until nothing is in flight twice in a row with the topics' ends unchanged."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        last_ends: Ends | None = None
        while True:
            busy, ends = await self.in_flight()
            if not busy:
                if ends == last_ends:
                    return
                last_ends = ends
                continue
            last_ends = None
            if loop.time() > deadline:
                raise AssertionError(f"still in flight after {within} s: {busy[:5]}")
            await asyncio.sleep(every)
