"""Benchmark of the contacts service's write path and its overdue firing.

In process, on the real MongoDB-wire server (no HTTP, no Kafka: the application object as
the routes and the deadline handlers call it), each figure beside its raw limit measured in
the same run on the same server:

- log: `--contacts` made contacts logged as the route logs one (`Contacts.case_ref`, the
  reach check on the local case facts, then `Contacts.execute(LogContact)`: the contact's
  commit, then counting it on the case's obligations — a load and a commit), `--concurrency`
  at a time, over `--cases` high-risk cases; beside raw `insert_one` of documents of the same
  size at the same concurrency;
- log at a steady `--rate`/s for `--seconds`: latency p50/p99 beside raw `insert_one`
  latency at the same rate;
- overdue with `--pending` (100k) pending deadlines: `--burst` obligations already due, fired
  by two schedulers through the real handler (`ContactOverdue` decided and committed) —
  overdue/s beside raw (done record insert + entry delete + one commit insert) at the same
  concurrency; then obligations falling due at `--due-rate`/s with the scheduler loops
  running: lateness (`raised_at` - due) p50/p99.

`--stages log` runs the logging figures only (`overdue`: the overdue ones only).
`make bench` runs it (`scripts/bench.sh`), or `uv run python bench/contacts.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from deadlines import entry_doc, ms
from pymongo import AsyncMongoClient

from casework.auth import Principal
from casework.contracts.contacts import ContactObligationOpened, Medium, Outcome, Participant
from casework.contracts.contacts import ParticipantKind as Kind
from casework.deadlines import DeadlineScheduler
from casework.eventstore import CommitContext, Document
from casework.projections import ReadModel
from casework.settings import Settings

from casework_contacts.application.policies import (
    WhenObligationChangedKeepDeadlines,
    deadline_handlers,
)
from casework_contacts.bootstrap import Wired, build
from casework_contacts.domain.commands import CaseRef, LogContact
from casework_contacts.domain.obligations import CaseTrigger
from report import Row, against, measured, progress, server_options, write_json

WORKER = Principal(
    sub="bench", name="bench", roles=frozenset({"crisis_worker"}), sites=frozenset({"north"})
)
CLIENT = (Participant(kind=Kind.CLIENT),)
FIRST_CONTACT = timedelta(hours=24)


class Bench:
    def __init__(self, args: argparse.Namespace, wired: Wired) -> None:
        self.args = args
        self.wired = wired
        self.database = wired.runtime.database
        self.rows: list[Row] = []
        self.case_ids: list[str] = []

    async def run(self) -> list[Row]:
        await self.wired.runtime.store.ensure_indexes()
        progress(f"{self.args.cases} high-risk cases with their obligations")
        for case_id in await self.seed_cases(self.args.cases, "c"):
            await self.wired.contacts.replan(case_id, None, CommitContext())
        if "log" in self.args.stages:
            await self.log_burst()
            await self.log_steady()
        if "overdue" in self.args.stages:
            await self.seed_pending()
            await self.overdue_burst()
            await self.overdue_steady()
        return self.rows

    async def seed_cases(self, n: int, prefix: str) -> list[str]:
        ids = [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
        docs = [
            {"_id": i, "client_id": f"cl-{i}", "site": "north", "phase": "active",
             "risk_level": "high", "caseworker_id": "bench", "team": "t1"}
            for i in ids
        ]  # fmt: skip
        for start in range(0, n, 1000):
            await self.database["case_facts"].insert_many(docs[start : start + 1000])
        self.case_ids += ids
        return ids

    def log_command(self, i: int, case: CaseRef) -> LogContact:
        return LogContact(
            contact_id=f"k-{i}-{uuid.uuid4().hex[:6]}",
            case=case,
            medium=Medium.PHONE,
            occurred_at=datetime.now(UTC),
            participants=CLIENT,
            outcome=Outcome.MADE,
            logged_by="bench",
            notes="Phoned; she is sleeping better and went to the housing appointment.",
        )

    async def log_one(self, i: int) -> float:
        contacts = self.wired.contacts
        t = time.perf_counter()
        case_id = self.case_ids[i % self.args.cases]
        case = await contacts.case_ref(case_id, WORKER, for_writing=True)
        await contacts.execute(self.log_command(i, case), WORKER, CommitContext())
        return time.perf_counter() - t

    async def raw_one(self, collection: Any, doc: Document) -> float:
        t = time.perf_counter()
        await collection.insert_one(doc)
        return time.perf_counter() - t

    def raw_doc(self, i: int, tag: str) -> Document:
        # about the size of a contact's commit (one ContactLogged with its notes)
        return {"_id": f"{tag}-{i}", "stream_id": f"contact-{i}", "events": [
            {"type": "casework.contacts.ContactLogged.v1", "data": {"notes": "x" * 400,
             "participants": [{"kind": "client"}], "occurred_at": datetime.now(UTC)}}]}  # fmt: skip

    async def log_burst(self) -> None:
        n, c = self.args.contacts, self.args.concurrency
        progress(f"log {n} contacts, {c} at a time, over {self.args.cases} cases")
        gate = asyncio.Semaphore(c)

        async def one(i: int) -> float:
            async with gate:
                return await self.log_one(i)

        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(i) for i in range(n)))
        row = measured(f"log contact ({c} at a time)", n, time.perf_counter() - started, latencies)
        raw_collection = self.database["raw_contacts"]

        async def raw(i: int) -> float:
            async with gate:
                return await self.raw_one(raw_collection, self.raw_doc(i, "burst"))

        started = time.perf_counter()
        raw_latencies = await asyncio.gather(*(raw(i) for i in range(n)))
        raw_row = measured("raw: insert_one", n, time.perf_counter() - started, raw_latencies)
        self.rows += [against(row, raw_row), raw_row]

    async def at_rate(self, rate: int, seconds: int, call: Any) -> list[float]:
        n = rate * seconds
        start = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(call(i)))
        return list(await asyncio.gather(*tasks))

    async def log_steady(self) -> None:
        rate, seconds = self.args.rate, self.args.seconds
        progress(f"log at {rate}/s for {seconds} s")
        offset = self.args.contacts
        latencies = await self.at_rate(rate, seconds, lambda i: self.log_one(offset + i))
        row = measured(f"log contact at {rate}/s", len(latencies), float(seconds), latencies)
        raw_collection = self.database["raw_steady"]
        raw_latencies = await self.at_rate(
            rate, seconds, lambda i: self.raw_one(raw_collection, self.raw_doc(i, "steady"))
        )
        raw_row = measured(f"raw: insert_one at {rate}/s", len(raw_latencies), float(seconds),
                           raw_latencies)  # fmt: skip
        self.rows += [against(row, raw_row), raw_row]

    async def seed_pending(self) -> None:
        n = self.args.pending
        progress(f"seeding {n} pending overdue deadlines over the next 30 days")
        rng = random.Random(7)
        now = datetime.now(UTC)
        by_collection: dict[str, list[Document]] = {}
        deadlines = self.wired.runtime.deadlines
        for i in range(n):
            due = ms(now + timedelta(hours=1) + timedelta(seconds=rng.uniform(0, 30 * 86400)))
            doc = entry_doc(f"pending-{i}", "contact_overdue", due, due)
            by_collection.setdefault(deadlines.queue(doc["slot"]).name, []).append(doc)
        for name, docs in by_collection.items():
            for start in range(0, len(docs), 1000):
                await self.database[name].insert_many(docs[start : start + 1000], ordered=False)

    async def obligations_due(self, dues: list[datetime]) -> list[tuple[str, datetime]]:
        """A high-risk case per due time, its first contact due then, its deadlines kept as
        the policy keeps them."""
        case_ids = await self.seed_cases(len(dues), "o")
        keeper = WhenObligationChangedKeepDeadlines(
            self.wired.runtime.deadlines,
            ReadModel(self.database["deadline_plans"]),
            due_soon_lead=timedelta(hours=24),
        )
        contacts = self.wired.contacts
        for case_id, due in zip(case_ids, dues, strict=True):
            trigger = CaseTrigger("case_opened:1", "case_opened", due - FIRST_CONTACT)
            await contacts.replan(case_id, trigger, CommitContext())
            for envelope in await self.wired.runtime.store.load(f"obligations-{case_id}"):
                event = self.wired.runtime.registry.parse(envelope.type, dict(envelope.data))
                if isinstance(event, ContactObligationOpened) and event.trigger:
                    await keeper.keep(event)
        return list(zip(case_ids, dues, strict=True))

    def schedulers(self) -> list[DeadlineScheduler]:
        found = []
        for _ in range(2):
            scheduler = DeadlineScheduler(
                self.wired.runtime.deadlines, concurrency=self.args.concurrency, tick=1.0
            )
            for kind, handler in deadline_handlers(self.wired.contacts).items():
                scheduler.on(kind, handler)
            found.append(scheduler)
        return found

    async def overdue_events(self, cases: list[tuple[str, datetime]]) -> list[datetime]:
        raised = []
        for case_id, _ in cases:
            for envelope in await self.wired.runtime.store.load(f"obligations-{case_id}"):
                if envelope.type.endswith(".ContactOverdue.v1"):
                    raised.append(datetime.fromisoformat(str(envelope.data["raised_at"])))
        return raised

    async def overdue_burst(self) -> None:
        n = self.args.burst
        now = datetime.now(UTC)
        progress(f"{n} obligations already due ({self.args.pending} pending)")
        cases = await self.obligations_due([now - timedelta(seconds=30)] * n)
        progress("firing them with two schedulers")
        started = time.perf_counter()
        fired = sum(await asyncio.gather(*(s.fire_due() for s in self.schedulers())))
        seconds = time.perf_counter() - started
        raised = await self.overdue_events(cases)
        assert fired == n == len(raised), (fired, n, len(raised))
        row = measured(f"overdue burst: {n} fired, {self.args.pending // 1000}k pending",
                       n, seconds, [])  # fmt: skip
        done, queue, commits = (self.database[c] for c in ("raw_done", "raw_q", "raw_commits"))
        await queue.insert_many([{"_id": f"e-{i}", "slot": "x"} for i in range(n)])
        gate = asyncio.Semaphore(self.args.concurrency * 2)

        async def raw(i: int) -> float:
            async with gate:
                t = time.perf_counter()
                await done.insert_one({"_id": f"d-{i}", "outcome": "fired", "at": now})
                await queue.delete_one({"_id": f"e-{i}"})
                await commits.insert_one(self.raw_doc(i, "overdue"))
                return time.perf_counter() - t

        started = time.perf_counter()
        raw_latencies = await asyncio.gather(*(raw(i) for i in range(n)))
        raw_row = measured("raw: done + delete + commit", n, time.perf_counter() - started,
                           raw_latencies)  # fmt: skip
        self.rows += [against(row, raw_row), raw_row]

    async def overdue_steady(self) -> None:
        rate, seconds = self.args.due_rate, self.args.seconds
        n = rate * seconds
        progress(f"{n} obligations falling due at {rate}/s, scheduler loops running")
        # the seeding below must finish before the first falls due: time a few first
        t = time.perf_counter()
        await self.obligations_due([datetime.now(UTC) + timedelta(days=1)] * 5)
        per_case = (time.perf_counter() - t) / 5
        start = datetime.now(UTC) + timedelta(seconds=2 * n * per_case + 5)
        cases = await self.obligations_due([start + timedelta(seconds=i / rate) for i in range(n)])
        if datetime.now(UTC) >= start:
            progress("seeding took longer than planned: the first were late before firing")
        schedulers = self.schedulers()
        for scheduler in schedulers:
            await scheduler.start()
        deadline = time.monotonic() + (start - datetime.now(UTC)).total_seconds() + seconds + 60
        raised: list[datetime] = []
        with contextlib.suppress(Exception):
            while time.monotonic() < deadline:
                raised = await self.overdue_events(cases)
                if len(raised) >= n:
                    break
                await asyncio.sleep(1)
        for scheduler in schedulers:
            await scheduler.stop()
        dues = dict(cases)
        lateness = []
        for case_id, due in dues.items():
            for envelope in await self.wired.runtime.store.load(f"obligations-{case_id}"):
                if envelope.type.endswith(".ContactOverdue.v1"):
                    at = datetime.fromisoformat(str(envelope.data["raised_at"]))
                    lateness.append((at - due).total_seconds())
        stage = f"overdue steady {rate}/s: lateness (raised - due)"
        self.rows.append(measured(stage, len(lateness), float(seconds), lateness))
        if len(lateness) < n:
            progress(f"only {len(lateness)} of {n} raised within a minute after the last was due")


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
        "ratio = the stage's ops/s over the raw limit on its right. Latencies in ms; lateness "
        "= ContactOverdue raised_at - due time.",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Row]:
    name = f"bench_contacts_{uuid.uuid4().hex[:8]}"
    settings = Settings.for_service(
        "contacts", 0, environment="test", mongo_url=args.mongo_url, mongo_database=name,
        kafka_bootstrap_servers=args.kafka,
    )  # fmt: skip
    wired = build(settings)
    try:
        return await Bench(args, wired).run()
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(args.mongo_url)
        await client.drop_database(name)
        await client.close()
        await wired.runtime.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Contacts benchmark (see the module doc).")
    parser.add_argument("--cases", type=int, default=200, help="cases the contacts go to")
    parser.add_argument("--contacts", type=int, default=1000, help="contacts logged at once")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=int, default=20, help="contacts per second, steady")
    parser.add_argument("--seconds", type=int, default=15, help="length of the steady runs")
    parser.add_argument("--pending", type=int, default=100_000, help="deadlines pending")
    parser.add_argument("--burst", type=int, default=500, help="obligations due at once")
    parser.add_argument("--due-rate", type=int, default=10, help="obligations due per second")
    parser.add_argument(
        "--stages", nargs="+", choices=("log", "overdue"), default=["log", "overdue"],
        help="which figures to take (default: all)",
    )  # fmt: skip
    server_options(parser)
    args = parser.parse_args(argv)
    rows = asyncio.run(main_async(args))
    print(
        render(
            rows,
            f"Contacts: {args.contacts} logged x{args.concurrency}, steady {args.rate}/s; "
            f"{args.pending} pending deadlines, overdue burst {args.burst}, "
            f"{args.due_rate}/s due; MongoDB-wire {args.mongo_url} {args.label}".rstrip(),
        )
    )
    write_json(args, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
