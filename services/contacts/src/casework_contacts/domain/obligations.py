"""The CaseObligations aggregate: what the contact policy requires of one case, and whether
it was done in time (stream `obligations-<case_id>`).

An **obligation** is "a made contact with the client, of these medium classes, by `due_at`",
opened from one rule of the policy (`casework_contacts.domain.policy`) and recording the rule's
id and the policy version it came from.

- **Standing rules** (k made contacts in every rolling window W) run as a *chain*: the rule's
  first obligation is due W after the rule began to apply (contacts before that moment do not
  count); each qualifying contact is added to the chain, and the obligation is met once the
  chain's due time moves on — due = the k-th latest contact + W (with fewer than k contacts,
  chain start + W). The met obligation is followed at once by the next, due at the new time.
- **Clocks** (one-off): opened by a trigger (the case opened or reopened, a crisis resolved, a
  discharge from inpatient care), due `within` after it, met by the first qualifying contact
  at or after the trigger — also one logged before the trigger's event arrived (order across
  topics is not guaranteed).
- **Replanning** (`Replan`): whenever the case's risk or phase changes, the wanted rules are
  recomputed from the policy; an open obligation whose rule no longer applies (or changed) is
  cancelled, and rules that now apply are opened — a clock's replacement keeps its trigger's
  time, and a clock already overdue stays as it is (it was late under the rule in force
  then; replacing it would raise a second overdue for one trigger). A closed case has none:
  all are cancelled.
- **A struck-through contact** (`UncountContact`) no longer counts: the standing obligations
  it counted for are rescheduled to the due time their chain has without it (earlier: the
  deadline moves), and the clocks it met are opened again (met at once by another counted
  contact that qualifies). A contact is counted at most once, never again once uncounted.
- **Deadlines decide nothing**: `MarkDueSoon` and `MarkOverdue` are sent by durable deadlines;
  the aggregate raises `ContactDueSoon`/`ContactOverdue` only for an obligation that is still
  open, due at the deadline's time, not raised before, and not of a closed case. So each
  overdue fires at most once per obligation (the stream's optimistic concurrency decides
  between two replicas) and never for a met or cancelled obligation.

Case facts (risk, phase, site, worker, team) are not stored here: the application passes them
from its local projection of the cases' events with every command.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from casework.aggregate import Aggregate
from casework.contracts.common import RiskLevel
from casework.contracts.contacts import (
    MEDIUM_CLASS,
    ContactCounted,
    ContactDueSoon,
    ContactObligationCancelled,
    ContactObligationMet,
    ContactObligationOpened,
    ContactObligationRescheduled,
    ContactOverdue,
    ContactUncounted,
    Medium,
    MediumClass,
    Outcome,
)
from casework.events import DomainEvent

from casework_contacts.domain.policy import CLOSED, ClockRule, SitePolicy, StandingRule


@dataclass(frozen=True)
class CaseFacts:
    """What the policy needs to know of a case, as the local projection last heard it."""

    case_id: str
    site: str
    phase: str
    risk: str | None = None
    caseworker_id: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class CaseTrigger:
    """An event that starts a clock: `kind` is a `ClockRule.trigger`."""

    trigger_id: str
    kind: str
    at: datetime


@dataclass(frozen=True)
class Replan:
    facts: CaseFacts
    policy: SitePolicy
    trigger: CaseTrigger | None = None


@dataclass(frozen=True)
class CountContact:
    facts: CaseFacts
    policy: SitePolicy
    contact_id: str
    occurred_at: datetime
    medium: Medium
    outcome: Outcome
    with_client: bool


@dataclass(frozen=True)
class UncountContact:
    """A logged contact was struck through: it no longer counts."""

    facts: CaseFacts
    policy: SitePolicy
    contact_id: str


@dataclass(frozen=True)
class MarkDueSoon:
    facts: CaseFacts
    obligation_id: str
    due_at: datetime


@dataclass(frozen=True)
class MarkOverdue:
    facts: CaseFacts
    obligation_id: str
    due_at: datetime


ObligationCommand = Replan | CountContact | UncountContact | MarkDueSoon | MarkOverdue


@dataclass(frozen=True)
class Obligation:
    obligation_id: str
    rule_id: str
    rule_version: str
    due_at: datetime
    media_classes: tuple[MediumClass, ...]
    opened_at: datetime
    window: timedelta | None = None
    contacts_required: int = 1
    trigger: str | None = None
    trigger_at: datetime | None = None
    due_soon_raised: bool = False
    overdue_raised: bool = False

    @property
    def is_clock(self) -> bool:
        return self.trigger is not None

    def signature(self) -> tuple[object, ...]:
        """What makes it the same requirement (the version alone does not)."""
        return (self.rule_id, self.window, self.contacts_required, frozenset(self.media_classes))


@dataclass
class Chain:
    """A standing rule's run since it began to apply: the qualifying contacts' times."""

    start: datetime
    times: list[datetime] = field(default_factory=list)


@dataclass(frozen=True)
class Counted:
    occurred_at: datetime
    medium_class: MediumClass
    made_with_client: bool
    counted_for: tuple[str, ...] = ()


def _rule_signature(rule: StandingRule) -> tuple[object, ...]:
    return (rule.rule_id, rule.window, rule.contacts, frozenset(rule.media_classes))


class CaseObligations(Aggregate):
    stream_type = "obligations"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.open: dict[str, Obligation] = {}
        self.opened_count = 0
        self.triggers_seen: set[str] = set()
        self.chains: dict[str, Chain] = {}
        self.counted: dict[str, Counted] = {}
        self.uncounted: set[str] = set()
        self.clocks_met_by: dict[str, list[Obligation]] = {}
        """Contact id → the clock obligations it met (opened again if it is struck through)."""

    # -- deciding ---------------------------------------------------------------------------

    def handle(self, command: ObligationCommand, at: datetime) -> None:
        """Decide `command` at `at`. Nothing here refuses: every command is decided, and
        one that finds nothing to do triggers nothing (redeliveries, late deadlines)."""
        match command:
            case Replan():
                self._replan(command, at)
            case CountContact():
                self._count(command, at)
            case UncountContact():
                self._uncount(command, at)
            case MarkDueSoon():
                self._due_soon(command, at)
            case MarkOverdue():
                self._overdue(command, at)

    def _replan(self, c: Replan, at: datetime) -> None:
        facts, policy = c.facts, c.policy
        if facts.phase == CLOSED:
            for ob in sorted(self.open.values(), key=lambda o: o.obligation_id):
                self._cancel(ob, "the case is closed", at)
            return  # and a trigger of a closed case starts no clock
        wanted = {r.rule_id: r for r in policy.standing(facts.risk, facts.phase)}
        for ob in sorted(self.open.values(), key=lambda o: o.obligation_id):
            if ob.is_clock:
                if ob.overdue_raised:
                    continue  # late under the rule in force then: it stays, until met
                clock = policy.clock(_kind(ob.trigger), facts.risk)
                if clock is None or clock.rule_id != ob.rule_id:
                    self._cancel(ob, "the case's risk changed", at)
                    if clock is not None:
                        assert ob.trigger is not None
                        assert ob.trigger_at is not None
                        again = CaseTrigger(ob.trigger, _kind(ob.trigger), ob.trigger_at)
                        self._open_clock(clock, again, facts, policy, at)
            else:
                rule = wanted.get(ob.rule_id)
                if rule is None or _rule_signature(rule) != ob.signature():
                    self._cancel(ob, "the case's risk or phase changed", at)
        running = {ob.rule_id for ob in self.open.values() if not ob.is_clock}
        for rule_id, rule in wanted.items():
            if rule_id not in running:
                self._open_standing(
                    rule, policy.version, due=at + rule.window, at=at, risk=facts.risk
                )
        trigger = c.trigger
        if trigger is not None and trigger.trigger_id not in self.triggers_seen:
            clock = policy.clock(trigger.kind, facts.risk)
            if clock is not None:
                self._open_clock(clock, trigger, facts, policy, at)

    def _open_standing(
        self,
        rule: StandingRule,
        version: str,
        *,
        due: datetime,
        at: datetime,
        risk: str | None,
    ) -> None:
        self._trigger(
            ContactObligationOpened(
                case_id=self.id,
                obligation_id=f"{rule.rule_id}-{self.opened_count + 1}",
                rule_id=rule.rule_id,
                rule_version=version,
                due_at=due,
                media_classes=rule.media_classes,
                opened_at=at,
                window=rule.window,
                contacts_required=rule.contacts,
                risk_level=_risk(risk),
            )
        )

    def _open_clock(
        self,
        clock: ClockRule,
        trigger: CaseTrigger,
        facts: CaseFacts,
        policy: SitePolicy,
        at: datetime,
    ) -> None:
        obligation_id = f"{clock.rule_id}-{self.opened_count + 1}"
        due = trigger.at + clock.within
        self._trigger(
            ContactObligationOpened(
                case_id=self.id,
                obligation_id=obligation_id,
                rule_id=clock.rule_id,
                rule_version=policy.version,
                due_at=due,
                media_classes=clock.media_classes,
                opened_at=at,
                trigger=trigger.trigger_id,
                trigger_at=trigger.at,
                risk_level=_risk(facts.risk),
            )
        )
        # A contact logged before the trigger's event reached us may already meet it.
        for contact_id, counted in sorted(self.counted.items(), key=lambda kv: kv[1].occurred_at):
            if counted.occurred_at >= trigger.at and self._qualifies(
                counted, clock.media_classes, facts, policy
            ):
                self._met(self.open[obligation_id], contact_id, counted.occurred_at)
                break

    def _cancel(self, ob: Obligation, reason: str, at: datetime) -> None:
        self._trigger(
            ContactObligationCancelled(
                case_id=self.id,
                obligation_id=ob.obligation_id,
                rule_id=ob.rule_id,
                reason=reason,
                cancelled_at=at,
            )
        )

    def _met(self, ob: Obligation, contact_id: str, occurred_at: datetime) -> None:
        self._trigger(
            ContactObligationMet(
                case_id=self.id,
                obligation_id=ob.obligation_id,
                rule_id=ob.rule_id,
                contact_id=contact_id,
                met_at=occurred_at,
                due_at=ob.due_at,
                on_time=occurred_at <= ob.due_at,
            )
        )

    @staticmethod
    def _qualifies(
        counted: Counted, wanted: tuple[MediumClass, ...], facts: CaseFacts, policy: SitePolicy
    ) -> bool:
        return counted.made_with_client and policy.counts_as_made(
            counted.medium_class, facts.risk, wanted
        )

    def _count(self, c: CountContact, at: datetime) -> None:
        if c.contact_id in self.counted or c.contact_id in self.uncounted:
            return  # counted already (a redelivery, or the HTTP edge got here first)
        counted = Counted(
            c.occurred_at,
            MEDIUM_CLASS[c.medium],
            c.outcome is Outcome.MADE and c.with_client,
        )
        meets: list[Obligation] = []
        for ob in sorted(self.open.values(), key=lambda o: o.obligation_id):
            if not self._qualifies(counted, ob.media_classes, c.facts, c.policy):
                continue
            if ob.is_clock:
                assert ob.trigger_at is not None
                if c.occurred_at >= ob.trigger_at:
                    meets.append(ob)
            elif c.occurred_at >= self.chains[ob.rule_id].start:
                meets.append(ob)
        self._trigger(
            ContactCounted(
                case_id=self.id,
                contact_id=c.contact_id,
                occurred_at=c.occurred_at,
                medium=c.medium,
                outcome=c.outcome,
                with_client=c.with_client,
                counted_for=tuple(ob.rule_id for ob in meets),
            )
        )
        for ob in meets:
            if ob.is_clock:
                self._met(ob, c.contact_id, c.occurred_at)
                continue
            assert ob.window is not None
            chain = self.chains[ob.rule_id]  # the contact is in it now (ContactCounted)
            times = sorted(chain.times)
            k = ob.contacts_required
            due = times[-k] + ob.window if len(times) >= k else chain.start + ob.window
            if due > ob.due_at:
                self._met(ob, c.contact_id, c.occurred_at)
                rule = StandingRule(
                    rule_id=ob.rule_id,
                    risks=(),
                    window=ob.window,
                    contacts=k,
                    media_classes=ob.media_classes,
                )
                self._open_standing(rule, ob.rule_version, due=due, at=at, risk=c.facts.risk)

    def _uncount(self, c: UncountContact, at: datetime) -> None:
        counted = self.counted.get(c.contact_id)
        if counted is None:
            return  # never counted, or uncounted already
        reopen = list(self.clocks_met_by.get(c.contact_id, ()))
        self._trigger(ContactUncounted(case_id=self.id, contact_id=c.contact_id, uncounted_at=at))
        # standing rules: the chain without the contact may fall due earlier
        for ob in sorted(self.open.values(), key=lambda o: o.obligation_id):
            if ob.is_clock or ob.rule_id not in counted.counted_for or ob.window is None:
                continue
            chain = self.chains[ob.rule_id]
            times, k = sorted(chain.times), ob.contacts_required
            due = times[-k] + ob.window if len(times) >= k else chain.start + ob.window
            if due < ob.due_at:
                self._trigger(
                    ContactObligationRescheduled(
                        case_id=self.id,
                        obligation_id=ob.obligation_id,
                        rule_id=ob.rule_id,
                        due_at=due,
                        previous_due_at=ob.due_at,
                        rescheduled_at=at,
                    )
                )
        # clocks it met are owed again (met at once if another counted contact qualifies)
        if c.facts.phase == CLOSED:
            return
        for met in reopen:
            assert met.trigger is not None
            assert met.trigger_at is not None
            clock = c.policy.clock(_kind(met.trigger), c.facts.risk)
            if clock is not None:
                trigger = CaseTrigger(met.trigger, _kind(met.trigger), met.trigger_at)
                self._open_clock(clock, trigger, c.facts, c.policy, at)

    def _due_soon(self, c: MarkDueSoon, at: datetime) -> None:
        ob = self.open.get(c.obligation_id)
        if ob is None or ob.due_soon_raised or ob.due_at != c.due_at or c.facts.phase == CLOSED:
            return
        self._trigger(
            ContactDueSoon(
                case_id=self.id,
                obligation_id=ob.obligation_id,
                rule_id=ob.rule_id,
                due_at=ob.due_at,
                risk_level=_risk(c.facts.risk),
                caseworker_id=c.facts.caseworker_id,
                team=c.facts.team,
                site=c.facts.site,
                raised_at=at,
            )
        )

    def _overdue(self, c: MarkOverdue, at: datetime) -> None:
        ob = self.open.get(c.obligation_id)
        if (
            ob is None
            or ob.overdue_raised
            or ob.due_at != c.due_at
            or at < ob.due_at
            or c.facts.phase == CLOSED
        ):
            return
        self._trigger(
            ContactOverdue(
                case_id=self.id,
                obligation_id=ob.obligation_id,
                rule_id=ob.rule_id,
                rule_version=ob.rule_version,
                due_at=ob.due_at,
                overdue_seconds=int((at - ob.due_at).total_seconds()),
                risk_level=_risk(c.facts.risk),
                caseworker_id=c.facts.caseworker_id,
                team=c.facts.team,
                site=c.facts.site,
                raised_at=at,
                trigger=ob.trigger,
            )
        )

    # -- evolving -----------------------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ContactObligationOpened():
                self.opened_count += 1
                ob = Obligation(
                    obligation_id=event.obligation_id,
                    rule_id=event.rule_id,
                    rule_version=event.rule_version,
                    due_at=event.due_at,
                    media_classes=event.media_classes,
                    opened_at=event.opened_at,
                    window=event.window,
                    contacts_required=event.contacts_required,
                    trigger=event.trigger,
                    trigger_at=event.trigger_at,
                )
                self.open[ob.obligation_id] = ob
                if ob.trigger is not None:
                    self.triggers_seen.add(ob.trigger)
                elif ob.rule_id not in self.chains:
                    self.chains[ob.rule_id] = Chain(start=event.opened_at)
            case ContactObligationMet():
                met = self.open.pop(event.obligation_id, None)
                if met is not None and met.is_clock:
                    self.clocks_met_by.setdefault(event.contact_id, []).append(met)
            case ContactObligationCancelled():
                ob_gone = self.open.pop(event.obligation_id, None)
                if ob_gone is not None and not ob_gone.is_clock:
                    self.chains.pop(ob_gone.rule_id, None)
            case ContactCounted():
                self.counted[event.contact_id] = Counted(
                    event.occurred_at,
                    MEDIUM_CLASS[event.medium],
                    event.outcome is Outcome.MADE and event.with_client,
                    event.counted_for,
                )
                for rule_id in event.counted_for:
                    chain = self.chains.get(rule_id)
                    if chain is not None:
                        chain.times.append(event.occurred_at)
            case ContactUncounted():
                gone = self.counted.pop(event.contact_id, None)
                self.uncounted.add(event.contact_id)
                self.clocks_met_by.pop(event.contact_id, None)
                for rule_id in gone.counted_for if gone else ():
                    chain = self.chains.get(rule_id)
                    if chain is not None and gone is not None and gone.occurred_at in chain.times:
                        chain.times.remove(gone.occurred_at)
            case ContactObligationRescheduled():
                if (moved := self.open.get(event.obligation_id)) is not None:
                    self.open[moved.obligation_id] = replace(
                        moved, due_at=event.due_at, due_soon_raised=False
                    )
            case ContactDueSoon():
                if (soon := self.open.get(event.obligation_id)) is not None:
                    self.open[soon.obligation_id] = replace(soon, due_soon_raised=True)
            case ContactOverdue():
                if (late := self.open.get(event.obligation_id)) is not None:
                    self.open[late.obligation_id] = replace(late, overdue_raised=True)


def _kind(trigger: str | None) -> str:
    """A trigger id's kind: `crisis_resolved:<id>` → `crisis_resolved`."""
    return (trigger or "").split(":", 1)[0]


def _risk(risk: str | None) -> RiskLevel | None:
    return RiskLevel(risk) if risk in {r.value for r in RiskLevel} else None
