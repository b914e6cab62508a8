"""Referral summaries: one document per referral, fed by the intake topic.

The site register counts referrals per week and times referral → acceptance from these, and
the caseload falls back on them for a client's name. Keyed by the referral id; written only
here; every event counts once by the referral stream's version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from pymongo import ASCENDING

from casework.contracts.intake import (
    ClientMatchConfirmed,
    DuplicateClientsFound,
    IntakeEvent,
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

from casework_cases.adapters.read_models.documents import enum_value

WAITING: Final = "waiting"
ACCEPTED: Final = "accepted"
DECLINED: Final = "declined"


def _later(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def evolve(doc: Document, event: DomainEvent) -> Document:
    """The summary after one event of the referral's stream; `doc` itself is not changed."""
    new: Document = dict(doc)
    match event:
        case ReferralReceived():
            new.update(
                referral_id=event.referral_id,
                site=event.site,
                received_at=event.received_at,
                urgency=event.urgency.value,
                source=event.source.value,
                client_name=f"{event.client.given_name} {event.client.family_name}",
            )
            new.setdefault("status", WAITING)
        case DuplicateClientsFound():
            new["possible_duplicates"] = len(event.candidate_client_ids)
        case ClientMatchConfirmed():
            new["client_id"] = event.client_id
        case RiskScreened():
            new["risk_level"] = event.risk_level.value
        case ReferralAccepted():
            new.update(
                referral_id=event.referral_id,
                status=ACCEPTED,
                accepted_at=event.accepted_at,
                case_id=event.case_id,
                client_id=event.client_id,
            )
            # Fill in what the acceptance repeats, should the received event be missing.
            new.setdefault("site", event.site)
            for field, value in (
                ("received_at", event.received_at),
                ("urgency", enum_value(event.urgency)),
                ("client_name", event.client_name),
                ("risk_level", enum_value(event.risk_level)),
            ):
                if new.get(field) is None:
                    new[field] = value
        case ReferralDeclined():
            new.update(
                referral_id=event.referral_id,
                site=new.get("site") or event.site,
                status=DECLINED,
                declined_at=event.declined_at,
            )
    # The latest of the times the register buckets by: a referral whose `latest_at` is before
    # a window has nothing to count in it, so the register reads only the others.
    new["latest_at"] = _later(
        new.get("received_at"), new.get("accepted_at"), new.get("declined_at")
    )
    return new


class ReferralSummaries(Projection):
    """`referral_summaries`: one document per referral, from the intake topic."""

    name = "referral_summaries"
    topics = (events_topic("intake"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        referral_id = getattr(event, "referral_id", None)
        if not isinstance(event, IntakeEvent) or not isinstance(referral_id, str):
            return False  # the client registry's events are not about one referral
        return await self.read_model.apply(referral_id, envelope, lambda doc: evolve(doc, event))

    async def ensure_indexes(self) -> None:
        await self.read_model.collection.create_index(
            [("site", ASCENDING), ("latest_at", ASCENDING)]
        )

    async def streams(self, referral_id: str) -> dict[str, int]:
        """The streams that fed the referral's summary, each with the last version applied."""
        doc = await self.read_model.collection.find_one({"_id": referral_id}, {APPLIED: 1})
        applied: dict[str, int] = dict(doc.get(APPLIED, {})) if doc else {}
        return applied

    async def of_site_since(self, site: str, since: datetime) -> list[Document]:
        """The site's referrals with anything (received, accepted, declined) since `since`."""
        cursor = self.read_model.collection.find(
            {"site": site, "latest_at": {"$gte": since}}, {APPLIED: 0}
        )
        return [dict(d) async for d in cursor]

    async def by_ids(self, referral_ids: Iterable[str]) -> dict[str, Document]:
        """Referrals by id, each looked up by `_id`: FerretDB hands exact `_id` filters to
        its SQL backend but filters `$in` itself, document by document, over every site's
        referrals; a few lookups are cheaper."""
        ids = sorted(set(referral_ids))
        found = await asyncio.gather(*(self.read_model.get(i) for i in ids))
        return {i: doc for i, doc in zip(ids, found, strict=True) if doc is not None}
