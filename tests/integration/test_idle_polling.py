"""Idle polling that costs in proportion to work, on the real Kafka and FerretDB: the relay, the
audit relay and the deadline scheduler back off while they find nothing, and still meet their
stated bounds for work no wake told them about (a second process's commit, record or
deadline); a commit of this process costs the relay one scan, not two, and keeps stream order.

Counting is done by wrapping the real collections (every call still reaches the server). The
waits below are the bounds under test, measured by the loop's clock, never sleeps that let a
race pass.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from casework.audit import AuditRelay
from casework.deadlines import Deadline, Deadlines, DeadlineScheduler
from casework.envelope import Envelope
from casework.eventstore import Document, EventStore
from casework.metrics import Metrics
from casework.relay import OutboxRelay, kafka_producer
from casework.runtime import wait_until

from support.kafka import read_topic
from support.ledger import AmountCredited, LedgerOpened


class Counted:
    """A collection whose `find` and `find_one` calls are counted (everything else passes
    through)."""

    def __init__(self, inner: AsyncCollection[Document]) -> None:
        self.inner = inner
        self.finds = 0

    def find(self, *args: Any, **kwargs: Any) -> Any:
        self.finds += 1
        return self.inner.find(*args, **kwargs)

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        self.finds += 1
        return await self.inner.find_one(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def now() -> float:
    return asyncio.get_running_loop().time()


async def idle_for(seconds: float) -> None:
    """Let the loop under test run on its own for a while: the time measured, not a race."""
    await asyncio.sleep(seconds)


# -- the outbox relay ----------------------------------------------------------------------


async def stores(database: AsyncDatabase[Document]) -> tuple[EventStore, EventStore, Counted]:
    """This process's store (its relay is woken by its appends), another process's store on
    the same database (no wake reaches this relay), and the counted intents collection."""
    here = EventStore(database, source="/casework/test")
    await here.ensure_indexes()
    there = EventStore(database, source="/casework/test")
    counted = Counted(here.pending)
    here.pending = counted  # type: ignore[assignment]
    return here, there, counted


async def test_an_idle_relay_backs_off_and_still_publishes_another_process_commit_within_its_bound(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> None:
    here, there, intents = await stores(database)
    relay = OutboxRelay(
        here,
        kafka_producer(kafka_bootstrap, "test-relay"),
        topic,
        poll_interval=0.05,
        idle_poll_max=0.8,
    )
    await relay.start()
    try:
        await idle_for(3.0)
        # fixed polling every 0.05 s would have scanned ~60 times; backing off 0.1, 0.2,
        # 0.4, 0.8, 0.8, 0.8: about 7
        assert intents.finds <= 10, intents.finds
        sid = f"ledger-{uuid.uuid4()}"
        await there.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
        stored_at = now()
        await wait_until(lambda: _no_intents(here), within=5.0, every=0.02)
        published_after = now() - stored_at
    finally:
        await relay.stop()
    records = await read_topic(kafka_bootstrap, topic, expect=1)
    assert [Envelope.from_kafka(r.value, r.headers).subject for r in records] == [sid]
    # the bound: idle_poll_max, plus the round's own work (two scans, a read, a produce)
    assert published_after <= 0.8 + 0.5, published_after


async def _no_intents(store: EventStore) -> bool:
    counted: Counted = store.pending  # type: ignore[assignment]
    return await counted.inner.count_documents({}) == 0


async def test_a_commit_of_this_process_costs_one_scan_and_waits_for_an_earlier_unwoken_one(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> None:
    here, there, intents = await stores(database)
    relay = OutboxRelay(here, kafka_producer(kafka_bootstrap, "test-relay"), topic)
    await relay._producer.start()
    here.set_on_commit(relay.wake)  # as `start` does; the rounds are driven by hand here
    try:
        # this process's commits, one at a time: each round settles it with one scan
        sid = f"ledger-{uuid.uuid4()}"
        await here.append(sid, 0, [LedgerOpened(ledger_id=sid, owner="ann")])
        for n in range(1, 5):
            await here.append(sid, n, [AmountCredited(ledger_id=sid, amount=n)])
            before = intents.finds
            assert await relay.relay_once() >= 1
            assert intents.finds - before == 1, "a local commit is ripe at the first scan"
        assert await relay.relay_once() == 0  # nothing left: the first commit went too

        # another process's commit (v1, no wake), then this process's next one (v2, woken):
        # the local one is ripe, the other is not yet; the stream waits for the second scan
        # and goes out in order
        other = f"ledger-{uuid.uuid4()}"
        await there.append(other, 0, [LedgerOpened(ledger_id=other, owner="bo")])
        await here.append(other, 1, [AmountCredited(ledger_id=other, amount=1)])
        before = intents.finds
        assert await relay.relay_once() == 2
        assert intents.finds - before == 2
    finally:
        await relay._producer.stop()
    records = await read_topic(kafka_bootstrap, topic, expect=7)
    versions: dict[str, list[int]] = {}
    for r in records:
        e = Envelope.from_kafka(r.value, r.headers)
        versions.setdefault(e.subject, []).append(e.stream_version)
    assert versions == {sid: [1, 2, 3, 4, 5], other: [1, 2]}


# -- the audit relay -----------------------------------------------------------------------


def audit_record(record_id: str) -> Document:
    return {"_id": record_id, "event": {"resourceType": "AuditEvent", "id": record_id}}


async def audit_ids(bootstrap: str, topic: str, expect: int) -> list[str]:
    return [json.loads(r.value)["id"] for r in await read_topic(bootstrap, topic, expect=expect)]


async def test_one_read_serves_a_woken_audit_round(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> None:
    outbox = Counted(database[f"audit_outbox_{uuid.uuid4().hex[:6]}"])
    # a long poll: every read below is a woken round's
    relay = AuditRelay(
        outbox,  # type: ignore[arg-type]
        kafka_producer(kafka_bootstrap, "test-audit-relay"),
        topic,
        poll_interval=30.0,
    )
    await relay.start()
    try:
        await wait_until(lambda: _reads(outbox, 1), within=5.0, every=0.01)  # the first round
        for n in range(5):
            before = outbox.finds
            # this process's record: the insert, then the wake, as `AuditTrail` does
            await outbox.inner.insert_one(audit_record(f"here-{n}"))
            relay.wake.set()
            await wait_until(published(relay, n + 1), within=5.0, every=0.01)
            # checked in the same step as the count it follows: a relay that read again at
            # once after publishing (the old loop) has already called `find` by now
            assert outbox.finds - before == 1, "one read per woken round"
    finally:
        await relay.stop()
    assert sorted(await audit_ids(kafka_bootstrap, topic, expect=5)) == [
        f"here-{n}" for n in range(5)
    ]


async def test_an_idle_audit_relay_backs_off_and_publishes_another_replica_record_in_bound(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str
) -> None:
    outbox = Counted(database[f"audit_outbox_{uuid.uuid4().hex[:6]}"])
    relay = AuditRelay(
        outbox,  # type: ignore[arg-type]
        kafka_producer(kafka_bootstrap, "test-audit-relay"),
        topic,
        poll_interval=0.05,
        idle_poll_max=0.8,
    )
    await relay.start()
    try:
        await idle_for(3.0)
        assert outbox.finds <= 10, outbox.finds  # ~60 at a fixed 0.05 s
        # another replica's record: no wake reaches this relay
        await outbox.inner.insert_one(audit_record("there"))
        stored_at = now()
        await wait_until(lambda: _published(relay, 1), within=5.0, every=0.01)
        published_after = now() - stored_at
    finally:
        await relay.stop()
    assert await audit_ids(kafka_bootstrap, topic, expect=1) == ["there"]
    assert published_after <= 0.8 + 0.5, published_after


async def _published(relay: AuditRelay, n: int) -> bool:
    return relay.published >= n


def published(relay: AuditRelay, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return relay.published >= n

    return check


async def _reads(counted: Counted, n: int) -> bool:
    return counted.finds >= n


# -- the deadline scheduler ----------------------------------------------------------------


class Fired:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    async def __call__(self, deadline: Deadline) -> None:
        self.at[deadline.key] = now()


def wall(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_an_idle_scheduler_backs_off_and_fires_another_replica_deadline_within_its_bound(
    database: AsyncDatabase[Document],
) -> None:
    here = Deadlines(database)
    counted = Counted(database["deadline_cursor"])
    here.cursor = counted  # type: ignore[assignment]  # one cursor read per round
    there = Deadlines(database)  # another replica's: its schedules wake nobody here
    fired = Fired()
    scheduler = DeadlineScheduler(here, metrics=Metrics("test"), tick=0.05, idle_tick_max=0.8)
    scheduler.on("reminder", fired)
    await scheduler.start()
    try:
        await idle_for(3.0)
        rounds = counted.finds  # find_one counts as a find
        assert rounds <= 10, rounds  # ~60 rounds at a fixed 0.05 s tick
        due = wall(1.0)
        await there.schedule("other-replica", "reminder", due)
        loop_due = now() + (due - datetime.now(UTC)).total_seconds()
        await wait_until(lambda: _fired(fired, "other-replica"), within=5.0, every=0.02)
    finally:
        await scheduler.stop()
    late = fired.at["other-replica"] - loop_due
    assert late <= 0.8 + 0.5, late


async def test_a_deadline_this_process_schedules_wakes_a_backed_off_scheduler_at_its_due_time(
    database: AsyncDatabase[Document],
) -> None:
    deadlines = Deadlines(database)
    fired = Fired()
    # backed off to a minute: only the wake can fire on time
    scheduler = DeadlineScheduler(deadlines, metrics=Metrics("test"), tick=0.05, idle_tick_max=60)
    scheduler.on("reminder", fired)
    await scheduler.start()
    try:
        await idle_for(1.5)  # 0.1 + 0.2 + 0.4 + 0.8: now waiting 1.6 s, then 3.2 s, ...
        lateness = []
        for n, ahead in enumerate((0.7, 1.3, 0.0)):
            due = wall(ahead)
            await deadlines.schedule(f"local-{n}", "reminder", due)
            loop_due = now() + (due - datetime.now(UTC)).total_seconds()
            await wait_until(was_fired(fired, f"local-{n}"), within=10.0, every=0.02)
            lateness.append(fired.at[f"local-{n}"] - loop_due)
            await idle_for(0.5)  # let it back off again before the next
    finally:
        await scheduler.stop()
    assert all(-0.05 <= late <= 0.5 for late in lateness), lateness


async def _fired(fired: Fired, key: str) -> bool:
    return key in fired.at


def was_fired(fired: Fired, key: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return key in fired.at

    return check
