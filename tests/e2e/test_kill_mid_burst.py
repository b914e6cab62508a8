"""kill -9 of a service process in the middle of a burst of commands, on the real stack
(issue 6 §1): after a restart, every commit the service stored reached Kafka with its stored
event ids, nothing else did, and each stream's events were first published in version order.

The stack is this module's own (ports `CASEWORK_E2E_BASE_PORT` + 100 …), since its intake
process is killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from casework.envelope import Envelope

from support.kafka import read_topic
from support.stack import Stack, running_stack

REFERRALS = 48
KILL_AFTER = 12  # accepted referrals before the kill


def referral(site: str, n: int) -> dict[str, Any]:
    return {
        "client": {
            "given_name": f"Burst{n}",
            "family_name": f"Person{uuid.uuid4().hex[:6]}",
            "date_of_birth": "1990-04-12",
        },
        "source": "gp",
        "referrer_name": "Dr Patel",
        "presenting_concerns": "Low mood.",
        "urgency": "soon",
        "consent_to_share": True,
        "site": site,
    }


@pytest.fixture(scope="module")
def own_stack(
    servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    base_port = int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001")) + 100
    bootstrap, mongo_url = servers
    with running_stack(
        bootstrap, mongo_url, tmp_path_factory.mktemp("killstack"), base_port, prefix="kill"
    ) as stack:
        yield stack


def wait_for(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within:.0f}s: {what}"
        time.sleep(0.2)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def restart(stack: Stack, service: str) -> subprocess.Popen[bytes]:
    port = stack.urls[service].rsplit(":", 1)[1]
    env = {
        **stack.env,
        "CASEWORK_HTTP_PORT": port,
        "CASEWORK_MONGO_DATABASE": stack.databases[service],
    }
    log = (stack.logs / f"{service}-restarted.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", f"casework_{service}"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def test_kill_9_mid_burst_loses_and_invents_nothing(own_stack: Stack, servers: Any) -> None:
    stack = own_stack
    site = f"site-{uuid.uuid4().hex[:6]}"
    admin = stack.token("root", "regional_admin")
    with stack.client("supervision", admin) as supervision:
        assert supervision.post("/sites", json={"site": site, "name": "Burst"}).status_code == 201
    worker = stack.token("ivy", "intake_worker", sites=(site,))
    with stack.client("intake", worker) as intake:
        wait_for(
            lambda: intake.post("/referrals", json=referral(site, 0)).status_code == 201,
            30,
            "intake knows the site",
        )

    accepted: list[str] = []
    enough = threading.Event()
    lock = threading.Lock()

    def command(n: int) -> None:
        # a referral, then its screening: two commits on one stream
        try:
            with stack.client("intake", worker) as intake:
                taken = intake.post("/referrals", json=referral(site, n))
                if taken.status_code != 201:
                    return
                rid = taken.json()["referral_id"]
                with lock:
                    accepted.append(rid)
                    if len(accepted) >= KILL_AFTER:
                        enough.set()
                intake.post(
                    f"/referrals/{rid}/screening",
                    json={"wish_to_be_dead": False, "suicidal_thoughts": False},
                )
        except httpx.HTTPError:
            pass  # the process was killed under this request

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(command, n) for n in range(1, REFERRALS + 1)]
        assert enough.wait(60), "the burst did not get going"
        os.kill(stack.pids["intake"], signal.SIGKILL)  # mid-burst: requests are in flight
        for f in futures:
            f.result()

    process = restart(stack, "intake")
    try:
        wait_for(lambda: ready(stack.urls["intake"]), 60, "intake ready again")
        with stack.client("intake", worker) as intake:  # and it takes commands again
            assert intake.post("/referrals", json=referral(site, 999)).status_code == 201
        check_published(stack, servers[0], accepted)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def check_published(stack: Stack, bootstrap: str, accepted: list[str]) -> None:
    with MongoClient(stack.env["CASEWORK_MONGO_URL"], tz_aware=True) as client:
        db = client[stack.databases["intake"]]
        # the restarted relay takes over once the killed one's lease has expired
        wait_for(lambda: db["events_pending"].count_documents({}) == 0, 90, "intents settled")
        commits = [c for c in db["events"].find({}) if not c.get("void")]
    stored = {e["id"]: (e["subject"], e["version"]) for c in commits for e in c["events"]}
    streams = {s for s, _ in stored.values()}
    # every referral the service answered 201 for is stored
    assert {f"referral-{r}" for r in accepted} <= streams

    topic = f"{stack.namespace}.casework.intake.events"
    records = asyncio.run(read_topic(bootstrap, topic, expect=len(stored), within=30))
    published = [Envelope.from_kafka(r.value, r.headers) for r in records]
    sent = {e.id: (e.subject, e.stream_version) for e in published}
    assert {i: v for i, v in stored.items() if sent.get(i) != v} == {}, "stored, not published"
    assert {i: v for i, v in sent.items() if stored.get(i) != v} == {}, "published, not stored"
    first: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for e in published:
        if e.id not in seen:
            seen.add(e.id)
            first[e.subject].append(e.stream_version)
    assert all(v == sorted(v) for v in first.values()), first
