"""The `intake_queue` read model: per site, the referrals waiting for an intake decision.

One document per referral, keyed by referral id, so the partition of the referral's stream
is its only writer (DESIGN §5). A decided referral keeps its document, marked `accepted` or
`declined`, rather than losing it: the document remembers the versions applied, so a
redelivered `ReferralReceived` cannot bring a decided referral back into the queue.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from casework.contracts.common import ReferralSource, RiskLevel, Urgency
from casework.contracts.intake import (
    ClientMatchConfirmed,
    ClientMatchOverridden,
    DuplicateClientsFound,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    RiskScreened,
)
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic

from casework_intake.application.ports import WaitingReferral
from casework_intake.domain.referral import ClientMatch, ReferralStatus

URGENCY_RANK = {
    Urgency.EMERGENCY: 4,
    Urgency.URGENT: 3,
    Urgency.SOON: 2,
    Urgency.ROUTINE: 1,
}
"""The queue's order: the higher the rank, the nearer the front."""


def _change(event: DomainEvent) -> tuple[str, dict[str, Any]] | None:
    """The referral an event is about and the fields it sets on the referral's queue document
    (None: the queue does not care about this event)."""
    match event:
        case ReferralReceived():
            client = event.client
            return event.referral_id, {
                "referral_id": event.referral_id,
                "site": event.site,
                "status": ReferralStatus.WAITING.value,
                "client_name": f"{client.given_name} {client.family_name}",
                "urgency": event.urgency.value,
                "urgency_rank": URGENCY_RANK[event.urgency],
                "source": event.source.value,
                "received_at": event.received_at,
            }
        case DuplicateClientsFound():
            return event.referral_id, {"client_match": ClientMatch.UNDECIDED.value}
        case ClientMatchConfirmed():
            return event.referral_id, {"client_match": ClientMatch.CONFIRMED.value}
        case ClientMatchOverridden():
            return event.referral_id, {"client_match": ClientMatch.OVERRIDDEN.value}
        case RiskScreened():
            return event.referral_id, {"risk_level": event.risk_level.value}
        case ReferralAccepted():
            return event.referral_id, {"status": ReferralStatus.ACCEPTED.value}
        case ReferralDeclined():
            return event.referral_id, {"status": ReferralStatus.DECLINED.value}
    return None


class IntakeQueue(Projection):
    """Waiting referrals by site, for intake workers and site managers."""

    name = "intake_queue"
    topics = (events_topic("intake"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index(
            [("site", ASCENDING), ("status", ASCENDING), ("urgency_rank", DESCENDING)]
        )

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change = _change(event)
        if change is None:
            return False
        referral_id, fields = change

        def update(doc: Document) -> Document:
            return {"risk_level": None, "client_match": "no_candidates", **doc, **fields}

        return await self.read_model.apply(referral_id, envelope, update)

    async def waiting(self, site: str, limit: int) -> list[WaitingReferral]:
        """The site's waiting referrals, most urgent first, oldest first within an urgency."""
        cursor = (
            self.read_model.collection.find(
                {"site": site, "status": ReferralStatus.WAITING.value}, {APPLIED: 0}
            )
            .sort([("urgency_rank", DESCENDING), ("received_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [
            WaitingReferral(
                referral_id=doc["referral_id"],
                site=doc["site"],
                client_name=doc["client_name"],
                urgency=Urgency(doc["urgency"]),
                source=ReferralSource(doc["source"]),
                received_at=doc["received_at"],
                risk_level=RiskLevel(doc["risk_level"]) if doc.get("risk_level") else None,
                client_match=doc.get("client_match", ClientMatch.NO_CANDIDATES.value),
            )
            async for doc in cursor
        ]
