"""What the notifications service is asked to do (imperative); the `Alert` decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casework.contracts.notifications import Channel, EscalationPolicy, Trigger, Urgency


@dataclass(frozen=True)
class Recipients:
    """Who a step's targets named at that moment, and which targets named nobody."""

    ids: tuple[str, ...]
    unresolved: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fire:
    """A trigger fired for the alert group (`alert_id` = `<trigger>:<subject>`)."""

    alert_id: str
    trigger: Trigger
    source_id: str
    case_id: str | None
    worker_id: str | None
    site: str
    urgency: Urgency
    channels: tuple[Channel, ...]
    policy: EscalationPolicy
    recipients: Recipients
    at: datetime
    team: str | None = None
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class Escalate:
    """Step `step` of `episode` is due (a durable deadline fired)."""

    alert_id: str
    episode: int
    step: int
    recipients: Recipients
    at: datetime


@dataclass(frozen=True)
class Acknowledge:
    alert_id: str
    by: str
    notification_id: str | None
    at: datetime


@dataclass(frozen=True)
class RecordInContact:
    alert_id: str
    by: str
    notification_id: str | None
    at: datetime


@dataclass(frozen=True)
class MarkRead:
    alert_id: str
    notification_id: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Close:
    """What fired the alert is over (a crisis resolved): close the episode it opened; or, with
    `settle`, one of its sources is over (an overdue contact made)."""

    alert_id: str
    source_id: str
    reason: str
    by: str | None
    at: datetime
    opened_by: datetime | None = None
    """Close only an episode opened at or before this time (None: whenever it opened). A
    close that is not by the episode's own source (`ANY_SOURCE`: a crisis supersedes the
    case's risk notice) says so, so that a replayed old event never closes a later episode."""
    settle: bool = False
    """Only `source_id` is over, not necessarily the episode (one overdue contact of a case
    made, others maybe still owed): record it, and close the episode once every source it
    counted is settled. A source the episode did not count changes nothing."""


@dataclass(frozen=True)
class BringIn:
    """People now answering to some targets (`(target, staff_id)` pairs, e.g. the on-call
    worker of a shift that began) should know of the open alert: those whose target a
    reached step named, and whom the episode has not notified, are notified at its current
    step. `reason` says why, without personal data."""

    alert_id: str
    people: tuple[tuple[str, str], ...]
    reason: str
    at: datetime


AlertCommand = Fire | Escalate | BringIn | Acknowledge | RecordInContact | MarkRead | Close
