"""The consumer-lag gauge never fails a batch that was handled: a partition revoked by a
rebalance while the batch ran is skipped (aiokafka's `highwater` raises for it)."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from casework.envelope import Envelope
from casework.events import DomainEvent, EventRegistry
from casework.metrics import Metrics
from casework.projections import ConsumerRunner, EventHandler


class Nothing(EventHandler):
    name = "nothing"
    topics = ("t",)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        return False


class Consumer:
    """aiokafka's consumer as far as the gauge asks it."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, partition: TopicPartition) -> int | None:
        assert partition in self.assigned, "Partition is not assigned"  # as aiokafka does
        return 10


class Message:
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer


def record(partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord("t", partition, offset, 0, 0, b"k", b"v", None, 1, 1, ())


def runner(metrics: Metrics) -> ConsumerRunner:
    return ConsumerRunner(
        Nothing(),
        EventRegistry(),
        service="s",
        publish_dead_letter=lambda *a: None,
        metrics=metrics,
    )


def lag(metrics: Metrics, partition: int) -> float | None:
    return metrics.registry.get_sample_value(
        "casework_consumer_lag_messages",
        {"projection": "nothing", "topic": "t", "partition": str(partition)},
    )


def test_a_revoked_partition_is_skipped_and_an_assigned_one_reported() -> None:
    metrics = Metrics("s")
    consumer = Consumer({TopicPartition("t", 0)})
    runner(metrics)._record_consumer_lag(Message(consumer), record(1, 3))  # revoked meanwhile
    assert lag(metrics, 1) is None
    runner(metrics)._record_consumer_lag(Message(consumer), record(0, 3))
    assert lag(metrics, 0) == 6
