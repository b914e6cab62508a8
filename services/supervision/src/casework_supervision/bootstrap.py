"""The composition root of the supervision service."""

from __future__ import annotations

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownSites
from casework.eventstore import Repository
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_supervision.application.handlers import Supervision
from casework_supervision.domain.site import Site, SiteAlreadyRegistered, SupervisionError
from casework_supervision.entrypoints.http import router

PORT = 8004


def build(settings: Settings, clock: Clock | None = None) -> tuple[ServiceRuntime, Supervision]:
    """The runtime and the application, wired but not started."""
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    directory = KnownSites(runtime.database)
    runtime.consume(directory)
    supervision = Supervision(
        sites=Repository(runtime.store, Site, runtime.registry),
        directory=directory,
        clock=runtime.clock,
    )
    return runtime, supervision


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The supervision service's app (uvicorn factory)."""
    runtime, supervision = build(settings or Settings.for_service("supervision", PORT), clock)
    app = service_app(
        runtime,
        title="Casework supervision",
        description=(
            "Organisation directory, supervision sessions, reviews, approvals, action items."
        ),
        routers=[router],
        error_status={SupervisionError: 409, SiteAlreadyRegistered: 409},
    )
    app.state.supervision = supervision
    return app
