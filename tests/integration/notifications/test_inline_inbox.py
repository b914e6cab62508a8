"""A notification's inbox entry is written by the process that saved the alert, as the
commit is stored (`EventStore.apply_inline`), on the real servers:

- the moment `fire` returns, the on-call worker's entry is readable and her live stream has
  it — before any Kafka round trip could have brought it;
- the inbox's consumer, once caught up, finds every entry applied: the documents are the same
  and nothing is pushed twice;
- an inline apply that fails never fails the command: the consumer writes the entry instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from casework.clock import FixedClock
from casework.contracts.notifications import Trigger
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED
from casework.runtime import wait_until

from .conftest import SITE, running
from casework_notifications.application.handlers import Firing
from casework_notifications.bootstrap import Wired
from casework_notifications.settings import NotificationsSettings
from support.alerts import caught_up
from support.notifications import FakeDirectory

T0 = datetime.now(UTC).replace(microsecond=0)


def crisis(case_id: str) -> Firing:
    return Firing(
        trigger=Trigger.CRISIS,
        subject_id=case_id,
        source_id=str(uuid.uuid4()),
        site=SITE,
        case_id=case_id,
        worker_id="wendy",
        at=T0,
    )


async def entries(wired: Wired, alert_id: str) -> dict[str, dict[str, Any]]:
    found = wired.inbox.read_model.collection.find({"alert_id": alert_id})
    return {str(d["_id"]): dict(d) async for d in found}


async def drained(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notifications pushed so far (the board's alert updates aside)."""
    out = []
    while not queue.empty():
        message = queue.get_nowait()
        if message["kind"] == "notification":
            out.append(message)
    return out


class HeldConsumer:
    """Holds the inbox's consumer at the door until `release` is set: its runner calls the
    instance's `handle`, which this replaces; the inline apply was given the method itself
    when the service was built, so it is not held."""

    def __init__(self, wired: Wired) -> None:
        self.release = asyncio.Event()
        self.applied = 0
        inner = wired.inbox.handle

        async def held(envelope: Envelope, event: DomainEvent) -> bool:
            await self.release.wait()
            self.applied += 1
            return await inner(envelope, event)

        wired.inbox.handle = held  # type: ignore[method-assign]


async def test_the_entry_is_readable_and_pushed_when_the_alert_is_saved(
    kafka_bootstrap: str, mongo_url: str, directory: FakeDirectory
) -> None:
    own = NotificationsSettings(deadline_tick_s=0.2)
    consumer: list[HeldConsumer] = []
    async with running(
        kafka_bootstrap,
        mongo_url,
        own,
        FixedClock(T0),
        staff=directory,
        rota=directory,
        before_start=lambda wired: consumer.append(HeldConsumer(wired)),
    ) as wired:
        case_id = str(uuid.uuid4())
        async with wired.hub.subscribe("olga") as live:
            assert await wired.alerts.fire(crisis(case_id))
            # the consumer is held: written (and pushed) by the process that saved the alert
            assert consumer[0].applied == 0
            now = await entries(wired, f"crisis:{case_id}")
            assert {d["recipient_id"] for d in now.values()} == {"wendy", "olga"}
            pushed = await drained(live)
            assert [m["entry"]["alert_id"] for m in pushed] == [f"crisis:{case_id}"]

            # released, the consumer catches up: same documents, nothing pushed again
            consumer[0].release.set()

            async def published() -> bool:
                return await wired.runtime.store.pending.count_documents({}) == 0

            await wait_until(published, within=60)
            await wait_until(
                lambda: caught_up(wired, kafka_bootstrap, "inbox", source="notifications"),
                within=60,
            )
            assert consumer[0].applied >= 2
            assert await entries(wired, f"crisis:{case_id}") == now
            assert await drained(live) == []
        for doc in now.values():
            assert doc[APPLIED] == {
                f"alert-crisis:{case_id}": doc[APPLIED][f"alert-crisis:{case_id}"]
            }


class FirstInsertsFail:
    """The inbox's collection, whose first `n` inserts of documents matching `which` fail as if
    the database went away (the inline ones: the consumer is held until they are done)."""

    def __init__(self, inner: Any, n: int, which: Callable[[Document], bool]) -> None:
        self.inner, self.left, self.failed, self.which = inner, n, 0, which

    async def insert_one(self, doc: Any, *args: Any, **kwargs: Any) -> Any:
        if self.left and self.which(doc):
            self.left -= 1
            self.failed += 1
            raise AutoReconnect("the database went away after the commit")
        return await self.inner.insert_one(doc, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _is_entry(doc: Document) -> bool:
    return "recipient_id" in doc


def _is_day_marker(doc: Document) -> bool:
    return str(doc["_id"]).startswith("day|")


@pytest.mark.parametrize("which", [_is_entry, _is_day_marker], ids=["entry", "day marker"])
async def test_a_failing_inline_apply_leaves_the_entry_to_the_consumer(
    kafka_bootstrap: str,
    mongo_url: str,
    directory: FakeDirectory,
    which: Callable[[Document], bool],
) -> None:
    """Whichever insert of the inline apply fails (the entry's, or a marker's before it), no
    entry is stored unseen: the consumer stores both, pushes both, and the inbox lists them."""
    own = NotificationsSettings(deadline_tick_s=0.2)
    flaky: list[FirstInsertsFail] = []

    consumer: list[HeldConsumer] = []

    def break_inline(wired: Wired) -> None:
        flaky.append(FirstInsertsFail(wired.inbox.read_model.collection, 2, which))
        wired.inbox.read_model.collection = flaky[0]
        consumer.append(HeldConsumer(wired))

    async with running(
        kafka_bootstrap,
        mongo_url,
        own,
        FixedClock(T0),
        staff=directory,
        rota=directory,
        before_start=break_inline,
    ) as wired:
        case_id = str(uuid.uuid4())
        alert_id = f"crisis:{case_id}"
        async with wired.hub.subscribe("olga") as live:
            assert await wired.alerts.fire(crisis(case_id))  # the command stands
            assert flaky[0].failed == 2
            assert await entries(wired, alert_id) == {}
            assert await drained(live) == []
            consumer[0].release.set()

            async def both() -> bool:
                return len(await entries(wired, alert_id)) == 2

            await wait_until(both, within=60)
            assert [m["entry"]["alert_id"] for m in await drained(live)] == [alert_id]
        for recipient in ("wendy", "olga"):
            listed = await wired.inbox.of(recipient, 10)
            assert [d["alert_id"] for d in listed] == [alert_id]
