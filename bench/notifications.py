"""Benchmark of crisis alerts end to end, on the running services (intake, cases,
supervision, notifications as processes on the real servers).

`--crises` cases are opened and assigned; the site's on-call worker keeps a live stream
(server-sent events) open on the notifications service; a background load of case notes is
sent at `--background-rate`/s over HTTP throughout. Crises are declared one at a time, over
HTTP, `--gap` seconds apart. For each, from the HTTP answer of `POST /cases/{id}/crisis`:

- **pushed**: the on-call worker's live stream delivers the notification;
- **readable**: `GET /inbox` of the on-call worker lists it (asked every 50 ms, and at once
  when the live stream pushes it — a request of its own beside any poll in flight — as a
  console that refreshes on the push would; the time is that of the first answer that lists
  it);
- **e-mail**: the SMTP server (aiosmtpd, in this process) accepts the message to them;
- **escalation lateness**: with a policy whose second level comes 1 minute after the
  opening, the time it was reached minus the time it was due (from the alert board), for
  every crisis left unacknowledged.

Beside them, the raw limit measured in the same run: a bare produce → consume round trip on
the same broker (aiokafka, `acks=all`), p50/p99. Goals (issue 11): pushed/readable p99 ≤
500 ms, e-mail p99 ≤ 2 s, escalation lateness p99 ≤ 1 s.

`make bench` runs it (`scripts/bench.sh`), or `uv run python bench/notifications.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiosmtpd.controller import Controller

from casework.devstack import Stack, running_stack

from report import (
    Row,
    histogram_buckets,
    histogram_delta,
    histogram_table,
    measured,
    progress,
    server_options,
    stages_table,
    table,
    write_json,
)

TEAM = "t-bench"
POLL_S = 0.05
"""How often the bench asks `GET /inbox` (each read is audited: asking every 10 ms was itself
a load that slowed the pipeline it measured). A push on the live stream makes it ask at once,
so a readable time is late by one request, not by a poll's wait."""
HIGH = {"wish_to_be_dead": True, "suicidal_thoughts": True, "suicidal_intent": True}


class Sink:
    """aiosmtpd handler: when each recipient's message arrived (perf_counter)."""

    def __init__(self) -> None:
        self.arrived: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        now = time.perf_counter()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt, []).append(now)
        return "250 OK"


def routing_table(path: Path) -> Path:
    """The default table, with the crisis policy's second level 1 minute after the opening."""
    from casework_notifications.domain.routing import DEFAULT_TABLE

    table_ = json.loads(json.dumps(DEFAULT_TABLE))
    table_["policies"]["crisis"]["levels"][1]["delay_minutes"] = 1
    path.write_text(json.dumps(table_))
    return path


def ok(response: httpx.Response, *codes: int) -> dict[str, Any]:
    if response.status_code not in (codes or (200, 201)):
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


class Bench:
    def __init__(self, args: argparse.Namespace, stack: Stack, sink: Sink) -> None:
        self.args = args
        self.stack = stack
        self.sink = sink
        run = uuid.uuid4().hex[:6]
        self.site = f"bn-{run}"
        self.ids = {k: f"{k}-{run}" for k in ("wendy", "olga", "ben", "sam", "mia")}
        self.pushed: dict[str, float] = {}
        self.pushed_wall: dict[str, float] = {}
        self.push_seen: dict[str, asyncio.Event] = {}  # set when the alert is pushed
        self.on_kafka: dict[str, tuple[float, float]] = {}
        """Per case: (the record's Kafka timestamp, when this process received it), epoch s."""
        self.breakdown = ""

    def token(self, who: str, *roles: str) -> str:
        team = TEAM if who in ("wendy", "sam") else None
        return self.stack.token(self.ids[who], *roles, sites=(self.site,), team=team)

    async def directory(self) -> None:
        admin = self.stack.token("root", "regional_admin")
        async with httpx.AsyncClient(
            base_url=self.stack.urls["supervision"],
            headers={"Authorization": f"Bearer {admin}"},
            timeout=10,
        ) as sup:
            ok(await sup.post("/sites", json={"site": self.site, "name": "Bench"}), 201, 409)
            ok(
                await sup.post(f"/sites/{self.site}/teams", json={"team": TEAM, "name": "B"}),
                201,
                409,
            )
            for who, role in (
                ("sam", "supervisor"),
                ("wendy", "caseworker"),
                ("olga", "crisis_worker"),
                ("ben", "crisis_worker"),
                ("mia", "site_manager"),
            ):
                body: dict[str, Any] = {
                    "staff_id": self.ids[who],
                    "name": who.title(),
                    "email": f"{self.ids[who]}@agency.test",
                    "sites": [self.site],
                    "roles": [role],
                    "started_on": "2024-01-01",
                }
                if who in ("wendy", "sam"):
                    body["team"] = TEAM
                ok(await sup.post("/staff", json=body), 201, 409)
            ok(
                await sup.put(
                    f"/staff/{self.ids['wendy']}/supervisor",
                    json={"supervisor_id": self.ids["sam"]},
                ),
                200,
                409,
            )
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            ok(
                await sup.post(
                    f"/sites/{self.site}/rota/shifts",
                    json={
                        "shift_id": uuid.uuid4().hex,
                        "staff_id": self.ids["olga"],
                        "backup_id": self.ids["ben"],
                        "starts_at": (now - timedelta(hours=1)).isoformat(),
                        "ends_at": (now + timedelta(hours=8)).isoformat(),
                    },
                ),
                201,
            )

    async def open_cases(self, n: int) -> list[str]:
        intake_token = self.stack.token("ivy-bench", "intake_worker", sites=(self.site,))
        manager = self.token("mia", "site_manager")
        cases: list[str] = []
        async with (
            httpx.AsyncClient(
                base_url=self.stack.urls["intake"],
                headers={"Authorization": f"Bearer {intake_token}"},
                timeout=10,
            ) as intake,
            httpx.AsyncClient(
                base_url=self.stack.urls["cases"],
                headers={"Authorization": f"Bearer {manager}"},
                timeout=10,
            ) as cases_api,
        ):
            for _ in range(n):
                referral = {
                    "site": self.site,
                    "client": {
                        "given_name": "B",
                        "family_name": f"Bench{uuid.uuid4().hex[:8]}",
                        "date_of_birth": "1990-01-01",
                    },
                    "source": "gp",
                    "presenting_concerns": "Low mood.",
                    "urgency": "urgent",
                }
                rid = (await self.retry(intake, "/referrals", referral))["referral_id"]
                await self.retry(intake, f"/referrals/{rid}/screening", HIGH)
                case_id = str((await self.retry(intake, f"/referrals/{rid}/accept"))["case_id"])
                # one worker holds every crisis of the run: past her capacity, by decision
                assign = {
                    "caseworker_id": self.ids["wendy"],
                    "team": TEAM,
                    "capacity_override_reason": "benchmark: one worker takes every crisis",
                }
                await self.retry(cases_api, f"/cases/{case_id}/assignment", assign)
                cases.append(case_id)
        return cases

    async def retry(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST until the service has heard what it needs (404/409/422 while it has not)."""
        for _ in range(200):
            response = await client.post(path, json=body)
            if response.status_code in (200, 201):
                return dict(response.json())
            if response.status_code not in (404, 409, 422):
                break
            await asyncio.sleep(0.05)
        return ok(response)

    async def listen(self, ready: asyncio.Event) -> None:
        token = self.token("olga", "crisis_worker")
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream(
                "GET",
                f"{self.stack.urls['notifications']}/inbox/stream",
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                    alert = data.get("alert_id")
                    if alert and alert not in self.pushed:
                        self.pushed[alert] = time.perf_counter()
                        self.pushed_wall[alert] = time.time()
                        self.push_seen.setdefault(alert, asyncio.Event()).set()

    async def background(self, cases: list[str], stop: asyncio.Event) -> int:
        """Case notes at a steady rate (other events through the same pipeline)."""
        token = self.token("wendy", "caseworker")
        sent = 0
        interval = 1 / self.args.background_rate
        async with httpx.AsyncClient(
            base_url=self.stack.urls["cases"],
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ) as cases_api:
            next_at = time.perf_counter()
            while not stop.is_set():
                case_id = cases[sent % len(cases)]
                with contextlib.suppress(httpx.HTTPError):
                    await cases_api.post(f"/cases/{case_id}/notes", json={"text": "Bench note"})
                sent += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        return sent

    async def run(self) -> list[Row]:
        await self.directory()
        progress(f"opening {self.args.crises} cases at site {self.site}")
        cases = await self.open_cases(self.args.crises)
        others = await self.open_cases(4)  # the background notes go to these
        raw = await raw_round_trip(self.args.kafka, self.args.raw)
        ready = asyncio.Event()
        listener = asyncio.create_task(self.listen(ready))
        await ready.wait()
        stop = asyncio.Event()
        load = asyncio.create_task(self.background(others, stop))
        await asyncio.sleep(2)
        worker = self.token("wendy", "caseworker")
        olga = self.token("olga", "crisis_worker")
        answered: dict[str, float] = {}
        readable: dict[str, float] = {}
        walls: dict[str, tuple[float, float, float]] = {}  # sent, answered, readable (epoch s)
        watching = asyncio.Event()
        watcher = asyncio.create_task(self.watch_cases(watching))
        await asyncio.wait([watcher, asyncio.create_task(watching.wait())], timeout=30)
        if not watching.is_set():
            raise RuntimeError("the cases topic could not be watched") from (
                watcher.exception() if watcher.done() else None
            )
        metrics_before = await self.metrics()
        started = time.perf_counter()
        async with (
            httpx.AsyncClient(
                base_url=self.stack.urls["cases"],
                headers={"Authorization": f"Bearer {worker}"},
                timeout=10,
            ) as cases_api,
            httpx.AsyncClient(
                base_url=self.stack.urls["notifications"],
                headers={"Authorization": f"Bearer {olga}"},
                timeout=10,
            ) as inbox,
        ):
            for i, case_id in enumerate(cases):
                alert = f"crisis:{case_id}"
                push = self.push_seen.setdefault(alert, asyncio.Event())
                sent_wall = time.time()
                ok(await cases_api.post(f"/cases/{case_id}/crisis", json={"summary": "Bench"}))
                answered[alert] = time.perf_counter()
                answered_wall = time.time()
                readable_wall = float("nan")
                if await self.listed(inbox, alert, push):
                    readable[alert] = time.perf_counter()
                    readable_wall = time.time()
                walls[alert] = (sent_wall, answered_wall, readable_wall)
                progress(f"crisis {i + 1}/{len(cases)}")
                await asyncio.sleep(self.args.gap)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(3)
        metrics_after = await self.metrics()
        stop.set()
        notes = await load
        listener.cancel()
        watcher.cancel()
        self.breakdown = self.stages(walls, metrics_before, metrics_after)
        mails = self.sink.arrived.get(f"{self.ids['olga']}@agency.test", [])
        # e-mails are matched to crises in order (one per crisis to the on-call worker)
        mail_lat = [m - a for m, a in zip(sorted(mails), sorted(answered.values()), strict=False)]
        rows = [
            measured(
                "crisis → pushed on the live stream",
                len(self.pushed),
                elapsed,
                [self.pushed[a] - answered[a] for a in answered if a in self.pushed],
            ),
            measured(
                "crisis → readable in GET /inbox",
                len(readable),
                elapsed,
                [readable[a] - answered[a] for a in readable],
            ),
            measured("crisis → e-mail accepted by SMTP", len(mail_lat), elapsed, mail_lat),
        ]
        progress(self.breakdown)
        if self.args.escalation:
            progress("waiting for the 1-minute escalations")
            rows.append(await self.lateness(list(answered)))
        rows.append(raw)
        progress(f"background: {notes} case notes")
        return rows

    async def listed(self, inbox: httpx.AsyncClient, alert: str, push: asyncio.Event) -> bool:
        """Whether `GET /inbox` lists `alert` within 10 s, asked as a console would: every
        `POLL_S`, and at once when the live stream pushes it — a request of its own beside a
        poll already in flight (which may have been read before the entry was stored), not
        after it. Returns when the first answer lists it; the other asking is cancelled."""

        async def lists() -> bool:
            entries = (await inbox.get("/inbox", params={"limit": 5})).json()["entries"]
            return any(e["alert_id"] == alert for e in entries)

        async def polling() -> None:  # a console's refresh: polling is what is measured
            while True:
                if await lists():
                    return
                await asyncio.sleep(POLL_S)

        async def on_push() -> None:
            await push.wait()
            await polling()

        askers = [asyncio.create_task(polling()), asyncio.create_task(on_push())]
        try:
            done, _ = await asyncio.wait(askers, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            return any(not t.cancelled() and t.exception() is None for t in done)
        finally:
            for task in askers:
                task.cancel()
            await asyncio.gather(*askers, return_exceptions=True)

    async def watch_cases(self, ready: asyncio.Event) -> None:
        """When each `CrisisDeclared` was produced (its record's timestamp, set by the cases
        relay's producer) and when a consumer of the topic (this one) had it."""
        topic = f"{self.stack.namespace}.casework.cases.events"
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=self.args.kafka)
        await consumer.start()
        try:
            for _ in range(200):  # without a group, every partition is assigned at start
                if consumer.assignment():
                    break
                await asyncio.sleep(0.05)
            parts = list(consumer.assignment())
            if not parts:
                raise RuntimeError(f"no partitions of {topic}")
            await consumer.seek_to_end(*parts)
            for tp in parts:
                await consumer.position(tp)  # resolved now: nothing after this is missed
            ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for records in batch.values():
                    for r in records:
                        kind = dict(r.headers).get("ce_type", b"").decode()
                        if ".CrisisDeclared." in kind and r.key:
                            case_id = r.key.decode().removeprefix("case-")
                            self.on_kafka.setdefault(case_id, (r.timestamp / 1000, now))
        finally:
            await consumer.stop()

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=10) as client:
            return (await client.get(f"{self.stack.urls['notifications']}/metrics")).text

    def stages(self, walls: dict[str, tuple[float, float, float]], before: str, after: str) -> str:
        """Where each crisis's time went: the bench's own clocks, the commits' `recorded_at`
        (taken by the writer just before its two inserts), the Kafka record timestamp, and the
        notifications process's stage histogram (`casework_notifications.application.timing`).
        """
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(self.args.mongo_url, tz_aware=True)
        try:
            cases_db = client[self.stack.databases["cases"]]
            crisis_commit: dict[str, float] = {}
            for doc in cases_db["events"].find(
                {}, {"stream_id": 1, "recorded_at": 1, "events.type": 1}
            ):
                if any(".CrisisDeclared." in str(e.get("type", "")) for e in doc.get("events", [])):
                    case_id = str(doc["stream_id"]).removeprefix("case-")
                    crisis_commit[case_id] = doc["recorded_at"].timestamp()
            notes_db = client[self.stack.databases["notifications"]]
            alert_commit: dict[str, float] = {}
            risk_commit: dict[str, float] = {}
            for doc in notes_db["events"].find({"first": 1}, {"stream_id": 1, "recorded_at": 1}):
                stream = str(doc["stream_id"])
                if stream.startswith("alert-crisis:"):
                    alert_commit[stream.removeprefix("alert-")] = doc["recorded_at"].timestamp()
                elif stream.startswith("alert-risk_raised:"):
                    # the risk rise of the crisis's own commit: its alert is decided first
                    case_id = stream.removeprefix("alert-risk_raised:")
                    risk_commit[case_id] = doc["recorded_at"].timestamp()
        finally:
            client.close()
        milestones: dict[str, list[float]] = {}
        spans: dict[str, list[float]] = {}

        def add(into: dict[str, list[float]], name: str, value: float | None) -> None:
            if value is not None and value == value:  # not NaN
                into.setdefault(name, []).append(value)

        for alert, (sent, answered, readable) in walls.items():
            case_id = alert.removeprefix("crisis:")
            commit = crisis_commit.get(case_id)
            produced, consumed = self.on_kafka.get(case_id, (None, None))
            saved = alert_commit.get(alert)
            pushed = self.pushed_wall.get(alert)

            def since(t: float | None, origin: float | None = sent) -> float | None:
                return None if t is None or origin is None else t - origin

            add(milestones, "cases commit begun (recorded_at)", since(commit))
            add(milestones, "HTTP answer", since(answered))
            add(milestones, "relay produced (Kafka record timestamp)", since(produced))
            add(milestones, "a bare consumer has it (this bench)", since(consumed))
            risk = risk_commit.get(case_id)
            add(milestones, "risk-raised alert commit begun (same commit)", since(risk))
            add(milestones, "alert commit begun (recorded_at)", since(saved))
            add(milestones, "pushed on the live stream", since(pushed))
            add(milestones, "readable in GET /inbox", since(readable))
            add(spans, "HTTP answer → relay produced", since(produced, answered))
            add(spans, "cases commit begun → relay produced", since(produced, commit))
            add(spans, "relay produced → a bare consumer has it", since(consumed, produced))
            add(spans, "relay produced → alert commit begun", since(saved, produced))
            add(spans, "relay produced → risk-raised alert commit begun", since(risk, produced))
            add(spans, "risk-raised alert commit → crisis alert commit", since(saved, risk))
            add(spans, "alert commit begun → pushed", since(pushed, saved))
            add(spans, "pushed → readable (the GET asked on the push)", since(readable, pushed))
        name = "casework_notifications_crisis_stage_seconds"
        delta = histogram_delta(
            histogram_buckets(before, name, "stage"), histogram_buckets(after, name, "stage")
        )
        lag_name = "casework_projection_lag_seconds"
        lag = histogram_delta(
            histogram_buckets(before, lag_name, "projection"),
            histogram_buckets(after, lag_name, "projection"),
        )
        in_process = [
            "received",
            "case_facts",
            "recipients",
            "alert_load",
            "alert_save",
            "inline_inbox",
            "after_save",
            "handled",
            "pushed",
        ]
        return "\n\n".join(
            [
                stages_table(
                    list(milestones.items()),
                    "Where a crisis's time goes (1): each milestone from its HTTP request sent",
                ),
                stages_table(
                    list(spans.items()),
                    "Where a crisis's time goes (2): between milestones, per crisis",
                ),
                histogram_table(
                    delta,
                    in_process,
                    "Where a crisis's time goes (3): in the notifications process "
                    "(casework_notifications_crisis_stage_seconds, read off its buckets)",
                    "`received` and `pushed` count from the event's time (the cases command's "
                    "decision); `alert_save` includes `inline_inbox` (one per entry).",
                )
                if delta
                else "(3): the notifications process has no crisis stage histogram",
                histogram_table(
                    lag,
                    ["when_case_changed_raise_alerts", "inbox"],
                    "projection_lag of the first hop and the inbox's consumer over the crisis "
                    "phase (every event, background notes included)",
                ),
            ]
        )

    async def lateness(self, alerts: list[str]) -> Row:
        manager = self.token("mia", "site_manager")
        late: list[float] = []
        async with httpx.AsyncClient(
            base_url=self.stack.urls["notifications"],
            headers={"Authorization": f"Bearer {manager}"},
            timeout=10,
        ) as api:
            end = time.perf_counter() + 120
            while time.perf_counter() < end:
                docs: list[dict[str, Any]] = (
                    await api.get(f"/sites/{self.site}/crisis-board")
                ).json()
                reached = [d for d in docs if d["alert_id"] in alerts and d["step"] >= 1]
                if len(reached) == len(alerts):
                    for d in reached:
                        step = next(s for s in d["steps"] if s["step"] == 1)
                        due = datetime.fromisoformat(step["due_at"])
                        at = datetime.fromisoformat(step["at"])
                        late.append((at - due).total_seconds())
                    break
                await asyncio.sleep(1)
        return measured("escalation lateness (1-minute level)", len(late), 60.0, late)


async def raw_round_trip(bootstrap: str, n: int) -> Row:
    """The raw limit: produce one record (acks=all) and consume it, one at a time."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await producer.start()
    await producer.send_and_wait(topic, b"warm")
    await consumer.start()
    await consumer.seek_to_end()
    latencies: list[float] = []
    started = time.perf_counter()
    try:
        for i in range(n):
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, str(i).encode())
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                if any(r.value == str(i).encode() for rs in batch.values() for r in rs):
                    break
            latencies.append(time.perf_counter() - t0)
    finally:
        await consumer.stop()
        await producer.stop()
    return measured(
        "raw: produce → consume round trip", n, time.perf_counter() - started, latencies
    )


def bench(args: argparse.Namespace, workdir: Path) -> list[Row]:
    sink = Sink()
    smtp_port = args.base_port + 10
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    env = {
        "CASEWORK_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "CASEWORK_NOTIFICATIONS_SMTP_PORT": str(smtp_port),
        "CASEWORK_NOTIFICATIONS_ROUTING_FILE": str(routing_table(workdir / "routing.json")),
        "CASEWORK_NOTIFICATIONS_QUIET_HOURS_START": "00:00",
        "CASEWORK_NOTIFICATIONS_QUIET_HOURS_END": "00:00",
        "CASEWORK_RELAY_POLL_INTERVAL_S": "0.2",
    }
    try:
        progress(f"starting the services on ports {args.base_port}-{args.base_port + 4}")
        with running_stack(
            args.kafka,
            args.mongo_url,
            workdir,
            args.base_port,
            prefix="bench",
            env=env,
            services=("intake", "cases", "supervision", "notifications"),
        ) as stack:
            progress(f"stack {stack.namespace} ready; logs in {stack.logs}")
            runner = Bench(args, stack, sink)
            rows = asyncio.run(runner.run())
            args.breakdown = runner.breakdown
            return rows
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Crisis alert benchmark (see the module doc).")
    parser.add_argument("--crises", type=int, default=30, help="crises declared, one per case")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between crises")
    parser.add_argument("--background-rate", type=float, default=10.0, help="notes/s meanwhile")
    parser.add_argument(
        "--escalation",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for the 1-minute escalations and measure their lateness (a minute more)",
    )
    parser.add_argument("--raw", type=int, default=200, help="raw round trips measured")
    parser.add_argument("--base-port", type=int, default=18501, help="the stack's first port")
    parser.add_argument("--workdir", help="keep the services' logs here (default: a temp dir)")
    server_options(parser)
    args = parser.parse_args(argv)
    if args.workdir:
        rows = bench(args, Path(args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="casework-bench-") as workdir:
            rows = bench(args, Path(workdir))
    print(
        table(
            rows,
            f"Crisis alerts end to end: {args.crises} crises {args.gap} s apart under "
            f"{args.background_rate:g} notes/s; Kafka {args.kafka}, MongoDB-wire "
            f"{args.mongo_url} {args.label}".rstrip(),
            "Goals: pushed and readable p99 ≤ 500 ms, e-mail p99 ≤ 2 s, escalation lateness "
            "p99 ≤ 1 s; the raw round trip is the floor under one Kafka hop (a crisis takes two: "
            "cases → notifications → its read models).",
        )
    )
    breakdown = getattr(args, "breakdown", "")
    print()
    print(breakdown)
    args.breakdown = None
    write_json(args, rows, breakdown=breakdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
