"""The composition root of the intake service."""

from __future__ import annotations

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownSites
from casework.eventstore import Repository
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_intake.application.handlers import Intake
from casework_intake.domain.referral import IntakeError, Referral, UnknownSite
from casework_intake.entrypoints.http import router

PORT = 8001


def build(settings: Settings, clock: Clock | None = None) -> tuple[ServiceRuntime, Intake]:
    """The runtime and the application, wired but not started."""
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    sites = KnownSites(runtime.database)
    runtime.consume(sites)
    referrals = Repository(runtime.store, Referral, runtime.registry)
    return runtime, Intake(referrals=referrals, sites=sites, clock=runtime.clock)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The intake service's app (uvicorn factory)."""
    runtime, intake = build(settings or Settings.for_service("intake", PORT), clock)
    app = service_app(
        runtime,
        title="Casework intake",
        description="Referrals, risk screening and the intake decision.",
        routers=[router],
        error_status={IntakeError: 409, UnknownSite: 422},
    )
    app.state.intake = intake
    return app
