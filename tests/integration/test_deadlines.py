"""Durable deadlines on the real MongoDB-wire server: fire once with replicas, survive a
crashed replica, cancel, reschedule, retry after a failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from casework.clock import FixedClock
from casework.deadlines import Deadline, Deadlines, DeadlineScheduler
from casework.eventstore import Document
from casework.metrics import Metrics

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.fired: list[str] = []
        self.fail = fail

    async def __call__(self, deadline: Deadline) -> None:
        await asyncio.sleep(0.01)  # let racing replicas interleave
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the aggregate was busy")
        self.fired.append(deadline.key)


def scheduler(deadlines: Deadlines, clock: FixedClock, recorder: Recorder) -> DeadlineScheduler:
    s = DeadlineScheduler(deadlines, clock=clock, metrics=Metrics("test"))
    s.on("contact_overdue", recorder)
    return s


async def test_a_due_deadline_fires_once_with_three_replicas(
    database: AsyncDatabase[Document],
) -> None:
    deadlines = Deadlines(database)
    await deadlines.ensure_indexes()
    clock = FixedClock(T0)
    recorder = Recorder()
    replicas = [scheduler(deadlines, clock, recorder) for _ in range(3)]
    await deadlines.schedule("c1", "contact_overdue", T0 + timedelta(hours=1), {"case_id": "c1"})
    await deadlines.schedule("c2", "contact_overdue", T0 + timedelta(hours=3))

    assert await asyncio.gather(*(r.fire_due() for r in replicas)) == [0, 0, 0]  # not due yet

    clock.advance(timedelta(hours=2))
    fired = await asyncio.gather(*(r.fire_due() for r in replicas))
    assert sum(fired) == 1
    assert recorder.fired == ["c1"]
    assert await deadlines.get("c1") is None
    assert await deadlines.get("c2") is not None
    # a later round fires nothing more
    assert sum(await asyncio.gather(*(r.fire_due() for r in replicas))) == 0


async def test_cancel_and_reschedule(database: AsyncDatabase[Document]) -> None:
    deadlines = Deadlines(database)
    clock = FixedClock(T0)
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


async def test_a_failed_handler_leaves_the_deadline_due_and_it_is_retried(
    database: AsyncDatabase[Document],
) -> None:
    deadlines = Deadlines(database)
    clock = FixedClock(T0 + timedelta(hours=1))
    recorder = Recorder(fail=1)
    s = scheduler(deadlines, clock, recorder)
    await deadlines.schedule("c1", "contact_overdue", T0)
    assert await s.fire_due() == 0
    assert await deadlines.get("c1") is not None
    assert await s.fire_due() == 1
    assert recorder.fired == ["c1"]


async def test_a_replica_that_died_while_firing_is_taken_over_after_the_claim_expires(
    database: AsyncDatabase[Document],
) -> None:
    deadlines = Deadlines(database)
    clock = FixedClock(T0 + timedelta(hours=1))
    await deadlines.schedule("c1", "contact_overdue", T0)
    deadline = await deadlines.get("c1")
    assert deadline is not None
    # a replica claimed it, then its process was killed before the handler finished
    await deadlines.claims.insert_one(
        {"_id": f"c1@{deadline.due_at.isoformat()}", "owner": "dead:0", "claimed_at": clock.now()}
    )
    recorder = Recorder()
    s = scheduler(deadlines, clock, recorder)
    assert await s.fire_due() == 0  # the claim is fresh: someone may still be firing it
    clock.advance(timedelta(minutes=3))
    assert await s.fire_due() == 1
    assert recorder.fired == ["c1"]


async def test_deadlines_survive_a_restart(database: AsyncDatabase[Document]) -> None:
    clock = FixedClock(T0)
    await Deadlines(database).schedule("c1", "contact_overdue", T0 + timedelta(minutes=1))
    # a new process: new objects over the same database
    recorder = Recorder()
    s = scheduler(Deadlines(database), clock, recorder)
    clock.advance(timedelta(minutes=2))
    await s.start()
    try:
        for _ in range(50):
            if recorder.fired:
                break
            await asyncio.sleep(0.05)
    finally:
        await s.stop()
    assert recorder.fired == ["c1"]
