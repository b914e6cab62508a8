"""Benchmark of the deadline scheduler with 100k pending deadlines.

Seeds `--pending` deadlines (direct `insert_many`: a queue entry and the per-key document of
each, due over the next 30 days), then measures, each beside its raw limit taken in the same
run on the same servers:

- tick: one look at the queue with nothing due (`DeadlineScheduler.scan`), beside one raw
  equality query on today's queue collection (the least a tick can read); and today's tick
  shape (`count_documents({})` + the due range query, sorted, limit 100, on the collection
  of all pending deadlines) measured on the same data;
- burst: `--burst` deadlines already due, fired by `--replicas` schedulers, fired/s beside raw
  `insert_one` (the done record) + `delete_one` (the entry) of the same documents at the same
  concurrency;
- steady: deadlines falling due at `--rate`/s while the scheduler loop runs with its normal
  tick; lateness p50/p99 = handler call time - due time.

Run `make bench`, or `uv run python bench/deadlines.py --help`. It prints a table (progress on
stderr) and, with `--json FILE`, writes the figures too. It talks only to the server named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from casework.deadlines import (
    Deadline,
    Deadlines,
    DeadlineScheduler,
    Entry,
    entry_document,
    slot_of,
)
from casework.eventstore import Document

from report import Row, against, measured, progress, server_options, write_json


def entry_doc(key: str, kind: str, due_at: datetime, at: datetime) -> Document:
    """A queue entry as `Deadlines.schedule` writes it."""
    deadline = Deadline(key, kind, due_at, {"case_id": key})
    return entry_document(Entry(deadline.identity, at, 0, deadline))


def ms(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


class Bench:
    def __init__(self, args: argparse.Namespace, database: AsyncDatabase[Document]) -> None:
        self.args = args
        self.database = database
        self.deadlines = Deadlines(database)
        self.rows: list[Row] = []
        self.fired_at: dict[str, float] = {}
        self.expected, self.all_fired = 0, asyncio.Event()

    async def handler(self, deadline: Deadline) -> None:
        self.fired_at[deadline.key] = time.time()
        if len(self.fired_at) >= self.expected:
            self.all_fired.set()

    def scheduler(self) -> DeadlineScheduler:
        s = DeadlineScheduler(
            self.deadlines, concurrency=self.args.concurrency, tick=self.args.tick
        )
        s.on("contact_overdue", self.handler)
        return s

    async def run(self) -> list[Row]:
        await self.seed()
        await self.tick()
        await self.burst()
        await self.steady()
        return self.rows

    async def insert(self, docs: list[Document]) -> None:
        by_collection: dict[str, list[Document]] = {}
        for d in docs:
            by_collection.setdefault(self.deadlines.queue(d["slot"]).name, []).append(d)
        for name, batch in by_collection.items():
            for i in range(0, len(batch), 1000):
                await self.database[name].insert_many(batch[i : i + 1000], ordered=False)

    async def seed(self) -> None:
        n = self.args.pending
        progress(f"seeding {n} pending deadlines over the next 30 days")
        rng = random.Random(7)
        now = datetime.now(UTC)
        entries, pointers = [], []
        for i in range(n):
            due = ms(now + timedelta(hours=1) + timedelta(seconds=rng.uniform(0, 30 * 86400)))
            entries.append(entry_doc(f"pending-{i}", "contact_overdue", due, due))
            pointers.append(
                {
                    "_id": f"pending-{i}",
                    "kind": "contact_overdue",
                    "due_at": due,
                    "payload": {"case_id": f"pending-{i}"},
                    "entry_slot": slot_of(due),
                }
            )
        started = time.perf_counter()
        await self.insert(entries)
        for i in range(0, n, 1000):
            await self.deadlines.collection.insert_many(pointers[i : i + 1000], ordered=False)
        progress(f"seeded in {time.perf_counter() - started:.0f} s")

    async def tick(self) -> None:
        s = self.scheduler()
        now = datetime.now(UTC)
        await s.scan(now)  # the cursor is set once
        latencies = []
        started = time.perf_counter()
        for _ in range(self.args.ticks):
            t = time.perf_counter()
            scan = await s.scan(datetime.now(UTC))
            latencies.append(time.perf_counter() - t)
            assert not scan.due
        tick = measured(
            f"tick, nothing due, {self.args.pending // 1000}k pending",
            self.args.ticks,
            time.perf_counter() - started,
            latencies,
        )
        today = self.deadlines.queue(slot_of(now))
        raw_latencies = []
        started = time.perf_counter()
        for _ in range(self.args.ticks):
            t = time.perf_counter()
            await today.find({"slot": slot_of(datetime.now(UTC))}).to_list(None)
            raw_latencies.append(time.perf_counter() - t)
        raw = measured(
            "raw: one slot query", self.args.ticks, time.perf_counter() - started, raw_latencies
        )
        self.rows.append(against(tick, raw))
        self.rows.append(raw)

        progress("today's tick shape on the same data (count + due range query)")
        await self.deadlines.collection.create_index([("due_at", ASCENDING)])
        old_latencies = []
        started = time.perf_counter()
        for _ in range(self.args.old_ticks):
            t = time.perf_counter()
            await self.deadlines.collection.count_documents({})
            cursor = self.deadlines.collection.find({"due_at": {"$lte": datetime.now(UTC)}})
            await cursor.sort("due_at", ASCENDING).limit(100).to_list(None)
            old_latencies.append(time.perf_counter() - t)
        self.rows.append(
            against(
                measured(
                    "before: count + due range (old tick)",
                    self.args.old_ticks,
                    time.perf_counter() - started,
                    old_latencies,
                ),
                raw,
            )
        )

    async def burst(self) -> None:
        n = self.args.burst
        now = datetime.now(UTC)
        rng = random.Random(11)
        due = [ms(now - timedelta(seconds=rng.uniform(0, 50))) for _ in range(n)]
        await self.insert(
            [entry_doc(f"burst-{i}", "contact_overdue", d, d) for i, d in enumerate(due)]
        )
        progress(f"burst: {n} due deadlines, {self.args.replicas} replica(s)")
        replicas = [self.scheduler() for _ in range(self.args.replicas)]
        self.fired_at.clear()
        started = time.perf_counter()
        fired = sum(await asyncio.gather(*(r.fire_due() for r in replicas)))
        seconds = time.perf_counter() - started
        assert fired == n == len(self.fired_at), (fired, n, len(self.fired_at))
        row = measured(f"burst: fire {n} due ({self.args.replicas} replicas)", n, seconds, [])

        progress("raw: insert the done record + delete the entry, same documents")
        raw_queue = self.database["raw_queue"]
        today = await self.deadlines.queue(slot_of(now)).find({}).to_list(None)
        copies = [{**d, "_id": f"copy-{i}"} for i, d in enumerate(today)]
        burst_docs = [
            {**entry_doc(f"burst-{i}", "contact_overdue", d, d), "_id": f"raw-{i}"}
            for i, d in enumerate(due)
        ]
        for docs in (copies, burst_docs):
            for i in range(0, len(docs), 1000):
                await raw_queue.insert_many(docs[i : i + 1000], ordered=False)
        raw_done = self.database["raw_done"]
        gate = asyncio.Semaphore(self.args.concurrency * self.args.replicas)
        latencies: list[float] = []

        async def one(i: int) -> None:
            async with gate:
                t = time.perf_counter()
                await raw_done.insert_one({"_id": f"raw-{i}", "outcome": "fired", "at": now})
                await raw_queue.delete_one({"_id": f"raw-{i}"})
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        raw = measured(
            "raw: insert done + delete entry", n, time.perf_counter() - started, latencies
        )
        self.rows.append(against(row, raw))
        self.rows.append(raw)

    async def steady(self) -> None:
        rate, seconds = self.args.rate, self.args.seconds
        n = rate * seconds
        start = datetime.now(UTC) + timedelta(seconds=5)
        due = {f"steady-{i}": ms(start + timedelta(seconds=i / rate)) for i in range(n)}
        await self.insert([entry_doc(k, "contact_overdue", d, d) for k, d in due.items()])
        progress(
            f"steady: {rate}/s falling due for {seconds} s, scheduler loop, tick {self.args.tick} s"
        )
        self.fired_at.clear()
        replicas = [self.scheduler() for _ in range(self.args.replicas)]
        for r in replicas:
            await r.start()
        self.expected, self.all_fired = n, asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_fired.wait(), seconds + 5 + 60)
        for r in replicas:
            await r.stop()
        lateness = [self.fired_at[k] - d.timestamp() for k, d in due.items() if k in self.fired_at]
        self.rows.append(
            measured(
                f"steady {rate}/s: lateness (fire - due)", len(lateness), float(seconds), lateness
            )
        )
        if len(lateness) < n:
            progress(f"only {len(lateness)} of {n} fired within a minute after the last was due")


def render(rows: list[Row], header: str) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        header,
        "",
        "| stage                                         |      n |   ops/s | p50 ms | p99 ms "
        "| raw ops/s | ratio |",
        "|-----------------------------------------------|-------:|--------:|-------:|-------:"
        "|----------:|------:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.stage:<45} | {r.n:>6} | {r.rate:>7.1f} | {cell(r.p50_ms, '6.1f'):>6} | "
            f"{cell(r.p99_ms, '6.1f'):>6} | {cell(r.raw_rate, '9.1f'):>9} | "
            f"{cell(r.ratio, '5.2f'):>5} |"
        )
    lines += [
        "",
        "ratio = the stage's ops/s over the raw limit on its right (a tick: scans/s over raw "
        "slot queries/s; burst: fired/s over raw insert+delete pairs/s). Lateness p50/p99 are "
        "fire time - due time, in ms.",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Row]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(args.mongo_url, tz_aware=True)
    name = f"bench_deadlines_{uuid.uuid4().hex[:8]}"
    try:
        return await Bench(args, client[name]).run()
    finally:
        await client.drop_database(name)
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Deadline scheduler benchmark (see the module doc)."
    )
    parser.add_argument("--pending", type=int, default=100_000, help="deadlines pending")
    parser.add_argument("--burst", type=int, default=2000, help="deadlines due at once")
    parser.add_argument("--replicas", type=int, default=2, help="schedulers firing")
    parser.add_argument("--concurrency", type=int, default=8, help="fires at once per replica")
    parser.add_argument("--rate", type=int, default=50, help="deadlines falling due per second")
    parser.add_argument("--seconds", type=int, default=20, help="length of the steady run")
    parser.add_argument("--tick", type=float, default=1.0, help="scheduler tick, seconds")
    parser.add_argument("--ticks", type=int, default=50, help="idle ticks measured")
    parser.add_argument("--old-ticks", type=int, default=3, help="old-shape ticks measured")
    server_options(parser)  # --kafka is accepted for bench.sh and unused
    args = parser.parse_args(argv)
    rows = asyncio.run(main_async(args))
    print(
        render(
            rows,
            f"Deadlines: {args.pending} pending, burst {args.burst}, {args.replicas} replicas x "
            f"{args.concurrency}, steady {args.rate}/s; MongoDB-wire {args.mongo_url} "
            f"{args.label}".rstrip(),
        )
    )
    write_json(args, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
