"""Supervision cadence: how often a worker is supervised and how often a case is reviewed,
and the two aggregates that hold each one's next due time.

Rules (`CadencePolicy`, configurable; the defaults are the employer standard for social
workers in England and the agency's review policy):

| whom | interval |
|---|---|
| a worker, newly qualified, in the first 6 weeks from `started_on` | weekly (7 days) |
| a worker, newly qualified, until 6 months (182 days) from `started_on` | fortnightly (14 days) |
| any other worker | monthly (30 days) |
| a case at imminent or high risk | 14 days |
| a case at medium risk (or unrated) | 30 days |
| a case at low risk | 90 days |
| a case never reviewed | within 14 days of opening (or its risk's interval, if shorter) |

The interval of a worker is the one in force at the last supervision held (or, before any,
when the cadence began: the supervisor assigned). `SupervisionDue` / `CaseReviewDue` come a
lead before the due time (3 days by default), `SupervisionOverdue` / `CaseReviewOverdue` at
it. A cancelled session moves nothing: only a session held does.

Invariant (each aggregate): for one due time, `…Due` and `…Overdue` are each raised at most
once, only while that is still the due time (a held session or a review recorded since moves
it, and a deadline for the old time then decides "nothing to do"), never for a worker who
left or has no supervisor, never for a closed case, and never before the clock reaches it.
The aggregates take their facts from one ordered source each: the staff member's directory
stream (`staff-<id>`) and the session handler for a worker; the case's stream and the session
handler for a case. A fact repeated (a redelivered event) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from casework.aggregate import Aggregate
from casework.contracts.supervision import (
    CaseReviewCadenceSet,
    CaseReviewDue,
    CaseReviewOverdue,
    SupervisionCadenceSet,
    SupervisionDue,
    SupervisionOverdue,
)
from casework.events import DomainEvent

SUPERVISED_ROLES = frozenset({"caseworker", "crisis_worker", "intake_worker", "supervisor"})
"""Roles whose holders are supervised on a cadence when the directory names their supervisor
(supervisors are supervised too; site managers and regional admins are not on it)."""


@dataclass(frozen=True)
class CadencePolicy:
    standard_days: int = 30
    newly_qualified_weekly_days: int = 7
    newly_qualified_weekly_until_days: int = 42
    newly_qualified_fortnightly_days: int = 14
    newly_qualified_until_days: int = 182
    review_days: dict[str, int] = field(
        default_factory=lambda: {"imminent": 14, "high": 14, "medium": 30, "low": 90}
    )
    unrated_review_days: int = 30
    first_review_days: int = 14
    due_lead: timedelta = timedelta(days=3)
    day: timedelta = timedelta(days=1)
    """The length of a cadence day (tests shorten it to run a month in seconds)."""

    def supervision_rule(
        self, newly_qualified: bool, started_on: date | None, at: datetime
    ) -> tuple[str, int]:
        """(rule, interval in days) for a worker at `at`."""
        if newly_qualified and started_on is not None:
            start = datetime.combine(started_on, time(0), tzinfo=UTC)
            elapsed = at - start
            if elapsed < self.day * self.newly_qualified_weekly_until_days:
                return "newly_qualified_weekly", self.newly_qualified_weekly_days
            if elapsed < self.day * self.newly_qualified_until_days:
                return "newly_qualified_fortnightly", self.newly_qualified_fortnightly_days
        return "standard", self.standard_days

    def review_interval(self, risk: str | None) -> int:
        if risk is None:
            return self.unrated_review_days
        return self.review_days.get(risk, self.unrated_review_days)

    def next_review(
        self, risk: str | None, opened_at: datetime | None, last_reviewed_at: datetime | None
    ) -> tuple[datetime, int, str] | None:
        """(due time, interval, basis) of a case's next review; None without a start."""
        interval = self.review_interval(risk)
        if last_reviewed_at is not None:
            return last_reviewed_at + self.day * interval, interval, "reviewed"
        if opened_at is None:
            return None
        first = min(self.first_review_days, interval)
        return opened_at + self.day * first, first, "opened"


def _reached(now: datetime, at: datetime) -> bool:
    return now >= at


class SupervisionCadence(Aggregate):
    """When a worker's next supervision is due (stream `supervision-cadence-<staff_id>`)."""

    stream_type = "supervision-cadence"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.supervisor_id: str | None = None
        self.newly_qualified = False
        self.started_on: date | None = None
        self.active = True
        self.supervised_role = False
        self.tracking_since: datetime | None = None
        self.last_held_at: datetime | None = None
        self.due_at: datetime | None = None
        self.rule: str | None = None
        self.interval_days: int | None = None
        self.raised_due: set[datetime] = set()
        self.raised_overdue: set[datetime] = set()
        self._last_set: SupervisionCadenceSet | None = None

    # -- facts -------------------------------------------------------------------------------

    def note_profile(
        self,
        *,
        sites: tuple[str, ...],
        roles: tuple[str, ...],
        newly_qualified: bool,
        started_on: date,
        policy: CadencePolicy,
        now: datetime,
    ) -> None:
        self.site = sites[0] if sites else None
        self.supervised_role = bool(SUPERVISED_ROLES & set(roles))
        self.newly_qualified = newly_qualified
        self.started_on = started_on
        self._settle(policy, now)

    def note_supervisor(
        self, supervisor_id: str, assigned_at: datetime, policy: CadencePolicy, now: datetime
    ) -> None:
        if self.tracking_since is None:
            self.tracking_since = assigned_at
        self.supervisor_id = supervisor_id
        self._settle(policy, now)

    def note_left(self, policy: CadencePolicy, now: datetime) -> None:
        self.active = False
        self._settle(policy, now)

    def record_held(self, held_at: datetime, policy: CadencePolicy, now: datetime) -> None:
        """A session was held: the next is due one interval after it (an older session
        recorded late moves nothing)."""
        if self.last_held_at is not None and held_at <= self.last_held_at:
            return
        self.last_held_at = held_at
        self._settle(policy, now)

    def _settle(self, policy: CadencePolicy, now: datetime) -> None:
        """Raise `SupervisionCadenceSet` if the facts noted (held in memory so far) or the due
        time differ from what the stream says."""
        due: datetime | None = None
        rule: str | None = None
        interval: int | None = None
        tracked = self.active and self.supervisor_id is not None and self.supervised_role
        if tracked:
            basis = self.last_held_at or self.tracking_since or now
            rule, interval = policy.supervision_rule(self.newly_qualified, self.started_on, basis)
            due = basis + policy.day * interval
        event = SupervisionCadenceSet(
            worker_id=self.id,
            supervisor_id=self.supervisor_id,
            site=self.site,
            newly_qualified=self.newly_qualified,
            started_on=self.started_on,
            supervised_role=self.supervised_role,
            active=self.active,
            tracking_since=self.tracking_since,
            last_held_at=self.last_held_at,
            due_at=due,
            rule=rule,
            interval_days=interval,
            set_at=now,
        )
        if self._last_set is None or _facts(self._last_set) != _facts(event):
            self._trigger(event)

    # -- deadlines ---------------------------------------------------------------------------

    def mark_due(self, due_at: datetime, lead: timedelta, now: datetime) -> None:
        if self.due_at != due_at or due_at in self.raised_due:
            return
        if not _reached(now, due_at - lead):
            return
        self._trigger(
            SupervisionDue(
                worker_id=self.id,
                supervisor_id=self.supervisor_id,
                site=self.site,
                due_at=due_at,
                last_held_at=self.last_held_at,
                raised_at=now,
            )
        )

    def mark_overdue(self, due_at: datetime, now: datetime) -> None:
        if self.due_at != due_at or due_at in self.raised_overdue or not _reached(now, due_at):
            return
        self._trigger(
            SupervisionOverdue(
                worker_id=self.id,
                supervisor_id=self.supervisor_id,
                site=self.site,
                due_at=due_at,
                last_held_at=self.last_held_at,
                raised_at=now,
            )
        )

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case SupervisionCadenceSet():
                self._last_set = event
                self.supervisor_id = event.supervisor_id
                self.newly_qualified = event.newly_qualified
                self.started_on = event.started_on
                self.active = event.active
                self.tracking_since = event.tracking_since
                self.last_held_at = event.last_held_at
                self.due_at = event.due_at
                self.rule = event.rule
                self.interval_days = event.interval_days
                self.site = event.site
                self.supervised_role = event.supervised_role
            case SupervisionDue():
                self.raised_due.add(event.due_at)
            case SupervisionOverdue():
                self.raised_overdue.add(event.due_at)


def _facts(event: SupervisionCadenceSet | CaseReviewCadenceSet) -> dict[str, object]:
    data = event.model_dump()
    data.pop("set_at", None)
    data.pop("case_version", None)  # bookkeeping, not a fact
    return data


class CaseReviewCadence(Aggregate):
    """When a case's next supervisory review is due (stream `review-cadence-<case_id>`)."""

    stream_type = "review-cadence"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.site: str | None = None
        self.team: str | None = None
        self.caseworker_id: str | None = None
        self.risk_level: str | None = None
        self.open = True
        self.opened_at: datetime | None = None
        self.last_reviewed_at: datetime | None = None
        self.due_at: datetime | None = None
        self.interval_days: int | None = None
        self.basis: str | None = None
        self.raised_due: set[datetime] = set()
        self.raised_overdue: set[datetime] = set()
        self.case_version = 0
        self._last_set: CaseReviewCadenceSet | None = None

    def note_case(
        self,
        change: dict[str, object],
        policy: CadencePolicy,
        now: datetime,
        case_version: int | None = None,
    ) -> None:
        """Facts of the case from one of its events (`site`, `team`, `caseworker_id`,
        `risk_level`, `open`, `opened_at`); unknown keys are ignored. An event of the case at
        or below the version last taken in is a redelivery: nothing changes (the events
        after that version changed nothing then, and change nothing again from the same
        state)."""
        if case_version is not None:
            if case_version <= self.case_version:
                return
            self.case_version = case_version
        for name in ("site", "team", "caseworker_id", "risk_level", "open", "opened_at"):
            if name in change:
                setattr(self, name, change[name])
        self._settle(policy, now)

    def record_review(self, reviewed_at: datetime, policy: CadencePolicy, now: datetime) -> None:
        if self.last_reviewed_at is not None and reviewed_at <= self.last_reviewed_at:
            return
        self.last_reviewed_at = reviewed_at
        self._settle(policy, now)

    def _settle(self, policy: CadencePolicy, now: datetime) -> None:
        due: datetime | None = None
        interval: int | None = None
        basis: str | None = None
        if self.open:
            found = policy.next_review(self.risk_level, self.opened_at, self.last_reviewed_at)
            if found is not None:
                due, interval, basis = found
        event = CaseReviewCadenceSet(
            case_id=self.id,
            site=self.site,
            team=self.team,
            caseworker_id=self.caseworker_id,
            risk_level=self.risk_level,
            open=self.open,
            opened_at=self.opened_at,
            last_reviewed_at=self.last_reviewed_at,
            due_at=due,
            interval_days=interval,
            basis=basis,
            case_version=self.case_version or None,
            set_at=now,
        )
        if self._last_set is None or _facts(self._last_set) != _facts(event):
            self._trigger(event)

    def mark_due(self, due_at: datetime, lead: timedelta, now: datetime) -> None:
        if self.due_at != due_at or due_at in self.raised_due:
            return
        if not _reached(now, due_at - lead):
            return
        self._trigger(CaseReviewDue(**self._alert(due_at, now)))

    def mark_overdue(self, due_at: datetime, now: datetime) -> None:
        if self.due_at != due_at or due_at in self.raised_overdue or not _reached(now, due_at):
            return
        self._trigger(CaseReviewOverdue(**self._alert(due_at, now)))

    def _alert(self, due_at: datetime, now: datetime) -> dict[str, object]:
        return {
            "case_id": self.id,
            "site": self.site,
            "team": self.team,
            "caseworker_id": self.caseworker_id,
            "risk_level": self.risk_level,
            "due_at": due_at,
            "last_reviewed_at": self.last_reviewed_at,
            "raised_at": now,
        }

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case CaseReviewCadenceSet():
                self._last_set = event
                self.site = event.site
                self.team = event.team
                self.caseworker_id = event.caseworker_id
                self.risk_level = event.risk_level
                self.open = event.open
                self.opened_at = event.opened_at
                self.last_reviewed_at = event.last_reviewed_at
                self.due_at = event.due_at
                self.interval_days = event.interval_days
                self.basis = event.basis
                self.case_version = event.case_version or self.case_version
            case CaseReviewDue():
                self.raised_due.add(event.due_at)
            case CaseReviewOverdue():
                self.raised_overdue.add(event.due_at)
