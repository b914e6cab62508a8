"""A fault-injection harness around the real event store and relay (tests/integration/
test_outbox_faults.py).

Every actor (a writer process, a relay replica) gets its own `EventStore` over the same real
database, whose collections are wrapped so that each call passes a *fault point* before and
after it: `<collection>.<operation>:before` / `:after`. The relay's producer is a recording
fake of Kafka (`FakeKafka`) with the points `send:before`, `send:after` (the record is in the
log, the caller still fails) and `ack` (the record is in the log, its acknowledgement fails).
At a fault point a `Plan` may let the call go on, **crash** (raise `Crash`: the actor
abandons what it was doing, as a killed process would, with the operation not done at
`:before` and done at `:after`), or **stall** it until the test releases it: stalls are
asyncio Events the test (or the random driver) sets, never sleeps.

The harness is written against the collections an `EventStore` instance holds, whatever
their names, so the same scenarios run against earlier designs of the store.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from casework.envelope import Envelope
from casework.eventstore import Document, EventStore


class Crash(Exception):
    """The actor died here (injected)."""


@dataclass
class Stall:
    """An actor held at a fault point until `release`."""

    actor: str
    point: str
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


class Plan:
    """Decides what happens at each fault point.

    `scripted` maps (actor, point) to "crash" or "stall" for the first time that actor
    reaches that point; otherwise, with `rng`, a crash or a stall happens with the given
    probabilities. `reached(actor, point)` is an Event set when the actor gets there.
    """

    def __init__(
        self,
        *,
        scripted: dict[tuple[str, str], str] | None = None,
        rng: random.Random | None = None,
        crash: float = 0.0,
        stall: float = 0.0,
    ) -> None:
        self.scripted = dict(scripted or {})
        self.rng = rng
        self.crash = crash
        self.stall = stall
        self.enabled = True
        self.stalls: list[Stall] = []
        self.changed = asyncio.Event()
        self._reached: dict[tuple[str, str], asyncio.Event] = defaultdict(asyncio.Event)
        self.trace: list[tuple[str, str, str]] = []

    def reached(self, actor: str, point: str) -> asyncio.Event:
        return self._reached[(actor, point)]

    def held(self, actor: str) -> Stall:
        """The stall that holds `actor` now."""
        (stall,) = [s for s in self.stalls if s.actor == actor and not s.released.is_set()]
        return stall

    def release_all(self) -> None:
        """No more faults; every held actor goes on."""
        self.enabled = False
        for s in self.stalls:
            s.release()

    async def point(self, actor: str, point: str) -> None:
        self._reached[(actor, point)].set()
        self.changed.set()  # progress: the driver looks again at who is held
        action = self.scripted.pop((actor, point), None)
        if action is None and self.enabled and self.rng is not None:
            roll = self.rng.random()
            action = (
                "crash"
                if roll < self.crash
                else "stall"
                if roll < self.crash + self.stall
                else None
            )
        if action is None:
            return
        self.trace.append((actor, point, action))
        if action == "crash":
            raise Crash(f"{actor} at {point}")
        stall = Stall(actor, point)
        self.stalls.append(stall)
        self.changed.set()
        await stall.released.wait()
        self.changed.set()


class _FaultyCursor:
    def __init__(self, plan: Plan, actor: str, name: str, cursor: Any) -> None:
        self._plan, self._actor, self._name, self._cursor = plan, actor, name, cursor

    def sort(self, *args: Any, **kwargs: Any) -> _FaultyCursor:
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    async def _iterate(self) -> AsyncIterator[Document]:
        await self._plan.point(self._actor, f"{self._name}.find:before")
        async for doc in self._cursor:
            yield doc
        await self._plan.point(self._actor, f"{self._name}.find:after")

    def __aiter__(self) -> AsyncIterator[Document]:
        return self._iterate()

    async def to_list(self, length: int | None = None) -> list[Document]:
        return [d async for d in self]


class FaultyCollection:
    """A collection whose every call passes the plan's fault points."""

    def __init__(self, inner: AsyncCollection[Document], plan: Plan, actor: str) -> None:
        self._inner, self._plan, self._actor = inner, plan, actor
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._inner, attr)
        if attr == "find":

            def find(*args: Any, **kwargs: Any) -> _FaultyCursor:
                return _FaultyCursor(self._plan, self._actor, self.name, target(*args, **kwargs))

            return find
        if not callable(target) or attr.startswith("_") or attr in ("create_index",):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._plan.point(self._actor, f"{self.name}.{attr}:before")
            result = await target(*args, **kwargs)
            await self._plan.point(self._actor, f"{self.name}.{attr}:after")
            return result

        return call


def faulty_store(
    database: AsyncDatabase[Document], plan: Plan, actor: str, clock: Any = None
) -> EventStore:
    """An `EventStore` over `database` for one actor, every collection wrapped."""
    store = EventStore(database, source="/casework/test", clock=clock)
    for attr, value in list(vars(store).items()):
        if isinstance(value, AsyncCollection):
            setattr(store, attr, FaultyCollection(value, plan, actor))
    return store


class SkewedClock:
    """A writer's clock, off by `skew` from the relay's."""

    def __init__(self, base: Callable[[], datetime], skew: timedelta) -> None:
        self._base, self._skew = base, skew

    def now(self) -> datetime:
        return self._base() + self._skew


class FakeKafka:
    """One log of everything any producer sent, as Kafka would keep it."""

    def __init__(self) -> None:
        self.log: list[Envelope] = []

    def producer(self, plan: Plan, actor: str) -> FakeProducer:
        return FakeProducer(self, plan, actor)


class FakeProducer:
    """The part of `AIOKafkaProducer` the relay uses, with fault points."""

    def __init__(self, kafka: FakeKafka, plan: Plan, actor: str) -> None:
        self._kafka, self._plan, self._actor = kafka, plan, actor

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        await self._plan.point(self._actor, "send:before")
        envelope = Envelope.from_kafka(value, headers)
        assert key == envelope.subject.encode()
        self._kafka.log.append(envelope)
        await self._plan.point(self._actor, "send:after")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            await self._plan.point(self._actor, "ack")
            future.set_result(None)
        except Crash as exc:
            future.set_exception(exc)
        return future


@dataclass
class Verdict:
    """What the invariant check found (empty lists: it holds)."""

    lost: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    stored_commits: int = 0
    published_records: int = 0

    @property
    def holds(self) -> bool:
        return not (self.lost or self.invented or self.out_of_order)


async def check_invariant(
    commits: AsyncCollection[Document], streams: list[str], published: list[Envelope]
) -> Verdict:
    """Every stored commit published with its stored ids; nothing unstored published; each
    stream's events first published in version order."""
    verdict = Verdict()
    stored: dict[str, tuple[str, int]] = {}
    for stream in streams:
        async for commit in commits.find({"stream_id": stream}):
            if commit.get("void"):
                continue
            verdict.stored_commits += 1
            for e in commit["events"]:
                stored[e["id"]] = (e["subject"], e["version"])
    mine = [e for e in published if e.subject in streams]
    verdict.published_records = len(mine)
    sent = {e.id: (e.subject, e.stream_version) for e in mine}
    verdict.lost = [f"{s}@{v}" for i, (s, v) in stored.items() if sent.get(i) != (s, v)]
    verdict.invented = [f"{s}@{v}" for i, (s, v) in sent.items() if stored.get(i) != (s, v)]
    first_seen: dict[str, list[int]] = defaultdict(list)
    ids: set[str] = set()
    for e in mine:
        if e.id not in ids:
            ids.add(e.id)
            first_seen[e.subject].append(e.stream_version)
    for stream, versions in first_seen.items():
        if any(a >= b for a, b in pairwise(versions)):
            verdict.out_of_order.append(f"{stream}: {versions}")
    return verdict


async def settle(
    tasks: list[asyncio.Task[Any]], plan: Plan, rng: random.Random, on_release: Callable[[], None]
) -> None:
    """Drive the actors until all are done: whenever there are as many held stalls as live
    actors (all may be waiting on one), or at random when an actor passes a fault point,
    release one held stall (calling `on_release` first: the test moves the relays' clocks
    there). Every fault point passed wakes the driver, so a state where every actor waits on
    a stall is always seen. No sleeps: progress comes from the actors' own I/O."""
    while True:
        live = [t for t in tasks if not t.done()]
        if not live:
            return
        held = [s for s in plan.stalls if not s.released.is_set()]
        if held and (len(held) >= len(live) or rng.random() < 0.1):
            on_release()
            rng.choice(held).release()
        plan.changed.clear()
        waiters: list[Awaitable[Any]] = [*live, plan.changed.wait()]
        _, pending = await asyncio.wait(
            [asyncio.ensure_future(w) for w in waiters], return_when=asyncio.FIRST_COMPLETED
        )
        for p in pending:
            if p not in tasks:
                p.cancel()
