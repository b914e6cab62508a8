"""The read models' projections fed through real Kafka by the platform's consumer runners:
the wiring works, a second delivery of every record changes nothing, and cases events read
before the intake events they follow still give the full timeline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts import registry
from casework.contracts.cases import CaseOpened, CaseworkerAssigned, CrisisDeclared
from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import ClientDetails, ReferralAccepted, ReferralReceived
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.metrics import Metrics
from casework.projections import dead_letter_topic, runners
from casework.relay import kafka_producer
from casework.runtime import ensure_topics, events_topic, wait_until

from casework_cases.adapters.read_models import build_read_models
from support.envelopes import envelope_of

T0 = datetime(2026, 2, 23, 9, 0, tzinfo=UTC)


def envelope(event: DomainEvent, stream: str, version: int, at: datetime) -> Envelope:
    return envelope_of(event, stream, version, at, site="north")


def story() -> tuple[list[Envelope], list[Envelope]]:
    """(cases topic, intake topic) records of one referral and its case."""
    received = ReferralReceived(
        referral_id="R1",
        site="north",
        client=ClientDetails(given_name="Alex", family_name="Morgan", date_of_birth=T0.date()),
        source=ReferralSource.GP,
        presenting_concerns="Low mood.",
        urgency=Urgency.SOON,
        received_by="ivy",
        received_at=T0,
    )
    accepted = ReferralAccepted(
        referral_id="R1",
        case_id="C1",
        client_id="K1",
        site="north",
        accepted_by="ivy",
        accepted_at=T0 + timedelta(hours=1),
    )
    opened = CaseOpened(
        case_id="C1",
        client_id="K1",
        referral_id="R1",
        site="north",
        opened_at=T0 + timedelta(hours=2),
    )
    assigned = CaseworkerAssigned(
        case_id="C1",
        caseworker_id="carl",
        team="t1",
        assigned_by="sue",
        assigned_at=T0 + timedelta(hours=3),
    )
    crisis = CrisisDeclared(
        case_id="C1",
        crisis_id="X1",
        site="north",
        risk_level=RiskLevel.IMMINENT,
        summary="...",
        declared_by="ana",
        declared_at=T0 + timedelta(hours=4),
    )
    cases = [
        envelope(opened, "case-C1", 1, opened.opened_at),
        envelope(assigned, "case-C1", 2, assigned.assigned_at),
        envelope(crisis, "case-C1", 3, crisis.declared_at),
    ]
    intake = [
        envelope(received, "referral-R1", 1, T0),
        envelope(accepted, "referral-R1", 2, accepted.accepted_at),
    ]
    return cases, intake


async def test_the_projections_run_on_kafka_once_per_event_whatever_the_topic_order(
    database: AsyncDatabase[Document], kafka_bootstrap: str
) -> None:
    prefix = f"test{uuid.uuid4().hex[:8]}."
    read_models = build_read_models(database, FixedClock(T0 + timedelta(days=1)))
    for projection in read_models.projections:
        await projection.ensure_indexes()
    topics = {name: prefix + events_topic(name) for name in ("cases", "intake")}
    dead_letters = [prefix + dead_letter_topic("cases", p.name) for p in read_models.projections]
    await ensure_topics(kafka_bootstrap, [*topics.values(), *dead_letters], 3)

    broker = KafkaBroker(kafka_bootstrap)
    metrics = Metrics("cases")
    for runner in runners(
        read_models.projections,
        registry(),
        broker,
        service="cases",
        metrics=metrics,
        max_attempts=2,
        prefix=prefix,
    ):
        runner.subscribe(broker)

    cases, intake = story()
    producer = kafka_producer(kafka_bootstrap, "test")
    await broker.start()
    await producer.start()
    try:
        # the cases topic first, then intake; then everything again (a relay that died before
        # marking its commits published)
        for _ in range(2):
            for topic, records in ((topics["cases"], cases), (topics["intake"], intake)):
                for record in records:
                    await producer.send_and_wait(
                        topic, record.value(), key=record.key, headers=record.headers()
                    )

        def outcomes(projection: str, outcome: str) -> float:
            value: float = metrics.events_projected.labels(projection, outcome)._value.get()
            return value

        expected = {"case_summaries": 3, "referral_summaries": 2, "timeline": 5}

        async def all_seen_twice() -> bool:
            return all(
                outcomes(name, "applied") + outcomes(name, "unchanged") == 2 * n
                for name, n in expected.items()
            )

        await wait_until(all_seen_twice, within=30)
    finally:
        await producer.stop()
        await broker.stop()

    for name, n in expected.items():
        assert (outcomes(name, "applied"), outcomes(name, "unchanged")) == (n, n), name
        assert outcomes(name, "dead_lettered") == 0, name

    case = await read_models.case_summaries.read_model.collection.find_one({"_id": "C1"})
    assert case is not None
    assert (case["caseworker_id"], case["crisis_open"], case["_applied"]) == (
        "carl",
        True,
        {"case-C1": 3},
    )
    referral = await read_models.referral_summaries.read_model.get("R1")
    assert referral is not None
    assert (referral["status"], referral["case_id"]) == ("accepted", "C1")
    admin = Principal(sub="ray", name="ray", roles=frozenset({"regional_admin"}), sites=frozenset())
    timeline = await read_models.case_timeline("C1", admin)
    assert [e.event for e in timeline.entries] == [
        "ReferralReceived",
        "ReferralAccepted",
        "CaseOpened",
        "CaseworkerAssigned",
        "CrisisDeclared",
    ]
