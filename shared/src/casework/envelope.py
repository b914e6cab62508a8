"""CloudEvents 1.0 envelope in the Kafka protocol binding, binary mode (DESIGN §3).

The record value is the JSON `data`; every attribute travels as a `ce_`-prefixed header, the
data content type as `content-type`. Extensions carry the stream version, site, correlation
and causation ids and W3C trace context; `traceparent` is also sent as a plain header so that
OpenTelemetry propagators on the consuming side pick it up.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]


class MalformedEnvelope(ValueError):
    """A Kafka record that is not a binary-mode CloudEvent this platform can read."""


@dataclass(frozen=True)
class Position:
    """Where a consumer read an event: its Kafka topic, partition and offset.

    Not part of the event (a rebuild or another topic puts it elsewhere): the consumer sets
    it on the envelope it hands to a projection, so that documents owned by one partition
    (`casework.counters`) can tell what that partition already applied.
    """

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Envelope:
    """One event with its CloudEvents attributes."""

    type: str
    source: str
    subject: str
    """The stream id of the aggregate the event belongs to (also the Kafka key)."""
    time: datetime
    data: Mapping[str, Any]
    stream_version: int
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    site: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    position: Position | None = field(default=None, compare=False)
    """Where the consumer read it (None outside a consumer, e.g. in the event store)."""

    @property
    def key(self) -> bytes:
        """The Kafka record key: all events of one stream land in one partition, in order."""
        return self.subject.encode()

    def value(self) -> bytes:
        """The Kafka record value: the event data as compact JSON."""
        return json.dumps(self.data, separators=(",", ":"), default=str).encode()

    def headers(self) -> Headers:
        """The Kafka record headers of binary mode."""
        pairs: list[tuple[str, str | None]] = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_time", self.time.isoformat()),
            ("ce_subject", self.subject),
            ("content-type", CONTENT_TYPE),
            ("ce_streamversion", str(self.stream_version)),
            ("ce_site", self.site),
            ("ce_correlationid", self.correlation_id),
            ("ce_causationid", self.causation_id),
            ("ce_traceparent", self.traceparent),
            ("ce_tracestate", self.tracestate),
            ("traceparent", self.traceparent),
            ("tracestate", self.tracestate),
        ]
        return [(k, v.encode()) for k, v in pairs if v is not None]

    @classmethod
    def from_kafka(
        cls, value: bytes | None, headers: Iterable[tuple[str, bytes | str]]
    ) -> Envelope:
        """Read a binary-mode record; raises `MalformedEnvelope` on anything else."""
        h = {k: v.decode() if isinstance(v, bytes) else v for k, v in headers}
        if h.get("ce_specversion") != SPEC_VERSION:
            raise MalformedEnvelope(f"not a CloudEvents {SPEC_VERSION} binary-mode record")
        missing = [
            k
            for k in ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "ce_streamversion")
            if k not in h
        ]
        if missing:
            raise MalformedEnvelope(f"missing headers: {', '.join(missing)}")
        try:
            data = json.loads(value) if value else {}
            time = datetime.fromisoformat(h["ce_time"])
            version = int(h["ce_streamversion"])
        except ValueError as exc:
            raise MalformedEnvelope(str(exc)) from exc
        if not isinstance(data, dict):
            raise MalformedEnvelope("the data of an event must be a JSON object")
        return cls(
            id=h["ce_id"],
            type=h["ce_type"],
            source=h["ce_source"],
            subject=h["ce_subject"],
            time=time,
            data=data,
            stream_version=version,
            site=h.get("ce_site"),
            correlation_id=h.get("ce_correlationid"),
            causation_id=h.get("ce_causationid"),
            traceparent=h.get("ce_traceparent") or h.get("traceparent"),
            tracestate=h.get("ce_tracestate") or h.get("tracestate"),
        )

    def to_document(self) -> dict[str, Any]:
        """The envelope as stored inside an event-store commit."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
            "data": dict(self.data),
            "version": self.stream_version,
            "site": self.site,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "traceparent": self.traceparent,
            "tracestate": self.tracestate,
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Envelope:
        """The inverse of `to_document`."""
        return cls(
            id=doc["id"],
            type=doc["type"],
            source=doc["source"],
            subject=doc["subject"],
            time=doc["time"],
            data=doc["data"],
            stream_version=doc["version"],
            site=doc.get("site"),
            correlation_id=doc.get("correlation_id"),
            causation_id=doc.get("causation_id"),
            traceparent=doc.get("traceparent"),
            tracestate=doc.get("tracestate"),
        )
