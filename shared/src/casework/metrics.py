"""Prometheus metrics of one service process (DESIGN §9).

A `Metrics` owns its own `CollectorRegistry`, built in bootstrap and passed to the parts that
record into it, so that several apps can live in one process (tests) without clashing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric family the platform exposes on `/metrics`."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "casework_http_requests_total",
            "HTTP requests handled, by route template, method and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "casework_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.events_appended = Counter(
            "casework_events_appended_total",
            "Domain events committed to the event store, by event type.",
            ["type"],
            registry=r,
        )
        self.commit_conflicts = Counter(
            "casework_commit_conflicts_total",
            "Appends refused because another writer committed to the stream first.",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "casework_outbox_backlog",
            "Committed events not yet published to Kafka (as last seen by the relay).",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "casework_outbox_oldest_age_seconds",
            "Age of the oldest unpublished commit (as last seen by the relay).",
            registry=r,
        )
        self.events_published = Counter(
            "casework_events_published_total",
            "Events the outbox relay published to Kafka.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "casework_consumer_lag_messages",
            "Messages behind the partition's end, per projection and partition.",
            ["projection", "topic", "partition"],
            registry=r,
        )
        self.projection_lag = Histogram(
            "casework_projection_lag_seconds",
            "Time from an event's occurrence to its application to a read model.",
            ["projection"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.events_projected = Counter(
            "casework_events_projected_total",
            "Events handled by a projection or policy, by outcome "
            "(applied, unchanged, skipped, dead_lettered, parked).",
            ["projection", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "casework_dead_letters_total",
            "Events sent to a dead-letter topic after their retries ran out.",
            ["projection"],
            registry=r,
        )
        self.parked_streams = Gauge(
            "casework_parked_streams",
            "Streams whose events wait behind a dead letter until an operator replays or "
            "discards it, per projection or policy.",
            ["projection"],
            registry=r,
        )
        self.transient_retries = Counter(
            "casework_transient_retries_total",
            "Retries of a projection or policy during an outage, by failing part "
            "(database, broker).",
            ["projection", "kind"],
            registry=r,
        )
        self.consumer_holdoffs = Counter(
            "casework_consumer_holdoffs_total",
            "Times a consumer handed its records back to the poll loop during a long outage.",
            ["projection"],
            registry=r,
        )
        self.deadlines_pending = Gauge(
            "casework_deadlines_pending",
            "Queued deadline entries (counted every few minutes, not per tick).",
            registry=r,
        )
        self.deadlines_overdue = Gauge(
            "casework_deadlines_overdue",
            "Deadlines found due by the scheduler's last look at the queue.",
            registry=r,
        )
        self.deadlines_failed = Counter(
            "casework_deadlines_failed_total",
            "Deadline handler failures (each backs off), by kind.",
            ["kind"],
            registry=r,
        )
        self.deadlines_unknown_kind = Counter(
            "casework_deadlines_unknown_kind_total",
            "Due deadlines of a kind this replica has no handler for (parked), by kind.",
            ["kind"],
            registry=r,
        )
        self.deadlines_lateness = Histogram(
            "casework_deadline_lateness_seconds",
            "Time from a deadline's due time to its firing.",
            buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
            registry=r,
        )
        self.deadlines_fired = Counter(
            "casework_deadlines_fired_total",
            "Deadlines fired by the scheduler, by kind.",
            ["kind"],
            registry=r,
        )
        self.db_commands = Counter(
            "casework_db_commands_total",
            "Database commands sent (insert, find, update, getMore, ...), by collection and "
            "command; the database work behind each request or event shows as their ratio.",
            ["collection", "command"],
            registry=r,
        )
        self.db_command_seconds = Counter(
            "casework_db_command_seconds_total",
            "Time database commands took as the driver saw it (send to reply), by collection "
            "and command.",
            ["collection", "command"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
