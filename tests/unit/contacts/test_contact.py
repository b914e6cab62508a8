"""The Contact aggregate: scheduled, logged (made or attempted), missed, cancelled, corrected;
a home visit's lone-worker check-in, check-out and overdue. Given events, when a command,
then events or a refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casework.contracts.contacts import (
    AttemptReason,
    CancelReason,
    ContactLogged,
    CorrectionKind,
    LoneWorkerOverdue,
    Medium,
    MissReason,
    Outcome,
    Participant,
    ParticipantKind,
)
from casework.events import DomainEvent

from casework_contacts.domain.commands import (
    CancelContact,
    CaseRef,
    CheckIn,
    CheckOut,
    ContactCommand,
    CorrectContact,
    LogContact,
    MarkMissed,
    RaiseLoneWorkerOverdue,
    ScheduleContact,
)
from casework_contacts.domain.contact import Contact
from casework_contacts.domain.errors import (
    AlreadyStruckThrough,
    ContactAlreadyExists,
    ContactError,
    ContactNotLogged,
    ContactNotScheduled,
    InvalidContact,
    LoneWorkerStateConflict,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CASE = CaseRef("c-1", "cl-1", "north")
CLIENT = (Participant(kind=ParticipantKind.CLIENT),)
GRACE = timedelta(minutes=15)

SCHEDULE = ScheduleContact(
    "k-1", CASE, Medium.HOME_VISIT, CLIENT, NOW + timedelta(days=1), "carl", "carl"
)
LOG_MADE = LogContact("k-1", CASE, Medium.HOME_VISIT, NOW, CLIENT, Outcome.MADE, "carl")


def given(*commands: tuple[ContactCommand, datetime]) -> list[DomainEvent]:
    contact = Contact("k-1")
    for command, at in commands:
        contact.handle(command, at)
    return contact.pending_events


def when(history: list[DomainEvent], command: ContactCommand, at: datetime = NOW) -> Contact:
    contact = Contact.rehydrate("k-1", history)
    contact.handle(command, at)
    return contact


SCHEDULED = given((SCHEDULE, NOW))
LOGGED = given((LOG_MADE, NOW))


def test_logging_a_scheduled_contact_completes_it() -> None:
    contact = when(SCHEDULED, LOG_MADE)
    [logged] = contact.pending_events
    assert isinstance(logged, ContactLogged)
    assert logged.was_scheduled
    assert (logged.case_id, logged.client_id, logged.site) == ("c-1", "cl-1", "north")
    assert contact.status == "logged"


def test_an_unscheduled_contact_is_logged_too() -> None:
    [logged] = LOGGED
    assert isinstance(logged, ContactLogged)
    assert not logged.was_scheduled


def test_a_contact_is_never_logged_in_the_future() -> None:
    future = LogContact(
        "k-1", CASE, Medium.PHONE, NOW + timedelta(minutes=1), CLIENT, Outcome.MADE, "carl"
    )
    with pytest.raises(InvalidContact) as refused:
        when([], future)
    assert refused.value.field == "body.occurred_at"


def test_an_attempt_says_why_and_a_made_contact_does_not() -> None:
    attempt = LogContact("k-1", CASE, Medium.PHONE, NOW, CLIENT, Outcome.ATTEMPTED, "carl")
    with pytest.raises(InvalidContact):
        when([], attempt)
    ok = LogContact(
        "k-1", CASE, Medium.PHONE, NOW, CLIENT, Outcome.ATTEMPTED, "carl",
        attempt_reason=AttemptReason.VOICEMAIL,
    )  # fmt: skip
    assert when([], ok).outcome == "attempted"
    made_with_reason = LogContact(
        "k-1", CASE, Medium.PHONE, NOW, CLIENT, Outcome.MADE, "carl",
        attempt_reason=AttemptReason.NO_ANSWER,
    )  # fmt: skip
    with pytest.raises(InvalidContact):
        when([], made_with_reason)


def test_a_contact_is_scheduled_for_the_future_and_once() -> None:
    with pytest.raises(InvalidContact):
        when([], ScheduleContact("k-1", CASE, Medium.PHONE, CLIENT, NOW - timedelta(hours=1),
                                 "carl", "carl"))  # fmt: skip
    with pytest.raises(ContactAlreadyExists):
        when(SCHEDULED, SCHEDULE)


@pytest.mark.parametrize(
    "command",
    [MarkMissed("k-1", MissReason.NO_SHOW, "carl"), CancelContact("k-1", CancelReason.OTHER,
                                                                  "carl")],
)  # fmt: skip
def test_missed_and_cancelled_only_while_scheduled(command: ContactCommand) -> None:
    done = when(SCHEDULED, command)
    assert done.status in {"missed", "cancelled"}
    with pytest.raises(ContactNotScheduled):
        when(SCHEDULED + done.pending_events, command)
    with pytest.raises(ContactNotScheduled):
        when(LOGGED, command)
    with pytest.raises(ContactNotScheduled):
        when(SCHEDULED + done.pending_events, LOG_MADE)


def test_a_logged_contact_is_corrected_never_edited_away() -> None:
    addendum = CorrectContact("k-1", "x-1", CorrectionKind.ADDENDUM, "Sister present", "carl")
    added = when(LOGGED, addendum)
    strike = CorrectContact("k-1", "x-2", CorrectionKind.STRUCK_THROUGH, "Wrong client", "carl")
    struck = when(LOGGED + added.pending_events, strike)
    assert struck.struck_through
    assert struck.correction_ids == ["x-1", "x-2"]
    history = LOGGED + added.pending_events + struck.pending_events
    with pytest.raises(AlreadyStruckThrough):
        when(history, CorrectContact("k-1", "x-3", CorrectionKind.STRUCK_THROUGH, "!", "carl"))
    with pytest.raises(ContactError):
        when(history, addendum)  # the id is taken
    with pytest.raises(ContactNotLogged):
        when(SCHEDULED, addendum)


def test_lone_worker_check_in_out_and_overdue_once() -> None:
    check_in = CheckIn("k-1", "carl", 60, GRACE)
    visit = when(SCHEDULED, check_in)
    due_back = NOW + timedelta(minutes=75)
    assert visit.visit is not None
    assert visit.visit.due_back_at == due_back
    history = SCHEDULED + visit.pending_events
    raise_it = RaiseLoneWorkerOverdue("k-1", due_back, "t1")
    assert when(history, raise_it, due_back - timedelta(seconds=1)).pending_events == []
    overdue = when(history, raise_it, due_back + timedelta(seconds=3)).pending_events
    assert len(overdue) == 1
    assert isinstance(overdue[0], LoneWorkerOverdue)
    assert when(history + overdue, raise_it, due_back + timedelta(minutes=5)).pending_events == []
    checked_out = when(history, CheckOut("k-1", "carl"), NOW + timedelta(minutes=50))
    safe = history + checked_out.pending_events
    assert when(safe, raise_it, due_back + timedelta(minutes=1)).pending_events == []
    with pytest.raises(LoneWorkerStateConflict):
        when(safe, CheckOut("k-1", "carl"))
    with pytest.raises(LoneWorkerStateConflict):
        when(history, check_in)


def test_check_in_is_for_home_visits() -> None:
    phone = given(
        (ScheduleContact("k-1", CASE, Medium.PHONE, CLIENT, NOW + timedelta(hours=1), "carl",
                         "carl"), NOW)
    )  # fmt: skip
    with pytest.raises(LoneWorkerStateConflict):
        when(phone, CheckIn("k-1", "carl", 30, GRACE))
