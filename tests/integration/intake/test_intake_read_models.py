"""Intake's read models on the real broker and MongoDB-wire server: the intake queue and the
client index are built from events relayed through Kafka, and stay the same when every event
is delivered a second time. (Duplicate matching is a blind index: see
tests/integration/test_privacy_blind_index.py.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts import registry
from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import ClientDetails, ScreeningAnswers
from casework.eventstore import Document, EventStore, Repository
from casework.metrics import Metrics
from casework.privacy import KeyService, LocalKeyFileProvider, create_key_file, is_sealed
from casework.privacy.sealing import Opener, Sealer
from casework.projections import ConsumerRunner, Projection, broker_dead_letter_publisher
from casework.runtime import ensure_topics, wait_until

from casework_intake.adapters.client_index import ClientIndex
from casework_intake.adapters.intake_queue import IntakeQueue
from casework_intake.domain.client import Client
from casework_intake.domain.commands import (
    AcceptReferral,
    ConfirmClientMatch,
    DeclineReferral,
    ReceiveReferral,
    RegisterClient,
    ScreenRisk,
)
from casework_intake.domain.referral import Referral
from support.outbox import relay_all, requeue_everything

REGISTRY = registry()
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
NO_RISK = ScreeningAnswers(wish_to_be_dead=False, suicidal_thoughts=False)
HARM = ScreeningAnswers(wish_to_be_dead=False, suicidal_thoughts=False, harm_to_others=True)

P = TypeVar("P", bound=Projection)


def reading(projection: type[P], topic: str, database: AsyncDatabase[Document]) -> P:
    """The projection fed by one (test-unique) topic instead of the intake topic."""
    bound: type[P] = type(projection.__name__, (projection,), {"topics": (topic,)})
    return bound(database)


@pytest.fixture
async def store(database: AsyncDatabase[Document]) -> EventStore:
    s = EventStore(database, source="/casework/intake")
    await s.ensure_indexes()
    return s


async def redeliver_everything(store: EventStore, bootstrap: str, topic: str) -> None:
    """As if the relay died after publishing but before marking: every event goes again."""
    await requeue_everything(store)
    await relay_all(store, bootstrap, topic)


class Running:
    def __init__(self, runner: ConsumerRunner, metrics: Metrics) -> None:
        self.runner, self.metrics = runner, metrics

    def outcomes(self, outcome: str) -> float:
        counter = self.metrics.events_projected.labels(self.runner.handler.name, outcome)
        value: float = counter._value.get()
        return value


@asynccontextmanager
async def consuming(projection: Projection, bootstrap: str, topic: str) -> AsyncIterator[Running]:
    service = f"test{uuid.uuid4().hex[:6]}"
    metrics = Metrics(service)
    broker = KafkaBroker(bootstrap)
    runner = ConsumerRunner(
        projection,
        REGISTRY,
        service=service,
        publish_dead_letter=broker_dead_letter_publisher(broker, projection.name),
        metrics=metrics,
        max_attempts=3,
        retry_delay=0.01,
    )
    await ensure_topics(bootstrap, [topic, runner.dead_letter_topic], 3)
    await projection.ensure_indexes()
    runner.subscribe(broker)
    await broker.start()
    try:
        yield Running(runner, metrics)
    finally:
        await broker.stop()


async def eventually(check: Callable[[], Any], within: float = 30) -> None:
    async def holds() -> bool:
        return bool(await check())

    await wait_until(holds, within=within)


def person(given: str, family: str = "Morgan", phone: str | None = None) -> ClientDetails:
    return ClientDetails(
        given_name=given, family_name=family, date_of_birth=date(1990, 4, 12), phone=phone
    )


# --- the intake queue --------------------------------------------------------------------


async def test_intake_queue_orders_by_urgency_then_age_and_survives_redelivery(
    database: AsyncDatabase[Document], store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    referrals = Repository(store, Referral, REGISTRY)
    ids: dict[str, str] = {}

    async def take(name: str, urgency: Urgency, minutes: int, site: str = "north") -> Referral:
        ids[name] = str(uuid.uuid4())
        referral = referrals.new(ids[name])
        cmd = ReceiveReferral(
            referral_id=ids[name],
            site=site,
            client=person(name),
            source=ReferralSource.SELF,
            presenting_concerns="...",
            urgency=urgency,
            received_by="ivy",
        )
        referral.receive(cmd, T0 + timedelta(minutes=minutes))
        await referrals.save(referral)
        return referral

    routine_old = await take("Rita", Urgency.ROUTINE, 0)
    await take("Ursula", Urgency.URGENT, 30)
    await take("Una", Urgency.URGENT, 10)
    await take("Emma", Urgency.EMERGENCY, 50)
    await take("Sonia", Urgency.SOON, 20)
    await take("Rob", Urgency.ROUTINE, 40)
    await take("Siobhan", Urgency.EMERGENCY, 5, site="south")  # another site's queue
    accepted = await take("Abe", Urgency.EMERGENCY, 1)
    declined = await take("Dee", Urgency.URGENT, 2)

    routine_old.screen_risk(ScreenRisk(routine_old.id, HARM, "ivy"), T0 + timedelta(hours=1))
    await referrals.save(routine_old)
    accepted.screen_risk(ScreenRisk(accepted.id, NO_RISK, "ivy"), T0 + timedelta(hours=1))
    accepted.accept(AcceptReferral(accepted.id, "ivy", "case-1", "client-1"), T0)
    await referrals.save(accepted)
    declined.decline(DeclineReferral(declined.id, "out of area", "ivy"), T0)
    await referrals.save(declined)
    total_events = 9 + 1 + 2 + 1  # 9 received, screened, screened + accepted, declined

    queue = reading(IntakeQueue, topic, database)
    expected = ["Emma", "Una", "Ursula", "Sonia", "Rita", "Rob"]
    async with consuming(queue, kafka_bootstrap, topic) as running:
        await relay_all(store, kafka_bootstrap, topic)

        async def in_order() -> bool:
            waiting = await queue.waiting("north", limit=100)
            return [w.client_name.split()[0] for w in waiting] == expected

        await eventually(in_order)
        assert running.outcomes("applied") == total_events
        north = await queue.waiting("north", limit=100)
        rita = next(w for w in north if w.referral_id == ids["Rita"])
        assert (rita.risk_level, rita.urgency, rita.source) == (
            RiskLevel.HIGH,
            Urgency.ROUTINE,
            ReferralSource.SELF,
        )
        assert rita.received_at == T0
        assert all(w.risk_level is None for w in north if w.referral_id != ids["Rita"])
        assert [w.client_name for w in await queue.waiting("south", limit=100)] == [
            "Siobhan Morgan"
        ]
        assert [w.client_name for w in await queue.waiting("north", limit=2)] == [
            "Emma Morgan",
            "Una Morgan",
        ]

        # paged: the next page starts after the last referral seen
        async def page(after: str, limit: int = 2) -> list[str]:
            waiting = await queue.waiting("north", limit=limit, after=after)
            return [w.client_name.split()[0] for w in waiting]

        assert await page(ids["Una"]) == ["Ursula", "Sonia"]
        assert await page(ids["Sonia"], limit=10) == ["Rita", "Rob"]
        assert await page(ids["Rob"]) == []
        # a referral decided since it was seen keeps its place in the order
        assert await page(ids["Abe"]) == ["Emma", "Una"]
        assert await page("no-such-referral") == []
        before = [d async for d in queue.read_model.collection.find({}).sort("_id", 1)]

        await redeliver_everything(store, kafka_bootstrap, topic)

        async def all_seen_twice() -> bool:
            return running.outcomes("unchanged") >= total_events

        await eventually(all_seen_twice)
        after = [d async for d in queue.read_model.collection.find({}).sort("_id", 1)]
        assert after == before  # decided referrals did not come back, nothing changed
        assert running.outcomes("applied") == total_events
        assert [w.client_name.split()[0] for w in await queue.waiting("north", 100)] == expected


# --- the client index --------------------------------------------------------------------


async def test_client_index_keeps_sealed_details_and_survives_redelivery(
    database: AsyncDatabase[Document], kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """The registry holds the clients' details as the events carry them: tokens, which an
    authorised answer opens; a redelivery changes nothing."""
    create_key_file(tmp_path / "kek")
    keys = KeyService(database, LocalKeyFileProvider(tmp_path / "kek"))
    store = EventStore(database, source="/casework/intake", sealer=Sealer(keys))
    await store.ensure_indexes()
    clients = Repository(store, Client, REGISTRY)
    registered = {
        "alex": person("Alex", "Morgan", "+44 7700 900123"),
        "flatmate": person("Jo", "Smith", "07700900123"),
    }
    ids = {name: str(uuid.uuid4()) for name in registered}
    for name, who in registered.items():
        client = clients.new(ids[name])
        client.register(RegisterClient(ids[name], "north", who, match_term="name:t"), T0)
        await clients.save(client)

    index = reading(ClientIndex, topic, database)
    async with consuming(index, kafka_bootstrap, topic) as running:
        await relay_all(store, kafka_bootstrap, topic)

        async def all_filed() -> bool:
            return running.outcomes("applied") >= len(registered)

        await eventually(all_filed)
        known = await index.registered(list(ids.values()))
        stored = [d async for d in index.read_model.collection.find({})]
        assert "Smith" not in str(stored)
        assert "7700" not in str(stored)
        flatmate = known[ids["flatmate"]]
        assert flatmate.site == "north"
        assert is_sealed(flatmate.details.family_name)
        opened = await Opener(keys).open_value(flatmate.details.model_dump(mode="json"))
        assert ClientDetails.model_validate(opened) == registered["flatmate"]
        before = [d async for d in index.read_model.collection.find({}).sort("_id", 1)]

        await redeliver_everything(store, kafka_bootstrap, topic)

        async def all_seen_twice() -> bool:
            return running.outcomes("unchanged") >= len(registered)

        await eventually(all_seen_twice)
        after = [d async for d in index.read_model.collection.find({}).sort("_id", 1)]
        assert after == before


async def test_confirmed_match_is_shown_in_the_queue(
    database: AsyncDatabase[Document], store: EventStore, kafka_bootstrap: str, topic: str
) -> None:
    referrals = Repository(store, Referral, REGISTRY)
    referral = referrals.new(str(uuid.uuid4()))
    referral.receive(
        ReceiveReferral(
            referral_id=referral.id,
            site="north",
            client=person("Alex"),
            source=ReferralSource.GP,
            presenting_concerns="...",
            urgency=Urgency.SOON,
            received_by="ivy",
        ),
        T0,
        candidates=["c-1", "c-2"],
    )
    await referrals.save(referral)
    queue = reading(IntakeQueue, topic, database)
    async with consuming(queue, kafka_bootstrap, topic):
        await relay_all(store, kafka_bootstrap, topic)

        async def undecided() -> bool:
            waiting = await queue.waiting("north", 10)
            return [w.client_match for w in waiting] == ["undecided"]

        await eventually(undecided)
        referral.confirm_client_match(ConfirmClientMatch(referral.id, "c-2", "ivy"), T0)
        await referrals.save(referral)
        await relay_all(store, kafka_bootstrap, topic)

        async def confirmed() -> bool:
            waiting = await queue.waiting("north", 10)
            return [w.client_match for w in waiting] == ["confirmed"]

        await eventually(confirmed)
