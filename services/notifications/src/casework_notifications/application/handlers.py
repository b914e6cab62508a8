"""The notifications application: load the alert, call one domain method, save — then keep
the alert's escalation deadline in step with what the alert now says.

Commands from the platform (`fire`, `escalate`, `close`) come from the policies and the
deadlines; commands from people (`acknowledge`, `in_contact`, `read`) from the HTTP edge,
authorised here. A lost write race on the alert's stream is retried: the loser reloads and
the aggregate decides again (usually that there is nothing left to do).

**Invariant (escalation is durable):** after any command on an alert — including one that
changed nothing, such as a redelivered trigger — the alert's one escalation deadline
(`escalate:<alert_id>`) names its next step and that step's due time, or is cancelled when
the chain has stopped (acknowledged, closed, or past its last step). Scheduling what is
already scheduled changes nothing (`casework.deadlines`), so a crash between saving and
scheduling is healed by the redelivery or the deadline firing again.

**Invariant (a new on-call hears of the open crisis):** whoever comes on call at a site while
an alert of the site is open and unacknowledged, and a reached step of it named `on_call`
(`backup`), is notified of it once (`Alert.BringIn`). Two paths meet so that neither order of
"the shift heard" and "the alert saved" loses it: after every command the alert's episode is
on the site's watch (`on_call_watch`) exactly while it escalates, and the shift's policy,
having first written the shift to its own copy of the rota (`heard`), brings its people into
every watched alert of the site (`bring_in_site`); an alert whose step found nobody on call,
once saved and watched, asks the rota again — the directory's copy, then `heard`
(`bring_in_on_call`). Each side writes before it reads what the other writes, so at least one
sees the other. Each is a command the alert decides, so redelivery, replay, two replicas and
restarts notify nobody twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from casework.access import NotVisible
from casework.auth import Principal
from casework.clock import Clock
from casework.contracts.notifications import AlertEscalated, Trigger
from casework.deadlines import Deadline, Deadlines
from casework.eventstore import (
    RACE_RETRIES,
    CommitContext,
    ConcurrencyConflict,
    Repository,
    after_lost_race,
)

from casework_notifications.application.ports import Rota, Watch
from casework_notifications.application.recipients import RecipientResolver, Subject
from casework_notifications.application.timing import CrisisTiming
from casework_notifications.domain.access import may_act
from casework_notifications.domain.alert import Alert
from casework_notifications.domain.approvers import APPROVAL_TRIGGERS
from casework_notifications.domain.commands import (
    Acknowledge,
    AlertCommand,
    BringIn,
    Close,
    Escalate,
    Fire,
    MarkRead,
    Recipients,
    RecordInContact,
)
from casework_notifications.domain.escalation import alert_of, level_of
from casework_notifications.domain.routing import Routing

ESCALATION = "alert_escalation"
ON_CALL_TARGETS = frozenset({"on_call", "backup"})
SHIFT_START = "on_call_shift_start"

log = logging.getLogger(__name__)

Decide = Callable[[Alert], Awaitable[AlertCommand | None]]


def escalation_key(alert_id: str) -> str:
    return f"escalate:{alert_id}"


def shift_key(site: str, shift_id: str) -> str:
    """The deadline of a future on-call shift's start."""
    return f"oncall:{site}/{shift_id}"


def alert_id_for(trigger: Trigger, subject_id: str) -> str:
    """One alert group per (trigger, subject)."""
    return f"{trigger.value}:{subject_id}"


@dataclass(frozen=True)
class Firing:
    """What a policy knows when a trigger fires."""

    trigger: Trigger
    subject_id: str
    source_id: str
    site: str
    case_id: str | None
    worker_id: str | None
    at: datetime
    exclude: tuple[str, ...] = ()
    """People never notified of it at the opening, whatever the targets name (the requester
    of an approval: four eyes)."""
    team: str | None = None
    """The case's team (approvals: whose supervisors decide when the worker has none)."""

    def subject(self) -> Subject:
        """What the first level's targets are resolved against."""
        return Subject(
            self.site,
            self.worker_id,
            approval=self.trigger in APPROVAL_TRIGGERS,
            team=self.team,
            never=self.exclude,
        )


@dataclass
class Alerts:
    alerts: Repository[Alert]
    routing: Routing
    recipients: RecipientResolver
    deadlines: Deadlines
    clock: Clock
    watch: Watch | None = None
    """Where the site's open alerts are found when someone comes on call (None: nowhere)."""
    heard: Rota | None = None
    """The shift policy's own copy of the rota, written before it looks at the watch."""
    timing: CrisisTiming = field(default_factory=lambda: CrisisTiming(None))
    """Where a crisis's time goes (`/metrics`); unregistered unless bootstrap passes one."""
    _in_order: dict[str, tuple[asyncio.Lock, list[int]]] = field(default_factory=dict)
    """Per alert being saved here: the lock that keeps save and after-save in save order."""

    # -- the platform's commands -----------------------------------------------------------

    async def fire(self, firing: Firing, ctx: CommitContext | None = None) -> bool:
        """Raise (or count, or ignore as a duplicate) an alert for what fired."""
        alert_id = alert_id_for(firing.trigger, firing.subject_id)
        rule, policy = self.routing.rule(firing.trigger, firing.site)

        async def decide(alert: Alert) -> AlertCommand | None:
            recipients = Recipients(())
            if alert.would_open(firing.source_id):
                with self.timing.stage("recipients"):
                    recipients = await self.recipients.resolve(
                        policy.levels[0].targets, firing.subject(), self.clock.now()
                    )
            return Fire(
                alert_id=alert_id,
                trigger=firing.trigger,
                source_id=firing.source_id,
                case_id=firing.case_id,
                worker_id=firing.worker_id,
                site=firing.site,
                urgency=rule.urgency,
                channels=rule.channels,
                policy=policy,
                recipients=recipients,
                at=firing.at,
                team=firing.team,
                excluded=firing.exclude,  # never notified, at any level (the alert decides)
            )

        return await self._run(alert_id, decide, ctx, assume_new=True)

    async def escalate(self, alert_id: str, episode: int, step: int) -> bool:
        """Reach `step` if it is still the next one (a deadline fired)."""

        async def decide(alert: Alert) -> AlertCommand | None:
            ep = alert.current
            if ep is None or ep.number != episode:
                return None
            nxt = ep.next_step_due()
            if nxt is None or nxt[0] != step:
                return None
            level, _ = level_of(ep.policy, step)
            # as at the opening: an approval's `supervisor` is who may decide it (the case's
            # team for the fallback), never the requester
            subject = Subject(
                ep.site,
                ep.worker_id,
                approval=ep.trigger in APPROVAL_TRIGGERS,
                team=ep.team,
                never=ep.excluded,
            )
            recipients = await self.recipients.resolve(
                ep.policy.levels[level].targets, subject, self.clock.now()
            )
            return Escalate(alert_id, episode, step, recipients, self.clock.now())

        return await self._run(alert_id, decide, None)

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
    ) -> bool:
        """Close the open episode if `source_id` opened or re-fired it (`ANY_SOURCE`: any),
        and, given `opened_by`, only if it opened at or before then; with `settle`, only
        once every source it counted is over (`Close.settle`)."""

        async def decide(alert: Alert) -> AlertCommand | None:
            return Close(alert_id, source_id, reason, by, at, opened_by, settle)

        return await self._run(alert_id, decide, ctx, create=False)

    async def bring_in(
        self,
        alert_id: str,
        people: tuple[tuple[str, str], ...],
        reason: str,
        ctx: CommitContext | None = None,
    ) -> bool:
        """Notify these (target, person) of the open alert if a reached step named their
        target and the episode has not notified them (`Alert.BringIn` decides)."""

        async def decide(alert: Alert) -> AlertCommand | None:
            return BringIn(alert_id, people, reason, self.clock.now()) if people else None

        return await self._run(alert_id, decide, ctx, create=False)

    async def bring_in_site(
        self,
        site: str,
        people: tuple[tuple[str, str | None], ...],
        reason: str,
        ctx: CommitContext | None = None,
    ) -> int:
        """Bring these people (leavers left out) into every watched alert of the site; how
        many alerts notified someone."""
        if self.watch is None:
            return 0
        active = await self.recipients.active_people(people)
        if not active:
            return 0
        brought = 0
        for alert_id in await self.watch.of_site(site):
            brought += await self.bring_in(alert_id, active, reason, ctx)
        return brought

    async def bring_in_on_call(self, alert_id: str, site: str) -> bool:
        """Bring in whoever the rota's copies say is on call at the site now."""
        return await self.bring_in(alert_id, await self._on_call_now(site), "on_call_now")

    async def _on_call_now(self, site: str) -> tuple[tuple[str, str], ...]:
        """The directory's copy of the rota, else the shift policy's own (which may be ahead
        of it by a moment)."""
        now = self.clock.now()
        people = await self.recipients.on_call(site, now)
        if not people and self.heard is not None:
            shift = await self.heard.on_call(site, now)
            if shift is not None:
                people = await self.recipients.active_people(
                    (("on_call", shift.staff_id), ("backup", shift.backup_id))
                )
        return people

    async def expect_shift(self, site: str, shift_id: str, starts_at: datetime) -> None:
        """A shift that starts later: bring its people in when it starts (a durable
        deadline, one per shift; scheduling it again changes nothing)."""
        payload = {"site": site, "shift_id": shift_id}
        await self.deadlines.schedule(shift_key(site, shift_id), SHIFT_START, starts_at, payload)

    async def forget_shift(self, site: str, shift_id: str) -> None:
        """The shift was cancelled: nobody is brought in at its start."""
        await self.deadlines.cancel(shift_key(site, shift_id))

    async def on_shift_start(self, deadline: Deadline) -> None:
        """A shift's start came: whoever the rota's copy says is on call at the site now
        (the shift's people, unless it was cancelled or changed meanwhile) is brought into
        the site's open, unacknowledged alerts."""
        site, shift_id = str(deadline.payload["site"]), str(deadline.payload["shift_id"])
        people = await self._on_call_now(site)
        await self.bring_in_site(site, people, f"on_call_shift:{site}/{shift_id}")

    async def worker_of(self, alert_id: str) -> str | None:
        """The worker the group's latest episode is about (None: no such group, or none)."""
        alert = await self.alerts.find(alert_id)
        return alert.current.worker_id if alert is not None and alert.current else None

    # -- people's commands -----------------------------------------------------------------

    async def acknowledge(
        self, notification_id: str, principal: Principal, ctx: CommitContext
    ) -> Alert:
        """ "I take responsibility": stops the escalation for everyone."""
        alert_id = alert_of(notification_id)
        await self._visible(alert_id, principal)

        async def decide(alert: Alert) -> AlertCommand | None:
            return Acknowledge(alert_id, principal.sub, notification_id, self.clock.now())

        await self._run(alert_id, decide, ctx, create=False)
        return await self._visible(alert_id, principal)

    async def in_contact(
        self, notification_id: str, principal: Principal, ctx: CommitContext
    ) -> Alert:
        """ "In contact with the client" (acknowledges too when nobody has)."""
        alert_id = alert_of(notification_id)
        await self._visible(alert_id, principal)

        async def decide(alert: Alert) -> AlertCommand | None:
            return RecordInContact(alert_id, principal.sub, notification_id, self.clock.now())

        await self._run(alert_id, decide, ctx, create=False)
        return await self._visible(alert_id, principal)

    async def read(self, notification_id: str, principal: Principal, ctx: CommitContext) -> Alert:
        """The recipient opened a notification (only their own)."""
        alert_id = alert_of(notification_id)
        alert = await self._visible(alert_id, principal)
        if not any(notification_id in e.notifications for e in alert.episodes) or not (
            notification_id.endswith(f"~{principal.sub}")
        ):
            raise NotVisible(f"no notification {notification_id}")

        async def decide(alert: Alert) -> AlertCommand | None:
            return MarkRead(alert_id, notification_id, principal.sub, self.clock.now())

        await self._run(alert_id, decide, ctx, create=False)
        return await self._visible(alert_id, principal)

    async def visible(self, alert_id: str, principal: Principal) -> Alert:
        return await self._visible(alert_id, principal)

    async def _visible(self, alert_id: str, principal: Principal) -> Alert:
        alert = await self.alerts.find(alert_id)
        if alert is None or alert.current is None:
            raise NotVisible(f"no alert {alert_id}")
        recipients = set().union(*(e.recipients for e in alert.episodes))
        if not may_act(principal, alert.current.site, recipients):
            raise NotVisible(f"no alert {alert_id}")
        return alert

    # -- the deadline ----------------------------------------------------------------------

    async def keep_escalation(self, alert: Alert) -> None:
        """Schedule the next step, or cancel when the chain has stopped (idempotent)."""
        ep = alert.current
        nxt = ep.next_step_due() if ep is not None else None
        key = escalation_key(alert.id)
        if ep is None or nxt is None:
            await self.deadlines.cancel(key)
            return
        step, due = nxt
        payload = {"alert_id": alert.id, "episode": ep.number, "step": step}
        await self.deadlines.schedule(key, ESCALATION, due, payload)

    async def keep_watch(self, alert: Alert) -> None:
        """Keep the episode on its site's watch while it escalates, if its policy names the
        on-call anywhere; off it once acknowledged or closed (idempotent)."""
        ep = alert.current
        if self.watch is None or ep is None:
            return
        if not any(ON_CALL_TARGETS & set(level.targets) for level in ep.policy.levels):
            return
        if ep.escalating:
            await self.watch.keep(alert.id, ep.number, ep.site)
        else:
            await self.watch.forget(alert.id, ep.number)

    async def on_escalation_due(self, deadline: Deadline) -> None:
        p = deadline.payload
        await self.escalate(str(p["alert_id"]), int(p["episode"]), int(p["step"]))

    # -- the loop --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _saving(self, alert_id: str) -> AsyncIterator[None]:
        """**Invariant: in one process, the escalation deadline and the watch follow the
        alert's commits in their order.** A command's after-save writes what its own copy of
        the alert says; without this, an escalation's "schedule step 2" could land after the
        acknowledgement committed next had cancelled the deadline (seen in CI: a stale step
        left until it fired and found the chain stopped). Held from the save through the
        after-save writes, per alert. Across replicas the same stale entry can still happen;
        it changes nothing when it fires (the aggregate decides) and is then cancelled."""
        lock, users = self._in_order.setdefault(alert_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._in_order[alert_id]

    async def _run(
        self,
        alert_id: str,
        decide: Decide,
        ctx: CommitContext | None,
        *,
        create: bool = True,
        assume_new: bool = False,
    ) -> bool:
        """Load, decide, save, keep the escalation; a lost race is decided again.

        `assume_new` (a trigger firing): when this process's cache holds nothing of the
        alert, the first try decides on a new, empty alert without reading the store (most
        triggers open a group of their own: an approval, a crisis). It is saved only as the
        stream's first commit, whose unique key refuses it if the group exists (a redelivery,
        another replica, a restart): the next try loads the group and decides on it. Should
        the guess decide nothing, nothing is kept from it (not even the escalation, which an
        empty alert would cancel): the next try loads the alert.
        """
        for attempt in range(RACE_RETRIES):
            guessed = attempt == 0 and assume_new and not self.alerts.knows(alert_id)
            if guessed:
                alert: Alert | None = self.alerts.new(alert_id)
            else:
                with self.timing.stage("alert_load"):
                    alert = await self.alerts.find(alert_id)
            if alert is None:
                if not create:
                    return False
                alert = self.alerts.new(alert_id)
            cmd = await decide(alert)
            if cmd is not None:
                alert.handle(cmd)
            saved = list(alert.pending_events)
            changed = bool(saved)
            if guessed and not changed:
                continue  # decided nothing on a guess: decide on the stored alert instead
            async with self._saving(alert_id):
                if changed:
                    try:
                        with self.timing.stage("alert_save"):
                            await self.alerts.save(alert, ctx or CommitContext())
                    except ConcurrencyConflict:
                        if not guessed:
                            await after_lost_race(attempt)
                        continue  # another replica or request wrote first: decide again
                with self.timing.stage("after_save"):
                    # two idempotent writes of their own collections: at once, not in turn
                    # (the next record of the first hop waits for them)
                    await asyncio.gather(self.keep_escalation(alert), self.keep_watch(alert))
            ep = alert.current
            if ep is not None and self.watch is not None and _found_no_on_call(saved):
                # the rota's copy may have learnt of a shift since this step resolved it; the
                # alert is on the watch now, so a shift heard later finds it (invariant above)
                await self.bring_in_on_call(alert.id, ep.site)
            return changed
        raise ConcurrencyConflict(Alert.stream_id_for(alert_id), -1)


def _found_no_on_call(events: Sequence[object]) -> bool:
    """Whether a step just reached had an on-call target that named nobody."""
    return any(
        isinstance(e, AlertEscalated) and ON_CALL_TARGETS & set(e.unresolved_targets)
        for e in events
    )
