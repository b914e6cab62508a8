"""An in-memory stand-in for the directory's local copy (`casework.directory.KnownStaff`),
with the pinned interface: supervisors first, then delegates active at `at`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FakeStaff:
    staff_id: str
    site: str
    team: str | None
    roles: tuple[str, ...]


@dataclass
class FakeDirectory:
    supervisor_of: dict[str, str] = field(default_factory=dict)
    delegations: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)
    """(supervisor, delegate, starts_at, ends_at)."""
    staff: list[FakeStaff] = field(default_factory=list)

    def delegates(self, supervisor: str, at: datetime) -> list[str]:
        return [d for s, d, start, end in self.delegations if s == supervisor and start <= at < end]

    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]:
        supervisor = self.supervisor_of.get(staff_id)
        if supervisor is None:
            return ()
        return (supervisor, *self.delegates(supervisor, at))

    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]:
        found = [w for w, s in self.supervisor_of.items() if s == supervisor_id]
        for s, d, start, end in self.delegations:
            if d == supervisor_id and start <= at < end:
                found += [w for w, sup in self.supervisor_of.items() if sup == s]
        return tuple(dict.fromkeys(found))

    async def with_role(self, site: str, role: str) -> Sequence[FakeStaff]:
        return [s for s in self.staff if s.site == site and role in s.roles]
