"""Intake's command handlers and queries: authorise, load, call one domain method, save."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from casework.access import NotVisible, can_reach_site, require_site
from casework.auth import Principal
from casework.clock import Clock
from casework.contracts.intake import ClientDetails
from casework.directory import KnownSites
from casework.eventstore import CommitContext, ConcurrencyConflict, Repository
from casework.service import VersionMismatch

from casework_intake.application.ports import ClientLookup, QueueReader, WaitingReferral
from casework_intake.domain.client import Client, MatchedOn, matched_on
from casework_intake.domain.commands import (
    AcceptReferral,
    ConfirmClientMatch,
    DeclineReferral,
    OverrideClientMatch,
    ReceiveReferral,
    RegisterClient,
    ScreenRisk,
)
from casework_intake.domain.referral import Referral, UnknownSite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A registered client who may be the person referred, and why.

    `visible` is False for a client registered at a site the reader does not work at: the
    reader is shown only initials and birth year, and asks that site for access.
    """

    client_id: str
    details: ClientDetails | None
    """None when the registry no longer knows the client (a read model being rebuilt)."""
    matched_on: list[MatchedOn] = field(default_factory=list)
    site: str | None = None
    visible: bool = True


@dataclass(frozen=True)
class QueuedReferral:
    referral: WaitingReferral
    waiting_seconds: int


@dataclass
class Intake:
    """The intake application: every command and query it handles."""

    referrals: Repository[Referral]
    clients: Repository[Client]
    registry: ClientLookup
    queue: QueueReader
    sites: KnownSites
    clock: Clock

    # --- queries ------------------------------------------------------------------------

    async def referral(self, referral_id: str, principal: Principal) -> Referral:
        """A referral the principal may see; one at another site is not found."""
        referral = await self.referrals.find(referral_id)
        if referral is None or not can_reach_site(principal, referral.site or ""):
            raise NotVisible(f"no referral {referral_id}")
        return referral

    async def duplicate_candidates(
        self, referral: Referral, principal: Principal
    ) -> list[Candidate]:
        """The registered clients the referral may be about, as the registry knows them now;
        those at sites the principal does not work at are marked not `visible`."""
        if not referral.candidates or referral.received is None:
            return []
        known = await self.registry.registered(referral.candidates)
        candidates = []
        for client_id in referral.candidates:
            registered = known.get(client_id)
            if registered is None:
                candidates.append(Candidate(client_id=client_id, details=None))
                continue
            candidates.append(
                Candidate(
                    client_id=client_id,
                    details=registered.details,
                    matched_on=matched_on(referral.received.client, registered.details),
                    site=registered.site,
                    visible=registered.site is not None
                    and can_reach_site(principal, registered.site),
                )
            )
        return candidates

    async def intake_queue(
        self, site: str, principal: Principal, limit: int = 500, after: str | None = None
    ) -> list[QueuedReferral]:
        """A site's waiting referrals, most urgent first, with how long each has waited."""
        require_site(principal, site)
        if not await self.sites.exists(site):
            raise UnknownSite(site, field="query.site")
        now = self.clock.now()
        return [
            QueuedReferral(entry, _seconds_between(entry.received_at, now))
            for entry in await self.queue.waiting(site, limit, after)
        ]

    # --- commands -----------------------------------------------------------------------

    async def receive_referral(
        self, cmd: ReceiveReferral, principal: Principal, ctx: CommitContext
    ) -> Referral:
        # The caller's site first: nothing about the site or its clients is said to a caller
        # who does not work there.
        require_site(principal, cmd.site)
        if not await self.sites.exists(cmd.site):
            raise UnknownSite(cmd.site)
        candidates = await self.registry.candidates(cmd.client)
        referral = self.referrals.new(cmd.referral_id)
        referral.receive(cmd, self.clock.now(), candidates)
        await self.referrals.save(referral, ctx)
        return referral

    async def screen_risk(
        self, cmd: ScreenRisk, principal: Principal, ctx: CommitContext
    ) -> Referral:
        referral = await self._to_change(cmd.referral_id, principal, cmd.expected_version)
        referral.screen_risk(cmd, self.clock.now())
        await self.referrals.save(referral, ctx)
        return referral

    async def confirm_client_match(
        self, cmd: ConfirmClientMatch, principal: Principal, ctx: CommitContext
    ) -> Referral:
        referral = await self._to_change(cmd.referral_id, principal, cmd.expected_version)
        referral.confirm_client_match(cmd, self.clock.now())
        await self.referrals.save(referral, ctx)
        return referral

    async def override_client_match(
        self, cmd: OverrideClientMatch, principal: Principal, ctx: CommitContext
    ) -> Referral:
        referral = await self._to_change(cmd.referral_id, principal, cmd.expected_version)
        referral.override_client_match(cmd, self.clock.now())
        await self.referrals.save(referral, ctx)
        return referral

    async def accept_referral(
        self, cmd: AcceptReferral, principal: Principal, ctx: CommitContext
    ) -> Referral:
        referral = await self._to_change(cmd.referral_id, principal, cmd.expected_version)
        referral.accept(cmd, self.clock.now())
        await self.referrals.save(referral, ctx)
        # Register a new client at once, so the registry has it as soon as possible. The
        # acceptance is stored whatever happens here: if this fails, the policy
        # `when_referral_accepted_register_client` registers the client from the event.
        try:
            await self._register_client_of(referral, ctx)
        except Exception:
            log.warning(
                "registering the client of referral %s is left to the policy",
                referral.id,
                exc_info=True,
            )
        return referral

    async def decline_referral(
        self, cmd: DeclineReferral, principal: Principal, ctx: CommitContext
    ) -> Referral:
        referral = await self._to_change(cmd.referral_id, principal, cmd.expected_version)
        referral.decline(cmd, self.clock.now())
        await self.referrals.save(referral, ctx)
        return referral

    async def register_client_of_accepted_referral(
        self, referral_id: str, ctx: CommitContext
    ) -> bool:
        """Register the new client an accepted referral names, once (for the policy)."""
        referral = await self.referrals.find(referral_id)
        return referral is not None and await self._register_client_of(referral, ctx)

    # --- helpers ------------------------------------------------------------------------

    async def _to_change(
        self, referral_id: str, principal: Principal, expected_version: int | None
    ) -> Referral:
        """A referral the principal may change, at the version the change is based on."""
        referral = await self.referral(referral_id, principal)
        if expected_version is not None and expected_version != referral.version:
            raise VersionMismatch(f"referral {referral_id}", expected_version, referral.version)
        return referral

    async def _register_client_of(self, referral: Referral, ctx: CommitContext) -> bool:
        """Idempotent: False when there is nothing to register or it already is."""
        accepted, received = referral.accepted, referral.received
        if accepted is None or received is None or not accepted.new_client:
            return False
        if await self.clients.find(accepted.client_id) is not None:
            return False
        client = self.clients.new(accepted.client_id)
        client.register(
            RegisterClient(client_id=client.id, site=accepted.site, details=received.client),
            self.clock.now(),
        )
        try:
            await self.clients.save(client, ctx)
        except ConcurrencyConflict:
            return False  # the request and the policy raced; one registration is enough
        return True


def _seconds_between(start: datetime, end: datetime) -> int:
    return max(int((end - start).total_seconds()), 0)
