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
    """As if the relay had died after Kafka acknowledged but before it deleted the outbox
    entries: every stored commit is in the outbox again, confirmed."""
    commits = await store.commits.find({}).to_list(None)
    await store.outbox.delete_many({})
    await store.confirmations.delete_many({})
    if commits:
        await store.outbox.insert_many(commits)
        await store.confirmations.insert_many([{"_id": c["_id"]} for c in commits])
