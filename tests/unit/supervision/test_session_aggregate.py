"""The SupervisionSession, ActionItem and Concern aggregates, and who may do what with a
session. Given events, when a command, then events or a refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casework.auth import Principal
from casework.contracts.supervision import (
    ActionItemOverdue,
    ActionItemSet,
    AgendaItem,
    AgendaItemKind,
    CaseReviewRecorded,
    ConcernEscalated,
    PracticeNoteRecorded,
    PracticeTopic,
    SessionKind,
    SupervisionAgendaPrepared,
    SupervisionRecordAcknowledged,
    SupervisionSessionCancelled,
    SupervisionSessionHeld,
    SupervisionSessionRescheduled,
)

from casework_supervision.domain.action_item import ActionItem
from casework_supervision.domain.concern import Concern
from casework_supervision.domain.errors import (
    ActionItemAlreadyDone,
    AgendaNotPrepared,
    CaseAlreadyReviewed,
    ConcernAlreadyResolved,
    NotTheWorker,
    SelfSupervision,
    SessionAlreadyExists,
    SessionNotOpen,
)
from casework_supervision.domain.session import SupervisionSession, staff_subject
from casework_supervision.domain.session_access import (
    SessionParties,
    reads_practice_notes,
    reads_session,
    runs_session,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ITEM = AgendaItem(
    item_id="crisis:c-1",
    kind=AgendaItemKind.CRISIS,
    case_id="c-1",
    reason="crisis open for 2 h",
    snapshot={"hours_open": 2},
)


def scheduled() -> SupervisionSession:
    session = SupervisionSession("s-1")
    session.schedule(
        worker_id="carl",
        supervisor_id="sue",
        site="north",
        kind=SessionKind.ONE_TO_ONE,
        planned_for=NOW + timedelta(days=1),
        scheduled_by="sue",
        now=NOW,
    )
    return SupervisionSession.rehydrate("s-1", session.pending_events)


def prepared() -> SupervisionSession:
    session = scheduled()
    session.prepare((ITEM,), "sue", NOW)
    return session


def review(session: SupervisionSession, case_id: str = "c-1") -> None:
    session.record_review(
        review_id=f"r-{case_id}",
        case_id=case_id,
        client_id="cl-1",
        risk_level="high",
        findings="f",
        decision="d",
        reasons="r",
        reviewed_by="sue",
        now=NOW,
    )


def test_a_session_is_scheduled_once_and_never_with_oneself() -> None:
    session = scheduled()
    with pytest.raises(SessionAlreadyExists):
        session.schedule(
            worker_id="carl",
            supervisor_id="sue",
            site=None,
            kind=SessionKind.REMOTE,
            planned_for=NOW,
            scheduled_by="sue",
            now=NOW,
        )
    with pytest.raises(SelfSupervision):
        SupervisionSession("s-2").schedule(
            worker_id="sue",
            supervisor_id="sue",
            site=None,
            kind=SessionKind.GROUP,
            planned_for=NOW,
            scheduled_by="sue",
            now=NOW,
        )


def test_nothing_is_recorded_before_the_agenda_is_prepared() -> None:
    session = scheduled()
    with pytest.raises(AgendaNotPrepared):
        review(session)
    with pytest.raises(AgendaNotPrepared):
        session.hold("sue", NOW)
    with pytest.raises(AgendaNotPrepared):
        session.require_recording()


def test_a_prepared_session_keeps_its_agenda_and_records_reviews_and_notes() -> None:
    session = prepared()
    review(session)
    with pytest.raises(CaseAlreadyReviewed):
        review(session)
    review(session, "c-2")
    session.record_practice_note(
        note_id="n-1", topic=PracticeTopic.WELLBEING, text="t", recorded_by="sue", now=NOW
    )
    session.record_practice_note(  # the same note again: nothing new
        note_id="n-1", topic=PracticeTopic.WELLBEING, text="t", recorded_by="sue", now=NOW
    )
    session.hold("sue", NOW)
    types = [type(e) for e in session.pending_events]
    assert types == [
        SupervisionAgendaPrepared,
        CaseReviewRecorded,
        CaseReviewRecorded,
        PracticeNoteRecorded,
        SupervisionSessionHeld,
    ]
    note = session.pending_events[3]
    assert isinstance(note, PracticeNoteRecorded)
    assert note.worker_subject == "staff:carl"
    held = session.pending_events[-1]
    assert isinstance(held, SupervisionSessionHeld)
    assert held.reviewed_case_ids == ("c-1", "c-2")
    assert held.site == "north"
    assert session.agenda == (ITEM,)


def test_a_held_record_is_closed_and_only_the_worker_acknowledges_it() -> None:
    session = prepared()
    session.hold("sue", NOW)
    with pytest.raises(SessionNotOpen):
        review(session, "c-3")
    with pytest.raises(SessionNotOpen):
        session.prepare((), "sue", NOW)
    with pytest.raises(SessionNotOpen):
        session.cancel(reason="x", cancelled_by="sue", now=NOW, rescheduled_as=None)
    with pytest.raises(NotTheWorker):
        session.acknowledge("sue", NOW)
    session.acknowledge("carl", NOW)
    session.acknowledge("carl", NOW)  # twice: once
    assert [type(e) for e in session.pending_events][-1] is SupervisionRecordAcknowledged
    assert sum(isinstance(e, SupervisionRecordAcknowledged) for e in session.pending_events) == 1


def test_only_a_held_session_is_acknowledged() -> None:
    with pytest.raises(SessionNotOpen):
        prepared().acknowledge("carl", NOW)


def test_a_session_still_to_be_held_is_rescheduled_or_cancelled_with_a_reason() -> None:
    session = scheduled()
    session.reschedule(NOW + timedelta(days=1), "sue", NOW)  # the same time: nothing
    session.reschedule(NOW + timedelta(days=3), "sue", NOW)
    session.cancel(reason="ill", cancelled_by="sue", now=NOW, rescheduled_as="s-2")
    [moved, cancelled] = session.pending_events
    assert isinstance(moved, SupervisionSessionRescheduled)
    assert moved.previous_planned_for == NOW + timedelta(days=1)
    assert isinstance(cancelled, SupervisionSessionCancelled)
    assert cancelled.rescheduled_as == "s-2"
    assert cancelled.worker_subject == "staff:carl"
    with pytest.raises(SessionNotOpen):
        session.reschedule(NOW + timedelta(days=4), "sue", NOW)


def test_staff_subjects_are_what_the_key_store_accepts() -> None:
    from casework.privacy.tokens import check_subject

    assert staff_subject("carl.w-1") == "staff:carl.w-1"
    odd = staff_subject("carl@agency.example")
    assert check_subject(odd) == odd
    assert odd == staff_subject("carl@agency.example")


# -- action items and concerns -------------------------------------------------------------------


def item_set(due: datetime) -> ActionItemSet:
    return ActionItemSet(
        action_item_id="a-1",
        session_id="s-1",
        worker_id="carl",
        supervisor_id="sue",
        owner_id="carl",
        site="north",
        subject_id="staff:carl",
        description="read the policy",
        due_at=due,
        set_by="sue",
        set_at=NOW,
    )


def test_an_action_item_is_overdue_once_never_early_never_when_done() -> None:
    due = NOW + timedelta(days=7)
    item = ActionItem.rehydrate("a-1", [item_set(due)])
    item.mark_overdue(due, due - timedelta(seconds=1))
    item.mark_overdue(due + timedelta(days=1), due + timedelta(days=1))  # not its due time
    assert item.pending_events == []
    item.mark_overdue(due, due)
    item.mark_overdue(due, due + timedelta(hours=1))
    assert [type(e) for e in item.pending_events] == [ActionItemOverdue]
    done = ActionItem.rehydrate("a-1", [item_set(due)])
    done.mark_done("carl", NOW)
    done.mark_overdue(due, due)
    assert len(done.pending_events) == 1
    with pytest.raises(ActionItemAlreadyDone):
        done.mark_done("carl", NOW)


def test_a_concern_is_resolved_once() -> None:
    concern = Concern.rehydrate(
        "k-1",
        [
            ConcernEscalated(
                concern_id="k-1",
                site="north",
                worker_id="carl",
                subject_id="staff:carl",
                summary="s",
                raised_by="sue",
                raised_at=NOW,
            )
        ],
    )
    concern.resolve("talked", "mo", NOW)
    with pytest.raises(ConcernAlreadyResolved):
        concern.resolve("again", "mo", NOW)


# -- who -------------------------------------------------------------------------------------


def who(sub: str, *roles: str, sites: tuple[str, ...] = ("north",)) -> Principal:
    return Principal(sub=sub, name=sub, roles=frozenset(roles), sites=frozenset(sites), team=None)


PARTIES = SessionParties(
    worker_id="carl",
    session_supervisor_id="sue",
    supervisors_now=("sue", "dee"),  # dee: sue's delegate today
    direct_supervisor_id="sue",
    sites=("north",),
)


@pytest.mark.parametrize(
    ("principal", "runs", "reads", "notes"),
    [
        (who("carl", "caseworker"), False, True, True),
        (who("sue", "supervisor"), True, True, True),
        (who("dee", "supervisor"), True, True, False),  # a delegate: not the practice notes
        (who("sam", "supervisor"), False, False, False),  # supervises someone else
        (who("mo", "site_manager"), False, True, False),
        (who("mo", "site_manager", sites=("south",)), False, False, False),
        (who("ra", "regional_admin"), False, True, False),
        (who("cw", "caseworker"), False, False, False),
        (who("sue", "caseworker"), False, False, False),  # the right person, not the role
    ],
)
def test_who_runs_reads_and_reads_the_practice_notes(
    principal: Principal, runs: bool, reads: bool, notes: bool
) -> None:
    assert runs_session(principal, PARTIES) is runs
    assert reads_session(principal, PARTIES) is reads
    assert reads_practice_notes(principal, PARTIES) is notes
