"""Assignment is checked against the organisation directory, and a supervisor reaches the
cases of whom they supervise per the directory (cases' and contacts' rules alike)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from unit.cases.case_fixtures import IN_ACTIVE, C
from unit.cases.test_case_authorisation import CTX, app, caseworker, who

from casework.auth import Principal

from casework_cases.domain import commands
from casework_cases.domain.access import CaseScope
from casework_cases.domain.access import can_reach_case as cases_reach
from casework_cases.domain.assignment import assignee_team
from casework_cases.domain.errors import (
    AssigneeHasLeft,
    AssigneeHasNoTeamAtSite,
    AssigneeNotAtSite,
    AssigneeNotCaseworker,
    AssigneeNotInDirectory,
    AssigneeRefused,
    AssigneeTeamMismatch,
)
from casework_contacts.domain.access import CaseScope as ContactsScope
from casework_contacts.domain.access import can_reach_case as contacts_reach

CARA = caseworker("cara")


@pytest.mark.parametrize(
    ("facts", "asked", "refusal"),
    [
        (None, None, AssigneeNotInDirectory),
        (replace(CARA, active=False), None, AssigneeHasLeft),
        (replace(CARA, roles=("crisis_worker",)), None, AssigneeNotCaseworker),
        (replace(CARA, sites=("south",)), None, AssigneeNotAtSite),
        (replace(CARA, team=None), None, AssigneeHasNoTeamAtSite),
        (replace(CARA, sites=("south", "north")), None, AssigneeHasNoTeamAtSite),
        (CARA, "t2", AssigneeTeamMismatch),
    ],
)
def test_who_may_carry_a_case(
    facts: object, asked: str | None, refusal: type[AssigneeRefused]
) -> None:
    with pytest.raises(refusal):
        assignee_team(C, "north", "cara", facts, asked)  # type: ignore[arg-type]


def test_the_team_recorded_is_the_directorys() -> None:
    assert assignee_team(C, "north", "cara", CARA, None) == "t1"
    assert assignee_team(C, "north", "cara", CARA, "t1") == "t1"


async def test_an_assignment_records_the_directorys_team_and_refuses_strangers() -> None:
    manager = who("site_manager", sites=("north",))
    assign = commands.AssignCaseworker(case_id=C, caseworker_id="cara", team=None, assigned_by="m")
    case = await app(*IN_ACTIVE).execute(assign, manager, CTX)
    assert (case.caseworker_id, case.team) == ("cara", "t1")
    stranger = replace(assign, caseworker_id="nobody")
    with pytest.raises(AssigneeNotInDirectory):
        await app(*IN_ACTIVE).execute(stranger, manager, CTX)


@pytest.mark.parametrize("reach", [cases_reach, contacts_reach], ids=["cases", "contacts"])
def test_a_supervisor_reaches_the_cases_of_whom_they_supervise(reach: object) -> None:
    scope_type = CaseScope if reach is cases_reach else ContactsScope
    elsewhere = scope_type(site="south", caseworker_id="carl", team="t9")
    sue = Principal(
        sub="sue", name="sue", roles=frozenset({"supervisor"}), sites=frozenset({"north"})
    )
    assert not reach(sue, elsewhere)  # type: ignore[operator]
    assert reach(replace(sue, supervisees=frozenset({"carl"})), elsewhere)  # type: ignore[operator]
    # the same list on a caseworker's principal grants nothing: it is a supervisor's reach
    cole = replace(
        sue, sub="cole", roles=frozenset({"caseworker"}), supervisees=frozenset({"carl"})
    )
    assert not reach(cole, elsewhere)  # type: ignore[operator]
