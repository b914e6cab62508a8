"""Supervision's approvals and overdue work, routed: which group each event fires or closes,
and whom the default rules then notify at once (the directory in memory: `wendy` supervised
by `sam`, who delegates to `dora`; site manager `mia`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from casework.contracts.notifications import Channel, Trigger, Urgency
from casework.contracts.supervision import (
    ActionItemDone,
    ActionItemOverdue,
    ApprovalGranted,
    ApprovalOverdue,
    ApprovalRequested,
    ApprovalReturned,
    ApprovalWithdrawn,
    CaseReviewOverdue,
    CaseReviewRecorded,
    SupervisionEvent,
    SupervisionOverdue,
    SupervisionSessionHeld,
)
from casework.eventstore import CommitContext, Document

from casework_notifications.application.handlers import Firing, alert_id_for
from casework_notifications.application.policies import WhenSupervisionWorkWaitsRaiseAlerts
from casework_notifications.application.recipients import RecipientResolver
from casework_notifications.domain.alert import ANY_SOURCE
from casework_notifications.domain.routing import DEFAULT_TABLE, Routing, default_routing
from support.envelopes import envelope_of
from support.notifications import FakeDirectory, Staff, crisis_directory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CASE = "case-1"
APPROVAL = f"{CASE}:plan:2"


@dataclass
class RecordedAlerts:
    """The alerts' commands, recorded (the aggregate's own rules are tested in test_alert)."""

    fired: list[Firing] = field(default_factory=list)
    closed: list[tuple[str, str, str]] = field(default_factory=list)

    async def fire(self, firing: Firing, ctx: CommitContext | None = None) -> bool:
        self.fired.append(firing)
        return True

    async def close(
        self,
        alert_id: str,
        source_id: str,
        reason: str,
        by: str | None,
        at: datetime,
        ctx: CommitContext | None = None,
        *,
        opened_by: datetime | None = None,
        settle: bool = False,
    ) -> bool:
        self.closed.append((alert_id, source_id, reason))
        return True

    async def worker_of(self, alert_id: str) -> str | None:
        for f in reversed(self.fired):
            if alert_id_for(f.trigger, f.subject_id) == alert_id:
                return f.worker_id
        return None


@dataclass
class Facts:
    cases: dict[str, Document] = field(default_factory=dict)

    async def get(self, case_id: str) -> Document | None:
        return self.cases.get(case_id)


def policy(
    facts: Facts | None = None, directory: FakeDirectory | None = None
) -> tuple[WhenSupervisionWorkWaitsRaiseAlerts, RecordedAlerts, FakeDirectory]:
    directory = directory or crisis_directory("north", T0)
    alerts = RecordedAlerts()
    return (
        WhenSupervisionWorkWaitsRaiseAlerts(facts or Facts(), directory, alerts),
        alerts,
        directory,
    )


async def deliver(handler: WhenSupervisionWorkWaitsRaiseAlerts, event: SupervisionEvent) -> bool:
    return await handler.handle(envelope_of(event, "stream", 1, T0), event)


async def notified_at_once(firing: Firing, directory: FakeDirectory) -> tuple[str, ...]:
    """Whom the default rule's first level names for the firing (as `Alerts.fire` does)."""
    _, escalation = default_routing().rule(firing.trigger, firing.site)
    found = await RecipientResolver(directory, directory).resolve(
        escalation.levels[0].targets, firing.subject(), T0
    )
    return tuple(r for r in found.ids if r not in firing.exclude)


def requested(**change: Any) -> ApprovalRequested:
    values: dict[str, Any] = {
        "approval_id": APPROVAL,
        "kind": "plan",
        "case_id": CASE,
        "site": "north",
        "caseworker_id": "wendy",
        "subject_version": 2,
        "requested_by": "wendy",
        "requested_at": T0,
        "due_at": T0 + timedelta(hours=72),
    }
    return ApprovalRequested(**{**values, **change})


async def test_an_approval_request_goes_to_who_may_decide_it_the_supervisor_or_delegate() -> None:
    handler, alerts, directory = policy()
    assert await deliver(handler, requested())
    (firing,) = alerts.fired
    assert alert_id_for(firing.trigger, firing.subject_id) == f"approval_requested:{APPROVAL}"
    assert firing.source_id == APPROVAL
    assert await notified_at_once(firing, directory) == ("sam", "dora")
    rule, _ = default_routing().rule(Trigger.APPROVAL_REQUESTED, "north")
    assert rule.urgency is Urgency.NORMAL
    assert rule.channels == (Channel.INBOX,)


async def test_the_requester_is_never_told_to_decide_their_own_request() -> None:
    handler, alerts, directory = policy()
    await deliver(handler, requested(requested_by="dora"))  # the delegate proposed it
    assert await notified_at_once(alerts.fired[0], directory) == ("sam",)


async def test_an_unassigned_request_takes_the_worker_from_the_local_copy_of_the_case() -> None:
    handler, alerts, directory = policy(Facts({CASE: {"caseworker_id": "wendy"}}))
    await deliver(handler, requested(caseworker_id=None, requested_by="mia"))
    assert alerts.fired[0].worker_id == "wendy"
    assert await notified_at_once(alerts.fired[0], directory) == ("sam", "dora")


def without_supervisor(*extra: Staff) -> FakeDirectory:
    """`nina` (team a) has no supervisor; `sue` supervises team a at north, `tom` team b."""
    directory = crisis_directory("north", T0)
    for member in (
        Staff("nina", sites=("north",), roles=("caseworker",), team="a"),
        Staff("sue", sites=("north",), roles=("supervisor",), team="a"),
        Staff("tom", sites=("north",), roles=("supervisor",), team="b"),
        *extra,
    ):
        directory.add(member)
    return directory


async def test_a_worker_without_supervisor_falls_back_to_the_site_supervisors_of_the_team() -> None:
    handler, alerts, directory = policy(directory=without_supervisor())
    await deliver(handler, requested(caseworker_id="nina", requested_by="nina", team="a"))
    assert await notified_at_once(alerts.fired[0], directory) == ("sue",)  # not tom (team b)


async def test_the_fallback_without_a_team_is_every_supervisor_of_the_site_but_the_requester() -> (
    None
):
    handler, alerts, directory = policy(directory=without_supervisor())
    await deliver(handler, requested(caseworker_id="nina", requested_by="sue", team=None))
    # sam and dora supervise at north too (the crisis directory); sue asked: never her
    assert set(await notified_at_once(alerts.fired[0], directory)) == {"sam", "dora", "tom"}


async def test_a_supervisor_who_asked_hands_the_decision_to_the_fallback() -> None:
    directory = without_supervisor(
        Staff("ned", sites=("north",), roles=("caseworker",), team="a", supervisor_id="sue")
    )
    handler, alerts, _ = policy(directory=directory)
    directory.add(Staff("sid", sites=("north",), roles=("supervisor",), team="a"))
    await deliver(handler, requested(caseworker_id="ned", requested_by="sue", team="a"))
    assert await notified_at_once(alerts.fired[0], directory) == ("sid",)


async def test_an_overdue_approval_without_supervisor_reaches_the_fallback_and_the_manager() -> (
    None
):
    handler, alerts, directory = policy(directory=without_supervisor())
    overdue = ApprovalOverdue(
        approval_id=APPROVAL,
        kind="plan",
        case_id=CASE,
        site="north",
        team="a",
        requested_at=T0,
        due_at=T0 + timedelta(hours=72),
        raised_at=T0 + timedelta(hours=72),
    )
    await deliver(handler, overdue)
    firing = alerts.fired[-1]
    assert firing.worker_id is None  # neither the request nor the case named one here
    assert await notified_at_once(firing, directory) == ("sue", "mia")


async def test_an_overdue_approval_goes_louder_to_the_approvers_and_the_site_manager() -> None:
    handler, alerts, directory = policy()
    await deliver(handler, requested())
    overdue = ApprovalOverdue(
        approval_id=APPROVAL,
        kind="plan",
        case_id=CASE,
        site="north",
        approver_ids=("sam", "dora"),
        requested_at=T0,
        due_at=T0 + timedelta(hours=72),
        raised_at=T0 + timedelta(hours=72),
    )
    await deliver(handler, overdue)
    firing = alerts.fired[-1]
    assert firing.trigger is Trigger.APPROVAL_OVERDUE
    assert firing.worker_id == "wendy"  # as when it was requested
    assert await notified_at_once(firing, directory) == ("sam", "dora", "mia")
    rule, _ = default_routing().rule(Trigger.APPROVAL_OVERDUE, "north")
    assert rule.urgency is Urgency.HIGH
    assert not rule.digest


@pytest.mark.parametrize(
    "decision",
    [
        ApprovalGranted(
            approval_id=APPROVAL,
            kind="plan",
            case_id=CASE,
            subject_version=2,
            decided_by="sam",
            decided_at=T0,
        ),
        ApprovalReturned(
            approval_id=APPROVAL,
            kind="plan",
            case_id=CASE,
            subject_version=2,
            reason="x",
            decided_by="dora",
            decided_at=T0,
        ),
        ApprovalWithdrawn(
            approval_id=APPROVAL, kind="plan", case_id=CASE, reason="superseded", withdrawn_at=T0
        ),
    ],
)
async def test_a_decided_approval_closes_both_of_its_notices_by_its_id(
    decision: SupervisionEvent,
) -> None:
    handler, alerts, _ = policy()
    await deliver(handler, decision)
    assert [(a, s) for a, s, _ in alerts.closed] == [
        (f"approval_requested:{APPROVAL}", APPROVAL),
        (f"approval_overdue:{APPROVAL}", APPROVAL),
    ]
    assert alerts.fired == []


async def test_a_case_review_overdue_goes_to_the_workers_supervisor_grouped_per_case() -> None:
    handler, alerts, directory = policy(Facts({CASE: {"caseworker_id": "wendy", "site": "north"}}))
    for due in (T0, T0 + timedelta(days=28)):
        overdue = CaseReviewOverdue(case_id=CASE, due_at=due, raised_at=due)  # no site, no worker
        await deliver(handler, overdue)
    first, second = alerts.fired
    assert {alert_id_for(f.trigger, f.subject_id) for f in alerts.fired} == {
        f"case_review_overdue:{CASE}"
    }
    assert first.source_id != second.source_id  # two due times: counted on the one group
    assert (first.site, first.worker_id) == ("north", "wendy")
    assert await notified_at_once(first, directory) == ("sam", "dora")
    review = CaseReviewRecorded(
        session_id="s-1",
        review_id="r-1",
        case_id=CASE,
        client_id="c-1",
        worker_id="wendy",
        findings="enc:v1:k:AAAA",
        decision="enc:v1:k:AAAA",
        reasons="enc:v1:k:AAAA",
        reviewed_by="sam",
        reviewed_at=T0,
    )
    await deliver(handler, review)
    assert alerts.closed == [(f"case_review_overdue:{CASE}", ANY_SOURCE, "case reviewed")]


async def test_an_overdue_action_item_goes_to_its_owner_and_their_supervisor() -> None:
    handler, alerts, directory = policy()
    overdue = ActionItemOverdue(
        action_item_id="a-1",
        worker_id="wendy",
        supervisor_id="sam",
        owner_id="wendy",
        due_at=T0,
        raised_at=T0,
    )
    await deliver(handler, overdue)  # no site: the owner's, from the directory
    (firing,) = alerts.fired
    assert alert_id_for(firing.trigger, firing.subject_id) == "action_item_overdue:a-1"
    assert firing.site == "north"
    assert await notified_at_once(firing, directory) == ("wendy", "sam", "dora")
    await deliver(
        handler,
        ActionItemDone(action_item_id="a-1", worker_id="wendy", done_by="wendy", done_at=T0),
    )
    assert alerts.closed == [("action_item_overdue:a-1", ANY_SOURCE, "action item done")]


async def test_an_overdue_supervision_goes_to_the_supervisor_and_the_worker() -> None:
    handler, alerts, directory = policy()
    overdue = SupervisionOverdue(
        worker_id="wendy", supervisor_id="sam", site="north", due_at=T0, raised_at=T0
    )
    await deliver(handler, overdue)
    await deliver(handler, overdue)  # redelivered: the same source, ignored by the group
    first, again = alerts.fired
    assert alert_id_for(first.trigger, first.subject_id) == "supervision_overdue:wendy"
    assert first.source_id == again.source_id
    assert await notified_at_once(first, directory) == ("wendy", "sam", "dora")
    held = SupervisionSessionHeld(
        session_id="s-1", worker_id="wendy", supervisor_id="sam", held_at=T0, recorded_by="sam"
    )
    await deliver(handler, held)
    assert alerts.closed == [("supervision_overdue:wendy", ANY_SOURCE, "supervision held")]


async def test_an_event_with_no_site_anywhere_is_not_routed() -> None:
    directory = FakeDirectory()
    directory.add(Staff("nomad", supervisor_id="sam"))
    handler, alerts, _ = policy(directory=directory)
    overdue = SupervisionOverdue(worker_id="nomad", due_at=T0, raised_at=T0)
    assert not await deliver(handler, overdue)
    assert alerts.fired == []


@pytest.mark.parametrize(
    "trigger",
    [Trigger.CASE_REVIEW_OVERDUE, Trigger.ACTION_ITEM_OVERDUE, Trigger.SUPERVISION_OVERDUE],
)
def test_overdue_supervision_work_is_non_urgent_and_goes_to_digests(trigger: Trigger) -> None:
    rule, _ = default_routing().rule(trigger, "north")
    assert rule.urgency is Urgency.NORMAL  # quiet hours hold its e-mail
    assert rule.digest  # and it is e-mailed in the digests, not one by one
    assert Channel.INBOX in rule.channels


def test_a_site_may_route_an_overdue_approval_otherwise() -> None:
    table = {
        **DEFAULT_TABLE,
        "sites": {
            "south": {
                "approval_overdue": {
                    "urgency": "normal",
                    "channels": ["inbox"],
                    "policy": "site_manager",
                }
            }
        },
    }
    routing = Routing.from_json(table)
    south, escalation = routing.rule(Trigger.APPROVAL_OVERDUE, "south")
    assert (south.urgency, escalation.levels[0].targets) == (Urgency.NORMAL, ("site_manager",))
    north, escalation = routing.rule(Trigger.APPROVAL_OVERDUE, "north")
    assert north.urgency is Urgency.HIGH
    assert escalation.levels[0].targets == ("supervisor", "site_manager")
