"""The Rota aggregate: a site's on-call crisis rota (stream `rota-<site>`).

Rules: a shift starts and ends on a whole minute, ends after it starts, within 14 days, and
not in the past; its worker and its backup are different people, active, working at the site
and holding `crisis_worker` or `supervisor`; the live (not cancelled) shifts of a site never
overlap, so at any moment at most one shift is on call (a shift covers `starts_at <= t <
ends_at`: back-to-back shifts hand over at the minute). A shift is cancelled until it is over,
and the rota keeps what was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from casework.aggregate import Aggregate
from casework.contracts.supervision import OnCallShiftCancelled, OnCallShiftScheduled
from casework.events import DomainEvent

from casework_supervision.domain.commands import (
    ON_CALL_ROLES,
    CancelOnCallShift,
    ScheduleOnCallShift,
)
from casework_supervision.domain.errors import (
    InvalidDirectoryEntry,
    NotOnCallEligible,
    ShiftAlreadyCancelled,
    ShiftAlreadyOver,
    ShiftIdUsed,
    ShiftNotFound,
    ShiftOverlaps,
    StaffMemberHasLeft,
    StaffMemberNotFound,
)
from casework_supervision.domain.staff import StaffMember

LONGEST_SHIFT = timedelta(days=14)


@dataclass(frozen=True)
class Shift:
    shift_id: str
    staff_id: str
    backup_id: str | None
    starts_at: datetime
    ends_at: datetime
    cancelled: bool = False

    def covers(self, at: datetime) -> bool:
        return not self.cancelled and self.starts_at <= at < self.ends_at


class Rota(Aggregate):
    stream_type = "rota"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.site = id
        self.shifts: dict[str, Shift] = {}

    def on_call(self, at: datetime) -> Shift | None:
        return next((s for s in self.shifts.values() if s.covers(at)), None)

    def upcoming(self, after: datetime, limit: int = 50) -> list[Shift]:
        """Live shifts that end after `after`, earliest first."""
        live = [s for s in self.shifts.values() if not s.cancelled and s.ends_at > after]
        return sorted(live, key=lambda s: s.starts_at)[:limit]

    def rostering(self, staff_id: str, at: datetime) -> list[str]:
        """Live shifts not over at `at` that name `staff_id` as worker or backup."""
        return [s.shift_id for s in self.upcoming(at, limit=10_000) if staff_id in _people(s)]

    def schedule(
        self,
        cmd: ScheduleOnCallShift,
        worker: StaffMember,
        backup: StaffMember | None,
        at: datetime,
    ) -> None:
        if cmd.shift_id in self.shifts:
            raise ShiftIdUsed(self.id, cmd.shift_id)
        for field, value in (("starts_at", cmd.starts_at), ("ends_at", cmd.ends_at)):
            if value.second or value.microsecond:
                raise InvalidDirectoryEntry(
                    "shifts start and end on a whole minute", f"body.{field}"
                )
        if cmd.ends_at <= cmd.starts_at:
            raise InvalidDirectoryEntry("a shift ends after it starts", "body.ends_at")
        if cmd.ends_at - cmd.starts_at > LONGEST_SHIFT:
            raise InvalidDirectoryEntry("a shift lasts 14 days at most", "body.ends_at")
        if cmd.ends_at <= at:
            raise InvalidDirectoryEntry("a shift ends in the future", "body.ends_at")
        self._check_eligible(worker)
        if backup is not None:
            if backup.id == worker.id:
                raise InvalidDirectoryEntry(
                    "the backup is someone other than the on-call worker", "body.backup_id"
                )
            self._check_eligible(backup)
        for other in self.shifts.values():
            if (
                not other.cancelled
                and other.starts_at < cmd.ends_at
                and cmd.starts_at < other.ends_at
            ):
                raise ShiftOverlaps(self.id, other.shift_id)
        self._trigger(
            OnCallShiftScheduled(
                site=self.id,
                shift_id=cmd.shift_id,
                staff_id=worker.id,
                backup_id=backup.id if backup else None,
                starts_at=cmd.starts_at,
                ends_at=cmd.ends_at,
                scheduled_by=cmd.scheduled_by,
                scheduled_at=at,
            )
        )

    def cancel(self, cmd: CancelOnCallShift, at: datetime) -> None:
        shift = self.shifts.get(cmd.shift_id)
        if shift is None:
            raise ShiftNotFound(self.id, cmd.shift_id)
        if shift.cancelled:
            raise ShiftAlreadyCancelled(cmd.shift_id)
        if shift.ends_at <= at:
            raise ShiftAlreadyOver(cmd.shift_id)
        self._trigger(
            OnCallShiftCancelled(
                site=self.id, shift_id=cmd.shift_id, cancelled_by=cmd.cancelled_by, cancelled_at=at
            )
        )

    def _check_eligible(self, member: StaffMember) -> None:
        if not member.registered:
            raise StaffMemberNotFound(member.id)
        if not member.active:
            raise StaffMemberHasLeft(member.id)
        if not member.works_at(self.id) or not member.holds(*ON_CALL_ROLES):
            raise NotOnCallEligible(member.id, self.id)

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case OnCallShiftScheduled():
                self.shifts[event.shift_id] = Shift(
                    event.shift_id, event.staff_id, event.backup_id, event.starts_at, event.ends_at
                )
            case OnCallShiftCancelled():
                found = self.shifts.get(event.shift_id)
                if found is not None:
                    self.shifts[event.shift_id] = Shift(
                        found.shift_id,
                        found.staff_id,
                        found.backup_id,
                        found.starts_at,
                        found.ends_at,
                        cancelled=True,
                    )


def _people(shift: Shift) -> tuple[str, ...]:
    return (shift.staff_id, shift.backup_id) if shift.backup_id else (shift.staff_id,)
