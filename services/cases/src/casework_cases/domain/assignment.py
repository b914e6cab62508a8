"""Who may be assigned a case, per the organisation directory (supervision owns it; this
service keeps a local copy, `casework.directory.KnownStaff`).

The assignee is in the directory, active, holds `caseworker`, works at the case's site and
has their team there (a worker's team is within their first site); the team recorded on the
case is the directory's, never a token's or the request's (a request that names another
team is refused, so nobody records a team by mistake). Pure: the handler reads the facts and
calls `assignee_team`.
"""

from __future__ import annotations

from typing import Protocol

from casework_cases.domain.errors import (
    AssigneeHasLeft,
    AssigneeHasNoTeamAtSite,
    AssigneeNotAtSite,
    AssigneeNotCaseworker,
    AssigneeNotInDirectory,
    AssigneeTeamMismatch,
)


class Assignee(Protocol):
    """What the directory says of a member of staff (`casework.directory.StaffFacts`)."""

    @property
    def sites(self) -> tuple[str, ...]: ...
    @property
    def team(self) -> str | None: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def active(self) -> bool: ...


def assignee_team(
    case_id: str,
    site: str | None,
    caseworker_id: str,
    facts: Assignee | None,
    asked_team: str | None,
) -> str:
    """The team the case is recorded in when assigned to `caseworker_id`, or the reason
    they may not carry it."""
    if facts is None:
        raise AssigneeNotInDirectory(case_id, caseworker_id)
    if not facts.active:
        raise AssigneeHasLeft(case_id, caseworker_id)
    if "caseworker" not in facts.roles:
        raise AssigneeNotCaseworker(case_id, caseworker_id)
    if site is None or site not in facts.sites:
        raise AssigneeNotAtSite(case_id, caseworker_id, site)
    if facts.team is None or facts.sites[0] != site:
        raise AssigneeHasNoTeamAtSite(case_id, caseworker_id, site)
    if asked_team is not None and asked_team != facts.team:
        raise AssigneeTeamMismatch(case_id, caseworker_id, asked_team, facts.team)
    return facts.team
