"""Routing rules as data: defaults, per-site overrides, and tables refused at load; the
recipients each target names, from the directory and the rota at that moment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from casework.contracts.contacts import ContactOverdue
from casework.contracts.notifications import Channel, Trigger, Urgency

from casework_notifications.application.policies import overdue_trigger
from casework_notifications.application.recipients import RecipientResolver, Subject
from casework_notifications.domain.errors import InvalidRouting
from casework_notifications.domain.routing import (
    DEFAULT_TABLE,
    Routing,
    default_routing,
    routing_over_defaults,
)
from support.notifications import Shift, Staff, crisis_directory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_every_trigger_has_a_rule_and_crisis_is_critical_on_every_channel() -> None:
    rule, policy = default_routing().rule(Trigger.CRISIS, "anywhere")
    assert rule.urgency is Urgency.CRITICAL
    assert set(rule.channels) == {Channel.INBOX, Channel.EMAIL, Channel.WEBHOOK}
    assert policy.levels[0].targets == ("assigned_worker", "on_call")


def test_a_site_overrides_the_agency_rule_for_one_trigger() -> None:
    table = {
        **DEFAULT_TABLE,
        "sites": {
            "south": {
                "crisis": {"urgency": "critical", "channels": ["inbox"], "policy": "site_manager"}
            }
        },
    }
    routing = Routing.from_json(table)
    south, policy = routing.rule(Trigger.CRISIS, "south")
    assert south.channels == (Channel.INBOX,)
    assert policy.name == "site_manager"
    north, _ = routing.rule(Trigger.CRISIS, "north")
    assert Channel.EMAIL in north.channels


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {
                "rules": {
                    **DEFAULT_TABLE["rules"],
                    "crisis": {"urgency": "critical", "channels": [], "policy": "nope"},
                }
            },
            "no policy",
        ),
        (
            {
                "policies": {
                    **DEFAULT_TABLE["policies"],
                    "crisis": {
                        "name": "crisis",
                        "levels": [
                            {"targets": ["on_call"], "delay_minutes": 0},
                            {"targets": ["janitor"], "delay_minutes": 5},
                        ],
                    },
                }
            },
            "unknown target",
        ),
        (
            {
                "policies": {
                    **DEFAULT_TABLE["policies"],
                    "crisis": {
                        "name": "crisis",
                        "levels": [
                            {"targets": ["on_call"], "delay_minutes": 0},
                            {"targets": ["backup"], "delay_minutes": 0},
                        ],
                    },
                }
            },
            "at least 1 minute",
        ),
        ({"rules": {"crisis": DEFAULT_TABLE["rules"]["crisis"]}}, "no rule for"),
        ({"policies": "x"}, "routing table: policies"),
    ],
)
def test_a_table_that_cannot_work_is_refused_at_load(change: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidRouting, match=words):
        Routing.from_json({**DEFAULT_TABLE, **change})


def test_an_operator_file_overrides_what_it_names_and_keeps_the_defaults_for_the_rest() -> None:
    # a file written before a trigger existed (it names only crisis) still loads after the
    # upgrade: its rule wins, every other trigger keeps the documented default
    rule = {**DEFAULT_TABLE["rules"]["crisis"], "channels": ["inbox"]}
    routing = routing_over_defaults({"rules": {"crisis": rule}})
    assert routing.rule(Trigger.CRISIS, "north")[0].channels == (Channel.INBOX,)
    default = default_routing()
    for trigger in set(Trigger) - {Trigger.CRISIS}:
        assert routing.rule(trigger, "north") == default.rule(trigger, "north")
    with pytest.raises(InvalidRouting, match="routing table: policies"):
        routing_over_defaults({"policies": "x"})
    with pytest.raises(InvalidRouting, match="unknown target"):
        routing_over_defaults(
            {
                "policies": {
                    "crisis": {
                        "name": "crisis",
                        "levels": [{"targets": ["janitor"], "delay_minutes": 0}],
                    }
                }
            }
        )


async def test_targets_resolve_to_the_people_on_duty_at_that_moment() -> None:
    directory = crisis_directory("north", T0)
    resolver = RecipientResolver(directory, directory)
    subject = Subject("north", "wendy")
    first = await resolver.resolve(("assigned_worker", "on_call"), subject, T0)
    assert first.ids == ("wendy", "olga")
    second = await resolver.resolve(("backup", "supervisor"), subject, T0)
    assert second.ids == ("ben", "sam", "dora")  # the supervisor and their delegate
    third = await resolver.resolve(("site_manager", "regional", "staff:zed"), subject, T0)
    assert third.ids == ("mia", "rex", "zed")
    later = await resolver.resolve(("on_call", "backup"), subject, T0 + timedelta(days=1))
    assert later.ids == ()
    assert later.unresolved == ("on_call", "backup")  # nobody rostered: reported, not fatal


async def test_a_referral_screened_imminent_reaches_the_on_call_and_site_manager_at_once() -> None:
    """Nobody is assigned to a referral: its first level is the site's on-call crisis worker
    and the site manager (whose queue it sits in), critical on every channel; unacknowledged
    it climbs as a crisis does (backup at 5 minutes, regional at 15, then again)."""
    rule, policy = default_routing().rule(Trigger.SCREENED_IMMINENT, "north")
    assert rule.urgency is Urgency.CRITICAL
    assert set(rule.channels) == {Channel.INBOX, Channel.EMAIL, Channel.WEBHOOK}
    assert not rule.digest
    assert [(lv.targets, lv.delay_minutes) for lv in policy.levels] == [
        (("on_call", "site_manager"), 0),
        (("backup",), 5),
        (("regional",), 10),
    ]
    assert policy.repeat == 2
    directory = crisis_directory("north", T0)
    resolver = RecipientResolver(directory, directory)
    subject = Subject("north", None)  # no worker: the referral has none
    first = await resolver.resolve(policy.levels[0].targets, subject, T0)
    assert first.ids == ("olga", "mia")
    assert first.unresolved == ()
    second = await resolver.resolve(policy.levels[1].targets, subject, T0)
    assert second.ids == ("ben",)


async def test_a_leaver_is_never_notified() -> None:
    directory = crisis_directory("north", T0)
    directory.add(Staff("wendy", active=False, sites=("north",), roles=("caseworker",)))
    resolver = RecipientResolver(directory, directory)
    found = await resolver.resolve(("assigned_worker", "on_call"), Subject("north", "wendy"), T0)
    assert found.ids == ("olga",)
    assert found.unresolved == ("assigned_worker",)


class SlowDirectory:
    """The crisis directory, each read taking a moment, counting the reads in flight."""

    def __init__(self) -> None:
        self.inner = crisis_directory("north", T0)
        self.in_flight = 0
        self.most = 0

    async def _read(self) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1

    async def get(self, staff_id: str) -> Staff | None:
        await self._read()
        return await self.inner.get(staff_id)

    async def on_call(self, site: str, at: datetime) -> Shift | None:
        await self._read()
        return await self.inner.on_call(site, at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_crisis_level_reads_in_two_rounds_with_the_same_answer() -> None:
    """The shift and the worker's entry at once, then each person's: the answer is the
    one-by-one answer (target order, leavers out), with reads in flight together."""
    slow = SlowDirectory()
    resolver = RecipientResolver(slow, slow)  # type: ignore[arg-type]
    found = await resolver.resolve(("assigned_worker", "on_call"), Subject("north", "wendy"), T0)
    assert found.ids == ("wendy", "olga")
    assert slow.most >= 2
    slow.inner.add(Staff("olga", active=False, sites=("north",), roles=("crisis_worker",)))
    found = await resolver.resolve(
        ("on_call", "assigned_worker", "backup"), Subject("north", "wendy"), T0
    )
    assert found.ids == ("wendy", "ben")
    assert found.unresolved == ("on_call",)


def test_a_missed_follow_up_is_its_own_louder_trigger() -> None:
    """A missed contact of a follow-up clock (after a crisis resolved, or a discharge) is
    `follow_up_missed`: high, e-mailed at once to worker and supervisor, never a digest; any
    other overdue contact, and one stored before the clock was carried, stays routine."""

    def overdue(trigger: str | None) -> ContactOverdue:
        return ContactOverdue(
            case_id="c",
            obligation_id="o",
            rule_id="r",
            rule_version="1",
            due_at=datetime(2026, 12, 1, tzinfo=UTC),
            overdue_seconds=60,
            site="north",
            raised_at=datetime(2026, 12, 1, tzinfo=UTC),
            trigger=trigger,
        )

    assert overdue_trigger(overdue("crisis_resolved:cr-1")) is Trigger.FOLLOW_UP_MISSED
    assert overdue_trigger(overdue("inpatient_discharge:a-1")) is Trigger.FOLLOW_UP_MISSED
    assert overdue_trigger(overdue("case_opened:1")) is Trigger.CONTACT_OVERDUE
    assert overdue_trigger(overdue(None)) is Trigger.CONTACT_OVERDUE
    rule, policy = default_routing().rule(Trigger.FOLLOW_UP_MISSED, "north")
    assert (rule.urgency, rule.digest) == (Urgency.HIGH, False)
    assert set(rule.channels) == {Channel.INBOX, Channel.EMAIL}
    assert policy.levels[0].delay_minutes == 0
    assert set(policy.levels[0].targets) == {"assigned_worker", "supervisor"}
