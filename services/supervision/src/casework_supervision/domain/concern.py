"""The Concern aggregate (stream `concern-<id>`): a concern a supervisor escalates to the
site manager (about a worker's practice or a case), open until a site manager resolves it."""

from __future__ import annotations

from datetime import datetime

from casework.aggregate import Aggregate
from casework.contracts.supervision import ConcernEscalated, ConcernResolved
from casework.events import DomainEvent

from casework_supervision.domain.errors import (
    ConcernAlreadyExists,
    ConcernAlreadyResolved,
)


class Concern(Aggregate):
    stream_type = "concern"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.escalated: ConcernEscalated | None = None
        self.resolved = False

    def escalate(self, event: ConcernEscalated) -> None:
        if self.escalated is not None:
            raise ConcernAlreadyExists(self.id)
        self._trigger(event)

    def resolve(self, resolution: str, by: str, now: datetime) -> None:
        assert self.escalated is not None
        if self.resolved:
            raise ConcernAlreadyResolved(self.id)
        self._trigger(
            ConcernResolved(
                concern_id=self.id,
                site=self.escalated.site,
                subject_id=self.escalated.subject_id,
                resolution=resolution,
                resolved_by=by,
                resolved_at=now,
            )
        )

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case ConcernEscalated():
                self.escalated = event
                self.site = event.site
            case ConcernResolved():
                self.resolved = True
