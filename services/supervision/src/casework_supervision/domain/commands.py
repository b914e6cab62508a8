"""Commands the supervision service accepts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class RegisterSite:
    site: str
    name: str
    timezone: str | None = None


# --- organisation directory --------------------------------------------------------------------

STAFF_ROLES = frozenset(
    {
        "intake_worker",
        "caseworker",
        "supervisor",
        "crisis_worker",
        "site_manager",
        "regional_admin",
    }
)
"""The platform roles a member of staff can hold (`integration` and `ops` are machines)."""

ON_CALL_ROLES = frozenset({"crisis_worker", "supervisor"})


@dataclass(frozen=True)
class RegisterTeam:
    site: str
    team: str
    name: str


@dataclass(frozen=True)
class StaffProfile:
    """Everything the directory says about a member of staff, as `StaffProfileEvent` carries
    it."""

    name: str
    sites: tuple[str, ...]
    roles: tuple[str, ...]
    started_on: date
    email: str | None = None
    team: str | None = None
    newly_qualified: bool = False
    capacity_points: int | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class RegisterStaffMember:
    staff_id: str
    profile: StaffProfile


@dataclass(frozen=True)
class ChangeStaffProfile:
    staff_id: str
    profile: StaffProfile


@dataclass(frozen=True)
class RecordStaffMemberLeft:
    staff_id: str


@dataclass(frozen=True)
class AssignSupervisor:
    staff_id: str
    supervisor_id: str
    assigned_by: str


@dataclass(frozen=True)
class DelegateSupervision:
    supervisor_id: str
    delegation_id: str
    delegate_id: str
    starts_at: datetime
    ends_at: datetime
    delegated_by: str


@dataclass(frozen=True)
class EndDelegation:
    supervisor_id: str
    delegation_id: str
    ended_by: str


@dataclass(frozen=True)
class ScheduleOnCallShift:
    site: str
    shift_id: str
    staff_id: str
    backup_id: str | None
    starts_at: datetime
    ends_at: datetime
    scheduled_by: str


@dataclass(frozen=True)
class CancelOnCallShift:
    site: str
    shift_id: str
    cancelled_by: str
