"""Who may reach a case's contacts: the cases service's rule, applied to this service's local
projection of the cases (DESIGN §8; services do not import each other, so the rule is
restated here and the authorisation matrix test holds both to the same table).

| role            | reaches a case's contacts when                                            |
|-----------------|---------------------------------------------------------------------------|
| regional_admin  | always                                                                    |
| site_manager    | the case is at one of the manager's sites                                 |
| supervisor      | the case is in the supervised team at one of the supervisor's sites, or   |
|                 | has no team yet and is at one of the supervisor's sites, or its           |
|                 | caseworker is one they supervise now per the organisation directory       |
|                 | (`Principal.supervisees`, delegations included)                           |
| caseworker      | the caseworker holds the case, or it is in the caseworker's team at one   |
|                 | of the caseworker's sites                                                 |
| crisis_worker   | the case is at one of the crisis worker's sites                           |
| anyone else     | never                                                                     |

Which roles may issue which command:

| command                                                     | roles                           |
|-------------------------------------------------------------|---------------------------------|
| read contacts, a case's history or compliance               | caseworker, supervisor,         |
|                                                             | crisis_worker, site_manager,    |
|                                                             | regional_admin                  |
| schedule, log, miss, cancel, correct; check in / out        | caseworker, supervisor,         |
|                                                             | crisis_worker                   |
| a worker's agenda                                           | the worker (caseworker, crisis  |
|                                                             | worker), supervisor,            |
|                                                             | site_manager, regional_admin    |
| a team's agenda                                             | supervisor, site_manager,       |
|                                                             | regional_admin                  |
"""

from __future__ import annotations

from dataclasses import dataclass

from casework.auth import Principal

READERS = frozenset({"regional_admin", "site_manager", "supervisor", "caseworker", "crisis_worker"})
CONTACT_WORKERS = frozenset({"caseworker", "supervisor", "crisis_worker"})
AGENDA_READERS = READERS
TEAM_AGENDA_READERS = frozenset({"supervisor", "site_manager", "regional_admin"})
READ_ANY_AGENDA = TEAM_AGENDA_READERS


@dataclass(frozen=True)
class CaseScope:
    site: str | None
    caseworker_id: str | None = None
    team: str | None = None


def can_reach_case(principal: Principal, case: CaseScope) -> bool:
    """True when the principal may read or act on the case's contacts."""
    roles = principal.roles
    at_site = case.site is not None and case.site in principal.sites
    if "regional_admin" in roles:
        return True
    if ("site_manager" in roles or "crisis_worker" in roles) and at_site:
        return True
    in_team = principal.team is not None and case.team == principal.team and at_site
    if "supervisor" in roles and (in_team or (case.team is None and at_site)):
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
