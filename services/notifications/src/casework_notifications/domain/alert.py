"""The alert group: one per (trigger, subject), e.g. `crisis:<case_id>`, through its episodes.

Rules (each has a given-when-then test in `tests/unit/notifications/test_alert.py`):

- **No noise.** A fire whose `source_id` this group has seen changes nothing (a redelivered or
  replayed event); a new source while an episode is open is counted (`AlertRefired`), not
  notified; with no open episode it opens the next one, notifying the first level at once.
- **One notification per recipient per step.** A step is reached once (`Escalate` names the
  step it expects next; anything else changes nothing), and its recipients are de-duplicated:
  each `NotificationSent` has an id made of alert, episode, step and recipient.
- **Acknowledgement stops the chain for everyone**, once: a second person's is refused
  (`AlertAlreadyAcknowledged`, naming who took responsibility); the same person's again
  changes nothing. "In contact with the client" implies responsibility: it acknowledges
  first when nobody has.
- **Never auto-resolved.** Past the last step an unacknowledged episode stays open; only
  what fired it being over (`Close` with one of its sources: the crisis resolved) closes it.
  Crisis and screened-imminent groups stay open until then (`UNTIL_CLOSED`); other groups
  (overdue notices) are done once acknowledged: a later fire opens a new episode. A close
  that names a time (`opened_by`) leaves an episode opened after it alone (a replayed old
  crisis does not close the case's later risk notice).
- **A group about several things closes when all are over.** A `contact_overdue` or
  `follow_up_missed` group counts every overdue obligation of the case as a source; one of
  them met or cancelled (`Close` with `settle`) is recorded (`AlertSourceSettled`) and closes
  nothing while another source of the episode is still owed; the last one settled closes the
  episode (`AlertClosed`), acknowledged or not, so its chain stops. A source settled again
  (a redelivery, a replay), one the current episode did not count (an earlier episode's, or
  one never overdue), or any once the episode is closed changes nothing. A settled source is
  seen, so it never opens or counts again.
- The episode keeps the escalation policy it opened with, and who it must never notify
  (`excluded`: an approval's requester — four eyes — at every level, brought in or not) and
  the case's team (whose supervisors decide an approval when the worker has none).
- **Nobody on call is left out** (`BringIn`): a person who now answers to a target that a
  reached step of the open, unacknowledged episode named (the on-call worker or backup of a
  shift that began, or that the service heard of after the step was reached) and whom the
  episode has not notified is notified at the current step (`AlertBroughtIn`, then a
  `NotificationSent` with the usual id of alert, episode, step and recipient). Once notified
  they are recipients of the episode, so a second `BringIn` (a redelivered shift, another
  replica) changes nothing; an acknowledged or closed episode brings in nobody.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.notifications import (
    AlertAcknowledged,
    AlertBroughtIn,
    AlertClosed,
    AlertEscalated,
    AlertInContact,
    AlertOpened,
    AlertRefired,
    AlertSourceSettled,
    Channel,
    EscalationPolicy,
    NotificationRead,
    NotificationSent,
    Trigger,
    Urgency,
)
from casework.events import DomainEvent

from casework_notifications.domain import escalation
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
from casework_notifications.domain.errors import AlertAlreadyAcknowledged, AlertAlreadyClosed


@dataclass
class Episode:
    number: int
    trigger: Trigger
    case_id: str | None
    worker_id: str | None
    site: str
    urgency: Urgency
    channels: tuple[Channel, ...]
    policy: EscalationPolicy
    opened_at: datetime
    sources: set[str] = field(default_factory=set)
    settled: set[str] = field(default_factory=set)
    """Sources that are over (`AlertSourceSettled`) while the episode stays open for others."""
    count: int = 1
    step: int = -1
    recipients: set[str] = field(default_factory=set)
    notifications: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    in_contact: list[tuple[str, datetime]] = field(default_factory=list)
    closed_at: datetime | None = None
    team: str | None = None
    excluded: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        return self.closed_at is None

    @property
    def escalating(self) -> bool:
        return self.open and self.acknowledged_by is None

    def next_step_due(self) -> tuple[int, datetime] | None:
        """The next step and when it is due, while the chain runs; None once it stops."""
        nxt = self.step + 1
        if not self.escalating or nxt >= escalation.step_count(self.policy):
            return None
        return nxt, escalation.due_at(self.policy, self.opened_at, nxt)

    def reached_targets(self) -> set[str]:
        """Every target named by a level of the steps reached so far."""
        if self.step < 0:
            return set()
        levels = {escalation.level_of(self.policy, s)[0] for s in range(self.step + 1)}
        return {t for level in levels for t in self.policy.levels[level].targets}


UNTIL_CLOSED = frozenset({Trigger.CRISIS, Trigger.SCREENED_IMMINENT})
"""Groups whose episode stays open, acknowledged or not, until what fired it is over (the
crisis resolved; the referral screened imminent accepted, declined or screened lower): a
fire meanwhile is a count. Other groups are done once acknowledged."""

ANY_SOURCE = "*"
"""`Close` with this source closes whatever episode is open (a transfer decided)."""


class Alert(Aggregate):
    stream_type = "alert"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.seen: set[str] = set()
        self.episodes: list[Episode] = []

    @property
    def current(self) -> Episode | None:
        return self.episodes[-1] if self.episodes else None

    @property
    def open_episode(self) -> Episode | None:
        """The episode a fire would count on (crisis: until closed; others: until closed or
        acknowledged)."""
        ep = self.current
        if ep is None or not ep.open:
            return None
        if ep.trigger not in UNTIL_CLOSED and ep.acknowledged_by is not None:
            return None
        return ep

    def would_open(self, source_id: str) -> bool:
        """Whether firing `source_id` opens a new episode (the caller then resolves the
        first level's recipients)."""
        return source_id not in self.seen and self.open_episode is None

    # -- commands --------------------------------------------------------------------------

    def handle(self, cmd: AlertCommand) -> None:
        match cmd:
            case Fire():
                self._fire(cmd)
            case Escalate():
                self._escalate(cmd)
            case BringIn():
                self._bring_in(cmd)
            case Acknowledge():
                self._acknowledge(cmd.by, cmd.notification_id, cmd.at)
            case RecordInContact():
                self._in_contact(cmd)
            case MarkRead():
                self._read(cmd)
            case Close():
                self._close(cmd)

    def _fire(self, cmd: Fire) -> None:
        if cmd.source_id in self.seen:
            return
        ep = self.open_episode
        if ep is not None:
            self._trigger(
                AlertRefired(
                    alert_id=self.id,
                    episode=ep.number,
                    source_id=cmd.source_id,
                    count=ep.count + 1,
                    refired_at=cmd.at,
                )
            )
            return
        number = (self.current.number + 1) if self.current else 1
        self._trigger(
            AlertOpened(
                alert_id=self.id,
                episode=number,
                trigger=cmd.trigger,
                source_id=cmd.source_id,
                case_id=cmd.case_id,
                worker_id=cmd.worker_id,
                site=cmd.site,
                urgency=cmd.urgency,
                channels=cmd.channels,
                policy=cmd.policy,
                opened_at=cmd.at,
                team=cmd.team,
                excluded=cmd.excluded,
            )
        )
        self._reach(0, cmd.recipients, cmd.at)

    def _escalate(self, cmd: Escalate) -> None:
        ep = self.current
        if ep is None or ep.number != cmd.episode:
            return
        nxt = ep.next_step_due()
        if nxt is None or nxt[0] != cmd.step:
            return  # acknowledged, closed, past the last step, or this step was reached
        self._reach(cmd.step, cmd.recipients, cmd.at)

    def _bring_in(self, cmd: BringIn) -> None:
        ep = self.current
        if ep is None or not ep.escalating:
            return  # nothing open, or someone took responsibility: nobody more to tell
        reached = ep.reached_targets()
        ids: dict[str, None] = {}
        targets: dict[str, None] = {}
        for target, person in cmd.people:
            if person and target in reached and person not in ep.recipients | set(ep.excluded):
                ids[person] = None
                targets[target] = None
        if not ids:
            return
        self._trigger(
            AlertBroughtIn(
                alert_id=self.id,
                episode=ep.number,
                step=ep.step,
                recipients=tuple(ids),
                targets=tuple(targets),
                reason=cmd.reason,
                brought_in_at=cmd.at,
            )
        )
        self._notify(ep.step, tuple(ids), cmd.at)

    def _reach(self, step: int, recipients: Recipients, at: datetime) -> None:
        ep = self.current
        assert ep is not None
        level, repeat = escalation.level_of(ep.policy, step)
        ids = tuple(dict.fromkeys(r for r in recipients.ids if r and r not in ep.excluded))
        self._trigger(
            AlertEscalated(
                alert_id=self.id,
                episode=ep.number,
                step=step,
                level=level,
                repeat=repeat,
                recipients=ids,
                unresolved_targets=recipients.unresolved,
                due_at=escalation.due_at(ep.policy, ep.opened_at, step),
                escalated_at=at,
            )
        )
        self._notify(step, ids, at)

    def _notify(self, step: int, ids: tuple[str, ...], at: datetime) -> None:
        ep = self.current
        assert ep is not None
        for recipient in ids:
            self._trigger(
                NotificationSent(
                    notification_id=escalation.notification_id(self.id, ep.number, step, recipient),
                    alert_id=self.id,
                    episode=ep.number,
                    step=step,
                    recipient_id=recipient,
                    trigger=ep.trigger,
                    urgency=ep.urgency,
                    case_id=ep.case_id,
                    site=ep.site,
                    channels=ep.channels,
                    sent_at=at,
                )
            )

    def _acknowledge(self, by: str, notification_id: str | None, at: datetime) -> None:
        ep = self.current
        if ep is None:
            return
        if not ep.open:
            raise AlertAlreadyClosed(self.id)
        if ep.acknowledged_by is not None:
            if ep.acknowledged_by == by:
                return
            raise AlertAlreadyAcknowledged(self.id, ep.acknowledged_by)
        self._trigger(
            AlertAcknowledged(
                alert_id=self.id,
                episode=ep.number,
                acknowledged_by=by,
                notification_id=notification_id,
                acknowledged_at=at,
            )
        )

    def _in_contact(self, cmd: RecordInContact) -> None:
        ep = self.current
        if ep is None:
            return
        if not ep.open:
            raise AlertAlreadyClosed(self.id)
        if ep.acknowledged_by is None:
            self._acknowledge(cmd.by, cmd.notification_id, cmd.at)
        self._trigger(
            AlertInContact(
                alert_id=self.id,
                episode=ep.number,
                by=cmd.by,
                notification_id=cmd.notification_id,
                at=cmd.at,
            )
        )

    def _read(self, cmd: MarkRead) -> None:
        ep = next((e for e in self.episodes if cmd.notification_id in e.notifications), None)
        if ep is None or cmd.notification_id in ep.read:
            return
        self._trigger(
            NotificationRead(
                alert_id=self.id,
                notification_id=cmd.notification_id,
                recipient_id=cmd.by,
                read_at=cmd.at,
            )
        )

    def _close(self, cmd: Close) -> None:
        ep = self.current
        if ep is None or not ep.open:
            return  # nothing open (already closed: a redelivery)
        if cmd.source_id not in ep.sources and (cmd.settle or cmd.source_id != ANY_SOURCE):
            return  # nothing open from that source (already closed: a redelivery)
        if cmd.opened_by is not None and ep.opened_at > cmd.opened_by:
            return  # opened after what closes it (a replayed old event): not its to close
        if cmd.settle:
            if cmd.source_id in ep.settled:
                return  # settled already (a redelivery): the others are as they were
            self._trigger(
                AlertSourceSettled(
                    alert_id=self.id,
                    episode=ep.number,
                    source_id=cmd.source_id,
                    reason=cmd.reason,
                    settled_by=cmd.by,
                    outstanding=len(ep.sources - ep.settled - {cmd.source_id}),
                    settled_at=cmd.at,
                )
            )
            if ep.sources - ep.settled:
                return  # others of the episode are still owed: it stays open for them
        self._trigger(
            AlertClosed(
                alert_id=self.id,
                episode=ep.number,
                source_id=cmd.source_id,
                reason=cmd.reason,
                closed_by=cmd.by,
                closed_at=cmd.at,
            )
        )

    # -- state -----------------------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        ep = self.current
        match event:
            case AlertOpened():
                self.site = event.site
                self.seen.add(event.source_id)
                self.episodes.append(
                    Episode(
                        number=event.episode,
                        trigger=event.trigger,
                        case_id=event.case_id,
                        worker_id=event.worker_id,
                        site=event.site,
                        urgency=event.urgency,
                        channels=event.channels,
                        policy=event.policy,
                        opened_at=event.opened_at,
                        sources={event.source_id},
                        team=event.team,
                        excluded=event.excluded,
                    )
                )
            case AlertRefired() if ep is not None:
                self.seen.add(event.source_id)
                ep.sources.add(event.source_id)
                ep.count = event.count
            case AlertEscalated() if ep is not None:
                ep.step = event.step
            case NotificationSent() if ep is not None:
                ep.recipients.add(event.recipient_id)
                ep.notifications.add(event.notification_id)
            case AlertAcknowledged() if ep is not None:
                ep.acknowledged_by = event.acknowledged_by
                ep.acknowledged_at = event.acknowledged_at
            case AlertInContact() if ep is not None:
                ep.in_contact.append((event.by, event.at))
            case NotificationRead():
                for e in self.episodes:
                    if event.notification_id in e.notifications:
                        e.read.add(event.notification_id)
            case AlertSourceSettled() if ep is not None:
                ep.settled.add(event.source_id)
            case AlertClosed() if ep is not None:
                ep.closed_at = event.closed_at
