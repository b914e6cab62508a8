"""Events of the cases service (topic `casework.cases.events`)."""

from __future__ import annotations

from datetime import datetime

from casework.contracts.common import RiskLevel
from casework.events import DomainEvent


class CaseEvent(DomainEvent):
    service = "cases"


class CaseOpened(CaseEvent):
    """An episode of care began, in the assessment phase."""

    case_id: str
    client_id: str
    referral_id: str
    site: str
    risk_level: RiskLevel | None = None
    opened_at: datetime
