"""Events of the supervision service (topic `casework.supervision.events`).

Streams:

- `site-<site>`: a site of the agency; `team-<site>/<team>`: a team within a site.
- `staff-<staff_id>`: a member of staff (`staff_id` is the subject of their token): profile,
  who supervises them, and — on a supervisor's own stream — whom they delegate to while away.
- `rota-<site>`: the site's on-call crisis rota (shifts with a worker and a backup).
- approvals, supervision sessions, case reviews, action items and escalations: sections below.

Staff names and work e-mail addresses are the agency's directory, not client data; no event
here carries a client's personal data except where a field is marked `personal(...)`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from casework.events import DomainEvent, Sealed, personal


class SupervisionEvent(DomainEvent):
    service = "supervision"


# --- organisation directory ------------------------------------------------------------------


class SiteRegistered(SupervisionEvent):
    """A site of the agency joined the organisation directory."""

    site: str
    name: str
    registered_at: datetime
    timezone: str | None = None
    """IANA timezone of the site (e.g. `Europe/London`); None: the agency's default."""


class TeamRegistered(SupervisionEvent):
    """A team within a site. A team code is known within its site only (`site` + `team`)."""

    site: str
    team: str
    name: str
    registered_at: datetime


class StaffProfileEvent(SupervisionEvent):
    """The whole current profile of a member of staff (each event carries all of it, so a
    consumer needs only the latest)."""

    staff_id: str
    """The subject (`sub`) of the person's token."""
    name: str
    email: str | None = None
    sites: tuple[str, ...]
    team: str | None = None
    """Their team within their (first) site, if they belong to one."""
    roles: tuple[str, ...]
    """Platform roles (`caseworker`, `supervisor`, `crisis_worker`, `site_manager`, ...)."""
    newly_qualified: bool = False
    started_on: date
    """Start date in the role (the supervision cadence of the newly qualified counts from it)."""
    capacity_points: int | None = None
    """Weighted caseload this worker can carry; None: the caseload policy's default."""
    timezone: str | None = None
    """IANA timezone for quiet hours and digests; None: the site's."""


class StaffMemberRegistered(StaffProfileEvent):
    """Someone joined the directory."""

    registered_at: datetime


class StaffProfileChanged(StaffProfileEvent):
    """Any change of profile: sites, team, roles, flags, capacity (the whole new profile)."""

    changed_at: datetime


class StaffMemberLeft(SupervisionEvent):
    """Someone left the agency: they supervise, carry and are rostered for nothing any more."""

    staff_id: str
    left_at: datetime


class SupervisorAssigned(SupervisionEvent):
    """`supervisor_id` supervises `staff_id` from now on (stream of `staff_id`)."""

    staff_id: str
    supervisor_id: str
    previous_supervisor_id: str | None = None
    assigned_by: str
    assigned_at: datetime


class SupervisionDelegated(SupervisionEvent):
    """While away, `supervisor_id` delegates supervision (approvals included) of all their
    supervisees to `delegate_id` between `starts_at` and `ends_at` (stream of the supervisor).
    """

    supervisor_id: str
    delegation_id: str
    delegate_id: str
    starts_at: datetime
    ends_at: datetime
    delegated_by: str
    delegated_at: datetime


class SupervisionDelegationEnded(SupervisionEvent):
    """A delegation ended before its planned end (the supervisor is back)."""

    supervisor_id: str
    delegation_id: str
    ended_by: str
    ended_at: datetime


class OnCallShiftScheduled(SupervisionEvent):
    """`staff_id` is the site's on-call crisis worker from `starts_at` to `ends_at`, with
    `backup_id` behind them (stream `rota-<site>`)."""

    site: str
    shift_id: str
    staff_id: str
    backup_id: str | None = None
    starts_at: datetime
    ends_at: datetime
    scheduled_by: str
    scheduled_at: datetime


class OnCallShiftCancelled(SupervisionEvent):
    site: str
    shift_id: str
    cancelled_by: str
    cancelled_at: datetime


# --- caseload weighting ----------------------------------------------------------------------


class CaseloadPolicySet(SupervisionEvent):
    """The agency's caseload weighting, replacing the previous one (stream
    `caseload_policy-agency`): the points a case weighs by its risk level (`none` for a case
    not yet rated), the bonus while it is in crisis, the capacity of a worker whose profile
    names none, and where the bands begin, as a share of capacity (green below amber)."""

    points_by_risk: dict[str, int]
    """Keys `imminent`, `high`, `medium`, `low`, `none`."""
    crisis_bonus: int
    default_capacity: int
    amber_at_percent: int
    red_at_percent: int
    set_by: str
    set_at: datetime


# --- approvals -------------------------------------------------------------------------------

#
# One stream per approval, `approval-<approval_id>`; the id says what is approved, so a
# redelivered request names the same approval: `<case_id>:plan:<plan_version>`,
# `<case_id>:closure:<n>` (n = the case's stream version of `ClosureRequested`),
# `<case_id>:assessment:<assessment_id>`. requested → granted | returned | withdrawn, and a
# decided approval never changes again (a later revision is a new approval).


class ApprovalRequested(SupervisionEvent):
    """Something of a case waits for a supervisor: an assessment, a plan (or a revision of
    it), or a closure. Raised by supervision's policies from the cases service's events."""

    approval_id: str
    kind: str
    """`assessment`, `plan` or `closure`."""
    case_id: str
    site: str
    team: str | None = None
    caseworker_id: str | None = None
    subject_version: int
    """What exactly is approved: the plan's version, or the case's stream version of the
    `AssessmentRecorded` / `ClosureRequested`."""
    subject_id: str | None = None
    """The assessment's id (assessments only)."""
    requested_by: str
    """Who proposed it (never the one who decides: four eyes)."""
    requested_at: datetime
    due_at: datetime
    """When `ApprovalOverdue` is raised if nobody decided (72 h; 24 h at high or imminent
    risk; configurable)."""
    client_id: str | None = None
    """The case's client (an id only: audit records name the subjects an answer concerns)."""


class ApprovalGranted(SupervisionEvent):
    """A supervisor (or their delegate) approved; the cases service acts on it.

    The comment is sealed under the case's client (`client_id`, record class `notes`), like
    a return's reason: a supervisor's words about a case can carry client detail. Consumers
    copy the sealed value as it is (the cases service into its own events); it is opened at
    an authorised HTTP edge only and reads `[erased]` once the client is erased."""

    approval_id: str
    kind: str
    case_id: str
    subject_version: int
    subject_id: str | None = None
    requested_at: datetime | None = None
    """When what is decided was requested (a closure request is named by it on the case)."""
    decided_by: str
    on_behalf_of: str | None = None
    """The supervisor a delegate decided for (None when the supervisor decided)."""
    comment: str | Sealed | None = personal(
        "The supervisor's comment (may speak of the client).",
        subject="client_id",
        record_class="notes",
        default=None,
    )
    decided_at: datetime
    client_id: str | None = None
    """The case's client: the data subject of `comment` (from the request)."""


class ApprovalReturned(SupervisionEvent):
    """A supervisor sent it back, with the reason; the cases service acts on it. The reason
    is sealed under the case's client (see `ApprovalGranted`)."""

    approval_id: str
    kind: str
    case_id: str
    subject_version: int
    subject_id: str | None = None
    requested_at: datetime | None = None
    reason: str | Sealed = personal(
        "Why it was sent back (may speak of the client).",
        subject="client_id",
        record_class="notes",
    )
    decided_by: str
    on_behalf_of: str | None = None
    decided_at: datetime
    client_id: str | None = None
    """The case's client: the data subject of `reason` (from the request)."""


class ApprovalWithdrawn(SupervisionEvent):
    """Nothing to decide any more: a newer proposal superseded it, the case closed, reopened
    or moved to another site."""

    approval_id: str
    kind: str
    case_id: str
    reason: str
    """A code: `superseded`, `case_closed`, `case_reopened`, `case_transferred`."""
    withdrawn_at: datetime


class ApprovalOverdue(SupervisionEvent):
    """Nobody decided by the due time (raised once per approval)."""

    approval_id: str
    kind: str
    case_id: str
    site: str
    team: str | None = None
    approver_ids: tuple[str, ...] = ()
    """Who may decide, as the directory said when it was raised."""
    requested_at: datetime
    due_at: datetime
    raised_at: datetime


# --- supervision sessions, case reviews, action items, escalations ---------------------------

# Streams: `session-<id>` (a supervision session and its record), `action-<id>` (an action
# item, carried from session to session until done), `supervision-cadence-<staff_id>` (when
# the worker's next supervision is due), `review-cadence-<case_id>` (when the case's next
# review is due), `concern-<id>` (a concern escalated to the site manager).
#
# Client data (review findings, decisions, reasons; an action item or concern about a case)
# is sealed under the client (`client_id`, or `subject_id` = `client:<id>`); notes on the
# worker's own practice, learning and wellbeing under the worker (`worker_subject` =
# `staff:<id>`), so that they are kept apart from every client file.


class SessionKind(StrEnum):
    ONE_TO_ONE = "one_to_one"
    GROUP = "group"
    REMOTE = "remote"


class AgendaItemKind(StrEnum):
    CRISIS = "crisis"
    HIGH_RISK = "high_risk"
    OVERDUE_CONTACTS = "overdue_contacts"
    MISSED_FOLLOW_UP = "missed_follow_up"
    REVIEW_DUE = "review_due"
    APPROVAL_PENDING = "approval_pending"
    ACTION_ITEM = "action_item"


class AgendaItem(BaseModel):
    """One thing to bring to the session, why, and the figures it was built from as they were
    when the agenda was prepared (so that the record stands on its own later). Ids, codes,
    dates and counts only: no client data."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    kind: AgendaItemKind
    case_id: str | None = None
    reason: str
    snapshot: dict[str, str | int | bool | None]


class SupervisionSessionScheduled(SupervisionEvent):
    session_id: str
    worker_id: str
    supervisor_id: str
    site: str | None = None
    kind: SessionKind
    planned_for: datetime
    replaces: str | None = None
    """The cancelled session this one reschedules."""
    scheduled_by: str
    scheduled_at: datetime


class SupervisionAgendaPrepared(SupervisionEvent):
    """The agenda, built from the read models at `prepared_at` (preparing again replaces it)."""

    session_id: str
    worker_id: str
    items: tuple[AgendaItem, ...]
    prepared_by: str
    prepared_at: datetime


class CaseReviewRecorded(SupervisionEvent):
    """The supervisor reviewed one of the worker's cases in the session."""

    session_id: str
    review_id: str
    case_id: str
    client_id: str
    worker_id: str
    risk_level: str | None = None
    """The case's risk when reviewed (a snapshot)."""
    findings: str | Sealed = personal(
        "What the review found.", subject="client_id", record_class="notes"
    )
    decision: str | Sealed = personal(
        "What was decided for the case.", subject="client_id", record_class="notes"
    )
    reasons: str | Sealed = personal("Why.", subject="client_id", record_class="notes")
    reviewed_by: str
    reviewed_at: datetime


class PracticeTopic(StrEnum):
    PRACTICE = "practice"
    LEARNING = "learning"
    WELLBEING = "wellbeing"


class PracticeNoteRecorded(SupervisionEvent):
    """A note on the worker's own practice, learning or wellbeing: kept apart from client
    files, readable by the worker and their supervisor only."""

    session_id: str
    note_id: str
    worker_id: str
    worker_subject: str
    """`staff:<id>`: the note is sealed under the worker, never under a client."""
    topic: PracticeTopic
    text: str | Sealed = personal("The note.", subject="worker_subject", record_class="notes")
    recorded_by: str
    recorded_at: datetime


class SupervisionSessionHeld(SupervisionEvent):
    """The session took place and its record is closed (what follows is the worker's
    acknowledgement)."""

    session_id: str
    worker_id: str
    supervisor_id: str
    site: str | None = None
    held_at: datetime
    reviewed_case_ids: tuple[str, ...] = ()
    recorded_by: str


class SupervisionRecordAcknowledged(SupervisionEvent):
    """The worker saw the record of the session."""

    session_id: str
    worker_id: str
    acknowledged_at: datetime


class SupervisionSessionCancelled(SupervisionEvent):
    """Cancelled before it was held; the worker's supervision stays due until one is held."""

    session_id: str
    worker_id: str
    worker_subject: str
    reason: str | Sealed = personal(
        "Why it was cancelled.", subject="worker_subject", record_class="notes"
    )
    rescheduled_as: str | None = None
    cancelled_by: str
    cancelled_at: datetime


class SupervisionSessionRescheduled(SupervisionEvent):
    session_id: str
    worker_id: str
    planned_for: datetime
    previous_planned_for: datetime
    rescheduled_by: str
    rescheduled_at: datetime


class ActionItemSet(SupervisionEvent):
    """Something to be done by `owner_id` by `due_at`, carried to each next session of the
    worker until it is done."""

    action_item_id: str
    session_id: str | None = None
    worker_id: str
    supervisor_id: str
    owner_id: str
    site: str | None = None
    case_id: str | None = None
    subject_id: str
    """Whose data the description is: `client:<id>` when about a case, else `staff:<id>`."""
    description: str | Sealed = personal(
        "What is to be done.", subject="subject_id", record_class="notes"
    )
    due_at: datetime
    set_by: str
    set_at: datetime


class ActionItemDone(SupervisionEvent):
    action_item_id: str
    worker_id: str
    done_by: str
    done_at: datetime


class ActionItemOverdue(SupervisionEvent):
    """An action item passed its due time undone: raised once per item."""

    action_item_id: str
    worker_id: str
    supervisor_id: str
    owner_id: str
    site: str | None = None
    case_id: str | None = None
    due_at: datetime
    raised_at: datetime


class SupervisionCadenceSet(SupervisionEvent):
    """What the worker's supervision cadence rests on and when their next supervision is due
    (stream `supervision-cadence-<staff_id>`); `due_at` None: nothing falls due (no
    supervisor, or they left). Raised whenever a fact or the due time changes."""

    worker_id: str
    supervisor_id: str | None = None
    site: str | None = None
    newly_qualified: bool = False
    started_on: date | None = None
    supervised_role: bool = False
    """Whether they hold a role supervised on a cadence (caseworker, crisis or intake worker,
    supervisor)."""
    active: bool = True
    tracking_since: datetime | None = None
    last_held_at: datetime | None = None
    due_at: datetime | None = None
    rule: str | None = None
    """`newly_qualified_weekly`, `newly_qualified_fortnightly` or `standard`."""
    interval_days: int | None = None
    set_at: datetime


class SupervisionDue(SupervisionEvent):
    """The worker's supervision falls due soon (the cadence's lead before `due_at`)."""

    worker_id: str
    supervisor_id: str | None = None
    site: str | None = None
    due_at: datetime
    last_held_at: datetime | None = None
    raised_at: datetime


class SupervisionOverdue(SupervisionEvent):
    """No supervision was held by `due_at`: raised once per due time."""

    worker_id: str
    supervisor_id: str | None = None
    site: str | None = None
    due_at: datetime
    last_held_at: datetime | None = None
    raised_at: datetime


class CaseReviewCadenceSet(SupervisionEvent):
    """What the case's review cadence rests on and when its next supervisory review is due
    (stream `review-cadence-<case_id>`); `due_at` None once the case is closed. Raised
    whenever a fact or the due time changes."""

    case_id: str
    site: str | None = None
    team: str | None = None
    caseworker_id: str | None = None
    risk_level: str | None = None
    open: bool = True
    opened_at: datetime | None = None
    last_reviewed_at: datetime | None = None
    due_at: datetime | None = None
    interval_days: int | None = None
    basis: str | None = None
    """`opened` (the first review) or `reviewed`."""
    case_version: int | None = None
    """The version of the case's stream whose facts this set took in last (redelivered older
    events of the case change nothing)."""
    set_at: datetime


class CaseReviewDue(SupervisionEvent):
    case_id: str
    site: str | None = None
    team: str | None = None
    caseworker_id: str | None = None
    risk_level: str | None = None
    due_at: datetime
    last_reviewed_at: datetime | None = None
    raised_at: datetime


class CaseReviewOverdue(SupervisionEvent):
    """The case was not reviewed by `due_at`: raised once per due time."""

    case_id: str
    site: str | None = None
    team: str | None = None
    caseworker_id: str | None = None
    risk_level: str | None = None
    due_at: datetime
    last_reviewed_at: datetime | None = None
    raised_at: datetime


class ConcernEscalated(SupervisionEvent):
    """A supervisor escalated a concern (about a worker's practice or a case) to the site
    manager."""

    concern_id: str
    site: str
    worker_id: str | None = None
    case_id: str | None = None
    subject_id: str
    """`client:<id>` when about a case, else `staff:<worker id>`."""
    summary: str | Sealed = personal(
        "What the concern is.", subject="subject_id", record_class="notes"
    )
    raised_by: str
    raised_at: datetime


class ConcernResolved(SupervisionEvent):
    concern_id: str
    site: str
    subject_id: str
    resolution: str | Sealed = personal(
        "How it was resolved.", subject="subject_id", record_class="notes"
    )
    resolved_by: str
    resolved_at: datetime
