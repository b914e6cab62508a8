"""Crisis alerts on the real servers: a declared crisis notifies the assigned worker and the
on-call crisis worker; redelivered, re-fired and replayed events notify nobody twice; an
unacknowledged alert escalates when its deadline comes (the service's clock is the test's);
acknowledgement stops the chain; the resolved crisis closes the alert."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from casework.auth import Principal
from casework.clock import FixedClock
from casework.eventstore import CommitContext
from casework.runtime import wait_until

from .conftest import SITE
from casework_notifications.application.handlers import escalation_key
from casework_notifications.bootstrap import Wired, build
from casework_notifications.domain.escalation import notification_id
from support.alerts import caught_up, crisis_declared, crisis_resolved, rewind
from support.notifications import FakeDirectory

SENT = "casework.notifications.NotificationSent.v1"


async def notifications_of(wired: Wired, alert_id: str) -> list[tuple[int, str]]:
    """(step, recipient) of every stored `NotificationSent` of the alert."""
    events = await wired.runtime.store.load(f"alert-{alert_id}")
    return [(int(e.data["step"]), str(e.data["recipient_id"])) for e in events if e.type == SENT]


async def inbox_ids(wired: Wired, recipient: str) -> list[str]:
    return [str(d["_id"]) for d in await wired.inbox.of(recipient, 100)]


async def test_redelivered_refired_and_replayed_crises_notify_nobody_twice(
    service: Wired,
    publish: Callable[..., Any],
    kafka_bootstrap: str,
    directory: FakeDirectory,
) -> None:
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    case_id = str(uuid.uuid4())
    declared = crisis_declared(case_id, clock.now(), SITE)
    alert_id = f"crisis:{case_id}"
    await publish(service, "cases", declared)

    async def both_notified() -> bool:
        return bool(await inbox_ids(service, "wendy")) and bool(await inbox_ids(service, "olga"))

    await wait_until(both_notified, within=30, every=0.1)
    assert sorted(await notifications_of(service, alert_id)) == [(0, "olga"), (0, "wendy")]

    # the same event twice more (a relay that republished), and a second crisis of the case
    await publish(service, "cases", declared)
    await publish(service, "cases", declared)
    await publish(service, "cases", crisis_declared(case_id, clock.now(), SITE, version=5))

    async def counted() -> bool:
        doc = await service.board.read_model.get(alert_id)
        return doc is not None and doc["count"] == 2

    await wait_until(counted, within=30, every=0.1)
    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, "when_case_changed_raise_alerts"),
        within=30,
        every=0.2,
    )
    assert sorted(await notifications_of(service, alert_id)) == [(0, "olga"), (0, "wendy")]

    # replay: the policy's group starts again from offset 0 in a new process
    await service.runtime.stop()
    await rewind(service, kafka_bootstrap, "when_case_changed_raise_alerts")
    assert not await caught_up(service, kafka_bootstrap, "when_case_changed_raise_alerts")
    again = build(
        service.runtime.settings,
        clock=clock,
        own=service.settings,
        staff=directory,
        rota=directory,
    )
    async with again.runtime.running():
        await wait_until(
            lambda: caught_up(again, kafka_bootstrap, "when_case_changed_raise_alerts"),
            within=60,
            every=0.3,
        )
        assert sorted(await notifications_of(again, alert_id)) == [(0, "olga"), (0, "wendy")]
        assert len(await inbox_ids(again, "wendy")) == 1


async def test_an_unacknowledged_crisis_escalates_on_time_and_acknowledgement_stops_it(
    service: Wired, publish: Callable[..., Any]
) -> None:
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    case_id = str(uuid.uuid4())
    declared = crisis_declared(case_id, clock.now(), SITE)
    crisis_id = str(declared.data["crisis_id"])
    alert_id = f"crisis:{case_id}"
    await publish(service, "cases", declared)

    async def escalation_scheduled() -> bool:
        return await service.runtime.deadlines.get(escalation_key(alert_id)) is not None

    await wait_until(escalation_scheduled, within=30, every=0.1)
    deadline = await service.runtime.deadlines.get(escalation_key(alert_id))
    assert deadline is not None
    assert deadline.due_at - declared.time < timedelta(minutes=5, milliseconds=1)
    assert deadline.payload["step"] == 1

    clock.advance(timedelta(minutes=4, seconds=59))
    assert await service.runtime.scheduler.fire_due() == 0
    assert sorted(await notifications_of(service, alert_id)) == [(0, "olga"), (0, "wendy")]

    clock.advance(timedelta(seconds=1))  # five minutes: the backup and the supervisor

    async def second_level() -> bool:
        return len(await notifications_of(service, alert_id)) == 5

    await wait_until(second_level, within=30, every=0.1)
    assert sorted(await notifications_of(service, alert_id))[2:] == [
        (1, "ben"),
        (1, "dora"),
        (1, "sam"),
    ]

    async def ben_sees_it() -> bool:
        return bool(await inbox_ids(service, "ben"))

    await wait_until(ben_sees_it, within=30, every=0.1)
    olga = Principal(
        sub="olga", name="olga", roles=frozenset({"crisis_worker"}), sites=frozenset({SITE})
    )
    acked = await service.alerts.acknowledge(
        notification_id(alert_id, 1, 0, "olga"), olga, CommitContext()
    )
    assert acked.current is not None
    assert acked.current.acknowledged_by == "olga"
    assert await service.runtime.deadlines.get(escalation_key(alert_id)) is None

    async def everyone_sees_the_acknowledgement() -> bool:
        doc = await service.board.read_model.get(alert_id)
        return doc is not None and doc["acknowledged_by"] == "olga"

    await wait_until(everyone_sees_the_acknowledgement, within=30, every=0.1)
    clock.advance(timedelta(minutes=30))
    await service.runtime.scheduler.fire_due()
    assert len(await notifications_of(service, alert_id)) == 5  # the chain stopped

    await publish(service, "cases", crisis_resolved(case_id, crisis_id, clock.now(), SITE))

    async def closed() -> bool:
        doc = await service.board.read_model.get(alert_id)
        return doc is not None and doc["status"] == "closed"

    await wait_until(closed, within=30, every=0.1)
