"""How the notifications service reacts to other services' events (`when_<event>_<action>`).

| handler                              | reads          | does                                   |
|--------------------------------------|----------------|----------------------------------------|
| `when_case_changed_raise_alerts`     | cases topic    | keeps `case_facts`, then raises crisis,|
|                                      |                | risk-raised and transfer alerts, and   |
|                                      |                | closes them when they are over         |
| `when_work_overdue_raise_alerts`     | contacts topic | raises contact-overdue and lone-worker |
|                                      |                | alerts; closes a contact-overdue group |
|                                      |                | once every obligation it counted is met|
|                                      |                | or cancelled, a lone worker's on check-|
|                                      |                | out                                    |
| `when_referral_screened_raise_alerts`| intake topic   | raises the screened-imminent alert of a|
|                                      |                | waiting referral; closes it once the   |
|                                      |                | referral is decided or screened lower  |
| `when_supervision_work_waits_raise_  | supervision    | raises approval, approval-overdue,     |
| alerts`                              | topic          | case-review, action-item and           |
|                                      |                | supervision-overdue alerts, and closes |
|                                      |                | them once decided, reviewed, done, held|
| `when_on_call_shift_bring_in`        | supervision    | brings the worker (and backup) of a    |
|                                      | topic          | shift covering now into the site's     |
|                                      |                | open, unacknowledged alerts; a later   |
|                                      |                | shift's start is a deadline that does  |
|                                      |                | the same then (cancelled with it)      |

Each is idempotent because the `Alert` aggregate is: a source it has seen changes nothing,
so a redelivered or replayed event notifies nobody twice. Policies, not projections:
rebuilding them would fire history again (harmlessly, but pointlessly).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from casework.clock import Clock
from casework.contracts.cases import (
    CaseTransferAccepted,
    CaseTransferRejected,
    CaseTransferRequested,
    CrisisDeclared,
    CrisisResolved,
    RiskLevelChanged,
)
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import (
    ContactObligationCancelled,
    ContactObligationMet,
    ContactOverdue,
    LoneWorkerCheckedOut,
    LoneWorkerOverdue,
)
from casework.contracts.intake import ReferralAccepted, ReferralDeclined, RiskScreened
from casework.contracts.notifications import Trigger
from casework.contracts.supervision import (
    ActionItemDone,
    ActionItemOverdue,
    ApprovalGranted,
    ApprovalOverdue,
    ApprovalRequested,
    ApprovalReturned,
    ApprovalWithdrawn,
    CaseReviewOverdue,
    CaseReviewRecorded,
    OnCallShiftCancelled,
    OnCallShiftScheduled,
    SupervisionOverdue,
    SupervisionSessionHeld,
)
from casework.directory import KnownRota
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import CommitContext
from casework.projections import EventHandler
from casework.runtime import events_topic

from casework_notifications.adapters.case_facts import CaseFactsStore, change_of, in_crisis
from casework_notifications.application.handlers import Alerts, Firing, alert_id_for
from casework_notifications.application.ports import CaseFacts, StaffDirectory
from casework_notifications.domain.alert import ANY_SOURCE

log = logging.getLogger(__name__)

ORDER = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.IMMINENT)


def _raised(previous: RiskLevel | None, level: RiskLevel) -> bool:
    """A rise into high or imminent (high → imminent counts; imminent → high does not)."""
    before = ORDER.index(previous) if previous is not None else -1
    return ORDER.index(level) >= ORDER.index(RiskLevel.HIGH) and ORDER.index(level) > before


def _context(envelope: Envelope) -> CommitContext:
    return CommitContext(correlation_id=envelope.correlation_id, causation_id=envelope.id)


class WhenCaseChangedRaiseAlerts(EventHandler):
    """Keeps the local copy of the case, then fires or closes alerts. One handler, so that
    a decision always sees the facts its event wrote. The alert step runs even when the
    facts found the event a duplicate: a replica may have died between the two.

    **Invariant (one alert for a crisis, not two):** a case in crisis has one open alert
    group for it, `crisis:<case>`; a risk rise never opens `risk_raised:<case>` beside it.
    - A risk rise (`RiskLevelChanged` into high or imminent) made while the case's crisis is
      open — the rise to imminent that a declared crisis brings in its own commit, after the
      crisis, or any later rise before the crisis is resolved — opens no risk alert: the
      crisis alert already names the worker at once and their supervisor at 5 minutes, and
      climbs. "While open" is read from the copy by stream version (`case_facts.in_crisis`),
      so a redelivery or a replay from offset 0 decides as the first delivery did, whatever
      the copy has learnt since.
    - A case opened at imminent (`CaseOpened`) opens no risk alert: cases opens such a case in
      crisis in the same commit (`Case._open`), and that crisis's alert is the case's (a risk
      alert at the opening would name nobody anyway: no worker is assigned yet).
    - A declared crisis closes the case's risk alert opened at or before it
      (`opened_by`): the crisis supersedes it, so the supervisor is not told hours later of
      what the crisis told them at once, and nothing of the crisis stays open once it is
      resolved. A risk alert opened later (a rise after the crisis is resolved) is left to
      its own course, even under a replay of the old crisis.
    - A rise with no crisis open alerts as before (medium → high, high → imminent).
    Either order of a crisis's commit ends with the same groups: the crisis first (as cases
    writes it) notifies the worker once; the rise first (commits written before cases put
    the crisis first) opens the risk alert a moment before the crisis, which then closes
    it — the worker has its first notice, the supervisor never.

    A `CrisisDeclared` is the exception to "facts first": its alert decides on nothing the
    event writes to the copy, so the alert is raised first and the copy written after
    (`_crisis`). **Invariant:** after the handler returns, the copy holds the event and the
    alert its source, whichever order; a crash between the two leaves the copy behind, and
    the redelivery writes it (the alert changes nothing)."""

    name = "when_case_changed_raise_alerts"
    topics = (events_topic("cases"),)
    urgent = True  # a declared crisis's first hop: polled every 40 ms when idle

    def __init__(self, facts: CaseFactsStore, alerts: Alerts) -> None:
        self._facts = facts
        self._alerts = alerts

    async def ensure_indexes(self) -> None:
        await self._facts.ensure_indexes()

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if isinstance(event, CrisisDeclared):
            with self._alerts.timing.crisis(envelope.time):
                handled = await self._handle(envelope, event)
            # after the crisis's timed path: its people are notified by now
            return await self._supersede_risk(envelope, event) or handled
        return await self._handle(envelope, event)

    async def _handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if isinstance(event, CrisisDeclared):
            return await self._crisis(envelope, event)
        changed = False
        if change_of(event) is not None:
            changed = await self._facts.apply(envelope, event)
        ctx = _context(envelope)
        match event:
            case CrisisResolved():
                alert_id = alert_id_for(Trigger.CRISIS, event.case_id)
                closed = await self._alerts.close(
                    alert_id,
                    event.crisis_id,
                    "crisis resolved",
                    event.resolved_by,
                    event.resolved_at,
                    ctx,
                )
                return closed or changed
            case RiskLevelChanged() if _raised(event.previous_level, event.risk_level):
                return await self._risk(envelope, event.case_id, event.changed_at, ctx) or changed
            case CaseTransferRequested():
                firing = Firing(
                    Trigger.TRANSFER_WAITING,
                    event.case_id,
                    f"transfer:{envelope.stream_version}",
                    event.to_site,
                    event.case_id,
                    None,
                    event.requested_at,
                )
                return await self._alerts.fire(firing, ctx) or changed
            case CaseTransferAccepted() | CaseTransferRejected():
                alert_id = alert_id_for(Trigger.TRANSFER_WAITING, event.case_id)
                at = (
                    event.accepted_at
                    if isinstance(event, CaseTransferAccepted)
                    else event.rejected_at
                )
                closed = await self._alerts.close(
                    alert_id, ANY_SOURCE, "transfer decided", None, at, ctx
                )
                return closed or changed
        return changed

    async def _crisis(self, envelope: Envelope, event: CrisisDeclared) -> bool:
        """The alert first, then the case's copy: nothing the alert decides on is written
        by this event (the event names the site and the worker; the copy is asked for the
        worker only when the event names none, and then this event does not set one), so
        the copy's write (a read and a replace) is off the crisis's path. A crash between
        the two is healed by the redelivery: the copy takes the event (its version is not
        yet applied), the alert finds the source seen and changes nothing."""
        worker = event.caseworker_id
        if worker is None:  # declared before anyone was assigned? ask the copy
            worker = (await self._facts.get(event.case_id) or {}).get("caseworker_id")
        firing = Firing(
            Trigger.CRISIS,
            event.case_id,
            event.crisis_id,
            event.site,
            event.case_id,
            worker,
            event.declared_at,
        )
        fired = await self._alerts.fire(firing, _context(envelope))
        with self._alerts.timing.stage("case_facts"):
            changed = await self._facts.apply(envelope, event)
        return fired or changed

    async def _supersede_risk(self, envelope: Envelope, event: CrisisDeclared) -> bool:
        """Close the case's risk alert opened at or before the crisis (class docstring)."""
        return await self._alerts.close(
            alert_id_for(Trigger.RISK_RAISED, event.case_id),
            ANY_SOURCE,
            "superseded by the crisis",
            event.declared_by,
            event.declared_at,
            _context(envelope),
            opened_by=event.declared_at,
        )

    async def _risk(
        self, envelope: Envelope, case_id: str, at: datetime, ctx: CommitContext
    ) -> bool:
        facts = await self._facts.get(case_id) or {}
        site = facts.get("site")
        if not site or in_crisis(facts, envelope.stream_version):
            return False  # no site to route by; or the crisis alert has it (class docstring)
        firing = Firing(
            Trigger.RISK_RAISED,
            case_id,
            f"risk:{envelope.stream_version}",
            str(site),
            case_id,
            facts.get("caseworker_id"),
            at,
        )
        return await self._alerts.fire(firing, ctx)


FOLLOW_UP_CLOCKS = frozenset({"crisis_resolved", "inpatient_discharge"})
"""Contacts' clocks whose missed contact is a missed follow-up (their trigger's kind)."""

OVERDUE_TRIGGERS = (Trigger.CONTACT_OVERDUE, Trigger.FOLLOW_UP_MISSED)
"""The groups a `ContactOverdue` may fire (`overdue_trigger`)."""


def overdue_trigger(event: ContactOverdue) -> Trigger:
    """A missed follow-up after a crisis or a discharge is its own, louder trigger (e-mailed
    at once to the worker and their supervisor); any other overdue contact is the routine
    `contact_overdue` (a digest, the supervisor later). An event without the clock's trigger
    (stored before it was carried) is routine."""
    kind = (event.trigger or "").partition(":")[0]
    return Trigger.FOLLOW_UP_MISSED if kind in FOLLOW_UP_CLOCKS else Trigger.CONTACT_OVERDUE


class WhenWorkOverdueRaiseAlerts(EventHandler):
    """`ContactOverdue` (grouped per case: a missed follow-up and a routine overdue contact
    apart, `overdue_trigger`; the obligation is the source) and `LoneWorkerOverdue` (per
    visit, critical); the worker's check-out closes the lone-worker alert.

    **Invariant (a made contact stops the chain):** an open `contact_overdue` /
    `follow_up_missed` episode closes once every obligation it counted is met or cancelled
    (`ContactObligationMet` / `ContactObligationCancelled`, `Close.settle`), so nobody — the
    supervisor at 4 h — is told of a contact that has since been made. One obligation settled
    while another of the case is still overdue is recorded (`AlertSourceSettled`) and closes
    nothing. Both settlements go to both groups of the case: only the group that counted the
    obligation changes (`Alert` ignores a source its episode did not count), so the policy need
    not know which clock an obligation ran on. The settlement is on the overdue's own stream
    (`obligations-<case>`), so it always comes after it; a redelivered or replayed one changes
    nothing, and an obligation met without ever being overdue (most are) closes nothing."""

    name = "when_work_overdue_raise_alerts"
    topics = (events_topic("contacts"),)

    def __init__(self, facts: CaseFactsStore, alerts: Alerts) -> None:
        self._facts = facts
        self._alerts = alerts

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        ctx = _context(envelope)
        match event:
            case ContactOverdue():
                worker = event.caseworker_id
                if worker is None:
                    worker = (await self._facts.get(event.case_id) or {}).get("caseworker_id")
                firing = Firing(
                    overdue_trigger(event),
                    event.case_id,
                    event.obligation_id,
                    event.site,
                    event.case_id,
                    worker,
                    event.raised_at,
                )
                return await self._alerts.fire(firing, ctx)
            case LoneWorkerOverdue():
                firing = Firing(
                    Trigger.LONE_WORKER_OVERDUE,
                    event.contact_id,
                    event.contact_id,
                    event.site,
                    event.case_id,
                    event.worker_id,
                    event.raised_at,
                )
                return await self._alerts.fire(firing, ctx)
            case LoneWorkerCheckedOut():
                alert_id = alert_id_for(Trigger.LONE_WORKER_OVERDUE, event.contact_id)
                return await self._alerts.close(
                    alert_id, ANY_SOURCE, "worker checked out", None, event.checked_out_at, ctx
                )
            case ContactObligationMet():
                return await self._settle(
                    event.case_id, event.obligation_id, "contact made", event.met_at, ctx
                )
            case ContactObligationCancelled():
                return await self._settle(
                    event.case_id,
                    event.obligation_id,
                    "obligation cancelled",
                    event.cancelled_at,
                    ctx,
                )
        return False

    async def _settle(
        self, case_id: str, obligation_id: str, reason: str, at: datetime, ctx: CommitContext
    ) -> bool:
        """The obligation is over: settle it in whichever of the case's overdue groups
        counted it (class docstring)."""
        settled = [
            await self._alerts.close(
                alert_id_for(trigger, case_id), obligation_id, reason, None, at, ctx, settle=True
            )
            for trigger in OVERDUE_TRIGGERS
        ]
        return any(settled)


class WhenReferralScreenedRaiseAlerts(EventHandler):
    """Intake's `RiskScreened` at imminent, for a referral still waiting in the site's intake
    queue: nobody is assigned yet, so the group `screened_imminent:<referral>` (source
    `screen:<version>`, critical) goes to the site's on-call crisis worker and the site
    manager at once, then climbs (default routing). It stays open, acknowledged or not, until
    the referral is accepted or declined, or screened again below imminent (that screen
    closes only an episode opened at or before it, so a replayed old screen never closes a
    later one); a second imminent screen meanwhile is a count. Ids only: the screening's
    answers and rule are sealed client data and never read here.

    Accepted at imminent, the referral's case opens in crisis (cases, in the case's first
    commit), and the case's crisis alert takes over: the acceptance closes the referral's
    alert, so one group is open for the person at a time — a hand-over, not a second alarm
    beside the first (the on-call worker hears again, now of a case they can open, and the
    crisis is acknowledged on its own). Nothing is carried across (the two groups are on
    different topics, with no order between them).

    **Invariant:** one group per referral and one notification per recipient per step,
    under redelivery and replay (sources from the event's stream version; `Alert` ignores a
    source it has seen); a decided referral's group is closed."""

    name = "when_referral_screened_raise_alerts"
    topics = (events_topic("intake"),)

    def __init__(self, alerts: AlertCommands) -> None:
        self._alerts = alerts

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        ctx = _context(envelope)
        match event:
            case RiskScreened() if event.risk_level is RiskLevel.IMMINENT:
                firing = Firing(
                    Trigger.SCREENED_IMMINENT,
                    event.referral_id,
                    f"screen:{envelope.stream_version}",
                    event.site,
                    None,
                    None,
                    event.screened_at,
                )
                return await self._alerts.fire(firing, ctx)
            case RiskScreened():
                return await self._close(
                    event.referral_id,
                    "screened below imminent",
                    event.screened_by,
                    event.screened_at,
                    ctx,
                    opened_by=event.screened_at,
                )
            case ReferralAccepted():
                return await self._close(
                    event.referral_id,
                    "referral accepted",
                    event.accepted_by,
                    event.accepted_at,
                    ctx,
                )
            case ReferralDeclined():
                return await self._close(
                    event.referral_id,
                    "referral declined",
                    event.declined_by,
                    event.declined_at,
                    ctx,
                )
        return False

    async def _close(
        self,
        referral_id: str,
        reason: str,
        by: str,
        at: datetime,
        ctx: CommitContext,
        *,
        opened_by: datetime | None = None,
    ) -> bool:
        alert_id = alert_id_for(Trigger.SCREENED_IMMINENT, referral_id)
        return await self._alerts.close(
            alert_id, ANY_SOURCE, reason, by, at, ctx, opened_by=opened_by
        )


class AlertCommands(Protocol):
    """What a policy asks of the alerts (`handlers.Alerts`; unit tests record the calls)."""

    async def fire(self, firing: Firing, ctx: CommitContext | None = None) -> bool: ...

    async def close(
        self,
        alert_id: str,
        source_id: str,
        reason: str,
        by: str | None,
        at: datetime,
        ctx: CommitContext | None = None,
        *,
        opened_by: datetime | None = None,
        settle: bool = False,
    ) -> bool: ...

    async def worker_of(self, alert_id: str) -> str | None: ...


APPROVAL_NOTICES = (Trigger.APPROVAL_REQUESTED, Trigger.APPROVAL_OVERDUE)


class WhenSupervisionWorkWaitsRaiseAlerts(EventHandler):
    """Supervision's approvals and overdue work, as alert groups (routing per trigger):

    | event               | group (trigger:subject)           | source      | worker         |
    |---------------------|-----------------------------------|-------------|----------------|
    | `ApprovalRequested` | `approval_requested:<approval>`   | approval id | caseworker     |
    | `ApprovalOverdue`   | `approval_overdue:<approval>`     | approval id | as requested   |
    | `CaseReviewOverdue` | `case_review_overdue:<case>`      | due time    | caseworker     |
    | `ActionItemOverdue` | `action_item_overdue:<item>`      | item id     | the owner      |
    | `SupervisionOverdue`| `supervision_overdue:<worker>`    | due time    | the supervisee |

    The `supervisor` target of the worker is who may decide an approval (their supervisor,
    or the delegate standing in at that moment); the requester is never notified of their
    own request (four eyes). `ApprovalGranted` / `Returned` / `Withdrawn` close both notices
    of the approval (by its id, so a redelivered decision, or one for another approval,
    closes nothing); a case review recorded, an action item done and a supervision held
    close their group's open notice, so that the next overdue notifies again instead of
    being counted on a stale group.

    **Invariant:** one alert group per (trigger, subject) and one notification per recipient
    per step, under redelivery and replay: every source id is derived from the event's own
    stable fields (never the delivery), and `Alert` ignores a source it has seen. Closing
    across streams (a review recorded on a session's stream, its overdue on the cadence's)
    is not ordered by Kafka: a close that arrives before its overdue closes nothing, and
    that overdue stays open until acknowledged.

    A case's site and worker come from the event, else from the local copy of the case, else
    (site only) from the worker's directory entry; an event with no site anywhere cannot be
    routed (no rule, no site manager): it is logged by its ids and skipped.
    """

    name = "when_supervision_work_waits_raise_alerts"
    topics = (events_topic("supervision"),)

    def __init__(self, facts: CaseFacts, staff: StaffDirectory, alerts: AlertCommands) -> None:
        self._facts = facts
        self._staff = staff
        self._alerts = alerts

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        ctx = _context(envelope)
        match event:
            case ApprovalRequested():
                worker = event.caseworker_id or await self._case(event.case_id, "caseworker_id")
                return await self._fire(
                    Firing(
                        Trigger.APPROVAL_REQUESTED,
                        event.approval_id,
                        event.approval_id,
                        event.site,
                        event.case_id,
                        worker,
                        event.requested_at,
                        exclude=(event.requested_by,),
                        team=event.team,
                    ),
                    ctx,
                )
            case ApprovalOverdue():
                requested = alert_id_for(Trigger.APPROVAL_REQUESTED, event.approval_id)
                worker = await self._alerts.worker_of(requested) or await self._case(
                    event.case_id, "caseworker_id"
                )
                firing = Firing(
                    Trigger.APPROVAL_OVERDUE,
                    event.approval_id,
                    event.approval_id,
                    event.site,
                    event.case_id,
                    worker,
                    event.raised_at,
                    team=event.team,
                )
                return await self._fire(firing, ctx)
            case ApprovalGranted() | ApprovalReturned() | ApprovalWithdrawn():
                return await self._approval_decided(event, ctx)
            case CaseReviewOverdue():
                worker = event.caseworker_id or await self._case(event.case_id, "caseworker_id")
                site = (
                    event.site
                    or await self._case(event.case_id, "site")
                    or await self._site_of(worker)
                )
                firing = Firing(
                    Trigger.CASE_REVIEW_OVERDUE,
                    event.case_id,
                    f"review-due:{event.due_at.isoformat()}",
                    site or "",
                    event.case_id,
                    worker,
                    event.raised_at,
                )
                return await self._fire(firing, ctx)
            case CaseReviewRecorded():
                alert_id = alert_id_for(Trigger.CASE_REVIEW_OVERDUE, event.case_id)
                return await self._alerts.close(
                    alert_id, ANY_SOURCE, "case reviewed", event.reviewed_by, event.reviewed_at, ctx
                )
            case ActionItemOverdue():
                site = event.site
                if not site and event.case_id:
                    site = await self._case(event.case_id, "site")
                firing = Firing(
                    Trigger.ACTION_ITEM_OVERDUE,
                    event.action_item_id,
                    event.action_item_id,
                    site or await self._site_of(event.owner_id) or "",
                    event.case_id,
                    event.owner_id,
                    event.raised_at,
                )
                return await self._fire(firing, ctx)
            case ActionItemDone():
                alert_id = alert_id_for(Trigger.ACTION_ITEM_OVERDUE, event.action_item_id)
                return await self._alerts.close(
                    alert_id, ANY_SOURCE, "action item done", event.done_by, event.done_at, ctx
                )
            case SupervisionOverdue():
                firing = Firing(
                    Trigger.SUPERVISION_OVERDUE,
                    event.worker_id,
                    f"supervision-due:{event.due_at.isoformat()}",
                    event.site or await self._site_of(event.worker_id) or "",
                    None,
                    event.worker_id,
                    event.raised_at,
                )
                return await self._fire(firing, ctx)
            case SupervisionSessionHeld():
                alert_id = alert_id_for(Trigger.SUPERVISION_OVERDUE, event.worker_id)
                return await self._alerts.close(
                    alert_id, ANY_SOURCE, "supervision held", event.recorded_by, event.held_at, ctx
                )
        return False

    async def _approval_decided(
        self,
        event: ApprovalGranted | ApprovalReturned | ApprovalWithdrawn,
        ctx: CommitContext,
    ) -> bool:
        by: str | None
        match event:
            case ApprovalGranted():
                reason, by, at = "approval granted", event.decided_by, event.decided_at
            case ApprovalReturned():
                reason, by, at = "approval returned", event.decided_by, event.decided_at
            case ApprovalWithdrawn():
                reason, by, at = f"approval withdrawn: {event.reason}", None, event.withdrawn_at
        closed = False
        for trigger in APPROVAL_NOTICES:
            alert_id = alert_id_for(trigger, event.approval_id)
            closed = await self._alerts.close(alert_id, event.approval_id, reason, by, at, ctx) or (
                closed
            )
        return closed

    async def _fire(self, firing: Firing, ctx: CommitContext) -> bool:
        if not firing.site:
            log.warning(
                "%s for %s names no site, nor does the case or the worker: not routed",
                firing.trigger.value,
                firing.subject_id,
            )
            return False
        return await self._alerts.fire(firing, ctx)

    async def _case(self, case_id: str, field: str) -> str | None:
        value = (await self._facts.get(case_id) or {}).get(field)
        return str(value) if value else None

    async def _site_of(self, staff_id: str | None) -> str | None:
        member = await self._staff.get(staff_id) if staff_id else None
        return member.sites[0] if member is not None and member.sites else None


class WhenOnCallShiftBringIn(EventHandler):
    """A shift that covers the present moment, heard from supervision (`OnCallShiftScheduled`;
    the directory's `KnownRota` keeps the rota from the same event): its worker and backup are
    brought into every open, unacknowledged alert of the site whose reached steps named
    `on_call` (`backup`) and that has not notified them (`Alerts.bring_in_site`) — the crisis
    declared while nobody was on call, or a moment before the directory's copy of the rota
    heard of the shift. Leavers are never brought in.

    The policy first writes the event to a copy of the rota of its own (`heard`: a
    `KnownRota` in `on_call_heard`, by stream version, in order), which an alert that found
    nobody on call reads after it is watched (see `handlers`); and it brings in only a shift
    that its copy says covers now, so a shift cancelled since (a replay) brings in nobody.

    A shift that starts later is a durable deadline at its start (`oncall:<site>/<shift>`,
    one per shift; its cancellation cancels it); when it fires, whoever the rota's copy says
    is on call then is brought into the site's alerts still open and unacknowledged.

    **Invariant:** at most one notification per person per step of an alert, under
    redelivery, replay, two replicas and restarts: the alert decides (`Alert.BringIn` brings
    in only whom the episode has not notified) and its stream takes one writer at a time.
    """

    name = "when_on_call_shift_bring_in"
    topics = (events_topic("supervision"),)

    def __init__(self, alerts: Alerts, heard: KnownRota, clock: Clock) -> None:
        self._alerts = alerts
        self._heard = heard
        self._clock = clock

    async def ensure_indexes(self) -> None:
        await self._heard.ensure_indexes()

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if isinstance(event, OnCallShiftScheduled | OnCallShiftCancelled):
            await self._heard.handle(envelope, event)  # before looking at the watch
        if isinstance(event, OnCallShiftCancelled):
            await self._alerts.forget_shift(event.site, event.shift_id)
            return False
        if not isinstance(event, OnCallShiftScheduled):
            return False
        now = self._clock.now()
        if event.ends_at <= now:
            return False
        if event.starts_at > now:
            await self._alerts.expect_shift(event.site, event.shift_id, event.starts_at)
            return False
        live = await self._heard.on_call(event.site, now)
        if live is None or live.shift_id != event.shift_id:
            return False  # cancelled since (this is a replay), or replaced
        people = (("on_call", event.staff_id), ("backup", event.backup_id))
        reason = f"on_call_shift:{event.site}/{event.shift_id}"
        brought = await self._alerts.bring_in_site(event.site, people, reason, _context(envelope))
        return brought > 0
