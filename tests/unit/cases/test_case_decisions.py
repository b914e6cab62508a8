"""Supervision's decisions carried out on a case (given-when-then): a decision names what it
decides — a plan version, a closure request, an assessment — and the case refuses one for
anything it no longer waits for, and keeps four eyes as a defence."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from unit.cases.case_fixtures import (
    CARL,
    IN_ACTIVE,
    IN_PLANNING,
    IN_REVIEW,
    SIGN_OFF,
    SUE,
    T0,
    C,
    given,
    proposed,
    when,
)

from casework.contracts.cases import (
    AssessmentSignedOff,
    CaseClosed,
    CasePlanApproved,
    CasePlanReturned,
    ClosureReturned,
)

from casework_cases.domain.case import Phase
from casework_cases.domain.commands import (
    ApproveClosure,
    ApprovePlan,
    ReturnClosure,
    ReturnPlan,
)
from casework_cases.domain.errors import DecisionNotCurrent, SelfApprovalNotAllowed


def test_a_granted_plan_approval_approves_the_version_it_names() -> None:
    case = given(IN_PLANNING)
    cmd = ApprovePlan(
        case_id=C, approved_by="del", plan_version=1, approval_id=f"{C}:plan:1", on_behalf_of=SUE
    )
    (event,) = when(case, cmd)
    assert isinstance(event, CasePlanApproved)
    assert (event.plan_version, event.approval_id, event.on_behalf_of) == (1, f"{C}:plan:1", SUE)
    assert case.phase is Phase.ACTIVE


def test_a_decision_for_a_superseded_plan_version_is_refused() -> None:
    case = given(IN_PLANNING, proposed(2))  # version 2 replaced version 1
    for cmd in (
        ApprovePlan(case_id=C, approved_by=SUE, plan_version=1, approval_id=f"{C}:plan:1"),
        ReturnPlan(case_id=C, reason="r", returned_by=SUE, plan_version=1),
    ):
        with pytest.raises(DecisionNotCurrent):
            when(case, cmd)
        assert case.pending_events == []
    (event,) = when(case, ReturnPlan(case_id=C, reason="r", returned_by=SUE, plan_version=2))
    assert isinstance(event, CasePlanReturned)


def test_a_redelivered_plan_approval_changes_nothing() -> None:
    case = given(IN_ACTIVE)  # version 1 approved already
    with pytest.raises(DecisionNotCurrent):
        when(case, ApprovePlan(case_id=C, approved_by=SUE, plan_version=1))


def test_four_eyes_stay_on_the_case_as_a_defence() -> None:
    with pytest.raises(SelfApprovalNotAllowed):
        when(given(IN_PLANNING), ApprovePlan(case_id=C, approved_by=CARL, plan_version=1))
    with pytest.raises(SelfApprovalNotAllowed):
        when(given(IN_PLANNING), replace(SIGN_OFF, signed_off_by=CARL))
    with pytest.raises(SelfApprovalNotAllowed):
        when(given(IN_REVIEW), ApproveClosure(case_id=C, approved_by=CARL, requested_at=T0))


def test_a_closure_decision_names_its_request() -> None:
    case = given(IN_REVIEW)
    earlier = T0 - timedelta(days=3)
    with pytest.raises(DecisionNotCurrent):
        when(case, ApproveClosure(case_id=C, approved_by=SUE, requested_at=earlier))
    (event,) = when(
        given(IN_REVIEW), ReturnClosure(case_id=C, reason="r", returned_by=SUE, requested_at=T0)
    )
    assert isinstance(event, ClosureReturned)
    (event,) = when(case, ApproveClosure(case_id=C, approved_by=SUE, requested_at=T0))
    assert isinstance(event, CaseClosed)


def test_an_assessment_is_signed_off_once() -> None:
    case = given(IN_PLANNING)
    (event,) = when(case, SIGN_OFF)
    assert isinstance(event, AssessmentSignedOff)
    assert (event.assessment_id, event.signed_off_by) == ("a-1", SUE)
    again = given(IN_PLANNING, event)
    with pytest.raises(DecisionNotCurrent):
        when(again, SIGN_OFF)
    with pytest.raises(DecisionNotCurrent):
        when(given(IN_PLANNING), replace(SIGN_OFF, assessment_id="a-0"))
