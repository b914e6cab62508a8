"""Randomized interleavings of two or three deadline schedulers and a writer on the real
MongoDB-wire server, with crashes.

Every database call and every handler call of a participant waits at a gate; a seeded
arbiter lets exactly one participant take one step at a time, so each seed is one exact
interleaving: replicas working from older snapshots, claims racing, a writer rescheduling and
cancelling while deadlines fire, a replica killed at any step (its claim left behind). Then the
clock moves past the claim TTL and backoffs and one scheduler finishes the work.

Checked for each (deadline, due time): its handler succeeded at most once, plus once for each
replica killed after its handler succeeded and before the fact was stored (the documented
window); every deadline still scheduled, of a known kind, fired; the unknown kind never fired
and stays queued. `DEADLINE_INTERLEAVINGS` sets the number of seeds (default 20;
`DEADLINE_SEED` starts elsewhere).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.clock import FixedClock
from casework.deadlines import Deadline, Deadlines, DeadlineScheduler, identity
from casework.eventstore import Document

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
RUNS = int(os.environ.get("DEADLINE_INTERLEAVINGS", "20"))
FIRST_SEED = int(os.environ.get("DEADLINE_SEED", "0"))

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="final")


class Arbiter:
    """Parks each participant before each step; `step` lets one go."""

    def __init__(self) -> None:
        self.parked: dict[str, asyncio.Future[None]] = {}
        self.changed = asyncio.Event()
        self.steps = 0

    async def gate(self) -> None:
        name = who.get()
        if name == "final":
            return
        future = asyncio.get_running_loop().create_future()
        self.parked[name] = future
        self.changed.set()
        await future


class World:
    """What happened: handler successes per identity and who is between a handler's
    success and storing the fact."""

    def __init__(self, fail_plan: dict[str, int]) -> None:
        self.fail_plan = fail_plan
        self.calls: Counter[str] = Counter()
        self.successes: defaultdict[str, list[str]] = defaultdict(list)
        self.open: set[tuple[str, str]] = set()
        self.excused: Counter[str] = Counter()

    def crashed(self, name: str) -> None:
        for replica, ident in list(self.open):
            if replica == name:
                self.excused[ident] += 1
                self.open.discard((replica, ident))


class GatedCursor:
    def __init__(self, inner: Any, arbiter: Arbiter) -> None:
        self.inner, self.arbiter = inner, arbiter

    async def to_list(self, length: int | None = None) -> list[Document]:
        await self.arbiter.gate()
        return cast(list[Document], await self.inner.to_list(length))

    def __aiter__(self) -> Any:
        async def iterate() -> Any:
            await self.arbiter.gate()
            async for doc in self.inner:
                yield doc

        return iterate()


class GatedCollection:
    def __init__(self, inner: Any, arbiter: Arbiter, world: World) -> None:
        self.inner, self.arbiter, self.world = inner, arbiter, world

    @property
    def name(self) -> str:
        return cast(str, self.inner.name)

    def find(self, *args: Any, **kwargs: Any) -> GatedCursor:
        return GatedCursor(self.inner.find(*args, **kwargs), self.arbiter)

    async def insert_one(self, doc: Document, *args: Any, **kwargs: Any) -> Any:
        await self.arbiter.gate()
        try:
            return await self.inner.insert_one(doc, *args, **kwargs)
        finally:
            if self.name.startswith("deadline_done_") and doc.get("outcome") == "fired":
                self.world.open.discard((who.get(), doc["_id"]))

    def __getattr__(self, method: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            await self.arbiter.gate()
            return await getattr(self.inner, method)(*args, **kwargs)

        return call


class GatedDatabase:
    def __init__(self, inner: AsyncDatabase[Document], arbiter: Arbiter, world: World) -> None:
        self.inner, self.arbiter, self.world = inner, arbiter, world

    def __getitem__(self, name: str) -> GatedCollection:
        return GatedCollection(self.inner[name], self.arbiter, self.world)

    async def list_collection_names(self) -> list[str]:
        await self.arbiter.gate()
        return await self.inner.list_collection_names()


def handler(arbiter: Arbiter, world: World) -> Any:
    async def fire(deadline: Deadline) -> None:
        await arbiter.gate()
        ident = deadline.identity
        world.calls[ident] += 1
        if world.calls[ident] <= world.fail_plan.get(deadline.key, 0):
            raise RuntimeError("the aggregate was busy")
        world.successes[ident].append(who.get())
        world.open.add((who.get(), ident))

    return fire


async def one_run(seed: int, database: AsyncDatabase[Document]) -> int:
    rng = random.Random(seed)
    clock = FixedClock(T0)
    plain = Deadlines(database, clock=clock)
    keys = [f"k{i}" for i in range(rng.randint(4, 7))]
    due = {k: T0 - timedelta(seconds=rng.randint(0, 300)) for k in keys}
    for k in keys:
        await plain.schedule(k, "ok", due[k], {"case_id": k})
    await plain.schedule("odd", "unknown_kind", T0 - timedelta(seconds=30))
    world = World({k: rng.choice([0, 0, 1, 2]) for k in keys})
    arbiter = Arbiter()
    gated_db = cast(AsyncDatabase[Document], GatedDatabase(database, arbiter, world))
    rescheduled_to = T0 + timedelta(seconds=rng.randint(1, 90))

    def replica(name: str) -> asyncio.Task[None]:
        async def run() -> None:
            who.set(name)
            s = DeadlineScheduler(Deadlines(gated_db, clock=clock), clock=clock, concurrency=1)
            s.on("ok", handler(arbiter, world))
            for _ in range(2):
                await s.fire_due()

        return asyncio.create_task(run(), name=name)

    async def writer() -> None:
        who.set("writer")
        w = Deadlines(gated_db, clock=clock)
        await w.schedule(keys[1], "ok", rescheduled_to, {"case_id": keys[1]})
        await w.cancel(keys[2])

    tasks = {f"r{i}": replica(f"r{i}") for i in range(rng.choice([2, 3]))}
    tasks["writer"] = asyncio.create_task(writer())
    restarts = 2
    async with asyncio.timeout(120):
        while True:
            live = {n: t for n, t in tasks.items() if not t.done()}
            while live and not all(n in arbiter.parked for n in live):
                arbiter.changed.clear()
                changed = asyncio.ensure_future(arbiter.changed.wait())
                running = [t for n, t in live.items() if n not in arbiter.parked]
                await asyncio.wait([changed, *running], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                live = {n: t for n, t in tasks.items() if not t.done()}
            if not live:
                break
            name = rng.choice(sorted(live))
            step = arbiter.parked.pop(name)
            arbiter.steps += 1
            if name.startswith("r") and restarts and rng.random() < 0.03:
                tasks[name].cancel()  # killed at this step; its claims stay behind
                await asyncio.gather(tasks[name], return_exceptions=True)
                world.crashed(name)
                restarts -= 1
                tasks[f"r{len(tasks)}"] = replica(f"r{len(tasks)}")
            else:
                step.set_result(None)
    for n, t in tasks.items():
        if not t.cancelled() and t.exception() is not None:
            raise AssertionError(f"seed {seed}: {n} failed") from t.exception()

    # the survivors' work is done; time passes and one scheduler finishes what is left
    final = DeadlineScheduler(plain, clock=clock, concurrency=4)
    final.on("ok", handler(arbiter, world))
    for _ in range(4):
        clock.advance(timedelta(minutes=3))
        await final.fire_due()

    idents = {k: identity(k, due[k]) for k in keys}
    moved = identity(keys[1], rescheduled_to, epoch=1)
    for ident in [*idents.values(), moved]:
        n = len(world.successes[ident])
        assert n <= 1 + world.excused[ident], (seed, ident, world.successes[ident])
    for k in keys:
        if k not in keys[1:3]:
            assert world.successes[idents[k]], (seed, k, "never fired")
    assert world.successes[moved], (seed, "the rescheduled deadline never fired")
    assert not any(i.startswith("odd@") for i in world.successes)
    left = []
    for name in await database.list_collection_names():
        if name.startswith("deadline_queue_"):
            left += [d["key"] async for d in database[name].find({})]
    assert left == ["odd"], (seed, left)
    return arbiter.steps


@pytest.mark.parametrize("batch", range(4))
async def test_randomized_interleavings_fire_each_due_time_once(
    database: AsyncDatabase[Document], batch: int
) -> None:
    steps = []
    seeds = [s for s in range(FIRST_SEED, FIRST_SEED + RUNS) if s % 4 == batch]
    for seed in seeds:
        run_db = database.client[f"{database.name}_{seed}"]
        try:
            steps.append(await one_run(seed, run_db))
        finally:
            await database.client.drop_database(run_db.name)
    assert all(s > 20 for s in steps), steps  # the participants really did interleave
