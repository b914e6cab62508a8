"""The contacts service's obligations on the real Kafka broker and MongoDB-wire server, fed
by cases events as the cases service's relay publishes them.

- A risk change replans the case's obligations at once: the old rules' obligations are
  cancelled, the new rules' opened, each with the rule version it came from.
- A closed case's deadlines never fire: a case closed before its first contact fell due gets
  no `ContactOverdue` (its deadlines are cancelled), while an open case opened at the same
  moment gets exactly one — the control that shows the clock did run past the due time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from casework.contracts.cases import (
    CaseClosed,
    CaseEvent,
    CaseOpened,
    CaseOutcome,
    CaseworkerAssigned,
    RiskLevelChanged,
)
from casework.contracts.common import RiskLevel
from casework.envelope import Envelope
from casework.eventstore import Document
from casework.runtime import events_topic, topic_prefix, wait_until
from casework.settings import Settings

from casework_contacts.application.policies import overdue_key
from casework_contacts.bootstrap import Wired, build
from casework_contacts.settings import ContactsSettings
from support.contact_policy import FAST_SITE, write_fast_policy


@dataclass
class Service:
    wired: Wired
    producer: AIOKafkaProducer
    versions: dict[str, int] = field(default_factory=dict)

    async def publish(self, event: CaseEvent) -> None:
        """Publish a cases event as the cases service's relay would."""
        case_id: str = getattr(event, "case_id")  # noqa: B009
        version = self.versions.get(case_id, 0) + 1
        self.versions[case_id] = version
        envelope = Envelope(
            type=event.type_name(),
            source="/casework/cases",
            subject=f"case-{case_id}",
            time=datetime.now(UTC),
            data=event.model_dump(mode="json"),
            stream_version=version,
            site=FAST_SITE,
        )
        await self.producer.send_and_wait(
            topic_prefix(self.wired.runtime.settings) + events_topic("cases"),
            envelope.value(),
            key=envelope.key,
            headers=envelope.headers(),
        )

    async def obligation_events(self, case_id: str) -> list[Any]:
        stored = await self.wired.runtime.store.load(f"obligations-{case_id}")
        registry = self.wired.runtime.registry
        return [registry.parse(e.type, dict(e.data)) for e in stored]

    async def open_rules(self, case_id: str) -> dict[str, str]:
        aggregate = await self.wired.contacts.obligations.find(case_id)
        if aggregate is None:
            return {}
        return {o.rule_id: o.rule_version for o in aggregate.open.values()}


@pytest.fixture
async def service(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    namespace = f"ct{uuid.uuid4().hex[:10]}"
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
    own = ContactsSettings(policy_file=write_fast_policy(tmp_path), deadline_tick_s=0.5)
    wired = build(settings, contacts_settings=own)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        async with wired.runtime.running():
            await producer.start()
            try:
                yield Service(wired, producer)
            finally:
                await producer.stop()
    finally:
        client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
        await client.drop_database(settings.database_name)
        await client.close()


def opened(case_id: str, risk: RiskLevel | None) -> CaseOpened:
    return CaseOpened(
        case_id=case_id,
        client_id=str(uuid.uuid4()),
        referral_id=str(uuid.uuid4()),
        site=FAST_SITE,
        risk_level=risk,
        opened_at=datetime.now(UTC),
    )


async def test_a_risk_change_replans_the_obligations_at_once(service: Service) -> None:
    case_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    await service.publish(opened(case_id, RiskLevel.MEDIUM))
    await service.publish(
        CaseworkerAssigned(
            case_id=case_id, caseworker_id="carl", team="t1", assigned_by="sam", assigned_at=now
        )
    )
    version = "agency-default-2026-12+fast:fast-1"

    async def planned_for_medium() -> bool:
        return await service.open_rules(case_id) == {
            "medium-weekly": version,
            "first-contact-72h": version,
        }

    await wait_until(planned_for_medium, within=30, every=0.2)

    await service.publish(
        RiskLevelChanged(
            case_id=case_id,
            site=FAST_SITE,
            previous_level=RiskLevel.MEDIUM,
            risk_level=RiskLevel.HIGH,
            reason="Disclosed a plan",
            changed_by="carl",
            changed_at=now,
        )
    )

    async def replanned_for_high() -> bool:
        return await service.open_rules(case_id) == {
            "high-every-3-days": version,
            "high-weekly-face-to-face": version,
            "first-contact-24h": version,
        }

    await wait_until(replanned_for_high, within=30, every=0.2)
    events = await service.obligation_events(case_id)
    names = [type(e).__name__ for e in events]
    assert names.count("ContactObligationCancelled") == 2
    assert names.count("ContactObligationOpened") == 5
    assert {e.rule_version for e in events if type(e).__name__ == "ContactObligationOpened"} == {
        version
    }


async def test_a_closed_cases_deadlines_never_fire(service: Service) -> None:
    closed_case, open_case = str(uuid.uuid4()), str(uuid.uuid4())
    for case_id in (closed_case, open_case):
        await service.publish(opened(case_id, RiskLevel.HIGH))
    await service.publish(
        CaseClosed(
            case_id=closed_case,
            outcome=CaseOutcome.DISENGAGED,
            approved_by="sue",
            closed_at=datetime.now(UTC),
        )
    )

    async def control_overdue() -> bool:
        events = await service.obligation_events(open_case)
        return any(type(e).__name__ == "ContactOverdue" for e in events)

    # the open case's first contact falls due 6 s after opening: its overdue shows that the
    # scheduler ran past the closed case's due time too
    await wait_until(control_overdue, within=60, every=0.3)

    deadlines = service.wired.runtime.deadlines

    async def closed_cases_deadlines_gone() -> bool:
        # cancelled by the policy that reads the cancellations (or, for one that fell due
        # first, fired and refused by the aggregate): none is left to fire
        for event in await service.obligation_events(closed_case):
            if type(event).__name__ == "ContactObligationOpened":
                key = overdue_key(closed_case, event.obligation_id)
                if await deadlines.get(key) is not None:
                    return False
        return True

    await wait_until(closed_cases_deadlines_gone, within=30, every=0.3)
    closed = [type(e).__name__ for e in await service.obligation_events(closed_case)]
    assert "ContactOverdue" not in closed
    assert "ContactDueSoon" not in closed
    assert closed.count("ContactObligationCancelled") == closed.count("ContactObligationOpened")
    aggregate = await service.wired.contacts.obligations.find(closed_case)
    assert aggregate is not None
    assert aggregate.open == {}
    overdue = [
        e
        for e in await service.obligation_events(open_case)
        if type(e).__name__ == "ContactOverdue"
    ]
    assert [e.rule_id for e in overdue] == ["first-contact-24h"]
