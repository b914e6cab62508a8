"""The cases service's command handlers: authorise, load, call one domain method, save."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from casework.access import AccessDenied, NotVisible, require_site
from casework.aggregate import VersionMismatch
from casework.auth import Principal
from casework.clock import Clock
from casework.directory import DEFAULT_CASELOAD_POLICY, CaseloadPolicy
from casework.eventstore import (
    CommitContext,
    ConcurrencyConflict,
    Repository,
    retrying_lost_races,
)

from casework_cases.domain.access import CaseScope, can_reach_case
from casework_cases.domain.assignment import Assignee, assignee_team
from casework_cases.domain.case import Case
from casework_cases.domain.caseload import HeldCase, check_capacity, weighted_load
from casework_cases.domain.commands import (
    AcceptTransfer,
    AssignCaseworker,
    CaseCommand,
    MoveCaseload,
    OpenCase,
    RejectTransfer,
    RequestTransfer,
    UseBreakGlass,
)
from casework_cases.domain.errors import (
    CaseError,
    CaseNotOpened,
    CaseworkerChanged,
    UnknownSite,
)
from casework_cases.domain.permissions import MAY_ISSUE, READERS


class SiteDirectory(Protocol):
    """The sites of the organisation, as far as this service has heard."""

    async def exists(self, site: str) -> bool: ...


class StaffDirectory(Protocol):
    """The staff of the organisation directory (`casework.directory.KnownStaff`)."""

    async def get(self, staff_id: str) -> Assignee | None: ...


class CaseloadIndex(Protocol):
    """Finds the open cases a worker holds."""

    async def open_cases_of(self, caseworker_id: str) -> list[str]: ...

    async def held_by(self, caseworker_id: str) -> list[HeldCase]: ...


class CaseloadPolicySource(Protocol):
    """The agency's caseload weighting (`casework.directory.KnownCaseloadPolicy`)."""

    async def current(self) -> CaseloadPolicy: ...


@dataclass(frozen=True)
class WeightedCaseload:
    worker_id: str
    open_cases: int
    load: int
    capacity: int
    percent: float
    band: str


@dataclass(frozen=True)
class CaseMoved:
    case_id: str
    version: int


@dataclass(frozen=True)
class CaseNotMoved:
    case_id: str
    code: str
    detail: str


@dataclass
class CaseloadMoveReport:
    """What a caseload move did, case by case."""

    moved: list[CaseMoved] = field(default_factory=list)
    failed: list[CaseNotMoved] = field(default_factory=list)
    out_of_reach: int = 0
    """Open cases of the worker the mover may not reach: not moved, and not named."""


@dataclass
class Cases:
    """The cases application: every command and query it handles."""

    cases: Repository[Case]
    sites: SiteDirectory
    caseloads: CaseloadIndex
    staff: StaffDirectory
    clock: Clock
    caseload_policy: CaseloadPolicySource | None = None
    """None: the default weighting (`casework.directory.DEFAULT_CASELOAD_POLICY`)."""

    async def case(self, case_id: str, principal: Principal) -> Case:
        """A case the principal may see; one out of reach is not found."""
        _require_roles(principal, READERS, "read cases")
        case = await self.cases.find(case_id)
        if case is None or not can_reach_case(principal, case.scope):
            raise NotVisible(f"no case {case_id}")
        return case

    async def case_in_emergency(
        self, case_id: str, principal: Principal, reason: str, ctx: CommitContext
    ) -> tuple[Case, str | None]:
        """A case a crisis worker opens by breaking the glass, and the review it raised.

        Within the worker's reach it is an ordinary read (no review: nothing was broken).
        Outside it, `BreakGlassUsed` is committed before the case is returned, so the case
        is never shown without its review: the second value names that event
        (`case-<id>@<version>`). A concurrent change to the case is retried, not refused.
        """
        _require_roles(principal, MAY_ISSUE[UseBreakGlass], "break-glass access")

        async def attempt() -> tuple[Case, str | None]:
            case = await self.cases.find(case_id)
            if case is None:
                raise NotVisible(f"no case {case_id}")
            if can_reach_case(principal, case.scope):
                return case, None
            cmd = UseBreakGlass(
                case_id=case_id,
                reason=reason,
                used_by=principal.sub,
                used_by_sites=tuple(sorted(principal.sites)),
            )
            case.handle(cmd, self.clock.now())
            await self.cases.save(case, ctx)
            return case, f"{case.stream_id}@{case.version}"

        return await retrying_lost_races(attempt)

    async def current_scopes(self, case_ids: Sequence[str]) -> dict[str, CaseScope]:
        """Who holds each case and where, as its stream says now (not as a read model last
        heard): reads authorise against it, so a reassignment or transfer counts at once."""
        found = await asyncio.gather(*(self.cases.find(case_id) for case_id in case_ids))
        return {case.id: case.scope for case in found if case is not None}

    async def open_case(self, cmd: OpenCase, ctx: CommitContext) -> Case:
        """Open the case of an accepted referral (raises `CaseAlreadyOpened` the second time).

        A lost write race is decided again on a fresh load: a case opened meanwhile (a
        redelivery, another replica) is `CaseAlreadyOpened`. A conflict is never taken to
        mean the case exists: the first slot may be held by a write that failed between its
        two inserts, and then the conflict lasts until the relay fences that slot, and the
        caller (the policy's runner: contention) tries again and opens it after the void."""

        async def attempt() -> Case:
            case = await self.cases.find(cmd.case_id) or self.cases.new(cmd.case_id)
            case.handle(cmd, self.clock.now())
            await self.cases.save(case, ctx)
            return case

        return await retrying_lost_races(attempt)

    async def carry_out(self, cmd: CaseCommand, ctx: CommitContext) -> Case:
        """Carry out a decision another service took and authorised (supervision's approval):
        no principal, the case's own rules decide (four eyes included, as a defence). A
        concurrent change to the case is retried against the new state."""

        async def attempt() -> Case:
            case = await self.cases.find(cmd.case_id)
            if case is None:
                raise CaseNotOpened(cmd.case_id)
            case.handle(cmd, self.clock.now())
            await self.cases.save(case, ctx)
            return case

        return await retrying_lost_races(attempt)

    async def execute(
        self,
        cmd: CaseCommand,
        principal: Principal,
        ctx: CommitContext,
        expected_version: int | None = None,
    ) -> Case:
        """Authorise `cmd` for the principal, decide it on the case, commit its events.

        `expected_version` (from `If-Match`) refuses a change based on a stale read. Without
        it, a change committed meanwhile by someone else (another worker, or a policy carrying
        out a supervisor's decision) is no reason to refuse: the command is authorised and
        decided again against the case as it now is, and refused only if that refuses it.
        """
        _require_roles(principal, MAY_ISSUE[type(cmd)], type(cmd).__name__)
        return await retrying_lost_races(
            lambda: self._execute_once(cmd, principal, ctx, expected_version)
        )

    async def _execute_once(
        self,
        cmd: CaseCommand,
        principal: Principal,
        ctx: CommitContext,
        expected_version: int | None,
    ) -> Case:
        case = await self.cases.find(cmd.case_id)
        if case is None:
            raise NotVisible(f"no case {cmd.case_id}")
        _authorise(cmd, case, principal)
        if expected_version is not None and expected_version != case.version:
            raise VersionMismatch(f"case {case.id}", expected_version, case.version)
        if isinstance(cmd, RequestTransfer) and not await self.sites.exists(cmd.to_site):
            raise UnknownSite(cmd.to_site)
        if isinstance(cmd, AssignCaseworker):
            facts = await self.staff.get(cmd.caseworker_id)
            team = assignee_team(case.id, case.site, cmd.caseworker_id, facts, cmd.team)
            cmd = replace(cmd, team=team)
            if cmd.caseworker_id != case.caseworker_id:
                assert facts is not None
                await self._check_capacity(cmd, case, facts.capacity_points)
        case.handle(cmd, self.clock.now())
        await self.cases.save(case, ctx)
        return case

    async def weighted_caseload(self, worker_id: str, principal: Principal) -> WeightedCaseload:
        """The worker's weighted caseload under the agency's policy (the caseload index and
        this service's copy of the directory and of the policy, as they stand)."""
        own = principal.has_role("caseworker") and principal.sub == worker_id
        if not own and not principal.has_role("supervisor", "site_manager", "regional_admin"):
            raise AccessDenied("a caseworker reads only their own caseload's weight")
        policy = await self._policy()
        held = await self.caseloads.held_by(worker_id)
        facts = await self.staff.get(worker_id)
        capacity = policy.capacity_of(facts.capacity_points if facts else None)
        load = weighted_load(policy, held)
        return WeightedCaseload(
            worker_id,
            len(held),
            load,
            capacity,
            policy.percent(load, capacity),
            policy.band(load, capacity),
        )

    async def _policy(self) -> CaseloadPolicy:
        if self.caseload_policy is None:
            return DEFAULT_CASELOAD_POLICY
        return await self.caseload_policy.current()

    async def _check_capacity(
        self, cmd: AssignCaseworker, case: Case, capacity_points: int | None
    ) -> None:
        policy = await self._policy()
        check_capacity(
            policy,
            case.id,
            cmd.caseworker_id,
            await self.caseloads.held_by(cmd.caseworker_id),
            policy.weight(case.risk_level, case.crisis is not None),
            capacity_points,
            cmd.capacity_override_reason,
        )

    async def move_caseload(
        self, cmd: MoveCaseload, principal: Principal, ctx: CommitContext
    ) -> CaseloadMoveReport:
        """Reassign each open case of a worker, one commit per case; report each outcome."""
        _require_roles(principal, MAY_ISSUE[MoveCaseload], "MoveCaseload")
        report = CaseloadMoveReport()
        for case_id in await self.caseloads.open_cases_of(cmd.from_caseworker_id):
            assign = AssignCaseworker(
                case_id=case_id,
                caseworker_id=cmd.to_caseworker_id,
                team=cmd.to_team,
                reason=cmd.reason,
                assigned_by=cmd.moved_by,
                expected_caseworker_id=cmd.from_caseworker_id,
                capacity_override_reason=cmd.capacity_override_reason,
            )
            try:
                case = await self.execute(assign, principal, ctx)
            except (NotVisible, AccessDenied):
                report.out_of_reach += 1
            except CaseworkerChanged:
                continue  # the index trailed the events: the case is no longer this worker's
            except (CaseError, ConcurrencyConflict) as exc:
                report.failed.append(CaseNotMoved(case_id, type(exc).__name__, str(exc)))
            else:
                report.moved.append(CaseMoved(case_id, case.version))
        return report


def _require_roles(principal: Principal, roles: frozenset[str], action: str) -> None:
    # The HTTP edge checks the same roles first; this keeps the rule whoever calls.
    if not principal.has_role(*roles):
        raise AccessDenied(f"{action} needs one of the roles: {', '.join(sorted(roles))}")


def _authorise(cmd: CaseCommand, case: Case, principal: Principal) -> None:
    """Reach: may this principal act on this case? (404 when it may not even see it)."""
    match cmd:
        case AcceptTransfer() | RejectTransfer():
            # The receiving site answers a transfer before the case is within its reach.
            pending = case.pending_transfer
            if pending is not None and pending.to_site in principal.sites:
                return
            if not can_reach_case(principal, case.scope):
                raise NotVisible(f"no case {case.id}")
            if pending is not None:
                raise AccessDenied(
                    f"only staff of the receiving site {pending.to_site} accept or reject "
                    "this transfer"
                )
        case RequestTransfer() | AssignCaseworker():
            # An assigner assigns, and a transfer starts, only at a site the assigner holds:
            # reaching a case through a team is not enough.
            if not can_reach_case(principal, case.scope):
                raise NotVisible(f"no case {case.id}")
            require_site(principal, case.site or "")
        case _:
            if not can_reach_case(principal, case.scope):
                raise NotVisible(f"no case {case.id}")
