"""A crisis declared while nobody is on call, then the on-call shift heard, on the real servers
(the service's own `KnownRota`, fed from the supervision topic as supervision's relay would):

- the crisis notifies the worker, its `on_call` target unresolved;
- the shift covering now is heard: its worker `cleo` is notified of the open crisis, once —
  the backup (a target of a level not reached yet, and a leaver besides) is not;
- the same shift event delivered twice more: still one notification, one inbox entry;
- a crisis acknowledged before the shift brings in nobody;
- a cancelled shift heard again (a replay after its cancellation) brings in nobody;
- two replicas bringing the same person into the same alert at once: one notification (a
  leaver on call: none);
- a shift that starts later: nobody until its start (a durable deadline), then its worker;
  a cancelled one brings in nobody at its start;
- the rota's copy learning of the shift after the crisis looked it up, but before the shift's
  policy looked for open alerts (it found none: the alert was not saved yet): the alert asks
  the rota again once saved and watched, and the on-call is told.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts import registry
from casework.contracts.notifications import Trigger
from casework.deadlines import Deadlines
from casework.eventstore import CommitContext, Document, EventStore, Repository
from casework.runtime import events_topic, topic_prefix, wait_until

from .conftest import SITE, running
from casework_notifications.adapters.on_call_watch import OnCallWatch
from casework_notifications.application.handlers import Alerts, Firing, shift_key
from casework_notifications.application.recipients import RecipientResolver
from casework_notifications.bootstrap import Wired, build
from casework_notifications.domain.alert import Alert
from casework_notifications.domain.escalation import notification_id
from casework_notifications.settings import NotificationsSettings
from support.alerts import caught_up, crisis_declared
from support.directory import SupervisionTopic, seed_directory, shift, shift_cancelled
from support.notifications import FakeDirectory, Shift, Staff, crisis_directory

SENT = "casework.notifications.NotificationSent.v1"
POLICY = "when_on_call_shift_bring_in"
T0 = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def nobody_on_call() -> FakeDirectory:
    """The crisis directory with no shift at all, `cleo` a crisis worker and `lee` a leaver."""
    directory = crisis_directory(SITE, T0)
    directory.shifts.clear()
    directory.add(Staff("cleo", email="cleo@agency.test", sites=(SITE,), roles=("crisis_worker",)))
    directory.add(Staff("lee", sites=(SITE,), roles=("crisis_worker",), active=False))
    return directory


@pytest.fixture
async def service(
    kafka_bootstrap: str, mongo_url: str, nobody_on_call: FakeDirectory
) -> AsyncIterator[Wired]:
    """The service with its own copy of the rota (no fake), the staff from the fake."""
    own = NotificationsSettings(deadline_tick_s=0.2)
    async with running(
        kafka_bootstrap, mongo_url, own, FixedClock(T0), staff=nobody_on_call
    ) as wired:
        yield wired


async def notified(wired: Wired, alert_id: str) -> list[tuple[int, str]]:
    """(step, recipient) of every stored `NotificationSent` of the alert."""
    events = await wired.runtime.store.load(f"alert-{alert_id}")
    return sorted(
        (int(e.data["step"]), str(e.data["recipient_id"])) for e in events if e.type == SENT
    )


async def inbox_of(wired: Wired, recipient: str) -> list[str]:
    return [str(d["_id"]) for d in await wired.inbox.of(recipient, 100)]


async def opened_with_nobody_on_call(
    wired: Wired, publish: Callable[..., Any], site: str = SITE
) -> str:
    case_id = str(uuid.uuid4())
    alert_id = f"crisis:{case_id}"
    await publish(wired, "cases", crisis_declared(case_id, T0, site))

    async def on_the_board() -> bool:
        doc = await wired.board.read_model.get(alert_id)
        return doc is not None and bool(doc["steps"])

    await wait_until(on_the_board, within=30, every=0.1)
    doc = await wired.board.read_model.get(alert_id)
    assert doc is not None
    assert doc["status"] == "open"
    assert doc["steps"][0]["unresolved"] == ["on_call"]
    assert await notified(wired, alert_id) == [(0, "wendy")]
    return alert_id


async def test_the_on_call_who_comes_on_shift_hears_of_the_open_crisis_once(
    service: Wired, publish: Callable[..., Any], kafka_bootstrap: str
) -> None:
    open_one = await opened_with_nobody_on_call(service, publish)
    acked = await opened_with_nobody_on_call(service, publish)
    wendy = Principal(
        sub="wendy", name="wendy", roles=frozenset({"caseworker"}), sites=frozenset({SITE})
    )
    await service.alerts.acknowledge(notification_id(acked, 1, 0, "wendy"), wendy, CommitContext())

    supervision = topic_prefix(service.runtime.settings) + events_topic("supervision")
    night = shift(SITE, "cleo", T0 - timedelta(hours=1), T0 + timedelta(hours=11), backup_id="lee")
    [scheduled] = await seed_directory(SupervisionTopic(kafka_bootstrap, supervision), night)

    async def cleo_told() -> bool:
        return bool(await inbox_of(service, "cleo"))

    await wait_until(cleo_told, within=30, every=0.1)
    assert await inbox_of(service, "cleo") == [notification_id(open_one, 1, 0, "cleo")]

    # the shift heard twice more (a relay that republished, a replica that died)
    await publish(service, "supervision", scheduled)
    await publish(service, "supervision", scheduled)
    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, POLICY, "supervision"), within=30, every=0.2
    )
    assert await notified(service, open_one) == [(0, "cleo"), (0, "wendy")]
    assert await notified(service, acked) == [(0, "wendy")]  # acknowledged: nobody new
    assert await inbox_of(service, "cleo") == [notification_id(open_one, 1, 0, "cleo")]
    assert await inbox_of(service, "lee") == []

    async def board_shows_it() -> bool:
        doc = await service.board.read_model.get(open_one)
        return doc is not None and bool(doc.get("brought_in"))

    await wait_until(board_shows_it, within=30, every=0.1)
    doc = await service.board.read_model.get(open_one)
    assert doc is not None
    assert [(b["step"], b["recipients"], b["targets"]) for b in doc["brought_in"]] == [
        (0, ["cleo"], ["on_call"])
    ]
    assert "cleo" in doc["recipients"]

    # she can take responsibility for it like anyone notified
    cleo = Principal(
        sub="cleo", name="cleo", roles=frozenset({"crisis_worker"}), sites=frozenset({SITE})
    )
    taken = await service.alerts.acknowledge(
        notification_id(open_one, 1, 0, "cleo"), cleo, CommitContext()
    )
    assert taken.current is not None
    assert taken.current.acknowledged_by == "cleo"


async def test_a_cancelled_shift_heard_again_brings_in_nobody(
    service: Wired, publish: Callable[..., Any], kafka_bootstrap: str
) -> None:
    supervision = SupervisionTopic(
        kafka_bootstrap, topic_prefix(service.runtime.settings) + events_topic("supervision")
    )
    day = shift(SITE, "ben", T0 - timedelta(hours=1), T0 + timedelta(hours=7))
    [scheduled, _] = await seed_directory(supervision, day, shift_cancelled(SITE, day.shift_id))
    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, POLICY, "supervision"), within=30, every=0.2
    )
    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, "known_rota", "supervision"),
        within=30,
        every=0.2,
    )
    alert_id = await opened_with_nobody_on_call(service, publish)
    await publish(service, "supervision", scheduled)
    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, POLICY, "supervision"), within=30, every=0.2
    )
    assert await notified(service, alert_id) == [(0, "wendy")]
    assert await inbox_of(service, "ben") == []


async def test_two_replicas_bringing_in_the_same_person_notify_them_once(
    service: Wired, publish: Callable[..., Any], nobody_on_call: FakeDirectory
) -> None:
    other_site = f"s{uuid.uuid4().hex[:8]}"  # no shift is ever heard there
    alert_id = await opened_with_nobody_on_call(service, publish, other_site)
    replica = build(
        service.runtime.settings,
        clock=service.runtime.clock,
        own=service.settings,
        staff=nobody_on_call,
    )
    # a leaver on call is never notified
    assert await service.alerts.bring_in_site(other_site, (("on_call", "lee"),), "test") == 0
    people = (("on_call", "cleo"), ("backup", "ben"))
    try:
        brought = await asyncio.gather(
            *(
                wired.alerts.bring_in_site(other_site, people, "test")
                for wired in (service, replica, service, replica)
            )
        )
    finally:
        await replica.runtime.client.close()
    assert sum(brought) == 1
    assert await notified(service, alert_id) == [(0, "cleo"), (0, "wendy")]


async def test_a_shift_that_starts_later_brings_its_worker_in_at_its_start(
    service: Wired, publish: Callable[..., Any], kafka_bootstrap: str
) -> None:
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    alert_id = await opened_with_nobody_on_call(service, publish)
    supervision = SupervisionTopic(
        kafka_bootstrap, topic_prefix(service.runtime.settings) + events_topic("supervision")
    )
    # ben's shift from +1 to +2 minutes, cancelled; cleo's from +2 minutes (the alert's next
    # step, with the backup and supervisor, is at +5: the start is what must tell her)
    short = shift(SITE, "ben", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    night = shift(SITE, "cleo", T0 + timedelta(minutes=2), T0 + timedelta(hours=8))
    await seed_directory(supervision, short, night, shift_cancelled(SITE, short.shift_id))

    async def cleo_expected() -> bool:
        return await service.runtime.deadlines.get(shift_key(SITE, night.shift_id)) is not None

    await wait_until(cleo_expected, within=30, every=0.1)
    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, POLICY, "supervision"), within=30, every=0.2
    )
    assert await service.runtime.deadlines.get(shift_key(SITE, short.shift_id)) is None
    assert await notified(service, alert_id) == [(0, "wendy")]

    clock.advance(timedelta(minutes=1, seconds=30))  # within ben's cancelled shift
    await service.runtime.scheduler.fire_due()
    assert await notified(service, alert_id) == [(0, "wendy")]

    clock.advance(timedelta(seconds=30))  # cleo's shift starts

    async def cleo_told() -> bool:
        return bool(await inbox_of(service, "cleo"))

    await wait_until(cleo_told, within=30, every=0.1)
    assert await inbox_of(service, "cleo") == [notification_id(alert_id, 1, 0, "cleo")]

    async def fired() -> bool:  # recorded once its handler returns: cleo's entry is inline
        return await service.runtime.deadlines.get(shift_key(SITE, night.shift_id)) is None

    await wait_until(fired, within=30, every=0.1)
    await service.runtime.scheduler.fire_due()
    assert await notified(service, alert_id) == [(0, "cleo"), (0, "wendy")]
    assert await inbox_of(service, "ben") == []


class LateRota:
    """A copy of the rota that hears of `cleo`'s shift right after its first answer."""

    def __init__(self, directory: FakeDirectory) -> None:
        self.directory = directory
        self.asked = 0

    async def on_call(self, site: str, at: datetime) -> Shift | None:
        self.asked += 1
        found = await self.directory.on_call(site, at)
        if self.asked == 1:
            self.directory.shifts.append(
                Shift(site, "cleo", None, at - timedelta(minutes=1), at + timedelta(hours=8))
            )
        return found


async def watched_alerts(
    database: AsyncDatabase[Document],
    staff: FakeDirectory,
    rota: Any,
    heard: FakeDirectory | None = None,
) -> tuple[OnCallWatch, EventStore, Alerts]:
    """The alerts application on the real database with its on-call watch (no service)."""
    watch = OnCallWatch(database)
    await watch.ensure_indexes()
    store = EventStore(database, source="/casework/notifications")
    alerts = Alerts(
        alerts=Repository(store, Alert, registry()),
        routing=NotificationsSettings().routing(),
        recipients=RecipientResolver(staff, rota),
        deadlines=Deadlines(database),
        clock=FixedClock(T0),
        watch=watch,
        heard=heard,
    )
    return watch, store, alerts


async def test_a_shift_the_rota_learnt_while_the_crisis_opened_is_not_lost(
    database: AsyncDatabase[Document], nobody_on_call: FakeDirectory
) -> None:
    rota = LateRota(nobody_on_call)
    watch, store, alerts = await watched_alerts(database, nobody_on_call, rota)
    # the shift's policy came first and found no open alert of the site to bring cleo into
    assert await alerts.bring_in_site(SITE, (("on_call", "cleo"),), "shift") == 0
    firing = Firing(Trigger.CRISIS, "c1", "crisis-1", SITE, "c1", "wendy", T0)
    assert await alerts.fire(firing, CommitContext())
    assert rota.asked == 2  # at the opening (nobody), and again once saved and watched
    events = await store.load("alert-crisis:c1")
    assert [e.type.split(".")[2] for e in events] == [
        "AlertOpened",
        "AlertEscalated",
        "NotificationSent",
        "AlertBroughtIn",
        "NotificationSent",
    ]
    assert await watch.of_site(SITE) == ["crisis:c1"]
    # a redelivered crisis, and the shift's policy late after all: nobody twice
    assert not await alerts.fire(firing, CommitContext())
    assert await alerts.bring_in_site(SITE, (("on_call", "cleo"),), "shift") == 0
    sent = [str(e.data["recipient_id"]) for e in events if e.type == SENT]
    assert sent == ["wendy", "cleo"]
    assert len(await store.load("alert-crisis:c1")) == len(events)
    # acknowledged: off the watch
    wendy = Principal(
        sub="wendy", name="wendy", roles=frozenset({"caseworker"}), sites=frozenset({SITE})
    )
    await alerts.acknowledge(notification_id("crisis:c1", 1, 0, "wendy"), wendy, CommitContext())
    assert await watch.of_site(SITE) == []


async def test_a_shift_only_the_policy_has_written_down_yet_is_not_lost(
    database: AsyncDatabase[Document], nobody_on_call: FakeDirectory
) -> None:
    """The policy wrote the shift to its own copy and found no alert to bring cleo into; the
    directory's copy has not heard of it yet: the alert, once watched, finds it there."""
    heard = FakeDirectory()
    heard.shifts.append(
        Shift(SITE, "cleo", "lee", T0 - timedelta(minutes=1), T0 + timedelta(hours=8))
    )
    _, store, alerts = await watched_alerts(database, nobody_on_call, nobody_on_call, heard)
    firing = Firing(Trigger.CRISIS, "c2", "crisis-2", SITE, "c2", "wendy", T0)
    assert await alerts.fire(firing, CommitContext())
    sent = [
        str(e.data["recipient_id"]) for e in await store.load("alert-crisis:c2") if e.type == SENT
    ]
    assert sent == ["wendy", "cleo"]  # lee, the backup, has left (and level 1 is not reached)
