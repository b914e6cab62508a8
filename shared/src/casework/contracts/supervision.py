"""Events of the supervision service (topic `casework.supervision.events`)."""

from __future__ import annotations

from datetime import datetime

from casework.events import DomainEvent


class SupervisionEvent(DomainEvent):
    service = "supervision"


class SiteRegistered(SupervisionEvent):
    """A site of the agency joined the organisation directory."""

    site: str
    name: str
    registered_at: datetime
