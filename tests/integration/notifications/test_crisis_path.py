"""A declared crisis's alert does not wait for the local copy of the case, on the real
servers (`WhenCaseChangedRaiseAlerts._crisis`):

- while the copy's write of the `CrisisDeclared` is held, the worker's and the on-call
  worker's entries are already in their inboxes (before, the copy was written first: held,
  nobody was notified);
- the copy's write then fails (a database error): the runner hands the same record to the
  handler again, which writes the copy and notifies nobody twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, cast

from pymongo.errors import AutoReconnect

from casework.clock import FixedClock
from casework.contracts.cases import CrisisDeclared
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.runtime import wait_until

from .conftest import SITE
from casework_notifications.adapters.case_facts import CaseFactsStore
from casework_notifications.bootstrap import Wired
from support.alerts import caught_up, crisis_declared

SENT = "casework.notifications.NotificationSent.v1"


class HeldCopy:
    """Holds the copy's first write of a `CrisisDeclared` until `release`, then fails it
    as a lost connection would; every other write goes through."""

    def __init__(self, wired: Wired) -> None:
        self.release = asyncio.Event()
        self.held = asyncio.Event()
        self.calls = 0
        facts = cast(CaseFactsStore, wired.deliveries.cases)  # the store the policy writes
        inner = facts.apply

        async def apply(envelope: Envelope, event: DomainEvent) -> bool:
            if isinstance(event, CrisisDeclared):
                self.calls += 1
                if self.calls == 1:
                    self.held.set()
                    await self.release.wait()
                    raise AutoReconnect("connection lost (test)")
            return await inner(envelope, event)

        facts.apply = apply  # type: ignore[method-assign]


async def test_the_alert_is_raised_before_the_case_copy_is_written_and_a_failed_copy_heals(
    service: Wired, publish: Callable[..., Any], kafka_bootstrap: str
) -> None:
    held = HeldCopy(service)
    clock = service.runtime.clock
    assert isinstance(clock, FixedClock)
    case_id = str(uuid.uuid4())
    alert_id = f"crisis:{case_id}"
    await publish(service, "cases", crisis_declared(case_id, clock.now(), SITE))

    async def in_inboxes() -> set[str]:
        found = service.inbox.read_model.collection.find({"alert_id": alert_id})
        return {str(d["recipient_id"]) async for d in found}

    async def both_notified() -> bool:
        return await in_inboxes() == {"wendy", "olga"}

    # the copy's write is held: the alert was raised (and its entries written) before it
    await asyncio.wait_for(held.held.wait(), timeout=30)
    await wait_until(both_notified, within=10, every=0.05)
    copy = await service.deliveries.cases.get(case_id)
    assert copy is None or "site" not in copy

    # the held write fails; the record is handled again: the copy written, nobody twice
    held.release.set()

    async def copied() -> bool:
        return (await service.deliveries.cases.get(case_id) or {}).get("site") == SITE

    await wait_until(copied, within=30, every=0.1)
    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, "when_case_changed_raise_alerts"),
        within=30,
        every=0.2,
    )
    assert held.calls >= 2
    events = await service.runtime.store.load(f"alert-{alert_id}")
    sent = sorted(str(e.data["recipient_id"]) for e in events if e.type == SENT)
    assert sent == ["olga", "wendy"]
    entries = service.inbox.read_model.collection.find({"alert_id": alert_id})
    assert sorted([str(d["recipient_id"]) async for d in entries]) == ["olga", "wendy"]
