"""Supervision's approvals and overdue work on the real servers, with the service's own copy
of the directory (`KnownStaff`, fed from the supervision topic as supervision's relay would)
and its clock on a winter Wednesday evening in London (quiet hours):

- an approval request reaches who may decide it (`wendy`'s supervisor `sam` and `dora`
  standing in for him), never the requester; overdue, it reaches them and site manager `mia`;
- an overdue case review reaches the supervisors, an overdue action item its owner and their
  supervisors, an overdue supervision the worker and the supervisors;
- every event delivered twice notifies nobody twice (the event store holds one
  `NotificationSent` per recipient per group, and each inbox one entry per group);
- nothing is e-mailed in quiet hours: the overdue notices wait for the digests, the approval
  overdue (high, not critical) is held until 07:00;
- the approval granted closes both of its notices."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from casework.clock import FixedClock
from casework.contracts.supervision import (
    ActionItemOverdue,
    ApprovalGranted,
    ApprovalOverdue,
    ApprovalRequested,
    CaseReviewOverdue,
    SupervisionEvent,
    SupervisionOverdue,
)
from casework.envelope import Envelope
from casework.runtime import events_topic, topic_prefix, wait_until

from .conftest import SITE, running
from casework_notifications.bootstrap import Wired
from casework_notifications.settings import NotificationsSettings
from support.alerts import caught_up, status
from support.directory import SupervisionTopic, delegation, seed_directory, site, staff
from support.envelopes import envelope_of
from support.receivers import SmtpSink, port

T0 = datetime(2026, 12, 2, 22, 0, tzinfo=UTC)  # a Wednesday evening; London is on UTC
SENT = "casework.notifications.NotificationSent.v1"
POLICY = "when_supervision_work_waits_raise_alerts"


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(port(112))
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def routed(kafka_bootstrap: str, mongo_url: str, smtp: SmtpSink) -> AsyncIterator[Wired]:
    """The service with its own directory projections (no fakes), e-mail to the sink."""
    own = NotificationsSettings(
        deadline_tick_s=0.2,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_timeout_s=2,
        default_timezone="Europe/London",
    )
    async with running(kafka_bootstrap, mongo_url, own, FixedClock(T0)) as wired:
        yield wired


async def recipients(wired: Wired, alert_id: str) -> list[str]:
    """Everyone the group's stream says was notified, once per notification."""
    events = await wired.runtime.store.load(f"alert-{alert_id}")
    return sorted(str(e.data["recipient_id"]) for e in events if e.type == SENT)


async def test_supervision_work_reaches_who_must_act_once_and_a_decision_closes_it(
    routed: Wired, publish: Callable[..., Any], kafka_bootstrap: str, smtp: SmtpSink
) -> None:
    service = routed
    supervision = topic_prefix(service.runtime.settings) + events_topic("supervision")
    await seed_directory(
        SupervisionTopic(kafka_bootstrap, supervision),
        site(SITE),
        *(
            staff(sid, role, email=f"{sid}@agency.test")
            for sid, role in (
                ("sam", "supervisor"),
                ("dora", "supervisor"),
                ("mia", "site_manager"),
            )
        ),
        staff("wendy", "caseworker", supervisor="sam", email="wendy@agency.test"),
        # nobody supervises nina: her approvals go to the supervisors of her team, as
        # supervision's fallback rule says (sue, not tim of another team)
        staff("nina", "caseworker", team="a", email="nina@agency.test"),
        staff("sue", "supervisor", team="a", email="sue@agency.test"),
        staff("tim", "supervisor", team="b", email="tim@agency.test"),
        delegation("sam", "dora", T0 - timedelta(hours=1), T0 + timedelta(days=2)),
    )
    known = service.alerts.recipients.staff

    async def directory_known() -> bool:
        managers = [s.staff_id for s in await known.with_role(SITE, "site_manager")]
        teams = {s.staff_id: s.team for s in await known.with_role(SITE, "supervisor")}
        return (
            await known.supervisors_of("wendy", T0) == ("sam", "dora")
            and managers == ["mia"]
            and teams.get("sue") == "a"
            and teams.get("tim") == "b"
        )

    await wait_until(directory_known, within=30, every=0.1)

    case_id, item = str(uuid.uuid4()), str(uuid.uuid4())
    approval = f"{case_id}:plan:2"
    ninas = f"{uuid.uuid4()}:plan:1"
    due = T0 - timedelta(hours=1)
    streams: list[tuple[str, int, SupervisionEvent]] = [
        (
            f"approval-{approval}",
            1,
            ApprovalRequested(
                approval_id=approval,
                kind="plan",
                case_id=case_id,
                site=SITE,
                caseworker_id="wendy",
                subject_version=2,
                requested_by="wendy",
                requested_at=due - timedelta(hours=72),
                due_at=due,
            ),
        ),
        (
            f"approval-{approval}",
            2,
            ApprovalOverdue(
                approval_id=approval,
                kind="plan",
                case_id=case_id,
                site=SITE,
                approver_ids=("sam", "dora"),
                requested_at=due - timedelta(hours=72),
                due_at=due,
                raised_at=T0,
            ),
        ),
        (
            f"approval-{ninas}",
            1,
            ApprovalRequested(
                approval_id=ninas,
                kind="plan",
                case_id=ninas.split(":")[0],
                site=SITE,
                team="a",
                caseworker_id="nina",
                subject_version=1,
                requested_by="nina",
                requested_at=due - timedelta(hours=72),
                due_at=due + timedelta(days=1),
            ),
        ),
        (
            f"review-cadence-{case_id}",
            1,
            CaseReviewOverdue(
                case_id=case_id, site=SITE, caseworker_id="wendy", due_at=due, raised_at=T0
            ),
        ),
        (
            f"action-{item}",
            1,
            ActionItemOverdue(
                action_item_id=item,
                worker_id="wendy",
                supervisor_id="sam",
                owner_id="wendy",
                site=SITE,
                case_id=case_id,
                due_at=due,
                raised_at=T0,
            ),
        ),
        (
            "supervision-cadence-wendy",
            1,
            SupervisionOverdue(
                worker_id="wendy", supervisor_id="sam", site=SITE, due_at=due, raised_at=T0
            ),
        ),
    ]
    envelopes: list[Envelope] = [
        envelope_of(event, stream, version, T0, site=SITE) for stream, version, event in streams
    ]
    for envelope in envelopes:
        await publish(service, "supervision", envelope)

    expected = {
        f"approval_requested:{approval}": ["dora", "sam"],  # never the requester
        f"approval_overdue:{approval}": ["dora", "mia", "sam"],
        f"approval_requested:{ninas}": ["sue"],  # the fallback: no supervisor of her own
        f"case_review_overdue:{case_id}": ["dora", "sam"],
        f"action_item_overdue:{item}": ["dora", "sam", "wendy"],
        "supervision_overdue:wendy": ["dora", "sam", "wendy"],
    }

    async def all_open() -> bool:
        return all([await status(service, a) == "open" for a in expected])

    await wait_until(all_open, within=30, every=0.1)

    for envelope in envelopes:  # every event redelivered, as after a rebalance
        await publish(service, "supervision", envelope)
    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, POLICY, "supervision"), within=30, every=0.2
    )
    assert {a: await recipients(service, a) for a in expected} == expected

    await wait_until(
        lambda: caught_up(service, kafka_bootstrap, "inbox", "notifications"), within=30, every=0.2
    )
    for person in ("sam", "dora", "mia", "wendy", "sue", "tim", "nina"):
        entries = [str(e["alert_id"]) for e in await service.inbox.of(person, 50)]
        mine = sorted(a for a, people in expected.items() if person in people)
        assert sorted(entries) == mine, person

    # quiet hours: nothing e-mailed now; overdue work waits for the digests at 08:00
    deadlines = service.runtime.deadlines.collection
    for person in ("sam", "dora", "wendy"):
        daily = await deadlines.find_one({"_id": f"digest:daily:{person}"})
        assert daily is not None, person
    overdue_notice = f"case_review_overdue:{case_id}~1~0~sam"
    assert await deadlines.find_one({"_id": f"email:{overdue_notice}#0"}) is None
    # the approval overdue is e-mailed one by one, but held until the quiet hours end
    loud = f"approval_overdue:{approval}~1~0~mia"

    async def held() -> bool:
        return [a["outcome"] for a in await service.deliveries.log.of(loud)] == ["held"]

    await wait_until(held, within=30, every=0.2)
    release = await deadlines.find_one({"_id": f"email:{loud}#0-held"})
    assert release is not None
    assert release["due_at"].replace(tzinfo=UTC) == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)

    granted = ApprovalGranted(
        approval_id=approval,
        kind="plan",
        case_id=case_id,
        subject_version=2,
        decided_by="dora",
        on_behalf_of="sam",
        decided_at=T0,
    )
    await publish(service, "supervision", envelope_of(granted, f"approval-{approval}", 3, T0))

    async def approval_closed() -> bool:
        notices = (f"approval_requested:{approval}", f"approval_overdue:{approval}")
        return all([await status(service, a) == "closed" for a in notices])

    await wait_until(approval_closed, within=30, every=0.1)
    assert await status(service, f"case_review_overdue:{case_id}") == "open"  # not its business
    assert smtp.messages == []
