"""The organisation directory's command handlers: authorise, load, call one domain method,
save.

Who may change the directory: a regional admin anywhere; a site manager for the sites they
hold (every site the change touches: a profile's sites before and after, a rota's site), and
they do not grant `regional_admin` or `site_manager`; a supervisor may delegate their own
supervision and end their own delegation. Reads (lists, one profile, the rota): a regional
admin anywhere, anyone else for the sites they hold, and everyone their own profile.

Facts about other aggregates are read from the event store (not from a projection), so a
rule sees what is stored: a supervisor's roles when assigned, the shifts a leaver is rostered
for. Two concurrent commands on different aggregates can still each pass a rule the other
breaks (a shift scheduled for someone who is leaving at that instant): there is no
transaction (DESIGN §7); the window is one request long, and the rota route shows it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from casework.access import AccessDenied
from casework.aggregate import Aggregate
from casework.auth import Principal
from casework.clock import Clock
from casework.directory import KnownRota, KnownStaff, KnownTeams, StaffFacts
from casework.eventstore import (
    CommitContext,
    ConcurrencyConflict,
    Repository,
    retrying_lost_races,
)

from casework_supervision.domain.caseload_policy import (
    AGENCY,
    CaseloadPolicyRecord,
    SetCaseloadPolicy,
)
from casework_supervision.domain.commands import (
    AssignSupervisor,
    CancelOnCallShift,
    ChangeStaffProfile,
    DelegateSupervision,
    EndDelegation,
    RecordStaffMemberLeft,
    RegisterStaffMember,
    RegisterTeam,
    ScheduleOnCallShift,
    StaffProfile,
)
from casework_supervision.domain.errors import (
    InvalidDirectoryEntry,
    SiteNotFound,
    StaffMemberNotFound,
    SupervisionError,
)
from casework_supervision.domain.rota import Rota
from casework_supervision.domain.site import Site
from casework_supervision.domain.staff import StaffMember
from casework_supervision.domain.team import Team, team_id

A = TypeVar("A", bound=Aggregate)

ADMIN = "regional_admin"
MANAGER = "site_manager"
GRANTED_BY_ADMIN_ONLY = frozenset({ADMIN, MANAGER})


class DirectoryRaced(SupervisionError):
    """Another change to the same entry was saved at the same moment: try again."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} changed meanwhile: read it again and retry")


@dataclass
class Directory:
    """Sites' teams, staff, supervision and the on-call rota; and the local copies of them
    that the lists read (the supervision service consumes its own topic like any other)."""

    sites: Repository[Site]
    teams: Repository[Team]
    staff: Repository[StaffMember]
    rotas: Repository[Rota]
    known_staff: KnownStaff
    known_teams: KnownTeams
    known_rota: KnownRota
    clock: Clock
    caseload_policies: Repository[CaseloadPolicyRecord] | None = None

    # -- caseload weighting -------------------------------------------------------------------

    async def set_caseload_policy(
        self, cmd: SetCaseloadPolicy, principal: Principal, ctx: CommitContext
    ) -> CaseloadPolicyRecord:
        if not principal.has_role(ADMIN):
            raise AccessDenied("the agency's caseload policy is set by a regional admin")
        policies = self.caseload_policies
        assert policies is not None

        async def decide() -> CaseloadPolicyRecord:
            record = await policies.find(AGENCY) or policies.new(AGENCY)
            record.set(cmd, self.clock.now())
            return record

        return await self._decided(policies, decide, ctx, DirectoryRaced("the caseload policy"))

    async def caseload_policy(self) -> CaseloadPolicyRecord | None:
        assert self.caseload_policies is not None
        return await self.caseload_policies.find(AGENCY)

    # -- teams --------------------------------------------------------------------------------

    async def register_team(
        self, cmd: RegisterTeam, principal: Principal, ctx: CommitContext
    ) -> Team:
        _require_manager_of(principal, {cmd.site})
        await self._require_site(cmd.site)
        tid = team_id(cmd.site, cmd.team)

        async def decide() -> Team:
            team = await self.teams.find(tid) or self.teams.new(tid)
            team.register(cmd, self.clock.now())  # registered meanwhile: the rule says so
            return team

        return await self._decided(
            self.teams, decide, ctx, DirectoryRaced(f"team {cmd.team} of {cmd.site}")
        )

    # -- staff --------------------------------------------------------------------------------

    async def register_staff_member(
        self, cmd: RegisterStaffMember, principal: Principal, ctx: CommitContext
    ) -> StaffMember:
        _require_manager_of(principal, set(cmd.profile.sites))
        _require_may_grant(principal, cmd.profile.roles)
        await self._check_places(cmd.profile)

        async def decide() -> StaffMember:
            member = await self.staff.find(cmd.staff_id) or self.staff.new(cmd.staff_id)
            member.register(cmd, self.clock.now())  # registered meanwhile: the rule says so
            return member

        return await self._decided(
            self.staff, decide, ctx, DirectoryRaced(f"staff member {cmd.staff_id}")
        )

    async def change_staff_profile(
        self, cmd: ChangeStaffProfile, principal: Principal, ctx: CommitContext
    ) -> StaffMember:
        async def decide() -> StaffMember:
            member = await self._member(cmd.staff_id)
            assert member.profile is not None
            _require_manager_of(principal, set(member.profile.sites) | set(cmd.profile.sites))
            granted = set(cmd.profile.roles) - set(member.profile.roles)
            _require_may_grant(principal, tuple(granted))
            await self._check_places(cmd.profile)
            member.change_profile(cmd, self.clock.now())
            return member

        return await self._decided(
            self.staff, decide, ctx, DirectoryRaced(f"staff member {cmd.staff_id}")
        )

    async def record_staff_member_left(
        self, cmd: RecordStaffMemberLeft, principal: Principal, ctx: CommitContext
    ) -> StaffMember:
        async def decide() -> StaffMember:
            member = await self._member(cmd.staff_id)
            assert member.profile is not None
            _require_manager_of(principal, set(member.profile.sites))
            now = self.clock.now()
            rostered: list[str] = []
            for site in member.profile.sites:
                rota = await self.rotas.find(site)
                if rota is not None:
                    rostered += [f"{site}/{s}" for s in rota.rostering(cmd.staff_id, now)]
            member.leave(now, rostered)
            return member

        return await self._decided(
            self.staff, decide, ctx, DirectoryRaced(f"staff member {cmd.staff_id}")
        )

    async def assign_supervisor(
        self, cmd: AssignSupervisor, principal: Principal, ctx: CommitContext
    ) -> StaffMember:
        async def decide() -> StaffMember:
            member = await self._member(cmd.staff_id)
            assert member.profile is not None
            _require_manager_of(principal, set(member.profile.sites))
            supervisor = await self._member(cmd.supervisor_id, field="body.supervisor_id")
            member.assign_supervisor(cmd, supervisor, self.clock.now())
            return member

        return await self._decided(
            self.staff, decide, ctx, DirectoryRaced(f"staff member {cmd.staff_id}")
        )

    async def delegate_supervision(
        self, cmd: DelegateSupervision, principal: Principal, ctx: CommitContext
    ) -> StaffMember:
        async def decide() -> StaffMember:
            supervisor = await self._member(cmd.supervisor_id)
            assert supervisor.profile is not None
            if principal.sub != cmd.supervisor_id:
                _require_manager_of(principal, set(supervisor.profile.sites))
            delegate = await self._member(cmd.delegate_id, field="body.delegate_id")
            supervisor.delegate(cmd, delegate, self.clock.now())
            return supervisor

        return await self._decided(
            self.staff, decide, ctx, DirectoryRaced(f"staff member {cmd.supervisor_id}")
        )

    async def end_delegation(
        self, cmd: EndDelegation, principal: Principal, ctx: CommitContext
    ) -> StaffMember:
        async def decide() -> StaffMember:
            supervisor = await self._member(cmd.supervisor_id)
            assert supervisor.profile is not None
            if principal.sub != cmd.supervisor_id:
                _require_manager_of(principal, set(supervisor.profile.sites))
            supervisor.end_delegation(cmd, self.clock.now())
            return supervisor

        return await self._decided(
            self.staff, decide, ctx, DirectoryRaced(f"staff member {cmd.supervisor_id}")
        )

    # -- on-call rota -------------------------------------------------------------------------

    async def schedule_shift(
        self, cmd: ScheduleOnCallShift, principal: Principal, ctx: CommitContext
    ) -> Rota:
        _require_manager_of(principal, {cmd.site})
        await self._require_site(cmd.site)

        async def decide() -> Rota:
            worker = await self._member(cmd.staff_id, field="body.staff_id")
            backup = (
                await self._member(cmd.backup_id, field="body.backup_id") if cmd.backup_id else None
            )
            rota = await self.rotas.find(cmd.site) or self.rotas.new(cmd.site)
            rota.schedule(cmd, worker, backup, self.clock.now())
            return rota

        return await self._decided(
            self.rotas, decide, ctx, DirectoryRaced(f"the rota of {cmd.site}")
        )

    async def cancel_shift(
        self, cmd: CancelOnCallShift, principal: Principal, ctx: CommitContext
    ) -> Rota:
        _require_manager_of(principal, {cmd.site})
        await self._require_site(cmd.site)

        async def decide() -> Rota:
            rota = await self.rotas.find(cmd.site) or self.rotas.new(cmd.site)
            rota.cancel(cmd, self.clock.now())
            return rota

        return await self._decided(
            self.rotas, decide, ctx, DirectoryRaced(f"the rota of {cmd.site}")
        )

    # -- reads --------------------------------------------------------------------------------

    async def staff_member(self, staff_id: str, principal: Principal) -> StaffMember:
        member = await self._member(staff_id)
        assert member.profile is not None
        if principal.sub != staff_id:
            _require_reader_of(principal, set(member.profile.sites))
        return member

    async def staff_at(self, site: str, team: str | None, principal: Principal) -> list[StaffFacts]:
        _require_reader_of(principal, {site})
        return await self.known_staff.at_site(site, team)

    async def teams_of(self, site: str, principal: Principal) -> list[dict[str, str]]:
        _require_reader_of(principal, {site})
        return [
            {"site": site, "team": str(d["team"]), "name": str(d["name"])}
            for d in await self.known_teams.of_site(site)
        ]

    async def rota(self, site: str, principal: Principal) -> Rota:
        _require_reader_of(principal, {site})
        await self._require_site(site)
        return await self.rotas.find(site) or self.rotas.new(site)

    async def is_registered(self, staff_id: str) -> bool:
        member = await self.staff.find(staff_id)
        return member is not None and member.registered

    async def now(self) -> datetime:
        return self.clock.now()

    # -- helpers ------------------------------------------------------------------------------

    async def _member(self, staff_id: str, *, field: str | None = None) -> StaffMember:
        member = await self.staff.find(staff_id)
        if member is None or not member.registered:
            if field is not None:
                raise InvalidDirectoryEntry(f"no staff member {staff_id!r} in the directory", field)
            raise StaffMemberNotFound(staff_id)
        return member

    async def _require_site(self, site: str) -> None:
        found = await self.sites.find(site)
        if found is None or not found.registered:
            raise SiteNotFound(site)

    async def _check_places(self, profile: StaffProfile) -> None:
        for site in profile.sites:
            found = await self.sites.find(site)
            if found is None or not found.registered:
                raise InvalidDirectoryEntry(f"site {site!r} is not in the directory", "body.sites")
        if profile.team is not None:
            team = await self.teams.find(team_id(profile.sites[0], profile.team))
            if team is None:
                raise InvalidDirectoryEntry(
                    f"team {profile.team!r} is not registered at site {profile.sites[0]!r} "
                    "(a member's team is within their first site)",
                    "body.team",
                )

    @staticmethod
    async def _decided(
        repository: Repository[A],
        decide: Callable[[], Awaitable[A]],
        ctx: CommitContext,
        exhausted: DirectoryRaced,
    ) -> A:
        """Load, authorise and decide (`decide`), save; a write race lost on the entry's
        stream is decided again on a fresh load (`retrying_lost_races`, as every
        load-decide-save of the platform), so a concurrent change is built upon, or refused
        by the rule it breaks (registered meanwhile), never lost. `exhausted` is raised only
        if every try lost, and says so: never "already registered", since only `decide` on
        a load can know that (a first slot held by a write that failed between its two
        inserts conflicts until the relay fences it, with nothing registered)."""

        async def attempt() -> A:
            aggregate = await decide()
            if aggregate.pending_events:
                await repository.save(aggregate, ctx)
            return aggregate

        try:
            return await retrying_lost_races(attempt)
        except ConcurrencyConflict:
            raise exhausted from None


def _require_manager_of(principal: Principal, sites: set[str]) -> None:
    """A regional admin changes anything; a site manager what touches only their sites."""
    if principal.has_role(ADMIN):
        return
    if principal.has_role(MANAGER) and sites <= principal.sites:
        return
    raise AccessDenied(
        "changing the directory here needs regional_admin, or site_manager of its sites"
    )


def _require_may_grant(principal: Principal, roles: tuple[str, ...]) -> None:
    if not principal.has_role(ADMIN) and GRANTED_BY_ADMIN_ONLY & set(roles):
        raise AccessDenied("only a regional admin grants regional_admin or site_manager")


def _require_reader_of(principal: Principal, sites: set[str]) -> None:
    if principal.has_role(ADMIN) or sites & principal.sites:
        return
    raise AccessDenied("you do not work at this site")
