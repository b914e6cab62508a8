"""Caseload weighting: what a case weighs, the bands, and an assignment into red needing a
reason (recorded on `CaseworkerAssigned`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from unit.cases.case_fixtures import IN_ACTIVE, NOW, C
from unit.cases.test_case_authorisation import CTX, Directory, InMemoryCases, caseworker, who

from casework.clock import FixedClock
from casework.contracts.cases import CaseworkerAssigned
from casework.directory import DEFAULT_CASELOAD_POLICY, CaseloadPolicy

from casework_cases.application.handlers import Cases
from casework_cases.domain import commands
from casework_cases.domain.caseload import HeldCase, check_capacity, weighted_load
from casework_cases.domain.errors import CapacityExceeded

POLICY = DEFAULT_CASELOAD_POLICY


@pytest.mark.parametrize(
    ("risk", "crisis", "points"),
    [
        ("imminent", False, 4),
        ("high", False, 3),
        ("medium", False, 2),
        ("low", False, 1),
        (None, False, 1),
        ("imminent", True, 6),
        ("low", True, 3),
    ],
)
def test_what_a_case_weighs(risk: str | None, crisis: bool, points: int) -> None:
    assert POLICY.weight(risk, crisis) == points


@pytest.mark.parametrize(
    ("load", "band"), [(19, "green"), (20, "amber"), (21, "amber"), (22, "red"), (30, "red")]
)
def test_bands_by_share_of_capacity(load: int, band: str) -> None:
    assert POLICY.band(load, 20) == band  # amber from 100 %, red from 110 %


def held(*risks: str) -> list[HeldCase]:
    return [HeldCase(f"h{i}", r, False) for i, r in enumerate(risks)]


def test_into_red_needs_a_reason_and_says_the_figures() -> None:
    carrying = held(*["high"] * 6)  # 18 points of 20
    check_capacity(POLICY, "c", "carl", carrying, 3, None, None)  # 21: amber, fine
    with pytest.raises(CapacityExceeded) as refused:
        check_capacity(POLICY, "c", "carl", carrying, 4, None, None)  # 22 = 110 %: red
    assert (refused.value.load, refused.value.weight, refused.value.capacity) == (18, 4, 20)
    assert "110 %" in str(refused.value)
    check_capacity(POLICY, "c", "carl", carrying, 4, None, "covering a colleague's leave")
    check_capacity(POLICY, "c", "carl", carrying, 4, 40, None)  # their own, larger capacity


def test_the_case_itself_counts_once_and_the_policy_is_data() -> None:
    assert weighted_load(POLICY, held("high", "low")) == 4
    carrying = [HeldCase("c", "imminent", True), *held(*["high"] * 5)]
    check_capacity(POLICY, "c", "carl", carrying, 6, None, None)  # 15 + 6 = 21: amber
    strict = replace(POLICY, red_at_percent=101)
    with pytest.raises(CapacityExceeded):
        check_capacity(strict, "c", "carl", carrying, 6, None, None)
    custom = CaseloadPolicy(points_by_risk=(("high", 10), ("none", 1)), crisis_bonus=0)
    assert (custom.weight("high", True), custom.weight("medium", False)) == (10, 1)


async def test_an_assignment_into_red_is_refused_or_recorded_with_its_reason() -> None:
    streams = {C: list(IN_ACTIVE)}
    directory = Directory(held={"cara": held(*["imminent"] * 5)})  # 20 points of 20
    cases = Cases(
        cases=InMemoryCases(streams),  # type: ignore[arg-type]
        sites=directory,
        caseloads=directory,
        staff=directory,
        clock=FixedClock(NOW),
    )
    manager = who("site_manager", sites=("north",))
    assign = commands.AssignCaseworker(case_id=C, caseworker_id="cara", team=None, assigned_by="m")
    with pytest.raises(CapacityExceeded):
        await cases.execute(assign, manager, CTX)
    overridden = replace(assign, capacity_override_reason="Only Welsh speaker")
    case = await cases.execute(overridden, manager, CTX)
    assert case.caseworker_id == "cara"
    [event] = [e for e in streams[C] if isinstance(e, CaseworkerAssigned)][-1:]
    assert event.capacity_override_reason == "Only Welsh speaker"
    # a worker with room takes it without a reason
    directory.staff["dan"] = replace(caseworker("dan"), capacity_points=40)
    directory.held["dan"] = held(*["imminent"] * 5)
    case = await cases.execute(replace(assign, caseworker_id="dan"), manager, CTX)
    assert case.caseworker_id == "dan"
