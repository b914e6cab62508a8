"""The contacts application: authorise, load, call one domain method, save.

Two aggregates: `Contact` (one per contact) and `CaseObligations` (one per case). Commands
from people (HTTP) go through `execute`, which checks roles and reach against the local
projection of the case; commands from the platform (the policies and the deadlines) go
through `replan`, `count_contact`, `mark_due_soon`, `mark_overdue` and
`raise_lone_worker_overdue`, which retry a lost write race on the same stream (the loser
reloads, and the aggregate decides again, usually that nothing is left to do).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from casework.access import AccessDenied, NotVisible
from casework.auth import Principal
from casework.clock import Clock
from casework.contracts.contacts import (
    ContactCorrected,
    ContactLogged,
    CorrectionKind,
    Medium,
    Outcome,
    ParticipantKind,
)
from casework.eventstore import (
    RACE_RETRIES,
    CommitContext,
    ConcurrencyConflict,
    Document,
    Repository,
    after_lost_race,
    retrying_lost_races,
)

from casework_contacts.adapters.case_facts import facts_of, scope_of
from casework_contacts.adapters.client_addresses import ClientAddress
from casework_contacts.domain.access import CONTACT_WORKERS, READERS, can_reach_case
from casework_contacts.domain.commands import (
    CaseRef,
    ContactCommand,
    LogContact,
    RaiseLoneWorkerOverdue,
    ScheduleContact,
)
from casework_contacts.domain.contact import Contact
from casework_contacts.domain.errors import CaseClosedForContacts, ContactError, InvalidContact
from casework_contacts.domain.obligations import (
    CaseFacts,
    CaseObligations,
    CaseTrigger,
    CountContact,
    MarkDueSoon,
    MarkOverdue,
    ObligationCommand,
    Replan,
    UncountContact,
)
from casework_contacts.domain.policy import ContactPolicy

log = logging.getLogger(__name__)


class CaseDirectory(Protocol):
    """The local projection of the cases (`adapters.case_facts.CaseFactsStore`)."""

    async def get(self, case_id: str) -> Document | None: ...


class AddressBook(Protocol):
    """The local projection of clients' addresses (`adapters.client_addresses`)."""

    async def of_client(self, client_id: str) -> ClientAddress | None: ...


@dataclass
class Contacts:
    """Every command the contacts service handles."""

    contacts: Repository[Contact]
    obligations: Repository[CaseObligations]
    cases: CaseDirectory
    policy: ContactPolicy
    clock: Clock
    lone_worker_grace: timedelta
    addresses: AddressBook | None = None

    # -- people's commands ------------------------------------------------------------------

    async def case_ref(self, case_id: str, principal: Principal, *, for_writing: bool) -> CaseRef:
        """The case a new contact is for, if the principal reaches it (else 404); a closed
        case takes no new contacts."""
        doc = await self._reachable_case(case_id, principal)
        if for_writing and doc.get("phase") == "closed":
            raise CaseClosedForContacts(case_id)
        return CaseRef(case_id, str(doc.get("client_id")), str(doc.get("site")), facts_of(doc))

    async def contact(self, contact_id: str, principal: Principal) -> Contact:
        """A contact the principal may see; one out of reach is not found."""
        _require_roles(principal, READERS, "read contacts")
        contact = await self.contacts.find(contact_id)
        if contact is None or contact.case_id is None:
            raise NotVisible(f"no contact {contact_id}")
        await self._reachable_case(contact.case_id, principal, what=f"contact {contact_id}")
        return contact

    async def visit_address(self, contact: Contact) -> ClientAddress | None:
        """Where a home visit goes: the client's address, sealed (the HTTP edge opens it for
        the reader the route authorised). None for other media, or when intake has none."""
        if contact.medium is not Medium.HOME_VISIT or contact.client_id is None:
            return None
        if self.addresses is None:
            return None
        return await self.addresses.of_client(contact.client_id)

    async def execute(
        self, cmd: ContactCommand, principal: Principal, ctx: CommitContext
    ) -> Contact:
        """Authorise `cmd`, decide it on its contact, commit; a logged contact is counted
        towards the case's obligations at once (and again, harmlessly, by the policy that
        reads the event: whichever comes first counts it). Once the contact is stored, a
        failure to count it does not fail the request: the policy counts it.

        A new contact (scheduled, or logged unscheduled, under an id whose stream this
        process has not seen) is first decided without reading its stream: the commit then
        targets the stream's first slot, which only an empty stream has free. Anything but a
        commit — the slot taken (an id used before: a retried request, a scheduled contact
        logged by its id) or a refusal — sends the command down the ordinary path: the stream
        loaded, the contact's case reached, decided again."""
        _require_roles(principal, CONTACT_WORKERS, type(cmd).__name__)
        if isinstance(cmd, ScheduleContact | LogContact):
            await self._check_follow_up(cmd)
            if not self.contacts.knows(cmd.contact_id):
                try:
                    new = self.contacts.new(cmd.contact_id)
                    return await self._decide_contact(new, cmd, ctx)
                except (ConcurrencyConflict, ContactError):
                    pass  # decided below, on what the stream holds
        contact = await self.contacts.find(cmd.contact_id)
        if isinstance(cmd, ScheduleContact | LogContact):
            if contact is None:
                contact = self.contacts.new(cmd.contact_id)
            else:
                assert contact.case_id is not None
                await self._reachable_case(contact.case_id, principal)
        elif contact is None or contact.case_id is None:
            raise NotVisible(f"no contact {cmd.contact_id}")
        else:
            await self._reachable_case(contact.case_id, principal)
        return await self._decide_contact(contact, cmd, ctx)

    async def _check_follow_up(self, cmd: ScheduleContact | LogContact) -> None:
        if isinstance(cmd, ScheduleContact) and cmd.follow_up_of is not None:
            earlier = await self.contacts.find(cmd.follow_up_of)
            if earlier is None or earlier.case_id != cmd.case.case_id:
                raise InvalidContact("no contact of this case has that id", "body.follow_up_of")

    async def _decide_contact(
        self, contact: Contact, cmd: ContactCommand, ctx: CommitContext
    ) -> Contact:
        contact.handle(cmd, self.clock.now())
        events = contact.pending_events
        await self.contacts.save(contact, ctx)
        facts = cmd.case.facts if isinstance(cmd, LogContact) else None
        try:
            for event in events:
                if isinstance(event, ContactLogged):
                    await self.count_contact(event, ctx, facts=facts, trust_cache=True)
                elif isinstance(event, ContactCorrected):
                    await self.uncount_contact(event, ctx)
        except Exception as exc:
            log.warning(
                "contact %s stored but not yet counted (%s); the policy will count it",
                contact.id,
                type(exc).__name__,
            )
        return contact

    async def _reachable_case(
        self, case_id: str, principal: Principal, *, what: str | None = None
    ) -> Document:
        doc = await self.cases.get(case_id)
        if doc is None or not can_reach_case(principal, scope_of(doc)):
            raise NotVisible(f"no {what or 'case ' + case_id}")
        return doc

    # -- the platform's commands ------------------------------------------------------------

    async def replan(self, case_id: str, trigger: CaseTrigger | None, ctx: CommitContext) -> bool:
        """Bring the case's obligations in line with its facts as projected now (and start
        the clock of `trigger`); True if anything changed."""
        doc = await self.cases.get(case_id)
        if doc is None:
            return False
        facts = facts_of(doc)
        policy = self.policy.for_site(facts.site)
        return await self._decide(case_id, Replan(facts, policy, trigger), ctx)

    async def count_contact(
        self,
        event: ContactLogged,
        ctx: CommitContext,
        *,
        facts: CaseFacts | None = None,
        trust_cache: bool = False,
    ) -> bool:
        """Count a logged contact towards its case's obligations (once per contact).

        `facts`: the case as the request that logged it just read it (else read now);
        `trust_cache`: decide first on the obligations as this process last saw them (see
        `_decide`) — for the request, whose count the policy repeats from the topic."""
        if facts is None or facts.case_id != event.case_id:
            doc = await self.cases.get(event.case_id)
            if doc is None:
                return False
            facts = facts_of(doc)
        with_client = any(p.kind is ParticipantKind.CLIENT for p in event.participants)
        cmd = CountContact(
            facts,
            self.policy.for_site(facts.site),
            event.contact_id,
            event.occurred_at,
            event.medium,
            Outcome(event.outcome),
            with_client,
        )
        return await self._decide(event.case_id, cmd, ctx, trust_cache=trust_cache)

    async def uncount_contact(self, event: ContactCorrected, ctx: CommitContext) -> bool:
        """A contact struck through no longer counts towards its case's obligations."""
        if event.kind is not CorrectionKind.STRUCK_THROUGH:
            return False
        doc = await self.cases.get(event.case_id)
        if doc is None:
            return False
        facts = facts_of(doc)
        cmd = UncountContact(facts, self.policy.for_site(facts.site), event.contact_id)
        return await self._decide(event.case_id, cmd, ctx)

    async def mark_due_soon(self, case_id: str, obligation_id: str, due_at: datetime) -> bool:
        facts = await self._facts(case_id)
        if facts is None:
            return False
        return await self._decide(case_id, MarkDueSoon(facts, obligation_id, due_at))

    async def mark_overdue(self, case_id: str, obligation_id: str, due_at: datetime) -> bool:
        """Sent by the obligation's deadline: the aggregate decides whether it is overdue."""
        facts = await self._facts(case_id)
        if facts is None:
            return False
        return await self._decide(case_id, MarkOverdue(facts, obligation_id, due_at))

    async def raise_lone_worker_overdue(self, contact_id: str, due_back_at: datetime) -> bool:
        """Sent by the lone-worker deadline: the contact decides whether it is overdue."""

        async def attempt() -> bool:
            contact = await self.contacts.find(contact_id)
            if contact is None or contact.case_id is None:
                return False
            doc = await self.cases.get(contact.case_id)
            team = doc.get("team") if doc else None
            contact.handle(RaiseLoneWorkerOverdue(contact_id, due_back_at, team), self.clock.now())
            if not contact.pending_events:
                return False
            await self.contacts.save(contact, CommitContext())
            return True

        return await retrying_lost_races(attempt)

    async def _facts(self, case_id: str) -> CaseFacts | None:
        doc = await self.cases.get(case_id)
        return facts_of(doc) if doc is not None else None

    async def _decide(
        self,
        case_id: str,
        cmd: ObligationCommand,
        ctx: CommitContext | None = None,
        *,
        trust_cache: bool = False,
    ) -> bool:
        """Decide `cmd` on the case's obligations and commit; a lost race is decided again.

        `trust_cache`: the first decision is made on the stream as this process's repository
        last saw it, without reading what is newer (`Repository.find`). That is safe only
        because what it decides is checked: a commit on a stale history targets a slot that
        is taken (a conflict), and "nothing to do" could be an older state's answer (an
        obligation not yet opened is not overdue) — both are decided again on a fresh load."""
        fresh = not trust_cache
        for attempt in range(RACE_RETRIES):
            obligations = await self.obligations.find(
                case_id, trust_cache=not fresh
            ) or self.obligations.new(case_id)
            obligations.site = cmd.facts.site or None
            obligations.handle(cmd, self.clock.now())
            if not obligations.pending_events:
                if fresh:
                    return False
                fresh = True  # nothing to do on what the cache holds: and on the store?
                continue
            try:
                await self.obligations.save(obligations, ctx)
                return True
            except ConcurrencyConflict:
                fresh = True  # another replica or request wrote first: decide again on it
                await after_lost_race(attempt)
                continue
        raise ConcurrencyConflict(CaseObligations.stream_id_for(case_id), -1)


def _require_roles(principal: Principal, roles: frozenset[str], action: str) -> None:
    # The HTTP edge checks the same roles first; this keeps the rule whoever calls.
    if not principal.has_role(*roles):
        raise AccessDenied(f"{action} needs one of the roles: {', '.join(sorted(roles))}")
