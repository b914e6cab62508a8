"""The supervision service's command handlers."""

from __future__ import annotations

from dataclasses import dataclass

from casework.clock import Clock
from casework.directory import KnownSites
from casework.eventstore import CommitContext, ConcurrencyConflict, Repository

from casework_supervision.domain.commands import RegisterSite
from casework_supervision.domain.site import Site, SiteAlreadyRegistered


@dataclass
class Supervision:
    """The supervision application: every command and query it handles."""

    sites: Repository[Site]
    directory: KnownSites
    clock: Clock

    async def register_site(self, cmd: RegisterSite, ctx: CommitContext) -> Site:
        site = await self.sites.find(cmd.site) or self.sites.new(cmd.site)
        site.register(cmd, self.clock.now())
        try:
            await self.sites.save(site, ctx)
        except ConcurrencyConflict:
            raise SiteAlreadyRegistered(cmd.site) from None
        return site
