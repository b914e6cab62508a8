"""A client's data protection record: the legal holds on their records and every erasure asked
for them (stream `erasure-<client_id>`, one per client).

One stream per client, not one per request, so that the rules that join requests and holds
are decided in one place, under one stream's optimistic concurrency: a hold placed while an
erasure is decided conflicts with it (one of the two commands gets 409 and is retried against
the other's outcome), two erasures of the same client cannot both be carried out, and a
refused erasure can be asked for again later. Each request has its own `erasure_id`; its
proof record is keyed by it.

An erasure goes through these steps, each an event on this stream:

    ErasureRequested + ErasureDecided (one commit: the hold check and its outcome)
        → SubjectKeyDestroyed (the key ids, after `KeyService.destroy`)
        → ErasureCompleted (after the subject's blind-index entries are deleted)

**Invariant: an erasure decided `carried_out` is carried out to completion, exactly once in
effect, and nothing about it is recorded twice.** The decision is stored before anything is
destroyed; every later step is idempotent here (recording a step already recorded changes
nothing) and in the key service (destroying destroyed keys destroys nothing more), so the
application can repeat the remaining steps after any crash or redelivery until the erasure is
complete (`unfinished`).

None of these events holds personal data: they stay readable once the keys are gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.intake import (
    ErasureCompleted,
    ErasureDecided,
    ErasureOutcome,
    ErasureRequested,
    HoldFound,
    LegalHoldPlaced,
    LegalHoldReleased,
    SubjectKeyDestroyed,
)
from casework.events import DomainEvent

from casework_intake.domain.commands import PlaceLegalHold, ReleaseLegalHold, RequestErasure
from casework_intake.domain.errors import (
    ClientAlreadyErased,
    ErasureError,
    ErasureInProgress,
    NotDecidedToCarryOut,
    UnknownErasure,
    UnknownHold,
)

OPEN_CASE = "open_case"
LEGAL_HOLD = "legal_hold"


def subject_of(client_id: str) -> str:
    """The data subject id of a client (PRIVACY-SPEC: `client:<client_id>`)."""
    return f"client:{client_id}"


@dataclass(frozen=True)
class OpenCase:
    """A case of the client that is open (or about to open), as intake knows it."""

    case_id: str
    site: str | None = None


@dataclass
class ErasureRecord:
    """One erasure as far as it got."""

    requested: ErasureRequested
    decided: ErasureDecided | None = None
    destroyed: SubjectKeyDestroyed | None = None
    completed: ErasureCompleted | None = None

    @property
    def carried_out(self) -> bool:
        return self.decided is not None and self.decided.outcome is ErasureOutcome.CARRIED_OUT

    @property
    def finished(self) -> bool:
        """Refused, or carried out to the end."""
        return self.completed is not None or not self.carried_out

    @property
    def whole_client(self) -> bool:
        return self.requested.record_class is None

    @property
    def status(self) -> str:
        """`refused`, `carrying_out` (decided, keys not yet destroyed), `keys_destroyed`
        (blind-index entries not yet deleted) or `completed`."""
        if not self.carried_out:
            return "refused"
        if self.completed is not None:
            return "completed"
        return "keys_destroyed" if self.destroyed is not None else "carrying_out"


class Erasure(Aggregate):
    """The legal holds on one client's records and the erasures asked for them."""

    stream_type = "erasure"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.holds: dict[str, LegalHoldPlaced] = {}
        """Holds standing now, by hold id."""
        self.released: set[str] = set()
        self.erasures: dict[str, ErasureRecord] = {}

    @property
    def client_id(self) -> str:
        return self.id

    # --- rules ---------------------------------------------------------------------------

    def erased_by(self) -> ErasureRecord | None:
        """The erasure of the whole client that was carried out, if any."""
        for record in self.erasures.values():
            if record.carried_out and record.whole_client:
                return record
        return None

    def unfinished(self) -> list[str]:
        """Erasures decided to be carried out and not yet complete."""
        return [e for e, record in self.erasures.items() if not record.finished]

    def holds_found(self, open_cases: Sequence[OpenCase]) -> tuple[HoldFound, ...]:
        """What stands in the way of erasing the client now."""
        found = [HoldFound(kind=OPEN_CASE, id=c.case_id, site=c.site) for c in open_cases]
        found += [
            HoldFound(kind=LEGAL_HOLD, id=hold.hold_id, basis=hold.basis, site=hold.site)
            for hold in self.holds.values()
        ]
        return tuple(found)

    # --- commands ------------------------------------------------------------------------

    def request(self, cmd: RequestErasure, open_cases: Sequence[OpenCase], at: datetime) -> None:
        """Record the request and the hold check's decision, in one commit.

        Asking again with the same `erasure_id` (a retried request, a re-fired retention
        deadline) changes nothing. A refused erasure may be asked for again with a new id.
        Erasures that overlap (the whole client, or the same record class) are carried out
        one at a time; retention of `notes` and of `clinical` may run side by side.
        """
        if cmd.erasure_id in self.erasures:
            return
        if overlapping := [
            e
            for e in self.unfinished()
            if cmd.record_class is None
            or self.erasures[e].requested.record_class in (None, cmd.record_class)
        ]:
            raise ErasureInProgress(self.client_id, overlapping[0])
        if (erased := self.erased_by()) is not None:
            raise ClientAlreadyErased(self.client_id, erased.requested.erasure_id)
        holds = self.holds_found(open_cases)
        self._trigger(
            ErasureRequested(
                erasure_id=cmd.erasure_id,
                client_id=self.client_id,
                subject=subject_of(self.client_id),
                record_class=cmd.record_class,
                reason=cmd.reason,
                requester=cmd.requester,
                reference=cmd.reference,
                rule=cmd.rule,
                requested_by=cmd.requested_by,
                requested_at=at,
            )
        )
        self._trigger(
            ErasureDecided(
                erasure_id=cmd.erasure_id,
                client_id=self.client_id,
                outcome=ErasureOutcome.REFUSED if holds else ErasureOutcome.CARRIED_OUT,
                holds=holds,
                decided_by=cmd.requested_by,
                decided_at=at,
            )
        )

    def record_keys_destroyed(self, erasure_id: str, key_ids: Sequence[str], at: datetime) -> None:
        """Record what `KeyService.destroy` destroyed; once (a repeat changes nothing)."""
        record = self._carried_out(erasure_id)
        if record.destroyed is not None:
            return
        self._trigger(
            SubjectKeyDestroyed(
                erasure_id=erasure_id,
                client_id=self.client_id,
                subject=record.requested.subject,
                record_class=record.requested.record_class,
                key_ids=tuple(key_ids),
                destroyed_at=at,
            )
        )

    def complete(self, erasure_id: str, index_entries_deleted: int, at: datetime) -> None:
        """The last step, after the keys (a repeat changes nothing)."""
        record = self._carried_out(erasure_id)
        if record.completed is not None:
            return
        if record.destroyed is None:
            raise ErasureError(f"erasure {erasure_id}: the keys are not destroyed yet")
        self._trigger(
            ErasureCompleted(
                erasure_id=erasure_id,
                client_id=self.client_id,
                index_entries_deleted=index_entries_deleted,
                completed_at=at,
            )
        )

    def place_hold(self, cmd: PlaceLegalHold, at: datetime) -> None:
        if cmd.hold_id in self.holds or cmd.hold_id in self.released:
            return
        if (erased := self.erased_by()) is not None:
            raise ClientAlreadyErased(self.client_id, erased.requested.erasure_id)
        self._trigger(
            LegalHoldPlaced(
                client_id=self.client_id,
                hold_id=cmd.hold_id,
                basis=cmd.basis,
                reference=cmd.reference,
                site=cmd.site,
                placed_by=cmd.placed_by,
                placed_at=at,
            )
        )

    def release_hold(self, cmd: ReleaseLegalHold, at: datetime) -> None:
        """Release a standing hold; releasing it again changes nothing."""
        if cmd.hold_id in self.released:
            return
        if cmd.hold_id not in self.holds:
            raise UnknownHold(self.client_id, cmd.hold_id)
        self._trigger(
            LegalHoldReleased(
                client_id=self.client_id,
                hold_id=cmd.hold_id,
                released_by=cmd.released_by,
                released_at=at,
            )
        )

    def _carried_out(self, erasure_id: str) -> ErasureRecord:
        record = self.erasures.get(erasure_id)
        if record is None:
            raise UnknownErasure(self.client_id, erasure_id)
        if not record.carried_out:
            raise NotDecidedToCarryOut(erasure_id)
        return record

    # --- state ---------------------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ErasureRequested():
                self.erasures[event.erasure_id] = ErasureRecord(requested=event)
            case ErasureDecided():
                self.erasures[event.erasure_id].decided = event
            case SubjectKeyDestroyed():
                self.erasures[event.erasure_id].destroyed = event
            case ErasureCompleted():
                self.erasures[event.erasure_id].completed = event
            case LegalHoldPlaced():
                self.holds[event.hold_id] = event
            case LegalHoldReleased():
                self.holds.pop(event.hold_id, None)
                self.released.add(event.hold_id)
