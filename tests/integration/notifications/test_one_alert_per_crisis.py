"""A crisis is one alert, not a crisis alert and a risk alert, on the real servers
(`WhenCaseChangedRaiseAlerts`, "one alert for a crisis, not two"):

- a crisis as cases writes it (`CrisisDeclared`, then the rise to imminent it brings, in one
  commit), delivered twice: one group (crisis), the worker notified once;
- a commit from before cases put the crisis first (the rise, then the crisis): the risk
  alert it opened is closed by the crisis, so one group stays open;
- a case opened at imminent (opened in crisis, in one commit): the crisis group only;
- with no crisis, medium → high and high → imminent still alert the worker;
- after the crisis is resolved a rise alerts again; a replay of everything from offset 0 in a
  new process neither notifies anyone again nor closes that later risk alert.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from casework.auth import Principal
from casework.clock import FixedClock
from casework.contracts.cases import (
    CaseOpened,
    CaseworkerAssigned,
    CrisisDeclared,
    CrisisResolved,
    RiskLevelChanged,
)
from casework.contracts.common import RiskLevel
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.runtime import wait_until

from .conftest import SITE
from casework_notifications.bootstrap import Wired, build
from casework_notifications.domain.escalation import notification_id
from support.alerts import case_envelope, caught_up, rewind, status
from support.notifications import FakeDirectory

SENT = "casework.notifications.NotificationSent.v1"
POLICY = "when_case_changed_raise_alerts"


def opened(case_id: str, at: datetime, level: RiskLevel) -> CaseOpened:
    return CaseOpened(
        case_id=case_id, client_id="c", referral_id="r", site=SITE, risk_level=level, opened_at=at
    )


def assigned(case_id: str, at: datetime) -> CaseworkerAssigned:
    return CaseworkerAssigned(
        case_id=case_id, caseworker_id="wendy", team="t", assigned_by="mia", assigned_at=at
    )


def crisis(
    case_id: str, at: datetime, crisis_id: str, worker: str | None = "wendy"
) -> CrisisDeclared:
    return CrisisDeclared(
        case_id=case_id,
        crisis_id=crisis_id,
        site=SITE,
        caseworker_id=worker,
        risk_level=RiskLevel.IMMINENT,
        summary="enc:v1:k:AAAA",
        declared_by="wendy",
        declared_at=at,
    )


def rise(case_id: str, at: datetime, before: RiskLevel, after: RiskLevel) -> RiskLevelChanged:
    return RiskLevelChanged(
        case_id=case_id,
        site=SITE,
        previous_level=before,
        risk_level=after,
        reason="enc:v1:k:AAAA",
        changed_by="wendy",
        changed_at=at,
    )


async def stream(wired: Wired, alert_id: str) -> list[str]:
    return [e.type.split(".")[2] for e in await wired.runtime.store.load(f"alert-{alert_id}")]


async def sent(wired: Wired, alert_id: str) -> list[tuple[int, int, str]]:
    """(episode, step, recipient) of every notification of the group."""
    return [
        (int(e.data["episode"]), int(e.data["step"]), str(e.data["recipient_id"]))
        for e in await wired.runtime.store.load(f"alert-{alert_id}")
        if e.type == SENT
    ]


async def test_a_crisis_is_one_alert_under_either_order_redelivery_and_replay(
    service: Wired,
    publish: Callable[..., Any],
    kafka_bootstrap: str,
    directory: FakeDirectory,
) -> None:
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    t0 = clock.now()
    med, high, imm = RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.IMMINENT
    a, b, c, d, e = (str(uuid.uuid4()) for _ in range(5))
    crisis_a = str(uuid.uuid4())
    histories: dict[str, list[DomainEvent]] = {
        # as cases writes a crisis today: the crisis, then the rise it brings (one commit)
        a: [opened(a, t0, med), assigned(a, t0), crisis(a, t0, crisis_a), rise(a, t0, med, imm)],
        # a commit written before cases put the crisis first
        b: [opened(b, t0, med), assigned(b, t0), rise(b, t0, med, imm), crisis(b, t0, "cb")],
        # a referral accepted at imminent: the case opens in crisis, nobody assigned yet
        c: [opened(c, t0, imm), crisis(c, t0, "cc", worker=None)],
        # no crisis: the rises alert as they always did
        d: [opened(d, t0, med), assigned(d, t0), rise(d, t0, med, high)],
        e: [opened(e, t0, high), assigned(e, t0), rise(e, t0, high, imm)],
    }
    for case_id, events in histories.items():
        for version, event in enumerate(events, start=1):
            await publish(service, "cases", case_envelope(case_id, event, version, t0, SITE))
    for version in (3, 4):  # the crisis's commit again (a relay that republished it)
        event = histories[a][version - 1]
        await publish(service, "cases", case_envelope(a, event, version, t0, SITE))

    for alert_id in (f"crisis:{a}", f"crisis:{b}", f"crisis:{c}"):
        await wait_until(lambda i=alert_id: status(service, i), within=30, every=0.1)
    await wait_until(lambda: status(service, f"risk_raised:{d}"), within=30, every=0.1)
    await wait_until(lambda: status(service, f"risk_raised:{e}"), within=30, every=0.1)
    await wait_until(lambda: caught_up(service, kafka_bootstrap, POLICY), within=30, every=0.2)

    # the crisis as cases writes it, delivered twice: one group, the worker told once
    assert await stream(service, f"risk_raised:{a}") == []
    assert sorted(await sent(service, f"crisis:{a}")) == [(1, 0, "olga"), (1, 0, "wendy")]
    # the rise first: its alert is closed by the crisis; the crisis is the one open group
    await wait_until(lambda: _is(service, f"risk_raised:{b}", "closed"), within=30, every=0.1)
    assert await status(service, f"crisis:{b}") == "open"
    # opened in crisis: the crisis group only, its on-call told (no worker yet)
    assert await stream(service, f"risk_raised:{c}") == []
    assert sorted(await sent(service, f"crisis:{c}")) == [(1, 0, "olga")]
    # no crisis: medium → high and high → imminent alert the worker
    assert await sent(service, f"risk_raised:{d}") == [(1, 0, "wendy")]
    assert await sent(service, f"risk_raised:{e}") == [(1, 0, "wendy")]

    # a's crisis resolved, the risk lowered and raised again: a risk alert of its own, which
    # the worker acknowledges (so that any fire of it from now on would notify anew)
    t1 = t0 + timedelta(hours=1)
    later: list[DomainEvent] = [
        CrisisResolved(
            case_id=a,
            crisis_id=crisis_a,
            resolution="enc:v1:k:AAAA",
            resolved_by="wendy",
            resolved_at=t1,
        ),
        rise(a, t1, imm, high),
        rise(a, t1, high, imm),
    ]
    for version, event in enumerate(later, start=5):
        await publish(service, "cases", case_envelope(a, event, version, t1, SITE))
    await wait_until(lambda: _is(service, f"crisis:{a}", "closed"), within=30, every=0.1)
    await wait_until(lambda: _is(service, f"risk_raised:{a}", "open"), within=30, every=0.1)
    assert await sent(service, f"risk_raised:{a}") == [(1, 0, "wendy")]
    wendy = Principal(
        sub="wendy", name="w", roles=frozenset({"caseworker"}), sites=frozenset({SITE})
    )
    await service.alerts.acknowledge(
        notification_id(f"risk_raised:{a}", 1, 0, "wendy"), wendy, CommitContext()
    )

    before = {
        alert_id: await stream(service, alert_id)
        for case_id in histories
        for alert_id in (f"crisis:{case_id}", f"risk_raised:{case_id}")
    }
    await service.runtime.stop()
    await rewind(service, kafka_bootstrap, POLICY)
    again = build(
        service.runtime.settings, clock=clock, own=service.settings, staff=directory, rota=directory
    )
    async with again.runtime.running():
        await wait_until(lambda: caught_up(again, kafka_bootstrap, POLICY), within=60, every=0.3)
        # the replayed crisis's rise is judged as at its time (in crisis), not by the copy's
        # present (resolved); the replayed crisis does not close the later risk alert
        after = {alert_id: await stream(again, alert_id) for alert_id in before}
        assert after == before
        assert await status(again, f"risk_raised:{a}") == "acknowledged"


async def _is(wired: Wired, alert_id: str, wanted: str) -> bool:
    return await status(wired, alert_id) == wanted
