"""Events of the notifications service (topic `casework.notifications.events`).

Stream `alert-<alert_id>`: one alert group per (trigger, subject) — e.g. `crisis:<case_id>`
— through its episodes (an episode opens, escalates step by step, is acknowledged, closes; a
later fire opens the next episode). Every notification a person gets is a `NotificationSent`
on its alert's stream, with an id made of the alert, episode, step and recipient: the event
store's one-writer-per-stream rule is what makes "one notification per recipient per step".

No event here carries client data: an alert names the case by id, and the reader opens the
case through the audited API of the cases service.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from casework.events import DomainEvent


class NotificationEvent(DomainEvent):
    service = "notifications"


class Trigger(StrEnum):
    """What raised an alert."""

    CRISIS = "crisis"
    RISK_RAISED = "risk_raised"
    CONTACT_OVERDUE = "contact_overdue"
    FOLLOW_UP_MISSED = "follow_up_missed"
    """The follow-up contact due within its clock after a crisis was resolved or a discharge
    from inpatient care was not made in time (contacts' `ContactOverdue` of such a clock)."""
    LONE_WORKER_OVERDUE = "lone_worker_overdue"
    CASE_REVIEW_OVERDUE = "case_review_overdue"
    ACTION_ITEM_OVERDUE = "action_item_overdue"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_OVERDUE = "approval_overdue"
    SUPERVISION_OVERDUE = "supervision_overdue"
    """A worker's supervision was not held by its due time (supervision's cadence)."""
    TRANSFER_WAITING = "transfer_waiting"
    SCREENED_IMMINENT = "screened_imminent"
    """A referral was screened at imminent risk (intake's `RiskScreened`) and waits for an
    intake decision: one group per referral, until it is accepted, declined or screened lower."""


class Urgency(StrEnum):
    """How loud: `critical` ignores quiet hours and escalates; `normal` may wait for a
    person's quiet hours to end, and overdue notices go to digests."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"


class Channel(StrEnum):
    INBOX = "inbox"
    EMAIL = "email"
    WEBHOOK = "webhook"


class EscalationLevel(BaseModel):
    """Who is notified at this level, `delay_minutes` after the previous level (the first
    level's delay counts from the opening: 0 means at once)."""

    targets: tuple[str, ...]
    """Target kinds: `assigned_worker`, `on_call`, `backup`, `supervisor`, `site_manager`,
    `regional`, or `staff:<id>` for a named person."""
    delay_minutes: int = Field(ge=0)


class EscalationPolicy(BaseModel):
    """Ordered levels, repeated `repeat` more times (`repeat_after_minutes` after the last
    level), never resolved automatically. An alert carries the policy as it was when it
    opened, so a later change of configuration does not change an open alert's course."""

    name: str
    levels: tuple[EscalationLevel, ...]
    repeat: int = Field(default=0, ge=0)
    repeat_after_minutes: int = Field(default=10, ge=1)


class AlertOpened(NotificationEvent):
    """A trigger fired with no open episode of its group: a new episode, escalating per the
    policy it carries."""

    alert_id: str
    episode: int
    trigger: Trigger
    source_id: str
    """The id of what fired it (a crisis id, an obligation id, ...)."""
    case_id: str | None = None
    worker_id: str | None = None
    """The worker the alert is about (the case's caseworker, the lone worker); escalation
    targets such as `supervisor` are resolved from them."""
    site: str
    urgency: Urgency
    channels: tuple[Channel, ...]
    policy: EscalationPolicy
    opened_at: datetime
    team: str | None = None
    """The case's team: whose supervisors decide an approval when the worker has none (every
    level of the episode resolves `supervisor` so)."""
    excluded: tuple[str, ...] = ()
    """Who is never notified of this episode at any level (the requester of an approval:
    four eyes)."""


class AlertRefired(NotificationEvent):
    """The trigger fired again while the episode was open: a count, not a notification."""

    alert_id: str
    episode: int
    source_id: str
    count: int
    refired_at: datetime


class AlertEscalated(NotificationEvent):
    """Step `step` of the episode's escalation was reached (step 0: the opening level):
    `level` of the policy in repetition `repeat`, and these recipients were notified."""

    alert_id: str
    episode: int
    step: int
    level: int
    repeat: int
    recipients: tuple[str, ...]
    unresolved_targets: tuple[str, ...] = ()
    """Targets that named nobody at that moment (no one on call, no supervisor...)."""
    due_at: datetime
    escalated_at: datetime


class NotificationSent(NotificationEvent):
    """One person was notified of one step of one alert (`notification_id` =
    `<alert_id>/<episode>/<step>/<recipient>` with `/` as `~`)."""

    notification_id: str
    alert_id: str
    episode: int
    step: int
    recipient_id: str
    trigger: Trigger
    urgency: Urgency
    case_id: str | None = None
    site: str
    channels: tuple[Channel, ...]
    sent_at: datetime


class AlertBroughtIn(NotificationEvent):
    """People were notified of the episode's current step after it was reached, because they
    came on call while the alert was open and unacknowledged (a shift that began, or one the
    service heard of late): `targets` are the reached targets they answer to (`on_call`,
    `backup`); a `NotificationSent` per recipient follows."""

    alert_id: str
    episode: int
    step: int
    recipients: tuple[str, ...]
    targets: tuple[str, ...]
    reason: str
    """Why now, without personal data (e.g. `on_call_shift:<site>/<shift_id>`)."""
    brought_in_at: datetime


class AlertAcknowledged(NotificationEvent):
    """Someone took responsibility: the escalation stops for everyone."""

    alert_id: str
    episode: int
    acknowledged_by: str
    notification_id: str | None = None
    acknowledged_at: datetime


class AlertInContact(NotificationEvent):
    """Someone is in contact with the client about this alert."""

    alert_id: str
    episode: int
    by: str
    notification_id: str | None = None
    at: datetime


class NotificationRead(NotificationEvent):
    """The recipient opened the notification."""

    alert_id: str
    notification_id: str
    recipient_id: str
    read_at: datetime


class AlertSourceSettled(NotificationEvent):
    """One of the sources the episode counted is over (an overdue contact obligation met or
    no longer owed) while the group is about others as well: recorded, not notified. When it
    was the last source still outstanding (`outstanding` 0), an `AlertClosed` follows."""

    alert_id: str
    episode: int
    source_id: str
    reason: str
    settled_by: str | None = None
    outstanding: int
    """How many of the episode's sources are still not over after this one."""
    settled_at: datetime


class AlertClosed(NotificationEvent):
    """The episode ended (the crisis was resolved; every overdue contact it counted was
    made or is no longer owed)."""

    alert_id: str
    episode: int
    source_id: str
    reason: str
    closed_by: str | None = None
    closed_at: datetime
