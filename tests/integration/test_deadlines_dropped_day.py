"""A day collection dropped while a replica reads it is read as empty, never a failed tick.

The scheduler drops a day's queue once its cursor has passed the day, and housekeeping drops
old done records and claims; another replica (or this one's other loop) may be reading that
collection at that moment. On FerretDB over PostgreSQL such a read fails outright (`relation
… does not exist`, SQLSTATE 42P01): a month simulation's tick failed that way in CI, with the
runtime's own scheduler and the test's `fire_due` reading one database. Here the race is run
on the real server, many times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from casework.clock import FixedClock
from casework.deadlines import Deadline, Deadlines, DeadlineScheduler, slot_of
from casework.eventstore import Document
from casework.metrics import Metrics

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROUNDS = 60
PER_DAY = 12


async def _is_ferretdb(database: AsyncDatabase[Document]) -> bool:
    info = await database.client.admin.command("buildInfo")
    return "ferretdbVersion" in info


async def test_a_read_racing_a_drop_fails_on_the_raw_driver_here(
    database: AsyncDatabase[Document],
) -> None:
    """The premise: on this server a plain find racing a drop does fail (on FerretDB; on
    MongoDB it may or may not), so the scheduler test below exercises something real."""
    failures = 0
    for r in range(ROUNDS):
        collection = database[f"race_{r}"]
        await collection.insert_many([{"slot": "s", "n": n} for n in range(50)])

        async def read(collection: AsyncCollection[Document] = collection) -> None:
            nonlocal failures
            for _ in range(10):
                try:
                    await collection.find({"slot": "s"}).to_list(None)
                except OperationFailure:
                    failures += 1
                    return
                await asyncio.sleep(0)

        await asyncio.gather(read(), read(), collection.drop())
    if await _is_ferretdb(database):
        assert failures > 0, "no read ever raced a drop: the scheduler test proves nothing"


async def test_a_scan_racing_the_drop_of_its_day_reads_it_as_empty(
    database: AsyncDatabase[Document],
) -> None:
    clock = FixedClock(T0)
    deadlines = Deadlines(database, clock=clock)
    fired: list[str] = []

    async def handler(deadline: Deadline) -> None:
        fired.append(deadline.key)

    replica = DeadlineScheduler(deadlines, clock=clock, metrics=Metrics("test"))
    replica.on("contact_overdue", handler)
    seen = 0
    for r in range(ROUNDS):
        day = T0 + timedelta(days=r)
        for n in range(PER_DAY):
            due = day + timedelta(minutes=n % 3)
            await deadlines.schedule(f"d{r}-{n}", "contact_overdue", due)
        clock.advance(day + timedelta(minutes=5) - clock.now())
        queue = deadlines.queue(slot_of(day))

        # another replica's cursor passed the day: it drops the queue while this one reads it
        # (at a different moment of the scans each round: the interleavings are spread out)
        async def drop(
            queue: AsyncCollection[Document] = queue, after: float = (r % 20) * 0.002
        ) -> None:
            await asyncio.sleep(after)
            await queue.drop()

        scans = await asyncio.gather(*(replica.scan(clock.now()) for _ in range(4)), drop())
        for scan in scans[:4]:
            keys = {e.deadline.key for e in scan.due}
            assert keys <= {f"d{r}-{n}" for n in range(PER_DAY)}
            seen += len(keys)
    assert seen > 0, "every scan came after the drop: the race was never run"
    assert fired == []
