"""What the intake application needs from its read models; the adapters provide it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import ClientDetails


class ClientLookup(Protocol):
    """The client registry as intake searches it for duplicates (eventually consistent)."""

    async def candidates(self, client: ClientDetails) -> list[str]:
        """Ids of registered clients who may be this person (same match key or phone)."""
        ...

    async def details(self, client_ids: Sequence[str]) -> dict[str, ClientDetails]:
        """What the registry holds about these clients (the ones it knows)."""
        ...

    async def registered(self, client_ids: Sequence[str]) -> dict[str, RegisteredClient]:
        """What the registry holds about these clients, with the site each is registered at."""
        ...


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
