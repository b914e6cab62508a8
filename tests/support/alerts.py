"""Cases and contacts events as their services would publish them, for the notifications
tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from casework.contracts.cases import CrisisDeclared, CrisisResolved
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import ContactOverdue
from casework.contracts.supervision import SiteRegistered
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.projections import consumer_group
from casework.runtime import events_topic, topic_prefix

from casework_notifications.bootstrap import Wired


def case_envelope(
    case_id: str, event: DomainEvent, version: int, at: datetime, site: str
) -> Envelope:
    return Envelope(
        type=event.type_name(),
        source="/casework/cases",
        subject=f"case-{case_id}",
        time=at,
        data=event.model_dump(mode="json"),
        stream_version=version,
        site=site,
    )


def contact_overdue(
    case_id: str, obligation: str, at: datetime, site: str, *, worker: str | None = "wendy"
) -> ContactOverdue:
    """Contacts' overdue of a weekly contact at a high-risk case, an hour past due (`worker`
    None: the event names no worker, as events stored before it was carried)."""
    return ContactOverdue(
        case_id=case_id,
        obligation_id=obligation,
        rule_id="weekly",
        rule_version="1",
        due_at=at - timedelta(hours=1),
        overdue_seconds=3600,
        risk_level=RiskLevel.HIGH,
        caseworker_id=worker,
        site=site,
        raised_at=at,
    )


def site_registered(site: str, at: datetime, *, timezone: str | None = None) -> Envelope:
    """Supervision's directory registered `site` (the local copies' `KnownSites`)."""
    event = SiteRegistered(site=site, name=site.title(), registered_at=at, timezone=timezone)
    return Envelope(
        type=event.type_name(),
        source="/casework/supervision",
        subject=f"site-{site}",
        time=at,
        data=event.model_dump(mode="json"),
        stream_version=1,
        site=site,
    )


def crisis_declared(
    case_id: str,
    at: datetime,
    site: str,
    *,
    worker: str = "wendy",
    version: int = 3,
    crisis_id: str | None = None,
) -> Envelope:
    event = CrisisDeclared(
        case_id=case_id,
        crisis_id=crisis_id or str(uuid.uuid4()),
        site=site,
        caseworker_id=worker,
        risk_level=RiskLevel.IMMINENT,
        summary="enc:v1:k:AAAA",  # sealed on the wire: notifications never reads it
        declared_by=worker,
        declared_at=at,
    )
    return case_envelope(case_id, event, version, at, site)


def crisis_resolved(
    case_id: str, crisis_id: str, at: datetime, site: str, *, version: int = 4
) -> Envelope:
    event = CrisisResolved(
        case_id=case_id,
        crisis_id=crisis_id,
        resolution="enc:v1:k:AAAA",
        resolved_by="wendy",
        resolved_at=at,
    )
    return case_envelope(case_id, event, version, at, site)


def partitions(wired: Wired, topic: str) -> list[TopicPartition]:
    count = wired.runtime.settings.kafka_topic_partitions
    return [TopicPartition(topic, p) for p in range(count)]


async def caught_up(
    wired: Wired, kafka_bootstrap: str, handler: str, source: str = "cases"
) -> bool:
    """Whether the handler's consumer group has committed up to the end of its topic."""
    group = topic_prefix(wired.runtime.settings) + consumer_group("notifications", handler)
    topic = topic_prefix(wired.runtime.settings) + events_topic(source)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets(partitions(wired, topic))
        return all(
            (committed.get(tp).offset if committed.get(tp) else 0) >= end
            for tp, end in ends.items()
        )
    finally:
        await consumer.stop()
        await admin.close()


async def rewind(wired: Wired, kafka_bootstrap: str, handler: str, source: str = "cases") -> None:
    """Commit offset 0 for every partition of the cases topic in the handler's group (the
    group has no members: its service is stopped) — the next start replays everything."""
    group = topic_prefix(wired.runtime.settings) + consumer_group("notifications", handler)
    topic = topic_prefix(wired.runtime.settings) + events_topic(source)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = partitions(wired, topic)
        consumer.assign(parts)
        await consumer.commit(dict.fromkeys(parts, 0))
    finally:
        await consumer.stop()


async def status(wired: Wired, alert_id: str) -> str | None:
    """The alert group's status on the board (None: the board has not got it)."""
    doc = await wired.board.read_model.get(alert_id)
    return None if doc is None else str(doc["status"])
