"""Where a crisis alert's time goes in the notifications process, as a histogram on
`/metrics`: `casework_notifications_crisis_stage_seconds{stage}`.

| stage            | from → to                                                            |
|------------------|----------------------------------------------------------------------|
| `received`       | the `CrisisDeclared` event's time → its handler starts (the cases    |
|                  | commit, the relay, Kafka, this consumer's poll)                      |
| `case_facts`     | the local copy of the case written                                   |
| `recipients`     | the first level's targets resolved (rota, directory copies)          |
| `alert_load`     | the alert read from the store (not when a new group is guessed)      |
| `alert_save`     | the alert's commit (its two inserts), the inline inbox included      |
| `inline_inbox`   | the inline inbox entries written and pushed on the live stream       |
| `after_save`     | the escalation deadline and the on-call watch kept                   |
| `handled`        | the handler, start to end                                            |
| `pushed`         | the event's time → the inline entries written and pushed            |

Only a crisis's own path is timed (the handler of `CrisisDeclared`): a stage run outside it
observes nothing. **Invariant:** timing never changes what the handler does, and carries no
client data (stage names only, no ids).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Histogram

BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.06,
    0.08,
    0.1,
    0.125,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.0,
    5.0,
)
"""Fine enough for a p50/p99 read off the buckets of a crisis path of some 100s of ms."""

_timed: contextvars.ContextVar[float | None] = contextvars.ContextVar("crisis_timed", default=None)
"""Within a crisis's handler: the event's time (epoch seconds); None elsewhere."""


class CrisisTiming:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.histogram = Histogram(
            "casework_notifications_crisis_stage_seconds",
            "Where a crisis alert's time goes in this process, by stage.",
            ["stage"],
            buckets=BUCKETS,
            registry=registry,
        )

    @contextlib.contextmanager
    def crisis(self, event_time: datetime) -> Iterator[None]:
        """Time the handler of one `CrisisDeclared` (declared at `event_time`)."""
        at = event_time if event_time.tzinfo else event_time.replace(tzinfo=UTC)
        since = at.timestamp()
        self.histogram.labels("received").observe(max(0.0, time.time() - since))
        token = _timed.set(since)
        started = time.perf_counter()
        try:
            yield
        finally:
            _timed.reset(token)
            self.histogram.labels("handled").observe(time.perf_counter() - started)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Observe the block as `name` when inside a crisis's handler; nothing otherwise."""
        if _timed.get() is None:
            yield
            return
        started = time.perf_counter()
        try:
            yield
        finally:
            self.histogram.labels(name).observe(time.perf_counter() - started)

    @contextlib.contextmanager
    def inline(self) -> Iterator[None]:
        """The inline inbox write of a commit (its entries pushed on the live stream);
        `pushed` is the event's time → its end."""
        with self.stage("inline_inbox"):
            yield
        since = _timed.get()
        if since is not None:
            self.histogram.labels("pushed").observe(max(0.0, time.time() - since))
