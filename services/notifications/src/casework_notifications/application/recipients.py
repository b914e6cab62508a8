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

import asyncio
from dataclasses import dataclass
from datetime import datetime

from casework_notifications.application.ports import Rota, Shift, StaffDirectory
from casework_notifications.domain.approvers import fallback_deciders, named_deciders
from casework_notifications.domain.commands import Recipients


async def _no_shift() -> Shift | None:
    return None


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
        """Who `targets` name at `at`, in target order, each once, leavers left out.

        The reads go in two rounds of concurrent reads, not one read after another: the
        shift and every target that does not depend on it, then whether each person found is
        still active. The same reads as one by one, so the same answer (a crisis's first
        level, worker + on-call, took three reads in a row; now two rounds)."""
        shift_targets = {"on_call", "backup"}
        shift_read = self.rota.on_call(subject.site, at) if shift_targets & set(targets) else None
        shift, named = await asyncio.gather(
            shift_read or _no_shift(),
            asyncio.gather(*(self._named(t, subject, at) for t in targets)),
        )
        per_target: list[list[str]] = []
        for target, found in zip(targets, named, strict=True):
            if target == "on_call" and shift is not None:
                found = [shift.staff_id]
            elif target == "backup" and shift is not None and shift.backup_id:
                found = [shift.backup_id]
            per_target.append(found)
        people = list(dict.fromkeys(p for found in per_target for p in found))
        active = dict(zip(people, await asyncio.gather(*map(self._active, people)), strict=True))
        ids: list[str] = []
        unresolved: list[str] = []
        for target, found in zip(targets, per_target, strict=True):
            found = [f for f in found if active[f]]
            if not found:
                unresolved.append(target)
            ids.extend(found)
        return Recipients(tuple(dict.fromkeys(ids)), tuple(unresolved))

    async def _named(self, target: str, subject: Subject, at: datetime) -> list[str]:
        """Whom a target names that is not the shift's (leavers not yet left out)."""
        if target == "assigned_worker" and subject.worker_id:
            return [subject.worker_id]
        if target == "supervisor" and subject.approval:
            return list(await self._deciders(subject, at))
        if target == "supervisor" and subject.worker_id:
            return list(await self.staff.supervisors_of(subject.worker_id, at))
        if target == "site_manager":
            return [s.staff_id for s in await self.staff.with_role(subject.site, target)]
        if target == "regional":
            return [s.staff_id for s in await self.staff.with_role(subject.site, "regional_admin")]
        if target.startswith("staff:"):
            return [target.removeprefix("staff:")]
        return []

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
