"""The SupervisionSession aggregate (stream `session-<id>`): one supervision session and its
record.

    scheduled ──prepare──► prepared ──hold──► held ──acknowledge──► acknowledged
        │  ▲                  │  (prepare again: a fresh agenda; reviews, practice notes
        │  └──reschedule──────┤   and action items are recorded while prepared)
        └──────cancel─────────┴──► cancelled (with a reason; rescheduled as a new session)

Rules: a supervisor never supervises themselves; the agenda is prepared before anything is
recorded; a case is reviewed once per session; once held, the record is closed (it is
disclosable: nothing is edited after); only the worker acknowledges; a cancelled or held
session is not rescheduled (a cancelled one is replaced by a new session that names it).
Who may issue each command (the session's supervisor, the worker's current supervisor or
delegate) is checked by the application against the directory.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum

from casework.aggregate import Aggregate
from casework.contracts.supervision import (
    AgendaItem,
    CaseReviewRecorded,
    PracticeNoteRecorded,
    PracticeTopic,
    SessionKind,
    SupervisionAgendaPrepared,
    SupervisionRecordAcknowledged,
    SupervisionSessionCancelled,
    SupervisionSessionHeld,
    SupervisionSessionRescheduled,
    SupervisionSessionScheduled,
)
from casework.events import DomainEvent

from casework_supervision.domain.errors import (
    AgendaNotPrepared,
    CaseAlreadyReviewed,
    NotTheWorker,
    SelfSupervision,
    SessionAlreadyExists,
    SessionNotOpen,
)


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    PREPARED = "prepared"
    HELD = "held"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"


OPEN = (SessionStatus.SCHEDULED, SessionStatus.PREPARED)


def staff_subject(staff_id: str) -> str:
    """The data subject of notes about a member of staff's own practice: `staff:<id>` (ids
    the key store does not accept as they are get a stable hash)."""
    if re.fullmatch(r"[A-Za-z0-9._-]{1,128}", staff_id):
        return f"staff:{staff_id}"
    return "staff:h-" + hashlib.sha256(staff_id.encode()).hexdigest()[:40]


class SupervisionSession(Aggregate):
    stream_type = "session"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status: SessionStatus | None = None
        self.worker_id: str | None = None
        self.supervisor_id: str | None = None
        self.kind: SessionKind | None = None
        self.planned_for: datetime | None = None
        self.agenda: tuple[AgendaItem, ...] = ()
        self.reviewed: dict[str, str] = {}
        """case id → review id"""
        self.reviews: list[CaseReviewRecorded] = []
        self.notes: list[PracticeNoteRecorded] = []
        self.note_ids: list[str] = []
        self.status_at: dict[str, datetime] = {}
        self.cancelled: SupervisionSessionCancelled | None = None
        self.held_at: datetime | None = None
        self.replaces: str | None = None

    @property
    def worker(self) -> str:
        assert self.worker_id is not None
        return self.worker_id

    def _require(self, allowed: tuple[SessionStatus, ...], hint: str) -> None:
        if self.status not in allowed:
            raise SessionNotOpen(self.id, str(self.status), hint)

    def schedule(
        self,
        *,
        worker_id: str,
        supervisor_id: str,
        site: str | None,
        kind: SessionKind,
        planned_for: datetime,
        scheduled_by: str,
        now: datetime,
        replaces: str | None = None,
    ) -> None:
        if self.status is not None:
            raise SessionAlreadyExists(self.id)
        if worker_id == supervisor_id:
            raise SelfSupervision()
        self._trigger(
            SupervisionSessionScheduled(
                session_id=self.id,
                worker_id=worker_id,
                supervisor_id=supervisor_id,
                site=site,
                kind=kind,
                planned_for=planned_for,
                replaces=replaces,
                scheduled_by=scheduled_by,
                scheduled_at=now,
            )
        )

    def prepare(self, items: tuple[AgendaItem, ...], prepared_by: str, now: datetime) -> None:
        self._require(OPEN, "only a session still to be held is prepared")
        self._trigger(
            SupervisionAgendaPrepared(
                session_id=self.id,
                worker_id=self.worker,
                items=items,
                prepared_by=prepared_by,
                prepared_at=now,
            )
        )

    def _require_prepared(self) -> None:
        if self.status is SessionStatus.SCHEDULED:
            raise AgendaNotPrepared(self.id)
        self._require((SessionStatus.PREPARED,), "its record is closed")

    def record_review(
        self,
        *,
        review_id: str,
        case_id: str,
        client_id: str,
        risk_level: str | None,
        findings: str,
        decision: str,
        reasons: str,
        reviewed_by: str,
        now: datetime,
    ) -> None:
        self._require_prepared()
        if case_id in self.reviewed:
            raise CaseAlreadyReviewed(self.id, case_id)
        self._trigger(
            CaseReviewRecorded(
                session_id=self.id,
                review_id=review_id,
                case_id=case_id,
                client_id=client_id,
                worker_id=self.worker,
                risk_level=risk_level,
                findings=findings,
                decision=decision,
                reasons=reasons,
                reviewed_by=reviewed_by,
                reviewed_at=now,
            )
        )

    def record_practice_note(
        self, *, note_id: str, topic: PracticeTopic, text: str, recorded_by: str, now: datetime
    ) -> None:
        self._require_prepared()
        if note_id in self.note_ids:
            return  # the same note sent again
        self._trigger(
            PracticeNoteRecorded(
                session_id=self.id,
                note_id=note_id,
                worker_id=self.worker,
                worker_subject=staff_subject(self.worker),
                topic=topic,
                text=text,
                recorded_by=recorded_by,
                recorded_at=now,
            )
        )

    def require_recording(self) -> None:
        """Action items are set while the session is prepared (their own streams)."""
        self._require_prepared()

    def hold(self, recorded_by: str, now: datetime, site: str | None = None) -> None:
        self._require_prepared()
        assert self.supervisor_id is not None
        self._trigger(
            SupervisionSessionHeld(
                session_id=self.id,
                worker_id=self.worker,
                supervisor_id=self.supervisor_id,
                site=site or self.site,
                held_at=now,
                reviewed_case_ids=tuple(self.reviewed),
                recorded_by=recorded_by,
            )
        )

    def acknowledge(self, by: str, now: datetime) -> None:
        if by != self.worker_id:
            raise NotTheWorker(self.id)
        if self.status is SessionStatus.ACKNOWLEDGED:
            return
        self._require((SessionStatus.HELD,), "only a held session's record is acknowledged")
        self._trigger(
            SupervisionRecordAcknowledged(
                session_id=self.id, worker_id=self.worker, acknowledged_at=now
            )
        )

    def cancel(
        self, *, reason: str, cancelled_by: str, now: datetime, rescheduled_as: str | None
    ) -> None:
        self._require(OPEN, "only a session still to be held is cancelled")
        self._trigger(
            SupervisionSessionCancelled(
                session_id=self.id,
                worker_id=self.worker,
                worker_subject=staff_subject(self.worker),
                reason=reason,
                rescheduled_as=rescheduled_as,
                cancelled_by=cancelled_by,
                cancelled_at=now,
            )
        )

    def reschedule(self, planned_for: datetime, by: str, now: datetime) -> None:
        self._require(OPEN, "only a session still to be held is rescheduled")
        assert self.planned_for is not None
        if planned_for == self.planned_for:
            return
        self._trigger(
            SupervisionSessionRescheduled(
                session_id=self.id,
                worker_id=self.worker,
                planned_for=planned_for,
                previous_planned_for=self.planned_for,
                rescheduled_by=by,
                rescheduled_at=now,
            )
        )

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case SupervisionSessionScheduled():
                self.status_at["scheduled"] = event.scheduled_at
                self.status = SessionStatus.SCHEDULED
                self.worker_id = event.worker_id
                self.supervisor_id = event.supervisor_id
                self.site = event.site
                self.kind = event.kind
                self.planned_for = event.planned_for
                self.replaces = event.replaces
            case SupervisionAgendaPrepared():
                self.status = SessionStatus.PREPARED
                self.status_at["prepared"] = event.prepared_at
                self.agenda = event.items
            case CaseReviewRecorded():
                self.reviewed[event.case_id] = event.review_id
                self.reviews.append(event)
            case PracticeNoteRecorded():
                self.note_ids.append(event.note_id)
                self.notes.append(event)
            case SupervisionSessionHeld():
                self.status = SessionStatus.HELD
                self.status_at["held"] = event.held_at
                self.held_at = event.held_at
            case SupervisionRecordAcknowledged():
                self.status = SessionStatus.ACKNOWLEDGED
                self.status_at["acknowledged"] = event.acknowledged_at
            case SupervisionSessionCancelled():
                self.status = SessionStatus.CANCELLED
                self.status_at["cancelled"] = event.cancelled_at
                self.cancelled = event
            case SupervisionSessionRescheduled():
                self.planned_for = event.planned_for
