"""Two contacts services, one killed mid-run: each `ContactOverdue` exactly once.

Two replicas run as processes on one database and one Kafka namespace. High-risk cases open
(their first contact due 6 s later, staggered so that overdues keep falling due for ~8 s);
once a third of the overdues are stored, one replica is killed with SIGKILL — perhaps inside
a fire, holding claims. The survivor takes over what the dead one claimed (after the claim
TTL, 4 s here) and fires the rest.

Then: every case has exactly one stored `ContactOverdue` for its first-contact obligation;
every deadline completed; and on the topic each obligation's overdue is one event (one
(stream, version); a redelivery of the same event by a relay killed mid-publish would be the
same event, which consumers de-duplicate by stream version — it is never a second event).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient, MongoClient

from casework.auth import mint_dev_token
from casework.contracts.cases import CaseOpened
from casework.contracts.common import RiskLevel
from casework.deadlines import Deadlines
from casework.envelope import Envelope
from casework.eventstore import Document, EventStore
from casework.runtime import events_topic, wait_until
from casework.settings import Settings

from casework_contacts.application.policies import overdue_key
from support.contact_policy import FAST_SITE, write_fast_policy
from support.kafka import read_topic

CASES = int(os.environ.get("CASEWORK_CONTACTS_REPLICA_CASES", "16"))
FIRST_CONTACT_S = 6
STAGGER = timedelta(milliseconds=500)
OVERDUE = "casework.contacts.ContactOverdue.v1"


@pytest.fixture
def stack(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    namespace = f"cr{uuid.uuid4().hex[:10]}"
    database = f"{namespace}_contacts"
    key = tmp_path / "dev.pem"
    mint_dev_token(
        Settings.for_service("contacts", 0, environment="test", jwt_dev_key_path=key),
        sub="setup",
        roles=["ops"],
        sites=[],
    )  # creates the dev key the services read
    base = int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001")) + 10
    env = {
        **os.environ,
        "CASEWORK_NAMESPACE": namespace,
        "CASEWORK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CASEWORK_MONGO_URL": mongo_url,
        "CASEWORK_MONGO_DATABASE": database,
        "CASEWORK_ENVIRONMENT": "test",
        "CASEWORK_JWT_DEV_KEY_PATH": str(key),
        "CASEWORK_RELAY_POLL_INTERVAL_S": "0.2",
        "CASEWORK_CONTACTS_POLICY_FILE": str(
            write_fast_policy(tmp_path, first_contact_s=FIRST_CONTACT_S)
        ),
        "CASEWORK_CONTACTS_DEADLINE_TICK_S": "0.5",
        "CASEWORK_CONTACTS_DEADLINE_CLAIM_TTL_S": "4",
    }
    procs = []
    urls = []
    for i in range(2):
        port = base + i
        log = (tmp_path / f"contacts-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "casework_contacts"],
                env={**env, "CASEWORK_HTTP_PORT": str(port)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        yield {"namespace": namespace, "database": database, "procs": procs, "urls": urls}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        client: MongoClient[Document] = MongoClient(mongo_url)
        with client:
            client.drop_database(database)


def case_opened(case_id: str, at: datetime) -> Envelope:
    event = CaseOpened(
        case_id=case_id,
        client_id=str(uuid.uuid4()),
        referral_id=str(uuid.uuid4()),
        site=FAST_SITE,
        risk_level=RiskLevel.HIGH,
        opened_at=at,
    )
    return Envelope(
        type=event.type_name(),
        source="/casework/cases",
        subject=f"case-{case_id}",
        time=at,
        data=event.model_dump(mode="json"),
        stream_version=1,
        site=FAST_SITE,
    )


@pytest.mark.timeout(180)
async def test_each_overdue_fires_once_with_a_replica_killed_mid_run(
    stack: dict[str, object], kafka_bootstrap: str, mongo_url: str
) -> None:
    urls: list[str] = stack["urls"]  # type: ignore[assignment]
    procs: list[subprocess.Popen[bytes]] = stack["procs"]  # type: ignore[assignment]
    namespace = str(stack["namespace"])

    async def both_ready() -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            for url in urls:
                if (await http.get(f"{url}/readyz")).status_code != 200:
                    return False
        return True

    await wait_until(both_ready, within=90, every=0.5)

    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    database = client[str(stack["database"])]
    store = EventStore(database, source="/casework/contacts")
    case_ids = [str(uuid.uuid4()) for _ in range(CASES)]
    start = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i, case_id in enumerate(case_ids):
            envelope = case_opened(case_id, start + i * STAGGER)
            await producer.send_and_wait(
                f"{namespace}." + events_topic("cases"),
                envelope.value(),
                key=envelope.key,
                headers=envelope.headers(),
            )
    finally:
        await producer.stop()

    async def overdues_stored() -> dict[str, list[Envelope]]:
        found: dict[str, list[Envelope]] = {}
        for case_id in case_ids:
            events = await store.load(f"obligations-{case_id}")
            found[case_id] = [e for e in events if e.type == OVERDUE]
        return found

    async def a_third_stored() -> bool:
        stored = await overdues_stored()
        return sum(1 for v in stored.values() if v) >= CASES // 3

    try:
        await wait_until(a_third_stored, within=60, every=0.2)
        killed = procs[0]
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)

        async def all_stored() -> bool:
            return all((await overdues_stored()).values())

        await wait_until(all_stored, within=60, every=0.3)

        deadlines = Deadlines(database)
        stored = await overdues_stored()
        first_contact = {
            case_id: str(events[0].data["obligation_id"]) for case_id, events in stored.items()
        }

        async def every_deadline_completed() -> bool:
            for case_id, obligation_id in first_contact.items():
                if await deadlines.get(overdue_key(case_id, obligation_id)) is not None:
                    return False
            return True

        await wait_until(every_deadline_completed, within=30, every=0.3)
        stored = await overdues_stored()
        every_stored_event = sum([len(c.get("events", ())) async for c in store.commits.find({})])
    finally:
        await client.close()

    assert {case_id: len(events) for case_id, events in stored.items()} == dict.fromkeys(
        case_ids, 1
    )
    assert {str(e[0].data["rule_id"]) for e in stored.values()} == {"first-contact-24h"}

    records = await read_topic(
        kafka_bootstrap,
        f"{namespace}." + events_topic("contacts"),
        expect=every_stored_event,
        within=30,
    )
    published: dict[tuple[str, str], set[tuple[str, int]]] = defaultdict(set)
    for record in records:
        envelope = Envelope.from_kafka(record.value, record.headers)
        if envelope.type == OVERDUE:
            published[str(envelope.data["case_id"]), str(envelope.data["obligation_id"])].add(
                (envelope.subject, envelope.stream_version)
            )
    assert set(published) == set(first_contact.items())
    assert [key for key, events in published.items() if len(events) != 1] == []
