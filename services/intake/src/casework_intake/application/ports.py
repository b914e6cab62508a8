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
