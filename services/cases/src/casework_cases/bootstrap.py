"""The composition root of the cases service."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import (
    KnownCaseloadPolicy,
    KnownSites,
    KnownStaff,
    SupervisionReach,
)
from casework.eventstore import Repository
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_cases.adapters.assignments import Assignments
from casework_cases.adapters.read_models import ReadModels, build_read_models
from casework_cases.application.handlers import Cases
from casework_cases.application.policies import (
    WhenApprovalGrantedCarryItOut,
    WhenApprovalReturnedSendItBack,
    WhenReferralAcceptedOpenCase,
)
from casework_cases.domain.case import Case
from casework_cases.domain.errors import (
    CaseError,
    GoalNotInPlan,
    InpatientTimeInvalid,
    InvalidPlan,
    NoteNotFound,
    SelfApprovalNotAllowed,
    TransferToSameSite,
    UnknownSite,
)
from casework_cases.entrypoints import care, cases, http, plans, queries

PORT = 8002

ERROR_STATUS: Mapping[type[Exception], int] = {
    CaseError: 409,  # a rule of the procedure refused the command: the detail says what to do
    SelfApprovalNotAllowed: 403,  # four eyes: a permission, decided on the case's history
    GoalNotInPlan: 404,  # the goal in the path is not a goal of the approved plan
    InvalidPlan: 422,
    InpatientTimeInvalid: 422,
    NoteNotFound: 422,
    TransferToSameSite: 422,
    UnknownSite: 422,
}
"""Domain error → HTTP status; the most specific class in an error's ancestry wins."""


def build(
    settings: Settings, clock: Clock | None = None
) -> tuple[ServiceRuntime, Cases, ReadModels]:
    """The runtime, the application and the read models, wired but not started."""
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    sites = KnownSites(runtime.database)
    staff = KnownStaff(runtime.database)
    caseload_policy = KnownCaseloadPolicy(runtime.database)
    assignments = Assignments(runtime.database)
    cases_app = Cases(
        cases=Repository(runtime.store, Case, runtime.registry),
        sites=sites,
        caseloads=assignments,
        staff=staff,
        clock=runtime.clock,
        caseload_policy=caseload_policy,
    )
    read_models = build_read_models(runtime.database, runtime.clock)
    runtime.consume(
        WhenReferralAcceptedOpenCase(cases_app),
        WhenApprovalGrantedCarryItOut(cases_app),
        WhenApprovalReturnedSendItBack(cases_app),
        sites,
        staff,
        caseload_policy,
        assignments,
        *read_models.projections,
    )
    return runtime, cases_app, read_models


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The cases service's app (uvicorn factory)."""
    runtime, cases_app, read_models = build(settings or Settings.for_service("cases", PORT), clock)
    app = service_app(
        runtime,
        title="Casework cases",
        description=(
            "Cases from opening to closure: assessment, plan, risk, crisis, notes.\n\n"
            "Assessments, plans and closures are approved (or returned) in the supervision "
            "service (`/approvals`); the case acts on the decision when it arrives.\n\n"
            "A case moves assessment → planning → active → review → closed, and a closed case "
            "can be reopened. Every read returns the case's `version` (also its `ETag`); send "
            "it back as `If-Match` on a change to be told (412) when someone changed the case "
            "in between."
        ),
        routers=[http.router, cases.router, plans.router, *care.routers, queries.router],
        error_status=ERROR_STATUS,
    )
    app.state.cases = cases_app
    # a supervisor reaches the cases of whom they supervise per the directory, too
    known_staff = next(h for h in runtime.handlers if isinstance(h, KnownStaff))
    app.state.principal_reach = SupervisionReach(known_staff, runtime.clock)
    app.state.read_models = read_models
    return app
