"""An overdue contact made stops its alert's chain, on the real servers: a case's
`contact_overdue` group closes once every obligation it counted is met or cancelled, so the
supervisor is not told at 4 h of contacts made since; a case with one of its two overdue
contacts made still escalates for the other. Redelivered settlements change nothing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from casework.clock import FixedClock
from casework.contracts.contacts import (
    ContactObligationCancelled,
    ContactObligationMet,
    ContactOverdue,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.runtime import wait_until

from .conftest import SITE
from casework_notifications.application.handlers import escalation_key
from casework_notifications.bootstrap import Wired
from support.alerts import caught_up, contact_overdue
from support.envelopes import envelope_of

POLICY = "when_work_overdue_raise_alerts"
SENT = "casework.notifications.NotificationSent.v1"


def obligations(case_id: str, event: DomainEvent, version: int, at: datetime) -> Envelope:
    return envelope_of(event, f"obligations-{case_id}", version, at, site=SITE)


def overdue(case_id: str, obligation: str, at: datetime) -> ContactOverdue:
    return contact_overdue(case_id, obligation, at, SITE)


def met(case_id: str, obligation: str, at: datetime) -> ContactObligationMet:
    return ContactObligationMet(
        case_id=case_id,
        obligation_id=obligation,
        rule_id="weekly",
        contact_id=str(uuid.uuid4()),
        met_at=at,
        due_at=at - timedelta(hours=1),
        on_time=False,
    )


def cancelled(case_id: str, obligation: str, at: datetime) -> ContactObligationCancelled:
    return ContactObligationCancelled(
        case_id=case_id,
        obligation_id=obligation,
        rule_id="weekly",
        reason="risk lowered",
        cancelled_at=at,
    )


async def stream_types(wired: Wired, alert_id: str) -> list[str]:
    events = await wired.runtime.store.load(f"alert-{alert_id}")
    return [e.type.split(".")[2] for e in events]


async def recipients(wired: Wired, alert_id: str) -> list[str]:
    events = await wired.runtime.store.load(f"alert-{alert_id}")
    return sorted(str(e.data["recipient_id"]) for e in events if e.type == SENT)


def board(wired: Wired, alert_id: str, field: str, value: Any) -> Callable[[], Awaitable[bool]]:
    """Whether the alert's board document says `field` = `value` (a check to wait on)."""

    async def says() -> bool:
        doc = await wired.board.read_model.get(alert_id)
        return doc is not None and doc.get(field) == value

    return says


async def test_overdue_contacts_made_close_the_alert_before_the_supervisor_hears(
    service: Wired, publish: Callable[..., Any], kafka_bootstrap: str
) -> None:
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    now = clock.now()
    made, half = str(uuid.uuid4()), str(uuid.uuid4())  # both contacts settled; one of two
    made_alert, half_alert = f"contact_overdue:{made}", f"contact_overdue:{half}"
    for case_id in (made, half):
        for version, obligation in enumerate(("ob-1", "ob-2"), start=1):
            envelope = obligations(case_id, overdue(case_id, obligation, now), version, now)
            await publish(service, "contacts", envelope)
    for alert_id in (made_alert, half_alert):
        await wait_until(board(service, alert_id, "count", 2), within=30, every=0.1)
        assert await recipients(service, alert_id) == ["wendy"]

    later = now + timedelta(minutes=30)
    settlements = [
        obligations(made, met(made, "ob-1", later), 3, later),
        obligations(made, cancelled(made, "ob-2", later), 4, later),
    ]
    for envelope in settlements:
        await publish(service, "contacts", envelope)
    half_met = obligations(half, met(half, "ob-1", later), 3, later)
    await publish(service, "contacts", half_met)

    await wait_until(board(service, made_alert, "status", "closed"), within=30, every=0.1)
    await wait_until(board(service, half_alert, "settled", 1), within=30, every=0.1)
    assert await board(service, half_alert, "status", "open")()  # ob-2 is still owed
    assert await service.runtime.deadlines.get(escalation_key(made_alert)) is None
    assert await service.runtime.deadlines.get(escalation_key(half_alert)) is not None

    # the supervisor's step comes at 4 h: for the case still owed a contact, not the other
    clock.advance(timedelta(hours=4, seconds=5))

    async def supervisor_told() -> bool:
        return "sam" in await recipients(service, half_alert)

    await wait_until(supervisor_told, within=30, every=0.1)
    assert await recipients(service, made_alert) == ["wendy"]

    # redelivered, the settlements change nothing; the last of the other case closes it
    for envelope in [*settlements, half_met]:
        await publish(service, "contacts", envelope)
    at = clock.now()
    await publish(service, "contacts", obligations(half, met(half, "ob-2", at), 4, at))
    await wait_until(board(service, half_alert, "status", "closed"), within=30, every=0.1)
    await wait_until(lambda: caught_up(service, kafka_bootstrap, POLICY, "contacts"), within=30)
    settled_and_closed = ["AlertSourceSettled", "AlertSourceSettled", "AlertClosed"]
    assert (await stream_types(service, made_alert))[-3:] == settled_and_closed
    assert (await stream_types(service, made_alert)).count("AlertSourceSettled") == 2
    assert (await stream_types(service, half_alert))[-1] == "AlertClosed"
    assert (await stream_types(service, half_alert)).count("AlertSourceSettled") == 2
    assert await board(service, made_alert, "status", "closed")()
