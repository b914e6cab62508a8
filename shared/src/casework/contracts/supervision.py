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

from casework.events import DomainEvent


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
    """A supervisor (or their delegate) approved; the cases service acts on it."""

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
    comment: str | None = None
    decided_at: datetime


class ApprovalReturned(SupervisionEvent):
    """A supervisor sent it back, with the reason; the cases service acts on it."""

    approval_id: str
    kind: str
    case_id: str
    subject_version: int
    subject_id: str | None = None
    requested_at: datetime | None = None
    reason: str
    decided_by: str
    on_behalf_of: str | None = None
    decided_at: datetime


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
