"""Who may issue which command, and the order of the checks (roles → reach → version → rules).

The application is run over an in-memory repository: these tests are about its decisions,
not about storage (the integration and end-to-end tests cover that).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import pytest
from unit.cases.case_fixtures import (
    ACCEPT_TRANSFER,
    ASSIGN,
    ASSIGNED,
    CLOSED,
    IN_ACTIVE,
    IN_ASSESSMENT,
    NOW,
    OPEN,
    OPENED,
    REJECT_TRANSFER,
    REQUEST_TRANSFER,
    TRANSFER_REQUESTED,
    C,
)

from casework.access import AccessDenied, NotVisible
from casework.aggregate import VersionMismatch
from casework.auth import Principal, check_roles
from casework.clock import FixedClock
from casework.directory import StaffFacts
from casework.events import DomainEvent
from casework.eventstore import CommitContext

from casework_cases.application.handlers import Cases
from casework_cases.domain import commands
from casework_cases.domain.case import Case
from casework_cases.domain.caseload import HeldCase
from casework_cases.domain.commands import MoveCaseload, OpenCase
from casework_cases.domain.errors import CaseAlreadyClosed, CaseAlreadyOpened, UnknownSite
from casework_cases.domain.permissions import MAY_ISSUE

CTX = CommitContext()


class InMemoryCases:
    """Just enough of `Repository[Case]` for the application's decisions."""

    def __init__(self, streams: dict[str, list[DomainEvent]]) -> None:
        self.streams = streams

    async def find(self, id: str) -> Case | None:
        history = self.streams.get(id)
        return Case.rehydrate(id, history) if history else None

    def new(self, id: str) -> Case:
        return Case(id)

    async def save(self, case: Case, ctx: CommitContext | None = None) -> list[Any]:
        self.streams.setdefault(case.id, []).extend(case.pending_events)
        case.mark_committed()
        return []


def caseworker(staff_id: str, site: str = "north", team: str = "t1") -> StaffFacts:
    return StaffFacts(
        staff_id=staff_id,
        name=staff_id,
        email=None,
        sites=(site,),
        team=team,
        roles=("caseworker",),
        newly_qualified=False,
        started_on=date(2026, 1, 5),
        capacity_points=None,
        timezone=None,
        supervisor_id=None,
        active=True,
    )


@dataclass
class Directory:
    sites: set[str] = field(default_factory=lambda: {"north", "south"})
    caseloads: dict[str, list[str]] = field(default_factory=dict)
    staff: dict[str, StaffFacts] = field(
        default_factory=lambda: {s.staff_id: s for s in map(caseworker, ("cara", "carl", "dan"))}
    )

    held: dict[str, list[HeldCase]] = field(default_factory=dict)

    async def exists(self, site: str) -> bool:
        return site in self.sites

    async def get(self, staff_id: str) -> StaffFacts | None:
        return self.staff.get(staff_id)

    async def held_by(self, caseworker_id: str) -> list[HeldCase]:
        return list(self.held.get(caseworker_id, []))

    async def open_cases_of(self, caseworker_id: str) -> list[str]:
        return self.caseloads.get(caseworker_id, [])


def app(*history: DomainEvent, **more: list[DomainEvent]) -> Cases:
    streams = {C: list(history), **{k: list(v) for k, v in more.items()}}
    directory = Directory(caseloads={"carl": sorted(streams)})
    return Cases(
        cases=InMemoryCases(streams),  # type: ignore[arg-type]
        sites=directory,
        caseloads=directory,
        staff=directory,
        clock=FixedClock(NOW),
    )


def who(
    role: str, sub: str = "u1", sites: tuple[str, ...] = ("north",), team: str | None = None
) -> Principal:
    return Principal(sub=sub, name=sub, roles=frozenset({role}), sites=frozenset(sites), team=team)


def test_every_command_but_opening_says_who_may_issue_it() -> None:
    issued = set(commands.CaseCommand.__args__) - {OpenCase} | {MoveCaseload}
    assert set(MAY_ISSUE) == issued
    for roles in MAY_ISSUE.values():
        assert check_roles(roles) == roles


async def test_a_role_that_may_not_issue_the_command_is_refused_before_anything_is_read() -> None:
    with pytest.raises(AccessDenied):
        await app(*IN_ASSESSMENT).execute(ASSIGN, who("caseworker", sub="carl"), CTX)


async def test_a_case_out_of_reach_is_not_found() -> None:
    other_team = who("supervisor", team="t2", sites=("south",))
    with pytest.raises(NotVisible):
        await app(*IN_ASSESSMENT).execute(ASSIGN, other_team, CTX)


async def test_a_case_that_does_not_exist_is_not_found() -> None:
    with pytest.raises(NotVisible):
        await app().execute(ASSIGN, who("regional_admin"), CTX)


async def test_reach_is_checked_before_the_version_and_the_version_before_the_rules() -> None:
    cases = app(*IN_ASSESSMENT, CLOSED)  # closed: the rules would refuse
    with pytest.raises(NotVisible):
        await cases.execute(ASSIGN, who("supervisor", team="t2", sites=()), CTX, 1)
    with pytest.raises(VersionMismatch):
        await cases.execute(ASSIGN, who("supervisor", team="t1"), CTX, 1)
    with pytest.raises(CaseAlreadyClosed):
        await cases.execute(ASSIGN, who("supervisor", team="t1"), CTX, 3)


async def test_a_matching_if_match_lets_the_change_through() -> None:
    case = await app(*IN_ASSESSMENT).execute(ASSIGN, who("supervisor", team="t1"), CTX, 2)
    assert (case.version, case.caseworker_id) == (3, "cara")


async def test_a_transfer_is_requested_by_someone_at_the_cases_current_site() -> None:
    # Team reach is site and team together: the same team code at another site reaches
    # nothing, so the case is not even visible.
    team_supervisor_elsewhere = who("supervisor", team="t1", sites=("south",))
    with pytest.raises(NotVisible):
        await app(*IN_ACTIVE).execute(REQUEST_TRANSFER, team_supervisor_elsewhere, CTX)
    case = await app(*IN_ACTIVE).execute(REQUEST_TRANSFER, who("site_manager"), CTX)
    assert case.pending_transfer is not None


async def test_a_transfer_to_a_site_nobody_registered_is_refused() -> None:
    with pytest.raises(UnknownSite):
        await app(*IN_ACTIVE).execute(
            replace(REQUEST_TRANSFER, to_site="atlantis"), who("site_manager"), CTX
        )


@pytest.mark.parametrize("command", [ACCEPT_TRANSFER, REJECT_TRANSFER], ids=["accept", "reject"])
async def test_the_receiving_site_answers_a_transfer_before_it_reaches_the_case(
    command: commands.CaseCommand,
) -> None:
    pending = (*IN_ACTIVE, TRANSFER_REQUESTED)  # north → south
    receiving = who("site_manager", sites=("south",))
    case = await app(*pending).execute(command, receiving, CTX)
    assert case.pending_transfer is None
    with pytest.raises(AccessDenied, match="receiving site south"):
        await app(*pending).execute(command, who("site_manager", sites=("north",)), CTX)
    with pytest.raises(NotVisible):
        await app(*pending).execute(command, who("site_manager", sites=("east",)), CTX)
    with pytest.raises(NotVisible):  # nothing pending: the receiving site has no claim
        await app(*IN_ACTIVE).execute(command, receiving, CTX)


async def test_reading_needs_a_case_role_and_reach() -> None:
    cases = app(*IN_ASSESSMENT)
    assert (await cases.case(C, who("caseworker", sub="carl"))).id == C
    with pytest.raises(NotVisible):
        await cases.case(C, who("caseworker", sub="cara", team="t2"))
    with pytest.raises(AccessDenied):
        await cases.case(C, who("intake_worker"))


async def test_opening_twice_is_refused_by_the_case() -> None:
    cases = app()
    await cases.open_case(OPEN, CTX)
    with pytest.raises(CaseAlreadyOpened):
        await cases.open_case(OPEN, CTX)


async def test_a_caseload_move_reports_each_case() -> None:
    closed = [*IN_ASSESSMENT, CLOSED]
    elsewhere = [OPENED.model_copy(update={"site": "south"}), ASSIGNED]
    moved_on = [*IN_ASSESSMENT, ASSIGNED.model_copy(update={"caseworker_id": "cara"})]
    cases = app(*IN_ASSESSMENT, **{"c-2": closed, "c-3": elsewhere, "c-4": moved_on})
    move = MoveCaseload("carl", "dan", "t1", "leave", "sue")
    report = await cases.move_caseload(move, who("site_manager", sub="sue"), CTX)
    assert [(m.case_id, m.version) for m in report.moved] == [(C, 3)]
    assert [(f.case_id, f.code) for f in report.failed] == [("c-2", "CaseAlreadyClosed")]
    assert report.out_of_reach == 1  # c-3, at a site the manager does not hold
    # c-4 went to cara after the index listed it under carl: no longer his, so neither
    # moved nor failed (running the move again must not report it as a failure)
    assert "c-4" not in {m.case_id for m in report.moved}


async def test_a_caseload_move_needs_a_role_that_assigns() -> None:
    move = MoveCaseload("carl", "dan", "t1", "leave", "carl")
    with pytest.raises(AccessDenied):
        await app(*IN_ASSESSMENT).move_caseload(move, who("caseworker", sub="carl"), CTX)


async def test_an_assigner_assigns_only_at_a_site_they_hold() -> None:
    assign = commands.AssignCaseworker(
        case_id=C, caseworker_id="cara", team="t1", reason="cover", assigned_by="u1"
    )
    # A supervisor of team t1 at south does not reach north's t1 cases at all.
    with pytest.raises(NotVisible):
        await app(*IN_ACTIVE).execute(assign, who("supervisor", team="t1", sites=("south",)), CTX)
    # A site manager of south cannot assign a north case, even with north's team code.
    with pytest.raises(NotVisible):
        await app(*IN_ACTIVE).execute(assign, who("site_manager", sites=("south",)), CTX)
    case = await app(*IN_ACTIVE).execute(assign, who("site_manager", sites=("north",)), CTX)
    assert case.caseworker_id == "cara"
    case = await app(*IN_ACTIVE).execute(assign, who("regional_admin", sites=()), CTX)
    assert case.caseworker_id == "cara"
