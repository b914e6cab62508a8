"""The Site aggregate of the organisation directory."""

from __future__ import annotations

from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.supervision import SiteRegistered
from casework.events import DomainEvent

from casework_supervision.domain.commands import RegisterSite
from casework_supervision.domain.errors import SiteAlreadyRegistered, SupervisionError

__all__ = ["Site", "SiteAlreadyRegistered", "SupervisionError"]


class Site(Aggregate):
    stream_type = "site"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name: str | None = None
        self.timezone: str | None = None

    @property
    def registered(self) -> bool:
        return self.name is not None

    def register(self, cmd: RegisterSite, at: datetime) -> None:
        if self.name is not None:
            raise SiteAlreadyRegistered(self.id)
        self._trigger(
            SiteRegistered(site=self.id, name=cmd.name, registered_at=at, timezone=cmd.timezone)
        )

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case SiteRegistered():
                self.site = event.site
                self.name = event.name
                self.timezone = event.timezone
