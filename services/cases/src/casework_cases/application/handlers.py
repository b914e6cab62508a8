"""The cases service's command handlers: authorise, load, call one domain method, save."""

from __future__ import annotations

from dataclasses import dataclass

from casework.access import NotVisible, can_reach_site
from casework.auth import Principal
from casework.clock import Clock
from casework.eventstore import CommitContext, Repository

from casework_cases.domain.case import Case
from casework_cases.domain.commands import OpenCase


@dataclass
class Cases:
    """The cases application: every command and query it handles."""

    cases: Repository[Case]
    clock: Clock

    async def case(self, case_id: str, principal: Principal) -> Case:
        """A case the principal may see; one out of reach is not found."""
        case = await self.cases.find(case_id)
        if case is None or not can_reach_site(principal, case.site or ""):
            raise NotVisible(f"no case {case_id}")
        return case

    async def open_case(self, cmd: OpenCase, ctx: CommitContext) -> Case:
        case = self.cases.new(cmd.case_id)
        case.open(cmd, self.clock.now())
        await self.cases.save(case, ctx)
        return case
