"""Referral summaries: one document per referral, fed by the intake topic.

The caseload falls back on them for a client's name. The site register reads what they
count (`contributions`): referrals received, accepted and declined per site and ISO week, and
the hours from arrival to acceptance as a histogram, kept as partition counters
(`casework.counters`) in the same collection. Keyed by the referral id; written only here;
every event counts once by the referral stream's version, and once in the counters by the
partition's offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase

from casework.contracts.intake import (
    ClientMatchConfirmed,
    DuplicateClientsFound,
    IntakeEvent,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    RiskScreened,
)
from casework.counters import CountedDocuments, Counts, duration_bucket
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import Projection
from casework.runtime import events_topic

from casework_cases.adapters.read_models.documents import (
    enum_value,
    hours_between,
    iso_week,
    maybe_utc,
    quarter_key,
)

TO_ACCEPTANCE: Final = "to_acceptance"
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


def contributions(doc: Mapping[str, Any]) -> Counts:
    """What one referral counts for in its site's weekly counters: received, accepted and
    declined, each in the ISO week of its own moment, and the hours from arrival to
    acceptance (a histogram bucket) in the week of the acceptance."""
    site = doc.get("site")
    if not site:
        return {}
    out: dict[str, dict[str, int]] = {}
    for what in ("received", "accepted", "declined"):
        moment = maybe_utc(doc.get(f"{what}_at"))
        if moment is not None:
            week = iso_week(moment)
            out.setdefault(quarter_key(site, week), {})[f"{week}|{what}"] = 1
    accepted = maybe_utc(doc.get("accepted_at"))
    hours = hours_between(doc.get("received_at"), accepted)
    if accepted is not None and hours is not None:
        week = iso_week(accepted)
        counts = out.setdefault(quarter_key(site, week), {})
        counts[f"{week}|{TO_ACCEPTANCE}|{duration_bucket(hours)}"] = 1
    return out


class ReferralSummaries(Projection):
    """`referral_summaries`: one document per referral, from the intake topic, and the
    register's weekly counters of them."""

    name = "referral_summaries"
    concurrent = True  # writes only through its read model: casework.projections
    topics = (events_topic("intake"),)

    def __init__(self, database: AsyncDatabase[Document], collection: str | None = None) -> None:
        super().__init__(database, collection)
        self.documents = CountedDocuments(self.read_model.collection, contributions)
        self.counters = self.documents.counters

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        referral_id = getattr(event, "referral_id", None)
        if not isinstance(event, IntakeEvent) or not isinstance(referral_id, str):
            return False  # the client registry's events are not about one referral
        return await self.documents.apply(referral_id, envelope, lambda doc: evolve(doc, event))

    async def ensure_indexes(self) -> None:
        await self.counters.ensure_indexes()

    async def by_ids(self, referral_ids: Iterable[str]) -> dict[str, Document]:
        """Referrals by id, each looked up by `_id` (`ReadModel.get_many`)."""
        return await self.read_model.get_many(referral_ids)
