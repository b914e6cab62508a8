"""Test support for the notifications service: an in-memory organisation directory and rota
with the shapes of `casework.directory.StaffFacts` / `OnCall` (for unit tests, and for
integration tests that are about notifications rather than the directory)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Staff:
    staff_id: str
    email: str | None = None
    timezone: str | None = None
    active: bool = True
    sites: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    supervisor_id: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class Shift:
    site: str
    staff_id: str
    backup_id: str | None
    starts_at: datetime
    ends_at: datetime


@dataclass
class FakeDirectory:
    """`KnownStaff` and `KnownRota` in memory."""

    staff: dict[str, Staff] = field(default_factory=dict)
    shifts: list[Shift] = field(default_factory=list)
    delegations: dict[str, str] = field(default_factory=dict)

    def add(self, member: Staff) -> None:
        self.staff[member.staff_id] = member

    async def get(self, staff_id: str) -> Staff | None:
        return self.staff.get(staff_id)

    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]:
        member = self.staff.get(staff_id)
        if member is None or member.supervisor_id is None:
            return ()
        delegate = self.delegations.get(member.supervisor_id)
        return (member.supervisor_id, delegate) if delegate else (member.supervisor_id,)

    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]:
        """Direct supervisees, and those of supervisors delegating to them."""
        whose = {supervisor_id} | {s for s, d in self.delegations.items() if d == supervisor_id}
        return tuple(s.staff_id for s in self.staff.values() if s.supervisor_id in whose)

    async def with_role(self, site: str, role: str) -> Sequence[Staff]:
        return [s for s in self.staff.values() if s.active and site in s.sites and role in s.roles]

    async def on_call(self, site: str, at: datetime) -> Shift | None:
        for shift in self.shifts:
            if shift.site == site and shift.starts_at <= at < shift.ends_at:
                return shift
        return None


def crisis_directory(site: str, t0: datetime, *, mail_domain: str = "agency.test") -> FakeDirectory:
    """A site with a worker (`wendy`) supervised by `sam` (delegating to `dora`), on-call
    `olga` with backup `ben`, site manager `mia` and regional admin `rex`."""
    from datetime import timedelta

    directory = FakeDirectory()
    for sid, roles, sup in (
        ("wendy", ("caseworker",), "sam"),
        ("sam", ("supervisor",), None),
        ("dora", ("supervisor",), None),
        ("olga", ("crisis_worker",), None),
        ("ben", ("crisis_worker",), None),
        ("mia", ("site_manager",), None),
        ("rex", ("regional_admin",), None),
    ):
        directory.add(
            Staff(sid, email=f"{sid}@{mail_domain}", sites=(site,), roles=roles, supervisor_id=sup)
        )
    directory.delegations["sam"] = "dora"
    directory.shifts.append(
        Shift(site, "olga", "ben", t0 - timedelta(hours=1), t0 + timedelta(hours=12))
    )
    return directory
