"""Cases events as the cases service would publish them, for the notifications tests."""

from __future__ import annotations

import uuid
from datetime import datetime

from casework.contracts.cases import CrisisDeclared, CrisisResolved
from casework.contracts.common import RiskLevel
from casework.envelope import Envelope
from casework.events import DomainEvent


def case_envelope(
    case_id: str, event: DomainEvent, version: int, at: datetime, site: str
) -> Envelope:
    return Envelope(
        type=event.type_name(),
        source="/casework/cases",
        subject=f"case-{case_id}",
        time=at,
        data=event.model_dump(mode="json"),
        stream_version=version,
        site=site,
    )


def crisis_declared(
    case_id: str,
    at: datetime,
    site: str,
    *,
    worker: str = "wendy",
    version: int = 3,
    crisis_id: str | None = None,
) -> Envelope:
    event = CrisisDeclared(
        case_id=case_id,
        crisis_id=crisis_id or str(uuid.uuid4()),
        site=site,
        caseworker_id=worker,
        risk_level=RiskLevel.IMMINENT,
        summary="enc:v1:k:AAAA",  # sealed on the wire: notifications never reads it
        declared_by=worker,
        declared_at=at,
    )
    return case_envelope(case_id, event, version, at, site)


def crisis_resolved(
    case_id: str, crisis_id: str, at: datetime, site: str, *, version: int = 4
) -> Envelope:
    event = CrisisResolved(
        case_id=case_id,
        crisis_id=crisis_id,
        resolution="enc:v1:k:AAAA",
        resolved_by="wendy",
        resolved_at=at,
    )
    return case_envelope(case_id, event, version, at, site)
