"""The event store and relay under stalls and crashes at every step, on the real FerretDB
(issue 6 §1; harness: tests/support/faults.py).

Invariant checked after every scenario and every randomized run: every stored commit is
published at least once with the event ids that were stored; nothing that was not stored is
published; within a stream, events are first published in version order.

The randomized runs are seeded (`CASEWORK_FAULT_SEED`, default 0; run i uses seed + i) and
their number is `CASEWORK_FAULT_RUNS` (default 40, 20-30 s here). The database
I/O decides the interleavings, so a seed fixes the faults planned, not the exact schedule.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.clock import FixedClock
from casework.events import DomainEvent
from casework.eventstore import ConcurrencyConflict, Document, EventStore
from casework.relay import OutboxRelay

from support.faults import (
    Crash,
    FakeKafka,
    Plan,
    SkewedClock,
    Verdict,
    check_invariant,
    faulty_store,
    settle,
)
from support.ledger import AmountCredited, LedgerOpened

GRACE = timedelta(seconds=10)
BASE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def events_for(stream: str, version: int, n: int = 1) -> list[DomainEvent]:
    first: list[DomainEvent] = [LedgerOpened(ledger_id=stream, owner="ann")] if version == 0 else []
    return (first + [AmountCredited(ledger_id=stream, amount=k) for k in range(n)])[:n]


async def stream_version(store: EventStore, stream: str) -> int:
    load_stream = getattr(store, "load_stream", None)
    if load_stream is not None:
        return int((await load_stream(stream)).version)
    return len(await store.load(stream))  # designs without voids


class Rig:
    """Actors over one real database, a fake Kafka log, and the relays' clock."""

    def __init__(self, database: AsyncDatabase[Document], plan: Plan) -> None:
        self.database = database
        self.plan = plan
        self.kafka = FakeKafka()
        self.clock = FixedClock(BASE)

    def writer(self, name: str, skew: timedelta = timedelta(0)) -> EventStore:
        return faulty_store(self.database, self.plan, name, SkewedClock(self.clock.now, skew))

    def relay(self, name: str, batch_size: int = 100, grace: timedelta = GRACE) -> OutboxRelay:
        return OutboxRelay(
            faulty_store(self.database, self.plan, name),
            self.kafka.producer(self.plan, name),  # type: ignore[arg-type]
            "events",
            clock=self.clock,
            grace=grace,
            batch_size=batch_size,
        )

    async def drain(self) -> None:
        """After the faults: a healthy relay, long past any grace, settles everything."""
        self.plan.release_all()
        relay = self.relay("drain", grace=timedelta(0))
        for _ in range(20):
            self.clock.advance(GRACE * 2)
            await relay.relay_once()
            if not await self.database["events_pending"].count_documents({}):
                return
        raise AssertionError("intents left after draining")

    async def verdict(self, streams: list[str]) -> Verdict:
        return await check_invariant(self.database["events"], streams, self.kafka.log)


def stalled(rig: Rig, actor: str, point: str) -> asyncio.Event:
    rig.plan.scripted[(actor, point)] = "stall"
    return rig.plan.reached(actor, point)


async def first_of(task: asyncio.Task[object], event: asyncio.Event) -> None:
    """Wait until the task is done or the event is set (a scripted stall was reached)."""
    waiter = asyncio.ensure_future(event.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def assert_holds(verdict: Verdict) -> None:
    assert verdict.holds, verdict


# The three ways issue 6 found the old design to break, each as a scenario.


async def test_a_writer_stalled_past_the_grace_period_never_stores_an_unpublished_commit(
    database: AsyncDatabase[Document],
) -> None:
    rig = Rig(database, Plan())
    sid = f"ledger-{uuid.uuid4()}"
    # the writer's clock runs 30 s behind the relay's, which must not matter either
    slow = rig.writer("slow", skew=timedelta(seconds=-30))
    at_commit = stalled(rig, "slow", "events.insert_one:before")
    append = asyncio.create_task(slow.append(sid, 0, events_for(sid, 0)))
    await first_of(append, at_commit)  # intent written; the commit insert held (a GC pause)
    relay = rig.relay("relay")
    await relay.relay_once()
    rig.clock.advance(GRACE + timedelta(seconds=1))
    await relay.relay_once()  # grace is over by the relay's own clock
    rig.plan.held("slow").release()
    try:
        await append
        stored_by_slow = True
    except ConcurrencyConflict:
        stored_by_slow = False
    # the stream goes on; whatever the slow writer's fate, it is the same for the consumers
    fresh = rig.writer("fresh")
    version = await stream_version(fresh, sid)
    await fresh.append(sid, version, events_for(sid, version))
    await rig.drain()
    verdict = await rig.verdict([sid])
    assert_holds(verdict)
    assert verdict.stored_commits == (2 if stored_by_slow else 1)


async def test_a_loser_of_a_write_race_is_never_published_after_a_relay_crash(
    database: AsyncDatabase[Document],
) -> None:
    rig = Rig(database, Plan())
    sid = f"ledger-{uuid.uuid4()}"
    await rig.writer("winner").append(sid, 0, events_for(sid, 0))
    # the relay dies at its last step (deleting what it published), after Kafka acknowledged
    collections = [c.name for c in vars(rig.writer("probe")).values() if hasattr(c, "name")]
    last = "events_committed" if "events_committed" in collections else "events_pending"
    rig.plan.scripted[("relay", f"{last}.delete_many:before")] = "crash"
    relay = rig.relay("relay")
    with pytest.raises(Crash):
        await relay.relay_once()
    # a writer that loaded the stream before the winner committed tries the same version
    loser = rig.writer("loser")
    at_commit = stalled(rig, "loser", "events.insert_one:before")
    append = asyncio.create_task(loser.append(sid, 0, events_for(sid, 0)))
    await first_of(append, at_commit)
    restarted = rig.relay("relay-2")
    for _ in range(3):
        await restarted.relay_once()
    rig.plan.release_all()
    with pytest.raises(ConcurrencyConflict):
        await append
    await rig.drain()
    assert_holds(await rig.verdict([sid]))


async def test_a_loser_never_deletes_the_winners_intent(
    database: AsyncDatabase[Document],
) -> None:
    rig = Rig(database, Plan())
    sid = f"ledger-{uuid.uuid4()}"
    first = rig.writer("first")
    at_commit = stalled(rig, "first", "events.insert_one:before")
    first_append = asyncio.create_task(first.append(sid, 0, events_for(sid, 0)))
    await first_of(first_append, at_commit)
    relay = rig.relay("relay")
    await relay.relay_once()
    rig.clock.advance(GRACE + timedelta(seconds=1))
    await relay.relay_once()  # the first writer's write is settled as abandoned
    # a second writer of the same version, held after its commit, before anything else
    second = rig.writer("second")
    done = stalled(rig, "second", "events_committed.insert_one:before")
    second_append = asyncio.create_task(second.append(sid, 0, events_for(sid, 0)))
    await first_of(second_append, done)
    rig.plan.held("first").release()  # the first writer wakes: its commit insert fails
    with pytest.raises(ConcurrencyConflict):
        await first_append
    rig.plan.release_all()
    results = await asyncio.gather(second_append, return_exceptions=True)
    assert all(r is None or isinstance(r, (list, ConcurrencyConflict)) for r in results), results
    third = rig.writer("third")
    version = await stream_version(third, sid)
    await third.append(sid, version, events_for(sid, version))
    await rig.drain()
    assert_holds(await rig.verdict([sid]))


# Randomized runs: several writers racing on a few streams, relays running concurrently,
# crashes and stalls at every step, writers' clocks off by up to ±30 s.


def plan_for(seed: int) -> tuple[Plan, random.Random]:
    rng = random.Random(seed)
    plan = Plan(rng=rng, crash=rng.choice([0.02, 0.05, 0.1]), stall=rng.choice([0.03, 0.08]))
    return plan, rng


async def one_run(
    database: AsyncDatabase[Document], seed: int, plan: Plan, rng: random.Random
) -> Verdict:
    rig = Rig(database, plan)
    streams = [f"ledger-{seed}-{uuid.uuid4().hex[:8]}" for _ in range(rng.randint(1, 3))]

    async def writer(name: str) -> None:
        skew = timedelta(seconds=rng.uniform(-30, 30))
        loaded: dict[str, int] = {}
        for _ in range(rng.randint(2, 4)):
            store = rig.writer(name, skew)  # after a crash, a new process takes its place
            stream = rng.choice(streams)
            try:
                if stream in loaded and rng.random() < 0.3:
                    version = loaded[stream]  # what it loaded earlier: maybe stale by now
                else:
                    version = loaded[stream] = await stream_version(store, stream)
                await store.append(stream, version, events_for(stream, version, rng.randint(1, 2)))
            except (Crash, ConcurrencyConflict):
                pass

    async def relay(name: str) -> None:
        batch = rng.randint(1, 6)
        replica = rig.relay(name, batch)
        for _ in range(rng.randint(3, 8)):
            try:
                await replica.relay_once()
            except Crash:
                replica = rig.relay(name, batch)  # restarted: it remembers nothing

    actors = [writer(f"writer-{w}") for w in range(rng.randint(2, 4))]
    actors += [relay(f"relay-{r}") for r in range(rng.choice([1, 1, 2]))]
    tasks = [asyncio.create_task(a) for a in actors]

    def time_passes() -> None:
        rig.clock.advance(timedelta(seconds=rng.uniform(0, 12)))

    await settle(tasks, plan, rng, time_passes)
    await asyncio.gather(*tasks)  # an unexpected exception fails the run
    await rig.drain()
    return await rig.verdict(streams)


RUNS = int(os.environ.get("CASEWORK_FAULT_RUNS", "40"))
SEED = int(os.environ.get("CASEWORK_FAULT_SEED", "0"))


@pytest.mark.timeout(max(120, 5 * RUNS))
async def test_randomized_faults_never_lose_invent_or_reorder(
    database: AsyncDatabase[Document],
) -> None:
    runs, seed = RUNS, SEED
    await EventStore(database, source="/casework/test").ensure_indexes()
    totals = {"stored": 0, "published": 0, "crashes": 0, "stalls": 0}
    for run in range(seed, seed + runs):
        plan, rng = plan_for(run)
        try:
            verdict = await asyncio.wait_for(one_run(database, run, plan, rng), 60)
        except TimeoutError:
            held = [(st.actor, st.point) for st in plan.stalls if not st.released.is_set()]
            pytest.fail(f"seed {run} did not finish in 60 s; held: {held}; faults: {plan.trace}")
        assert verdict.holds, f"seed {run}: {verdict}; faults: {plan.trace}"
        totals["stored"] += verdict.stored_commits
        totals["published"] += verdict.published_records
        totals["crashes"] += sum(1 for t in plan.trace if t[2] == "crash")
        totals["stalls"] += sum(1 for t in plan.trace if t[2] == "stall")
        if (run - seed + 1) % 250 == 0:
            print(f"fault runs: {run - seed + 1} of {runs} done: {totals}", flush=True)
    print(f"fault runs: seeds {seed}..{seed + runs - 1}: {totals}")
    # the runs did exercise the store: commits stored and faults injected
    assert totals["stored"] > runs
    assert totals["crashes"] > runs / 4
    assert totals["stalls"] > runs / 4
