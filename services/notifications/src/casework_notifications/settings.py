"""The notifications service's own settings (`CASEWORK_NOTIFICATIONS_*`), beside the
platform's."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from casework_notifications.domain.routing import Routing, default_routing, routing_over_defaults


class NotificationsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWORK_NOTIFICATIONS_", extra="ignore")

    routing_file: Path | None = Field(
        default=None,
        description="A JSON routing table (`domain.routing.RoutingTable`); none: the defaults.",
    )
    deadline_tick_s: float = Field(
        default=0.25, gt=0, description="Scheduler round period (escalations and deliveries)."
    )
    deadline_claim_ttl_s: float = Field(
        default=120.0, gt=0, description="After how long a replica's claim counts as dead."
    )
    public_url: str = Field(
        default="http://localhost:8005",
        description="Where links in e-mails and webhooks point (the reader opens them there).",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; none: no e-mail.")
    smtp_port: int = 25
    smtp_from: str = "casework-alerts@localhost"
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    webhooks_file: Path | None = Field(
        default=None,
        description="A JSON list of webhook endpoints (`adapters.webhooks.Endpoint`).",
    )
    webhook_allow: list[str] = Field(
        default_factory=list,
        description=(
            "Hosts or networks (CIDR) webhooks may be sent to besides public addresses; "
            "private, loopback and link-local addresses are refused unless listed."
        ),
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    sse_resync_s: float = Field(
        default=5.0, gt=0, description="How often a live stream re-reads the inbox."
    )

    quiet_hours_start: time = Field(default=time(21, 0), description="Local time.")
    quiet_hours_end: time = Field(default=time(7, 0), description="Local time.")
    default_timezone: str = Field(
        default="Europe/London", description="For staff whose profile and site name no timezone."
    )
    digest_hour: int = Field(default=8, ge=0, le=23, description="Local hour of digests.")

    def routing(self) -> Routing:
        """The routing from `routing_file` laid over the documented defaults (a trigger the
        file does not mention keeps its default rule), or the defaults; a bad table stops the
        service at start (the error names the field)."""
        if self.routing_file is None:
            return default_routing()
        return routing_over_defaults(json.loads(self.routing_file.read_text()))
