"""What the intake application needs from its read models; the adapters provide it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import ClientDetails


class ClientLookup(Protocol):
    """The client registry as intake reads it (eventually consistent); its details are
    sealed (tokens), as the events that fed it."""

    async def details(self, client_ids: Sequence[str]) -> dict[str, ClientDetails]:
        """What the registry holds about these clients (the ones it knows)."""
        ...

    async def registered(self, client_ids: Sequence[str]) -> dict[str, RegisteredClient]:
        """What the registry holds about these clients, with the site each is registered at."""
        ...


class MatchIndex(Protocol):
    """The blind index duplicates are found in (`casework.privacy.blind_index.BlindIndex`):
    keyed hashes of the normalised values, never the values."""

    async def term(self, kind: str, normalised: str) -> str: ...

    async def stage(self, ref: str, terms: list[str], *, subject: str) -> None: ...

    async def staged(self, ref: str) -> list[str]: ...

    async def file(self, terms: list[str], *, owner: str, subject: str) -> None: ...

    async def lookup(self, term: str) -> list[str]: ...


class SubjectLinks(Protocol):
    """The key store's links between data subjects (`casework.privacy.KeyService.link`)."""

    async def link(self, subject: str, *, owner: str) -> None: ...


class Reveal(Protocol):
    """Opens sealed values, for the rare answer a route must compute from a plaintext (a
    masked candidate's initials); `casework.privacy.sealing.Opener`."""

    async def open_value(self, value: Any) -> Any: ...


@dataclass(frozen=True)
class RegisteredClient:
    details: ClientDetails
    site: str | None


@dataclass(frozen=True)
class WaitingReferral:
    """One line of a site's intake queue."""

    referral_id: str
    site: str
    client_name: str
    urgency: Urgency
    source: ReferralSource
    received_at: datetime
    risk_level: RiskLevel | None
    client_match: str


class QueueReader(Protocol):
    """The intake queue read model."""

    async def waiting(
        self, site: str, limit: int, after: str | None = None
    ) -> list[WaitingReferral]:
        """A site's waiting referrals, most urgent first and oldest first within urgency;
        `limit` of them, after the referral `after` (the previous page's last) if given."""
        ...


class SubjectKeys(Protocol):
    """The platform's key service as an erasure uses it (`casework.privacy.KeyService`)."""

    async def destroy(
        self,
        subject: str,
        *,
        record_class: str | None = None,
        reason: str,
        erasure_id: str,
    ) -> list[str]:
        """Destroy the subject's data keys (one class, or all; and those of the subjects
        linked to it); idempotent; the key ids destroyed."""
        ...


class BlindIndexEraser(Protocol):
    """The blind index (keyed hashes for duplicate matching) as an erasure uses it."""

    async def forget(self, subject: str) -> int:
        """Delete every entry of the subject; idempotent; how many were deleted."""
        ...


OPENING, OPEN, CLOSED = "opening", "open", "closed"


@dataclass(frozen=True)
class KnownCase:
    """A case of a client as intake knows it from the cases service's events (and from its
    own acceptance, before the case has opened): `opening`, `open` or `closed`."""

    case_id: str
    client_id: str
    site: str | None
    state: str
    closed_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.state != CLOSED


class CaseLedger(Protocol):
    """The cases of each client (eventually consistent)."""

    async def cases_of(self, client_id: str) -> list[KnownCase]:
        """Every case of the client that intake knows of."""
        ...


@dataclass(frozen=True)
class ErasureProof:
    """The proof record of one erasure: who asked, who decided, when, which keys — nothing
    about the person."""

    erasure_id: str
    client_id: str
    subject: str
    record_class: str | None
    reason: str
    requester: str
    reference: str | None
    rule: str | None
    requested_by: str
    requested_at: datetime
    status: str
    outcome: str | None
    decided_by: str | None
    decided_at: datetime | None
    holds: list[dict[str, str | None]]
    key_ids: list[str]
    keys_destroyed_at: datetime | None
    index_entries_deleted: int | None
    completed_at: datetime | None


class ProofReader(Protocol):
    """The erasure proof records (a read model)."""

    async def proof(self, erasure_id: str) -> ErasureProof | None: ...

    async def proofs(
        self, client_id: str | None, limit: int, after: str | None
    ) -> list[ErasureProof]:
        """Most recent first; `after` is the previous page's last `erasure_id`."""
        ...
