"""The approvals application: request, decide, withdraw, raise overdue; the queue.

Handlers load the approval, call one method of the aggregate, save. Who may decide comes
from the directory at the moment of the decision (`StaffDirectory.supervisors_of`, the port
`casework.directory.KnownStaff` fills) and from the case facts; the aggregate applies the
rule (`Authority`). Reads authorise here: an approval out of the caller's reach is not found.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from casework.access import AccessDenied, NotVisible
from casework.auth import Principal
from casework.clock import Clock
from casework.eventstore import (
    CommitContext,
    Document,
    Repository,
    retrying_lost_races,
    retrying_lost_races_by_try,
)

from casework_supervision.adapters.approval_queue import ApprovalQueue
from casework_supervision.domain.approval import Approval
from casework_supervision.domain.approval_commands import (
    GrantApproval,
    MarkApprovalOverdue,
    RequestApproval,
    ReturnApproval,
    WithdrawApproval,
)
from casework_supervision.domain.approval_rules import (
    ApprovalStatus,
    Authority,
    is_site_supervisor,
)

log = logging.getLogger(__name__)

DECIDERS = frozenset({"supervisor"})
QUEUE_READERS = frozenset({"supervisor", "site_manager", "regional_admin"})
READERS = frozenset({"caseworker", "supervisor", "site_manager", "regional_admin"})


class StaffFactsLike(Protocol):
    @property
    def staff_id(self) -> str: ...

    @property
    def team(self) -> str | None: ...


class StaffDirectory(Protocol):
    """The part of the directory's local copy approvals use (`casework.directory.KnownStaff`)."""

    async def supervisors_of(self, staff_id: str, at: datetime) -> tuple[str, ...]: ...

    async def supervisees_of(self, supervisor_id: str, at: datetime) -> tuple[str, ...]: ...

    async def with_role(self, site: str, role: str) -> Sequence[StaffFactsLike]: ...


class SiteList(Protocol):
    async def all(self) -> list[Document]: ...


@dataclass
class Approvals:
    approvals: Repository[Approval]
    staff: StaffDirectory
    queue: ApprovalQueue
    sites: SiteList
    clock: Clock

    # -- commands from policies and deadlines -------------------------------------------------

    async def request(self, cmd: RequestApproval, ctx: CommitContext) -> bool:
        """Open an approval; False when it exists already (a redelivered request).

        The first try does not read the store for an approval this process has not seen: an
        approval id is derived from what is approved, so a request is nearly always for a new
        one, and the stream's commit key decides. Should the approval exist after all (a
        redelivery, another replica), the save loses the race on version 1 and the next try
        loads it, and the aggregate finds it requested: nothing is stored twice. A stream this
        process has cached is taken from the cache without the probe for newer commits: a
        stale cache can only make the save conflict, never store a second request.
        """

        async def attempt(tried: int) -> bool:
            if tried == 0 and not self.approvals.knows(cmd.approval_id):
                approval = self.approvals.new(cmd.approval_id)
            else:
                approval = await self.approvals.find(
                    cmd.approval_id, trust_cache=tried == 0
                ) or self.approvals.new(cmd.approval_id)
            if not approval.request(cmd):
                return False
            # a lost race: it exists (a redelivery, another replica): the next try finds it
            await self.approvals.save(approval, ctx)
            return True

        return await retrying_lost_races_by_try(attempt)

    async def withdraw(self, approval_id: str, reason: str, ctx: CommitContext) -> bool:
        """Withdraw a waiting approval; False when there is none waiting under this id.

        A stream this process holds in its cache is decided on the cache first, without the
        probe for newer commits (a case's close withdraws each of its approvals, most long
        decided). Safe because a decided or withdrawn approval never changes again, so a
        "nothing to withdraw" found on a cached terminal state is final, and a withdrawal
        decided on a stale cached "requested" loses the race on the commit key and is decided
        again on a fresh load. An approval the cache does not hold is read from the store."""

        async def attempt(tried: int) -> bool:
            cached = tried == 0 and self.approvals.knows(approval_id)
            approval = await self.approvals.find(approval_id, trust_cache=cached)
            if approval is None:
                return False
            if not approval.withdraw(WithdrawApproval(approval_id, reason), self.clock.now()):
                return False
            # a lost race: decided or withdrawn meanwhile, the aggregate decides again
            await self.approvals.save(approval, ctx)
            return True

        return await retrying_lost_races_by_try(attempt)

    async def mark_overdue(self, approval_id: str, due_at: datetime) -> bool:
        """The deadline fired: the aggregate raises `ApprovalOverdue` once, if it still waits.
        Two replicas firing it race on the stream's commit key: the loser reloads and finds
        it raised."""

        async def attempt() -> bool:
            approval = await self.approvals.find(approval_id)
            if approval is None or approval.status is not ApprovalStatus.REQUESTED:
                return False
            approvers = await self.approvers_of(approval)
            cmd = MarkApprovalOverdue(approval_id, due_at, approvers)
            if not approval.mark_overdue(cmd, self.clock.now()):
                return False
            # a lost race: another replica raised it or it was decided; the next try sees it
            await self.approvals.save(approval, CommitContext())
            return True

        return await retrying_lost_races(attempt)

    # -- decisions over HTTP ------------------------------------------------------------------

    async def grant(
        self, approval_id: str, principal: Principal, comment: str | None, ctx: CommitContext
    ) -> Approval:
        _require(principal, DECIDERS, "deciding an approval")
        approval = await self._visible(approval_id, principal)
        authority = await self._authority(approval, principal)
        approval.grant(GrantApproval(approval_id, principal.sub, authority, comment), self._now())
        await self.approvals.save(approval, ctx)
        return approval

    async def return_(
        self, approval_id: str, principal: Principal, reason: str, ctx: CommitContext
    ) -> Approval:
        _require(principal, DECIDERS, "deciding an approval")
        approval = await self._visible(approval_id, principal)
        authority = await self._authority(approval, principal)
        approval.return_(ReturnApproval(approval_id, principal.sub, authority, reason), self._now())
        await self.approvals.save(approval, ctx)
        return approval

    # -- reads --------------------------------------------------------------------------------

    async def get(self, approval_id: str, principal: Principal) -> Approval:
        """One approval, as its stream says now (a decision shows at once)."""
        _require(principal, READERS, "reading approvals")
        return await self._visible(approval_id, principal)

    async def queue_of(self, principal: Principal, site: str | None = None) -> list[Document]:
        """The approvals waiting for the caller, oldest first: a supervisor's own (their
        supervisees' and those they stand in for by delegation, and — for workers without a
        supervisor in the directory — their site and team's); a site manager's sites'; a
        regional admin's every site (or `site`)."""
        _require(principal, QUEUE_READERS, "reading the approval queue")
        now = self._now()
        found: dict[str, Document] = {}
        if principal.has_role("regional_admin"):
            sites = [site] if site else [str(d["_id"]) for d in await self.sites.all()]
            for s in sites:
                found.update({d["_id"]: d for d in await self.queue.waiting_at(s)})
        if principal.has_role("site_manager"):
            for s in sorted(principal.sites):
                if site is None or s == site:
                    found.update({d["_id"]: d for d in await self.queue.waiting_at(s)})
        if principal.has_role("supervisor"):
            workers = await self.staff.supervisees_of(principal.sub, now)
            mine = await self.queue.waiting_for_workers(list(workers))
            for s in sorted(principal.sites):
                if site is None or s == site:
                    mine.extend(await self.queue.waiting_at(s))
            supervisors: dict[str, tuple[str, ...]] = {}  # per worker, once per request
            for doc in mine:
                if doc["_id"] in found:
                    continue
                if await self._may_decide_doc(doc, principal, now, supervisors):
                    found[doc["_id"]] = doc
        return sorted(found.values(), key=lambda d: (d["requested_at"], d["_id"]))

    async def approvers_of(self, approval: Approval) -> tuple[str, ...]:
        """Who may decide it now (for `ApprovalOverdue`): the worker's supervisor and
        delegates, else the supervisors of the case's site and team; never the requester."""
        request = approval.requested
        assert request is not None
        named: tuple[str, ...] = ()
        if request.caseworker_id:
            named = await self.staff.supervisors_of(request.caseworker_id, self._now())
        ids = [s for s in named if s != request.requested_by]
        if not ids:
            ids = [
                f.staff_id
                for f in await self.staff.with_role(request.site, "supervisor")
                if request.team is None or f.team == request.team
            ]
        return tuple(s for s in dict.fromkeys(ids) if s != request.requested_by)

    # -- helpers ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock.now()

    async def _authority(self, approval: Approval, principal: Principal) -> Authority:
        request = approval.requested
        if request is None:
            raise NotVisible(f"no approval {approval.id}")
        return await self._authority_for(
            request.caseworker_id, request.site, request.team, principal, self._now()
        )

    async def _authority_for(
        self,
        caseworker_id: str | None,
        site: str,
        team: str | None,
        principal: Principal,
        at: datetime,
    ) -> Authority:
        supervisors: tuple[str, ...] = ()
        if caseworker_id:
            supervisors = await self.staff.supervisors_of(caseworker_id, at)
        return Authority(
            supervisors=supervisors,
            site_supervisor=is_site_supervisor(
                principal.roles, principal.sites, principal.team, site, team
            ),
        )

    async def _may_decide_doc(
        self,
        doc: Document,
        principal: Principal,
        at: datetime,
        supervisors: dict[str, tuple[str, ...]],
    ) -> bool:
        """The decision rule, on a queue document (the directory asked once per worker)."""
        if doc.get("requested_by") == principal.sub:
            return False
        worker = doc.get("caseworker_id")
        named: tuple[str, ...] = ()
        if worker:
            if worker not in supervisors:
                supervisors[worker] = await self.staff.supervisors_of(worker, at)
            named = supervisors[worker]
        site_supervisor = is_site_supervisor(
            principal.roles, principal.sites, principal.team, str(doc["site"]), doc.get("team")
        )
        authority = Authority(supervisors=named, site_supervisor=site_supervisor)
        allowed, _ = authority.decides(principal.sub, str(doc.get("requested_by")))
        return allowed

    async def _visible(self, approval_id: str, principal: Principal) -> Approval:
        """The approval if the caller reaches it: the requester and the case's caseworker;
        staff of its site (supervisors, site managers); who may decide it (a delegate at
        another site); regional admins. Anyone else: not found (its existence names a case).
        """
        approval = await self.approvals.find(approval_id)
        request = approval.requested if approval else None
        if approval is None or request is None:
            raise NotVisible(f"no approval {approval_id}")
        if principal.has_role("regional_admin"):
            return approval
        if principal.sub in (request.requested_by, request.caseworker_id):
            return approval
        if principal.has_role("supervisor", "site_manager") and request.site in principal.sites:
            return approval
        if principal.has_role("supervisor"):
            authority = await self._authority(approval, principal)
            if principal.sub in authority.supervisors:
                return approval
        raise NotVisible(f"no approval {approval_id}")


def _require(principal: Principal, roles: frozenset[str], action: str) -> None:
    # The HTTP edge checks the same roles first; this keeps the rule whoever calls.
    if not principal.has_role(*roles):
        raise AccessDenied(f"{action} needs one of the roles: {', '.join(sorted(roles))}")
