"""Outages heal (issue 6 §2), on the real stack: FerretDB stopped for 40 s, then Kafka for 40 s,
while referrals are taken, screened and accepted over HTTP. Afterwards every accepted referral
has its case, the dead-letter topics are empty, and every read model of intake and cases
equals a rebuild from scratch; during the database outage the API answered 503 with
`Retry-After`, promptly.

The test never touches the shared servers: it starts its own Kafka, FerretDB and PostgreSQL
with `scripts/infra.sh` (state in `CASEWORK_OUTAGE_STATE`, default a fresh directory under
/tmp; ports from `CASEWORK_E2E_BASE_PORT` + 20..23, the services on + 10..14) and stops them
at the end. `CASEWORK_OUTAGE_SECONDS` (default 40: longer than the half-minute outage that used
to dead-letter everything, whose five tries spanned ~25 s) sets the length of each outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from casework.eventstore import Document
from casework.projections import Projection
from casework.rebuild import rebuild_projection
from casework.runtime import SERVER_SELECTION_TIMEOUT_MS
from casework.settings import Settings

from support.stack import Stack, running_stack

REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = float(os.environ.get("CASEWORK_OUTAGE_SECONDS", "40"))
BASE = int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001"))
NO_RISK = {"wish_to_be_dead": False, "suicidal_thoughts": False}


@dataclass
class PrivateServers:
    """Kafka, FerretDB and PostgreSQL of this test alone, run by scripts/infra.sh."""

    state: Path
    env: dict[str, str]
    bootstrap: str
    mongo_url: str

    def infra(self, command: str) -> None:
        subprocess.run(
            ["bash", str(REPO / "scripts/infra.sh"), command],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=180,
        )

    def stop(self, component: str) -> None:
        """Stop one server of ours (by the pid file infra.sh keeps), and wait until it is gone."""
        pid = int((self.state / "run" / f"{component}.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    with contextlib.suppress(OSError):
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    return True


@pytest.fixture(scope="module")
def private_servers() -> Iterator[PrivateServers]:
    state = Path(
        os.environ.get("CASEWORK_OUTAGE_STATE") or tempfile.mkdtemp(prefix="casework-outage-")
    )
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)  # PostgreSQL runs as its own user when the tests run as root
    ports = {"kafka": BASE + 20, "controller": BASE + 21, "mongo": BASE + 22, "pg": BASE + 23}
    env = {
        **os.environ,
        "CASEWORK_STATE": str(state),
        "CASEWORK_KAFKA_PORT": str(ports["kafka"]),
        "CASEWORK_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "CASEWORK_MONGO_PORT": str(ports["mongo"]),
        "CASEWORK_PG_PORT": str(ports["pg"]),
    }
    servers = PrivateServers(
        state,
        env,
        f"localhost:{ports['kafka']}",
        f"mongodb://127.0.0.1:{ports['mongo']}",
    )
    servers.infra("up")
    try:
        yield servers
    finally:
        servers.infra("down")
        shutil.rmtree(state, ignore_errors=True)


@dataclass
class Answer:
    at: float
    step: str
    status: int | None  # None: no answer (timeout, connection refused)
    seconds: float
    retry_after: str | None


@dataclass
class Driver:
    """Takes, screens and accepts referrals over HTTP, about `rate` a second, until stopped."""

    stack: Stack
    site: str
    rate: float = 2.0
    referrals: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    completed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        token = self.stack.token("iris", "intake_worker", sites=(self.site,))
        with self.stack.client("intake", token) as intake:
            while not self.stop.is_set():
                started = time.monotonic()
                self._one(intake)
                self.stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def _call(self, intake: httpx.Client, step: str, path: str, body: Any) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = intake.post(path, json=body)
        except httpx.HTTPError:
            self.answers.append(Answer(started, step, None, time.monotonic() - started, None))
            return None
        self.answers.append(
            Answer(
                started,
                step,
                response.status_code,
                time.monotonic() - started,
                response.headers.get("retry-after"),
            )
        )
        return response

    def _one(self, intake: httpx.Client) -> None:
        body = {
            "site": self.site,
            "client": {
                "given_name": "Robin",
                "family_name": f"Hale{uuid.uuid4().hex[:8]}",
                "date_of_birth": "1985-06-01",
            },
            "source": "self",
            "presenting_concerns": "Not sleeping, hopeless.",
            "urgency": "soon",
        }
        taken = self._call(intake, "take", "/referrals", body)
        if taken is None or taken.status_code != 201:
            return
        rid = taken.json()["referral_id"]
        self.referrals.append(rid)
        screened = self._call(intake, "screen", f"/referrals/{rid}/screening", NO_RISK)
        if screened is None or screened.status_code != 200:
            return
        accepted = self._call(intake, "accept", f"/referrals/{rid}/accept", None)
        if accepted is not None and accepted.status_code == 200:
            self.completed += 1

    def wait_completed(self, more: int, within: float) -> None:
        target = self.completed + more
        deadline = time.monotonic() + within
        while self.completed < target:
            assert time.monotonic() < deadline, f"no {more} referral(s) accepted in {within}s"
            time.sleep(0.2)


def _register_site(stack: Stack) -> str:
    site = f"outage-{uuid.uuid4().hex[:6]}"
    with stack.client("supervision", stack.token("root", "regional_admin")) as supervision:
        created = supervision.post("/sites", json={"site": site, "name": "Outage"})
        assert created.status_code == 201, created.text
    with stack.client("intake", stack.token("root", "regional_admin")) as intake:
        _eventually(lambda: intake.get("/intake-queue", params={"site": site}).status_code == 200)
    return site


def _eventually(check: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not true within {within}s"
        time.sleep(0.5)


async def _dead_letters(bootstrap: str, namespace: str) -> dict[str, int]:
    """Records in each dead-letter topic of the namespace."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        topics = [
            t for t in await consumer.topics() if t.startswith(namespace) and t.endswith(".dlq")
        ]
        counts = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            counts[topic] = sum(ends[tp] - starts[tp] for tp in tps)
        return counts
    finally:
        await consumer.stop()


async def _lag(bootstrap: str, namespace: str) -> int:
    """Records not yet committed by the namespace's consumer groups, summed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(namespace)]
        behind = 0
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            ends = await consumer.end_offsets(list(offsets))
            behind += sum(ends[tp] - meta.offset for tp, meta in offsets.items())
        return behind
    finally:
        await consumer.stop()
        await admin.close()


async def _rebuilt_equals_live(stack: Stack, bootstrap: str, mongo_url: str) -> dict[str, int]:
    """Rebuild every read model of intake and cases; each must equal the live one. Returns the
    documents compared per read model."""
    from casework_cases import bootstrap as cases_bootstrap
    from casework_intake import bootstrap as intake_bootstrap

    compared: dict[str, int] = {}
    for name, module in (("intake", intake_bootstrap), ("cases", cases_bootstrap)):
        settings = Settings.for_service(
            name,
            module.PORT,
            environment="test",
            kafka_bootstrap_servers=bootstrap,
            mongo_url=mongo_url,
            mongo_database=stack.databases[name],
            namespace=stack.namespace,
        )
        built = module.build(settings)
        runtime = built[0] if isinstance(built, tuple) else built
        try:
            for projection in [h for h in runtime.handlers if isinstance(h, Projection)]:
                live = await _documents(projection)
                await rebuild_projection(
                    projection, runtime.registry, settings, progress=lambda _: None
                )
                rebuilt = await _documents(projection)
                assert rebuilt.keys() == live.keys(), projection.name
                different = [k for k in live if live[k] != rebuilt[k]]
                assert not different, (projection.name, live[different[0]], rebuilt[different[0]])
                compared[f"{name}.{projection.name}"] = len(live)
        finally:
            await runtime.stop()
    return compared


async def _documents(projection: Projection) -> dict[Any, Document]:
    return {d["_id"]: dict(d) async for d in projection.read_model.collection.find({})}


@pytest.mark.timeout(180 + 4 * OUTAGE_S)
def test_outages_of_the_database_and_the_broker_heal_without_losing_a_case(
    private_servers: PrivateServers, tmp_path: Path
) -> None:
    servers = private_servers
    env = {"CASEWORK_PROJECTION_MAX_ATTEMPTS": "3"}
    with running_stack(
        servers.bootstrap, servers.mongo_url, tmp_path, BASE + 10, prefix="outage", env=env
    ) as stack:
        site = _register_site(stack)
        driver = Driver(stack, site)
        thread = threading.Thread(target=driver.run, daemon=True)
        thread.start()
        try:
            driver.wait_completed(3, within=60)

            # the database goes away for OUTAGE_S seconds
            servers.stop("ferretdb")
            db_down = time.monotonic()
            time.sleep(OUTAGE_S)  # the outage itself: its length is what is being tested
            db_up = time.monotonic()
            servers.infra("up")
            driver.wait_completed(3, within=90)

            # then the broker
            servers.stop("kafka")
            broker_down = time.monotonic()
            time.sleep(OUTAGE_S)
            servers.infra("up")
            broker_up = time.monotonic()
            driver.wait_completed(3, within=90)
        finally:
            driver.stop.set()
            thread.join(timeout=30)

        # during the database outage: a prompt 503 with Retry-After, never a 500
        during = [a for a in driver.answers if db_down + 3 < a.at < db_up - 3]
        assert len(during) >= 10, during
        assert {a.status for a in during} == {503}, {a.status for a in during}
        assert all(a.retry_after for a in during)
        slowest = max(a.seconds for a in during)
        # one server selection (the route's; no audit record is tried for it) and a margin
        assert slowest < SERVER_SELECTION_TIMEOUT_MS / 1000 + 1.5, slowest
        # during the broker outage: commands are still taken (the outbox holds their events)
        taken = [a for a in driver.answers if broker_down + 3 < a.at < broker_up - 3]
        assert taken, "no command tried during the broker outage"
        assert all(a.status in (200, 201) for a in taken), {a.status for a in taken}

        # every accepted referral has its case
        admin = stack.token("root", "regional_admin")
        accepted: dict[str, str] = {}
        with stack.client("intake", admin) as intake, stack.client("cases", admin) as cases:
            for rid in driver.referrals:
                read = intake.get(f"/referrals/{rid}")
                assert read.status_code == 200, read.text
                if read.json()["status"] == "accepted":
                    accepted[rid] = read.json()["case_id"]
            assert len(accepted) >= 9
            for case_id in accepted.values():
                _eventually(lambda c=case_id: cases.get(f"/cases/{c}").status_code == 200, 120)

        # everything consumed, nothing dead-lettered
        _eventually(lambda: asyncio.run(_lag(servers.bootstrap, stack.namespace)) == 0, 120)
        dead = asyncio.run(_dead_letters(servers.bootstrap, stack.namespace))
        assert dead, "no dead-letter topics found"
        assert set(dead.values()) == {0}, dead

        # the services stop; every read model equals a rebuild from scratch
        for pid in stack.pids.values():
            os.kill(pid, signal.SIGTERM)
        for pid in stack.pids.values():
            _eventually(lambda p=pid: not _alive(p), 30)
        compared = asyncio.run(_rebuilt_equals_live(stack, servers.bootstrap, servers.mongo_url))
        assert compared["cases.case_summaries"] >= len(accepted)
        print(
            f"\noutage test: {len(driver.referrals)} referrals taken, {len(accepted)} accepted, "
            f"all with their case; database outage: {len(during)} answers, all 503 + "
            f"Retry-After, slowest {slowest:.2f}s; broker outage: {len(taken)} commands "
            f"taken; dead letters {sum(dead.values())}; read models equal to a rebuild: "
            f"{compared}"
        )
