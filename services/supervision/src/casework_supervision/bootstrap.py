"""The composition root of the supervision service."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownRota, KnownSites, KnownStaff, KnownTeams
from casework.eventstore import Repository
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_supervision.application.directory import Directory
from casework_supervision.application.handlers import Supervision
from casework_supervision.domain.errors import (
    InvalidDirectoryEntry,
    NotInDirectory,
    SupervisionError,
)
from casework_supervision.domain.rota import Rota
from casework_supervision.domain.site import Site
from casework_supervision.domain.staff import StaffMember
from casework_supervision.domain.team import Team
from casework_supervision.entrypoints.directory import router as directory_router
from casework_supervision.entrypoints.http import router

PORT = 8004

ERROR_STATUS: Mapping[type[Exception], int] = {
    SupervisionError: 409,  # a rule refused the command: the detail says which
    NotInDirectory: 404,
    InvalidDirectoryEntry: 422,
}
"""Domain error → HTTP status; the most specific class in an error's ancestry wins."""


def build(
    settings: Settings, clock: Clock | None = None
) -> tuple[ServiceRuntime, Supervision, Directory]:
    """The runtime and the applications, wired but not started."""
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    known_sites = KnownSites(runtime.database)
    known_staff = KnownStaff(runtime.database)
    known_teams = KnownTeams(runtime.database)
    known_rota = KnownRota(runtime.database)
    runtime.consume(known_sites, known_staff, known_teams, known_rota)
    sites = Repository(runtime.store, Site, runtime.registry)
    supervision = Supervision(sites=sites, directory=known_sites, clock=runtime.clock)
    directory = Directory(
        sites=sites,
        teams=Repository(runtime.store, Team, runtime.registry),
        staff=Repository(runtime.store, StaffMember, runtime.registry),
        rotas=Repository(runtime.store, Rota, runtime.registry),
        known_staff=known_staff,
        known_teams=known_teams,
        known_rota=known_rota,
        clock=runtime.clock,
    )
    return runtime, supervision, directory


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The supervision service's app (uvicorn factory)."""
    runtime, supervision, directory = build(
        settings or Settings.for_service("supervision", PORT), clock
    )
    app = service_app(
        runtime,
        title="Casework supervision",
        description=(
            "Organisation directory (sites, teams, staff, who supervises whom and their "
            "delegates, the on-call rota), supervision sessions, reviews, approvals, action "
            "items."
        ),
        routers=[router, directory_router],
        error_status=ERROR_STATUS,
    )
    app.state.supervision = supervision
    app.state.directory = directory
    return app
