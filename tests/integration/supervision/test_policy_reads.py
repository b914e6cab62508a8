"""The reads supervision's and notifications' policies no longer make, tried on the real
database: each saving must keep "nothing twice, nothing lost" under a redelivery seen by a
process whose cache knows nothing (a restart, another replica).

- `Approvals.request` stores a new approval without reading the store first; the same
  request from a fresh process (empty cache) loses on the commit key, reloads, and changes
  nothing: one `ApprovalRequested`.
- `Approvals.withdraw` decides on a cached decided approval without a read, and a withdrawal
  decided on a stale cache ("requested", granted meanwhile by another process) is refused by
  the commit key and decided again: the grant stands, nothing withdrawn.
- `DeadlinePlans` reads a stream's document once per event and writes it without reading
  it back; an older or repeated event is seen as done.
- `Alerts.fire` opens a new group without reading; the same firing from a fresh process
  reloads and counts nothing twice (one `AlertOpened`).

Each counts the `find` commands on `events` with a command listener, so a read that comes
back fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from casework.clock import FixedClock
from casework.contracts import registry
from casework.contracts.notifications import Trigger
from casework.contracts.supervision import ApprovalRequested
from casework.deadlines import Deadlines
from casework.envelope import Envelope
from casework.eventstore import CommitContext, Document, EventStore, Repository
from casework.projections import ReadModel

from casework_notifications.application.handlers import Alerts, Firing
from casework_notifications.application.recipients import RecipientResolver
from casework_notifications.domain.alert import Alert
from casework_notifications.settings import NotificationsSettings
from casework_supervision.adapters.deadline_plans import DeadlinePlans
from casework_supervision.application.approvals import Approvals
from casework_supervision.domain.approval import Approval
from casework_supervision.domain.approval_commands import GrantApproval, RequestApproval
from casework_supervision.domain.approval_rules import ApprovalStatus, Authority
from support.notifications import crisis_directory

SITE = "north"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Finds(monitoring.CommandListener):
    """`find` commands per collection."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            name = str(event.command["find"])
            self.counts[name] = self.counts.get(name, 0) + 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def of(self, collection: str) -> int:
        return self.counts.get(collection, 0)


@pytest.fixture
async def counted(mongo_url: str) -> AsyncIterator[tuple[AsyncDatabase[Document], Finds]]:
    finds = Finds()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[finds]
    )
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name], finds
    finally:
        await client.drop_database(name)
        await client.close()


def approvals(db: AsyncDatabase[Document]) -> Approvals:
    """One process's approvals application: a repository with a cache of its own."""
    store = EventStore(db, source="/casework/supervision")
    return Approvals(
        approvals=Repository(store, Approval, registry()),
        staff=None,  # type: ignore[arg-type]  # not asked by request / withdraw
        queue=None,  # type: ignore[arg-type]
        sites=None,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
    )


def request(approval_id: str) -> RequestApproval:
    return RequestApproval(
        approval_id=approval_id,
        kind="plan",
        case_id="c1",
        site=SITE,
        team="t1",
        caseworker_id="carl",
        subject_version=3,
        subject_id=None,
        requested_by="carl",
        requested_at=NOW,
        due_at=NOW + timedelta(days=2),
    )


async def types(db: AsyncDatabase[Document], stream_id: str) -> list[str]:
    """The stream's event types, short (`ApprovalRequested`, not its full CloudEvents type)."""
    return [e.type.split(".")[2] for e in await EventStore(db, source="/x").load(stream_id)]


async def test_a_new_approval_is_requested_without_a_read_and_once_from_a_fresh_process(
    counted: tuple[AsyncDatabase[Document], Finds],
) -> None:
    db, finds = counted
    first = approvals(db)
    assert await first.request(request("c1:plan:1"), CommitContext())
    assert finds.of("events") == 0  # the commit key decided; nothing was read
    assert not await first.request(request("c1:plan:1"), CommitContext())  # cached: no read
    assert finds.of("events") == 0
    # a restarted process (nothing cached) gets the request again
    assert not await approvals(db).request(request("c1:plan:1"), CommitContext())
    assert await types(db, "approval-c1:plan:1") == ["ApprovalRequested"]


async def test_withdraw_on_the_cache_never_undoes_a_decision(
    counted: tuple[AsyncDatabase[Document], Finds],
) -> None:
    db, finds = counted
    one, other = approvals(db), approvals(db)
    assert await one.request(request("c1:plan:1"), CommitContext())
    assert await one.request(request("c1:plan:2"), CommitContext())
    # another process decides plan 1 (granted) and withdraws plan 2: `one`'s cache is stale
    await _grant(other, "c1:plan:1")
    assert await other.withdraw("c1:plan:2", "superseded", CommitContext())
    before = finds.of("events")
    # `one` decides on its cache ("requested"), loses on the commit key, reloads: nothing
    assert not await one.withdraw("c1:plan:1", "case_closed", CommitContext())
    assert not await one.withdraw("c1:plan:2", "case_closed", CommitContext())
    assert finds.of("events") > before  # the stale cache was read past, not trusted
    assert await types(db, "approval-c1:plan:1") == ["ApprovalRequested", "ApprovalGranted"]
    assert await types(db, "approval-c1:plan:2") == ["ApprovalRequested", "ApprovalWithdrawn"]
    # now cached as decided: deciding again reads nothing and changes nothing
    before = finds.of("events")
    assert not await one.withdraw("c1:plan:1", "case_closed", CommitContext())
    assert finds.of("events") == before
    # a request never seen by this process is read from the store
    assert not await one.withdraw("c1:plan:9", "case_closed", CommitContext())
    assert finds.of("events") == before + 1


async def _grant(app: Approvals, approval_id: str) -> None:
    approval = await app.approvals.get(approval_id)
    authority = Authority(supervisors=("sue",), site_supervisor=False)
    approval.grant(GrantApproval(approval_id, "sue", authority, None), NOW)
    await app.approvals.save(approval, CommitContext())
    assert approval.status is ApprovalStatus.GRANTED


def _envelope(subject: str, version: int) -> Envelope:
    event = ApprovalRequested(
        approval_id="a1",
        kind="plan",
        case_id="c1",
        site=SITE,
        team=None,
        caseworker_id="carl",
        subject_version=1,
        subject_id=None,
        requested_by="carl",
        requested_at=NOW,
        due_at=NOW,
    )
    return Envelope(
        type=event.type_name(),
        source="/casework/supervision",
        subject=subject,
        time=NOW,
        data=event.model_dump(mode="json"),
        stream_version=version,
    )


async def test_deadline_plans_read_once_per_event_and_see_repeats_as_done(
    counted: tuple[AsyncDatabase[Document], Finds],
) -> None:
    db, finds = counted
    plans = DeadlinePlans(ReadModel(db["plans"]))
    for version in (1, 2):
        seen, stored = await plans.seen(_envelope("approval-a1", version))
        assert not seen
        assert await plans.done(_envelope("approval-a1", version), stored)
    assert finds.of("plans") == 2  # one read per event, none to write
    for version in (1, 2):  # a redelivery, an older event
        seen, _ = await plans.seen(_envelope("approval-a1", version))
        assert seen
    doc = await db["plans"].find_one({"_id": "approval-a1"})
    assert doc is not None
    assert doc["_applied"] == {"approval-a1": 2}
    # a document made meanwhile by another writer: the insert is refused, the version kept
    _, stored = await plans.seen(_envelope("approval-b1", 1))
    await db["plans"].insert_one({"_id": "approval-b1", "_applied": {"approval-b1": 3}})
    assert not await plans.done(_envelope("approval-b1", 1), stored)
    doc = await db["plans"].find_one({"_id": "approval-b1"})
    assert doc is not None
    assert doc["_applied"] == {"approval-b1": 3}


def alerts(db: AsyncDatabase[Document]) -> Alerts:
    directory = crisis_directory(SITE, NOW)
    return Alerts(
        alerts=Repository(EventStore(db, source="/casework/notifications"), Alert, registry()),
        routing=NotificationsSettings().routing(),
        recipients=RecipientResolver(directory, directory),
        deadlines=Deadlines(db),
        clock=FixedClock(NOW),
    )


async def test_an_alert_is_opened_without_a_read_and_once_from_a_fresh_process(
    counted: tuple[AsyncDatabase[Document], Finds],
) -> None:
    db, finds = counted
    firing = Firing(Trigger.CRISIS, "c1", "crisis-1", SITE, "c1", "carl", NOW)
    first = alerts(db)
    assert await first.fire(firing, CommitContext())
    assert finds.of("events") == 0
    raised = await types(db, "alert-crisis:c1")
    assert raised
    assert raised[0] == "AlertOpened"
    # a restarted process gets the same trigger: it reloads and counts nothing twice
    assert not await alerts(db).fire(firing, CommitContext())
    assert await types(db, "alert-crisis:c1") == raised
