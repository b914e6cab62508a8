"""The composition root of the intake service."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownSites
from casework.eventstore import Repository
from casework.privacy.blind_index import BlindIndex
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_intake.adapters.client_cases import ClientCases
from casework_intake.adapters.client_index import ClientIndex
from casework_intake.adapters.erasure_proofs import ErasureProofs
from casework_intake.adapters.intake_queue import IntakeQueue
from casework_intake.application.data_protection import (
    RETENTION,
    DataProtection,
    RetentionSchedule,
)
from casework_intake.application.handlers import Intake
from casework_intake.application.policies import (
    WhenErasureDecidedCarryOut,
    WhenReferralAcceptedRegisterClient,
)
from casework_intake.domain.client import Client
from casework_intake.domain.erasure import Erasure
from casework_intake.domain.errors import (
    ClientError,
    ErasureError,
    IntakeError,
    UnknownCandidate,
    UnknownErasure,
    UnknownHold,
    UnknownSite,
)
from casework_intake.domain.referral import Referral
from casework_intake.domain.retention import RetentionRules
from casework_intake.entrypoints import data_protection, queue, referrals
from casework_intake.settings import DataProtectionSettings

PORT = 8001


@dataclass(frozen=True)
class Applications:
    intake: Intake
    data_protection: DataProtection
    retention: RetentionSchedule


def build(
    settings: Settings,
    clock: Clock | None = None,
    *,
    retention_rules: RetentionRules | None = None,
) -> tuple[ServiceRuntime, Applications]:
    """The runtime and the applications, wired but not started. Retention rules: these, or
    `CASEWORK_RETENTION_RULES`, or the defaults."""
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
    client_cases = ClientCases(runtime.database)
    proofs = ErasureProofs(runtime.database)
    protection = DataProtection(
        erasures=Repository(runtime.store, Erasure, runtime.registry),
        clients=intake.clients,
        cases=client_cases,
        keys=runtime.keys,
        blind_index=match_index,
        proofs=proofs,
        clock=runtime.clock,
    )
    rules = retention_rules or RetentionRules.from_json(DataProtectionSettings().retention_rules)
    retention = RetentionSchedule(rules, runtime.deadlines, client_cases, protection, runtime.clock)
    client_cases.on_change = retention.case_changed
    runtime.scheduler.on(RETENTION, retention.fire)
    runtime.consume(
        sites,
        client_index,
        intake_queue,
        WhenReferralAcceptedRegisterClient(intake),
        client_cases,
        proofs,
        WhenErasureDecidedCarryOut(protection),
    )
    return runtime, Applications(intake, protection, retention)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The intake service's app (uvicorn factory)."""
    runtime, apps = build(settings or Settings.for_service("intake", PORT), clock)
    app = service_app(
        runtime,
        title="Casework intake",
        description=(
            "Referrals, duplicate-client checks, risk screening and the intake decision; the "
            "intake queue of each site.\n\n"
            "A referral's path: take it (`POST /referrals`), screen its risk "
            "(`POST /referrals/{id}/screening`), settle who it is about when duplicate "
            "candidates are listed (`POST /referrals/{id}/client-match`), then accept or "
            "decline it.\n\n"
            "Data protection (role `dpo`): legal holds on a client's records "
            "(`POST /clients/{id}/holds`), erasure of a client (`POST /clients/{id}/erasure`, "
            "refused while a hold or an open case stands) and its proof records "
            "(`GET /erasures`). Authorise with a bearer token (locally: `casework token --sub "
            "me --role intake_worker --site north`)."
        ),
        routers=[referrals.router, queue.router, data_protection.router],
        error_status={
            IntakeError: 409,
            ClientError: 409,
            UnknownSite: 422,
            UnknownCandidate: 422,
            ErasureError: 409,
            UnknownHold: 404,
            UnknownErasure: 404,
        },
    )
    app.state.intake = apps.intake
    app.state.data_protection = apps.data_protection
    return app
