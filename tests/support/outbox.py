"""Driving the outbox relay by hand in tests."""

from __future__ import annotations

from casework.eventstore import EventStore
from casework.relay import OutboxRelay, kafka_producer


async def relay_all(store: EventStore, bootstrap: str, topic: str) -> None:
    """Publish everything in the outbox to `topic`, as the service's relay would."""
    relay = OutboxRelay(store, kafka_producer(bootstrap, "test"), topic)
    await relay._producer.start()
    try:
        while await relay.relay_once():
            pass
    finally:
        await relay._producer.stop()


async def requeue_everything(store: EventStore) -> None:
    """As if the relay had died after Kafka acknowledged but before it deleted the intents:
    every stored commit has its intent again."""
    commits = await store.commits.find({}, {"events": 0}).to_list(None)
    await store.pending.delete_many({})
    if commits:
        await store.pending.insert_many(
            [
                {
                    "_id": c["_id"],
                    "stream_id": c["stream_id"],
                    "first": c["first"],
                    "attempt": c.get("attempt"),
                    "recorded_at": c["recorded_at"],
                }
                for c in commits
            ]
        )
