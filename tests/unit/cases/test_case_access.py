"""The case access rule, role by role."""

from __future__ import annotations

import pytest

from casework.auth import Principal

from casework_cases.domain.access import CaseScope, can_reach_case


def who(
    role: str, sub: str = "u1", sites: tuple[str, ...] = ("north",), team: str | None = None
) -> Principal:
    return Principal(sub=sub, name=sub, roles=frozenset({role}), sites=frozenset(sites), team=team)


ASSIGNED = CaseScope(site="north", caseworker_id="carl", team="t1")
UNASSIGNED = CaseScope(site="north")
SOUTH = CaseScope(site="south", caseworker_id="sam", team="t9")


@pytest.mark.parametrize(
    ("principal", "case", "reaches"),
    [
        (who("regional_admin", sites=()), SOUTH, True),
        (who("site_manager"), ASSIGNED, True),
        (who("site_manager"), SOUTH, False),
        (who("crisis_worker"), ASSIGNED, True),
        (who("crisis_worker"), SOUTH, False),
        (who("supervisor", team="t1"), ASSIGNED, True),
        (who("supervisor", team="t2"), ASSIGNED, False),
        (who("supervisor", team="t2"), UNASSIGNED, True),
        (who("supervisor", team="t2", sites=("south",)), UNASSIGNED, False),
        (who("caseworker", sub="carl"), ASSIGNED, True),
        (who("caseworker", sub="cara", team="t1"), ASSIGNED, True),
        (who("caseworker", sub="cara", team="t2"), ASSIGNED, False),
        (who("caseworker", sub="cara"), UNASSIGNED, False),
        # a team code reused at another site grants nothing there (issue 7)
        (who("supervisor", team="t1", sites=("south",)), ASSIGNED, False),
        (who("caseworker", sub="cara", team="t1", sites=("south",)), ASSIGNED, False),
        (who("caseworker", sub="cara", team="t1", sites=()), ASSIGNED, False),
        # the assigned caseworker reaches their case wherever their token says they work
        (who("caseworker", sub="carl", sites=("south",)), ASSIGNED, True),
        (who("intake_worker"), ASSIGNED, False),
        (who("ops"), ASSIGNED, False),
        (who("integration"), ASSIGNED, False),
    ],
)
def test_who_reaches_a_case(principal: Principal, case: CaseScope, reaches: bool) -> None:
    assert can_reach_case(principal, case) is reaches
