"""The Case aggregate's rules beyond the phase table: given these events, when this command,
then these events (with these values) or this refusal."""

from __future__ import annotations

from dataclasses import replace

import pytest
from unit.cases.case_fixtures import (
    ACCEPT_TRANSFER,
    APPROVE_CLOSURE,
    APPROVE_PLAN,
    ASSESS,
    ASSIGN,
    CARL,
    CLOSED,
    CLOSURE_REQUESTED,
    CLOSURE_RETURNED,
    CRISIS,
    CRISIS_RESOLVED,
    DECLARE,
    GOAL,
    GOAL_2,
    IN_ACTIVE,
    IN_ASSESSMENT,
    IN_PLANNING,
    IN_REVIEW,
    NOTE,
    NOTE_2,
    NOW,
    OPEN,
    OPENED,
    PROGRESS,
    PROPOSE,
    RAISE_RISK,
    REJECT_TRANSFER,
    REOPEN,
    REOPENED,
    REQUEST_CLOSURE,
    REQUEST_TRANSFER,
    RESOLVE,
    RETURN_CLOSURE,
    RETURN_PLAN,
    SUE,
    TRANSFER_ACCEPTED,
    TRANSFER_REJECTED,
    TRANSFER_REQUESTED,
    VISITS,
    C,
    given,
    proposed,
    returned,
    when,
)

from casework.contracts.cases import (
    CaseNoteRecorded,
    CaseOpened,
    CasePlanProposed,
    CaseworkerAssigned,
    CrisisDeclared,
    Goal,
    GoalProgressRecorded,
    Intervention,
    RiskLevelChanged,
)
from casework.contracts.common import RiskLevel
from casework.events import DomainEvent

from casework_cases.domain.case import Phase, PlanStatus
from casework_cases.domain.commands import CaseCommand
from casework_cases.domain.errors import (
    AlreadyAssigned,
    CaseError,
    CaseworkerChanged,
    CrisisAlreadyOpen,
    CrisisStillOpen,
    GoalNotInPlan,
    IdAlreadyUsed,
    InvalidPlan,
    NoOpenCrisis,
    NoPendingTransfer,
    NoPlanAwaitingApproval,
    NoteNotFound,
    PlanAwaitingApproval,
    PlanNotApproved,
    RiskLevelUnchanged,
    SelfApprovalNotAllowed,
    TransferPending,
    TransferToSameSite,
    WrongPhase,
)

# -- refusals: (given, command) → error -----------------------------------------------------

REFUSALS: list[tuple[str, tuple[DomainEvent, ...], CaseCommand, type[CaseError]]] = [
    ("assign the same worker and team", IN_ASSESSMENT, replace(ASSIGN, caseworker_id=CARL),
     AlreadyAssigned),
    ("move a case no longer with the worker", IN_ASSESSMENT,
     replace(ASSIGN, expected_caseworker_id="someone-else"), CaseworkerChanged),
    ("second transfer while one is pending", (*IN_ACTIVE, TRANSFER_REQUESTED),
     replace(REQUEST_TRANSFER, to_site="east"), TransferPending),
    ("transfer to the case's own site", IN_ACTIVE, replace(REQUEST_TRANSFER, to_site="north"),
     TransferToSameSite),
    ("accept a transfer already rejected", (*IN_ACTIVE, TRANSFER_REQUESTED, TRANSFER_REJECTED),
     ACCEPT_TRANSFER, NoPendingTransfer),
    ("reject a transfer already accepted", (*IN_ACTIVE, TRANSFER_REQUESTED, TRANSFER_ACCEPTED),
     REJECT_TRANSFER, NoPendingTransfer),
    ("plan with no goals", (*IN_ASSESSMENT, *IN_PLANNING[2:3]),
     replace(PROPOSE, goals=(), interventions=()), InvalidPlan),
    ("plan with two goals of one id", IN_ACTIVE, replace(PROPOSE, goals=(GOAL, GOAL)),
     InvalidPlan),
    ("intervention serving a goal the plan lacks", IN_ACTIVE,
     replace(PROPOSE, goals=(GOAL_2,), interventions=(VISITS,)), InvalidPlan),
    ("two interventions of one id", IN_ACTIVE,
     replace(PROPOSE, interventions=(VISITS, VISITS)), InvalidPlan),
    ("approve one's own plan", IN_PLANNING, replace(APPROVE_PLAN, approved_by=CARL),
     SelfApprovalNotAllowed),
    ("return one's own plan", IN_PLANNING, replace(RETURN_PLAN, returned_by=CARL),
     SelfApprovalNotAllowed),
    ("approve a plan already returned", (*IN_PLANNING, returned(1)), APPROVE_PLAN,
     NoPlanAwaitingApproval),
    ("progress on a goal not in the plan", IN_ACTIVE, replace(PROGRESS, goal_id="g-9"),
     GoalNotInPlan),
    ("progress on a goal only in the revision awaiting approval",
     (*IN_ACTIVE, proposed(2, GOAL, GOAL_2)), replace(PROGRESS, goal_id="g-2"), GoalNotInPlan),
    ("change risk to the level it is at", IN_ACTIVE,
     replace(RAISE_RISK, risk_level=RiskLevel.MEDIUM), RiskLevelUnchanged),
    ("second crisis while one is open", (*IN_ACTIVE, CRISIS), DECLARE, CrisisAlreadyOpen),
    ("reuse a resolved crisis's id", (*IN_ACTIVE, CRISIS, CRISIS_RESOLVED),
     replace(DECLARE, crisis_id="k-1"), IdAlreadyUsed),
    ("resolve a crisis twice", (*IN_ACTIVE, CRISIS, CRISIS_RESOLVED), RESOLVE, NoOpenCrisis),
    ("reuse a note id", (*IN_ACTIVE, NOTE), replace(NOTE_2, note_id="n-1"), IdAlreadyUsed),
    ("addendum to a note that does not exist", (*IN_ACTIVE, NOTE),
     replace(NOTE_2, addendum_to="n-9"), NoteNotFound),
    ("closure while a crisis is open", (*IN_ACTIVE, CRISIS), REQUEST_CLOSURE, CrisisStillOpen),
    ("closure while a transfer is pending", (*IN_ACTIVE, TRANSFER_REQUESTED), REQUEST_CLOSURE,
     TransferPending),
    ("closure while a plan revision awaits approval", (*IN_ACTIVE, proposed(2)),
     REQUEST_CLOSURE, PlanAwaitingApproval),
    ("approve one's own closure request", IN_REVIEW, replace(APPROVE_CLOSURE, approved_by=CARL),
     SelfApprovalNotAllowed),
    ("return one's own closure request", IN_REVIEW, replace(RETURN_CLOSURE, returned_by=CARL),
     SelfApprovalNotAllowed),
    ("close while a crisis declared in review is open", (*IN_REVIEW, CRISIS), APPROVE_CLOSURE,
     CrisisStillOpen),
    ("progress on the old plan after reopening", (*IN_REVIEW, CLOSED, REOPENED), PROGRESS,
     PlanNotApproved),
    ("transfer while closure is under review", IN_REVIEW, REQUEST_TRANSFER, WrongPhase),
]  # fmt: skip


@pytest.mark.parametrize(
    ("history", "command", "error"), [pytest.param(*r[1:], id=r[0]) for r in REFUSALS]
)
def test_refusals(
    history: tuple[DomainEvent, ...], command: CaseCommand, error: type[CaseError]
) -> None:
    case = given(history)
    with pytest.raises(error):
        when(case, command)
    assert case.pending_events == []


# -- what legal commands record -------------------------------------------------------------


def test_an_imminent_referral_opens_the_case_in_crisis_in_the_same_commit() -> None:
    case = given()
    events = when(case, replace(OPEN, risk_level=RiskLevel.IMMINENT))
    assert [type(e) for e in events] == [CaseOpened, CrisisDeclared]
    crisis = events[1]
    assert isinstance(crisis, CrisisDeclared)
    assert (crisis.crisis_id, crisis.declared_by, crisis.site) == ("k-0", "ivy", "north")
    assert crisis.risk_level is RiskLevel.IMMINENT
    assert "r-1" in crisis.summary
    assert case.crisis is not None
    assert case.phase is Phase.ASSESSMENT


@pytest.mark.parametrize("level", [None, RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH])
def test_other_referrals_open_the_case_without_a_crisis(level: RiskLevel | None) -> None:
    case = given()
    assert [type(e) for e in when(case, replace(OPEN, risk_level=level))] == [CaseOpened]
    assert case.crisis is None


def test_the_opened_case_carries_the_referral_date_and_client_name() -> None:
    case = given()
    [opened] = when(case, replace(OPEN, referral_received_at=OPENED.opened_at, client_name="A M"))
    assert isinstance(opened, CaseOpened)
    assert (opened.referral_received_at, opened.client_name, opened.opened_at) == (
        OPENED.opened_at,
        "A M",
        NOW,
    )
    assert (case.client_name, case.referral_received_at) == ("A M", OPENED.opened_at)


def test_reassignment_records_the_previous_worker_and_a_move_checks_it() -> None:
    case = given(IN_ASSESSMENT)
    [event] = when(case, replace(ASSIGN, expected_caseworker_id=CARL, reason="leave"))
    assert isinstance(event, CaseworkerAssigned)
    assert (event.previous_caseworker_id, event.caseworker_id, event.reason) == (
        CARL,
        "cara",
        "leave",
    )
    assert case.scope.caseworker_id == "cara"


def test_moving_the_same_worker_to_another_team_is_a_reassignment() -> None:
    case = given(IN_ASSESSMENT)
    when(case, replace(ASSIGN, caseworker_id=CARL, team="t2"))
    assert (case.caseworker_id, case.team) == (CARL, "t2")


def test_an_accepted_transfer_moves_the_case_and_leaves_it_unassigned() -> None:
    case = given(IN_ACTIVE)
    when(case, REQUEST_TRANSFER)
    assert case.pending_transfer is not None
    assert case.pending_transfer.to_site == "south"
    when(case, ACCEPT_TRANSFER)
    assert (case.site, case.caseworker_id, case.team, case.pending_transfer) == (
        "south",
        None,
        None,
        None,
    )
    assert case.phase is Phase.ACTIVE


def test_a_rejected_transfer_leaves_the_case_where_it_was_and_free_to_transfer_again() -> None:
    case = given(IN_ACTIVE, TRANSFER_REQUESTED)
    when(case, REJECT_TRANSFER)
    assert (case.site, case.caseworker_id, case.pending_transfer) == ("north", CARL, None)
    when(case, REQUEST_TRANSFER)
    assert case.pending_transfer is not None


def test_plan_versions_count_up_and_a_returned_plan_can_be_proposed_again() -> None:
    case = given(IN_PLANNING)
    when(case, RETURN_PLAN)
    assert (case.plan_status, case.phase) == (PlanStatus.RETURNED, Phase.PLANNING)
    [event] = when(case, PROPOSE)[-1:]
    assert isinstance(event, CasePlanProposed)
    assert event.plan_version == 2
    assert case.plan_status is PlanStatus.PROPOSED
    when(case, APPROVE_PLAN)
    assert case.approved_plan is not None
    assert case.approved_plan.version == 2
    assert (case.plan_status, case.phase) == (PlanStatus.APPROVED, Phase.ACTIVE)


def test_a_new_proposal_replaces_one_still_waiting() -> None:
    case = given(IN_PLANNING)
    when(case, PROPOSE)
    assert case.proposed_plan is not None
    assert case.proposed_plan.version == 2
    when(case, APPROVE_PLAN)
    assert case.approved_plan is not None
    assert case.approved_plan.version == 2


def test_a_revision_leaves_the_approved_plan_in_force_until_it_is_approved() -> None:
    case = given(IN_ACTIVE)
    when(case, PROPOSE)
    assert case.approved_plan is not None
    assert case.approved_plan.version == 1
    assert case.plan_status is PlanStatus.REVISION_PROPOSED
    when(case, replace(PROGRESS, goal_id="g-1"))  # the plan in force still counts
    when(case, APPROVE_PLAN)
    assert case.approved_plan is not None
    assert case.approved_plan.version == 2
    assert case.approved_plan.approved_by == SUE
    when(case, replace(PROGRESS, goal_id="g-2"))  # the revision's new goal, now in force


def test_a_returned_revision_keeps_the_approved_plan() -> None:
    case = given(IN_ACTIVE, proposed(2, GOAL, GOAL_2))
    when(case, RETURN_PLAN)
    assert case.approved_plan is not None
    assert case.approved_plan.version == 1
    assert (case.plan_status, case.phase) == (PlanStatus.APPROVED, Phase.ACTIVE)


def test_goal_progress_is_remembered_per_goal() -> None:
    case = given(IN_ACTIVE)
    [event] = when(case, replace(PROGRESS, note="benefit claim submitted"))
    assert isinstance(event, GoalProgressRecorded)
    assert event.note == "benefit claim submitted"
    assert case.goal_progress == {"g-1": PROGRESS.progress}


def test_a_crisis_raises_the_risk_to_imminent_in_the_same_commit() -> None:
    case = given(IN_ACTIVE)
    crisis, risk = when(case, DECLARE)  # the crisis first: its alert is not held by the rise
    assert isinstance(risk, RiskLevelChanged)
    assert isinstance(crisis, CrisisDeclared)
    assert (risk.previous_level, risk.risk_level) == (RiskLevel.MEDIUM, RiskLevel.IMMINENT)
    assert (crisis.caseworker_id, crisis.team, crisis.site) == (CARL, "t1", "north")


def test_a_crisis_at_imminent_risk_changes_no_risk_level() -> None:
    case = given(IN_ACTIVE)
    when(case, replace(RAISE_RISK, risk_level=RiskLevel.IMMINENT))
    case.mark_committed()
    assert [type(e) for e in when(case, DECLARE)] == [CrisisDeclared]


def test_resolving_names_the_open_crisis_and_leaves_the_risk_level() -> None:
    case = given(IN_ACTIVE, CRISIS)
    [event] = when(case, RESOLVE)
    assert getattr(event, "crisis_id") == "k-1"  # noqa: B009
    assert case.crisis is None
    assert case.risk_level is RiskLevel.MEDIUM


def test_an_addendum_names_an_existing_note() -> None:
    case = given(IN_ACTIVE, NOTE)
    [event] = when(case, replace(NOTE_2, addendum_to="n-1"))
    assert isinstance(event, CaseNoteRecorded)
    assert event.addendum_to == "n-1"
    assert case.note_ids == ["n-1", "n-2"]


def test_closure_after_the_crisis_is_resolved() -> None:
    case = given(IN_ACTIVE, CRISIS, CRISIS_RESOLVED)
    when(case, REQUEST_CLOSURE)
    assert case.phase is Phase.REVIEW
    assert case.pending_closure is not None
    assert case.pending_closure.requested_by == CARL


def test_a_returned_closure_can_be_requested_again_and_closing_records_its_outcome() -> None:
    case = given(IN_REVIEW, CLOSURE_RETURNED)
    assert case.pending_closure is None
    when(case, REQUEST_CLOSURE)
    when(case, APPROVE_CLOSURE)
    assert (case.phase, case.outcome) == (Phase.CLOSED, CLOSURE_REQUESTED.outcome)


def test_a_reopened_case_needs_a_new_assessment_and_plan() -> None:
    case = given(IN_REVIEW, CLOSED)
    when(case, REOPEN)
    assert (case.phase, case.outcome, case.plan_status) == (Phase.ASSESSMENT, None, PlanStatus.NONE)
    assert case.approved_plan is None
    assert case.goal_progress == {}
    when(case, ASSESS)
    [event] = when(case, PROPOSE)[-1:]
    assert isinstance(event, CasePlanProposed)
    assert event.plan_version == 2


def test_wrong_phase_says_what_to_do() -> None:
    case = given(IN_ASSESSMENT)
    with pytest.raises(WrongPhase) as refused:
        when(case, PROPOSE)
    assert str(refused.value) == (
        f"case {C} is in assessment: record an assessment before proposing a plan"
    )


def test_a_closed_case_says_to_reopen_it() -> None:
    case = given(IN_REVIEW, CLOSED)
    with pytest.raises(CaseError, match="reopen it"):
        when(case, NOTE_2)


def test_plans_keep_their_goals_and_interventions() -> None:
    plan = replace(
        PROPOSE,
        goals=(GOAL,),
        interventions=(
            Intervention(intervention_id="i-2", description="GP review", responsible="client"),
        ),
    )
    case = given(IN_ASSESSMENT, *IN_PLANNING[2:3])
    when(case, plan)
    assert case.proposed_plan is not None
    assert case.proposed_plan.goals == (GOAL,)
    assert case.proposed_plan.goal("g-1") == GOAL
    assert isinstance(case.proposed_plan.goals[0], Goal)
    assert case.proposed_plan.proposed_by == CARL


def test_an_inconsistent_plan_names_the_field_at_fault() -> None:
    case = given(IN_ACTIVE)
    with pytest.raises(InvalidPlan) as refused:
        when(case, replace(PROPOSE, goals=(GOAL_2,), interventions=(VISITS,)))
    assert getattr(refused.value, "field") == "body.interventions"  # noqa: B009
    assert "g-1" in str(refused.value)
