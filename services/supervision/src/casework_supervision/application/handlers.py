"""The supervision service's command handlers."""

from __future__ import annotations

from dataclasses import dataclass

from casework.clock import Clock
from casework.directory import KnownSites
from casework.eventstore import (
    CommitContext,
    Repository,
    retrying_lost_races,
)

from casework_supervision.domain.commands import RegisterSite
from casework_supervision.domain.site import Site


@dataclass
class Supervision:
    """The supervision application: every command and query it handles."""

    sites: Repository[Site]
    directory: KnownSites
    clock: Clock

    async def register_site(self, cmd: RegisterSite, ctx: CommitContext) -> Site:
        """A lost write race is decided again on a fresh load (`retrying_lost_races`): a site
        registered meanwhile is refused by the rule (`SiteAlreadyRegistered`); a race lost on
        a slot a void fenced is simply retried. If every try lost, the conflict goes out as
        it is (409: retry), never as "already registered": the first slot may be held by a
        write that failed between its two inserts until the relay fences it."""

        async def attempt() -> Site:
            site = await self.sites.find(cmd.site) or self.sites.new(cmd.site)
            site.register(cmd, self.clock.now())
            await self.sites.save(site, ctx)
            return site

        return await retrying_lost_races(attempt)
