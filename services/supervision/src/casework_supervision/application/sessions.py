"""The supervision sessions application: authorise against the directory, load, call one
domain method, save.

Aggregates: `SupervisionSession`, `ActionItem`, `Concern` (people's commands, through the
methods below) and the two cadences, `SupervisionCadence` and `CaseReviewCadence` (the
platform's commands: the policies that read the cases and supervision topics, the session
handler after a review or a held session, and the deadlines). Platform commands retry a lost
write race on the same stream (the loser reloads and the aggregate decides again, usually
that nothing is left to do).

Who supervises whom comes from the directory's local copy (`StaffDirectory`, the shared
`casework.directory.KnownStaff`), never from the token's team.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol, TypeVar

from casework.access import AccessDenied, NotVisible
from casework.aggregate import Aggregate
from casework.auth import Principal
from casework.clock import Clock
from casework.contracts.supervision import (
    ActionItemSet,
    AgendaItem,
    ConcernEscalated,
    PracticeTopic,
    SessionKind,
)
from casework.eventstore import (
    CommitContext,
    ConcurrencyConflict,
    Repository,
    retrying_lost_races,
)

from casework_supervision.adapters.approval_queue import ApprovalQueue
from casework_supervision.adapters.case_facts import CaseFactsStore
from casework_supervision.adapters.contact_facts import ContactObligations, is_follow_up
from casework_supervision.adapters.session_read_models import (
    ActionItems,
    CadenceView,
)
from casework_supervision.domain.action_item import ActionItem
from casework_supervision.domain.agenda import (
    ActionView,
    AgendaInputs,
    ApprovalView,
    CaseView,
    ObligationView,
    ReviewView,
    build_agenda,
)
from casework_supervision.domain.cadence import (
    CadencePolicy,
    CaseReviewCadence,
    SupervisionCadence,
)
from casework_supervision.domain.concern import Concern
from casework_supervision.domain.errors import (
    ActionItemAlreadyExists,
    ConcernAlreadyExists,
    InvalidSessionRequest,
    NotTheSupervisor,
    NotTheWorkersCase,
    SessionAlreadyExists,
)
from casework_supervision.domain.session import SupervisionSession, staff_subject
from casework_supervision.domain.session_access import (
    SessionParties,
    reads_practice_notes,
    reads_session,
    runs_session,
)

log = logging.getLogger(__name__)
A = TypeVar("A", bound=Aggregate)


class StaffFactsLike(Protocol):
    """What this service reads of a member of staff (`casework.directory.StaffFacts`)."""

    @property
    def staff_id(self) -> str: ...
    @property
    def sites(self) -> tuple[str, ...]: ...
    @property
    def team(self) -> str | None: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def newly_qualified(self) -> bool: ...
    @property
    def capacity_points(self) -> int | None: ...
    @property
    def started_on(self) -> date: ...
    @property
    def supervisor_id(self) -> str | None: ...
    @property
    def active(self) -> bool: ...


class StaffDirectory(Protocol):
    """The directory's local copy (`casework.directory.KnownStaff`), as far as used here."""

    async def get(self, staff_id: str) -> StaffFactsLike | None: ...
    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]: ...
    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]: ...
    async def with_role(self, site: str, role: str) -> list[Any]: ...
    async def at_site(self, site: str, team: str | None = None) -> list[Any]: ...


@dataclass
class Sessions:
    """Every command of supervision sessions, action items, concerns and cadences."""

    sessions: Repository[SupervisionSession]
    actions: Repository[ActionItem]
    concerns: Repository[Concern]
    supervision_cadences: Repository[SupervisionCadence]
    review_cadences: Repository[CaseReviewCadence]
    staff: StaffDirectory
    caseload: CaseFactsStore
    obligations: ContactObligations
    cadence_view: CadenceView
    approvals: ApprovalQueue
    action_items: ActionItems
    policy: CadencePolicy
    clock: Clock
    review_window: timedelta = timedelta(days=7)

    # -- who ---------------------------------------------------------------------------------

    async def parties(self, worker_id: str, session: SupervisionSession | None) -> SessionParties:
        now = self.clock.now()
        facts = await self.staff.get(worker_id)
        sites = tuple(facts.sites) if facts else ()
        if session is not None and session.site and session.site not in sites:
            sites = (*sites, session.site)
        return SessionParties(
            worker_id=worker_id,
            session_supervisor_id=session.supervisor_id if session else None,
            supervisors_now=await self.staff.supervisors_of(worker_id, now),
            direct_supervisor_id=facts.supervisor_id if facts else None,
            sites=sites,
        )

    async def _session(
        self, session_id: str, principal: Principal, *, runs: bool = False
    ) -> tuple[SupervisionSession, SessionParties]:
        session = await self.sessions.find(session_id)
        if session is None or session.worker_id is None:
            raise NotVisible(f"no session {session_id}")
        parties = await self.parties(session.worker_id, session)
        if not reads_session(principal, parties):
            raise NotVisible(f"no session {session_id}")
        if runs and not runs_session(principal, parties):
            raise AccessDenied("only the worker's supervisor (or delegate) runs the session")
        return session, parties

    async def readable_session(
        self, session_id: str, principal: Principal
    ) -> tuple[SupervisionSession, SessionParties]:
        return await self._session(session_id, principal)

    async def may_read_practice_notes(self, session_id: str, principal: Principal) -> bool:
        _, parties = await self._session(session_id, principal)
        return reads_practice_notes(principal, parties)

    async def may_read_worker(self, worker_id: str, principal: Principal) -> bool:
        return reads_session(principal, await self.parties(worker_id, None))

    # -- sessions ----------------------------------------------------------------------------

    async def schedule(
        self,
        *,
        session_id: str,
        worker_id: str,
        kind: SessionKind,
        planned_for: datetime,
        principal: Principal,
        ctx: CommitContext,
        replaces: str | None = None,
    ) -> SupervisionSession:
        parties = await self.parties(worker_id, None)
        if not runs_session(principal, parties):
            raise NotTheSupervisor(worker_id)
        if await self.sessions.find(session_id) is not None:
            raise SessionAlreadyExists(session_id)
        session = self.sessions.new(session_id)
        session.schedule(
            worker_id=worker_id,
            supervisor_id=principal.sub,
            site=parties.sites[0] if parties.sites else None,
            kind=kind,
            planned_for=planned_for,
            scheduled_by=principal.sub,
            now=self.clock.now(),
            replaces=replaces,
        )
        await self._save_new(self.sessions, session, ctx, SessionAlreadyExists(session_id))
        return session

    async def agenda_for(self, worker_id: str) -> tuple[AgendaItem, ...]:
        """The agenda of a session with `worker_id` if it were prepared now."""
        at = self.clock.now()
        case_docs = await self.caseload.of_worker(worker_id)
        case_ids = [str(d["_id"]) for d in case_docs]
        obligation_docs = await self.obligations.of_cases(case_ids)
        reviews = await self.cadence_view.many([f"case:{c}" for c in case_ids])
        approvals = await self.approvals.waiting_for_cases(case_docs)
        actions = [
            a for a in await self.action_items.of_worker(worker_id) if a.get("status") == "open"
        ]
        inputs = AgendaInputs(
            at=at,
            cases=tuple(
                CaseView(
                    case_id=str(d["_id"]),
                    risk_level=d.get("risk_level"),
                    phase=d.get("phase") or "assessment",
                    opened_at=d.get("opened_at"),
                    crisis_open_since=d.get("crisis_open_since"),
                )
                for d in case_docs
            ),
            obligations=tuple(
                ObligationView(
                    case_id=case_id,
                    obligation_id=ob_id,
                    rule_id=str(ob.get("rule_id")),
                    due_at=ob["due_at"],
                    overdue=bool(ob.get("overdue")),
                    follow_up=is_follow_up(ob),
                )
                for case_id, doc in obligation_docs.items()
                for ob_id, ob in doc.get("open", {}).items()
            ),
            reviews=tuple(
                ReviewView(
                    case_id=str(doc.get("case_id")),
                    due_at=doc.get("due_at"),
                    last_reviewed_at=doc.get("last_reviewed_at"),
                )
                for doc in reviews.values()
            ),
            approvals=tuple(
                ApprovalView(
                    approval_id=str(a["approval_id"]),
                    kind=str(a.get("kind")),
                    case_id=a.get("case_id"),
                    requested_at=a.get("requested_at") or at,
                )
                for a in approvals
            ),
            actions=tuple(
                ActionView(
                    action_item_id=str(a["action_item_id"]),
                    owner_id=str(a.get("owner_id")),
                    due_at=a["due_at"],
                    case_id=a.get("case_id"),
                    session_id=a.get("session_id"),
                )
                for a in actions
            ),
        )
        return build_agenda(inputs, review_window=self.review_window)

    async def prepare(
        self, session_id: str, principal: Principal, ctx: CommitContext
    ) -> SupervisionSession:
        async def act(session: SupervisionSession) -> None:
            items = await self.agenda_for(session.worker)
            session.prepare(items, principal.sub, self.clock.now())

        return await self._on_session(session_id, principal, ctx, act)

    async def record_review(
        self,
        session_id: str,
        *,
        case_id: str,
        findings: str,
        decision: str,
        reasons: str,
        principal: Principal,
        ctx: CommitContext,
    ) -> SupervisionSession:
        now = self.clock.now()

        async def act(session: SupervisionSession) -> None:
            case = await self.caseload.get(case_id)
            if case is None:
                raise NotVisible(f"no case {case_id}")
            if case.get("caseworker_id") != session.worker_id:
                raise NotTheWorkersCase(case_id)
            session.record_review(
                review_id=str(uuid.uuid4()),
                case_id=case_id,
                client_id=str(case.get("client_id")),
                risk_level=case.get("risk_level"),
                findings=findings,
                decision=decision,
                reasons=reasons,
                reviewed_by=principal.sub,
                now=now,
            )

        session = await self._on_session(session_id, principal, ctx, act)
        await self._backstopped(self.note_review(case_id, now, ctx), "review cadence", case_id)
        return session

    async def record_practice_note(
        self,
        session_id: str,
        *,
        note_id: str,
        topic: PracticeTopic,
        text: str,
        principal: Principal,
        ctx: CommitContext,
    ) -> SupervisionSession:
        async def act(session: SupervisionSession) -> None:
            session.record_practice_note(
                note_id=note_id,
                topic=topic,
                text=text,
                recorded_by=principal.sub,
                now=self.clock.now(),
            )

        return await self._on_session(session_id, principal, ctx, act)

    async def set_action_item(
        self,
        session_id: str,
        *,
        action_item_id: str,
        owner_id: str,
        due_at: datetime,
        description: str,
        case_id: str | None,
        principal: Principal,
        ctx: CommitContext,
    ) -> ActionItem:
        session, parties = await self._session(session_id, principal, runs=True)
        session.require_recording()
        if owner_id not in (session.worker_id, principal.sub, session.supervisor_id):
            raise InvalidSessionRequest(
                "the owner is the session's worker or supervisor", "body.owner_id"
            )
        subject = staff_subject(session.worker)
        if case_id is not None:
            case = await self.caseload.get(case_id)
            if case is None or case.get("caseworker_id") != session.worker_id:
                raise InvalidSessionRequest("not a case of the session's worker", "body.case_id")
            subject = f"client:{case.get('client_id')}"
        now = self.clock.now()
        if due_at <= now:
            raise InvalidSessionRequest("the due time is in the future", "body.due_at")
        item = self.actions.new(action_item_id)
        assert session.supervisor_id is not None
        item.create(
            ActionItemSet(
                action_item_id=action_item_id,
                session_id=session.id,
                worker_id=session.worker,
                supervisor_id=session.supervisor_id,
                owner_id=owner_id,
                site=session.site or (parties.sites[0] if parties.sites else None),
                case_id=case_id,
                subject_id=subject,
                description=description,
                due_at=due_at,
                set_by=principal.sub,
                set_at=now,
            )
        )
        await self._save_new(self.actions, item, ctx, ActionItemAlreadyExists(action_item_id))
        return item

    async def hold(
        self, session_id: str, principal: Principal, ctx: CommitContext
    ) -> SupervisionSession:
        now = self.clock.now()

        async def act(session: SupervisionSession) -> None:
            session.hold(principal.sub, now)

        session = await self._on_session(session_id, principal, ctx, act)
        await self._backstopped(
            self.note_held(session.worker, now, ctx), "supervision cadence", session.worker
        )
        return session

    async def acknowledge(
        self, session_id: str, principal: Principal, ctx: CommitContext
    ) -> SupervisionSession:
        async def act(session: SupervisionSession) -> None:
            session.acknowledge(principal.sub, self.clock.now())

        return await self._on_session(session_id, principal, ctx, act, runs=False)

    async def cancel(
        self,
        session_id: str,
        *,
        reason: str,
        reschedule_to: datetime | None,
        principal: Principal,
        ctx: CommitContext,
    ) -> tuple[SupervisionSession, SupervisionSession | None]:
        """Cancel; with `reschedule_to`, the session is replaced by a new one (naming it)."""
        new_id = str(uuid.uuid4()) if reschedule_to is not None else None

        async def act(session: SupervisionSession) -> None:
            session.cancel(
                reason=reason,
                cancelled_by=principal.sub,
                now=self.clock.now(),
                rescheduled_as=new_id,
            )

        session = await self._on_session(session_id, principal, ctx, act)
        replacement = None
        if new_id is not None and reschedule_to is not None:
            assert session.kind is not None
            replacement = await self.schedule(
                session_id=new_id,
                worker_id=session.worker,
                kind=session.kind,
                planned_for=reschedule_to,
                principal=principal,
                ctx=ctx,
                replaces=session.id,
            )
        return session, replacement

    async def reschedule(
        self, session_id: str, planned_for: datetime, principal: Principal, ctx: CommitContext
    ) -> SupervisionSession:
        async def act(session: SupervisionSession) -> None:
            session.reschedule(planned_for, principal.sub, self.clock.now())

        return await self._on_session(session_id, principal, ctx, act)

    # -- action items ------------------------------------------------------------------------

    async def complete_action_item(
        self, item_id: str, principal: Principal, ctx: CommitContext
    ) -> ActionItem:
        """Mark an item done. A race with its overdue being raised (the deadline) is decided
        again on the overdue item: done late is still done."""

        async def attempt() -> ActionItem:
            item = await self.actions.find(item_id)
            if item is None or item.set is None:
                raise NotVisible(f"no action item {item_id}")
            parties = await self.parties(item.set.worker_id, None)
            may_read = reads_session(principal, parties) or principal.sub == item.set.owner_id
            if not may_read:
                raise NotVisible(f"no action item {item_id}")
            owner_or_worker = principal.sub in (item.set.owner_id, item.set.worker_id)
            if not owner_or_worker and not runs_session(principal, parties):
                raise AccessDenied("the owner, the worker or their supervisor marks it done")
            item.mark_done(principal.sub, self.clock.now())
            await self.actions.save(item, ctx)
            return item

        return await retrying_lost_races(attempt)

    # -- concerns ----------------------------------------------------------------------------

    async def escalate_concern(
        self,
        *,
        concern_id: str,
        site: str,
        worker_id: str | None,
        case_id: str | None,
        summary: str,
        principal: Principal,
        ctx: CommitContext,
    ) -> Concern:
        if not principal.has_role("supervisor") or site not in principal.sites:
            raise AccessDenied("a supervisor at the site escalates a concern there")
        subject: str | None = None
        if worker_id is not None:
            parties = await self.parties(worker_id, None)
            if not runs_session(principal, parties):
                raise NotTheSupervisor(worker_id)
            subject = staff_subject(worker_id)
        if case_id is not None:
            case = await self.caseload.get(case_id)
            if case is None or case.get("site") != site:
                raise InvalidSessionRequest("no case of that site has that id", "body.case_id")
            subject = f"client:{case.get('client_id')}"
        if subject is None:
            raise InvalidSessionRequest("name the worker or the case", "body.worker_id")
        concern = self.concerns.new(concern_id)
        concern.escalate(
            ConcernEscalated(
                concern_id=concern_id,
                site=site,
                worker_id=worker_id,
                case_id=case_id,
                subject_id=subject,
                summary=summary,
                raised_by=principal.sub,
                raised_at=self.clock.now(),
            )
        )
        await self._save_new(self.concerns, concern, ctx, ConcernAlreadyExists(concern_id))
        return concern

    async def resolve_concern(
        self, concern_id: str, resolution: str, principal: Principal, ctx: CommitContext
    ) -> Concern:
        concern = await self.concerns.find(concern_id)
        if concern is None or concern.escalated is None:
            raise NotVisible(f"no concern {concern_id}")
        site = concern.escalated.site
        manages = "regional_admin" in principal.roles or (
            "site_manager" in principal.roles and site in principal.sites
        )
        if not manages:
            if principal.sub == concern.escalated.raised_by:
                raise AccessDenied("a site manager of the site resolves a concern")
            raise NotVisible(f"no concern {concern_id}")
        concern.resolve(resolution, principal.sub, self.clock.now())
        await self.concerns.save(concern, ctx)
        return concern

    # -- the platform's commands -------------------------------------------------------------

    async def note_case(
        self, case_id: str, change: dict[str, Any], version: int, ctx: CommitContext
    ) -> bool:
        """Facts of a case from one of its events (at `version` of its stream), to its
        review cadence."""

        def act(c: CaseReviewCadence) -> None:
            c.note_case(change, self.policy, self.clock.now(), version)

        return await self._decide(self.review_cadences, case_id, act, ctx)

    async def note_review(self, case_id: str, reviewed_at: datetime, ctx: CommitContext) -> bool:
        def act(c: CaseReviewCadence) -> None:
            c.record_review(reviewed_at, self.policy, self.clock.now())

        return await self._decide(self.review_cadences, case_id, act, ctx)

    async def note_held(self, worker_id: str, held_at: datetime, ctx: CommitContext) -> bool:
        def act(c: SupervisionCadence) -> None:
            c.record_held(held_at, self.policy, self.clock.now())

        return await self._decide(self.supervision_cadences, worker_id, act, ctx)

    async def note_staff(
        self, worker_id: str, act: Callable[[SupervisionCadence], None], ctx: CommitContext
    ) -> bool:
        return await self._decide(self.supervision_cadences, worker_id, act, ctx)

    async def mark_supervision(self, worker_id: str, due_at: datetime, *, overdue: bool) -> bool:
        def act(c: SupervisionCadence) -> None:
            if overdue:
                c.mark_overdue(due_at, self.clock.now())
            else:
                c.mark_due(due_at, self.policy.due_lead, self.clock.now())

        return await self._decide(self.supervision_cadences, worker_id, act, CommitContext())

    async def mark_review(self, case_id: str, due_at: datetime, *, overdue: bool) -> bool:
        def act(c: CaseReviewCadence) -> None:
            if overdue:
                c.mark_overdue(due_at, self.clock.now())
            else:
                c.mark_due(due_at, self.policy.due_lead, self.clock.now())

        return await self._decide(self.review_cadences, case_id, act, CommitContext())

    async def mark_action_overdue(self, item_id: str, due_at: datetime) -> bool:
        def act(item: ActionItem) -> None:
            item.mark_overdue(due_at, self.clock.now())

        return await self._decide(self.actions, item_id, act, CommitContext(), create=False)

    # -- plumbing ----------------------------------------------------------------------------

    async def _on_session(
        self,
        session_id: str,
        principal: Principal,
        ctx: CommitContext,
        act: Callable[[SupervisionSession], Awaitable[None]],
        *,
        runs: bool = True,
    ) -> SupervisionSession:
        """Load and authorise the session, let it decide, save. Two commands on one session at
        once (a note while the agenda is prepared again) meet on the stream's commit key: the
        loser is authorised and decided again on the fresh stream, so it fails only on a rule
        (a record held meanwhile), never on the race itself."""

        async def attempt() -> SupervisionSession:
            session, _ = await self._session(session_id, principal, runs=runs)
            await act(session)
            if session.pending_events:
                await self.sessions.save(session, ctx)
            return session

        return await retrying_lost_races(attempt)

    async def _decide(
        self,
        repository: Repository[A],
        id: str,
        act: Callable[[A], None],
        ctx: CommitContext,
        *,
        create: bool = True,
    ) -> bool:

        async def attempt() -> bool:
            aggregate = await repository.find(id)
            if aggregate is None:
                if not create:
                    return False
                aggregate = repository.new(id)
            act(aggregate)
            if not aggregate.pending_events:
                return False
            # a lost race: another replica or request wrote first; decide again on its result
            await repository.save(aggregate, ctx)
            return True

        return await retrying_lost_races(attempt)

    @staticmethod
    async def _save_new(
        repository: Repository[A], aggregate: A, ctx: CommitContext, taken: Exception
    ) -> None:
        """Save a new entry; `taken` if its id was taken meanwhile. A conflict is never taken
        to mean that: the first slot may be held by a write that failed between its two
        inserts (the caller's own retry after a 503, say) until the relay fences it, and
        answering "already exists" then would tell the caller that an entry nobody stored was
        stored. Such a conflict goes out as it is (409: retry), and a retry after the fence
        stores the entry."""
        try:
            await repository.save(aggregate, ctx)
        except ConcurrencyConflict:
            if await repository.find(aggregate.id) is not None:
                raise taken from None
            raise

    @staticmethod
    async def _backstopped(step: Awaitable[bool], what: str, id: str) -> None:
        # the record is stored; its policy on the topic does this step again if it fails here
        try:
            await step
        except Exception as exc:
            log.warning(
                "%s of %s not advanced yet (%s); the policy will", what, id, type(exc).__name__
            )
