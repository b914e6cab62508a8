"""The rules around an approval that need no history: what an approval id is, when it is
due, who may decide it.

Who decides (issue 10, "Approvals"): the case's caseworker's supervisor or their delegate at
the moment of the decision (the directory's `supervisors_of`: the supervisor first, then whom
they delegate to then); when the worker has no supervisor in the directory (or only the one
who asked for the approval), a `supervisor` of the case's site and team. Never who asked for
it (four eyes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

URGENT_RISKS = frozenset({"high", "imminent"})


class ApprovalKind(StrEnum):
    ASSESSMENT = "assessment"
    PLAN = "plan"
    CLOSURE = "closure"


class ApprovalStatus(StrEnum):
    REQUESTED = "requested"
    GRANTED = "granted"
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"


def plan_approval_id(case_id: str, plan_version: int) -> str:
    return f"{case_id}:plan:{plan_version}"


def closure_approval_id(case_id: str, case_version: int) -> str:
    """`n` is the case's stream version of its `ClosureRequested`."""
    return f"{case_id}:closure:{case_version}"


def assessment_approval_id(case_id: str, assessment_id: str) -> str:
    return f"{case_id}:assessment:{assessment_id}"


@dataclass(frozen=True)
class DuePolicy:
    """How long an approval may wait before `ApprovalOverdue` (72 h; 24 h when the case is
    at high or imminent risk when it is requested)."""

    due: timedelta = timedelta(hours=72)
    urgent_due: timedelta = timedelta(hours=24)

    def due_at(self, requested_at: datetime, risk_level: str | None) -> datetime:
        wait = self.urgent_due if risk_level in URGENT_RISKS else self.due
        return requested_at + wait


@dataclass(frozen=True)
class Authority:
    """Who may decide one approval at the moment of the decision.

    `supervisors`: the directory's `supervisors_of(caseworker, now)` — the worker's
    supervisor first, then whoever the supervisor delegates to now (empty when the directory
    names no supervisor, or the case has no caseworker). `site_supervisor`: the decider holds
    `supervisor` at the case's site and in its team (the fallback rule).
    """

    supervisors: tuple[str, ...] = ()
    site_supervisor: bool = False

    def decides(self, by: str, requested_by: str) -> tuple[bool, str | None]:
        """Whether `by` may decide, and for whom (the supervisor a delegate stands in for)."""
        named = [s for s in self.supervisors if s != requested_by]
        if not named:
            return self.site_supervisor, None
        if by not in named:
            return False, None
        supervisor = self.supervisors[0]
        return True, (supervisor if by != supervisor else None)


def is_site_supervisor(
    roles: frozenset[str], sites: frozenset[str], team: str | None, site: str, case_team: str | None
) -> bool:
    """A `supervisor` of the case's site and team (any team's supervisor of the site when the
    case has no team yet)."""
    return "supervisor" in roles and site in sites and (case_team is None or team == case_team)
