"""Durable deadlines on the real MongoDB-wire server: each (deadline, due time) fires at most
once to completion with two or three replicas — including a replica that works from an older
snapshot — and a stuck deadline never delays another. No sleeps: gates (asyncio Events) and a
fixed clock force the interleavings."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from casework.clock import FixedClock
from casework.deadlines import Deadline, Deadlines, DeadlineScheduler, identity
from casework.eventstore import Document
from casework.metrics import Metrics

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class Recorder:
    """A handler: counts completed firings; fails the first `fail` calls; can be held at a
    gate (`hold`) until the test releases it."""

    def __init__(self, fail: int = 0) -> None:
        self.fired: list[str] = []
        self.calls = 0
        self.fail = fail
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, deadline: Deadline) -> None:
        self.calls += 1
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the aggregate was busy")
        self.fired.append(deadline.key)


class Gate:
    """Stops a replica before it claims: `reached` is set when it arrives, and it goes on
    once `release` is set."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()


class GatedInsert:
    """A collection whose `insert_one` waits at a gate."""

    def __init__(self, inner: Any, gate: Gate) -> None:
        self.inner, self.gate = inner, gate

    async def insert_one(self, doc: Document, *args: Any, **kwargs: Any) -> Any:
        self.gate.reached.set()
        await self.gate.release.wait()
        return await self.inner.insert_one(doc, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def scheduler(
    deadlines: Deadlines, clock: FixedClock, recorder: Recorder, **options: Any
) -> DeadlineScheduler:
    s = DeadlineScheduler(deadlines, clock=clock, metrics=Metrics("test"), **options)
    s.on("contact_overdue", recorder)
    return s


def gated_replica(
    database: AsyncDatabase[Document], clock: FixedClock, recorder: Recorder
) -> tuple[DeadlineScheduler, Gate]:
    """A replica whose claim insert waits at a gate: it has read the queue (its snapshot)
    and is about to claim."""
    deadlines = Deadlines(database, clock=clock)
    gate = Gate()
    claims = deadlines.claims
    deadlines.claims = lambda due_at: GatedInsert(claims(due_at), gate)  # type: ignore[method-assign]
    return scheduler(deadlines, clock, recorder), gate


async def test_a_replica_with_an_older_snapshot_does_not_fire_it_again(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    await deadlines.schedule("c1", "contact_overdue", T0 + timedelta(minutes=5), {"case_id": "c1"})
    clock.advance(timedelta(hours=1))
    recorder = Recorder()
    first = scheduler(deadlines, clock, recorder)
    second, gate = gated_replica(database, clock, recorder)

    late = asyncio.create_task(second.fire_due())
    await gate.reached.wait()  # the second replica saw c1 due and is about to claim it
    assert await first.fire_due() == 1  # the first fires it and releases its claim
    gate.release.set()
    assert await late == 0  # the second claims it now, from its old snapshot
    assert recorder.fired == ["c1"]
    assert await deadlines.get("c1") is None


async def test_three_replicas_with_older_snapshots_fire_it_once(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    await deadlines.schedule("c1", "contact_overdue", T0 + timedelta(minutes=5))
    await deadlines.schedule("c2", "contact_overdue", T0 + timedelta(hours=3))
    clock.advance(timedelta(hours=1))
    recorder = Recorder()
    first = scheduler(deadlines, clock, recorder)
    second, gate2 = gated_replica(database, clock, recorder)
    third, gate3 = gated_replica(database, clock, recorder)

    late2 = asyncio.create_task(second.fire_due())
    late3 = asyncio.create_task(third.fire_due())
    await gate2.reached.wait()
    await gate3.reached.wait()
    assert await first.fire_due() == 1
    gate3.release.set()
    assert await late3 == 0
    gate2.release.set()
    assert await late2 == 0
    assert recorder.fired == ["c1"]
    # and all three together, later: c2 once, c1 never again
    clock.advance(timedelta(hours=3))
    replicas = [scheduler(deadlines, clock, recorder) for _ in range(3)]
    assert sum(await asyncio.gather(*(r.fire_due() for r in replicas))) == 1
    assert sorted(recorder.fired) == ["c1", "c2"]
    assert sum(await asyncio.gather(*(r.fire_due() for r in replicas))) == 0


async def test_an_older_snapshot_does_not_retry_a_failed_deadline_before_its_backoff(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    await deadlines.schedule("c1", "contact_overdue", T0)
    recorder = Recorder(fail=1)
    first = scheduler(deadlines, clock, recorder)
    second, gate = gated_replica(database, clock, recorder)

    late = asyncio.create_task(second.fire_due())
    await gate.reached.wait()
    assert await first.fire_due() == 0  # it failed, and moved 5 s ahead
    gate.release.set()
    assert await late == 0
    assert recorder.calls == 1
    clock.advance(timedelta(seconds=5))
    assert await second.fire_due() == 1
    assert recorder.calls == 2
    assert recorder.fired == ["c1"]


async def test_failing_and_unknown_deadlines_do_not_delay_a_due_one(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    for i in range(100):  # due earlier than the good one, and always failing
        await deadlines.schedule(
            f"bad{i}", "flaky", T0 - timedelta(minutes=30) + timedelta(seconds=i)
        )
    for i in range(50):  # due earlier too, of a kind nobody handles
        await deadlines.schedule(f"odd{i}", "from_a_newer_release", T0 - timedelta(minutes=20))
    await deadlines.schedule("good", "contact_overdue", T0 - timedelta(minutes=1))
    recorder = Recorder()
    failing = Recorder(fail=10**6)
    metrics = Metrics("test")
    s = DeadlineScheduler(deadlines, clock=clock, metrics=metrics, concurrency=16)
    s.on("contact_overdue", recorder)
    s.on("flaky", failing)

    assert await s.fire_due() == 1
    assert recorder.fired == ["good"]
    assert failing.calls == 100
    unknown = metrics.registry.get_sample_value(
        "casework_deadlines_unknown_kind_total", {"kind": "from_a_newer_release"}
    )
    assert unknown == 50
    # the next tick does not spend itself on them again: they back off, or are parked
    clock.advance(timedelta(seconds=1))
    await deadlines.schedule("good2", "contact_overdue", T0)
    assert await s.fire_due() == 1
    assert failing.calls == 100
    assert recorder.fired == ["good", "good2"]
    clock.advance(timedelta(seconds=5))
    assert await s.fire_due() == 0
    assert failing.calls == 200  # retried once each, after their first backoff
    clock.advance(timedelta(minutes=5))  # the parked ones are looked at again
    await s.fire_due()
    unknown = metrics.registry.get_sample_value(
        "casework_deadlines_unknown_kind_total", {"kind": "from_a_newer_release"}
    )
    assert unknown == 100


async def test_backoff_is_capped_exponential_and_survives_a_restart(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    await deadlines.schedule("c1", "contact_overdue", T0)
    recorder = Recorder(fail=3)
    options = {"backoff_base": timedelta(seconds=5), "backoff_cap": timedelta(seconds=15)}
    assert await scheduler(deadlines, clock, recorder, **options).fire_due() == 0
    waits = []
    for _ in range(3):  # each attempt by a new process: the attempt count is stored
        calls, waited = recorder.calls, 0
        while recorder.calls == calls:
            clock.advance(timedelta(seconds=1))
            waited += 1
            await scheduler(Deadlines(database, clock=clock), clock, recorder, **options).fire_due()
        waits.append(waited)
    assert waits == [5, 10, 15]
    assert recorder.fired == ["c1"]


async def test_cancel_and_reschedule(database: AsyncDatabase[Document]) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    recorder = Recorder()
    s = scheduler(deadlines, clock, recorder)
    await deadlines.schedule("met", "contact_overdue", T0 + timedelta(minutes=5))
    await deadlines.schedule("moved", "contact_overdue", T0 + timedelta(minutes=5))
    await deadlines.cancel("met")  # the contact was logged
    await deadlines.schedule("moved", "contact_overdue", T0 + timedelta(days=1))  # risk fell
    clock.advance(timedelta(hours=1))
    assert await s.fire_due() == 0
    clock.advance(timedelta(days=1))
    assert await s.fire_due() == 1
    assert recorder.fired == ["moved"]
    # scheduled again for a new due time, it fires again; for the same one, it does not
    await deadlines.schedule("moved", "contact_overdue", T0 + timedelta(days=1))
    assert await s.fire_due() == 0
    await deadlines.schedule("moved", "contact_overdue", T0 + timedelta(days=2))
    assert await deadlines.get("moved") is not None
    clock.advance(timedelta(days=1))
    assert await s.fire_due() == 1
    assert recorder.fired == ["moved", "moved"]


async def test_moved_away_and_back_it_fires_at_that_time(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    recorder = Recorder()
    s = scheduler(deadlines, clock, recorder)
    await deadlines.schedule("c1", "contact_overdue", T0 + timedelta(hours=1))
    await deadlines.schedule("c1", "contact_overdue", T0 + timedelta(days=7))
    await deadlines.schedule("c1", "contact_overdue", T0 + timedelta(hours=1))
    clock.advance(timedelta(hours=2))
    assert await s.fire_due() == 1
    clock.advance(timedelta(days=7))
    assert await s.fire_due() == 0
    assert recorder.fired == ["c1"]


async def test_a_replica_that_died_while_firing_is_taken_over_after_the_claim_expires(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0 + timedelta(hours=1))
    deadlines = Deadlines(database, clock=clock)
    await deadlines.schedule("c1", "contact_overdue", T0)
    recorder = Recorder()
    recorder.hold = asyncio.Event()
    dying = scheduler(deadlines, clock, recorder)
    firing = asyncio.create_task(dying.fire_due())
    await recorder.entered.wait()
    firing.cancel()  # its process is killed while the handler runs
    await asyncio.gather(firing, return_exceptions=True)
    recorder.hold = None

    other = scheduler(Deadlines(database, clock=clock), clock, recorder)
    assert await other.fire_due() == 0  # the claim is fresh: someone may still be firing it
    clock.advance(timedelta(minutes=3))
    assert await other.fire_due() == 1
    assert recorder.fired == ["c1"]
    # two replicas noticing the expired claim at once: one takes over (one insert wins)
    await deadlines.schedule("c2", "contact_overdue", clock.now())
    await deadlines.claims(clock.now()).insert_one(
        {"_id": f"{identity('c2', clock.now())}#0", "owner": "dead:0", "claimed_at": clock.now()}
    )
    clock.advance(timedelta(minutes=3))
    replicas = [scheduler(deadlines, clock, recorder) for _ in range(3)]
    assert sum(await asyncio.gather(*(r.fire_due() for r in replicas))) == 1
    assert Counter(recorder.fired) == {"c1": 1, "c2": 1}


async def test_a_restart_does_not_fire_again(database: AsyncDatabase[Document]) -> None:
    clock = FixedClock(T0)
    await Deadlines(database, clock=clock).schedule(
        "c1", "contact_overdue", T0 + timedelta(minutes=1)
    )
    clock.advance(timedelta(minutes=2))
    recorder = Recorder()
    s = scheduler(Deadlines(database, clock=clock), clock, recorder)
    await s.start()
    try:
        await recorder.entered.wait()
    finally:
        await s.stop()
    for _ in range(2):  # a new process: new objects over the same database
        restarted = scheduler(Deadlines(database, clock=clock), clock, recorder)
        assert await restarted.fire_due() == 0
        clock.advance(timedelta(minutes=5))
    assert recorder.fired == ["c1"]


async def test_a_tick_reads_only_the_minutes_it_looks_at(
    database: AsyncDatabase[Document],
) -> None:
    """Far-away deadlines are in other collections: a tick does not read them, and the
    cursor moves on past empty minutes."""
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    for i in range(20):
        await deadlines.schedule(f"far{i}", "contact_overdue", T0 + timedelta(days=30 + i))
    await deadlines.schedule("near", "contact_overdue", T0 + timedelta(minutes=10))
    recorder = Recorder()
    s = scheduler(deadlines, clock, recorder)
    clock.advance(timedelta(minutes=11))
    scan = await s.scan(clock.now())
    assert [e.deadline.key for e in scan.due] == ["near"]
    assert await s.fire_due() == 1
    clock.advance(timedelta(minutes=10))
    assert await s.fire_due() == 0
    cursor = await deadlines.cursor.find_one({"_id": "cursor"})
    assert cursor is not None
    assert cursor["slot"] == (clock.now() - timedelta(minutes=2)).strftime("%Y%m%dT%H%M")
    assert len((await s.scan(clock.now())).due) == 0


async def test_housekeeping_counts_pending_and_drops_old_records_only_when_nothing_refers_to_them(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    await deadlines.schedule("c1", "contact_overdue", T0)
    await deadlines.schedule("c2", "contact_overdue", T0)
    recorder = Recorder()
    metrics = Metrics("test")
    s = DeadlineScheduler(deadlines, clock=clock, metrics=metrics)
    s.on("contact_overdue", recorder)
    recorder.fail = 0
    assert await s.fire_due() == 2
    await deadlines.schedule("c3", "contact_overdue", T0)
    failing = Recorder(fail=10**6)
    s.on("contact_overdue", failing)
    assert await s.fire_due() == 0  # c3 keeps failing: its entry (due that day) stays

    clock.advance(timedelta(days=31))
    await s.housekeeping(clock.now())
    assert metrics.registry.get_sample_value("casework_deadlines_pending") == 1
    names = await database.list_collection_names()
    assert "deadline_done_20261128" in names  # c3 is due that day and not done: kept

    await deadlines.cancel("c3")
    await s.fire_due()  # its moved entry is found superseded and deleted
    await s.housekeeping(clock.now())
    assert metrics.registry.get_sample_value("casework_deadlines_pending") == 0
    names = await database.list_collection_names()
    assert "deadline_done_20261128" not in names
    assert "deadline_claims_20261128" not in names
    # nothing left could fire c1 again; the emptied day's queue goes once the cursor passes
    assert await s.fire_due() == 0
    assert sorted(recorder.fired) == ["c1", "c2"]
    assert "deadline_queue_20261128" not in await database.list_collection_names()


async def test_a_minute_with_more_than_a_page_is_fired_whole_and_waiting_ones_do_not_spin(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    for i in range(12):  # all in the minute 09:00, later within it
        await deadlines.schedule(f"c{i}", "contact_overdue", T0 + timedelta(seconds=30 + i))
    recorder = Recorder()
    s = scheduler(deadlines, clock, recorder, page=5)
    assert await s.fire_due() == 0  # a full page, none due: one pass, no busy loop
    clock.advance(timedelta(seconds=45))
    assert await s.fire_due() == 12
    assert sorted(recorder.fired) == sorted(f"c{i}" for i in range(12))
