"""Wrapping a contract event in the envelope a consumer would receive, for feeding
projections directly in tests."""

from __future__ import annotations

import itertools
import zlib
from datetime import datetime

from casework.envelope import Envelope, Position
from casework.events import DomainEvent
from casework.runtime import events_topic

_offsets = itertools.count()


def position_of(stream: str, service: str) -> Position:
    """Where a consumer would read the next event of `stream`: on a partition of the stream's
    own (so that any delivery order keeping each stream's order keeps each partition's, as
    Kafka does), at an offset past every one handed out before."""
    return Position(events_topic(service), zlib.crc32(stream.encode()), next(_offsets))


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
        position=position_of(stream, event.service),
        **({"id": event_id} if event_id else {}),
    )
