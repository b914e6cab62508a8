"""The cases service's own wiring on the real Kafka broker and MongoDB-wire server.

- An accepted referral delivered twice opens exactly one case (one commit, one published
  `CaseOpened`).
- A referral screened at imminent risk opens its case in crisis: `CaseOpened` and
  `CrisisDeclared` in one commit.
- Two writers that loaded the same version: the second gets `ConcurrencyConflict`.
- The `assignments` projection finds a worker's open cases.
- A first slot held by an unfinished write delays the case until the relay's fence; it is
  never taken for "already opened".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from casework.auth import Principal
from casework.contracts.common import RiskLevel
from casework.contracts.intake import ReferralAccepted
from casework.directory import KnownStaff
from casework.envelope import Envelope
from casework.eventstore import CommitContext, ConcurrencyConflict, Document, commit_id
from casework.privacy import is_sealed
from casework.runtime import ServiceRuntime, events_topic, topic_prefix, wait_until
from casework.settings import Settings

from casework_cases.application.handlers import Cases
from casework_cases.bootstrap import build
from casework_cases.domain.commands import (
    AssignCaseworker,
    CaseCommand,
    RecordCaseNote,
)
from support.directory import seed_directory, staff
from support.kafka import read_topic

POLICY = "when_referral_accepted_open_case"
ADMIN = Principal(sub="ray", name="ray", roles=frozenset({"regional_admin"}), sites=frozenset())


@dataclass
class Service:
    runtime: ServiceRuntime
    cases: Cases
    producer: AIOKafkaProducer

    @property
    def prefix(self) -> str:
        return topic_prefix(self.runtime.settings)

    def outcomes(self, outcome: str) -> float:
        return float(self.runtime.metrics.events_projected.labels(POLICY, outcome)._value.get())

    async def deliver(self, envelope: Envelope) -> None:
        """Publish an intake event as intake's relay would (the same record each time)."""
        await self.producer.send_and_wait(
            self.prefix + events_topic("intake"),
            envelope.value(),
            key=envelope.key,
            headers=envelope.headers(),
        )

    async def commits(self, case_id: str) -> list[list[str]]:
        """The event types of each commit of the case's stream (a void: none)."""
        cursor = self.runtime.store.commits.find({"stream_id": f"case-{case_id}"}).sort("first")
        return [[e["type"].split(".")[2] for e in c.get("events", [])] async for c in cursor]


@pytest.fixture
async def service(kafka_bootstrap: str, mongo_url: str) -> AsyncIterator[Service]:
    namespace = f"it{uuid.uuid4().hex[:10]}"
    settings = Settings.for_service(
        "cases",
        0,
        namespace=namespace,
        kafka_bootstrap_servers=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"{namespace}_cases",
        environment="test",
        relay_poll_interval_s=0.2,
    )
    runtime, cases, _ = build(settings)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        async with runtime.running():
            await producer.start()
            try:
                yield Service(runtime, cases, producer)
            finally:
                await producer.stop()
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await client.drop_database(settings.database_name)
        await client.close()


def accepted(risk_level: RiskLevel | None) -> Envelope:
    referral_id, case_id = str(uuid.uuid4()), str(uuid.uuid4())
    event = ReferralAccepted(
        referral_id=referral_id,
        case_id=case_id,
        client_id=str(uuid.uuid4()),
        site="north",
        risk_level=risk_level,
        accepted_by="ivy",
        accepted_at=datetime.now(UTC),
        received_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        client_name="Alex Morgan",
    )
    return Envelope(
        type=event.type_name(),
        source="/casework/intake",
        subject=f"referral-{referral_id}",
        time=datetime.now(UTC),
        data=event.model_dump(mode="json"),
        stream_version=2,
        site="north",
    )


@pytest.mark.parametrize(
    ("risk_level", "first_commit"),
    [
        (RiskLevel.HIGH, ["CaseOpened"]),
        (RiskLevel.IMMINENT, ["CaseOpened", "CrisisDeclared"]),
    ],
    ids=["high", "imminent"],
)
async def test_an_accepted_referral_delivered_twice_opens_one_case(
    service: Service, kafka_bootstrap: str, risk_level: RiskLevel, first_commit: list[str]
) -> None:
    envelope = accepted(risk_level)
    case_id = str(envelope.data["case_id"])
    await service.deliver(envelope)
    await service.deliver(envelope)  # a redelivery: same event id, same record

    async def both_handled() -> bool:
        return service.outcomes("applied") + service.outcomes("unchanged") >= 2

    await wait_until(both_handled, within=30)
    assert (service.outcomes("applied"), service.outcomes("unchanged")) == (1, 1)
    assert await service.commits(case_id) == [first_commit]

    case = await service.cases.case(case_id, ADMIN)
    assert case.referral_received_at == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    # the policy's command sealed the name (casework.privacy); an authorised answer opens it
    assert case.client_name is not None
    assert is_sealed(case.client_name)
    assert await service.runtime.opener.open_value(case.client_name) == "Alex Morgan"
    assert (case.crisis is not None) is (risk_level is RiskLevel.IMMINENT)
    if case.crisis is not None:
        assert case.crisis.declared_by == "ivy"

    # and the relay publishes that one commit, once
    records = await read_topic(
        kafka_bootstrap, service.prefix + events_topic("cases"), expect=len(first_commit)
    )
    mine = [r for r in records if r.key == f"case-{case_id}".encode()]
    types = [dict(r.headers)["ce_type"].decode().split(".")[2] for r in mine]
    assert types == first_commit
    correlation = {dict(r.headers).get("ce_causationid") for r in mine}
    assert correlation == {envelope.id.encode()}  # caused by the intake event


async def test_the_writer_that_loses_a_race_gets_a_concurrency_conflict(service: Service) -> None:
    envelope = accepted(RiskLevel.LOW)
    case_id = str(envelope.data["case_id"])
    await service.deliver(envelope)

    async def opened() -> bool:
        return await service.cases.cases.find(case_id) is not None

    await wait_until(opened, within=30)
    first = await service.cases.cases.get(case_id)
    second = await service.cases.cases.get(case_id)
    now = datetime.now(UTC)
    note: CaseCommand = RecordCaseNote(case_id, "n-1", "first", "carl")
    first.handle(note, now)
    second.handle(RecordCaseNote(case_id, "n-2", "second", "cara"), now)
    await service.cases.cases.save(first, CommitContext())
    with pytest.raises(ConcurrencyConflict):
        await service.cases.cases.save(second, CommitContext())
    assert await service.commits(case_id) == [["CaseOpened"], ["CaseNoteRecorded"]]


async def test_commands_that_collide_on_a_case_are_each_decided_again_not_refused(
    service: Service,
) -> None:
    """Eight people (or a person and a policy) writing one case at once: without `If-Match`
    none of them is answered with a conflict; every note is stored once, each in its own
    commit, in some order."""
    envelope = accepted(RiskLevel.LOW)
    case_id = str(envelope.data["case_id"])
    await service.deliver(envelope)

    async def opened() -> bool:
        return await service.cases.cases.find(case_id) is not None

    await wait_until(opened, within=30)
    supervisor = Principal(
        sub="sue", name="sue", roles=frozenset({"supervisor"}), sites=frozenset({"north"})
    )
    notes = [RecordCaseNote(case_id, f"n-{i}", f"note {i}", "sue") for i in range(8)]
    await asyncio.gather(*(service.cases.execute(n, supervisor, CommitContext()) for n in notes))
    commits = await service.commits(case_id)
    assert commits == [["CaseOpened"]] + [["CaseNoteRecorded"]] * 8
    case = await service.cases.cases.get(case_id)
    assert case.version == 9


async def test_the_assignments_index_finds_a_workers_open_cases(service: Service) -> None:
    worker = f"w-{uuid.uuid4().hex[:6]}"
    case_ids = []
    for _ in range(2):
        envelope = accepted(None)
        await service.deliver(envelope)
        case_ids.append(str(envelope.data["case_id"]))

    async def all_opened() -> bool:
        return all([await service.cases.cases.find(c) is not None for c in case_ids])

    await wait_until(all_opened, within=30)
    known_staff = next(h for h in service.runtime.handlers if isinstance(h, KnownStaff))
    await seed_directory(known_staff, staff(worker, team="t1"))
    for case_id in case_ids:
        cmd = AssignCaseworker(case_id, worker, None, "ray")
        await service.cases.execute(cmd, ADMIN, CommitContext())

    async def indexed() -> bool:
        return sorted(await service.cases.caseloads.open_cases_of(worker)) == sorted(case_ids)

    await wait_until(indexed, within=30)
    assert await service.cases.caseloads.open_cases_of("nobody") == []


async def test_a_first_slot_an_unfinished_write_holds_delays_the_case_never_loses_it(
    service: Service,
) -> None:
    """A writer that failed between the two inserts of the case's first commit (a database
    outage mid-append, as the outage test's CI run had) leaves that slot taken until the
    relay fences it. The policy used to take the conflict for "already opened" and drop the
    referral's case for good; it now waits (contention) and opens the case after the void."""
    envelope = accepted(RiskLevel.LOW)
    case_id = str(envelope.data["case_id"])
    stream = f"case-{case_id}"
    await service.runtime.store.pending.insert_one(
        {
            "_id": commit_id(stream, 1),
            "stream_id": stream,
            "first": 1,
            "attempt": "a-writer-that-died",
            "recorded_at": datetime.now(UTC),
        }
    )
    await service.deliver(envelope)

    async def opened() -> bool:
        return await service.commits(case_id) == [[], ["CaseOpened"]]  # the void, then it

    await wait_until(opened, within=90)
    assert service.outcomes("applied") == 1
    assert (await service.cases.case(case_id, ADMIN)).id == case_id
