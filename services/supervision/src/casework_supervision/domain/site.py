"""The Site aggregate of the organisation directory."""

from __future__ import annotations

from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.supervision import SiteRegistered
from casework.events import DomainEvent

from casework_supervision.domain.commands import RegisterSite


class SupervisionError(Exception):
    """A rule of supervision refused a command."""


class SiteAlreadyRegistered(SupervisionError):
    def __init__(self, site: str) -> None:
        super().__init__(f"site {site!r} is already registered")


class Site(Aggregate):
    stream_type = "site"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name: str | None = None

    def register(self, cmd: RegisterSite, at: datetime) -> None:
        if self.name is not None:
            raise SiteAlreadyRegistered(self.id)
        self._trigger(SiteRegistered(site=self.id, name=cmd.name, registered_at=at))

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case SiteRegistered():
                self.site = event.site
                self.name = event.name
