"""The `intake_queue` read model: per site, the referrals waiting for an intake decision.

One document per referral, keyed by referral id, so the partition of the referral's stream
is its only writer (DESIGN §5). A decided referral keeps its document, marked `accepted` or
`declined`, rather than losing it: the document remembers the versions applied, so a
redelivered `ReferralReceived` cannot bring a decided referral back into the queue.

Shaped for the one question it answers at regional scale (~200k referrals kept): the queue
of a site is read by **equality on one indexed field**, which FerretDB hands to PostgreSQL,
so a read costs a part of the site's waiting referrals, not every referral ever received.
That field is `waiting_in`, the site and the urgency while the referral waits (null once
decided): FerretDB v1.24 filters ranges, sorts and limits in Go after fetching every
document the equality matched, so a page reads the site's urgencies one at a time, most
urgent first, and stops once it has `limit` referrals (a page of the most urgent referrals
reads only those, not the whole queue). The order is one stored string, `queue_key`
(urgency, arrival, id); the next page starts after the last referral seen (`after`), in that
referral's urgency (read together with the next one), not at an offset. `waiting_at` (the
site while waiting) is kept for other readers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Final

from pymongo import ASCENDING

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

WAITING_AT: Final = "waiting_at"
WAITING_IN: Final = "waiting_in"
QUEUE_KEY: Final = "queue_key"


def waiting_in(site: str, urgency_rank: int) -> str:
    """The `waiting_in` value of a referral waiting at `site` with this urgency."""
    return f"{site}|{urgency_rank}"


def queue_key(urgency_rank: int, received_at: datetime, referral_id: str) -> str:
    """The queue's order as one string: most urgent first, then oldest, then by id."""
    utc = received_at.replace(tzinfo=UTC) if received_at.tzinfo is None else received_at
    # milliseconds, as the database keeps a datetime: the key is the same whether it is
    # derived from the event or from the stored document
    moment = utc.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    return f"{9 - urgency_rank}|{moment}|{referral_id}"


def _keys(doc: Document) -> Document:
    """The derived fields the queue is read by (see the module docstring)."""
    waiting = doc.get("status") == ReferralStatus.WAITING.value
    doc[WAITING_AT] = doc.get("site") if waiting else None
    rank = doc.get("urgency_rank")
    doc[WAITING_IN] = waiting_in(doc["site"], rank) if waiting and rank else None
    if doc.get("urgency_rank") and isinstance(doc.get("received_at"), datetime):
        doc[QUEUE_KEY] = queue_key(doc["urgency_rank"], doc["received_at"], doc["_id"])
    return doc


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
    concurrent = True  # writes only through its read model: casework.projections
    topics = (events_topic("intake"),)

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index(
            [(WAITING_AT, ASCENDING), (QUEUE_KEY, ASCENDING)]
        )
        await self.read_model.collection.create_index([(WAITING_IN, ASCENDING)])

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        change = _change(event)
        if change is None:
            return False
        referral_id, fields = change

        def update(doc: Document) -> Document:
            return _keys({"risk_level": None, "client_match": "no_candidates", **doc, **fields})

        return await self.read_model.apply(referral_id, envelope, update)

    async def waiting(
        self, site: str, limit: int, after: str | None = None
    ) -> list[WaitingReferral]:
        """The site's waiting referrals, most urgent first, oldest first within an urgency;
        `limit` of them, after the referral `after` if given (the last one of the previous
        page: it may have left the queue since, its place is remembered)."""
        ranks = sorted(URGENCY_RANK.values(), reverse=True)
        cursor_key: str | None = None
        if after is not None:
            last = await self.read_model.collection.find_one({"_id": after}, {QUEUE_KEY: 1})
            if last is None or QUEUE_KEY not in last:
                return []
            cursor_key = str(last[QUEUE_KEY])
            ranks = [r for r in ranks if 9 - r >= int(cursor_key.partition("|")[0])]

        async def urgency(rank: int) -> list[Document]:
            # equality only (pushed down); the rest is a few dozen documents in Python
            cursor = self.read_model.collection.find(
                {WAITING_IN: waiting_in(site, rank)}, {APPLIED: 0}
            )
            docs = [dict(d) async for d in cursor]
            return sorted(
                (d for d in docs if cursor_key is None or d[QUEUE_KEY] > cursor_key),
                key=lambda d: str(d[QUEUE_KEY]),
            )

        # A next page starts part-way through its cursor's urgency: the one after it is read
        # at the same time (one round trip instead of two when the page reaches it).
        ahead = 2 if cursor_key is not None else 1
        found: list[Document] = []
        for docs in await asyncio.gather(*(urgency(r) for r in ranks[:ahead])):
            found += docs
        for rank in ranks[ahead:]:
            if len(found) >= limit:
                break
            found += await urgency(rank)
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
            for doc in found[:limit]
        ]
