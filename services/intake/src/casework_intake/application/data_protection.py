"""Erasure, legal holds and retention: the data-protection officer's commands and the durable
process that carries an erasure out.

**Invariant: an erasure decided `carried_out` ends with the subject's keys destroyed, the
destruction recorded with its key ids, the subject's blind-index entries deleted and the
erasure recorded complete — whatever crashes or redeliveries happen on the way, and without
recording any step twice.** How:

1. The request and the legal-hold check's decision are one commit (`Erasure.request`):
   nothing is destroyed before the decision is stored, and a crash before it leaves nothing.
2. `carry_out` does the remaining steps in order, each skipped when the stream already
   records it: `KeyService.destroy` (idempotent) → `SubjectKeyDestroyed` → the blind index's
   `forget` (idempotent) → `ErasureCompleted`. Two runners at once (the request and the
   policy) each append a step at most once: a concurrency conflict reloads the stream and
   goes on from what it records.
3. The request runs `carry_out` at once; the policy `WhenErasureDecidedCarryOut` runs it again
   for every `ErasureDecided` the relay publishes (at least once, also after a restart), and
   its consumer commits its offset only once `carry_out` has returned. So an erasure whose
   request crashed between any two steps is finished by the policy, in this process or the
   next one to start.

Crash windows: after the decision, before `destroy` (nothing destroyed; the policy destroys);
after `destroy`, before `SubjectKeyDestroyed` (the keys are gone; the policy's `destroy` is a
no-op and the step is recorded with the key ids the key service reports for this erasure);
after `SubjectKeyDestroyed`, before the blind index (the policy deletes the entries and
completes). In every window the data is already unreadable or about to be, and the proof
record says how far the erasure got (`status`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from casework.access import NotVisible, can_reach_site
from casework.auth import Principal
from casework.clock import Clock
from casework.contracts.intake import ErasureReason, Requester
from casework.deadlines import Deadline, Deadlines
from casework.eventstore import CommitContext, Repository, retrying_lost_races

from casework_intake.application.ports import (
    BlindIndexEraser,
    CaseLedger,
    ErasureProof,
    KnownCase,
    ProofReader,
    SubjectKeys,
)
from casework_intake.domain.client import Client
from casework_intake.domain.commands import PlaceLegalHold, ReleaseLegalHold, RequestErasure
from casework_intake.domain.erasure import Erasure, ErasureRecord, OpenCase
from casework_intake.domain.errors import ClientAlreadyErased
from casework_intake.domain.retention import RECORD_CLASSES, RetentionRules

log = logging.getLogger(__name__)

HOLD_ROLES = frozenset({"dpo", "regional_admin"})
"""Roles that place and release holds on any client; a site manager only at the client's
site."""

RETENTION = "retention"
"""The deadline kind, and who `requested_by` names on a retention erasure."""

_RETENTION_IDS = uuid.UUID("5b0e6a9c-5f6e-4bb4-9a53-3f1f0e0c7a11")
"""Namespace of the erasure ids a retention deadline derives from its identity."""

HOLD_RECHECK = timedelta(days=30)
"""How long a retention refused by a legal hold waits before it is decided again."""


@dataclass
class DataProtection:
    """Legal holds, erasures and their proof records, retention."""

    erasures: Repository[Erasure]
    clients: Repository[Client]
    cases: CaseLedger
    keys: SubjectKeys
    blind_index: BlindIndexEraser
    proofs: ProofReader
    clock: Clock

    # --- queries ------------------------------------------------------------------------

    async def proof(self, erasure_id: str) -> ErasureProof:
        proof = await self.proofs.proof(erasure_id)
        if proof is None:
            raise NotVisible(f"no erasure {erasure_id}")
        return proof

    async def proof_list(
        self, client_id: str | None, limit: int, after: str | None
    ) -> list[ErasureProof]:
        return await self.proofs.proofs(client_id, limit, after)

    async def open_cases(self, client_id: str) -> list[str]:
        """Ids of the client's open (or opening) cases, as intake knows them."""
        return [c.case_id for c in await self.cases.cases_of(client_id) if c.open]

    async def record(self, client_id: str, principal: Principal) -> Erasure:
        """The client's holds and erasures (empty for a client with neither)."""
        await self._reachable_client(client_id, principal)
        return await self.erasures.find(client_id) or self.erasures.new(client_id)

    # --- commands -----------------------------------------------------------------------

    async def request_erasure(
        self, cmd: RequestErasure, ctx: CommitContext
    ) -> tuple[Erasure, ErasureRecord]:
        """Record the request and its decision; if carried out, carry it out at once (what
        fails here is finished by the policy)."""
        await self._client(cmd.client_id)
        erasure = await self._decide(cmd, ctx)
        record = erasure.erasures[cmd.erasure_id]
        if record.carried_out:
            try:
                erasure = await self.carry_out(cmd.client_id, cmd.erasure_id, ctx)
            except Exception:
                log.warning(
                    "erasure %s: carrying it out is left to the policy",
                    cmd.erasure_id,
                    exc_info=True,
                )
        return erasure, erasure.erasures[cmd.erasure_id]

    async def carry_out(self, client_id: str, erasure_id: str, ctx: CommitContext) -> Erasure:
        """Every step of a decided erasure not yet recorded, in order (idempotent). A lost
        race (another runner recorded a step) goes on from what that runner recorded."""

        async def attempt() -> Erasure:
            erasure = await self.erasures.get(client_id)
            record = erasure.erasures[erasure_id]
            if record.finished:
                return erasure
            if record.destroyed is None:
                key_ids = await self.keys.destroy(
                    record.requested.subject,
                    record_class=record.requested.record_class,
                    reason=record.requested.reason.value,
                    erasure_id=erasure_id,
                )
                erasure.record_keys_destroyed(erasure_id, key_ids, self._now())
                await self.erasures.save(erasure, ctx)
            deleted = 0  # the blind index holds identity only
            if record.requested.record_class in (None, "identity"):
                deleted = await self.blind_index.forget(record.requested.subject)
            erasure.complete(erasure_id, deleted, self._now())
            await self.erasures.save(erasure, ctx)
            return erasure

        return await retrying_lost_races(attempt)

    async def place_hold(
        self, cmd: PlaceLegalHold, principal: Principal, ctx: CommitContext
    ) -> Erasure:
        site = await self._reachable_client(cmd.client_id, principal)
        erasure = await self.erasures.find(cmd.client_id) or self.erasures.new(cmd.client_id)
        erasure.place_hold(
            PlaceLegalHold(
                client_id=cmd.client_id,
                hold_id=cmd.hold_id,
                basis=cmd.basis,
                placed_by=cmd.placed_by,
                reference=cmd.reference,
                site=cmd.site or site,
            ),
            self._now(),
        )
        await self.erasures.save(erasure, ctx)
        return erasure

    async def release_hold(
        self, cmd: ReleaseLegalHold, principal: Principal, ctx: CommitContext
    ) -> Erasure:
        await self._reachable_client(cmd.client_id, principal)
        erasure = await self.erasures.find(cmd.client_id) or self.erasures.new(cmd.client_id)
        erasure.release_hold(cmd, self._now())
        await self.erasures.save(erasure, ctx)
        return erasure

    async def apply_retention(
        self, client_id: str, record_class: str, erasure_id: str, rule: str | None
    ) -> ErasureRecord | None:
        """A retention deadline came due: erase that record class of the client, unless one of
        their cases is open, a later closure's period is still running (its own deadline will
        come), or the client is already erased. A legal hold refuses it like any erasure."""
        cmd = RequestErasure(
            client_id=client_id,
            erasure_id=erasure_id,
            reason=ErasureReason.RETENTION_EXPIRED,
            requester=Requester.RETENTION_RULE,
            requested_by=RETENTION,
            record_class=record_class,
            rule=rule,
        )
        ctx = CommitContext(correlation_id=erasure_id, causation_id=erasure_id)
        try:
            erasure, record = await self.request_erasure(cmd, ctx)
        except ClientAlreadyErased:
            return None
        if record.carried_out and not record.finished:
            # the request could not finish it: fail the deadline, so that it is fired again
            erasure = await self.carry_out(client_id, erasure_id, ctx)
        return erasure.erasures[erasure_id]

    # --- helpers ------------------------------------------------------------------------

    def _now(self) -> datetime:
        # to the millisecond, as the proof records' store keeps times: the request's answer
        # and the proof record read later say the same
        now = self.clock.now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def _decide(self, cmd: RequestErasure, ctx: CommitContext) -> Erasure:
        """Record the request and its decision; a hold or another request that came first is
        decided against (a lost race reloads)."""

        async def attempt() -> Erasure:
            open_cases = [
                OpenCase(case_id=c.case_id, site=c.site)
                for c in await self.cases.cases_of(cmd.client_id)
                if c.open
            ]
            erasure = await self.erasures.find(cmd.client_id) or self.erasures.new(cmd.client_id)
            erasure.request(cmd, open_cases, self._now())
            await self.erasures.save(erasure, ctx)
            return erasure

        return await retrying_lost_races(attempt)

    async def _client(self, client_id: str) -> Client:
        client = await self.clients.find(client_id)
        if client is None:
            raise NotVisible(f"no client {client_id}")
        return client

    async def _reachable_client(self, client_id: str, principal: Principal) -> str | None:
        """The client's site, if the principal may place or release holds on the client."""
        client = await self._client(client_id)
        if principal.roles & HOLD_ROLES:
            return client.site
        if client.site is None or not can_reach_site(principal, client.site):
            raise NotVisible(f"no client {client_id}")
        return client.site


@dataclass
class RetentionSchedule:
    """When a case closes, a deadline per record class with a retention period; when it
    reopens, those deadlines are cancelled. When one fires, `DataProtection.apply_retention`
    decides against all of the client's cases."""

    rules: RetentionRules
    deadlines: Deadlines
    cases: CaseLedger
    data_protection: DataProtection
    clock: Clock

    @staticmethod
    def key(case_id: str, record_class: str) -> str:
        return f"{RETENTION}:{case_id}:{record_class}"

    async def case_changed(self, case: KnownCase) -> None:
        """Schedule or cancel the case's deadlines to match its state (idempotent)."""
        periods = self.rules.for_site(case.site)
        for record_class in RECORD_CLASSES:
            key = self.key(case.case_id, record_class)
            period = periods.get(record_class)
            if case.state == "closed" and case.closed_at is not None and period is not None:
                await self.deadlines.schedule(
                    key,
                    RETENTION,
                    period.after(case.closed_at),
                    {
                        "client_id": case.client_id,
                        "case_id": case.case_id,
                        "record_class": record_class,
                    },
                )
            else:
                await self.deadlines.cancel(key)

    async def fire(self, deadline: Deadline) -> None:
        """The deadline handler: erase the class if every case of the client allows it."""
        client_id = str(deadline.payload["client_id"])
        record_class = str(deadline.payload["record_class"])
        case_id = str(deadline.payload["case_id"])
        cases = await self.cases.cases_of(client_id)
        if not self.expired(cases, record_class, self.clock.now()):
            log.info("retention %s: not due for every case of the client", deadline.key)
            return
        site = next((c.site for c in cases if c.case_id == case_id), None)
        erasure_id = str(uuid.uuid5(_RETENTION_IDS, deadline.identity))
        record = await self.data_protection.apply_retention(
            client_id, record_class, erasure_id, self.rules.rule_name(site, record_class)
        )
        if record is not None and not record.carried_out:
            # refused by a legal hold: look again later (a new epoch, hence a new erasure id
            # and a new proof record each time), until the hold is released
            await self.deadlines.schedule(
                deadline.key, RETENTION, self.clock.now() + HOLD_RECHECK, deadline.payload
            )

    def expired(self, cases: list[KnownCase], record_class: str, now: datetime) -> bool:
        """Whether the class's period has run out for every case of the client: none is
        open, and each closed one's period (at its site) has passed."""
        if not cases:
            return False
        for case in cases:
            period = self.rules.for_site(case.site).get(record_class)
            if case.open or case.closed_at is None or period is None:
                return False
            if period.after(case.closed_at) > now:
                return False
        return True
