"""Who an escalation level's targets name at a given moment, from the local projections.

| target            | resolved as                                                       |
|-------------------|-------------------------------------------------------------------|
| `assigned_worker` | the alert's worker (the case's caseworker, the lone worker, the   |
|                   | action item's owner, the worker whose supervision is overdue)     |
| `on_call`         | the site's on-call crisis worker at that moment (`KnownRota`)     |
| `backup`          | that shift's backup                                               |
| `supervisor`      | the worker's supervisor, and their delegate at that moment; for   |
|                   | an approval: who may decide it, with supervision's fallback to    |
|                   | the site's supervisors of the case's team (`domain.approvers`)    |
| `site_manager`    | the active `site_manager`s of the site                            |
| `regional`        | the active `regional_admin`s listed at the site                   |
| `staff:<id>`      | that person                                                       |

A target that names nobody is reported (`unresolved`), never an error: the other targets
are still notified, and the crisis board shows the gap. Leavers are never notified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casework_notifications.application.ports import Rota, StaffDirectory
from casework_notifications.domain.approvers import fallback_deciders, named_deciders
from casework_notifications.domain.commands import Recipients


@dataclass(frozen=True)
class Subject:
    site: str
    worker_id: str | None
    approval: bool = False
    """An approval notice: `supervisor` means who may decide it (`domain.approvers`)."""
    team: str | None = None
    never: tuple[str, ...] = ()
    """Who may not decide (the requester)."""


@dataclass
class RecipientResolver:
    staff: StaffDirectory
    rota: Rota

    async def resolve(self, targets: tuple[str, ...], subject: Subject, at: datetime) -> Recipients:
        ids: list[str] = []
        unresolved: list[str] = []
        shift = None
        if {"on_call", "backup"} & set(targets):
            shift = await self.rota.on_call(subject.site, at)
        for target in targets:
            found: list[str] = []
            if target == "assigned_worker" and subject.worker_id:
                found = [subject.worker_id]
            elif target == "on_call" and shift is not None:
                found = [shift.staff_id]
            elif target == "backup" and shift is not None and shift.backup_id:
                found = [shift.backup_id]
            elif target == "supervisor" and subject.approval:
                found = list(await self._deciders(subject, at))
            elif target == "supervisor" and subject.worker_id:
                found = list(await self.staff.supervisors_of(subject.worker_id, at))
            elif target == "site_manager":
                found = [s.staff_id for s in await self.staff.with_role(subject.site, target)]
            elif target == "regional":
                managers = await self.staff.with_role(subject.site, "regional_admin")
                found = [s.staff_id for s in managers]
            elif target.startswith("staff:"):
                found = [target.removeprefix("staff:")]
            found = [f for f in found if await self._active(f)]
            if not found:
                unresolved.append(target)
            ids.extend(found)
        return Recipients(tuple(dict.fromkeys(ids)), tuple(unresolved))

    async def on_call(self, site: str, at: datetime) -> tuple[tuple[str, str], ...]:
        """(target, person) of the shift covering `at`, leavers left out."""
        shift = await self.rota.on_call(site, at)
        if shift is None:
            return ()
        return await self.active_people((("on_call", shift.staff_id), ("backup", shift.backup_id)))

    async def active_people(
        self, people: tuple[tuple[str, str | None], ...]
    ) -> tuple[tuple[str, str], ...]:
        """The (target, person) pairs naming someone who has not left."""
        return tuple([(t, p) for t, p in people if p and await self._active(p)])

    async def _deciders(self, subject: Subject, at: datetime) -> tuple[str, ...]:
        named: tuple[str, ...] = ()
        if subject.worker_id:
            named = await self.staff.supervisors_of(subject.worker_id, at)
        found = named_deciders(named, subject.never)
        if found:
            return found
        site_supervisors = await self.staff.with_role(subject.site, "supervisor")
        return fallback_deciders(
            ((s.staff_id, s.team) for s in site_supervisors), subject.team, subject.never
        )

    async def _active(self, staff_id: str) -> bool:
        member = await self.staff.get(staff_id)
        return member is None or member.active  # unknown here yet: notify rather than drop
