"""A killed notifications process resumes without losing or repeating an alert.

One notifications process (a real `python -m casework_notifications`) on the real servers,
with the directory seeded on its supervision topic. A burst of crises is published to the
cases topic; once a third of the alerts are stored the process is SIGKILLed — perhaps
between an alert's commit and its consumer's offset commit, or mid-escalation scheduling —
and a new process starts on the same database and namespace. The burst is then published
again (a relay that republished everything).

Then: every crisis has exactly one alert notifying the worker and the on-call worker once
each; the inbox holds exactly those entries; every alert's escalation deadline waits for
step 1 (none lost in the crash window between commit and scheduling).

The channels resume too. The SMTP server is down until the kill, so the first process's
e-mails fail and wait as retries; the webhook receiver is up throughout, so some webhooks are
sent before the kill, perhaps one cut off between its request and its record. After the
restart (SMTP up) every notification's e-mail reaches the SMTP server exactly once and its
webhook reaches the receiver — a repeat only of a request the kill cut off, under the same
`webhook-id`, as the Standard Webhooks receiver expects — and the delivery log holds exactly one
`delivered` per notification and channel.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient, MongoClient

from casework.auth import mint_dev_token
from casework.deadlines import Deadlines
from casework.envelope import Envelope
from casework.eventstore import Document, EventStore
from casework.runtime import events_topic, wait_until
from casework.settings import Settings

from casework_notifications.application.handlers import escalation_key
from support.alerts import crisis_declared
from support.directory import SupervisionTopic, seed_directory, shift, site, staff
from support.receivers import SmtpSink, WebhookReceiver, port

CRISES = int(os.environ.get("CASEWORK_NOTIFICATIONS_KILL_CRISES", "30"))
SITE = "north"
SENT = "casework.notifications.NotificationSent.v1"
SECRET = "whsec_" + base64.b64encode(b"casework-kill-test-secret").decode()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(port(302))  # started after the kill: down until then
    yield sink
    sink.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hooks = WebhookReceiver(port(303), SECRET)
    await hooks.start()
    yield hooks
    await hooks.stop()


@pytest.fixture
def env(
    kafka_bootstrap: str,
    mongo_url: str,
    tmp_path: Path,
    smtp: SmtpSink,
    receiver: WebhookReceiver,
) -> Iterator[dict[str, str]]:
    namespace = f"nk{uuid.uuid4().hex[:10]}"
    database = f"{namespace}_notifications"
    key = tmp_path / "dev.pem"
    mint_dev_token(
        Settings.for_service("notifications", 0, environment="test", jwt_dev_key_path=key),
        sub="setup",
        roles=["ops"],
        sites=[],
    )
    webhooks = tmp_path / "webhooks.json"
    webhooks.write_text(
        json.dumps([{"endpoint_id": "pager", "url": receiver.url, "secrets": [SECRET]}])
    )
    yield {
        **os.environ,
        "CASEWORK_NAMESPACE": namespace,
        "CASEWORK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CASEWORK_MONGO_URL": mongo_url,
        "CASEWORK_MONGO_DATABASE": database,
        "CASEWORK_ENVIRONMENT": "test",
        "CASEWORK_JWT_DEV_KEY_PATH": str(key),
        "CASEWORK_RELAY_POLL_INTERVAL_S": "0.2",
        "CASEWORK_NOTIFICATIONS_DEADLINE_TICK_S": "0.2",
        "CASEWORK_NOTIFICATIONS_DEADLINE_CLAIM_TTL_S": "4",
        "CASEWORK_HTTP_PORT": str(port(301)),
        "CASEWORK_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "CASEWORK_NOTIFICATIONS_SMTP_PORT": str(smtp.port),
        "CASEWORK_NOTIFICATIONS_SMTP_TIMEOUT_S": "2",
        "CASEWORK_NOTIFICATIONS_WEBHOOKS_FILE": str(webhooks),
        "CASEWORK_NOTIFICATIONS_WEBHOOK_ALLOW": '["127.0.0.1/32"]',
    }
    with MongoClient(mongo_url) as client:
        client.drop_database(database)


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "casework_notifications"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


# The invariant is "nothing lost, nothing repeated", not a latency: the wait for every alert
# is bounded at 240 s (a restarted process first waits out the killed member's session and a
# rebalance of each of its consumer groups; on a loaded machine that took over 90 s once),
# and when it runs out the failure names the crises without an alert, their alert streams
# and the process log's tail. (It was marked an expected failure after that one slow run in a
# fresh-clone CI; since then 7 of 7 runs passed in 20-42 s: 4 with 60 crises beside other
# heavy tests, 3 in full two-worker suites.)
@pytest.mark.timeout(480)
async def test_a_killed_process_resumes_without_losing_or_repeating_an_alert(
    env: dict[str, str],
    kafka_bootstrap: str,
    mongo_url: str,
    tmp_path: Path,
    smtp: SmtpSink,
    receiver: WebhookReceiver,
) -> None:
    namespace = env["CASEWORK_NAMESPACE"]
    url = f"http://127.0.0.1:{env['CASEWORK_HTTP_PORT']}"
    log = tmp_path / "notifications.log"
    proc = start(env, log)
    try:
        await wait_until(lambda: ready(url), within=90, every=0.5)
        now = datetime.now(UTC)
        await seed_directory(
            SupervisionTopic(kafka_bootstrap, f"{namespace}." + events_topic("supervision")),
            site(SITE),
            staff("wendy", "caseworker", sites=(SITE,), email="wendy@agency.test"),
            staff("olga", "crisis_worker", sites=(SITE,), email="olga@agency.test"),
            staff("ben", "crisis_worker", sites=(SITE,)),
            shift(SITE, "olga", now - timedelta(hours=1), now + timedelta(hours=8), "ben"),
        )
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
        database = client[env["CASEWORK_MONGO_DATABASE"]]

        async def rota_known() -> bool:
            return await database["known_rota"].count_documents({}) == 1

        await wait_until(rota_known, within=30, every=0.2)

        cases = [str(uuid.uuid4()) for _ in range(CRISES)]
        burst: list[Envelope] = [crisis_declared(c, datetime.now(UTC), SITE) for c in cases]
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()

        async def publish_all() -> None:
            for envelope in burst:
                await producer.send_and_wait(
                    f"{namespace}." + events_topic("cases"),
                    envelope.value(),
                    key=envelope.key,
                    headers=envelope.headers(),
                )

        store = EventStore(database, source="/casework/notifications")

        async def sent(case_id: str) -> list[tuple[int, str]]:
            events = await store.load(f"alert-crisis:{case_id}")
            return sorted(
                (int(e.data["step"]), str(e.data["recipient_id"])) for e in events if e.type == SENT
            )

        async def stored() -> int:
            return sum([1 for c in cases if await sent(c)])

        try:
            await publish_all()

            async def a_third() -> bool:
                return await stored() >= CRISES // 3

            await wait_until(a_third, within=60, every=0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert await stored() < CRISES, "the kill came too late to test anything"

            smtp.start()
            proc = start(env, log)
            await wait_until(lambda: ready(url), within=90, every=0.5)
            await publish_all()  # everything once more, as a relay that republished

            async def all_stored() -> bool:
                return await stored() == CRISES

            try:
                await wait_until(all_stored, within=240, every=0.3)
            except TimeoutError:
                missing = [c for c in cases if not await sent(c)]
                streams = {
                    c: [e.type for e in await store.load(f"alert-crisis:{c}")] for c in missing
                }
                tail = log.read_text(errors="replace")[-6000:]
                pytest.fail(
                    f"{len(missing)} of {CRISES} crises without an alert 240 s after the "
                    f"republish; their alert streams: {streams}\nprocess log (tail):\n{tail}"
                )
            inbox = database["inbox"]
            entries = {"alert_id": {"$exists": True}}  # the day and month markers aside

            async def inbox_complete() -> bool:
                return await inbox.count_documents(entries) >= 2 * CRISES

            await wait_until(inbox_complete, within=60, every=0.3)
        finally:
            await producer.stop()

        for case_id in cases:
            assert await sent(case_id) == [(0, "olga"), (0, "wendy")], case_id
        assert await inbox.count_documents(entries) == 2 * CRISES
        assert await inbox.count_documents({"recipient_id": "olga"}) == CRISES
        deadlines = Deadlines(database)

        async def every_escalation_waits() -> bool:
            for case_id in cases:
                deadline = await deadlines.get(escalation_key(f"crisis:{case_id}"))
                if deadline is None or deadline.payload["step"] != 1:
                    return False
            return True

        await wait_until(every_escalation_waits, within=30, every=0.3)

        notifications = {
            str(e.data["notification_id"]): str(e.data["recipient_id"])
            for case_id in cases
            for e in await store.load(f"alert-crisis:{case_id}")
            if e.type == SENT
        }
        attempts = database["delivery_attempts"]

        def delivered(channel: str) -> dict[str, Any]:
            return {"channel": channel, "outcome": "delivered"}

        async def channels_delivered() -> bool:
            counts = [await attempts.count_documents(delivered(c)) for c in ("email", "webhook")]
            return counts == [len(notifications)] * 2

        try:
            await wait_until(channels_delivered, within=120, every=0.5)
        except TimeoutError:
            tail = log.read_text(errors="replace")[-6000:]
            pytest.fail(f"deliveries incomplete 120 s after the restart\n{tail}")
        for channel in ("email", "webhook"):
            ids = [d["notification_id"] async for d in attempts.find(delivered(channel))]
            assert sorted(ids) == sorted(notifications), channel  # one each, none missing
        mailed = sorted((m["To"], m["Message-ID"]) for m in smtp.messages)
        assert len(mailed) == len(set(mailed)) == len(notifications)  # exactly once each
        assert {to for to, _ in mailed} == {f"{who}@agency.test" for who in ("wendy", "olga")}
        hooked = [json.loads(d.body)["data"]["notification_id"] for d in receiver.deliveries]
        assert set(hooked) == set(notifications)
        assert all(d.verified for d in receiver.deliveries)
        by_id: dict[str, set[str]] = {}
        for d, nid in zip(receiver.deliveries, hooked, strict=True):
            by_id.setdefault(d.headers["webhook-id"], set()).add(nid)
        assert all(len(nids) == 1 for nids in by_id.values())  # a repeat keeps its id
        assert len(by_id) == len(notifications)
        await client.close()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
