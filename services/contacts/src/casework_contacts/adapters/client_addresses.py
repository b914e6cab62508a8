"""The contacts service's local copy of where its clients live, from intake's events: a home
visit shows the client's address (issue 9), and intake is the service that takes it.

Intake takes the address with the referral (`ReferralReceived.client.address`, sealed at
append for the referred person `person:<uuid>`); `ReferralAccepted` then names the client
and the case (and intake links the person to the client in the key store). One document per
referral, keyed by referral id: the intake topic is keyed by the referral's stream, so one
partition writes each document, in order, idempotent by stream version (`ReadModel.apply`).
It holds the address as it came — a token; this service never opens it and needs no key to
keep it — the client and case once accepted, and when the address was given.

**Invariant: the address is kept sealed, and shown only opened by the HTTP edge, in an
answer the route authorised; the client's erasure blanks it everywhere.** The address
travels here as intake stored it; the read model, the contacts topic and the logs never hold
it in the clear. A route that shows it puts the token in its answer, and the edge
(`casework.privacy.edge`) opens it after the route authorised the reader, reporting the
subject to the audit record. Erasing the client destroys the client's keys and those of the
subjects linked to it (the referral's person among them), so the same token then opens to
`[erased]`: nothing here has to change, and a rebuild from the topic shows the same.

The client's address is the one given with the client's most recently accepted referral
that gave one (equality on the indexed `client_id`: a client has a handful of referrals).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from casework.contracts.intake import ReferralAccepted, ReferralReceived
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic


@dataclass(frozen=True)
class ClientAddress:
    """Where a client lives, as given with a referral (a sealed token until the edge opens it)."""

    address: str
    given_at: datetime
    referral_id: str


def address_change(event: DomainEvent) -> dict[str, Any] | None:
    """What an intake event sets on its referral's document (None: nothing)."""
    match event:
        case ReferralReceived():
            return {
                "address": event.client.address,
                "given_at": event.received_at,
                "site": event.site,
            }
        case ReferralAccepted():
            return {
                "client_id": event.client_id,
                "case_id": event.case_id,
                "accepted_at": event.accepted_at,
            }
    return None


class ClientAddresses(Projection):
    """`client_addresses`: one document per referral (see the module)."""

    name = "client_addresses"
    topics = (events_topic("intake"),)
    concurrent = True  # one document per referral stream, written through `ReadModel.apply`

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index([("client_id", ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change = address_change(event)
        if change is None:
            return False
        referral_id: str = getattr(event, "referral_id")  # noqa: B009 - both have it
        return await self.read_model.apply(referral_id, envelope, lambda doc: {**doc, **change})

    async def of_client(self, client_id: str) -> ClientAddress | None:
        """The address given with the client's latest accepted referral that gave one."""
        cursor = self.read_model.collection.find({"client_id": client_id}, {APPLIED: 0})
        given = [d async for d in cursor if d.get("address") and d.get("accepted_at")]
        if not given:
            return None
        latest = max(given, key=lambda d: (d["accepted_at"], str(d["_id"])))
        return ClientAddress(str(latest["address"]), latest["given_at"], str(latest["_id"]))

    async def of_clients(self, client_ids: set[str]) -> dict[str, ClientAddress]:
        """Several clients' addresses (one indexed query each, at once)."""
        ids = sorted(client_ids)
        found = await asyncio.gather(*(self.of_client(client_id) for client_id in ids))
        return {c: a for c, a in zip(ids, found, strict=True) if a is not None}


def as_document(address: ClientAddress | None) -> Document | None:
    """How an answer shows it."""
    if address is None:
        return None
    return {"address": address.address, "given_at": address.given_at}
