"""How supervision sessions react to events (`when_<event>_<action>`), and what their
durable deadlines do when they fire.

- `when_case_changed_track_review_cadence` (cases topic): the case's facts to its review
  cadence;
- `when_staff_or_session_changed_track_cadences` (supervision topic): a staff profile, a
  supervisor assigned or a leaver to the worker's cadence; a review recorded or a session
  held to the cadences (a backstop: the session handler does it first);
- `when_cadence_changed_keep_deadlines` (supervision topic): schedules and cancels the due,
  overdue and action-item deadlines.

Each is idempotent: the cadences decide (a fact repeated changes nothing; an older session
held moves nothing), and scheduling what is scheduled changes nothing (`casework.deadlines`).
Each cadence aggregate takes its facts from one ordered stream (a case's, a staff member's),
so a redelivery replays them in order and ends where it was. Deadlines send commands; the
aggregates decide whether anything is due or overdue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from casework.contracts.supervision import (
    ActionItemDone,
    ActionItemOverdue,
    ActionItemSet,
    CaseReviewCadenceSet,
    CaseReviewRecorded,
    StaffMemberLeft,
    StaffMemberRegistered,
    StaffProfileChanged,
    SupervisionCadenceSet,
    SupervisionSessionHeld,
    SupervisorAssigned,
)
from casework.deadlines import Deadline, DeadlineHandler, Deadlines
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.projections import EventHandler, ReadModel
from casework.runtime import events_topic

from casework_supervision.adapters.case_facts import change_of
from casework_supervision.adapters.deadline_plans import DeadlinePlans
from casework_supervision.application.sessions import Sessions
from casework_supervision.domain.cadence import CadencePolicy, SupervisionCadence

SUPERVISION_DUE = "supervision_due"
SUPERVISION_OVERDUE = "supervision_overdue"
REVIEW_DUE = "case_review_due"
REVIEW_OVERDUE = "case_review_overdue"
ACTION_OVERDUE = "action_item_overdue"
CADENCE_FACTS = ("site", "team", "caseworker_id", "risk_level", "open", "opened_at")


def _context(envelope: Envelope) -> CommitContext:
    return CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)


class WhenCaseChangedTrackReviewCadence(EventHandler):
    """A case's facts (site, team, caseworker, risk, open or closed, opened) go to its review
    cadence, from the case's own stream, in order."""

    name = "when_case_changed_track_review_cadence"
    topics = (events_topic("cases"),)

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change = change_of(envelope, event)
        if change is None:
            return False
        facts = {k: v for k, v in change.items() if k in CADENCE_FACTS}
        if not facts:
            return False
        case_id: str = getattr(event, "case_id")  # noqa: B009 - every cases event has one
        return await self._sessions.note_case(
            case_id, facts, envelope.stream_version, _context(envelope)
        )


class WhenStaffOrSessionChangedTrackCadences(EventHandler):
    """The directory's events about a worker (their profile, their supervisor, their leaving)
    go to the worker's supervision cadence; a review recorded or a session held moves the
    cadences on (again: the session handler did it already, unless it failed)."""

    name = "when_staff_or_session_changed_track_cadences"
    topics = (events_topic("supervision"),)

    def __init__(self, sessions: Sessions, policy: CadencePolicy) -> None:
        self._sessions = sessions
        self._policy = policy

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        ctx = _context(envelope)
        sessions = self._sessions
        policy = self._policy
        now = sessions.clock.now
        match event:
            case StaffMemberRegistered() | StaffProfileChanged():
                profile = event

                def noted(c: SupervisionCadence) -> None:
                    c.note_profile(
                        sites=profile.sites,
                        roles=profile.roles,
                        newly_qualified=profile.newly_qualified,
                        started_on=profile.started_on,
                        policy=policy,
                        now=now(),
                    )

                return await sessions.note_staff(event.staff_id, noted, ctx)
            case SupervisorAssigned():
                assigned = event

                def supervised(c: SupervisionCadence) -> None:
                    c.note_supervisor(assigned.supervisor_id, assigned.assigned_at, policy, now())

                return await sessions.note_staff(event.staff_id, supervised, ctx)
            case StaffMemberLeft():
                return await sessions.note_staff(
                    event.staff_id, lambda c: c.note_left(policy, now()), ctx
                )
            case CaseReviewRecorded():
                return await sessions.note_review(event.case_id, event.reviewed_at, ctx)
            case SupervisionSessionHeld():
                return await sessions.note_held(event.worker_id, event.held_at, ctx)
        return False


def deadline_key(kind: str, id: str) -> str:
    return f"{kind}:{id}"


class WhenCadenceChangedKeepDeadlines(EventHandler):
    """A cadence with a due time gets two deadlines (due: a lead before; overdue: at it); a
    cadence with none loses them. An action item gets its overdue deadline; done, it loses it.

    Per stream, an event is acted on once (`deadline_plans` remembers the last version done,
    written after the deadline operation, which is idempotent), so a redelivered older event
    cannot bring back a deadline a later one moved or cancelled. Even then the aggregate would
    refuse to raise anything for a due time that is no longer its own: this only saves work.
    """

    name = "when_cadence_changed_keep_deadlines"
    topics = (events_topic("supervision"),)

    def __init__(self, deadlines: Deadlines, plans: ReadModel, policy: CadencePolicy) -> None:
        self._deadlines = deadlines
        self._plans = DeadlinePlans(plans)
        self._policy = policy

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(
            event,
            SupervisionCadenceSet
            | CaseReviewCadenceSet
            | ActionItemSet
            | ActionItemDone
            | ActionItemOverdue,
        ):
            return False
        seen, stored = await self._plans.seen(envelope)
        if seen:
            return False
        await self.keep(event)
        return await self._plans.done(envelope, stored)

    async def keep(self, event: DomainEvent) -> None:
        match event:
            case SupervisionCadenceSet():
                await self._pair(
                    event.worker_id, event.due_at, SUPERVISION_DUE, SUPERVISION_OVERDUE, "worker_id"
                )
            case CaseReviewCadenceSet():
                await self._pair(event.case_id, event.due_at, REVIEW_DUE, REVIEW_OVERDUE, "case_id")
            case ActionItemSet():
                payload = {
                    "action_item_id": event.action_item_id,
                    "due_at": event.due_at.isoformat(),
                }
                await self._deadlines.schedule(
                    deadline_key(ACTION_OVERDUE, event.action_item_id),
                    ACTION_OVERDUE,
                    event.due_at,
                    payload,
                )
            case ActionItemDone() | ActionItemOverdue():
                await self._deadlines.cancel(deadline_key(ACTION_OVERDUE, event.action_item_id))

    async def _pair(
        self, id: str, due_at: datetime | None, due: str, overdue: str, field: str
    ) -> None:
        if due_at is None:
            await self._deadlines.cancel(deadline_key(due, id))
            await self._deadlines.cancel(deadline_key(overdue, id))
            return
        payload = {field: id, "due_at": due_at.isoformat()}
        await self._deadlines.schedule(
            deadline_key(due, id), due, due_at - self._policy.due_lead, payload
        )
        await self._deadlines.schedule(deadline_key(overdue, id), overdue, due_at, payload)


def deadline_handlers(sessions: Sessions) -> dict[str, DeadlineHandler]:
    """What each kind of deadline does when it fires: send its command; the aggregate decides
    (a session held since, a review recorded, an item done: nothing to raise)."""

    def due(payload: Any) -> datetime:
        return datetime.fromisoformat(str(payload["due_at"]))

    async def supervision_due(d: Deadline) -> None:
        await sessions.mark_supervision(d.payload["worker_id"], due(d.payload), overdue=False)

    async def supervision_overdue(d: Deadline) -> None:
        await sessions.mark_supervision(d.payload["worker_id"], due(d.payload), overdue=True)

    async def review_due(d: Deadline) -> None:
        await sessions.mark_review(d.payload["case_id"], due(d.payload), overdue=False)

    async def review_overdue(d: Deadline) -> None:
        await sessions.mark_review(d.payload["case_id"], due(d.payload), overdue=True)

    async def action_overdue(d: Deadline) -> None:
        await sessions.mark_action_overdue(d.payload["action_item_id"], due(d.payload))

    return {
        SUPERVISION_DUE: supervision_due,
        SUPERVISION_OVERDUE: supervision_overdue,
        REVIEW_DUE: review_due,
        REVIEW_OVERDUE: review_overdue,
        ACTION_OVERDUE: action_overdue,
    }
