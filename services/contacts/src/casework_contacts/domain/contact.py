"""The Contact aggregate: one contact with (or about) a case's client, from plan to record.

    (new) --ContactScheduled--> scheduled --ContactLogged--> logged
    (new) --ContactLogged (unscheduled)--> logged
    scheduled --ContactMissed--> missed
    scheduled --ContactCancelled--> cancelled
    logged --ContactCorrected--> logged (an addendum, or struck through; never edited away)

A home visit also carries the lone worker's safety: `LoneWorkerCheckedIn` (due back by
check-in + expected duration + grace), `LoneWorkerCheckedOut`, and `LoneWorkerOverdue` — raised
at most once per check-in, and only while the worker has not checked out.

`handle` decides every command with one `match (status, command)`: read it as the table of
what each status allows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from casework.aggregate import Aggregate
from casework.contracts.contacts import (
    ContactCancelled,
    ContactCorrected,
    ContactLogged,
    ContactMissed,
    ContactScheduled,
    CorrectionKind,
    LoneWorkerCheckedIn,
    LoneWorkerCheckedOut,
    LoneWorkerOverdue,
    Medium,
    Outcome,
    Participant,
)
from casework.events import DomainEvent

from casework_contacts.domain.commands import (
    CancelContact,
    CaseRef,
    CheckIn,
    CheckOut,
    ContactCommand,
    CorrectContact,
    LogContact,
    MarkMissed,
    RaiseLoneWorkerOverdue,
    ScheduleContact,
)
from casework_contacts.domain.errors import (
    AlreadyStruckThrough,
    ContactAlreadyExists,
    ContactNotLogged,
    ContactNotScheduled,
    CorrectionIdUsed,
    InvalidContact,
    LoneWorkerStateConflict,
)


class Status(StrEnum):
    SCHEDULED = "scheduled"
    LOGGED = "logged"
    MISSED = "missed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Visit:
    """A lone worker's check-in at a home visit."""

    worker_id: str
    checked_in_at: datetime
    due_back_at: datetime
    checked_out_at: datetime | None = None
    overdue_raised: bool = False


class Contact(Aggregate):
    stream_type = "contact"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status: Status | None = None
        self.case_id: str | None = None
        self.client_id: str | None = None
        self.medium: Medium | None = None
        self.participants: tuple[Participant, ...] = ()
        self.planned_for: datetime | None = None
        self.assigned_to: str | None = None
        self.outcome: Outcome | None = None
        self.occurred_at: datetime | None = None
        self.correction_ids: list[str] = []
        self.struck_through = False
        self.visit: Visit | None = None

    @property
    def case(self) -> CaseRef:
        # every stored contact has them
        assert self.case_id is not None
        assert self.client_id is not None
        assert self.site is not None
        return CaseRef(self.case_id, self.client_id, self.site)

    # -- deciding ---------------------------------------------------------------------------

    def handle(self, command: ContactCommand, at: datetime) -> None:
        """Decide `command` at time `at`: trigger its events, or raise a `ContactError`."""
        status = self.status
        match (status, command):
            case (None, ScheduleContact() as c):
                self._schedule(c, at)
            case (_, ScheduleContact()):
                raise ContactAlreadyExists(self.id)
            case (None | Status.SCHEDULED, LogContact() as c):
                self._log(c, at)
            case (_, LogContact()):
                raise self._not_scheduled(
                    "a logged, missed or cancelled contact is not logged "
                    "again; correct it, or log a new contact"
                )
            case (Status.SCHEDULED, MarkMissed() as c):
                self._miss(c, at)
            case (Status.SCHEDULED, CancelContact() as c):
                self._cancel(c, at)
            case (_, MarkMissed() | CancelContact()):
                raise self._not_scheduled("only a scheduled contact is missed or cancelled")
            case (Status.LOGGED, CorrectContact() as c):
                self._correct(c, at)
            case (_, CorrectContact()):
                raise ContactNotLogged(self.id)
            case (Status.SCHEDULED | Status.LOGGED, CheckIn() as c):
                self._check_in(c, at)
            case (_, CheckIn()):
                raise self._not_scheduled("check in at a scheduled home visit")
            case (_, CheckOut() as c):
                self._check_out(c, at)
            case (_, RaiseLoneWorkerOverdue() as c):
                self._raise_overdue(c, at)
            case _:  # pragma: no cover - every command is matched above
                raise TypeError(f"not a contact command: {command!r}")

    def _not_scheduled(self, hint: str) -> ContactNotScheduled:
        return ContactNotScheduled(self.id, str(self.status or "not found"), hint)

    # -- the steps ----------------------------------------------------------------------------

    def _schedule(self, c: ScheduleContact, at: datetime) -> None:
        if c.window_ends_at is not None and c.window_ends_at < c.planned_for:
            raise InvalidContact("the window ends before the planned time", "body.window_ends_at")
        if (c.window_ends_at or c.planned_for) < at:
            raise InvalidContact("a contact is scheduled for the future", "body.planned_for")
        self._trigger(
            ContactScheduled(
                contact_id=self.id,
                case_id=c.case.case_id,
                client_id=c.case.client_id,
                site=c.case.site,
                medium=c.medium,
                participants=c.participants,
                planned_for=c.planned_for,
                window_ends_at=c.window_ends_at,
                assigned_to=c.assigned_to,
                purpose=c.purpose,
                follow_up_of=c.follow_up_of,
                expected_duration_minutes=c.expected_duration_minutes,
                scheduled_by=c.scheduled_by,
                scheduled_at=at,
            )
        )

    def _log(self, c: LogContact, at: datetime) -> None:
        if c.occurred_at > at:
            raise InvalidContact(
                "a contact is logged once it happened, never in the future", "body.occurred_at"
            )
        if c.outcome is Outcome.ATTEMPTED and c.attempt_reason is None:
            raise InvalidContact(
                "an attempted contact says why it did not happen", "body.attempt_reason"
            )
        if c.outcome is Outcome.MADE and c.attempt_reason is not None:
            raise InvalidContact("a made contact has no attempt reason", "body.attempt_reason")
        if self.status is Status.SCHEDULED and c.case.case_id != self.case_id:
            raise InvalidContact("the scheduled contact belongs to another case", "path.case_id")
        self._trigger(
            ContactLogged(
                contact_id=self.id,
                case_id=c.case.case_id,
                client_id=c.case.client_id,
                site=c.case.site,
                medium=c.medium,
                occurred_at=c.occurred_at,
                duration_minutes=c.duration_minutes,
                travel_minutes=c.travel_minutes,
                participants=c.participants,
                outcome=c.outcome,
                attempt_reason=c.attempt_reason,
                notes=c.notes,
                wellbeing=c.wellbeing,
                safety_plan_reviewed=c.safety_plan_reviewed,
                follow_up_needed=c.follow_up_needed,
                was_scheduled=self.status is Status.SCHEDULED,
                logged_by=c.logged_by,
                logged_at=at,
            )
        )

    def _miss(self, c: MarkMissed, at: datetime) -> None:
        missed_at = c.missed_at or at
        if missed_at > at:
            raise InvalidContact("a contact is recorded as missed once it was", "body.missed_at")
        self._trigger(
            ContactMissed(
                **self._refs(),
                reason=c.reason,
                missed_at=missed_at,
                recorded_by=c.recorded_by,
                recorded_at=at,
            )
        )

    def _cancel(self, c: CancelContact, at: datetime) -> None:
        self._trigger(
            ContactCancelled(
                **self._refs(), reason=c.reason, cancelled_by=c.cancelled_by, cancelled_at=at
            )
        )

    def _correct(self, c: CorrectContact, at: datetime) -> None:
        if c.correction_id in self.correction_ids:
            raise CorrectionIdUsed(self.id, c.correction_id)
        if c.kind is CorrectionKind.STRUCK_THROUGH and self.struck_through:
            raise AlreadyStruckThrough(self.id)
        self._trigger(
            ContactCorrected(
                **self._refs(),
                correction_id=c.correction_id,
                kind=c.kind,
                text=c.text,
                corrected_by=c.corrected_by,
                corrected_at=at,
            )
        )

    def _check_in(self, c: CheckIn, at: datetime) -> None:
        if self.medium is not Medium.HOME_VISIT:
            raise LoneWorkerStateConflict(self.id, "lone-worker check-in is for home visits")
        if self.visit is not None:
            raise LoneWorkerStateConflict(self.id, "already checked in at this visit")
        due_back = at + c.grace + _minutes(c.expected_duration_minutes)
        self._trigger(
            LoneWorkerCheckedIn(
                contact_id=self.id,
                case_id=self.case.case_id,
                site=self.case.site,
                worker_id=c.worker_id,
                checked_in_at=at,
                expected_duration_minutes=c.expected_duration_minutes,
                due_back_at=due_back,
            )
        )

    def _check_out(self, c: CheckOut, at: datetime) -> None:
        visit = self.visit
        if visit is None:
            raise LoneWorkerStateConflict(self.id, "nobody checked in at this visit")
        if visit.checked_out_at is not None:
            raise LoneWorkerStateConflict(self.id, "already checked out")
        self._trigger(
            LoneWorkerCheckedOut(
                contact_id=self.id,
                case_id=self.case.case_id,
                site=self.case.site,
                worker_id=visit.worker_id,
                checked_out_at=at,
            )
        )

    def _raise_overdue(self, c: RaiseLoneWorkerOverdue, at: datetime) -> None:
        # Sent by a deadline: nothing to refuse, only to decide. Not overdue once checked out,
        # raised already, or when the deadline belongs to another check-in.
        visit = self.visit
        if (
            visit is None
            or visit.checked_out_at is not None
            or visit.overdue_raised
            or visit.due_back_at != c.due_back_at
            or at < visit.due_back_at
        ):
            return
        self._trigger(
            LoneWorkerOverdue(
                contact_id=self.id,
                case_id=self.case.case_id,
                site=self.case.site,
                worker_id=visit.worker_id,
                team=c.team,
                checked_in_at=visit.checked_in_at,
                due_back_at=visit.due_back_at,
                raised_at=at,
            )
        )

    def _refs(self) -> dict[str, str]:
        case = self.case
        return {
            "contact_id": self.id,
            "case_id": case.case_id,
            "client_id": case.client_id,
            "site": case.site,
        }

    # -- evolving -----------------------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ContactScheduled():
                self._of_case(event)
                self.status = Status.SCHEDULED
                self.planned_for = event.planned_for
                self.assigned_to = event.assigned_to
            case ContactLogged():
                self._of_case(event)
                self.status = Status.LOGGED
                self.outcome = event.outcome
                self.occurred_at = event.occurred_at
            case ContactMissed():
                self.status = Status.MISSED
            case ContactCancelled():
                self.status = Status.CANCELLED
            case ContactCorrected():
                self.correction_ids.append(event.correction_id)
                if event.kind is CorrectionKind.STRUCK_THROUGH:
                    self.struck_through = True
            case LoneWorkerCheckedIn():
                self.visit = Visit(event.worker_id, event.checked_in_at, event.due_back_at)
            case LoneWorkerCheckedOut() if self.visit is not None:
                self.visit = replace(self.visit, checked_out_at=event.checked_out_at)
            case LoneWorkerOverdue() if self.visit is not None:
                self.visit = replace(self.visit, overdue_raised=True)

    def _of_case(self, event: ContactScheduled | ContactLogged) -> None:
        """What scheduling and logging both record: the case, its client and site, the
        medium and who took part (a log against a schedule may correct the last two)."""
        self.case_id, self.client_id, self.site = event.case_id, event.client_id, event.site
        self.medium = event.medium
        self.participants = event.participants


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
