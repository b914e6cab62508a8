"""Who may do what with supervision sessions, action items, practice notes, concerns and the
boards (DESIGN §8). "Supervises" is the directory's word (`KnownStaff.supervisors_of`: the
worker's supervisor, and whoever that supervisor delegates to at the time), never the
token's team.

- schedule a session with a worker: a `supervisor` who supervises the worker;
- prepare, record (reviews, action items, practice notes), hold, cancel, reschedule: a
  `supervisor` who is the session's supervisor or supervises the worker now;
- acknowledge a session's record: the session's worker;
- read a session (agenda, reviews, action items), a worker's sessions and action items: the
  worker; the session's supervisor; whoever supervises the worker now; a `site_manager` of
  the worker's (or the session's) site; a `regional_admin`;
- read a session's practice notes: the worker; the session's supervisor; the worker's own
  supervisor in the directory — nobody else: not a delegate, a site manager or an admin;
- mark an action item done: its owner; the worker; whoever supervises the worker;
- escalate a concern: a `supervisor` at the site (who supervises the worker, if one is
  named);
- read or resolve a concern: a `site_manager` of the site, a `regional_admin` (the
  supervisor who raised it reads it too);
- the supervisor board: a `supervisor` (their own supervisees now);
- the site manager view: a `site_manager` of the site, a `regional_admin`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from casework.auth import Principal

SESSION_ROLES = frozenset(
    {"caseworker", "crisis_worker", "intake_worker", "supervisor", "site_manager", "regional_admin"}
)
"""Roles that reach the session routes at all (each route narrows it, and reach decides)."""
SUPERVISORS = frozenset({"supervisor"})
CONCERN_READERS = frozenset({"supervisor", "site_manager", "regional_admin"})
CONCERN_RESOLVERS = frozenset({"site_manager", "regional_admin"})
SITE_VIEW = frozenset({"site_manager", "regional_admin"})


@dataclass(frozen=True)
class SessionParties:
    """Who a session (or a worker's record) concerns."""

    worker_id: str
    session_supervisor_id: str | None
    supervisors_now: tuple[str, ...]
    """The worker's supervisor and their delegate at the time of the request."""
    direct_supervisor_id: str | None
    """The worker's own supervisor in the directory (no delegate)."""
    sites: tuple[str, ...]


def runs_session(principal: Principal, parties: SessionParties) -> bool:
    """May prepare, record, hold, cancel or reschedule."""
    if not principal.has_role("supervisor") or principal.sub == parties.worker_id:
        return False
    return principal.sub == parties.session_supervisor_id or principal.sub in (
        parties.supervisors_now
    )


def reads_session(principal: Principal, parties: SessionParties) -> bool:
    if principal.sub == parties.worker_id:
        return True
    if runs_session(principal, parties):
        return True
    if "regional_admin" in principal.roles:
        return True
    return "site_manager" in principal.roles and _any_in(parties.sites, principal.sites)


def reads_practice_notes(principal: Principal, parties: SessionParties) -> bool:
    """The worker and their supervisor only: the session's supervisor, or the worker's own
    supervisor per the directory."""
    if principal.sub == parties.worker_id:
        return True
    return principal.has_role("supervisor") and principal.sub in (
        parties.session_supervisor_id,
        parties.direct_supervisor_id,
    )


def _any_in(a: Iterable[str], b: Iterable[str]) -> bool:
    return bool(set(a) & set(b))
