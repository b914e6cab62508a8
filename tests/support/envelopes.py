"""Wrapping a contract event in the envelope a consumer would receive, for feeding
projections directly in tests."""

from __future__ import annotations

from datetime import datetime

from casework.envelope import Envelope
from casework.events import DomainEvent


def envelope_of(
    event: DomainEvent,
    stream: str,
    version: int,
    at: datetime,
    *,
    event_id: str | None = None,
    site: str | None = None,
) -> Envelope:
    """The event as its service's relay would publish it (id defaults to a fresh UUID)."""
    return Envelope(
        type=event.type_name(),
        source=f"/casework/{event.service}",
        subject=stream,
        time=at,
        data=event.model_dump(mode="json"),
        stream_version=version,
        site=site,
        **({"id": event_id} if event_id else {}),
    )
