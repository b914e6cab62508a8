"""The composition root of the notifications service.

Its domain arrives in later issues; for now it runs the platform parts and keeps the local
copies of other services' data it will need.
"""

from __future__ import annotations

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownCases, KnownSites
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

PORT = 8005


def build(settings: Settings, clock: Clock | None = None) -> ServiceRuntime:
    """The runtime, wired but not started."""
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    runtime.consume(KnownSites(runtime.database), KnownCases(runtime.database))
    return runtime


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The notifications service's app (uvicorn factory)."""
    runtime = build(settings or Settings.for_service("notifications", PORT), clock)
    return service_app(
        runtime,
        title="Casework notifications",
        description=(
            "Crisis alerts, overdue work and approval requests routed to the right people."
        ),
        routers=[],
    )
