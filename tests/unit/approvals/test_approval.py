"""The Approval aggregate, given-when-then: given these past events, when this command, then
these new events (or this refusal).

requested → granted | returned | withdrawn; immutable once decided; four eyes; who decides
(the worker's supervisor, or their delegate then, recorded as deciding for the supervisor;
without a supervisor in the directory, a supervisor of the case's site and team); overdue once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from casework.contracts.supervision import (
    ApprovalGranted,
    ApprovalOverdue,
    ApprovalRequested,
    ApprovalReturned,
    ApprovalWithdrawn,
)
from casework.events import DomainEvent

from casework_supervision.domain.approval import Approval
from casework_supervision.domain.approval_commands import (
    GrantApproval,
    MarkApprovalOverdue,
    RequestApproval,
    ReturnApproval,
    WithdrawApproval,
)
from casework_supervision.domain.approval_rules import (
    ApprovalStatus,
    Authority,
    DuePolicy,
    closure_approval_id,
    is_site_supervisor,
    plan_approval_id,
)
from casework_supervision.domain.errors import (
    ApprovalAlreadyDecided,
    NotAnApprover,
    ReasonRequired,
    SelfApprovalNotAllowed,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=2)
ID = plan_approval_id("c-1", 2)
REQUEST = RequestApproval(
    approval_id=ID,
    kind="plan",
    case_id="c-1",
    site="north",
    team="t1",
    caseworker_id="carl",
    subject_version=2,
    subject_id=None,
    requested_by="carl",
    requested_at=T0,
    due_at=T0 + timedelta(hours=72),
    client_id="cl-1",
)
SUE = Authority(supervisors=("sue",))  # carl's supervisor, no delegation now
SUE_AWAY = Authority(supervisors=("sue", "dan"))  # sue delegates to dan now
NOBODY = Authority()  # carl has no supervisor in the directory


def requested() -> ApprovalRequested:
    approval = Approval(ID)
    approval.request(REQUEST)
    event = approval.pending_events[0]
    assert isinstance(event, ApprovalRequested)
    return event


def given(*history: DomainEvent) -> Approval:
    return Approval.rehydrate(ID, history)


def when(approval: Approval, act: Callable[[Approval], object]) -> list[DomainEvent]:
    act(approval)
    return approval.pending_events


def granted(by: str = "sue") -> ApprovalGranted:
    return ApprovalGranted(
        approval_id=ID, kind="plan", case_id="c-1", subject_version=2, decided_by=by,
        decided_at=LATER,
    )  # fmt: skip


def grant(by: str, authority: Authority, comment: str | None = None) -> Callable[[Approval], None]:
    return lambda a: a.grant(GrantApproval(ID, by, authority, comment), LATER)


def return_(by: str, authority: Authority, reason: str = "why") -> Callable[[Approval], None]:
    return lambda a: a.return_(ReturnApproval(ID, by, authority, reason), LATER)


def test_a_request_opens_it_and_a_redelivered_request_changes_nothing() -> None:
    (event,) = when(given(), lambda a: a.request(REQUEST))
    assert isinstance(event, ApprovalRequested)
    assert (event.approval_id, event.kind, event.subject_version) == (ID, "plan", 2)
    assert when(given(event), lambda a: a.request(REQUEST)) == []
    assert when(given(event, granted()), lambda a: a.request(REQUEST)) == []


def test_the_supervisor_grants_it_for_the_version_requested() -> None:
    approval = given(requested())
    (event,) = when(approval, grant("sue", SUE, "Good"))
    assert isinstance(event, ApprovalGranted)
    assert (event.decided_by, event.on_behalf_of, event.comment) == ("sue", None, "Good")
    assert (event.kind, event.case_id, event.subject_version) == ("plan", "c-1", 2)
    assert event.requested_at == T0
    assert approval.status is ApprovalStatus.GRANTED


def test_a_delegate_decides_for_the_supervisor_and_it_says_so() -> None:
    (event,) = when(given(requested()), return_("dan", SUE_AWAY, "Add a review date"))
    assert isinstance(event, ApprovalReturned)
    assert (event.decided_by, event.on_behalf_of, event.reason) == (
        "dan",
        "sue",
        "Add a review date",
    )
    # the supervisor may still decide while delegating
    (event,) = when(given(requested()), grant("sue", SUE_AWAY))
    assert isinstance(event, ApprovalGranted)
    assert event.on_behalf_of is None


@pytest.mark.parametrize(
    ("by", "authority", "refusal"),
    [
        ("carl", SUE, SelfApprovalNotAllowed),  # four eyes, even for a supervisor
        ("carl", Authority(site_supervisor=True), SelfApprovalNotAllowed),
        ("sid", SUE, NotAnApprover),  # another supervisor, while carl has one
        ("sid", Authority(supervisors=("sue",), site_supervisor=True), NotAnApprover),
        ("dan", SUE, NotAnApprover),  # the delegation ended
        ("sid", NOBODY, NotAnApprover),  # no supervisor: only a site-and-team supervisor
    ],
)
def test_who_may_not_decide(by: str, authority: Authority, refusal: type[Exception]) -> None:
    for decide in (grant(by, authority), return_(by, authority)):
        approval = given(requested())
        with pytest.raises(refusal):
            decide(approval)
        assert approval.pending_events == []
        assert approval.status is ApprovalStatus.REQUESTED


def test_without_a_supervisor_in_the_directory_a_site_and_team_supervisor_decides() -> None:
    (event,) = when(given(requested()), grant("sid", Authority(site_supervisor=True)))
    assert isinstance(event, ApprovalGranted)
    assert event.on_behalf_of is None


def test_when_the_supervisor_asked_for_it_their_delegate_or_the_site_decides() -> None:
    asked_by_sue = given(requested().model_copy(update={"requested_by": "sue"}))
    with pytest.raises(SelfApprovalNotAllowed):
        grant("sue", SUE_AWAY)(asked_by_sue)
    (event,) = when(asked_by_sue, grant("dan", SUE_AWAY))
    assert isinstance(event, ApprovalGranted)
    assert event.on_behalf_of == "sue"
    alone = given(requested().model_copy(update={"requested_by": "sue"}))
    (event,) = when(alone, grant("sid", Authority(supervisors=("sue",), site_supervisor=True)))
    assert event.decided_by == "sid"  # type: ignore[attr-defined]


def test_a_return_needs_a_reason() -> None:
    approval = given(requested())
    with pytest.raises(ReasonRequired):
        return_("sue", SUE, "   ")(approval)
    assert approval.pending_events == []


def withdrawn() -> ApprovalWithdrawn:
    return ApprovalWithdrawn(
        approval_id=ID, kind="plan", case_id="c-1", reason="superseded", withdrawn_at=LATER
    )


def returned() -> ApprovalReturned:
    return ApprovalReturned(
        approval_id=ID, kind="plan", case_id="c-1", subject_version=2, reason="r",
        decided_by="sue", decided_at=LATER,
    )  # fmt: skip


@pytest.mark.parametrize("decided", [granted, returned, withdrawn], ids=lambda f: f.__name__)
def test_a_decided_approval_never_changes(decided: Callable[[], DomainEvent]) -> None:
    for decide in (grant("sue", SUE), return_("sue", SUE), grant("dan", SUE_AWAY)):
        approval = given(requested(), decided())
        with pytest.raises(ApprovalAlreadyDecided):
            decide(approval)
        assert approval.pending_events == []
    approval = given(requested(), decided())
    assert approval.withdraw(WithdrawApproval(ID, "case_closed"), LATER) is False
    overdue = MarkApprovalOverdue(ID, REQUEST.due_at, ("sue",))
    assert approval.mark_overdue(overdue, REQUEST.due_at + timedelta(hours=1)) is False
    assert approval.pending_events == []


def test_a_waiting_approval_is_withdrawn_once() -> None:
    (event,) = when(given(requested()), lambda a: a.withdraw(WithdrawApproval(ID, "x"), LATER))
    assert isinstance(event, ApprovalWithdrawn)
    assert (
        when(given(requested(), event), lambda a: a.withdraw(WithdrawApproval(ID, "x"), LATER))
        == []
    )
    assert when(given(), lambda a: a.withdraw(WithdrawApproval(ID, "x"), LATER)) == []


def test_overdue_is_raised_once_at_or_after_its_due_time() -> None:
    due = REQUEST.due_at
    cmd = MarkApprovalOverdue(ID, due, ("sue", "dan"))
    assert when(given(requested()), lambda a: a.mark_overdue(cmd, due - timedelta(seconds=1))) == []
    # a deadline for another due time (a stale one) does nothing
    stale = replace(cmd, due_at=due - timedelta(hours=1))
    assert when(given(requested()), lambda a: a.mark_overdue(stale, due)) == []
    (event,) = when(given(requested()), lambda a: a.mark_overdue(cmd, due))
    assert isinstance(event, ApprovalOverdue)
    assert (event.approver_ids, event.due_at, event.raised_at) == (("sue", "dan"), due, due)
    assert (event.site, event.team, event.requested_at) == ("north", "t1", T0)
    assert when(given(requested(), event), lambda a: a.mark_overdue(cmd, due)) == []
    # still decidable once overdue
    (decided,) = when(given(requested(), event), grant("sue", SUE))
    assert isinstance(decided, ApprovalGranted)


def test_due_times_and_ids() -> None:
    policy = DuePolicy()
    assert policy.due_at(T0, "medium") == T0 + timedelta(hours=72)
    assert policy.due_at(T0, None) == T0 + timedelta(hours=72)
    assert policy.due_at(T0, "high") == T0 + timedelta(hours=24)
    assert policy.due_at(T0, "imminent") == T0 + timedelta(hours=24)
    assert DuePolicy(due=timedelta(hours=5)).due_at(T0, "low") == T0 + timedelta(hours=5)
    assert closure_approval_id("c-1", 9) == "c-1:closure:9"
    assert "." not in ID
    assert not ID.startswith("$")


def test_a_site_and_team_supervisor() -> None:
    roles, sites = frozenset({"supervisor"}), frozenset({"north"})
    assert is_site_supervisor(roles, sites, "t1", "north", "t1")
    assert is_site_supervisor(roles, sites, "t2", "north", None)  # a case with no team yet
    assert not is_site_supervisor(roles, sites, "t2", "north", "t1")
    assert not is_site_supervisor(roles, sites, "t1", "south", "t1")
    assert not is_site_supervisor(frozenset({"site_manager"}), sites, "t1", "north", "t1")
