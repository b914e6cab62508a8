"""A notifications history for the read-model tests, made by the notifications service's own
application from a `casework.samples.story`: the story's cases, supervision and contacts
events go through the service's policies (crises, risk rises, transfers, approvals requested
and granted, overdue contacts and their obligations met or cancelled, at each event's time),
and people then act on what they got — the next escalation step reached, some alerts
acknowledged, some marked "in contact", some notifications read.
The commits are read back from the notifications event store as the relay would publish them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from casework.auth import Principal
from casework.envelope import Envelope
from casework.eventstore import CommitContext
from casework.projections import EventHandler
from casework.samples import SITES, Story

from casework_notifications.application.policies import (
    WhenCaseChangedRaiseAlerts,
    WhenSupervisionWorkWaitsRaiseAlerts,
    WhenWorkOverdueRaiseAlerts,
)
from casework_notifications.bootstrap import Wired
from casework_notifications.domain.alert import Alert
from support.contacts_story import SettableClock
from support.notifications import Shift, Staff

TOPICS = ("casework.cases.events", "casework.supervision.events", "casework.contacts.events")


@dataclass
class StoryDirectory:
    """Everyone is supervised by `lead`, each site has a manager and someone on call."""

    async def get(self, staff_id: str) -> Staff:
        return Staff(staff_id, email=f"{staff_id}@agency.test", sites=SITES)

    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]:
        return () if staff_id == "lead" else ("lead",)

    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]:
        return ()

    async def with_role(self, site: str, role: str) -> Sequence[Staff]:
        return [Staff(f"{role}-{site}", sites=(site,), roles=(role,))]

    async def on_call(self, site: str, at: datetime) -> Shift:
        return Shift(site, f"oncall-{site}", f"backup-{site}", at, at + timedelta(hours=1))


async def notifications_history(wired: Wired, story: Story, *, seed: int = 5) -> Story:
    """Drive the notifications application of `wired` (built with a `SettableClock` and a
    `StoryDirectory`) through the story; the notifications topic's records it made."""
    clock = wired.runtime.clock
    assert isinstance(clock, SettableClock)
    policies: list[EventHandler] = [
        h
        for h in wired.runtime.handlers
        if isinstance(
            h,
            WhenCaseChangedRaiseAlerts
            | WhenSupervisionWorkWaitsRaiseAlerts
            | WhenWorkOverdueRaiseAlerts,
        )
    ]
    registry = wired.runtime.registry
    latest = clock.at
    for topic in TOPICS:
        for envelope in story.records.get(topic, []):
            clock.at = envelope.time
            latest = max(latest, envelope.time)
            event = registry.parse(envelope.type, dict(envelope.data))
            for policy in policies:
                if topic in policy.topics:
                    await policy.handle(envelope, event)
    clock.at = latest  # people act after the story: never before what they act on
    rnd = random.Random(seed)
    cursor = wired.runtime.store.commits.find({}, {"stream_id": 1})
    streams = sorted({str(c["stream_id"]) async for c in cursor})
    for stream in streams:
        await _act(wired, clock, stream.removeprefix("alert-"), rnd)
    return Story(records={"casework.notifications.events": await _published(wired)})


async def _act(wired: Wired, clock: SettableClock, alert_id: str, rnd: random.Random) -> None:
    """What people do with one alert: the next step may come, then someone reads, takes
    responsibility, or is in contact."""
    alerts = wired.alerts
    alert = await alerts.alerts.find(alert_id)
    if alert is None or alert.current is None or not alert.current.open:
        return
    ep = alert.current
    nxt = ep.next_step_due()
    if nxt is not None and rnd.random() < 0.5:
        clock.at = max(clock.at, nxt[1])
        await alerts.escalate(alert_id, ep.number, nxt[0])
    alert = await alerts.alerts.find(alert_id)
    assert isinstance(alert, Alert)
    assert alert.current is not None
    notifications = sorted(alert.current.notifications)
    if not notifications:
        return
    chosen = rnd.choice(notifications)
    person = Principal(
        sub=chosen.rsplit("~", 1)[1],
        name="story",
        roles=frozenset({"crisis_worker"}),
        sites=frozenset(SITES),
    )
    clock.at += timedelta(minutes=1)
    ctx = CommitContext()
    match rnd.randrange(4):
        case 0:
            await alerts.read(chosen, person, ctx)
        case 1:
            await alerts.read(chosen, person, ctx)
            await alerts.acknowledge(chosen, person, ctx)
        case 2:
            await alerts.in_contact(chosen, person, ctx)
        case _:
            pass  # left unanswered


async def _published(wired: Wired) -> list[Envelope]:
    """Every stored commit's events, stream by stream in version order."""
    found: list[Envelope] = []
    cursor = wired.runtime.store.commits.find({}).sort([("stream_id", 1), ("first", 1)])
    async for commit in cursor:
        found += [Envelope.from_document(e) for e in commit.get("events", ())]
    return found


__all__ = ["StoryDirectory", "notifications_history"]
