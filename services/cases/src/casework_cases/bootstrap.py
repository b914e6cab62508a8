"""The composition root of the cases service."""

from __future__ import annotations

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.eventstore import Repository
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_cases.application.handlers import Cases
from casework_cases.application.policies import WhenReferralAcceptedOpenCase
from casework_cases.domain.case import Case, CaseError
from casework_cases.entrypoints.http import router

PORT = 8002


def build(settings: Settings, clock: Clock | None = None) -> tuple[ServiceRuntime, Cases]:
    """The runtime and the application, wired but not started."""
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    cases = Cases(cases=Repository(runtime.store, Case, runtime.registry), clock=runtime.clock)
    runtime.consume(WhenReferralAcceptedOpenCase(cases))
    return runtime, cases


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The cases service's app (uvicorn factory)."""
    runtime, cases = build(settings or Settings.for_service("cases", PORT), clock)
    app = service_app(
        runtime,
        title="Casework cases",
        description="Cases from opening to closure: assessment, plan, risk, crisis, notes.",
        routers=[router],
        error_status={CaseError: 409},
    )
    app.state.cases = cases
    return app
