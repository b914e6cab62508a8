"""Benchmark of the read-model queries at regional scale, through the services' APIs.

The cases and intake services run as processes (`casework.devstack`, the five services, on
ports `--base-port`… ; a namespace and databases of their own, dropped afterwards). Their
read-model collections are seeded directly, in the shapes their projections write:

- `case_summaries`: `--cases` open cases (200,000 by default) over `--sites` sites, one site
  holding `--big-site` of them (10,000), 25 per caseworker; a few open crises per site; and
  the register's partition counters (`casework.counters`) of exactly those cases, computed
  with the projection's own `contributions`, spread over 6 partitions as the stream keys
  would spread them;
- `referral_summaries`: the accepted referral of every case, and their weekly counters;
- `timeline`: the case's opening for every case, and a whole story (12 entries, referral and
  case streams) for the cases whose timelines are read;
- `intake_queue`: every case's referral (decided), and referrals waiting at each site
  (`--waiting` at the big site);
- `inbox` (notifications): `--inbox-entries` notifications to an on-call worker over the past
  year (10,000 by default) and as many to 20 colleagues, written by the inbox's own handler;

then each query is asked through the API, one request in flight, with a regional
administrator's dev token: `--requests-before` times with only the indexes FerretDB made
(btree, which PostgreSQL cannot use for FerretDB's `@>` equality: every query scans its
table), then `scripts/ferretdb-indexes.sh` adds GIN indexes PostgreSQL can use, and each query
is asked `--requests` times again, and its p50/p99 printed beside raw limits measured in the
same run: a `find_one` by `_id` on `case_summaries` (the cheapest read the server has), the
same query's filter sent straight to the database (no HTTP, no service), 25 case summaries by
id as the read models fetch several documents (`ReadModel.get_many`: one exact `_id` each), and
`GET /healthz` (the HTTP edge, no database). With `--old-shapes`, the filters the read models
used before (issue 6 §5) are timed straight on the same data: the caseload's `caseworker_id` +
`phase $ne`, the same 25 summaries by one `_id: {$in: …}`, and the register's `$or` over the
site's cases, and the inbox's `recipient_id` + sort + limit (before its day buckets).

Run by `make bench`, or `uv run python bench/queries.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import tempfile
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from casework.contracts.cases import CaseOpened, CaseworkerAssigned
from casework.contracts.notifications import Channel, NotificationSent, Trigger, Urgency
from casework.counters import PartitionCounters, counter_documents, fold_counts
from casework.devstack import running_stack
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document, EventStore
from casework.projections import APPLIED, ReadModel
from casework.rebuild import BufferedCollection
from casework.runtime import wait_until

from casework_cases.adapters.read_models import case_summaries, referral_summaries
from casework_cases.adapters.read_models.documents import iso_week, register_keys
from casework_cases.adapters.read_models.register import register_from_totals, week_starts
from casework_cases.adapters.read_models.timeline import entry_id
from casework_intake.adapters.intake_queue import (
    QUEUE_KEY,
    WAITING_AT,
    WAITING_IN,
    queue_key,
    waiting_in,
)
from casework_notifications.adapters.read_models import Inbox
from report import percentile_ms, progress, server_options

PARTITIONS = 6
PHASES = ("assessment", "planning", "active", "review")
RISKS = ("low", "medium", "high", "imminent", None)
URGENCY = (("emergency", 4), ("urgent", 3), ("soon", 2), ("routine", 1))
PER_WORKER = 25
CASELOADS = 8  # caseworkers of the big site whose caseloads are read
STORY_ENTRIES = 12  # 4 of the referral, 8 of the case


def partition_of(stream: str) -> int:
    return zlib.crc32(stream.encode()) % PARTITIONS


class Seed:
    """The documents the projections would have written for a region of open cases."""

    def __init__(self, args: argparse.Namespace, now: datetime) -> None:
        self.args = args
        self.now = now
        self.rng = random.Random(6)
        self.big = "north"
        self.sites = [self.big, *(f"site{n:02d}" for n in range(1, args.sites))]
        self.storied: list[str] = []  # cases whose timelines are read
        self.workers: list[str] = []  # caseworkers of the big site whose caseloads are read
        self.streams: list[Document] = []  # cases that get an event stream (see `streams`)

    def site_of(self, i: int) -> str:
        big: int = self.args.big_site
        if i < big:
            return self.big
        return self.sites[1 + (i - big) % (len(self.sites) - 1)]

    def cases(self) -> Iterator[tuple[Document, Document, list[Document], Document]]:
        """(case summary, referral summary, timeline entries, intake queue document) per case."""
        by_site: dict[str, int] = {}
        for i in range(self.args.cases):
            site = self.site_of(i)
            n = by_site[site] = by_site.get(site, 0) + 1
            worker = f"{site}-w{(n - 1) // PER_WORKER:04d}"
            if site == self.big and n % PER_WORKER == 1 and len(self.workers) < CASELOADS:
                self.workers.append(worker)
            case_id, referral_id = f"c{i:07d}", f"r{i:07d}"
            received = self.now - timedelta(hours=self.rng.uniform(2, 24 * 7 * 14))
            accepted = received + timedelta(hours=self.rng.uniform(0.5, 96))
            assigned = accepted + timedelta(hours=self.rng.uniform(0.2, 72))
            crisis = n <= 25  # 25 open crises per site
            risk = self.rng.choice(RISKS)
            storied = site == self.big and n <= self.args.timelines
            case: Document = {
                "_id": case_id,
                "case_id": case_id,
                "site": site,
                "opened_site": site,
                "client_id": f"k{i:07d}",
                "client_name": f"Client {i}",
                "referral_id": referral_id,
                "referral_received_at": received,
                "phase": self.rng.choice(PHASES),
                "risk_level": risk,
                "opened_at": accepted,
                "plan_status": "approved",
                "open_crises": (
                    [
                        {
                            "crisis_id": f"x{i}",
                            "risk_level": "imminent",
                            "declared_at": assigned,
                            "declared_by": worker,
                        }
                    ]
                    if crisis
                    else []
                ),
                "caseworker_id": worker,
                "team": f"{site}-t{(n - 1) // 200}",
                "first_assigned_at": assigned,
                "last_activity_at": assigned,
                "transfer_requested_to": None,
                "crisis_open": crisis,
                "next_activity_due": "2027-01-15",
                "next_activity": "Goal: Attend two job-centre appointments",
                case_summaries.CASELOAD_OF: worker,
                case_summaries.CRISIS_AT: site if crisis else None,
                APPLIED: {f"case-{case_id}": 8 if storied else 1},
            }
            referral: Document = {
                "_id": referral_id,
                "referral_id": referral_id,
                "site": site,
                "received_at": received,
                "urgency": "soon",
                "source": "gp",
                "client_name": f"Client {i}",
                "status": "accepted",
                "accepted_at": accepted,
                "case_id": case_id,
                "client_id": f"k{i:07d}",
                "risk_level": risk,
                "latest_at": accepted,
                APPLIED: {f"referral-{referral_id}": 4 if storied else 2},
            }
            if storied:
                self.storied.append(case_id)
                entries = [
                    self.entry(f"referral-{referral_id}", v, case_id, referral_id, site, received)
                    for v in range(1, 5)
                ] + [
                    self.entry(f"case-{case_id}", v, case_id, referral_id, site, assigned)
                    for v in range(1, 9)
                ]
            else:
                entries = [self.entry(f"case-{case_id}", 1, case_id, referral_id, site, accepted)]
            queued = self.queued(referral_id, site, received, "accepted")
            if storied or (site == self.big and worker in self.workers):
                self.streams.append(case)
            yield case, referral, entries, queued

    def entry(
        self, stream: str, version: int, case_id: str, referral_id: str, site: str, at: datetime
    ) -> Document:
        return {
            "_id": entry_id(stream, version),
            "event_id": str(uuid.uuid4()),
            "case_id": case_id,
            "referral_id": referral_id,
            "stream": stream,
            "version": version,
            "time": at + timedelta(minutes=version),
            "type": "casework.cases.CaseNoteRecorded.v1",
            "event": "CaseNoteRecorded",
            "source": "/casework/cases",
            "site": site,
            "summary": "Case note recorded by worker",
            "actor": "worker",
            "detail": {"case_id": case_id, "note": "Home visit completed; client engaged. " * 4},
        }

    def queued(self, referral_id: str, site: str, received: datetime, status: str) -> Document:
        urgency, rank = self.rng.choice(URGENCY)
        waiting = status == "waiting"
        return {
            "_id": referral_id,
            "referral_id": referral_id,
            "site": site,
            "status": status,
            "client_name": "Client",
            "urgency": urgency,
            "urgency_rank": rank,
            "source": "gp",
            "received_at": received,
            "risk_level": None,
            "client_match": "no_candidates",
            WAITING_AT: site if waiting else None,
            WAITING_IN: waiting_in(site, rank) if waiting else None,
            QUEUE_KEY: queue_key(rank, received, referral_id),
            APPLIED: {f"referral-{referral_id}": 1 if waiting else 3},
        }

    def waiting(self) -> Iterator[Document]:
        for site in self.sites:
            for n in range(self.args.waiting if site == self.big else 20):
                received = self.now - timedelta(hours=self.rng.uniform(0.1, 72))
                yield self.queued(f"w-{site}-{n:05d}", site, received, "waiting")


def counters(
    docs: Iterable[tuple[str, Document]], contributions: Callable[[Document], Any], topic: str
) -> list[Document]:
    """The counter documents the projection would hold: per partition, the fold of its
    entities' contributions."""
    by_partition: dict[int, list[Any]] = {}
    for stream, doc in docs:
        by_partition.setdefault(partition_of(stream), []).append(contributions(doc))
    out: list[Document] = []
    for partition, contributed in by_partition.items():
        out += counter_documents(
            fold_counts(contributed), topic=topic, partition=partition, offset=10**9
        )
    return out


async def insert_all(collection: AsyncCollection[Document], docs: Iterable[Document]) -> int:
    """insert_many in batches of 1,000, two batches in flight."""
    pending: set[asyncio.Task[Any]] = set()
    batch: list[Document] = []
    n = 0
    for doc in docs:
        batch.append(doc)
        if len(batch) == 1000:
            pending.add(asyncio.ensure_future(collection.insert_many(batch, ordered=False)))
            n += len(batch)
            batch = []
            if len(pending) >= 2:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
    if batch:
        pending.add(asyncio.ensure_future(collection.insert_many(batch, ordered=False)))
        n += len(batch)
    for task in pending:
        await task
    return n


async def seed(seed: Seed, cases_db: Any, intake_db: Any) -> float:
    started = time.perf_counter()
    summaries, referrals, entries, queue = [], [], [], []
    for case, referral, timeline, queued in seed.cases():
        summaries.append(case)
        referrals.append(referral)
        entries += timeline
        queue.append(queued)
    queue += list(seed.waiting())
    case_counters = counters(
        ((f"case-{c['_id']}", c) for c in summaries),
        case_summaries.contributions,
        "casework.cases.events",
    )
    referral_counters = counters(
        ((f"referral-{r['_id']}", r) for r in referrals),
        referral_summaries.contributions,
        "casework.intake.events",
    )
    progress(
        f"seeding {len(summaries)} case summaries (+{len(case_counters)} counters), "
        f"{len(referrals)} referral summaries (+{len(referral_counters)}), {len(entries)} "
        f"timeline entries, {len(queue)} intake queue documents"
    )
    await intake_db["known_sites"].insert_many(
        [{"_id": s, "name": s, APPLIED: {f"site-{s}": 1}} for s in seed.sites]
    )
    for collection, docs in (
        (cases_db["case_summaries"], summaries + case_counters),
        (cases_db["referral_summaries"], referrals + referral_counters),
        (cases_db["timeline"], entries),
        (intake_db["intake_queue"], queue),
    ):
        t = time.perf_counter()
        n = await insert_all(collection, docs)
        progress(f"  {collection.name}: {n} in {time.perf_counter() - t:.1f}s")
    return time.perf_counter() - started


INBOX_OWNER = "olga"
"""The on-call worker whose year of notifications the inbox rows read."""


async def seed_inbox(args: argparse.Namespace, notifications_db: Any, now: datetime) -> float:
    """`--inbox-entries` notifications to the on-call worker over the past year, as many again
    to 20 colleagues, written by the inbox's own handler (folded in memory, then inserted in
    bulk as the rebuild tool does), so the documents are the projection's shape."""
    started = time.perf_counter()
    inbox = Inbox(notifications_db)
    buffered = BufferedCollection(notifications_db["inbox"])
    inbox.read_model.collection = buffered  # type: ignore[assignment]
    people = [INBOX_OWNER] * 20 + [f"colleague{k}" for k in range(20)]
    year = timedelta(days=365).total_seconds()
    for n in range(2 * args.inbox_entries):
        recipient = people[n % len(people)]
        at = now - timedelta(seconds=year * (1 - n / (2 * args.inbox_entries)))
        event = NotificationSent(
            notification_id=f"bench{n}~1~0~{recipient}",
            alert_id=f"bench{n}",
            episode=1,
            step=0,
            recipient_id=recipient,
            trigger=Trigger.CONTACT_OVERDUE,
            urgency=Urgency.NORMAL,
            site="north",
            channels=(Channel.INBOX,),
            sent_at=at,
        )
        sent = Envelope(
            type=event.type_name(),
            source="/casework/notifications",
            subject=f"alert-bench{n}",
            time=at,
            data=event.model_dump(mode="json"),
            stream_version=1,
        )
        await inbox.handle(sent, event)
    await buffered.flush()
    inbox.read_model.collection = notifications_db["inbox"]
    await inbox.ensure_indexes()
    seconds = time.perf_counter() - started
    progress(
        f"  inbox: {2 * args.inbox_entries} notifications ({args.inbox_entries} to "
        f"{INBOX_OWNER}) and their markers in {seconds:.1f}s"
    )
    return seconds


async def streams(plan: Seed, cases_db: Any) -> float:
    """The event streams of the cases the caseload and timeline rows read: those queries
    authorise against who holds the case now, as its stream says (`Cases.current_scopes`).
    Appended through the event store (opened, assigned), then waited on until the relay
    published them, so that the service's consumers are idle again when the timing starts
    (the summaries already hold these versions; their counters skip the offsets)."""
    started = time.perf_counter()
    store = EventStore(cases_db, source="/casework/cases")
    await store.ensure_indexes()
    gate = asyncio.Semaphore(16)

    async def one(case: Document) -> None:
        events: list[DomainEvent] = [
            CaseOpened(
                case_id=case["_id"],
                client_id=case["client_id"],
                referral_id=case["referral_id"],
                site=case["site"],
                opened_at=case["opened_at"],
                referral_received_at=case["referral_received_at"],
            ),
            CaseworkerAssigned(
                case_id=case["_id"],
                caseworker_id=case["caseworker_id"],
                team=case["team"],
                assigned_by="bench",
                assigned_at=case["first_assigned_at"],
            ),
        ]
        async with gate:
            await store.append(f"case-{case['_id']}", 0, events)

    await asyncio.gather(*(one(c) for c in plan.streams))

    async def relayed() -> bool:
        return await store.pending.count_documents({}) == 0

    await wait_until(relayed, within=120, every=0.5)
    return time.perf_counter() - started


Row = tuple[str, int, float | None, float | None]


async def timed(label: str, n: int, call: Callable[[int], Awaitable[Any]]) -> Row:
    await call(0)  # warm up
    latencies = []
    for i in range(n):
        t = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - t)
    row = (label, n, percentile_ms(latencies, 0.5), percentile_ms(latencies, 0.99))
    progress(f"{label}: p50 {row[2]:.1f} ms, p99 {row[3]:.1f} ms")
    return row


async def measure(
    args: argparse.Namespace,
    seed: Seed,
    stack: Any,
    dbs: tuple[Any, Any, Any],
    n: int,
    tag: str,
) -> list[Row]:
    db, idb, ndb = dbs
    token = stack.token("ray", "regional_admin")
    headers = {"Authorization": f"Bearer {token}"}
    cases = httpx.AsyncClient(base_url=stack.urls["cases"], headers=headers, timeout=120)
    intake = httpx.AsyncClient(base_url=stack.urls["intake"], headers=headers, timeout=120)
    rng = random.Random(1)
    workers = seed.workers
    summaries = db["case_summaries"]
    rows: list[Row] = []

    async def ok(response: Awaitable[httpx.Response]) -> httpx.Response:
        r = await response
        r.raise_for_status()
        return r

    async with cases, intake:
        first_page = await ok(intake.get("/intake-queue", params={"site": seed.big, "limit": 50}))
        last = first_page.json()[-1]["referral_id"]
        rows.append(
            await timed(
                "raw: GET /healthz (cases, no database)", n, lambda i: ok(cases.get("/healthz"))
            )
        )
        rows.append(
            await timed(
                "raw: find_one by _id, case_summaries",
                n,
                lambda i: summaries.find_one({"_id": rng.choice(seed.storied)}),
            )
        )
        by_id = ReadModel(summaries)

        def some_ids(count: int) -> list[str]:
            return [f"c{rng.randrange(args.cases):07d}" for _ in range(count)]

        rows.append(
            await timed(
                "straight: 25 case summaries by id (get_many)",
                n,
                lambda i: by_id.get_many(some_ids(25)),
            )
        )
        rows.append(
            await timed(
                "GET /caseloads/{worker} (25 cases)",
                n,
                lambda i: ok(cases.get(f"/caseloads/{rng.choice(workers)}")),
            )
        )
        rows.append(
            await timed(
                "  its filter, straight: find caseload_of=",
                n,
                lambda i: summaries.find({case_summaries.CASELOAD_OF: rng.choice(workers)}).to_list(
                    None
                ),
            )
        )
        rows.append(
            await timed(
                "GET /cases/{id}/timeline (12 entries)",
                n,
                lambda i: ok(cases.get(f"/cases/{rng.choice(seed.storied)}/timeline")),
            )
        )
        rows.append(
            await timed(
                f"GET /intake-queue {seed.big}, limit 50",
                n,
                lambda i: ok(intake.get("/intake-queue", params={"site": seed.big, "limit": 50})),
            )
        )
        rows.append(
            await timed(
                f"GET /intake-queue {seed.big}, next page",
                n,
                lambda i: ok(
                    intake.get(
                        "/intake-queue", params={"site": seed.big, "limit": 50, "after": last}
                    )
                ),
            )
        )
        queue = idb["intake_queue"]

        async def old_page(after: str | None) -> list[Document]:
            """The query the queue used before (one equality over the site's whole queue,
            then range, sort and limit, which FerretDB does in Go)."""
            query: Document = {WAITING_AT: seed.big}
            if after is not None:
                seen = await queue.find_one({"_id": after}, {QUEUE_KEY: 1})
                assert seen is not None
                query[QUEUE_KEY] = {"$gt": seen[QUEUE_KEY]}
            cursor = queue.find(query).sort([(QUEUE_KEY, ASCENDING)]).limit(50)
            return [dict(d) async for d in cursor]

        rows.append(
            await timed(
                "  before, straight: find waiting_at=, sort, limit 50",
                n,
                lambda i: old_page(None),
            )
        )
        rows.append(
            await timed(
                "  before, straight: the next page (find_one, + $gt)",
                n,
                lambda i: old_page(last),
            )
        )
        rows.append(
            await timed(
                "  now, straight: find waiting_in= (most urgent)",
                n,
                lambda i: queue.find({WAITING_IN: waiting_in(seed.big, 4)}).to_list(None),
            )
        )
        rows.append(
            await timed(
                f"GET /sites/{seed.big}/register (12 weeks)",
                n,
                lambda i: ok(cases.get(f"/sites/{seed.big}/register", params={"weeks": 12})),
            )
        )
        rows.append(
            await timed(
                f"GET /sites/{seed.big}/register (52 weeks)",
                n,
                lambda i: ok(cases.get(f"/sites/{seed.big}/register", params={"weeks": 52})),
            )
        )
        rows.append(
            await timed(
                "  one counter sum, straight: find counter=",
                n,
                lambda i: summaries.find({"counter": seed.big}).to_list(None),
            )
        )
        # where a 52-week register's time goes: its counter reads (one query per key group,
        # concurrently, as the service does), and the Python that sums them into the register
        now = datetime.now(UTC)
        keys = register_keys(seed.big, [iso_week(start) for start in week_starts(now, 52)])
        case_counters = PartitionCounters(summaries)
        referral_counters = PartitionCounters(db["referral_summaries"])

        async def register_reads() -> tuple[Any, Any]:
            return await asyncio.gather(
                case_counters.groups(keys), referral_counters.groups(keys[1:])
            )

        rows.append(
            await timed(
                f"  52-week register's {2 * len(keys) - 1} counter reads + sums, straight",
                n,
                lambda i: register_reads(),
            )
        )
        cases_totals, referral_totals = await register_reads()

        async def register_python() -> None:
            register_from_totals(
                seed.big, now=now, weeks=52, cases=cases_totals, referrals=referral_totals
            )

        rows.append(
            await timed(
                "  52-week register's figures from the sums (Python)",
                n,
                lambda i: register_python(),
            )
        )
        olga = stack.token(INBOX_OWNER, "crisis_worker", sites=(seed.big,))
        async with httpx.AsyncClient(
            base_url=stack.urls["notifications"],
            headers={"Authorization": f"Bearer {olga}"},
            timeout=120,
        ) as notifications:
            rows.append(
                await timed(
                    f"GET /inbox, newest 50 of {args.inbox_entries} (a year)",
                    n,
                    lambda i: ok(notifications.get("/inbox", params={"limit": 50})),
                )
            )
        inbox = Inbox(ndb)
        rows.append(
            await timed("  straight: Inbox.of (buckets)", n, lambda i: inbox.of(INBOX_OWNER, 50))
        )
        if args.old_shapes and not tag:
            await summaries.create_index([("caseworker_id", ASCENDING), ("phase", ASCENDING)])
            await summaries.create_index([("site", ASCENDING), ("phase", ASCENDING)])
            rows.append(
                await timed(
                    "before: find caseworker_id=, phase $ne closed",
                    10,
                    lambda i: summaries.find(
                        {"caseworker_id": rng.choice(workers), "phase": {"$ne": "closed"}}
                    ).to_list(None),
                )
            )
            rows.append(
                await timed(
                    "before: find site=, the site's cases",
                    3,
                    lambda i: summaries.find({"site": seed.big}, {"phase": 1}).to_list(None),
                )
            )
            rows.append(
                await timed(
                    "before: 25 case summaries by one _id $in",
                    3,
                    lambda i: summaries.find({"_id": {"$in": some_ids(25)}}).to_list(None),
                )
            )
            await ndb["inbox"].create_index("recipient_id")
            rows.append(
                await timed(
                    "before: inbox find recipient_id=, sort, limit 50",
                    3,
                    lambda i: (
                        ndb["inbox"]
                        .find({"recipient_id": INBOX_OWNER})
                        .sort("sent_at", -1)
                        .limit(50)
                        .to_list(None)
                    ),
                )
            )
            rows.append(
                await timed(
                    "before: find $or site=/opened_site= (register)",
                    1,
                    lambda i: summaries.find(
                        {"$or": [{"site": seed.big}, {"opened_site": seed.big}]}, {"phase": 1}
                    ).to_list(None),
                )
            )
    return [(f"{tag}{label}", k, p50, p99) for label, k, p50, p99 in rows]


def render(rows: list[Row], header: str) -> str:
    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:8.1f}"

    lines = [
        header,
        "",
        "| query                                                    |    n |   p50 ms |   p99 ms |",
        "|----------------------------------------------------------|-----:|---------:|---------:|",
    ]
    for label, n, p50, p99 in rows:
        lines.append(f"| {label:<56} | {n:>4} | {cell(p50)} | {cell(p99)} |")
    lines += [
        "",
        "Through the API: one request in flight, a regional admin's token (each read is audited: "
        "one insert). Raw limits in the same run: GET /healthz (HTTP edge only) and find_one by "
        "_id (the cheapest database read); `straight` rows send the query's filter to the "
        "database directly. Goal: p99 ≤ 100 ms.",
    ]
    return "\n".join(lines)


def gin_indexes(stack: Any) -> Row:
    """scripts/ferretdb-indexes.sh on the stack's databases (FerretDB on PostgreSQL only)."""
    started = time.perf_counter()
    script = Path(__file__).resolve().parent.parent / "scripts" / "ferretdb-indexes.sh"
    done = subprocess.run(
        ["bash", str(script), *stack.databases.values()], capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        progress(f"GIN indexes not made (not FerretDB on PostgreSQL?): {done.stdout[-300:]}")
        return ("(no GIN indexes made: not FerretDB on PostgreSQL?)", 0, None, None)
    progress(f"GIN indexes made in {seconds:.1f}s: {done.stdout.strip()[-200:]}")
    return (f"-- scripts/ferretdb-indexes.sh ran ({seconds:.0f}s); then:", 0, None, None)


def run(args: argparse.Namespace) -> tuple[list[Row], float]:
    workdir = Path(tempfile.mkdtemp(prefix="casework-queries-"))
    with running_stack(
        args.kafka, args.mongo_url, workdir, args.base_port, prefix="benchq"
    ) as stack:
        progress(f"stack {stack.namespace} ready; logs in {stack.logs}")

        async def go() -> tuple[list[Row], float]:
            client: AsyncMongoClient[Document] = AsyncMongoClient(args.mongo_url, tz_aware=True)
            try:
                db = client[stack.databases["cases"]]
                idb = client[stack.databases["intake"]]
                ndb = client[stack.databases["notifications"]]
                plan = Seed(args, datetime.now(UTC))
                seconds = await seed(plan, db, idb)
                seconds += await seed_inbox(args, ndb, plan.now)
                progress(f"seeded in {seconds:.0f}s")
                appended = await streams(plan, db)
                progress(
                    f"{len(plan.streams)} case streams appended and relayed in {appended:.0f}s"
                )
                rows: list[Row] = []
                if args.pg_indexes and args.requests_before:
                    rows += await measure(
                        args,
                        plan,
                        stack,
                        (db, idb, ndb),
                        args.requests_before,
                        "FerretDB's indexes: ",
                    )
                if args.pg_indexes:
                    rows.append(gin_indexes(stack))
                rows += await measure(args, plan, stack, (db, idb, ndb), args.requests, "")
                return rows, seconds
            finally:
                await client.close()

        return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Read-model queries at scale (see the doc).")
    parser.add_argument("--cases", type=int, default=200_000, help="open cases in the region")
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--big-site", type=int, default=10_000, help="cases at the big site")
    parser.add_argument("--waiting", type=int, default=300, help="waiting at the big site")
    parser.add_argument("--timelines", type=int, default=50, help="cases with whole stories")
    parser.add_argument("--requests", type=int, default=200, help="requests per query")
    parser.add_argument(
        "--inbox-entries", type=int, default=10_000, help="an on-call worker's notifications"
    )
    parser.add_argument("--old-shapes", action="store_true", help="time the old filters too")
    parser.add_argument(
        "--requests-before",
        type=int,
        default=10,
        help="requests per query before scripts/ferretdb-indexes.sh runs (0: skip that pass)",
    )
    parser.add_argument(
        "--no-pg-indexes",
        dest="pg_indexes",
        action="store_false",
        help="do not run scripts/ferretdb-indexes.sh (e.g. on MongoDB)",
    )
    parser.add_argument("--base-port", type=int, default=18401)
    server_options(parser, json_output=False)
    args = parser.parse_args(argv)
    rows, seconds = run(args)
    print(
        render(
            rows,
            f"Read-model queries: {args.cases} open cases over {args.sites} sites "
            f"({args.big_site} at north, {PER_WORKER} per caseworker), seeded in {seconds:.0f}s; "
            f"MongoDB-wire {args.mongo_url} {args.label}".rstrip(),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
