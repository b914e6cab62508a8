"""Why supervision refuses a command, in the words of the organisation directory.

The HTTP status of each is decided once, in `bootstrap`: 409 for a rule that refused
(`SupervisionError`), 404 for something not in the directory (`NotInDirectory`), 422 for an
impossible request about one field (`InvalidDirectoryEntry`, with a `field` attribute).
Messages name ids and codes, never anything about a client.
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


class AlreadySupervisedBy(SupervisionError):
    def __init__(self, staff_id: str, supervisor_id: str) -> None:
        super().__init__(f"{supervisor_id!r} already supervises {staff_id!r}")


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


# --- caseload weighting ------------------------------------------------------------------------


# --- approvals ---------------------------------------------------------------------------------


# --- supervision sessions, case reviews, action items, escalations -----------------------------
