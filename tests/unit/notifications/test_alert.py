"""The Alert aggregate: grouping, one notification per recipient per step, escalation
through levels and repeats, acknowledgement stops it for everyone, never auto-resolved.
Given events, when a command, then events or a refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casework.contracts.notifications import (
    AlertAcknowledged,
    AlertBroughtIn,
    AlertClosed,
    AlertEscalated,
    AlertInContact,
    AlertOpened,
    AlertRefired,
    AlertSourceSettled,
    Channel,
    NotificationSent,
    Trigger,
    Urgency,
)
from casework.events import DomainEvent

from casework_notifications.domain.alert import ANY_SOURCE, Alert
from casework_notifications.domain.commands import (
    Acknowledge,
    AlertCommand,
    BringIn,
    Close,
    Escalate,
    Fire,
    Recipients,
    RecordInContact,
)
from casework_notifications.domain.errors import AlertAlreadyAcknowledged, AlertAlreadyClosed
from casework_notifications.domain.escalation import due_at, notification_id, step_count
from casework_notifications.domain.routing import default_routing

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ALERT = "crisis:case-1"
RULE, POLICY = default_routing().rule(Trigger.CRISIS, "north")


def fire(
    source: str = "crisis-1", ids: tuple[str, ...] = ("wendy", "olga"), at: datetime = T0
) -> Fire:
    return Fire(
        alert_id=ALERT,
        trigger=Trigger.CRISIS,
        source_id=source,
        case_id="case-1",
        worker_id="wendy",
        site="north",
        urgency=Urgency.CRITICAL,
        channels=(Channel.INBOX, Channel.EMAIL),
        policy=POLICY,
        recipients=Recipients(ids),
        at=at,
    )


def given(*commands: AlertCommand) -> Alert:
    alert = Alert(ALERT)
    for cmd in commands:
        alert.handle(cmd)
    history = alert.pending_events
    return Alert.rehydrate(ALERT, history)


def when(alert: Alert, cmd: AlertCommand) -> list[DomainEvent]:
    alert.handle(cmd)
    return alert.pending_events


def test_a_first_fire_opens_and_notifies_the_first_level_once_each() -> None:
    events = when(Alert(ALERT), fire(ids=("wendy", "olga", "wendy")))
    assert isinstance(events[0], AlertOpened)
    assert events[0].episode == 1
    assert events[0].policy == POLICY
    assert isinstance(events[1], AlertEscalated)
    assert (events[1].step, events[1].level, events[1].repeat) == (0, 0, 0)
    sent = [e for e in events if isinstance(e, NotificationSent)]
    assert [e.recipient_id for e in sent] == ["wendy", "olga"]
    assert sent[0].notification_id == notification_id(ALERT, 1, 0, "wendy")


def test_the_same_source_again_changes_nothing() -> None:
    assert when(given(fire()), fire()) == []


def test_a_new_source_while_open_counts_without_notifying() -> None:
    events = when(given(fire()), fire("crisis-2"))
    assert len(events) == 1
    assert isinstance(events[0], AlertRefired)
    assert events[0].count == 2


def test_escalation_reaches_each_step_once_in_order() -> None:
    alert = given(fire())
    ep = alert.current
    assert ep is not None
    assert ep.next_step_due() == (1, T0 + timedelta(minutes=5))
    assert when(alert, Escalate(ALERT, 1, 2, Recipients(("mia",)), T0)) == []  # not next
    events = when(alert, Escalate(ALERT, 1, 1, Recipients(("ben", "sam", "dora")), T0))
    assert isinstance(events[0], AlertEscalated)
    assert (events[0].level, events[0].repeat) == (1, 0)
    alert = given(fire(), Escalate(ALERT, 1, 1, Recipients(("ben",)), T0))
    assert when(alert, Escalate(ALERT, 1, 1, Recipients(("ben",)), T0)) == []  # reached


def test_the_default_crisis_timeline_and_its_repeats() -> None:
    offsets = [due_at(POLICY, T0, s) - T0 for s in range(step_count(POLICY))]
    minutes = [int(o.total_seconds() // 60) for o in offsets]
    # worker + on-call at once; backup + supervisor at 5; site manager at 10; regional at
    # 20; then the levels again, 10 minutes after the last, twice more
    assert minutes == [0, 5, 10, 20, 30, 35, 40, 50, 60, 65, 70, 80]


def test_past_the_last_step_the_alert_stays_open() -> None:
    commands: list[AlertCommand] = [fire()]
    for step in range(1, step_count(POLICY)):
        commands.append(Escalate(ALERT, 1, step, Recipients(("x",)), T0))
    alert = given(*commands)
    ep = alert.current
    assert ep is not None
    assert ep.open
    assert ep.next_step_due() is None


def test_acknowledgement_stops_the_chain_for_everyone() -> None:
    alert = given(fire(), Acknowledge(ALERT, "olga", None, T0 + timedelta(minutes=2)))
    ep = alert.current
    assert ep is not None
    assert ep.next_step_due() is None
    assert when(alert, Escalate(ALERT, 1, 1, Recipients(("ben",)), T0)) == []
    assert when(alert, Acknowledge(ALERT, "olga", None, T0)) == []  # the same person again
    with pytest.raises(AlertAlreadyAcknowledged) as refused:
        when(alert, Acknowledge(ALERT, "wendy", None, T0))
    assert refused.value.by == "olga"


def test_in_contact_acknowledges_when_nobody_has() -> None:
    events = when(given(fire()), RecordInContact(ALERT, "wendy", None, T0))
    assert [type(e) for e in events] == [AlertAcknowledged, AlertInContact]


def test_close_by_its_source_ends_the_episode_and_a_replay_does_not_reopen() -> None:
    alert = given(fire(), Close(ALERT, "crisis-1", "resolved", "wendy", T0))
    ep = alert.current
    assert ep is not None
    assert not ep.open
    assert when(alert, fire()) == []  # the declared crisis replayed
    with pytest.raises(AlertAlreadyClosed):
        when(alert, Acknowledge(ALERT, "olga", None, T0))
    events = when(alert, fire("crisis-2"))  # a new crisis: a new episode
    assert isinstance(events[0], AlertOpened)
    assert events[0].episode == 2


def test_close_by_another_source_changes_nothing() -> None:
    assert when(given(fire()), Close(ALERT, "crisis-9", "resolved", None, T0)) == []
    events = when(given(fire()), Close(ALERT, ANY_SOURCE, "decided", None, T0))
    assert isinstance(events[0], AlertClosed)


def test_a_close_that_names_a_time_leaves_an_episode_opened_after_it() -> None:
    """A crisis supersedes the case's risk notice opened at or before it; replayed, the old
    crisis must not close a risk notice opened after it."""
    later = given(fire(at=T0 + timedelta(hours=1)))
    assert when(later, Close(ALERT, ANY_SOURCE, "superseded", None, T0, opened_by=T0)) == []
    for opened in (T0, T0 - timedelta(minutes=1)):
        events = when(
            given(fire(at=opened)), Close(ALERT, ANY_SOURCE, "superseded", None, T0, opened_by=T0)
        )
        assert isinstance(events[0], AlertClosed)


def screened(source: str) -> Fire:
    rule, policy = default_routing().rule(Trigger.SCREENED_IMMINENT, "north")
    return Fire(
        "screened_imminent:ref-1",
        Trigger.SCREENED_IMMINENT,
        source,
        None,
        None,
        "north",
        rule.urgency,
        rule.channels,
        policy,
        Recipients(("olga", "mia")),
        T0,
    )


def test_a_screened_imminent_group_stays_open_when_acknowledged_until_closed() -> None:
    alert = Alert("screened_imminent:ref-1")
    alert.handle(screened("screen:2"))
    alert.handle(Acknowledge("screened_imminent:ref-1", "olga", None, T0))
    alert.handle(screened("screen:3"))  # screened imminent again: a count, not a notice
    assert isinstance(alert.pending_events[-1], AlertRefired)
    alert.handle(Close("screened_imminent:ref-1", ANY_SOURCE, "referral accepted", "mia", T0))
    assert isinstance(alert.pending_events[-1], AlertClosed)
    alert.handle(screened("screen:3"))
    assert isinstance(alert.pending_events[-1], AlertClosed)  # a source seen: nothing


def test_a_non_crisis_group_acknowledged_opens_anew_on_the_next_fire() -> None:
    def overdue(source: str) -> Fire:
        rule, policy = default_routing().rule(Trigger.CONTACT_OVERDUE, "north")
        return Fire(
            "contact_overdue:case-1",
            Trigger.CONTACT_OVERDUE,
            source,
            "case-1",
            "wendy",
            "north",
            rule.urgency,
            rule.channels,
            policy,
            Recipients(("wendy",)),
            T0,
        )

    alert = Alert("contact_overdue:case-1")
    alert.handle(overdue("ob-1"))
    alert.handle(overdue("ob-2"))
    assert isinstance(alert.pending_events[-1], AlertRefired)
    alert.handle(Acknowledge("contact_overdue:case-1", "wendy", None, T0))
    alert.handle(overdue("ob-3"))
    opened = [e for e in alert.pending_events if isinstance(e, AlertOpened)]
    assert [e.episode for e in opened] == [1, 2]


def test_an_episode_keeps_the_policy_it_opened_with() -> None:
    alert = given(fire())
    ep = alert.current
    assert ep is not None
    assert ep.policy == POLICY
    assert alert.stream_id == "alert-crisis:case-1"


def test_whom_an_episode_excludes_is_never_notified_at_any_step() -> None:
    """An approval's requester (four eyes) named by a later level, or brought in as on call,
    is left out; the episode keeps whom it excludes and the case's team."""
    opened = Fire(**{**vars(fire(ids=("wendy", "dora"))), "team": "a", "excluded": ("dora",)})
    events = when(Alert(ALERT), opened)
    assert isinstance(events[0], AlertOpened)
    assert (events[0].team, events[0].excluded) == ("a", ("dora",))
    sent = [e.recipient_id for e in events if isinstance(e, NotificationSent)]
    assert sent == ["wendy"]
    alert = given(opened)
    ep = alert.current
    assert ep is not None
    assert (ep.team, ep.excluded) == ("a", ("dora",))
    later = when(alert, Escalate(ALERT, 1, 1, Recipients(("sam", "dora")), T0))
    assert [e.recipient_id for e in later if isinstance(e, NotificationSent)] == ["sam"]
    assert when(given(opened), on_call(("on_call", "dora"))) == []


def on_call(*people: tuple[str, str], at: datetime = T0 + timedelta(minutes=1)) -> BringIn:
    return BringIn(ALERT, people, "on_call_shift:north/s1", at)


def test_bring_in_notifies_the_new_on_call_at_the_current_step_once() -> None:
    alert = given(fire(ids=("wendy",)))  # nobody was on call when it opened
    events = when(alert, on_call(("on_call", "cleo"), ("backup", "ben")))
    assert isinstance(events[0], AlertBroughtIn)
    # the backup is a target of level 1, not reached yet: not brought in
    assert (events[0].step, events[0].recipients, events[0].targets) == (0, ("cleo",), ("on_call",))
    sent = [e for e in events if isinstance(e, NotificationSent)]
    assert [(e.recipient_id, e.notification_id) for e in sent] == [
        ("cleo", notification_id(ALERT, 1, 0, "cleo"))
    ]
    assert sent[0].channels == (Channel.INBOX, Channel.EMAIL)
    assert sent[0].sent_at == T0 + timedelta(minutes=1)
    # the shift heard again (redelivery, another replica, a restart): nobody twice
    alert = given(fire(ids=("wendy",)), on_call(("on_call", "cleo")))
    assert when(alert, on_call(("on_call", "cleo"), ("backup", "ben"))) == []


def test_bring_in_leaves_out_whom_the_episode_already_notified() -> None:
    alert = given(fire(ids=("wendy", "olga")))
    assert when(alert, on_call(("on_call", "olga"))) == []
    assert when(alert, on_call(("on_call", "wendy"), ("on_call", ""))) == []


def test_bring_in_after_a_later_step_notifies_at_that_step_and_includes_the_backup() -> None:
    alert = given(
        fire(ids=("wendy",)),
        Escalate(ALERT, 1, 1, Recipients(("sam",), ("backup",)), T0 + timedelta(minutes=5)),
    )
    events = when(alert, on_call(("on_call", "cleo"), ("backup", "ben"), ("backup", "cleo")))
    assert isinstance(events[0], AlertBroughtIn)
    assert events[0].step == 1
    assert events[0].recipients == ("cleo", "ben")
    assert events[0].targets == ("on_call", "backup")
    sent = [e.notification_id for e in events if isinstance(e, NotificationSent)]
    assert sent == [notification_id(ALERT, 1, 1, "cleo"), notification_id(ALERT, 1, 1, "ben")]


def test_an_acknowledged_or_closed_alert_brings_in_nobody() -> None:
    acked = given(fire(ids=("wendy",)), Acknowledge(ALERT, "wendy", None, T0))
    assert when(acked, on_call(("on_call", "cleo"))) == []
    closed = given(fire(ids=("wendy",)), Close(ALERT, "crisis-1", "resolved", "wendy", T0))
    assert when(closed, on_call(("on_call", "cleo"))) == []
    assert when(Alert(ALERT), on_call(("on_call", "cleo"))) == []  # no alert at all


def test_a_group_whose_policy_names_no_on_call_brings_in_nobody() -> None:
    rule, policy = default_routing().rule(Trigger.CONTACT_OVERDUE, "north")
    alert = Alert("contact_overdue:case-1")
    alert.handle(
        Fire(
            "contact_overdue:case-1",
            Trigger.CONTACT_OVERDUE,
            "ob-1",
            "case-1",
            "wendy",
            "north",
            rule.urgency,
            rule.channels,
            policy,
            Recipients(("wendy",)),
            T0,
        )
    )
    alert.mark_committed()
    alert.handle(BringIn("contact_overdue:case-1", (("on_call", "cleo"),), "shift", T0))
    assert alert.pending_events == []


OVERDUE = "contact_overdue:case-1"
OVERDUE_RULE, OVERDUE_POLICY = default_routing().rule(Trigger.CONTACT_OVERDUE, "north")


def overdue(obligation: str) -> Fire:
    return Fire(
        OVERDUE,
        Trigger.CONTACT_OVERDUE,
        obligation,
        "case-1",
        "wendy",
        "north",
        OVERDUE_RULE.urgency,
        OVERDUE_RULE.channels,
        OVERDUE_POLICY,
        Recipients(("wendy",)),
        T0,
    )


def settle(obligation: str, reason: str = "contact made") -> Close:
    return Close(OVERDUE, obligation, reason, None, T0 + timedelta(hours=1), settle=True)


def given_overdue(*commands: AlertCommand) -> Alert:
    alert = Alert(OVERDUE)
    for cmd in commands:
        alert.handle(cmd)
    return Alert.rehydrate(OVERDUE, alert.pending_events)


def test_one_of_two_overdue_contacts_made_is_recorded_and_the_chain_goes_on() -> None:
    alert = given_overdue(overdue("ob-1"), overdue("ob-2"))
    events = when(alert, settle("ob-1"))
    assert [type(e) for e in events] == [AlertSourceSettled]
    assert isinstance(events[0], AlertSourceSettled)
    assert (events[0].source_id, events[0].outstanding) == ("ob-1", 1)
    alert = given_overdue(overdue("ob-1"), overdue("ob-2"), settle("ob-1"))
    ep = alert.current
    assert ep is not None
    assert ep.open
    assert ep.next_step_due() == (1, T0 + timedelta(hours=4))  # ob-2 is still owed
    reached = when(alert, Escalate(OVERDUE, 1, 1, Recipients(("sam",)), T0 + timedelta(hours=4)))
    assert [e.recipient_id for e in reached if isinstance(e, NotificationSent)] == ["sam"]


def test_every_overdue_contact_made_closes_the_episode_and_stops_the_chain() -> None:
    alert = given_overdue(overdue("ob-1"), overdue("ob-2"), settle("ob-1"))
    events = when(alert, settle("ob-2"))
    assert [type(e) for e in events] == [AlertSourceSettled, AlertClosed]
    assert isinstance(events[0], AlertSourceSettled)
    assert events[0].outstanding == 0
    alert = given_overdue(overdue("ob-1"), overdue("ob-2"), settle("ob-1"), settle("ob-2"))
    ep = alert.current
    assert ep is not None
    assert not ep.open
    assert ep.next_step_due() is None
    assert when(alert, Escalate(OVERDUE, 1, 1, Recipients(("sam",)), T0)) == []
    assert when(alert, overdue("ob-2")) == []  # a settled source never opens again
    assert isinstance(when(alert, overdue("ob-3"))[0], AlertOpened)  # a new one does


def test_the_only_overdue_contact_made_closes_even_an_acknowledged_episode() -> None:
    events = when(given_overdue(overdue("ob-1")), settle("ob-1"))
    assert [type(e) for e in events] == [AlertSourceSettled, AlertClosed]
    acked = given_overdue(overdue("ob-1"), Acknowledge(OVERDUE, "wendy", None, T0))
    assert [type(e) for e in when(acked, settle("ob-1"))] == [AlertSourceSettled, AlertClosed]


def test_an_obligation_cancelled_counts_as_settled() -> None:
    alert = given_overdue(overdue("ob-1"), overdue("ob-2"), settle("ob-1"))
    events = when(alert, settle("ob-2", "obligation cancelled"))
    assert [type(e) for e in events] == [AlertSourceSettled, AlertClosed]


def test_a_settlement_redelivered_changes_nothing() -> None:
    open_ = given_overdue(overdue("ob-1"), overdue("ob-2"), settle("ob-1"))
    assert when(open_, settle("ob-1")) == []
    assert [type(e) for e in when(open_, settle("ob-2"))] == [AlertSourceSettled, AlertClosed]
    three = given_overdue(
        overdue("ob-1"), overdue("ob-2"), overdue("ob-3"), settle("ob-1"), settle("ob-1")
    )
    events = when(three, settle("ob-2"))  # counted once each: ob-3 is still owed
    assert [type(e) for e in events] == [AlertSourceSettled]
    assert isinstance(events[0], AlertSourceSettled)
    assert events[0].outstanding == 1
    closed = given_overdue(overdue("ob-1"), overdue("ob-2"), settle("ob-1"), settle("ob-2"))
    assert when(closed, settle("ob-1")) == []
    assert when(closed, settle("ob-2")) == []


def test_a_settlement_of_a_source_the_episode_did_not_count_changes_nothing() -> None:
    alert = given_overdue(overdue("ob-1"))
    assert when(alert, settle("ob-9")) == []  # met without ever being overdue
    assert when(alert, settle(ANY_SOURCE)) == []  # a settlement names its source
    assert when(Alert(OVERDUE), settle("ob-1")) == []  # no group at all
    # ob-1 counted on the first episode, acknowledged; ob-2 opened the second
    later = given_overdue(overdue("ob-1"), Acknowledge(OVERDUE, "wendy", None, T0), overdue("ob-2"))
    assert when(later, settle("ob-1")) == []
    assert [type(e) for e in when(later, settle("ob-2"))] == [AlertSourceSettled, AlertClosed]
