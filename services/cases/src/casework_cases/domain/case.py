"""The Case aggregate: one episode of care, from opening to closure."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from casework.aggregate import Aggregate
from casework.contracts.cases import CaseOpened
from casework.contracts.common import RiskLevel
from casework.events import DomainEvent

from casework_cases.domain.commands import OpenCase


class Phase(StrEnum):
    """Where the case stands in the procedure."""

    ASSESSMENT = "assessment"
    PLANNING = "planning"
    ACTIVE = "active"
    REVIEW = "review"
    CLOSED = "closed"


class CaseError(Exception):
    """A rule of casework refused a command."""


class CaseAlreadyOpened(CaseError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} is already open")


class Case(Aggregate):
    stream_type = "case"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.phase: Phase | None = None
        self.client_id: str | None = None
        self.referral_id: str | None = None
        self.risk_level: RiskLevel | None = None
        self.opened_at: datetime | None = None

    def open(self, cmd: OpenCase, at: datetime) -> None:
        if self.phase is not None:
            raise CaseAlreadyOpened(self.id)
        self._trigger(
            CaseOpened(
                case_id=self.id,
                client_id=cmd.client_id,
                referral_id=cmd.referral_id,
                site=cmd.site,
                risk_level=cmd.risk_level,
                opened_at=at,
            )
        )

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case CaseOpened():
                self.phase = Phase.ASSESSMENT
                self.client_id = event.client_id
                self.referral_id = event.referral_id
                self.site = event.site
                self.risk_level = event.risk_level
                self.opened_at = event.opened_at
