"""The supervision service's command handlers."""

from __future__ import annotations

from dataclasses import dataclass

from casework.clock import Clock
from casework.directory import KnownSites
from casework.eventstore import (
    RACE_RETRIES,
    CommitContext,
    ConcurrencyConflict,
    Repository,
    after_lost_race,
)

from casework_supervision.domain.commands import RegisterSite
from casework_supervision.domain.site import Site, SiteAlreadyRegistered


@dataclass
class Supervision:
    """The supervision application: every command and query it handles."""

    sites: Repository[Site]
    directory: KnownSites
    clock: Clock

    async def register_site(self, cmd: RegisterSite, ctx: CommitContext) -> Site:
        """A lost write race is decided again on a fresh load (`RACE_RETRIES`,
        `after_lost_race`): a site registered meanwhile is refused by the rule
        (`SiteAlreadyRegistered`); a race lost on a slot a void fenced is simply retried."""
        for attempt in range(RACE_RETRIES):
            site = await self.sites.find(cmd.site) or self.sites.new(cmd.site)
            site.register(cmd, self.clock.now())
            try:
                await self.sites.save(site, ctx)
            except ConcurrencyConflict:
                await after_lost_race(attempt)
                continue
            return site
        raise SiteAlreadyRegistered(cmd.site)
