"""Local copies of the organisation directory, kept by any service that needs them.

The supervision service owns the directory and publishes it; other services project the
public events into their own database (DESIGN §2: no synchronous calls to change state,
local projections of what a service needs from others).
"""

from __future__ import annotations

from casework.contracts.cases import CaseOpened
from casework.contracts.supervision import SiteRegistered
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Document
from casework.projections import APPLIED, Projection
from casework.runtime import events_topic


class KnownSites(Projection):
    """The sites of the organisation directory, keyed by site code."""

    name = "known_sites"
    topics = (events_topic("supervision"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, SiteRegistered):
            return False

        def register(doc: Document) -> Document:
            return {**doc, "name": event.name}

        return await self.read_model.apply(event.site, envelope, register)

    async def all(self) -> list[Document]:
        """Every known site, by code."""
        cursor = self.read_model.collection.find({}, {APPLIED: 0}).sort("_id", 1)
        return [dict(d) async for d in cursor]

    async def exists(self, site: str) -> bool:
        """Whether the site is registered (as far as this service has heard)."""
        return await self.read_model.get(site) is not None


class KnownCases(Projection):
    """Open cases as other services need them: site, client, risk, keyed by case id."""

    name = "known_cases"
    topics = (events_topic("cases"),)

    async def handle(self, envelope: Envelope, event: DomainEvent) -> bool:
        if not isinstance(event, CaseOpened):
            return False

        def opened(doc: Document) -> Document:
            return {
                **doc,
                "site": event.site,
                "client_id": event.client_id,
                "risk_level": event.risk_level,
                "opened_at": event.opened_at,
            }

        return await self.read_model.apply(event.case_id, envelope, opened)

    async def get(self, case_id: str) -> Document | None:
        """What this service knows of a case."""
        return await self.read_model.get(case_id)
