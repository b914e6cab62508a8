"""An approval's later escalation levels resolve `supervisor` as its opening did — who may
decide it, the case's team for the fallback — and never notify the requester (four eyes), on
the real database (the alert's own stream and the deadlines' collections).

Before, the episode kept neither the team nor the requester: a second level naming
`supervisor` fell back to every supervisor of the site, the requester and other teams' too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from casework.clock import FixedClock
from casework.contracts import registry
from casework.contracts.notifications import Trigger
from casework.deadlines import Deadlines
from casework.eventstore import CommitContext, Document, EventStore, Repository

from casework_notifications.application.handlers import Alerts, Firing
from casework_notifications.application.recipients import RecipientResolver
from casework_notifications.domain.alert import Alert
from casework_notifications.domain.routing import routing_over_defaults
from support.notifications import Staff, crisis_directory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SITE = "north"
SENT = "casework.notifications.NotificationSent.v1"
TWO_LEVELS = {
    "policies": {
        "approval_climbs": {
            "name": "approval_climbs",
            "levels": [
                {"targets": ["supervisor"], "delay_minutes": 0},
                {"targets": ["supervisor", "site_manager"], "delay_minutes": 60},
            ],
        }
    },
    "rules": {
        "approval_requested": {
            "urgency": "normal",
            "channels": ["inbox"],
            "policy": "approval_climbs",
        }
    },
}


async def test_a_later_level_keeps_the_team_and_never_names_the_requester(
    database: AsyncDatabase[Document],
) -> None:
    # nina (team a) has no supervisor; sue supervises team a and asked; sid supervises team a
    # too; tom supervises team b; sam and dora (the crisis directory's) have no team
    directory = crisis_directory(SITE, T0)
    for member in (
        Staff("nina", sites=(SITE,), roles=("caseworker",), team="a"),
        Staff("sue", sites=(SITE,), roles=("supervisor",), team="a"),
        Staff("sid", sites=(SITE,), roles=("supervisor",), team="a"),
        Staff("tom", sites=(SITE,), roles=("supervisor",), team="b"),
    ):
        directory.add(member)
    clock = FixedClock(T0)
    store = EventStore(database, source="/casework/notifications")
    alerts = Alerts(
        alerts=Repository(store, Alert, registry()),
        routing=routing_over_defaults(TWO_LEVELS),
        recipients=RecipientResolver(directory, directory),
        deadlines=Deadlines(database, clock=clock),
        clock=clock,
    )
    firing = Firing(
        Trigger.APPROVAL_REQUESTED,
        "case-1:plan:2",
        "case-1:plan:2",
        SITE,
        "case-1",
        "nina",
        T0,
        exclude=("sue",),
        team="a",
    )
    assert await alerts.fire(firing, CommitContext())
    clock.advance(timedelta(minutes=60))
    assert await alerts.escalate("approval_requested:case-1:plan:2", 1, 1)

    events = await store.load("alert-approval_requested:case-1:plan:2")
    by_step: dict[int, list[str]] = {}
    for e in events:
        if e.type == SENT:
            by_step.setdefault(int(e.data["step"]), []).append(str(e.data["recipient_id"]))
    assert by_step == {0: ["sid"], 1: ["sid", "mia"]}  # never sue, nor tom of team b
