"""Imminent risk at screening, on the real servers (`WhenReferralScreenedRaiseAlerts`): a
referral screened imminent on the intake topic, still waiting in the queue, reaches the
site's on-call crisis worker and the site manager at once, each once however often the
event comes; accepting it closes the alert, as does declining it or screening it lower; a
lower screen alone alerts nobody. The alert carries ids only, nothing of the screening."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from casework.clock import FixedClock
from casework.contracts.common import RiskLevel
from casework.contracts.intake import ReferralAccepted, ReferralDeclined, RiskScreened
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.runtime import wait_until

from .conftest import SITE
from casework_notifications.bootstrap import Wired
from support.alerts import caught_up, status
from support.envelopes import envelope_of

SENT = "casework.notifications.NotificationSent.v1"
POLICY = "when_referral_screened_raise_alerts"
SEALED = "enc:v1:k:AAAA"  # sealed on the wire: notifications never reads it


def intake_envelope(referral_id: str, event: DomainEvent, version: int, at: datetime) -> Envelope:
    return envelope_of(event, f"referral-{referral_id}", version, at, site=SITE)


def screened(referral_id: str, level: RiskLevel, at: datetime) -> RiskScreened:
    return RiskScreened(
        referral_id=referral_id,
        site=SITE,
        answers=SEALED,
        risk_level=level,
        rule=SEALED,
        screened_by="ian",
        screened_at=at,
    )


async def test_a_referral_screened_imminent_alerts_on_call_and_site_manager_until_decided(
    service: Wired, publish: Callable[..., Any], kafka_bootstrap: str
) -> None:
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    now = clock.now()
    accepted, declined, lowered, medium = (str(uuid.uuid4()) for _ in range(4))

    async def send(referral_id: str, event: DomainEvent, version: int) -> None:
        await publish(service, "intake", intake_envelope(referral_id, event, version, now))

    imminent = screened(accepted, RiskLevel.IMMINENT, now)
    for _ in range(3):  # published, then republished twice (a relay that sent it again)
        await send(accepted, imminent, 2)
    alert_id = f"screened_imminent:{accepted}"

    async def opened() -> bool:
        return await status(service, alert_id) == "open"

    await wait_until(opened, within=30, every=0.1)
    await wait_until(lambda: caught_up(service, kafka_bootstrap, POLICY, "intake"), within=30)
    events = await service.runtime.store.load(f"alert-{alert_id}")
    notified = sorted(
        (int(e.data["step"]), str(e.data["recipient_id"])) for e in events if e.type == SENT
    )
    assert notified == [(0, "mia"), (0, "olga")]  # the site manager and the on-call, once each
    for e in events:
        assert e.data.get("case_id") is None
        assert SEALED not in json.dumps(e.data, default=str)  # ids only
    board = await service.board.read_model.get(alert_id)
    assert board is not None
    assert board["urgency"] == "critical"

    async def in_inbox(person: str) -> bool:
        return [d["alert_id"] for d in await service.inbox.of(person, 100)] == [alert_id]

    await wait_until(lambda: in_inbox("olga"), within=30, every=0.1)
    await wait_until(lambda: in_inbox("mia"), within=30, every=0.1)

    # the referral accepted: its alert closes; the screen delivered again reopens nothing
    await send(
        accepted,
        ReferralAccepted(
            referral_id=accepted,
            case_id=str(uuid.uuid4()),
            client_id="c",
            site=SITE,
            risk_level=RiskLevel.IMMINENT,
            accepted_by="mia",
            accepted_at=now,
        ),
        3,
    )

    async def closed(alert: str) -> bool:
        return await status(service, alert) == "closed"

    await wait_until(lambda: closed(alert_id), within=30, every=0.1)
    await send(accepted, imminent, 2)

    # declined, or screened again below imminent: closed too; a lower screen alone: nothing
    await send(declined, screened(declined, RiskLevel.IMMINENT, now), 2)
    await send(
        declined,
        ReferralDeclined(
            referral_id=declined, site=SITE, reason=SEALED, declined_by="mia", declined_at=now
        ),
        3,
    )
    await send(lowered, screened(lowered, RiskLevel.IMMINENT, now), 2)
    await send(lowered, screened(lowered, RiskLevel.MEDIUM, now), 3)
    await send(medium, screened(medium, RiskLevel.HIGH, now), 2)
    await wait_until(lambda: closed(f"screened_imminent:{declined}"), within=30, every=0.1)
    await wait_until(lambda: closed(f"screened_imminent:{lowered}"), within=30, every=0.1)
    await wait_until(lambda: caught_up(service, kafka_bootstrap, POLICY, "intake"), within=30)
    assert await service.runtime.store.load(f"alert-screened_imminent:{medium}") == []
    events = await service.runtime.store.load(f"alert-{alert_id}")
    assert len([e for e in events if e.type == SENT]) == 2  # nobody told twice
    assert events[-1].type.endswith("AlertClosed.v1")
