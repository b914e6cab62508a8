"""The inbox read at a cost that does not grow with a person's history (`Inbox`), on the real
server: newest first across days and months, however sparse; every query it sends is pushed
down (FerretDB's `explain`, or an index scan on MongoDB); a page reads the days it shows,
not the year behind them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.notifications import Channel, NotificationSent, Trigger, Urgency
from casework.eventstore import Document

from casework_notifications.adapters.read_models import Inbox
from support.envelopes import envelope_of

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
"""Noon today: a page's days stay in one day and month whenever the tests run."""
_ids = itertools.count()


class Finds(monitoring.CommandListener):
    """Each `find` sent (collection, filter) and how many documents its first batch held."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Document]] = []
        self.returned = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.sent.append((str(event.command["find"]), dict(event.command["filter"])))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in ("find", "getMore"):
            cursor = event.reply.get("cursor", {})
            self.returned += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(
    mongo_url: str, database: AsyncDatabase[Document]
) -> AsyncIterator[tuple[Inbox, Finds]]:
    """An inbox on a fresh database, read through a client that records its finds."""
    finds = Finds()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[finds]
    )
    try:
        inbox = Inbox(client[database.name])
        await inbox.ensure_indexes()
        yield inbox, finds
    finally:
        await client.close()


async def send(inbox: Inbox, recipient: str, at: datetime, alert: str = "a") -> str:
    n = next(_ids)
    notification_id = f"{alert}~1~{n}~{recipient}"
    event = NotificationSent(
        notification_id=notification_id,
        alert_id=f"{alert}{n}",
        episode=1,
        step=n,
        recipient_id=recipient,
        trigger=Trigger.CONTACT_OVERDUE,
        urgency=Urgency.NORMAL,
        case_id=None,
        site="north",
        channels=(Channel.INBOX,),
        sent_at=at,
    )
    assert await inbox.handle(envelope_of(event, f"alert-{alert}{n}", 1, at), event)
    return notification_id


async def test_newest_first_across_days_and_months_however_sparse(
    counted: tuple[Inbox, Finds],
) -> None:
    inbox, _ = counted
    times = [
        NOW,
        NOW - timedelta(minutes=5),
        NOW - timedelta(days=1),
        NOW - timedelta(days=40),
        NOW - timedelta(days=400),  # a year and more of nothing after it
    ]
    sent = [await send(inbox, "olga", at) for at in times]
    await send(inbox, "wendy", NOW)
    await send(inbox, "wendy", NOW - timedelta(days=40))

    assert [d["_id"] for d in await inbox.of("olga", 50)] == sent
    assert [d["_id"] for d in await inbox.of("olga", 3)] == sent[:3]
    assert [d["_id"] for d in await inbox.of("olga", 4)] == sent[:4]
    assert await inbox.of("nobody", 50) == []
    assert all(d["recipient_id"] == "olga" for d in await inbox.of("olga", 50))


async def test_a_redelivered_notification_is_listed_once(counted: tuple[Inbox, Finds]) -> None:
    inbox, _ = counted
    event = NotificationSent(
        notification_id="x~1~0~olga",
        alert_id="x",
        episode=1,
        step=0,
        recipient_id="olga",
        trigger=Trigger.CRISIS,
        urgency=Urgency.CRITICAL,
        site="north",
        channels=(Channel.INBOX,),
        sent_at=NOW,
    )
    envelope = envelope_of(event, "alert-x", 1, NOW)
    assert await inbox.handle(envelope, event)
    assert not await inbox.handle(envelope, event)
    assert [d["_id"] for d in await inbox.of("olga", 50)] == ["x~1~0~olga"]


async def test_between_reads_the_span_only(counted: tuple[Inbox, Finds]) -> None:
    inbox, _ = counted
    until = NOW.replace(hour=8, minute=0, second=0)
    since = until - timedelta(days=1)
    await send(inbox, "olga", since - timedelta(seconds=1))
    first = await send(inbox, "olga", since)
    second = await send(inbox, "olga", until - timedelta(seconds=1))
    await send(inbox, "olga", until)
    await send(inbox, "wendy", since + timedelta(hours=1))

    found = [d["_id"] for d in await inbox.between("olga", since, until)]
    assert found == [first, second]


async def test_every_query_is_pushed_down_and_a_page_reads_its_days_only(
    counted: tuple[Inbox, Finds], database: AsyncDatabase[Document]
) -> None:
    inbox, finds = counted
    # a busy on-call worker's history: 30 past days with 5 notifications each, then today's 5
    for day in range(1, 31):
        for k in range(5):
            await send(inbox, "olga", NOW - timedelta(days=day, minutes=k))
    today = [await send(inbox, "olga", NOW - timedelta(seconds=k)) for k in range(5)]

    finds.sent.clear()
    finds.returned = 0
    page = await inbox.of("olga", 5)
    assert [d["_id"] for d in page] == today
    # months (one or two), this month's days (up to 31), today's 5 entries: not the 150 behind
    assert finds.returned <= 2 + 31 + 5, finds.returned

    await inbox.between("olga", NOW - timedelta(days=7), NOW)
    assert finds.sent
    for collection, where in finds.sent:
        assert all(not str(k).startswith("$") for k in where), where
        plan = await database.command({"explain": {"find": collection, "filter": where}})
        assert _pushed_down(plan), (where, plan)


def _pushed_down(plan: dict[str, Any]) -> bool:
    """FerretDB says whether PostgreSQL got the filter; MongoDB shows its winning plan."""
    if "filterPushdown" in plan:
        return bool(plan["filterPushdown"])
    return "COLLSCAN" not in str(plan["queryPlanner"]["winningPlan"])
