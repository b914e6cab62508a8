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


# --- supervision sessions, case reviews, action items, escalations ---------------------------
