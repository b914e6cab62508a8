"""Approvals on the real Kafka broker and MongoDB-wire server.

- A redelivered request is one approval: the same `CasePlanProposed` record delivered three
  times gives one `ApprovalRequested` (stored and on the topic); a newer proposal withdraws
  the superseded one.
- Who decides comes from the directory's real local copy (`KnownStaff`, fed through the
  supervision topic): another supervisor of the site is refused while the worker has one;
  the supervisor's delegate decides, recorded as deciding for the supervisor.
- A decision drives the case: the cases and supervision services run side by side on one
  namespace; an assessment, a plan and a closure are requested by the cases service's
  events, decided in supervision, and carried out on the case by its policies — the
  assessment signed off (on the case stream), the plan approved (the case active), a closure
  returned (active again), one granted after a crisis was declared returned by the case
  (active again, never stuck in review), then one approved (closed). A decision redelivered
  later changes nothing. The return's reason is sealed under the case's client in both
  services' stores and reads `[erased]` everywhere once the client's keys are destroyed.
- Overdue fires once: two supervision replicas on one database and one fake clock; the clock
  passes the due time; `ApprovalOverdue` is stored and published once for the approval left
  waiting, never for the one decided in time; firing the deadline's command twice at once
  again (a takeover) changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts.cases import (
    CaseEvent,
    CaseOpened,
    CaseOutcome,
    CasePlanProposed,
    CaseworkerAssigned,
    Goal,
)
from casework.contracts.common import RiskLevel
from casework.envelope import Envelope
from casework.eventstore import CommitContext, Document
from casework.kafka_clients import kafka_client_options
from casework.privacy import REPLACEMENT
from casework.projections import consumer_group
from casework.runtime import ServiceRuntime, events_topic, topic_prefix, wait_until
from casework.settings import Settings

from casework_cases.application.handlers import Cases
from casework_cases.bootstrap import build as build_cases
from casework_cases.domain.case import Phase
from casework_cases.domain.commands import (
    AssignCaseworker,
    DeclareCrisis,
    OpenCase,
    ProposePlan,
    RecordAssessment,
    RequestClosure,
    ResolveCrisis,
)
from casework_supervision.application.approval_policies import overdue_key
from casework_supervision.application.approvals import Approvals
from casework_supervision.bootstrap import build as build_supervision
from casework_supervision.domain.approval_rules import ApprovalStatus
from casework_supervision.domain.errors import NotAnApprover
from casework_supervision.settings import ApprovalSettings
from support.directory import delegation, seed_directory, staff
from support.kafka import read_topic

SITE = "north"
TEAM = "t1"
SUE = Principal(
    sub="sue", name="sue", roles=frozenset({"supervisor"}), sites=frozenset({SITE}), team=TEAM
)
CARL = Principal(
    sub="carl", name="carl", roles=frozenset({"caseworker"}), sites=frozenset({SITE}), team=TEAM
)
DAN = Principal(
    sub="dan", name="dan", roles=frozenset({"supervisor"}), sites=frozenset({SITE}), team=TEAM
)
SID = Principal(
    sub="sid", name="sid", roles=frozenset({"supervisor"}), sites=frozenset({SITE}), team=TEAM
)
SAM = Principal(sub="sam", name="sam", roles=frozenset({"site_manager"}), sites=frozenset({SITE}))
WHY = "Not yet: the tenancy is at risk"
GOAL = Goal(goal_id="g1", description="Keep the tenancy", target_date=datetime(2027, 1, 1).date())


def namespace_settings(service: str, namespace: str, kafka: str, mongo: str) -> Settings:
    return Settings.for_service(
        service,
        0,
        namespace=namespace,
        kafka_bootstrap_servers=kafka,
        mongo_url=mongo,
        mongo_database=f"{namespace}_{service}",
        environment="test",
        relay_poll_interval_s=0.2,
    )


@dataclass
class Supervision:
    runtime: ServiceRuntime
    approvals: Approvals
    producer: AIOKafkaProducer
    versions: dict[str, int] = field(default_factory=dict)

    async def publish(self, event: CaseEvent, version: int | None = None) -> Envelope:
        """Publish a cases event as the cases service's relay would."""
        case_id: str = getattr(event, "case_id")  # noqa: B009
        if version is None:
            version = self.versions.get(case_id, 0) + 1
        self.versions[case_id] = version
        envelope = Envelope(
            type=event.type_name(),
            source="/casework/cases",
            subject=f"case-{case_id}",
            time=datetime.now(UTC),
            data=event.model_dump(mode="json"),
            stream_version=version,
            site=SITE,
        )
        await self.redeliver(envelope)
        return envelope

    async def redeliver(self, envelope: Envelope) -> None:
        await self.producer.send_and_wait(
            topic_prefix(self.runtime.settings) + events_topic("cases"),
            envelope.value(),
            key=envelope.key,
            headers=envelope.headers(),
        )

    async def stream(self, approval_id: str) -> list[str]:
        stored = await self.runtime.store.load(f"approval-{approval_id}")
        return [e.type.split(".")[2] for e in stored]


SEEDED = 6
"""Directory events `seed` stores (and the relay publishes on the supervision topic)."""


async def seed(service: Supervision) -> None:
    """The directory, through supervision's own event store (the relay publishes it and the
    service's `KnownStaff` projects it, as in production): carl is supervised by sue, who
    delegates to dan for a day from now; sid supervises at the same site and team."""
    now = datetime.now(UTC)
    await seed_directory(
        service.runtime.store,
        staff("sue", "supervisor", sites=[SITE], team=TEAM),
        staff("dan", "supervisor", sites=[SITE], team=TEAM),
        staff("sid", "supervisor", sites=[SITE], team=TEAM),
        staff("carl", "caseworker", sites=[SITE], team=TEAM, supervisor="sue"),
        delegation("sue", "dan", now - timedelta(minutes=1), now + timedelta(days=1)),
    )

    async def known() -> bool:
        at = datetime.now(UTC)
        return await service.approvals.staff.supervisors_of("carl", at) == ("sue", "dan")

    await wait_until(known, within=30, every=0.2)


@contextlib.asynccontextmanager
async def supervision_replicas(
    kafka: str, mongo: str, clock: FixedClock, replicas: int = 1, namespace: str | None = None
) -> AsyncIterator[list[Supervision]]:
    namespace = namespace or f"ap{uuid.uuid4().hex[:10]}"
    settings = namespace_settings("supervision", namespace, kafka, mongo)
    own = ApprovalSettings(due=timedelta(minutes=30), urgent_due=timedelta(minutes=10))
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            services = []
            for _ in range(replicas):
                wired = build_supervision(settings, clock, approval_settings=own)
                await stack.enter_async_context(wired.runtime.running())
                services.append(Supervision(wired.runtime, wired.approvals, producer))
            await seed(services[0])
            yield services
    finally:
        await producer.stop()
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo)
        await client.drop_database(settings.database_name)
        await client.close()


def opened(case_id: str, risk: RiskLevel = RiskLevel.MEDIUM) -> CaseOpened:
    return CaseOpened(
        case_id=case_id,
        client_id=str(uuid.uuid4()),
        referral_id=str(uuid.uuid4()),
        site=SITE,
        risk_level=risk,
        opened_at=datetime.now(UTC),
    )


def assigned(case_id: str) -> CaseworkerAssigned:
    return CaseworkerAssigned(
        case_id=case_id,
        caseworker_id="carl",
        team=TEAM,
        assigned_by="sam",
        assigned_at=datetime.now(UTC),
    )


def proposed(case_id: str, version: int) -> CasePlanProposed:
    return CasePlanProposed(
        case_id=case_id,
        plan_version=version,
        goals=(GOAL,),
        interventions=(),
        proposed_by="carl",
        proposed_at=datetime.now(UTC),
    )


async def test_a_redelivered_request_is_one_approval(kafka_bootstrap: str, mongo_url: str) -> None:
    clock = FixedClock(datetime.now(UTC))
    async with supervision_replicas(kafka_bootstrap, mongo_url, clock) as (service,):
        case_id = str(uuid.uuid4())
        await service.publish(opened(case_id))
        await service.publish(assigned(case_id))
        first = await service.publish(proposed(case_id, 1))
        await service.redeliver(first)
        await service.redeliver(first)
        v1, v2 = f"{case_id}:plan:1", f"{case_id}:plan:2"

        async def waiting_for_sue() -> bool:
            queue = await service.approvals.queue_of(SUE)
            return [d["_id"] for d in queue] == [v1]

        await wait_until(waiting_for_sue, within=30, every=0.2)
        await service.publish(proposed(case_id, 2))  # after the redeliveries, in one partition
        await service.redeliver(first)  # and once more, after it was withdrawn

        async def superseded() -> bool:
            queue = await service.approvals.queue_of(SUE)
            return [d["_id"] for d in queue] == [v2]

        await wait_until(superseded, within=30, every=0.2)
        assert await service.stream(v1) == ["ApprovalRequested", "ApprovalWithdrawn"]
        assert await service.stream(v2) == ["ApprovalRequested"]
        topic = topic_prefix(service.runtime.settings) + events_topic("supervision")
        records = await read_topic(kafka_bootstrap, topic, expect=SEEDED + 3)
        published = {
            (_header(r, "ce_subject"), _header(r, "ce_type").split(".")[2])
            for r in records
            if _header(r, "ce_subject").startswith("approval-")
        }
        assert published == {
            (f"approval-{v1}", "ApprovalRequested"),
            (f"approval-{v1}", "ApprovalWithdrawn"),
            (f"approval-{v2}", "ApprovalRequested"),
        }
        # the site manager sees the site's queue; the caseworker asked, so reads it
        assert [d["_id"] for d in await service.approvals.queue_of(SAM)] == [v2]
        assert (await service.approvals.get(v2, CARL)).status is ApprovalStatus.REQUESTED


def _header(record: Any, name: str) -> str:
    value: bytes = next(v for k, v in record.headers if k == name)
    return value.decode()


async def test_a_decision_drives_the_case(kafka_bootstrap: str, mongo_url: str) -> None:
    namespace = f"ad{uuid.uuid4().hex[:10]}"
    clock = FixedClock(datetime.now(UTC))
    cases_settings = namespace_settings("cases", namespace, kafka_bootstrap, mongo_url)
    cases_runtime, cases, _ = build_cases(cases_settings)
    try:
        async with (
            supervision_replicas(kafka_bootstrap, mongo_url, clock, namespace=namespace) as (
                service,
            ),
            cases_runtime.running(),
        ):
            await _drive_a_case(cases_runtime, cases, service)
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await client.drop_database(cases_settings.database_name)
        await client.close()


async def _drive_a_case(cases_runtime: ServiceRuntime, cases: Cases, service: Supervision) -> None:
    case_id = str(uuid.uuid4())
    ctx = CommitContext()
    admin = Principal(sub="ray", name="ray", roles=frozenset({"regional_admin"}), sites=frozenset())
    client_id = str(uuid.uuid4())
    await cases.open_case(
        OpenCase(
            case_id=case_id,
            client_id=client_id,
            referral_id=str(uuid.uuid4()),
            site=SITE,
            opened_by="ivy",
            crisis_id=str(uuid.uuid4()),
            risk_level=RiskLevel.MEDIUM,
        ),
        ctx,
    )
    await cases.execute(
        AssignCaseworker(case_id=case_id, caseworker_id="carl", team=TEAM, assigned_by="ray"),
        admin,
        ctx,
    )
    assess = RecordAssessment(
        case_id=case_id,
        assessment_id="a-1",
        needs={"housing": "arrears"},
        narrative="n",
        recorded_by="carl",
    )
    await cases.execute(assess, CARL, ctx)
    await cases.execute(
        ProposePlan(case_id=case_id, goals=(GOAL,), interventions=(), proposed_by="carl"),
        CARL,
        ctx,
    )

    async def requested(approval_id: str) -> None:
        async def there() -> bool:
            return await service.stream(approval_id) == ["ApprovalRequested"]

        await wait_until(there, within=30, every=0.2)

    async def phase_is(phase: Phase) -> None:
        async def there() -> bool:
            case = await cases.cases.find(case_id)
            return case is not None and case.phase is phase

        await wait_until(there, within=30, every=0.2)

    await requested(f"{case_id}:assessment:a-1")
    await requested(f"{case_id}:plan:1")
    # carl has a supervisor in the directory: sid, a supervisor of the same site and team,
    # is not an approver; sue is, and dan while sue delegates to him (deciding for her)
    with pytest.raises(NotAnApprover):
        await service.approvals.grant(f"{case_id}:assessment:a-1", SID, None, ctx)
    await service.approvals.grant(f"{case_id}:assessment:a-1", SUE, "Thorough", ctx)
    granted = await service.approvals.grant(f"{case_id}:plan:1", DAN, "Good", ctx)
    assert (granted.status, granted.decided_by, granted.on_behalf_of) == (
        ApprovalStatus.GRANTED,
        "dan",
        "sue",
    )
    await phase_is(Phase.ACTIVE)
    approved = [
        e.data
        for e in await cases_runtime.store.load(f"case-{case_id}")
        if e.type.endswith("CasePlanApproved.v1")
    ]
    assert [(a["approved_by"], a["on_behalf_of"]) for a in approved] == [("dan", "sue")]

    case = await cases.cases.find(case_id)
    assert case is not None
    assert case.approved_plan is not None
    assert case.approved_plan.approved_by == "dan"
    assert case.assessment_decided

    await cases.execute(
        RequestClosure(
            case_id=case_id,
            outcome=CaseOutcome.GOALS_MET,
            evaluation="e",
            requested_by="carl",
        ),
        CARL,
        ctx,
    )
    case = await cases.cases.find(case_id)
    assert case is not None
    first_closure = f"{case_id}:closure:{case.version}"
    await requested(first_closure)
    await service.approvals.return_(first_closure, SUE, WHY, ctx)
    await phase_is(Phase.ACTIVE)
    # the reason is the client's: sealed in supervision's store and, copied as it is, in the
    # case's `ClosureReturned`; the case's answer opens it
    (decision,) = [
        e.data
        for e in await service.runtime.store.load(f"approval-{first_closure}")
        if e.type.endswith("ApprovalReturned.v1")
    ]
    assert decision["client_id"] == client_id
    assert decision["reason"].startswith(f"enc:v1:client:{client_id}/notes/")
    (on_case,) = [
        e.data["reason"]
        for e in await cases_runtime.store.load(f"case-{case_id}")
        if e.type.endswith("ClosureReturned.v1")
    ]
    assert on_case == decision["reason"]
    assert await cases_runtime.opener.open_value(on_case) == WHY

    async def request_closure() -> str:
        closure = RequestClosure(
            case_id=case_id, outcome=CaseOutcome.GOALS_MET, evaluation="e", requested_by="carl"
        )
        case = await cases.execute(closure, CARL, ctx)
        approval_id = f"{case_id}:closure:{case.version}"
        await requested(approval_id)
        return approval_id

    # a crisis declared while the closure waits: the granted closure is returned by the case
    second_closure = await request_closure()
    crisis = DeclareCrisis(case_id=case_id, crisis_id="k-1", summary="s", declared_by="carl")
    await cases.execute(crisis, CARL, ctx)
    await service.approvals.grant(second_closure, SUE, None, ctx)
    await phase_is(Phase.ACTIVE)
    await cases.execute(
        ResolveCrisis(case_id=case_id, resolution="r", resolved_by="carl"), CARL, ctx
    )

    third_closure = await request_closure()
    await service.approvals.grant(third_closure, SUE, None, ctx)
    await phase_is(Phase.CLOSED)

    stored = [e.type.split(".")[2] for e in await cases_runtime.store.load(f"case-{case_id}")]
    assert stored.count("AssessmentSignedOff") == 1
    assert stored.count("CasePlanApproved") == 1
    assert stored.count("ClosureReturned") == 2
    assert stored.count("CaseClosed") == 1

    # the case's closure withdrew nothing that was decided, and nothing waits for sue (once
    # the queue, another consumer group than the cases policy that closed the case, has
    # taken the grant in: no order across groups)
    assert await service.stream(third_closure) == ["ApprovalRequested", "ApprovalGranted"]

    async def nothing_waits() -> bool:
        return await service.approvals.queue_of(SUE) == []

    await wait_until(nothing_waits, within=30, every=0.2)

    # the first closure's return, delivered again after the case closed, changes nothing
    topic = topic_prefix(service.runtime.settings) + events_topic("supervision")
    records = await read_topic(service.runtime.settings.kafka_bootstrap_servers, topic, expect=1)
    (returned,) = [
        r
        for r in records
        if _header(r, "ce_subject") == f"approval-{first_closure}"
        and _header(r, "ce_type").endswith("ApprovalReturned.v1")
    ]
    policy = "when_approval_returned_send_it_back"
    refused = [cases_metric(cases_runtime, policy, o) for o in ("dead_lettered", "parked")]
    before = [count() for count in refused]
    sent = await service.producer.send_and_wait(
        topic, returned.value, key=returned.key, headers=list(returned.headers)
    )
    # the cases policy has taken it in once its group's committed offset is past it
    settings = cases_runtime.settings
    group = topic_prefix(settings) + consumer_group("cases", policy)
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:

        async def taken_in() -> bool:
            offsets = await admin.list_consumer_group_offsets(group)
            committed = offsets.get(TopicPartition(topic, sent.partition))
            return committed is not None and committed.offset > sent.offset

        await wait_until(taken_in, within=60, every=0.2)
    finally:
        await admin.close()
    assert [count() for count in refused] == before  # neither poison nor parked
    after = [e.type.split(".")[2] for e in await cases_runtime.store.load(f"case-{case_id}")]
    assert after == stored

    # the client erased: the reason reads erased wherever it was copied, and the approval's
    # answer (from its stream, opened at the edge) still reads, with the reason erased
    await service.runtime.keys.destroy(
        f"client:{client_id}", reason="test", erasure_id=str(uuid.uuid4())
    )
    # (the destroying process forgets the key at once; another within its cache's TTL)
    assert await service.runtime.opener.open_value(decision["reason"]) == REPLACEMENT
    returned_view = await service.approvals.get(first_closure, SUE)
    assert returned_view.reason == decision["reason"]
    assert await service.runtime.opener.open_value(returned_view.reason) == REPLACEMENT

    async def erased_on_the_case() -> bool:
        return bool(await cases_runtime.opener.open_value(on_case) == REPLACEMENT)

    ttl = cases_runtime.settings.keys_cache_ttl_s
    await wait_until(erased_on_the_case, within=ttl + 5, every=0.2)


def cases_metric(runtime: ServiceRuntime, handler: str, outcome: str) -> Callable[[], float]:
    counter = runtime.metrics.events_projected.labels(handler, outcome)
    return lambda: float(counter._value.get())


async def test_overdue_fires_once_with_two_replicas(kafka_bootstrap: str, mongo_url: str) -> None:
    clock = FixedClock(datetime.now(UTC))
    async with supervision_replicas(kafka_bootstrap, mongo_url, clock, replicas=2) as services:
        first, second = services
        late, in_time = str(uuid.uuid4()), str(uuid.uuid4())
        for case_id in (late, in_time):
            await first.publish(opened(case_id, RiskLevel.HIGH))  # due 10 min after
            await first.publish(assigned(case_id))
            await first.publish(proposed(case_id, 1))
        late_id, in_time_id = f"{late}:plan:1", f"{in_time}:plan:1"
        deadlines = first.runtime.deadlines

        async def both_scheduled() -> bool:
            found = [await deadlines.get(overdue_key(a)) for a in (late_id, in_time_id)]
            return all(found)

        # two replicas of every group join and rebalance first (tens of seconds under load)
        await wait_until(both_scheduled, within=60, every=0.2)
        scheduled = await deadlines.get(overdue_key(late_id))
        assert scheduled is not None
        due = scheduled.due_at
        await second.approvals.grant(in_time_id, SUE, None, CommitContext())

        async def cancelled() -> bool:
            return await deadlines.get(overdue_key(in_time_id)) is None

        await wait_until(cancelled, within=30, every=0.2)
        clock.advance(timedelta(minutes=11))

        async def fired() -> bool:
            return await deadlines.get(overdue_key(late_id)) is None

        await wait_until(fired, within=60, every=0.2)
        assert await first.stream(late_id) == ["ApprovalRequested", "ApprovalOverdue"]
        assert await first.stream(in_time_id) == ["ApprovalRequested", "ApprovalGranted"]
        raised = (await first.runtime.store.load(f"approval-{late_id}"))[1].data
        assert raised["approver_ids"] == ["sue", "dan"]  # the supervisor, then the delegate

        # a takeover: both replicas fire the command again at once
        again = await asyncio.gather(
            first.approvals.mark_overdue(late_id, due), second.approvals.mark_overdue(late_id, due)
        )
        assert list(again) == [False, False]
        assert await first.stream(late_id) == ["ApprovalRequested", "ApprovalOverdue"]

        topic = topic_prefix(first.runtime.settings) + events_topic("supervision")
        overdue: set[tuple[str, str]] = set()

        async def published() -> bool:
            # the relay publishes after the commit: read until the overdue is there (the
            # topic may hold other supervision events, so a count alone can stop short)
            nonlocal overdue
            records = await read_topic(kafka_bootstrap, topic, expect=SEEDED + 4)
            overdue = {
                (_header(r, "ce_subject"), _header(r, "ce_streamversion"))
                for r in records
                if _header(r, "ce_type").endswith("ApprovalOverdue.v1")
            }
            return bool(overdue)

        await wait_until(published, within=30, every=0.2)
        assert overdue == {(f"approval-{late_id}", "2")}
        approval = await first.approvals.get(late_id, SUE)
        assert approval.overdue_at == clock.now()  # raised by the scheduler's (fake) clock
