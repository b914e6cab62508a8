"""The CaseObligations aggregate with a fake clock: given its past events, when a command at
a moment, then these events. Every step rehydrates the aggregate from all events so far, as
the repository does, so that `_apply` is tested with the decisions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from casework.clock import FixedClock
from casework.contracts.contacts import (
    ContactCounted,
    ContactDueSoon,
    ContactObligationCancelled,
    ContactObligationMet,
    ContactObligationOpened,
    ContactObligationRescheduled,
    ContactOverdue,
    Medium,
    Outcome,
)
from casework.events import DomainEvent

from casework_contacts.domain.obligations import (
    CaseFacts,
    CaseObligations,
    CaseTrigger,
    CountContact,
    MarkDueSoon,
    MarkOverdue,
    ObligationCommand,
    Replan,
    UncountContact,
)
from casework_contacts.domain.policy import DEFAULT_POLICY, ContactPolicy

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
POLICY = ContactPolicy.from_json(DEFAULT_POLICY).for_site("north")
HIGH = CaseFacts("c-1", "north", "active", "high", "carl", "t1")
OPENED = CaseTrigger("case_opened:1", "case_opened", T0)


@dataclass
class Story:
    """One case's obligations, driven by commands at the times a fake clock says."""

    clock: FixedClock = field(default_factory=lambda: FixedClock(T0))
    events: list[DomainEvent] = field(default_factory=list)

    def when(self, command: ObligationCommand) -> list[DomainEvent]:
        aggregate = CaseObligations.rehydrate("c-1", self.events)
        aggregate.handle(command, self.clock.now())
        new = aggregate.pending_events
        self.events.extend(new)
        return new

    def at(self, moment: datetime) -> Story:
        self.clock = FixedClock(moment)
        return self

    @property
    def state(self) -> CaseObligations:
        return CaseObligations.rehydrate("c-1", self.events)

    def open_rules(self) -> dict[str, datetime]:
        return {o.rule_id: o.due_at for o in self.state.open.values()}

    def obligation(self, rule_id: str) -> str:
        return next(o.obligation_id for o in self.state.open.values() if o.rule_id == rule_id)


def contact(
    contact_id: str,
    occurred_at: datetime,
    medium: Medium = Medium.HOME_VISIT,
    outcome: Outcome = Outcome.MADE,
    facts: CaseFacts = HIGH,
    with_client: bool = True,
) -> CountContact:
    return CountContact(facts, POLICY, contact_id, occurred_at, medium, outcome, with_client)


def kinds(events: list[DomainEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_opening_a_high_risk_case_opens_its_standing_rules_and_the_24h_first_contact() -> None:
    story = Story()
    events = story.when(Replan(HIGH, POLICY, OPENED))
    assert all(isinstance(e, ContactObligationOpened) for e in events)
    assert story.open_rules() == {
        "high-every-3-days": T0 + 3 * DAY,
        "high-weekly-face-to-face": T0 + 7 * DAY,
        "first-contact-24h": T0 + 24 * HOUR,
    }
    assert {e.rule_version for e in events if isinstance(e, ContactObligationOpened)} == {
        POLICY.version
    }


def test_replanning_with_nothing_changed_changes_nothing() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    assert story.when(Replan(HIGH, POLICY, OPENED)) == []  # a redelivered CaseOpened


def test_an_attempted_phone_call_meets_nothing_and_a_made_phone_call_not_the_visit_rule() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    story.at(T0 + HOUR)
    attempted = story.when(contact("k-1", T0 + HOUR, Medium.PHONE, Outcome.ATTEMPTED))
    assert attempted == [
        ContactCounted(
            case_id="c-1", contact_id="k-1", occurred_at=T0 + HOUR, medium=Medium.PHONE,
            outcome=Outcome.ATTEMPTED, with_client=True, counted_for=(),
        )
    ]  # fmt: skip
    made = story.when(contact("k-2", T0 + HOUR, Medium.PHONE))
    assert kinds(made) == [
        "ContactCounted",
        "ContactObligationMet",  # first contact
        "ContactObligationMet",  # every 3 days ...
        "ContactObligationOpened",  # ... and the next, 3 days after this call
    ]
    assert story.open_rules() == {
        "high-every-3-days": T0 + HOUR + 3 * DAY,
        "high-weekly-face-to-face": T0 + 7 * DAY,
    }


def test_a_made_home_visit_meets_the_face_to_face_rule() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    story.at(T0 + 2 * HOUR)
    events = story.when(contact("k-1", T0 + 2 * HOUR))
    met = {e.rule_id: e.on_time for e in events if isinstance(e, ContactObligationMet)}
    assert met == {
        "first-contact-24h": True,
        "high-every-3-days": True,
        "high-weekly-face-to-face": True,
    }
    assert story.open_rules() == {
        "high-every-3-days": T0 + 2 * HOUR + 3 * DAY,
        "high-weekly-face-to-face": T0 + 2 * HOUR + 7 * DAY,
    }


def test_a_text_counts_as_made_at_low_risk_but_not_at_high() -> None:
    low = replace(HIGH, risk="low")
    story = Story()
    story.when(Replan(low, POLICY))
    events = story.at(T0 + DAY).when(contact("k-1", T0 + DAY, Medium.TEXT_MESSAGE, facts=low))
    assert "ContactObligationMet" in kinds(events)
    story = Story()
    story.when(Replan(HIGH, POLICY))
    events = story.at(T0 + DAY).when(contact("k-1", T0 + DAY, Medium.TEXT_MESSAGE))
    assert kinds(events) == ["ContactCounted"]


def test_a_contact_with_family_only_does_not_meet_client_contact_obligations() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY))
    events = story.at(T0 + DAY).when(contact("k-1", T0 + DAY, with_client=False))
    assert kinds(events) == ["ContactCounted"]


def test_the_same_contact_is_counted_once() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY))
    story.at(T0 + DAY).when(contact("k-1", T0 + DAY))
    assert story.when(contact("k-1", T0 + DAY)) == []


def test_overdue_is_raised_once_at_or_after_the_due_time_and_never_for_a_met_one() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    first = story.obligation("first-contact-24h")
    due = T0 + 24 * HOUR
    assert story.at(due - timedelta(seconds=1)).when(MarkOverdue(HIGH, first, due)) == []
    raised = story.at(due + timedelta(minutes=5)).when(MarkOverdue(HIGH, first, due))
    assert len(raised) == 1
    overdue = raised[0]
    assert isinstance(overdue, ContactOverdue)
    assert (overdue.rule_id, overdue.overdue_seconds, overdue.risk_level, overdue.team) == (
        "first-contact-24h",
        300,
        "high",
        "t1",
    )
    assert overdue.trigger == "case_opened:1"  # the clock's trigger (OPENED)
    assert story.when(MarkOverdue(HIGH, first, due)) == []  # redelivered, or a second replica
    # a contact after the due time meets it late; an overdue for it then changes nothing
    events = story.at(due + HOUR).when(contact("k-1", due + HOUR))
    late = [e for e in events if isinstance(e, ContactObligationMet) and e.obligation_id == first]
    assert [e.on_time for e in late] == [False]
    assert story.when(MarkOverdue(HIGH, first, due)) == []


def test_an_overdue_for_another_due_time_or_a_closed_case_is_not_raised() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    first = story.obligation("first-contact-24h")
    due = T0 + 24 * HOUR
    story.at(due + HOUR)
    assert story.when(MarkOverdue(HIGH, first, due - HOUR)) == []  # a moved deadline
    assert story.when(MarkOverdue(replace(HIGH, phase="closed"), first, due)) == []


def test_due_soon_once_per_obligation() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    rule = story.obligation("high-weekly-face-to-face")
    due = T0 + 7 * DAY
    assert kinds(story.at(due - DAY).when(MarkDueSoon(HIGH, rule, due))) == ["ContactDueSoon"]
    assert story.when(MarkDueSoon(HIGH, rule, due)) == []
    assert isinstance(story.events[-1], ContactDueSoon)


def test_a_risk_change_replans_at_once_each_obligation_recording_its_rule_version() -> None:
    story = Story()
    medium = replace(HIGH, risk="medium")
    story.when(Replan(medium, POLICY, OPENED))
    assert story.open_rules() == {
        "medium-weekly": T0 + 7 * DAY,
        "first-contact-72h": T0 + 72 * HOUR,
    }
    events = story.at(T0 + 6 * HOUR).when(Replan(HIGH, POLICY))
    cancelled = {e.rule_id for e in events if isinstance(e, ContactObligationCancelled)}
    assert cancelled == {"medium-weekly", "first-contact-72h"}
    assert story.open_rules() == {
        "first-contact-24h": T0 + 24 * HOUR,  # the clock runs from the opening, at high risk
        "high-every-3-days": T0 + 6 * HOUR + 3 * DAY,  # a full window from the change
        "high-weekly-face-to-face": T0 + 6 * HOUR + 7 * DAY,
    }


def test_closing_cancels_everything_and_a_closed_case_starts_no_clock() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    closed = replace(HIGH, phase="closed")
    events = story.at(T0 + DAY).when(Replan(closed, POLICY))
    assert kinds(events) == ["ContactObligationCancelled"] * 3
    assert story.state.open == {}
    discharge = CaseTrigger("inpatient_discharge:a-1", "inpatient_discharge", T0 + DAY)
    assert story.when(Replan(closed, POLICY, discharge)) == []


def test_reopening_starts_a_new_first_contact_clock() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    story.at(T0 + DAY).when(Replan(replace(HIGH, phase="closed"), POLICY))
    reopened = CaseTrigger("case_opened:9", "case_opened", T0 + 2 * DAY)
    story.at(T0 + 2 * DAY).when(Replan(replace(HIGH, phase="assessment"), POLICY, reopened))
    assert story.open_rules()["first-contact-24h"] == T0 + 3 * DAY


def test_crisis_and_discharge_follow_ups_are_due_72_hours_after_their_event() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY))
    resolved = CaseTrigger("crisis_resolved:k-1", "crisis_resolved", T0 + DAY)
    story.at(T0 + DAY).when(Replan(HIGH, POLICY, resolved))
    discharged = CaseTrigger("inpatient_discharge:a-1", "inpatient_discharge", T0 + 2 * DAY)
    story.at(T0 + 2 * DAY).when(Replan(HIGH, POLICY, discharged))
    rules = story.open_rules()
    assert rules["crisis-follow-up-72h"] == T0 + 4 * DAY
    assert rules["discharge-follow-up-72h"] == T0 + 5 * DAY
    # a contact before the discharge does not meet its follow-up; one after does
    story.at(T0 + 2 * DAY + HOUR)
    story.when(contact("before", T0 + 2 * DAY - HOUR, Medium.PHONE))
    assert "discharge-follow-up-72h" in story.open_rules()
    story.when(contact("after", T0 + 2 * DAY + HOUR, Medium.PHONE))
    assert "discharge-follow-up-72h" not in story.open_rules()


def test_a_missed_follow_up_names_the_clock_that_started_it() -> None:
    """Notifications tell a missed follow-up from a routine overdue contact by the trigger."""
    story = Story()
    story.when(Replan(HIGH, POLICY))
    resolved = CaseTrigger("crisis_resolved:k-1", "crisis_resolved", T0 + DAY)
    story.at(T0 + DAY).when(Replan(HIGH, POLICY, resolved))
    follow_up = story.obligation("crisis-follow-up-72h")
    overdue = story.at(T0 + 4 * DAY + HOUR).when(MarkOverdue(HIGH, follow_up, T0 + 4 * DAY))
    assert [(type(e).__name__, getattr(e, "trigger", None)) for e in overdue] == [
        ("ContactOverdue", "crisis_resolved:k-1")
    ]


def test_a_contact_counted_before_its_trigger_arrived_meets_the_clock_at_once() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY))
    story.at(T0 + 3 * HOUR).when(contact("k-1", T0 + 2 * HOUR, Medium.PHONE))
    resolved = CaseTrigger("crisis_resolved:k-1", "crisis_resolved", T0 + HOUR)
    events = story.when(Replan(HIGH, POLICY, resolved))
    assert kinds(events) == ["ContactObligationOpened", "ContactObligationMet"]


def test_k_contacts_per_rolling_window() -> None:
    twice = ContactPolicy.from_json(
        {
            **DEFAULT_POLICY,
            "sites": {
                "north": {
                    "version": "n1",
                    "rules": [
                        {"rule_id": "medium-weekly", "risks": ["medium"], "window": "P7D",
                         "contacts": 2}
                    ],
                }
            },
        }
    ).for_site("north")  # fmt: skip
    medium = replace(HIGH, risk="medium")
    story = Story()
    story.when(Replan(medium, twice))
    assert story.open_rules() == {"medium-weekly": T0 + 7 * DAY}

    def count(contact_id: str, at: datetime) -> list[str]:
        cmd = CountContact(medium, twice, contact_id, at, Medium.PHONE, Outcome.MADE, True)
        return kinds(story.at(at).when(cmd))

    assert count("k-1", T0 + DAY) == ["ContactCounted"]  # one of two: still due at T0 + 7d
    assert count("k-2", T0 + 3 * DAY) == [
        "ContactCounted",
        "ContactObligationMet",
        "ContactObligationOpened",
    ]
    assert story.open_rules() == {"medium-weekly": T0 + DAY + 7 * DAY}  # k-1 leaves the window
    count("k-3", T0 + 5 * DAY)
    assert story.open_rules() == {"medium-weekly": T0 + 3 * DAY + 7 * DAY}


def test_a_clock_already_overdue_is_not_replaced_when_the_risk_changes() -> None:
    story = Story()
    medium = replace(HIGH, risk="medium")
    story.when(Replan(medium, POLICY, OPENED))
    first = story.obligation("first-contact-72h")
    due = T0 + 72 * HOUR
    story.at(due + HOUR).when(MarkOverdue(medium, first, due))
    events = story.when(Replan(HIGH, POLICY))
    assert "first-contact-72h" in story.open_rules()
    assert "first-contact-24h" not in story.open_rules()
    assert not any(isinstance(e, ContactOverdue) for e in events)


def test_a_struck_through_contact_no_longer_counts_and_what_it_met_is_owed_again() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    story.at(T0 + 2 * HOUR).when(contact("k-1", T0 + 2 * HOUR))
    assert "first-contact-24h" not in story.open_rules()
    events = story.at(T0 + 3 * HOUR).when(UncountContact(HIGH, POLICY, "k-1"))
    assert kinds(events) == [
        "ContactUncounted",
        "ContactObligationRescheduled",
        "ContactObligationRescheduled",
        "ContactObligationOpened",
    ]
    moved = {e.rule_id: e.due_at for e in events if isinstance(e, ContactObligationRescheduled)}
    assert moved == {  # back to a window from when the rules began to apply
        "high-every-3-days": T0 + 3 * DAY,
        "high-weekly-face-to-face": T0 + 7 * DAY,
    }
    assert story.open_rules() == {
        "high-every-3-days": T0 + 3 * DAY,
        "high-weekly-face-to-face": T0 + 7 * DAY,
        "first-contact-24h": T0 + 24 * HOUR,  # owed again, from the opening
    }
    assert story.when(UncountContact(HIGH, POLICY, "k-1")) == []
    assert story.when(contact("k-1", T0 + 2 * HOUR)) == []  # a redelivered log counts no more
    # the overdue of a rescheduled obligation is decided on its new due time
    three_days = story.obligation("high-every-3-days")
    late = story.at(T0 + 3 * DAY + HOUR).when(MarkOverdue(HIGH, three_days, T0 + 3 * DAY))
    assert kinds(late) == ["ContactOverdue"]


def test_a_clock_owed_again_is_met_at_once_by_another_counted_contact() -> None:
    story = Story()
    story.when(Replan(HIGH, POLICY, OPENED))
    story.at(T0 + 2 * HOUR).when(contact("k-1", T0 + HOUR, Medium.PHONE))
    story.when(contact("k-2", T0 + 2 * HOUR, Medium.PHONE))
    events = story.when(UncountContact(HIGH, POLICY, "k-1"))
    assert kinds(events)[-2:] == ["ContactObligationOpened", "ContactObligationMet"]
    assert "first-contact-24h" not in story.open_rules()
