"""Intake's command handlers and queries: authorise, load, call one domain method, save."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from casework.access import NotVisible, can_reach_site, require_site
from casework.aggregate import VersionMismatch
from casework.auth import Principal
from casework.clock import Clock
from casework.contracts.intake import ClientDetails
from casework.directory import KnownSites
from casework.eventstore import CommitContext, ConcurrencyConflict, Repository
from casework.privacy import REPLACEMENT

from casework_intake.application.ports import (
    ClientLookup,
    MatchIndex,
    QueueReader,
    RegisteredClient,
    Reveal,
    SubjectLinks,
    WaitingReferral,
)
from casework_intake.domain.client import Client, MatchedOn, match_values
from casework_intake.domain.commands import (
    AcceptReferral,
    ConfirmClientMatch,
    DeclineReferral,
    OverrideClientMatch,
    ReceiveReferral,
    RegisterClient,
    ScreenRisk,
)
from casework_intake.domain.errors import UnknownSite
from casework_intake.domain.referral import Referral

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
    initials: str | None = None
    """When not visible: initials (`A.M.`), from the opened details."""
    birth_year: int | None = None
    """When not visible: the birth year (None when erased)."""


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
    match_index: MatchIndex
    subjects: SubjectLinks
    reveal: Reveal

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
        those at sites the principal does not work at are marked not `visible` (and their
        details opened here, for the initials and birth year the edge shows of them).

        Why each is a candidate comes from the blind index: the referral's terms (staged at
        receipt) under which the candidate is filed."""
        if not referral.candidates or referral.received is None:
            return []
        known = await self.registry.registered(referral.candidates)
        reasons: dict[str, list[MatchedOn]] = {}
        for term in await self.match_index.staged(_staged_ref(referral.id)):
            rule = MatchedOn(term.split(":", 1)[0])
            for owner in await self.match_index.lookup(term):
                reasons.setdefault(owner, []).append(rule)
        candidates = []
        for client_id in referral.candidates:
            registered = known.get(client_id)
            if registered is None:  # found in the blind index, not yet in the registry
                candidates.append(
                    Candidate(
                        client_id=client_id, details=None, matched_on=reasons.get(client_id, [])
                    )
                )
                continue
            visible = registered.site is not None and can_reach_site(principal, registered.site)
            initials, birth_year = (None, None) if visible else await self._masked(registered)
            candidates.append(
                Candidate(
                    client_id=client_id,
                    details=registered.details,
                    matched_on=reasons.get(client_id, []),
                    site=registered.site,
                    visible=visible,
                    initials=initials,
                    birth_year=birth_year,
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
        # The person gets a data subject of their own now; their details are sealed with its
        # keys, and it is linked to the client once the referral is matched or accepted.
        cmd = replace(cmd, subject_id=cmd.subject_id or f"person:{uuid.uuid4()}")
        assert cmd.subject_id is not None
        # Duplicates are found by blind-index terms computed from the command's input; the
        # terms are staged (before the referral is stored, so a stored referral always has
        # them) for filing under the client registered at acceptance.
        terms = [
            await self.match_index.term(rule.value, value)
            for rule, value in match_values(cmd.client).items()
        ]
        await self.match_index.stage(_staged_ref(cmd.referral_id), terms, subject=cmd.subject_id)
        found = [owner for term in terms for owner in await self.match_index.lookup(term)]
        # as candidates, the clients the registry (a read model) already shows, so that each
        # comes with its details: the index is written at once, the registry within moments
        known = await self.registry.registered(list(dict.fromkeys(found)))
        candidates = [owner for owner in found if owner in known]
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
        await self._link_person(referral, cmd.client_id)
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
        assert referral.accepted is not None
        # before the acceptance is stored: a stored acceptance always has its link, so an
        # erasure of the client reaches the referral's details
        await self._link_person(referral, referral.accepted.client_id)
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

    async def _masked(self, registered: RegisteredClient) -> tuple[str, int | None]:
        """Initials and birth year of a client the reader may not see in full."""
        details = registered.details
        given, family, born = await self.reveal.open_value(
            [details.given_name, details.family_name, str(details.date_of_birth)]
        )

        def initial(name: Any) -> str:
            return f"{name[:1].upper()}." if isinstance(name, str) and name != REPLACEMENT else "?"

        year = born[:4] if isinstance(born, str) else ""
        return initial(given) + initial(family), int(year) if year.isdigit() else None

    async def _link_person(self, referral: Referral, client_id: str) -> None:
        """Erasing the client erases the person the referral minted (idempotent)."""
        if referral.subject_id is not None:
            await self.subjects.link(referral.subject_id, owner=f"client:{client_id}")

    async def _register_client_of(self, referral: Referral, ctx: CommitContext) -> bool:
        """Register the new client and file it in the blind index under the referral's
        staged terms. Idempotent: False when there is nothing to register or it already is
        (the filing is done again all the same: a crash may have come between the two)."""
        accepted, received = referral.accepted, referral.received
        if accepted is None or received is None or not accepted.new_client:
            return False
        terms = await self.match_index.staged(_staged_ref(referral.id))
        registered = False
        if await self.clients.find(accepted.client_id) is None:
            client = self.clients.new(accepted.client_id)
            name_term = next(
                (t for t in terms if t.startswith(MatchedOn.NAME_AND_BIRTH_DATE.value)), ""
            )
            client.register(
                RegisterClient(
                    client_id=client.id,
                    site=accepted.site,
                    details=received.client,
                    match_term=name_term,
                ),
                self.clock.now(),
            )
            try:
                await self.clients.save(client, ctx)
                registered = True
            except ConcurrencyConflict:
                # the request and the policy raced, and one registration is enough — if there
                # is one: the slot may be held by a write that failed between its inserts,
                # which only the relay's fence clears (the caller tries again after it)
                if await self.clients.find(accepted.client_id) is None:
                    raise
        await self.match_index.file(
            terms, owner=accepted.client_id, subject=f"client:{accepted.client_id}"
        )
        return registered


def _staged_ref(referral_id: str) -> str:
    return f"referral:{referral_id}"


def _seconds_between(start: datetime, end: datetime) -> int:
    return max(int((end - start).total_seconds()), 0)
