"""The outbox relay against real Kafka and FerretDB: order, redelivery, replicas, wake-up, and
CloudEvents read back by the official SDK."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from cloudevents.core.bindings import kafka as ce_kafka
from pymongo.asynchronous.database import AsyncDatabase

from casework.clock import FixedClock
from casework.envelope import Envelope
from casework.eventstore import CommitContext, ConcurrencyConflict, Document, EventStore
from casework.metrics import Metrics
from casework.relay import OutboxRelay, RelayLease, kafka_producer
from casework.runtime import wait_until

from support.kafka import read_topic
from support.ledger import AmountCredited, LedgerOpened


@pytest.fixture
async def store(database: AsyncDatabase[Document]) -> EventStore:
    s = EventStore(database, source="/casework/test")
    await s.ensure_indexes()
    return s


def relay_for(store: EventStore, bootstrap: str, topic: str, **kwargs: object) -> OutboxRelay:
    return OutboxRelay(store, kafka_producer(bootstrap, "test-relay"), topic, **kwargs)  # type: ignore[arg-type]


async def write_streams(store: EventStore, streams: int, commits: int) -> list[str]:
    ids = [f"ledger-{uuid.uuid4()}" for _ in range(streams)]
    for sid in ids:
        await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    for n in range(1, commits):
        for sid in ids:
            await store.append(sid, n, [AmountCredited(ledger_id=sid, amount=n)])
    return ids


def versions_by_stream(records: list) -> dict[str, list[int]]:  # type: ignore[type-arg]
    seen: dict[str, list[int]] = defaultdict(list)
    for r in records:
        e = Envelope.from_kafka(r.value, r.headers)
        assert r.key == e.subject.encode()
        seen[e.subject].append(e.stream_version)
    return seen


async def test_relay_publishes_every_stream_in_order_and_empties_the_outbox(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    streams = await write_streams(store, streams=5, commits=8)
    metrics = Metrics("test")
    relay = relay_for(store, kafka_bootstrap, topic, metrics=metrics, batch_size=7)
    await relay._producer.start()
    try:
        while await relay.relay_once():
            pass
    finally:
        await relay._producer.stop()

    records = await read_topic(kafka_bootstrap, topic, expect=40)
    seen = versions_by_stream(records)
    assert set(seen) == set(streams)
    assert all(v == list(range(1, 9)) for v in seen.values()), seen
    assert await store.pending.count_documents({}) == 0
    assert await store.commits.count_documents({}) == 40  # the event store keeps everything
    assert metrics.events_published._value.get() == 40


async def test_a_crash_before_marking_published_means_redelivery_not_loss(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    await write_streams(store, streams=2, commits=3)
    relay = relay_for(store, kafka_bootstrap, topic)
    entries = await store.pending.find({}).to_list(None)
    await relay._producer.start()
    try:
        await relay.relay_once()
        # the process died after Kafka acknowledged but before the intents were deleted
        await store.pending.insert_many(entries)
        await relay.relay_once()
    finally:
        await relay._producer.stop()

    records = await read_topic(kafka_bootstrap, topic, expect=12)
    seen = versions_by_stream(records)
    assert all(v == [1, 2, 3, 1, 2, 3] for v in seen.values()), seen


async def test_an_append_wakes_the_relay_long_before_its_poll(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    relay = relay_for(store, kafka_bootstrap, topic, poll_interval=30.0)
    await relay.start()
    try:
        await asyncio.sleep(0.2)  # the first poll round found nothing and now waits 30 s
        sid = f"ledger-{uuid.uuid4()}"
        await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
        records = await read_topic(kafka_bootstrap, topic, expect=1, within=5.0)
    finally:
        await relay.stop()
    assert len(records) == 1


async def test_two_relay_replicas_lose_nothing_and_keep_stream_order(
    store: EventStore, database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> None:
    leases = database["relay_lease"]
    relays = [
        relay_for(store, kafka_bootstrap, topic, lease=RelayLease(leases), poll_interval=0.05)
        for _ in range(2)
    ]
    for relay in relays:
        await relay.start()
    try:
        streams = await write_streams(store, streams=4, commits=10)
        records = await read_topic(kafka_bootstrap, topic, expect=40)
    finally:
        for relay in relays:
            await relay.stop()

    seen = versions_by_stream(records)
    assert set(seen) == set(streams)
    for versions in seen.values():
        first_seen = list(dict.fromkeys(versions))
        assert first_seen == list(range(1, 11))
        # a duplicate may follow, but never a version earlier than one already seen twice
        assert sorted(set(versions)) == list(range(1, 11))


async def test_the_cloudevents_sdk_reads_what_the_relay_wrote(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(
        sid,
        0,
        [LedgerOpened(ledger_id=sid, owner="ann")],
        CommitContext(correlation_id="corr-9", causation_id="cmd-1", site="north"),
    )
    relay = relay_for(store, kafka_bootstrap, topic)
    await relay._producer.start()
    try:
        await relay.relay_once()
    finally:
        await relay._producer.stop()
    (record,) = await read_topic(kafka_bootstrap, topic, expect=1)

    event = ce_kafka.from_binary_event(
        ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
    )
    assert event.get_specversion() == "1.0"
    assert event.get_type() == "casework.test.LedgerOpened.v1"
    assert event.get_source() == "/casework/test"
    assert event.get_subject() == sid
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == {"ledger_id": sid, "owner": "ann"}
    assert event.get_time() is not None
    ext = event.get_extension
    assert (ext("streamversion"), ext("site"), ext("correlationid"), ext("causationid")) == (
        "1",
        "north",
        "corr-9",
        "cmd-1",
    )
    uuid.UUID(event.get_id())


async def test_an_append_that_died_before_its_commit_is_fenced_after_the_grace_period(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    # step 1 of an append happened, then the writer died: an intent, no commit; its clock
    # said it wrote an hour ago, which the relay must not believe
    await store.pending.insert_one(
        {
            "_id": f"{sid}:0000000001",
            "stream_id": sid,
            "first": 1,
            "attempt": "dead-writer",
            "recorded_at": datetime.now(UTC) - timedelta(hours=1),
        }
    )
    other = f"ledger-{uuid.uuid4()}"
    await store.append(other, 0, [LedgerOpened(ledger_id=other, owner="bo")])
    clock = FixedClock(datetime.now(UTC))
    relay = relay_for(store, kafka_bootstrap, topic, grace=timedelta(seconds=10), clock=clock)
    await relay._producer.start()
    try:
        assert await relay.relay_once() == 1  # the other stream is not held up
        assert await store.pending.count_documents({}) == 1  # within grace by the relay's clock
        clock.advance(timedelta(seconds=11))
        assert await relay.relay_once() == 1  # fenced
    finally:
        await relay._producer.stop()
    assert await store.pending.count_documents({}) == 0
    assert (await store.commits.find_one({"_id": f"{sid}:0000000001"}) or {}).get("void")
    # the version is burned: a writer at version 0 conflicts, the next one goes on at 1
    with pytest.raises(ConcurrencyConflict):
        await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    history = await store.load_stream(sid)
    assert (history.version, history.events) == (1, [])
    await store.append(sid, 1, [LedgerOpened(ledger_id=sid, owner="ann")])
    assert [e.stream_version for e in await store.load(sid)] == [2]
    records = await read_topic(kafka_bootstrap, topic, expect=1)
    assert versions_by_stream(records) == {other: [1]}


async def test_a_commit_whose_writer_is_still_at_work_holds_back_its_stream(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    # the writer of version 2 wrote its intent and has not stored its commit yet
    await store.pending.insert_one(
        {"_id": f"{sid}:0000000002", "stream_id": sid, "first": 2, "attempt": "slow"}
    )
    relay = relay_for(store, kafka_bootstrap, topic, grace=timedelta(minutes=5))
    await relay._producer.start()
    try:
        assert await relay.relay_once() == 1  # version 1 goes, version 2 waits
        assert await relay.relay_once() == 0
        await store.commits.insert_one(
            {
                "_id": f"{sid}:0000000002",
                "attempt": "slow",
                "stream_id": sid,
                "first": 2,
                "last": 2,
                "recorded_at": datetime.now(UTC),
                "events": [
                    Envelope(
                        type="casework.test.AmountCredited.v1",
                        source="/casework/test",
                        subject=sid,
                        time=datetime.now(UTC),
                        data={"ledger_id": sid, "amount": 3},
                        stream_version=2,
                    ).to_document()
                ],
            }
        )
        assert await relay.relay_once() == 1
    finally:
        await relay._producer.stop()
    records = await read_topic(kafka_bootstrap, topic, expect=2)
    assert versions_by_stream(records) == {sid: [1, 2]}


async def test_a_stale_writer_conflicts_after_the_winner_was_published(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    relay = relay_for(store, kafka_bootstrap, topic)
    await relay._producer.start()
    try:
        await relay.relay_once()
    finally:
        await relay._producer.stop()
    assert await store.pending.count_documents({}) == 0
    with pytest.raises(ConcurrencyConflict):
        await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="eve")])
    assert await store.pending.count_documents({}) == 0  # the loser left nothing behind


async def test_stream_order_holds_even_when_writers_clocks_disagree(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    await store.append(sid, 1, [AmountCredited(ledger_id=sid, amount=1)])
    # the second writer's clock ran a minute behind the first's
    await store.pending.update_one(
        {"_id": f"{sid}:0000000002"},
        {"$set": {"recorded_at": datetime.now(UTC) - timedelta(minutes=1)}},
    )
    relay = relay_for(store, kafka_bootstrap, topic, batch_size=1)
    await relay._producer.start()
    try:
        while await relay.relay_once():
            pass
    finally:
        await relay._producer.stop()
    records = await read_topic(kafka_bootstrap, topic, expect=2)
    assert versions_by_stream(records) == {sid: [1, 2]}


async def test_the_backlog_counts_intents_and_dates_them_by_the_relays_clock(
    store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    sid = f"ledger-{uuid.uuid4()}"
    await store.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
    clock = FixedClock(datetime.now(UTC) + timedelta(hours=1))  # the writer's clock lags
    relay = relay_for(store, kafka_bootstrap, topic, clock=clock)
    before = await relay.backlog()
    assert before.count == 1
    assert before.oldest_at is not None
    assert before.oldest_at < clock.now()  # by the writer's clock until the relay saw it
    await relay._scan()
    assert await relay.backlog() == type(before)(1, clock.now())
    await relay._producer.start()
    try:
        await relay.relay_once()
    finally:
        await relay._producer.stop()
    assert await relay.backlog() == type(before)(0, None)


class _CutOffProducer(AIOKafkaProducer):  # type: ignore[misc]
    """A real producer whose sends fail as if its broker were unreachable once `cut` is set
    (a partition of this replica alone; the broker stays up for everyone else)."""

    cut = False
    refused = 0

    async def send(self, *args: object, **kwargs: object) -> object:
        if self.cut:
            self.refused += 1
            raise KafkaConnectionError("cut off from the broker (test)")
        return await super().send(*args, **kwargs)


async def test_a_replica_cut_off_from_the_broker_hands_publishing_to_one_that_is_not(
    store: EventStore, database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> None:
    # Replica A takes the lease first, then loses the broker (only A). Replica B must publish
    # what follows; before the fix A kept renewing the lease and nothing was published.
    leases = database["relay_lease"]
    producer = _CutOffProducer(
        bootstrap_servers=kafka_bootstrap, client_id="test-relay-cut-off", acks="all"
    )
    cut_off = OutboxRelay(store, producer, topic, lease=RelayLease(leases), poll_interval=0.05)
    healthy = relay_for(store, kafka_bootstrap, topic, lease=RelayLease(leases), poll_interval=0.05)

    async def a_holds_the_lease() -> bool:
        return cut_off.holds_lease

    await cut_off.start()
    try:
        await wait_until(a_holds_the_lease, within=10)
        await healthy.start()
        producer.cut = True
        streams = await write_streams(store, streams=2, commits=3)
        records = await read_topic(kafka_bootstrap, topic, expect=6, within=30.0)
    finally:
        await healthy.stop()
        await cut_off.stop()

    seen = versions_by_stream(records)
    assert set(seen) == set(streams)
    assert all(sorted(set(v)) == [1, 2, 3] for v in seen.values()), seen
    assert producer.refused >= 1  # A did try, and failed on the broker, before B took over
