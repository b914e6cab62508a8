"""Why supervision refuses a command, in its own words: one hierarchy for the directory,
approvals and sessions (every class below derives from `SupervisionError`).

The HTTP status of each is decided once, in `bootstrap` (the most specific class in an
error's ancestry wins): 409 for a rule that refused (`SupervisionError`, `ApprovalError`,
`SessionError`), 404 for something not in the directory (`NotInDirectory`), 403 for who may
not decide an approval (`SelfApprovalNotAllowed`, `NotAnApprover`), 422 for an impossible
request about one field (`InvalidDirectoryEntry`, `InvalidSessionRequest`, with a `field`
attribute; `ReasonRequired`). Messages name ids, codes and states, never anything about a
client nor what a review or a note says.
"""

from __future__ import annotations

from collections.abc import Iterable


class SupervisionError(Exception):
    """A rule of supervision refused a command."""


class NotInDirectory(SupervisionError):
    """The site, team, member of staff, shift or delegation named is not in the directory."""


class InvalidDirectoryEntry(SupervisionError):
    """A request that names something impossible (422, about one field)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


# --- organisation directory --------------------------------------------------------------------


class SiteAlreadyRegistered(SupervisionError):
    def __init__(self, site: str) -> None:
        super().__init__(f"site {site!r} is already registered")


class SiteNotFound(NotInDirectory):
    def __init__(self, site: str) -> None:
        super().__init__(f"site {site!r} is not in the directory")


class TeamAlreadyRegistered(SupervisionError):
    def __init__(self, site: str, team: str) -> None:
        super().__init__(f"team {team!r} of site {site!r} is already registered")


class StaffMemberNotFound(NotInDirectory):
    def __init__(self, staff_id: str) -> None:
        super().__init__(f"staff member {staff_id!r} is not in the directory")


class StaffMemberAlreadyRegistered(SupervisionError):
    def __init__(self, staff_id: str) -> None:
        super().__init__(
            f"staff member {staff_id!r} is already registered: change their profile instead"
        )


class StaffMemberHasLeft(SupervisionError):
    """A leaver is not given anything new: no profile change, supervisor, delegation, shift."""

    def __init__(self, staff_id: str) -> None:
        super().__init__(f"staff member {staff_id!r} has left the agency")


class NotASupervisor(SupervisionError):
    """Supervising, delegating or standing in as a delegate needs the `supervisor` role."""

    def __init__(self, staff_id: str, as_what: str) -> None:
        super().__init__(f"staff member {staff_id!r} does not hold the supervisor role {as_what}")


class SupervisesThemselves(SupervisionError):
    def __init__(self, staff_id: str) -> None:
        super().__init__(f"staff member {staff_id!r} cannot supervise themselves")


class DelegationIdUsed(SupervisionError):
    def __init__(self, supervisor_id: str, delegation_id: str) -> None:
        super().__init__(f"{supervisor_id!r} already has a delegation {delegation_id!r}")


class DelegationNotFound(NotInDirectory):
    def __init__(self, supervisor_id: str, delegation_id: str) -> None:
        super().__init__(f"{supervisor_id!r} has no delegation {delegation_id!r}")


class DelegationAlreadyOver(SupervisionError):
    def __init__(self, delegation_id: str) -> None:
        super().__init__(f"delegation {delegation_id!r} has already ended")


class StillRostered(SupervisionError):
    """A leaver must first be taken off the shifts they are rostered for (the rota must not
    name someone who is gone)."""

    def __init__(self, staff_id: str, shift_ids: Iterable[str]) -> None:
        shifts = ", ".join(shift_ids)
        super().__init__(
            f"staff member {staff_id!r} is rostered on call (shifts {shifts}): "
            "cancel or reschedule those shifts first"
        )


class NotOnCallEligible(SupervisionError):
    """An on-call worker or backup holds `crisis_worker` or `supervisor` at the shift's site."""

    def __init__(self, staff_id: str, site: str) -> None:
        super().__init__(
            f"staff member {staff_id!r} does not hold crisis_worker or supervisor at site {site!r}"
        )


class ShiftIdUsed(SupervisionError):
    def __init__(self, site: str, shift_id: str) -> None:
        super().__init__(f"site {site!r} already has a shift {shift_id!r}")


class ShiftOverlaps(SupervisionError):
    def __init__(self, site: str, other: str) -> None:
        super().__init__(f"the shift overlaps shift {other!r} of site {site!r}")


class ShiftNotFound(NotInDirectory):
    def __init__(self, site: str, shift_id: str) -> None:
        super().__init__(f"site {site!r} has no shift {shift_id!r}")


class ShiftAlreadyCancelled(SupervisionError):
    def __init__(self, shift_id: str) -> None:
        super().__init__(f"shift {shift_id!r} is already cancelled")


class ShiftAlreadyOver(SupervisionError):
    def __init__(self, shift_id: str) -> None:
        super().__init__(f"shift {shift_id!r} is over: the rota keeps it as it was")


# --- approvals ---------------------------------------------------------------------------------


class ApprovalError(SupervisionError):
    """A rule of approvals refused a command (409 unless a subclass says otherwise)."""


class ApprovalAlreadyDecided(ApprovalError):
    """Granted, returned or withdrawn: an approval never changes again (409). A later
    revision is a new approval."""

    def __init__(self, approval_id: str, status: str) -> None:
        super().__init__(f"approval {approval_id} is {status}: a decided approval never changes")


class SelfApprovalNotAllowed(ApprovalError):
    """Four eyes: who asked for it does not decide on it (403)."""

    def __init__(self, approval_id: str, by: str) -> None:
        super().__init__(
            f"approval {approval_id} was requested by {by}: another supervisor decides on it"
        )


class NotAnApprover(ApprovalError):
    """The decider is neither the worker's supervisor nor their delegate now (nor, when the
    worker has no supervisor in the directory, a supervisor of the case's site and team)
    (403)."""

    def __init__(self, approval_id: str, by: str) -> None:
        super().__init__(
            f"{by} may not decide approval {approval_id}: the case's caseworker's supervisor "
            "or their delegate decides (or, without one in the directory, a supervisor of the "
            "case's site and team)"
        )


class ReasonRequired(ApprovalError):
    """A return says why (422)."""

    def __init__(self) -> None:
        super().__init__("a returned approval needs a reason")


# --- supervision sessions, case reviews, action items, escalations -----------------------------


class SessionError(SupervisionError):
    """A rule of supervision sessions refused a command (409)."""


class InvalidSessionRequest(SessionError):
    """A request that names something impossible (422, about one field)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class SessionAlreadyExists(SessionError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id} already exists: choose another id")


class SessionNotOpen(SessionError):
    """The session is not in a state that takes this command."""

    def __init__(self, session_id: str, status: str, hint: str) -> None:
        super().__init__(f"session {session_id} is {status}: {hint}")
        self.status = status


class AgendaNotPrepared(SessionError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id} has no agenda yet: prepare it first")


class CaseAlreadyReviewed(SessionError):
    def __init__(self, session_id: str, case_id: str) -> None:
        super().__init__(f"case {case_id} is already reviewed in session {session_id}")


class NotTheWorkersCase(SessionError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} is not held by the session's worker")


class NotTheSupervisor(SessionError):
    """Only someone who supervises the worker (or their delegate) runs their sessions."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"you do not supervise {worker_id} (per the directory)")


class SelfSupervision(SessionError):
    def __init__(self) -> None:
        super().__init__("a supervisor cannot hold a supervision session with themselves")


class NotTheWorker(SessionError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"only the session's worker acknowledges session {session_id}")


class ActionItemAlreadyExists(SessionError):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"action item {item_id} already exists")


class ActionItemAlreadyDone(SessionError):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"action item {item_id} is already done")


class ConcernAlreadyExists(SessionError):
    def __init__(self, concern_id: str) -> None:
        super().__init__(f"concern {concern_id} already exists")


class ConcernAlreadyResolved(SessionError):
    def __init__(self, concern_id: str) -> None:
        super().__init__(f"concern {concern_id} is already resolved")
