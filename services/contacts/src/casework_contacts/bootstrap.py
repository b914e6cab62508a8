"""The composition root of the contacts service.

Its domain arrives in later issues; for now it runs the platform parts and keeps the local
copies of other services' data it will need.
"""

from __future__ import annotations

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownCases
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

PORT = 8003


def build(settings: Settings, clock: Clock | None = None) -> ServiceRuntime:
    """The runtime, wired but not started."""
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    runtime.consume(KnownCases(runtime.database))
    return runtime


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The contacts service's app (uvicorn factory)."""
    runtime = build(settings or Settings.for_service("contacts", PORT), clock)
    return service_app(
        runtime,
        title="Casework contacts",
        description=(
            "Contacts and home visits, scheduled and logged, with the contact policy by risk."
        ),
        routers=[],
    )
