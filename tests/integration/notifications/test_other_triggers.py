"""The other triggers, grouped, on the real servers: a risk raised to high notifies the
worker; two overdue contacts of one case are one group counted twice, not two
notifications; a lone worker overdue is critical (worker, on-call, supervisor at once) and
their check-out closes it; a transfer waits for the receiving site's manager until decided."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from casework.clock import FixedClock
from casework.contracts.cases import (
    CaseOpened,
    CaseTransferAccepted,
    CaseTransferRequested,
    CaseworkerAssigned,
    RiskLevelChanged,
)
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import LoneWorkerCheckedOut, LoneWorkerOverdue
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.runtime import wait_until

from .conftest import SITE
from casework_notifications.bootstrap import Wired
from support.alerts import case_envelope, contact_overdue

SENT = "casework.notifications.NotificationSent.v1"


def contacts_envelope(stream: str, event: DomainEvent, version: int, clock: FixedClock) -> Envelope:
    return Envelope(
        type=event.type_name(),
        source="/casework/contacts",
        subject=stream,
        time=clock.now(),
        data=event.model_dump(mode="json"),
        stream_version=version,
        site=SITE,
    )


async def recipients(wired: Wired, alert_id: str) -> list[str]:
    events = await wired.runtime.store.load(f"alert-{alert_id}")
    return sorted(str(e.data["recipient_id"]) for e in events if e.type == SENT)


async def board(wired: Wired, alert_id: str, field: str, value: Any) -> bool:
    doc = await wired.board.read_model.get(alert_id)
    return doc is not None and doc.get(field) == value


async def test_the_other_triggers_notify_the_right_people_once_per_group(
    service: Wired, publish: Callable[..., Any]
) -> None:
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    now = clock.now()
    case_id = str(uuid.uuid4())
    events: list[DomainEvent] = [
        CaseOpened(
            case_id=case_id,
            client_id="c-1",
            referral_id="r-1",
            site=SITE,
            risk_level=RiskLevel.MEDIUM,
            opened_at=now,
        ),
        CaseworkerAssigned(
            case_id=case_id, caseworker_id="wendy", team="t", assigned_by="mia", assigned_at=now
        ),
        RiskLevelChanged(
            case_id=case_id,
            site=SITE,
            previous_level=RiskLevel.MEDIUM,
            risk_level=RiskLevel.HIGH,
            reason="enc:v1:k:AAAA",
            changed_by="wendy",
            changed_at=now,
        ),
    ]
    for version, event in enumerate(events, start=1):
        await publish(service, "cases", case_envelope(case_id, event, version, now, SITE))

    risk = f"risk_raised:{case_id}"
    await wait_until(lambda: board(service, risk, "status", "open"), within=30, every=0.1)
    assert await recipients(service, risk) == ["wendy"]

    for version, obligation in enumerate(("ob-1", "ob-2"), start=1):
        overdue = contact_overdue(case_id, obligation, now, SITE, worker=None)
        await publish(
            service,
            "contacts",
            contacts_envelope(f"obligations-{case_id}", overdue, version, clock),
        )
    contact = f"contact_overdue:{case_id}"
    await wait_until(lambda: board(service, contact, "count", 2), within=30, every=0.1)
    assert await recipients(service, contact) == ["wendy"]  # the worker from the case facts

    # the follow-up due within 72 h of a resolved crisis, missed: its own, louder group —
    # the worker and their supervisor (and the delegate) at once, by e-mail too, no digest
    follow_up = overdue.model_copy(
        update={
            "obligation_id": "ob-3",
            "rule_id": "crisis-follow-up-72h",
            "trigger": "crisis_resolved:cr-1",
        }
    )
    await publish(
        service, "contacts", contacts_envelope(f"obligations-{case_id}", follow_up, 3, clock)
    )
    missed = f"follow_up_missed:{case_id}"
    await wait_until(lambda: board(service, missed, "status", "open"), within=30, every=0.1)
    assert await recipients(service, missed) == ["dora", "sam", "wendy"]
    missed_doc = await service.board.read_model.get(missed)
    assert missed_doc is not None
    assert (missed_doc["urgency"], missed_doc["channels"]) == ("high", ["inbox", "email"])
    assert await board(service, contact, "count", 2)  # the routine group is not counted

    visit = str(uuid.uuid4())
    lone = LoneWorkerOverdue(
        contact_id=visit,
        case_id=case_id,
        site=SITE,
        worker_id="wendy",
        checked_in_at=now - timedelta(hours=2),
        due_back_at=now - timedelta(minutes=15),
        raised_at=now,
    )
    await publish(service, "contacts", contacts_envelope(f"contact-{visit}", lone, 3, clock))
    alert = f"lone_worker_overdue:{visit}"
    await wait_until(lambda: board(service, alert, "status", "open"), within=30, every=0.1)
    assert await recipients(service, alert) == ["dora", "olga", "sam", "wendy"]
    doc = await service.board.read_model.get(alert)
    assert doc is not None
    assert doc["urgency"] == "critical"
    out = LoneWorkerCheckedOut(
        contact_id=visit, case_id=case_id, site=SITE, worker_id="wendy", checked_out_at=now
    )
    await publish(service, "contacts", contacts_envelope(f"contact-{visit}", out, 4, clock))
    await wait_until(lambda: board(service, alert, "status", "closed"), within=30, every=0.1)

    transfer = CaseTransferRequested(
        case_id=case_id,
        from_site="south",
        to_site=SITE,
        reason="moved",
        requested_by="x",
        requested_at=now,
    )
    await publish(service, "cases", case_envelope(case_id, transfer, 4, now, SITE))
    waiting = f"transfer_waiting:{case_id}"
    await wait_until(lambda: board(service, waiting, "status", "open"), within=30, every=0.1)
    assert await recipients(service, waiting) == ["mia"]
    accepted = CaseTransferAccepted(
        case_id=case_id, from_site="south", to_site=SITE, accepted_by="mia", accepted_at=now
    )
    await publish(service, "cases", case_envelope(case_id, accepted, 5, now, SITE))
    await wait_until(lambda: board(service, waiting, "status", "closed"), within=30, every=0.1)
