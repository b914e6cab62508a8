"""The fast rebuild (folded in memory, written once per document in bulk) gives exactly the
documents the live projections build from the same records: every read model of the cases,
intake and contacts services, and the inbox and alert board of the notifications service, on
real Kafka and FerretDB, fed a mixed history of referrals and cases, the contacts the contacts
service's own application made for the first cases (`support.contacts_story`: contacts of
every kind, obligations opened, met, replanned, cancelled, due soon and overdue), and the
alerts the notifications service's own application raised from the story's cases and approvals
(`support.notifications_story`: opened, re-fired, escalated, read, acknowledged, in contact,
closed)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from casework.eventstore import Document
from casework.metrics import Metrics
from casework.projections import Projection, dead_letter_topic, runners
from casework.rebuild import rebuild_projection
from casework.runtime import ServiceRuntime, ensure_topics, topic_prefix, wait_until
from casework.samples import T0, Story, story
from casework.settings import Settings

from casework_cases import bootstrap as cases_bootstrap
from casework_contacts import bootstrap as contacts_bootstrap
from casework_intake import bootstrap as intake_bootstrap
from casework_notifications import bootstrap as notifications_bootstrap
from support.contacts_story import SettableClock, contacts_history
from support.notifications_story import StoryDirectory, notifications_history

REFERRALS = 80
CONTACT_CASES = 10
CONTACT_EVENTS = {
    "ContactScheduled", "ContactLogged", "ContactMissed", "ContactCancelled", "ContactCorrected",
    "LoneWorkerCheckedIn", "LoneWorkerCheckedOut", "LoneWorkerOverdue", "ContactCounted",
    "ContactUncounted", "ContactObligationOpened", "ContactObligationMet",
    "ContactObligationCancelled", "ContactDueSoon", "ContactOverdue",
}  # fmt: skip
"""What the contacts history must hold for the test to mean something."""
ALERT_EVENTS = {
    "AlertOpened", "AlertEscalated", "NotificationSent", "NotificationRead", "AlertAcknowledged",
    "AlertInContact", "AlertClosed", "AlertSourceSettled",
}  # fmt: skip
"""And the notifications history."""
ONLY = {"notifications": {"inbox", "alert_board"}}
"""Read models checked of a service, where not all of them (the notifications service's copies
of the directory read a supervision topic the story has no rota on)."""


async def _publish(bootstrap: str, prefix: str, records: dict[str, list[Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(prefix + topic, key=e.key, value=e.value(), headers=e.headers())
            for topic, envelopes in records.items()
            for e in envelopes
        ]
        for future in sent:
            await future
    finally:
        await producer.stop()


async def _documents(projection: Projection) -> dict[Any, Document]:
    return {d["_id"]: dict(d) async for d in projection.read_model.collection.find({})}


@pytest.mark.timeout(240)  # 80-90 s on the loaded 2-core machine (load 15); the default is 120 s
async def test_every_read_model_rebuilt_equals_the_live_one(
    kafka_bootstrap: str, mongo_url: str
) -> None:
    namespace = f"rbl{uuid.uuid4().hex[:8]}"
    history = story(REFERRALS, seed=11)
    services: list[tuple[Settings, ServiceRuntime]] = []
    clock = SettableClock(T0)
    for name, module in (
        ("cases", cases_bootstrap),
        ("intake", intake_bootstrap),
        ("contacts", contacts_bootstrap),
        ("notifications", notifications_bootstrap),
    ):
        settings = Settings.for_service(
            name,
            module.PORT,
            environment="test",
            kafka_bootstrap_servers=kafka_bootstrap,
            mongo_url=mongo_url,
            mongo_database=f"test_{namespace}_{name}",
            namespace=namespace,
            keys_mongo_db=f"test_{namespace}_keys",  # the contacts' notes are sealed
        )
        if module is contacts_bootstrap:
            contacts = contacts_bootstrap.build(settings, clock)  # it decides on the story's time
            services.append((settings, contacts.runtime))
        elif module is notifications_bootstrap:
            directory = StoryDirectory()
            notifications = notifications_bootstrap.build(
                settings, SettableClock(T0), staff=directory, rota=directory
            )
            services.append((settings, notifications.runtime))
        else:
            services.append((settings, module.build(settings)[0]))
    prefix = topic_prefix(services[0][0])
    try:
        # the contacts the contacts service makes of the first cases, as its relay publishes
        await contacts.runtime.store.ensure_indexes()
        made = await contacts_history(contacts, history, cases=CONTACT_CASES)
        kinds = {e.type.split(".")[2] for e in made.records["casework.contacts.events"]}
        assert kinds >= CONTACT_EVENTS, CONTACT_EVENTS - kinds
        await notifications.runtime.store.ensure_indexes()
        await notifications.runtime.deadlines.ensure_indexes()
        # the notifications the story's cases, supervision and contacts raise
        heard = Story(records={**history.records, **made.records})
        alerted = await notifications_history(notifications, heard)
        kinds = {e.type.split(".")[2] for e in alerted.records["casework.notifications.events"]}
        assert kinds >= ALERT_EVENTS, ALERT_EVENTS - kinds
        history.records.update(made.records)
        history.records.update(alerted.records)
        topics = {prefix + t for t in history.records}
        for settings, runtime in services:
            topics |= {
                prefix + dead_letter_topic(settings.service, h.name) for h in runtime.handlers
            }
            # topics a read model reads that the story has nothing on (the contacts topic,
            # which the case timeline reads) exist, empty
            topics |= {prefix + t for h in runtime.handlers for t in h.topics}
        await ensure_topics(kafka_bootstrap, sorted(topics), 3)
        await _publish(kafka_bootstrap, prefix, history.records)

        # live: every read model (not the policies) fed by the service's own runner
        broker = KafkaBroker(kafka_bootstrap)
        metrics = Metrics("test")
        projections: list[tuple[Settings, ServiceRuntime, Projection]] = []
        for settings, runtime in services:
            only = ONLY.get(settings.service)
            mine = [
                h
                for h in runtime.handlers
                if isinstance(h, Projection) and (only is None or h.name in only)
            ]
            for p in mine:
                await p.ensure_indexes()
            for runner in runners(
                mine,
                runtime.registry,
                broker,
                service=settings.service,
                metrics=metrics,
                prefix=prefix,
                database=runtime.database,
            ):
                runner.subscribe(broker)
            projections += [(settings, runtime, p) for p in mine]
        expected = {
            p.name: sum(len(history.records.get(t, [])) for t in p.topics)
            for _, _, p in projections
        }

        def handled(name: str) -> float:
            return sum(
                metrics.events_projected.labels(name, outcome)._value.get()
                for outcome in ("applied", "unchanged", "skipped", "dead_lettered", "parked")
            )

        async def caught_up() -> bool:
            return all(handled(name) >= n for name, n in expected.items())

        await broker.start()
        try:
            await wait_until(caught_up, within=90)
        finally:
            await broker.stop()
        for name in expected:
            assert metrics.events_projected.labels(name, "dead_lettered")._value.get() == 0

        # rebuilt from scratch: the same documents, field for field
        for settings, runtime, projection in projections:
            live = await _documents(projection)
            assert live, projection.name
            report = await rebuild_projection(
                projection, runtime.registry, settings, progress=lambda _: None
            )
            assert report.events == expected[projection.name]
            rebuilt = await _documents(projection)
            assert rebuilt.keys() == live.keys(), projection.name
            different = [k for k in live if live[k] != rebuilt[k]]
            assert not different, (projection.name, live[different[0]], rebuilt[different[0]])
    finally:
        for settings, runtime in services:
            await runtime.client.drop_database(settings.database_name)
            await runtime.client.drop_database(settings.keys_mongo_db)
            await runtime.stop()
