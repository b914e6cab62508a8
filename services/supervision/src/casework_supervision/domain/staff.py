"""The StaffMember aggregate (stream `staff-<staff_id>`, `staff_id` = their token's `sub`):
their profile, who supervises them, and the delegations they give while away.

Rules (each a domain error, `domain/errors.py`):
- a profile names at least one site and one role, each once, roles from `STAFF_ROLES`;
- a leaver is given nothing new: no profile change, supervisor, supervisee or delegation;
- a supervisor holds the `supervisor` role and is not the supervisee;
- a delegation is given by a supervisor to another supervisor, ends after it starts and after
  now; ending it early is possible until it is over.

Facts about other aggregates (that a site or team exists, the supervisor's roles, the shifts a
leaver is rostered for) are read by the handler and passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.supervision import (
    StaffMemberLeft,
    StaffMemberRegistered,
    StaffProfileChanged,
    StaffProfileEvent,
    SupervisionDelegated,
    SupervisionDelegationEnded,
    SupervisorAssigned,
)
from casework.events import DomainEvent

from casework_supervision.domain.commands import (
    STAFF_ROLES,
    AssignSupervisor,
    ChangeStaffProfile,
    DelegateSupervision,
    EndDelegation,
    RegisterStaffMember,
    StaffProfile,
)
from casework_supervision.domain.errors import (
    DelegationAlreadyOver,
    DelegationIdUsed,
    DelegationNotFound,
    InvalidDirectoryEntry,
    NotASupervisor,
    StaffMemberAlreadyRegistered,
    StaffMemberHasLeft,
    StaffMemberNotFound,
    StillRostered,
    SupervisesThemselves,
)


@dataclass(frozen=True)
class Delegation:
    delegation_id: str
    delegate_id: str
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None

    def over_at(self) -> datetime:
        return min(self.ends_at, self.ended_at) if self.ended_at else self.ends_at


def check_profile(profile: StaffProfile) -> None:
    """The profile's own rules (422, naming the field)."""
    if not profile.sites:
        raise InvalidDirectoryEntry("a member of staff works at one site at least", "body.sites")
    if len(set(profile.sites)) != len(profile.sites):
        raise InvalidDirectoryEntry("each site once", "body.sites")
    if not profile.roles:
        raise InvalidDirectoryEntry("a member of staff holds one role at least", "body.roles")
    if len(set(profile.roles)) != len(profile.roles):
        raise InvalidDirectoryEntry("each role once", "body.roles")
    unknown = sorted(set(profile.roles) - STAFF_ROLES)
    if unknown:
        raise InvalidDirectoryEntry(f"unknown role(s): {', '.join(unknown)}", "body.roles")
    if profile.capacity_points is not None and profile.capacity_points <= 0:
        raise InvalidDirectoryEntry("capacity is a positive number of points", "body.capacity")


class StaffMember(Aggregate):
    stream_type = "staff"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.profile: StaffProfile | None = None
        self.active = False
        self.supervisor_id: str | None = None
        self.delegations: dict[str, Delegation] = {}

    # -- what others ask of a member of staff ----------------------------------------------------

    @property
    def registered(self) -> bool:
        return self.profile is not None

    def holds(self, *roles: str) -> bool:
        return self.profile is not None and not set(roles).isdisjoint(self.profile.roles)

    def works_at(self, site: str) -> bool:
        return self.profile is not None and site in self.profile.sites

    def delegates_at(self, at: datetime) -> list[str]:
        """Who stands in for this supervisor at `at`."""
        return [d.delegate_id for d in self.delegations.values() if d.starts_at <= at < d.over_at()]

    # -- commands ------------------------------------------------------------------------------

    def register(self, cmd: RegisterStaffMember, at: datetime) -> None:
        if self.profile is not None:
            raise StaffMemberAlreadyRegistered(self.id)
        check_profile(cmd.profile)
        self._trigger(
            StaffMemberRegistered(staff_id=self.id, registered_at=at, **_fields(cmd.profile))
        )

    def change_profile(self, cmd: ChangeStaffProfile, at: datetime) -> None:
        """Record the whole new profile; nothing when it is the same."""
        self._require_active()
        check_profile(cmd.profile)
        if cmd.profile == self.profile:
            return
        self._trigger(StaffProfileChanged(staff_id=self.id, changed_at=at, **_fields(cmd.profile)))

    def leave(self, at: datetime, rostered_on: list[str]) -> None:
        """Record that they left; refused while they are rostered on call (`rostered_on`: the
        shifts not yet over that name them, as the handler found them)."""
        self._require_active()
        if rostered_on:
            raise StillRostered(self.id, rostered_on)
        self._trigger(StaffMemberLeft(staff_id=self.id, left_at=at))

    def assign_supervisor(
        self, cmd: AssignSupervisor, supervisor: StaffMember, at: datetime
    ) -> None:
        self._require_active()
        if supervisor.id == self.id:
            raise SupervisesThemselves(self.id)
        supervisor.require_active_supervisor("to supervise")
        if self.supervisor_id == supervisor.id:
            return  # already so: setting it again (a PUT repeated) changes nothing
        self._trigger(
            SupervisorAssigned(
                staff_id=self.id,
                supervisor_id=supervisor.id,
                previous_supervisor_id=self.supervisor_id,
                assigned_by=cmd.assigned_by,
                assigned_at=at,
            )
        )

    def delegate(self, cmd: DelegateSupervision, delegate: StaffMember, at: datetime) -> None:
        """Delegate supervision of all their supervisees to `delegate` for a while."""
        self.require_active_supervisor("to delegate supervision")
        if delegate.id == self.id:
            raise InvalidDirectoryEntry(
                "a supervisor delegates to someone else", "body.delegate_id"
            )
        delegate.require_active_supervisor("to stand in as a delegate")
        if cmd.delegation_id in self.delegations:
            raise DelegationIdUsed(self.id, cmd.delegation_id)
        if cmd.ends_at <= cmd.starts_at:
            raise InvalidDirectoryEntry("a delegation ends after it starts", "body.ends_at")
        if cmd.ends_at <= at:
            raise InvalidDirectoryEntry("a delegation ends in the future", "body.ends_at")
        self._trigger(
            SupervisionDelegated(
                supervisor_id=self.id,
                delegation_id=cmd.delegation_id,
                delegate_id=delegate.id,
                starts_at=cmd.starts_at,
                ends_at=cmd.ends_at,
                delegated_by=cmd.delegated_by,
                delegated_at=at,
            )
        )

    def end_delegation(self, cmd: EndDelegation, at: datetime) -> None:
        """End a delegation before its planned end (the supervisor is back)."""
        if not self.registered:
            raise StaffMemberNotFound(self.id)
        delegation = self.delegations.get(cmd.delegation_id)
        if delegation is None:
            raise DelegationNotFound(self.id, cmd.delegation_id)
        if delegation.over_at() <= at:
            raise DelegationAlreadyOver(cmd.delegation_id)
        self._trigger(
            SupervisionDelegationEnded(
                supervisor_id=self.id,
                delegation_id=cmd.delegation_id,
                ended_by=cmd.ended_by,
                ended_at=at,
            )
        )

    def require_active_supervisor(self, as_what: str) -> None:
        self._require_active()
        if not self.holds("supervisor"):
            raise NotASupervisor(self.id, as_what)

    def _require_active(self) -> None:
        if self.profile is None:
            raise StaffMemberNotFound(self.id)
        if not self.active:
            raise StaffMemberHasLeft(self.id)

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case StaffProfileEvent():
                self.profile = StaffProfile(
                    name=event.name,
                    sites=tuple(event.sites),
                    roles=tuple(event.roles),
                    started_on=event.started_on,
                    email=event.email,
                    team=event.team,
                    newly_qualified=event.newly_qualified,
                    capacity_points=event.capacity_points,
                    timezone=event.timezone,
                )
                self.site = event.sites[0] if event.sites else None
                if isinstance(event, StaffMemberRegistered):
                    self.active = True
            case StaffMemberLeft():
                self.active = False
            case SupervisorAssigned():
                self.supervisor_id = event.supervisor_id
            case SupervisionDelegated():
                self.delegations[event.delegation_id] = Delegation(
                    event.delegation_id, event.delegate_id, event.starts_at, event.ends_at
                )
            case SupervisionDelegationEnded():
                found = self.delegations.get(event.delegation_id)
                if found is not None:
                    self.delegations[event.delegation_id] = Delegation(
                        found.delegation_id,
                        found.delegate_id,
                        found.starts_at,
                        found.ends_at,
                        event.ended_at,
                    )


def _fields(profile: StaffProfile) -> dict[str, object]:
    return {
        "name": profile.name,
        "email": profile.email,
        "sites": profile.sites,
        "team": profile.team,
        "roles": profile.roles,
        "newly_qualified": profile.newly_qualified,
        "started_on": profile.started_on,
        "capacity_points": profile.capacity_points,
        "timezone": profile.timezone,
    }
