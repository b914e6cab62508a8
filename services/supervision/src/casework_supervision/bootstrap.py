"""The composition root of the supervision service."""

from __future__ import annotations

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownSites
from casework.eventstore import Repository
from casework.projections import ReadModel
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_supervision.adapters.approval_queue import ApprovalQueue
from casework_supervision.adapters.case_facts import CaseFactsStore
from casework_supervision.adapters.empty_directory import EmptyStaffDirectory
from casework_supervision.application.approval_policies import (
    WhenApprovalChangedKeepDeadline,
    WhenCaseChangedRequestApprovals,
    deadline_handlers,
)
from casework_supervision.application.approvals import Approvals, StaffDirectory
from casework_supervision.application.handlers import Supervision
from casework_supervision.approval_settings import ApprovalSettings
from casework_supervision.domain.approval import Approval
from casework_supervision.domain.approval_errors import (
    ApprovalError,
    NotAnApprover,
    ReasonRequired,
    SelfApprovalNotAllowed,
)
from casework_supervision.domain.site import Site, SiteAlreadyRegistered, SupervisionError
from casework_supervision.entrypoints import approvals as approval_routes
from casework_supervision.entrypoints.http import router

PORT = 8004


def build(
    settings: Settings,
    clock: Clock | None = None,
    *,
    approval_settings: ApprovalSettings | None = None,
    staff: StaffDirectory | None = None,
) -> tuple[ServiceRuntime, Supervision, Approvals]:
    """The runtime and the applications, wired but not started."""
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
    approvals = _wire_approvals(runtime, directory, approval_settings or ApprovalSettings(), staff)
    return runtime, supervision, approvals


def _wire_approvals(
    runtime: ServiceRuntime,
    sites: KnownSites,
    own: ApprovalSettings,
    staff: StaffDirectory | None,
) -> Approvals:
    """Approvals: the aggregate, the case facts and the policies, the queue, the deadline."""
    queue = ApprovalQueue(runtime.database)
    approvals = Approvals(
        approvals=Repository(runtime.store, Approval, runtime.registry),
        staff=staff or EmptyStaffDirectory(),
        queue=queue,
        sites=sites,
        clock=runtime.clock,
    )
    runtime.consume(
        WhenCaseChangedRequestApprovals(
            CaseFactsStore(runtime.database), approvals, own.due_policy()
        ),
        WhenApprovalChangedKeepDeadline(
            runtime.deadlines, ReadModel(runtime.database["approval_deadline_plans"])
        ),
        queue,
    )
    for kind, handler in deadline_handlers(approvals).items():
        runtime.scheduler.on(kind, handler)
    return approvals


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The supervision service's app (uvicorn factory)."""
    runtime, supervision, approvals = build(
        settings or Settings.for_service("supervision", PORT), clock
    )
    app = service_app(
        runtime,
        title="Casework supervision",
        description=(
            "Organisation directory, supervision sessions, reviews, approvals, action items."
        ),
        routers=[router, approval_routes.router],
        error_status={
            SupervisionError: 409,
            SiteAlreadyRegistered: 409,
            ApprovalError: 409,
            SelfApprovalNotAllowed: 403,
            NotAnApprover: 403,
            ReasonRequired: 422,
        },
    )
    app.state.supervision = supervision
    app.state.approvals = approvals
    return app
