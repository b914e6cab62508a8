"""Benchmark of the case lifecycle through the APIs, on the five services running as processes.

The stack is started by `casework.devstack` in a namespace of its own, on ports 18301-18305
(tests use 18001+, `make up` 8001+). A new site is registered and K cases are opened through
intake (referral → screening → acceptance; the cases service opens each case from intake's
event). Then lifecycle commands are offered to the cases API at a steady rate, open loop: the
i-th command is due at i/R seconds whatever became of the earlier ones, one command in flight
per case at most (commands on one case depend on each other) and at most `--max-in-flight` in
all. A command that finds every slot taken is issued late, when one frees; one still waiting
when the run's T seconds are up is not issued; both are counted. Each case goes round

    assign → assessment → plan → approve plan (a supervisor, not the proposer) → goal progress
    → note → note → goal progress → note → request closure → approve closure → reopen → …

The two approvals are decided in the supervision service (`POST /approvals/{id}/approve`):
the approval is requested there by the cases service's event, so the bench waits until it
shows in the supervisor's approval queue (supervision's `approval_queue` read model, read
straight from the database every ~10 ms, as a supervisor's queue would show it) and posts the
decision once; the case acts on the decision through its policy. An approval's HTTP latency
runs from that post; the wait before it is its own row ("approval reaches the queue"). (The
bench used to post every 10 ms until the answer was not 404: each post an audited request and
a stream read, which at saturation was much of the supervision service's load.) For an approval,
"accepted → read model updated" runs from the supervision service's 200 to the case summary
showing the version the decision brought (the approval's trip through Kafka, the cases
service's policy and the case's projection), and the case takes no next command before that.

Measured, at each offered rate:

- commands/s achieved (2xx responses over the time from the first command due to the last
  answered) and HTTP latency p50/p99, per command and overall; non-2xx answers by status;
- command accepted → read model updated: from each 2xx response, carrying the case's new
  version, to the moment the `case_summaries` document of the case (in the cases service's
  database, read by exact `_id`) shows `_applied["case-<id>"] >= version`. Cases with
  commands awaiting their read model are polled together every ~10 ms straight from the
  bench (not through the API, which would add load to what is measured);
- to say where the time goes: the cases service's own view from `/metrics` (mean time
  inside the service per command, mean event → `case_summaries` lag); after each run, the
  size of its event store and the time to load one case's stream the way `EventStore.load`
  does (by `stream_id`) beside reading one commit by `_id`; and the CPU each process used
  while the commands ran (the services, and FerretDB and Kafka when they listen on this
  machine), with how busy the machine was just before (load from outside skews the figures).

Beside it, one raw limit: `GET /healthz` on the cases service, closed loop at the same number
in flight (the HTTP edge and this client, with no database or Kafka work).

Run `make bench`, or `uv run python bench/lifecycle.py --help`. It prints a table (progress on
stderr) and, with `--json FILE`, writes the figures too. It talks only to the servers named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from casework.devstack import Stack, running_stack
from casework.eventstore import Document

from report import Row, against, measured, percentile_ms, progress, server_options, write_json

SITE_PREFIX = "bench"
TEAM = "t-bench"
MANAGER, WORKER, SUPERVISOR = "manager", "worker", "supervisor"
# The case alternates between two caseworkers of one team, so each cycle's assignment changes
# something (an assignment that changes nothing is refused); the team's token reaches both.
CASEWORKERS = ("carl", "cora")
NOTE = "Home visit completed; client engaged, mood improved, next visit agreed. " * 3
ASSESSMENT = {
    "needs": {"housing": "Rent arrears", "health": "Sleeping four hours a night"},
    "risk_factors": ["lives alone"],
    "protective_factors": ["close to her sister"],
    "narrative": "Feels trapped by the arrears.",
}
PLAN = {
    "goals": [
        {"goal_id": "tenancy", "description": "Keep the tenancy", "target_date": "2026-06-30"},
        {"goal_id": "sleep", "description": "Sleep six hours", "target_date": "2026-04-30"},
    ],
    "interventions": [
        {
            "description": "Weekly home visit",
            "responsible": "carl",
            "frequency": "weekly",
            "goal_ids": ["tenancy"],
        }
    ],
}
POLL_INTERVAL_S = 0.01


@dataclass(frozen=True)
class Step:
    """One command of the cycle: who sends it, where, with what body (by cycle number).
    `approval`: the kind of approval the supervisor decides in the supervision service."""

    command: str
    who: str
    path: str
    body: Callable[[int], dict[str, Any] | None]
    approval: str | None = None


def _fixed(body: dict[str, Any] | None) -> Callable[[int], dict[str, Any] | None]:
    return lambda _cycle: body


CYCLE: tuple[Step, ...] = (
    Step(
        "assign",
        MANAGER,
        "assignment",
        lambda n: {"caseworker_id": CASEWORKERS[n % 2], "team": TEAM},
    ),
    Step("assessment", WORKER, "assessment", _fixed(ASSESSMENT)),
    Step("propose plan", WORKER, "plan", _fixed(PLAN)),
    Step("approve plan", SUPERVISOR, "approve", _fixed({"comment": "Agreed"}), "plan"),
    Step("goal progress", WORKER, "goals/tenancy/progress", _fixed({"progress": "in_progress"})),
    Step("note", WORKER, "notes", _fixed({"text": NOTE})),
    Step("note", WORKER, "notes", _fixed({"text": NOTE})),
    Step("goal progress", WORKER, "goals/sleep/progress", _fixed({"progress": "in_progress"})),
    Step("note", WORKER, "notes", _fixed({"text": NOTE})),
    Step(
        "request closure",
        WORKER,
        "closure",
        _fixed({"outcome": "goals_met", "evaluation": "Tenancy secure"}),
    ),
    Step("approve closure", SUPERVISOR, "approve", _fixed(None), "closure"),
    Step("reopen", MANAGER, "reopen", _fixed({"reason": "Asked for help again"})),
)
COMMANDS = tuple(dict.fromkeys(s.command for s in CYCLE))


@dataclass
class Case:
    """A case being driven: where it is in the cycle, and commands awaiting its read model."""

    case_id: str
    step: int = 0
    awaiting: list[Sent] = field(default_factory=list)
    version: int = 0
    """The case's version as its last answer (or awaited decision) left it."""
    subject: dict[str, int] = field(default_factory=dict)
    """What each kind of approval decides now: the plan version, the closure's case version."""

    def approval_path(self, kind: str) -> str:
        return f"/approvals/{self.case_id}:{kind}:{self.subject.get(kind, 0)}/approve"

    @property
    def stream(self) -> str:
        return f"case-{self.case_id}"


@dataclass
class Sent:
    """One command as the bench saw it (times from `time.perf_counter`)."""

    command: str
    due: float
    sent: float
    answered: float = 0.0
    posted: float | None = None
    """For an approval: when the decision was posted, once it showed in the queue."""
    status: str = ""
    version: int | None = None
    applied: float | None = None
    landed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when `applied` is."""

    @property
    def ok(self) -> bool:
        return self.status.startswith("2")

    @property
    def latency(self) -> float:
        """From the post (for an approval, once it showed in the queue) to the answer."""
        return self.answered - (self.posted if self.posted is not None else self.sent)


@dataclass
class Run:
    """What one offered rate produced."""

    rate: float
    seconds: float
    commands: list[Sent]
    elapsed: float
    late: list[float]
    dropped: int
    polls: int
    server: dict[str, float]
    cpu: dict[str, float]
    commits: int
    stream_load_ms: float | None
    commit_by_id_ms: float | None
    busy_before: float

    def errors(self) -> Counter[str]:
        return Counter(c.status for c in self.commands if not c.ok)


def _metric_sums(text: str, name: str, **labels: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram's series whose labels include `labels`."""
    totals = {"_sum": 0.0, "_count": 0.0}
    pattern = re.compile(rf"^{re.escape(name)}(_sum|_count)\{{(.*)\}} (\S+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m is None:
            continue
        series = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if all(series.get(k, "").startswith(v) for k, v in labels.items()):
            totals[m.group(1)] += float(m.group(3))
    return totals["_sum"], totals["_count"]


def _counter_series(text: str, name: str) -> dict[tuple[str, ...], float]:
    """A Prometheus counter's samples by their label values, in label order."""
    found: dict[tuple[str, ...], float] = {}
    pattern = re.compile(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m is not None:
            labels = tuple(v for _, v in re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            found[labels] = float(m.group(2))
    return found


DB_PREFIX = "db "
"""Keys of `server_metrics` that count database commands: `db <service> <collection> <command>`."""


class Lifecycle:
    def __init__(
        self, args: argparse.Namespace, stack: Stack, site: str, tokens: dict[str, str]
    ) -> None:
        self.args = args
        self.stack = stack
        self.site = site
        self.tokens = tokens
        self.cases: list[Case] = []
        self.rows: list[Row] = []
        self.runs: list[Run] = []
        self.queue: AsyncCollection[Document] | None = None  # supervision's approval queue
        # the servers' processes, when they run here, for the CPU each run costs them
        ports = {"ferretdb": urlparse(args.mongo_url).port, "kafka": args.kafka.split(":")[-1]}
        self.servers = {
            name: pid
            for name, port in ports.items()
            if port and (pid := listening_pid(int(port))) is not None
        }

    def client(self, service: str, who: str, limit: int = 16) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.stack.urls[service],
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=self.args.timeout,
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
        )

    async def run(self) -> list[Row]:
        a = self.args
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(a.mongo_url, tz_aware=True)
        summaries = mongo[self.stack.databases["cases"]]["case_summaries"]
        self.queue = mongo[self.stack.databases["supervision"]]["approval_queue"]
        try:
            await self.register_site()
            await self.open_cases(summaries)
            raw = await self.raw_stage()
            for rate in a.rates:
                await self.offered(rate, summaries, raw)
        finally:
            await mongo.close()
        return self.rows

    async def register_site(self) -> None:
        progress(f"registering site {self.site}; waiting until intake has heard of it")
        async with self.client("supervision", "admin") as supervision:
            created = await supervision.post(
                "/sites", json={"site": self.site, "name": "Benchmark"}
            )
            created.raise_for_status()
            # the caseworkers the cases are assigned to, in the organisation directory (the
            # cases service checks assignments against its copy; the cases open long after)
            team = await supervision.post(
                f"/sites/{self.site}/teams", json={"team": TEAM, "name": "Benchmark team"}
            )
            team.raise_for_status()
            for worker in CASEWORKERS:
                profile = {
                    "name": worker.title(),
                    "sites": [self.site],
                    "team": TEAM,
                    "roles": ["caseworker"],
                    "started_on": "2026-01-05",
                    "capacity_points": 100_000,  # two workers carry every case of the run
                }
                joined = await supervision.post("/staff", json={"staff_id": worker, **profile})
                if joined.status_code == 409:  # registered by an earlier run: move them here
                    joined = await supervision.put(f"/staff/{worker}", json=profile)
                joined.raise_for_status()
        async with self.client("intake", "intake") as intake:
            deadline = time.monotonic() + 60
            while True:  # intake learns of the site from the directory's events
                taken = await intake.post("/referrals", json=self.referral())
                if taken.status_code != 422 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            taken.raise_for_status()

    def referral(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "client": {
                "given_name": "Alex",
                "family_name": f"Morgan{uuid.uuid4().hex[:8]}",  # no duplicate-client match
                "date_of_birth": "1990-04-12",
            },
            "source": "gp",
            "presenting_concerns": "Low mood for three months, stopped going to work.",
            "urgency": "soon",
            "consent_to_share": True,
        }

    async def open_cases(self, summaries: AsyncCollection[Document]) -> None:
        a = self.args
        progress(f"opening {a.cases} cases through intake (referral → screening → acceptance)")
        started = time.perf_counter()
        gate = asyncio.Semaphore(8)
        async with self.client("intake", "intake") as intake:

            async def open_one(_: int) -> None:
                async with gate:
                    taken = await intake.post("/referrals", json=self.referral())
                    taken.raise_for_status()
                    path = f"/referrals/{taken.json()['referral_id']}"
                    screened = await intake.post(
                        f"{path}/screening",
                        json={"wish_to_be_dead": False, "suicidal_thoughts": False},
                    )
                    screened.raise_for_status()
                    accepted = await intake.post(f"{path}/accept")
                    accepted.raise_for_status()
                    self.cases.append(Case(accepted.json()["case_id"]))

            await asyncio.gather(*(open_one(i) for i in range(a.cases)))
        # A case exists in cases once its read model has it (the cases service opens it from
        # intake's event; its summary follows the opening).
        waiting = {c.case_id for c in self.cases}
        deadline = time.monotonic() + 120
        while waiting and time.monotonic() < deadline:
            for case_id in list(waiting):
                if await summaries.find_one({"_id": case_id}, {"_id": 1}) is not None:
                    waiting.discard(case_id)
            await asyncio.sleep(0.1)
        if waiting:
            raise TimeoutError(f"{len(waiting)} cases were never opened in the cases service")
        progress(f"{a.cases} cases open in {time.perf_counter() - started:.1f} s")

    async def raw_stage(self) -> Row:
        n = 1000
        progress(f"raw: {n} x GET /healthz on the cases service, {self.in_flight} in flight")
        latencies: list[float] = []
        indexes = iter(range(n))
        async with self.client("cases", MANAGER, self.in_flight) as cases:

            async def worker() -> None:
                for _ in indexes:
                    started = time.perf_counter()
                    (await cases.get("/healthz")).raise_for_status()
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(self.in_flight)))
            seconds = time.perf_counter() - started
        row = measured(f"raw GET /healthz, {self.in_flight} in flight", n, seconds, latencies)
        self.rows.append(row)
        return row

    @property
    def in_flight(self) -> int:
        return min(int(self.args.cases), int(self.args.max_in_flight))

    async def offered(self, rate: float, summaries: AsyncCollection[Document], raw: Row) -> None:
        a = self.args
        total = round(rate * a.seconds)
        progress(
            f"{rate:g} commands/s offered for {a.seconds} s ({total} commands over "
            f"{len(self.cases)} cases, ≤ {self.in_flight} in flight)"
        )
        idle: asyncio.Queue[Case] = asyncio.Queue()
        for case in self.cases:
            idle.put_nowait(case)
        slots = asyncio.Semaphore(self.in_flight)
        commands: list[Sent] = []
        late: list[float] = []
        dropped = 0
        quiet = await self.machine_busy(2.0)
        before = await self.server_metrics()
        cpu_before = self.cpu()
        clients = {who: self.client("cases", who, self.in_flight) for who in (MANAGER, WORKER)}
        clients[SUPERVISOR] = self.client("supervision", SUPERVISOR, self.in_flight)
        polling = Poller(summaries, self.cases)
        poller = asyncio.create_task(polling.run())
        tasks: set[asyncio.Task[None]] = set()
        try:
            started = time.perf_counter()
            window = started + a.seconds
            for i in range(total):
                due = started + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                blocked = slots.locked()
                try:  # a command that finds no free slot before the window closes is dropped
                    await asyncio.wait_for(slots.acquire(), max(0.0, window - time.perf_counter()))
                except TimeoutError:
                    dropped = total - i
                    break
                case = idle.get_nowait()  # a free slot means a case without a command in flight
                if blocked:  # every slot was taken when it fell due
                    late.append(time.perf_counter() - due)
                sent = Sent(CYCLE[case.step % len(CYCLE)].command, due, time.perf_counter())
                commands.append(sent)
                task = asyncio.create_task(self.issue(clients, case, sent, idle, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
            cpu = {k: v - cpu_before.get(k, 0.0) for k, v in self.cpu().items()}
            elapsed = max(c.answered for c in commands) - started if commands else 0.0
            progress("waiting for the read model to catch up")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(polling.drained(), timeout=a.drain)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            for client in clients.values():
                await client.aclose()
        after = await self.server_metrics()
        server = {k: after[k] - before.get(k, 0.0) for k in after}
        commits, load, by_id = await self.stream_load(summaries)
        run = Run(
            rate,
            a.seconds,
            commands,
            elapsed,
            late,
            dropped,
            polling.finds,
            server,
            cpu,
            commits,
            load,
            by_id,
            quiet,
        )
        self.runs.append(run)
        self.rows += self.rows_of(run, raw)
        errors = run.errors()
        progress(
            f"{rate:g}/s done: {sum(c.ok for c in commands)} accepted, "
            f"{sum(errors.values())} refused or failed, {len(late)} issued late, "
            f"{dropped} not issued"
        )

    async def issue(
        self,
        clients: dict[str, httpx.AsyncClient],
        case: Case,
        sent: Sent,
        idle: asyncio.Queue[Case],
        slots: asyncio.Semaphore,
    ) -> None:
        step = CYCLE[case.step % len(CYCLE)]
        cycle = case.step // len(CYCLE)
        try:
            if step.approval is not None:
                response = await self.decide(clients[step.who], case, step, cycle, sent)
            else:
                response = await clients[step.who].post(
                    f"/cases/{case.case_id}/{step.path}", json=step.body(cycle)
                )
            sent.answered = time.perf_counter()
            sent.status = str(response.status_code)
            if response.is_success and step.approval is not None:
                # the decision reaches the case through Kafka: one event, one version more;
                # the case takes its next command once its summary shows it
                sent.version = case.version + 1
                case.awaiting.append(sent)
                await self.applied(sent)
                case.version = sent.version
                case.step += 1
            elif response.is_success:
                answer = response.json()
                sent.version = case.version = int(answer["version"])
                if step.command == "propose plan":
                    case.subject["plan"] = int(answer["proposed_plan"]["plan_version"])
                elif step.command == "request closure":
                    case.subject["closure"] = case.version
                case.awaiting.append(sent)
                case.step += 1
            else:
                await self.resync(clients[MANAGER], case)
        except httpx.HTTPError as exc:
            sent.answered = time.perf_counter()
            sent.status = type(exc).__name__
            with contextlib.suppress(httpx.HTTPError):
                await self.resync(clients[MANAGER], case)
        finally:
            idle.put_nowait(case)
            slots.release()

    async def decide(
        self, supervisor: httpx.AsyncClient, case: Case, step: Step, cycle: int, sent: Sent
    ) -> httpx.Response:
        """Post the decision once the approval shows in the supervisor's queue (the cases
        service's event has reached the supervision service, which stored the request and
        projected it); posted again only if refused 404 all the same."""
        assert step.approval is not None
        path = case.approval_path(step.approval)
        approval_id = path.split("/")[2]
        deadline = time.perf_counter() + self.args.timeout
        assert self.queue is not None
        while time.perf_counter() < deadline:
            if await self.queue.find_one({"_id": approval_id}, {"_id": 1}) is not None:
                break
            await asyncio.sleep(POLL_INTERVAL_S)
        while True:
            sent.posted = time.perf_counter()
            response = await supervisor.post(path, json=step.body(cycle))
            if response.status_code != 404 or time.perf_counter() > deadline:
                return response
            await asyncio.sleep(POLL_INTERVAL_S)

    async def applied(self, sent: Sent) -> None:
        """Until the poller saw the case summary reach the decision's version."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sent.landed.wait(), timeout=self.args.drain)

    async def resync(self, manager: httpx.AsyncClient, case: Case) -> None:
        """After a refusal or a failure, pick the step that fits the case as it stands (a
        timed-out command may have been applied all the same)."""
        response = await manager.get(f"/cases/{case.case_id}")
        if not response.is_success:
            return  # try the same step again
        state = response.json()
        case.version = int(state["version"])
        if state.get("proposed_plan"):
            case.subject["plan"] = int(state["proposed_plan"]["plan_version"])
        phase, plan = state["phase"], state.get("plan_status")
        base = case.step - case.step % len(CYCLE)
        names = [s.command for s in CYCLE]
        if phase == "assessment":
            offset = names.index("assessment") if state.get("caseworker_id") else 0
        elif phase == "planning":
            offset = names.index("approve plan" if plan == "proposed" else "propose plan")
        elif phase == "active":
            offset = names.index("approve plan" if plan != "approved" else "goal progress")
        elif phase == "review":
            offset = names.index("approve closure")
        else:
            offset = names.index("reopen")
        case.step = base + offset

    async def machine_busy(self, seconds: float) -> float:
        """Cores busy over `seconds`, before a run: anything well above zero is load from
        outside the stack that the figures then share the machine with."""
        before = self.cpu()
        await asyncio.sleep(seconds)
        after = self.cpu()
        return (after["machine busy"] - before["machine busy"]) / (after["wall"] - before["wall"])

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: the machine's busy and total (all cores, from /proc/stat), each
        service's process, and this one's."""
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        seconds = {"machine busy": (sum(ticks) - idle) / tick, "machine": sum(ticks) / tick}
        for name, pid in {**self.stack.pids, **self.servers}.items():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                seconds[name] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        seconds["bench"] = time.process_time()
        seconds["wall"] = time.perf_counter()
        return seconds

    async def stream_load(
        self, summaries: AsyncCollection[Document]
    ) -> tuple[int, float | None, float | None]:
        """How many commits the cases service's event store holds; how long loading one
        case's stream takes, as `EventStore.load` queries it, and reading one commit by its
        `_id` (medians of up to 20, taken with nothing else running)."""
        commits = summaries.database["events"]  # EventStore's default collection
        count = await commits.count_documents({})
        by_stream, by_id = [], []
        for case in self.cases[:20]:
            started = time.perf_counter()
            await commits.find({"stream_id": case.stream}).sort("first", 1).to_list(None)
            by_stream.append(time.perf_counter() - started)
            started = time.perf_counter()
            await commits.find_one({"_id": f"{case.stream}:{1:010d}"})  # eventstore.commit_id
            by_id.append(time.perf_counter() - started)
        return count, percentile_ms(by_stream, 0.5), percentile_ms(by_id, 0.5)

    async def server_metrics(self) -> dict[str, float]:
        """The cases service's own counters: time inside it per command, and the event →
        `case_summaries` lag (sums and counts, to take differences); and every service's
        database commands by collection and command (`db <service> <collection> <command>`)."""
        counts: dict[str, float] = {}
        for service in self.stack.urls:
            async with self.client(service, MANAGER) as client:
                served = (await client.get("/metrics")).text
            for (collection, command), n in _counter_series(
                served, "casework_db_commands_total"
            ).items():
                counts[f"{DB_PREFIX}{service} {collection} {command}"] = n
        async with self.client("cases", MANAGER) as cases:
            text = (await cases.get("/metrics")).text
        post_sum, post_count = _metric_sums(
            text, "casework_http_request_duration_seconds", method="POST", route="/cases/"
        )
        lag_sum, lag_count = _metric_sums(
            text, "casework_projection_lag_seconds", projection="case_summaries"
        )
        return {
            "post_seconds": post_sum,
            "posts": post_count,
            "lag_seconds": lag_sum,
            "lagged": lag_count,
            **counts,
        }

    def rows_of(self, run: Run, raw: Row) -> list[Row]:
        ok = [c for c in run.commands if c.ok]
        label = f"@ {run.rate:g}/s"
        rows = [
            against(
                measured(
                    f"{label} commands (HTTP)",
                    len(ok),
                    run.elapsed,
                    [c.latency for c in ok],
                ),
                raw,
            ),
            measured(
                f"{label} accepted → read model",
                sum(c.applied is not None for c in ok),
                run.elapsed,
                [c.applied - c.answered for c in ok if c.applied is not None],
            ),
        ]
        for command in COMMANDS:
            these = [c for c in ok if c.command == command]
            rows.append(
                measured(
                    f"{label}   {command}",
                    len(these),
                    run.elapsed,
                    [c.latency for c in these],
                )
            )
        decided = [c for c in ok if c.posted is not None]
        rows.append(
            measured(
                f"{label}   approval reaches the queue",
                len(decided),
                run.elapsed,
                [c.posted - c.sent for c in decided if c.posted is not None],
            )
        )
        return rows


class Poller:
    """Reads the `case_summaries` documents of cases with commands awaiting their read
    model, by exact `_id`, every ~10 ms; stamps each command when its version shows up."""

    def __init__(self, summaries: AsyncCollection[Document], cases: Iterable[Case]) -> None:
        self.summaries = summaries
        self.cases = list(cases)
        self.finds = 0
        self._nothing_awaited = asyncio.Event()

    async def run(self) -> None:
        while True:
            waiting = [c for c in self.cases if c.awaiting]
            if waiting:
                self._nothing_awaited.clear()
                await asyncio.gather(*(self.look(c) for c in waiting))
            else:
                self._nothing_awaited.set()
            await asyncio.sleep(POLL_INTERVAL_S)

    async def look(self, case: Case) -> None:
        doc = await self.summaries.find_one({"_id": case.case_id}, {"_applied": 1})
        seen = time.perf_counter()
        self.finds += 1
        applied = int((doc or {}).get("_applied", {}).get(case.stream, 0))
        still = []
        for sent in case.awaiting:
            if sent.version is not None and sent.version <= applied:
                sent.applied = seen
                sent.landed.set()
            else:
                still.append(sent)
        case.awaiting = still

    async def drained(self) -> None:
        """Returns once a pass finds no command awaiting its read model."""
        self._nothing_awaited.clear()  # a pass from before the last answers came is stale
        await self._nothing_awaited.wait()


def render(rows: list[Row], runs: list[Run], header: str) -> str:
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
            f"{cell(r.p99_ms, '6.1f'):>6} | {cell(r.raw_rate, '9.0f'):>9} | "
            f"{cell(r.ratio, '5.2f'):>5} |"
        )
    lines += [
        "",
        "commands (HTTP): 2xx answers per second from the first command due to the last "
        "answer, and their latency as the client saw it; accepted → read model: from the 2xx "
        "answer to the case's `case_summaries` document showing its version (polled every "
        f"{POLL_INTERVAL_S * 1000:.0f} ms); ratio = commands/s over the raw limit.",
        "",
    ]
    for run in runs:
        lines += notes(run)
    return "\n".join(lines)


def notes(run: Run) -> list[str]:
    """What else one run showed: refusals, lateness, the service's own view, CPU."""
    if not run.elapsed:
        return [f"@ {run.rate:g}/s: nothing answered", ""]
    errors = run.errors()
    refused = ", ".join(f"{status} x {n}" for status, n in sorted(errors.items())) or "none"
    unseen = sum(c.ok and c.applied is None for c in run.commands)
    s, cpu = run.server, dict(run.cpu)
    inside = s["post_seconds"] / s["posts"] * 1000 if s.get("posts") else 0.0
    lag = s["lag_seconds"] / s["lagged"] * 1000 if s.get("lagged") else 0.0
    load = "—" if run.stream_load_ms is None else f"{run.stream_load_ms:.1f} ms"
    by_id = "—" if run.commit_by_id_ms is None else f"{run.commit_by_id_ms:.1f} ms"
    wall = cpu.pop("wall")
    cores = cpu.pop("machine") / wall
    busy = cpu.pop("machine busy") / wall
    per_process = {name: seconds / wall for name, seconds in cpu.items()}
    rest = max(0.0, busy - sum(per_process.values()))  # counters read a moment apart
    used = ", ".join(f"{name} {c:.2f}" for name, c in per_process.items())
    return [
        f"@ {run.rate:g}/s offered for {run.seconds} s: {len(run.commands)} issued, "
        f"{run.dropped} not issued (no free slot before the window closed); issued late "
        f"(every slot taken): {len(run.late)}, worst {max(run.late, default=0.0) * 1000:.0f} "
        f"ms; non-2xx: {refused}; accepted but not in the read model after the drain: "
        f"{unseen}. Cores busy in the 2 s before the run: {run.busy_before:.2f}.",
        f"  the cases service's /metrics (means): {inside:.1f} ms inside the service per "
        f"command; {lag:.1f} ms from an event to its case_summaries update.",
        f"  its event store then held {run.commits} commits; loading one case's stream "
        f"(find by stream_id, sorted) took {load} (p50), one commit by _id {by_id}.",
        f"  CPU while commands ran, in cores of {cores:.1f}: machine busy {busy:.2f}; {used}; "
        f"anything else {rest:.2f}. Read-model polls: "
        f"{run.polls / run.elapsed:.0f}/s.",
        *database_work(run),
        "",
    ]


def database_work(run: Run) -> list[str]:
    """Database commands per accepted command, by service, and the most frequent ones: the
    database work each command costs the whole platform (its events projected everywhere)."""
    accepted = sum(c.ok for c in run.commands)
    db = {k[len(DB_PREFIX) :]: v for k, v in run.server.items() if k.startswith(DB_PREFIX)}
    if not accepted or not db:
        return []
    by_service: dict[str, float] = {}
    for key, n in db.items():
        service = key.split(" ", 1)[0]
        by_service[service] = by_service.get(service, 0.0) + n
    services = ", ".join(
        f"{name} {n / accepted:.1f}"
        for name, n in sorted(by_service.items(), key=lambda kv: -kv[1])
    )
    top = ", ".join(
        f"{key} {n / accepted:.1f}" for key, n in sorted(db.items(), key=lambda kv: -kv[1])[:8]
    )
    return [
        f"  database commands per accepted command: {sum(db.values()) / accepted:.1f} "
        f"({services}); the most: {top}."
    ]


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (Linux /proc), to count its CPU; None when
    it cannot be told (another user's process, another machine, not Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
    return None


def mint_tokens(stack: Stack, site: str) -> dict[str, str]:
    """Everyone's token at once: each runs the `casework token` CLI, most of a second."""
    people: dict[str, Callable[[], str]] = {
        "admin": lambda: stack.token("root", "regional_admin"),
        "intake": lambda: stack.token("ivy", "intake_worker", sites=(site,)),
        MANAGER: lambda: stack.token("sam", "site_manager", sites=(site,)),
        WORKER: lambda: stack.token("carl", "caseworker", sites=(site,), team=TEAM),
        SUPERVISOR: lambda: stack.token("sue", "supervisor", sites=(site,), team=TEAM),
    }
    with ThreadPoolExecutor(max_workers=len(people)) as pool:
        futures = {who: pool.submit(mint) for who, mint in people.items()}
        return {who: f.result() for who, f in futures.items()}


def bench(args: argparse.Namespace, workdir: Path) -> tuple[list[Row], list[Run]]:
    progress(f"starting the five services on ports {args.base_port}-{args.base_port + 4}")
    with running_stack(
        args.kafka, args.mongo_url, workdir, args.base_port, prefix="bench"
    ) as stack:
        progress(f"stack {stack.namespace} ready; logs in {stack.logs}")
        site = f"{SITE_PREFIX}-{uuid.uuid4().hex[:6]}"
        tokens = mint_tokens(stack, site)
        lifecycle = Lifecycle(args, stack, site, tokens)
        rows = asyncio.run(lifecycle.run())
        return rows, lifecycle.runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Case lifecycle benchmark (see the module doc).")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[10.0, 30.0],
        metavar="R",
        help="offered commands/s, one run each (default: 10 30)",
    )
    parser.add_argument("--seconds", type=int, default=20, help="length of each run")
    parser.add_argument("--cases", type=int, default=16, help="cases the commands cycle over")
    parser.add_argument("--max-in-flight", type=int, default=32, help="commands in flight, at most")
    parser.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    parser.add_argument(
        "--drain", type=float, default=30.0, help="seconds to wait for the read model after a run"
    )
    parser.add_argument("--base-port", type=int, default=18301, help="the stack's first port")
    server_options(parser)
    parser.add_argument("--workdir", help="keep the services' logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.workdir:
        rows, runs = bench(args, Path(args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="casework-bench-") as workdir:
            rows, runs = bench(args, Path(workdir))
    print(
        render(
            rows,
            runs,
            f"Case lifecycle through the APIs: {args.cases} cases, {args.seconds} s at each of "
            f"{', '.join(f'{r:g}' for r in args.rates)} commands/s offered, ≤ "
            f"{min(args.cases, args.max_in_flight)} in flight; "
            f"Kafka {args.kafka}, MongoDB-wire {args.mongo_url} {args.label}".rstrip(),
        )
    )
    write_json(
        args,
        rows,
        runs=[
            {
                "rate": r.rate,
                "seconds": r.seconds,
                "issued": len(r.commands),
                "elapsed": r.elapsed,
                "errors": dict(r.errors()),
                "late": len(r.late),
                "not_issued": r.dropped,
                "busy_before": r.busy_before,
                "read_model_polls": r.polls,
                "server": r.server,
                "cpu_seconds": r.cpu,
                "commits": r.commits,
                "stream_load_ms": r.stream_load_ms,
                "commit_by_id_ms": r.commit_by_id_ms,
            }
            for r in runs
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
