"""Intake's command handlers: authorise, load, call one domain method, save."""

from __future__ import annotations

from dataclasses import dataclass

from casework.access import NotVisible, can_reach_site, require_site
from casework.auth import Principal
from casework.clock import Clock
from casework.directory import KnownSites
from casework.eventstore import CommitContext, Repository

from casework_intake.domain.commands import AcceptReferral, ReceiveReferral
from casework_intake.domain.referral import Referral, UnknownSite


@dataclass
class Intake:
    """The intake application: every command and query it handles."""

    referrals: Repository[Referral]
    sites: KnownSites
    clock: Clock

    async def referral(self, referral_id: str, principal: Principal) -> Referral:
        """A referral the principal may see; one at another site is not found."""
        referral = await self.referrals.find(referral_id)
        if referral is None or not can_reach_site(principal, referral.site or ""):
            raise NotVisible(f"no referral {referral_id}")
        return referral

    async def receive_referral(
        self, cmd: ReceiveReferral, principal: Principal, ctx: CommitContext
    ) -> Referral:
        if not await self.sites.exists(cmd.site):
            raise UnknownSite(cmd.site)
        require_site(principal, cmd.site)
        referral = self.referrals.new(cmd.referral_id)
        referral.receive(cmd, self.clock.now())
        await self.referrals.save(referral, ctx)
        return referral

    async def accept_referral(
        self, cmd: AcceptReferral, principal: Principal, ctx: CommitContext
    ) -> Referral:
        referral = await self.referral(cmd.referral_id, principal)
        referral.accept(cmd, self.clock.now())
        await self.referrals.save(referral, ctx)
        return referral
