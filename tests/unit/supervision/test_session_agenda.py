"""Building a session's agenda: every kind of item, each with its reason and snapshot, in the
documented order; closed cases bring nothing; nothing of a client's data in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casework.contracts.supervision import AgendaItemKind

from casework_supervision.domain.agenda import (
    ActionView,
    AgendaInputs,
    ApprovalView,
    CaseView,
    ObligationView,
    ReviewView,
    build_agenda,
)

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def inputs() -> AgendaInputs:
    return AgendaInputs(
        at=AT,
        cases=(
            CaseView("c-crisis", "imminent", "active", AT - 30 * D, crisis_open_since=AT - 5 * H),
            CaseView("c-high", "high", "active", AT - 20 * D),
            CaseView("c-imm", "imminent", "planning", AT - 2 * D),
            CaseView("c-med", "medium", "active", AT - 60 * D),
            CaseView("c-closed", "imminent", "closed", AT - 90 * D),
        ),
        obligations=(
            ObligationView("c-med", "medium-weekly-3", "medium-weekly", AT - 2 * D, True, False),
            ObligationView("c-med", "medium-weekly-4", "medium-weekly", AT - D, True, False),
            ObligationView(
                "c-high", "crisis-follow-up-72h-2", "crisis-follow-up-72h", AT - 10 * H, True, True
            ),
            ObligationView(
                "c-high", "high-every-3-days-1", "high-every-3-days", AT + D, False, False
            ),
            ObligationView("c-closed", "x-1", "imminent-daily", AT - D, True, False),
        ),
        reviews=(
            ReviewView("c-med", AT - D, AT - 31 * D),
            ReviewView("c-high", AT + 3 * D, None),
            ReviewView("c-imm", AT + 20 * D, None),  # beyond the window
            ReviewView("c-closed", AT - D, None),
        ),
        approvals=(ApprovalView("c-imm:plan:1", "plan", "c-imm", AT - 26 * H),),
        actions=(
            ActionView("a-late", "carl", AT - D, "c-med", "s-0"),
            ActionView("a-open", "carl", AT + 5 * D, None, "s-0"),
        ),
    )


def test_every_kind_of_item_in_order_with_its_reason_and_snapshot() -> None:
    agenda = build_agenda(inputs())
    assert [(i.kind, i.case_id) for i in agenda] == [
        (AgendaItemKind.CRISIS, "c-crisis"),
        (AgendaItemKind.HIGH_RISK, "c-imm"),
        (AgendaItemKind.HIGH_RISK, "c-high"),
        (AgendaItemKind.MISSED_FOLLOW_UP, "c-high"),
        (AgendaItemKind.OVERDUE_CONTACTS, "c-med"),
        (AgendaItemKind.REVIEW_DUE, "c-med"),
        (AgendaItemKind.REVIEW_DUE, "c-high"),
        (AgendaItemKind.APPROVAL_PENDING, "c-imm"),
        (AgendaItemKind.ACTION_ITEM, "c-med"),
        (AgendaItemKind.ACTION_ITEM, None),
    ]
    by_id = {i.item_id: i for i in agenda}
    crisis = by_id["crisis:c-crisis"]
    assert crisis.snapshot["hours_open"] == 5
    assert "5 h" in crisis.reason
    follow_up = by_id["missed_follow_up:c-high:crisis-follow-up-72h-2"]
    assert follow_up.snapshot["hours_overdue"] == 10
    assert follow_up.snapshot["rule_id"] == "crisis-follow-up-72h"
    contacts = by_id["overdue_contacts:c-med"]
    assert contacts.snapshot["overdue"] == 2
    assert contacts.snapshot["oldest_due_at"] == (AT - 2 * D).isoformat()
    review = by_id["review_due:c-med"]
    assert review.snapshot["overdue"] is True
    assert "overdue" in review.reason
    assert by_id["review_due:c-high"].snapshot["overdue"] is False
    assert by_id["approval_pending:c-imm:plan:1"].snapshot["hours_waiting"] == 26
    assert by_id["action_item:a-late"].snapshot["overdue"] is True
    assert by_id["action_item:a-open"].snapshot["set_in_session"] == "s-0"


def test_a_closed_case_brings_nothing_and_an_empty_caseload_an_empty_agenda() -> None:
    agenda = build_agenda(inputs())
    assert all(i.case_id != "c-closed" for i in agenda)
    assert build_agenda(AgendaInputs(at=AT)) == ()


def test_the_agenda_is_the_same_from_the_same_figures() -> None:
    assert build_agenda(inputs()) == build_agenda(inputs())
    later = AgendaInputs(**{**inputs().__dict__, "at": AT + 2 * H})
    assert build_agenda(later) != build_agenda(inputs())  # the figures are of their moment


def test_the_review_window_is_configurable() -> None:
    agenda = build_agenda(inputs(), review_window=timedelta(days=30))
    assert "review_due:c-imm" in {i.item_id for i in agenda}
