"""The lone worker's safety on the real servers, with the service's clock under the test's
control: a worker who checked in at a home visit and did not check out raises
`LoneWorkerOverdue` once, after the expected duration plus the grace; one who checked out
raises nothing (the control, at the same moment, shows the deadline's time had come)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts.cases import CaseOpened
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import Medium, Participant, ParticipantKind
from casework.envelope import Envelope
from casework.eventstore import CommitContext, Document
from casework.runtime import events_topic, topic_prefix, wait_until
from casework.settings import Settings

from casework_contacts.application.policies import lone_worker_key
from casework_contacts.bootstrap import Wired, build
from casework_contacts.domain.commands import CheckIn, CheckOut, ScheduleContact
from casework_contacts.settings import ContactsSettings
from support.contact_policy import FAST_SITE, write_fast_policy

WORKER = Principal(
    sub="cleo", name="cleo", roles=frozenset({"crisis_worker"}), sites=frozenset({FAST_SITE})
)
GRACE = timedelta(minutes=15)


@pytest.fixture
async def service(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> AsyncIterator[Wired]:
    namespace = f"lw{uuid.uuid4().hex[:10]}"
    settings = Settings.for_service(
        "contacts",
        0,
        namespace=namespace,
        kafka_bootstrap_servers=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"{namespace}_contacts",
        environment="test",
        relay_poll_interval_s=0.2,
    )
    own = ContactsSettings(
        policy_file=write_fast_policy(tmp_path), deadline_tick_s=0.3, lone_worker_grace=GRACE
    )
    clock = FixedClock(datetime.now(UTC))
    wired = build(settings, clock=clock, contacts_settings=own)
    try:
        async with wired.runtime.running():
            yield wired
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await client.drop_database(settings.database_name)
        await client.close()


async def test_a_worker_not_checked_out_raises_lone_worker_overdue_once(
    service: Wired, kafka_bootstrap: str
) -> None:
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    case_id = str(uuid.uuid4())
    opened = CaseOpened(
        case_id=case_id,
        client_id=str(uuid.uuid4()),
        referral_id=str(uuid.uuid4()),
        site=FAST_SITE,
        risk_level=RiskLevel.HIGH,
        opened_at=clock.now(),
    )
    envelope = Envelope(
        type=opened.type_name(),
        source="/casework/cases",
        subject=f"case-{case_id}",
        time=clock.now(),
        data=opened.model_dump(mode="json"),
        stream_version=1,
        site=FAST_SITE,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic_prefix(service.runtime.settings) + events_topic("cases"),
            envelope.value(),
            key=envelope.key,
            headers=envelope.headers(),
        )
    finally:
        await producer.stop()
    contacts = service.contacts

    async def case_known() -> bool:
        return await contacts.cases.get(case_id) is not None

    await wait_until(case_known, within=30, every=0.2)
    case = await contacts.case_ref(case_id, WORKER, for_writing=True)
    ctx = CommitContext()
    client = (Participant(kind=ParticipantKind.CLIENT),)
    visits = {"stays": str(uuid.uuid4()), "leaves": str(uuid.uuid4())}
    for contact_id in visits.values():
        planned = clock.now() + timedelta(minutes=5)
        await contacts.execute(
            ScheduleContact(contact_id, case, Medium.HOME_VISIT, client, planned, "cleo", "cleo"),
            WORKER,
            ctx,
        )
        await contacts.execute(CheckIn(contact_id, "cleo", 60, GRACE), WORKER, ctx)
    clock.advance(timedelta(minutes=50))
    await contacts.execute(CheckOut(visits["leaves"], "cleo"), WORKER, ctx)

    store, deadlines = service.runtime.store, service.runtime.deadlines

    async def overdue_of(contact_id: str) -> list[Envelope]:
        events = await store.load(f"contact-{contact_id}")
        return [e for e in events if e.type.endswith(".LoneWorkerOverdue.v1")]

    async def scheduled(contact_id: str) -> bool:
        return await deadlines.get(lone_worker_key(contact_id)) is not None

    await wait_until(lambda: scheduled(visits["stays"]), within=30, every=0.2)
    assert not await overdue_of(visits["stays"])  # not yet due: 60 min + 15 min grace
    clock.advance(timedelta(minutes=30))  # 80 minutes after the check-in

    async def raised() -> bool:
        return bool(await overdue_of(visits["stays"]))

    await wait_until(raised, within=30, every=0.2)

    async def fired() -> bool:
        return not await scheduled(visits["stays"])

    await wait_until(fired, within=30, every=0.2)
    [overdue] = await overdue_of(visits["stays"])
    assert overdue.data["worker_id"] == "cleo"

    # the other visit's deadline is cancelled by the check-out, or fires and finds the worker
    # safe (whichever the policy and the scheduler get to first): either way, nothing raised
    async def settled() -> bool:
        return not await scheduled(visits["leaves"])

    await wait_until(settled, within=30, every=0.2)
    assert await overdue_of(visits["leaves"]) == []
    assert len(await overdue_of(visits["stays"])) == 1
