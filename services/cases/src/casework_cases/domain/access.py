"""Who may reach a case (DESIGN §8, object-level authorisation).

| role            | reaches a case when                                                       |
|-----------------|---------------------------------------------------------------------------|
| regional_admin  | always                                                                    |
| site_manager    | the case is at one of the manager's sites                                 |
| supervisor      | the case belongs to the team supervised (the token's `team`) at one of    |
|                 | the supervisor's sites, or it has no team yet (unassigned) and is at one  |
|                 | of the supervisor's sites, or its caseworker is one they supervise now    |
|                 | per the organisation directory, delegations included                      |
|                 | (`Principal.supervisees`, `casework.directory.SupervisionReach`)          |
| caseworker      | the caseworker is assigned to it, or it belongs to the caseworker's team  |
|                 | at one of the caseworker's sites                                          |
| crisis_worker   | the case is at one of the crisis worker's sites (on call for the site)    |
| anyone else     | never                                                                     |

A team is known by its code within a site: team reach is site and team together, so a
team code reused at another site grants nothing there.

A principal whose role may work with cases but who does not reach this one is told the case
does not exist (404): its existence is client data too.
"""

from __future__ import annotations

from dataclasses import dataclass

from casework.auth import Principal

CASE_ROLES = frozenset(
    {"regional_admin", "site_manager", "supervisor", "caseworker", "crisis_worker"}
)


@dataclass(frozen=True)
class CaseScope:
    """What the rule needs to know about a case."""

    site: str | None
    caseworker_id: str | None = None
    team: str | None = None


def can_reach_case(principal: Principal, case: CaseScope) -> bool:
    """True when the principal may read or act on the case (before role-specific checks)."""
    roles = principal.roles
    at_site = case.site is not None and case.site in principal.sites
    if "regional_admin" in roles:
        return True
    if "site_manager" in roles and at_site:
        return True
    if "crisis_worker" in roles and at_site:
        return True
    in_team = principal.team is not None and case.team == principal.team and at_site
    if "supervisor" in roles and in_team:
        return True
    if "supervisor" in roles and case.team is None and at_site:
        return True
    if (
        "supervisor" in roles
        and case.caseworker_id is not None
        and case.caseworker_id in principal.supervisees
    ):
        return True
    if "caseworker" in roles:
        if case.caseworker_id is not None and case.caseworker_id == principal.sub:
            return True
        if in_team:
            return True
    return False
