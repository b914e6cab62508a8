"""Who is told to decide an approval: the rule supervision decides by (issue 10,
`casework_supervision.domain.approval_rules`), applied here from the local copy of the
directory, so that the people notified are the people who may decide.

- The case's caseworker's supervisor, and their delegate at that moment (the directory's
  `supervisors_of`), never the requester (four eyes).
- When that names nobody (no caseworker, no supervisor in the directory, the supervisor
  left, or only the requester): the active `supervisor`s of the case's site, in the case's
  team when it has one — again never the requester.

**Invariant:** an approval notice's `supervisor` target never names the requester, and names
nobody only when the site has no (other) supervisor in the case's team: then the target is
reported unresolved on the board, as every target that names nobody is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from casework.contracts.notifications import Trigger

APPROVAL_TRIGGERS = frozenset({Trigger.APPROVAL_REQUESTED, Trigger.APPROVAL_OVERDUE})


def named_deciders(supervisors: Iterable[str], never: Collection[str]) -> tuple[str, ...]:
    """The worker's supervisor and delegates (in the directory's order), the requester out."""
    return tuple(s for s in dict.fromkeys(supervisors) if s not in never)


def fallback_deciders(
    site_supervisors: Iterable[tuple[str, str | None]], team: str | None, never: Collection[str]
) -> tuple[str, ...]:
    """The site's supervisors `(staff_id, team)` who may decide when nobody is named: those
    of the case's team (any team's when the case has none), the requester out."""
    return tuple(
        dict.fromkeys(
            staff_id
            for staff_id, their_team in site_supervisors
            if (team is None or their_team == team) and staff_id not in never
        )
    )
