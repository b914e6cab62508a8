"""The composition root of the intake service."""

from __future__ import annotations

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownSites
from casework.eventstore import Repository
from casework.privacy.blind_index import BlindIndex
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_intake.adapters.client_index import ClientIndex
from casework_intake.adapters.intake_queue import IntakeQueue
from casework_intake.application.handlers import Intake
from casework_intake.application.policies import WhenReferralAcceptedRegisterClient
from casework_intake.domain.client import Client, ClientError
from casework_intake.domain.referral import IntakeError, Referral, UnknownCandidate, UnknownSite
from casework_intake.entrypoints import queue, referrals

PORT = 8001


def build(settings: Settings, clock: Clock | None = None) -> tuple[ServiceRuntime, Intake]:
    """The runtime and the application, wired but not started."""
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    sites = KnownSites(runtime.database)
    client_index = ClientIndex(runtime.database)
    intake_queue = IntakeQueue(runtime.database)
    match_index = BlindIndex(runtime.database["blind_index"], runtime.keys)
    runtime.on_start(match_index.ensure_indexes)
    intake = Intake(
        referrals=Repository(runtime.store, Referral, runtime.registry),
        clients=Repository(runtime.store, Client, runtime.registry),
        registry=client_index,
        queue=intake_queue,
        sites=sites,
        clock=runtime.clock,
        match_index=match_index,
        subjects=runtime.keys,
        reveal=runtime.opener,
    )
    runtime.consume(sites, client_index, intake_queue, WhenReferralAcceptedRegisterClient(intake))
    return runtime, intake


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The intake service's app (uvicorn factory)."""
    runtime, intake = build(settings or Settings.for_service("intake", PORT), clock)
    app = service_app(
        runtime,
        title="Casework intake",
        description=(
            "Referrals, duplicate-client checks, risk screening and the intake decision; the "
            "intake queue of each site.\n\n"
            "A referral's path: take it (`POST /referrals`), screen its risk "
            "(`POST /referrals/{id}/screening`), settle who it is about when duplicate "
            "candidates are listed (`POST /referrals/{id}/client-match`), then accept or "
            "decline it. Authorise with a bearer token (locally: `casework token --sub me "
            "--role intake_worker --site north`)."
        ),
        routers=[referrals.router, queue.router],
        error_status={IntakeError: 409, ClientError: 409, UnknownSite: 422, UnknownCandidate: 422},
    )
    app.state.intake = intake
    return app
