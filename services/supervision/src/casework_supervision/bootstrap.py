"""The composition root of the supervision service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.directory import KnownRota, KnownSites, KnownStaff, KnownTeams
from casework.eventstore import Repository
from casework.projections import ReadModel
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_supervision.adapters.approval_queue import ApprovalQueue
from casework_supervision.adapters.case_facts import CaseFactsStore
from casework_supervision.application.approval_policies import (
    WhenApprovalChangedKeepDeadline,
    WhenCaseChangedRequestApprovals,
    deadline_handlers,
)
from casework_supervision.application.approvals import Approvals, StaffDirectory
from casework_supervision.application.directory import Directory
from casework_supervision.application.handlers import Supervision
from casework_supervision.domain.approval import Approval
from casework_supervision.domain.caseload_policy import CaseloadPolicyRecord
from casework_supervision.domain.errors import (
    ApprovalError,
    InvalidDirectoryEntry,
    NotAnApprover,
    NotInDirectory,
    ReasonRequired,
    SelfApprovalNotAllowed,
    SupervisionError,
)
from casework_supervision.domain.rota import Rota
from casework_supervision.domain.site import Site
from casework_supervision.domain.staff import StaffMember
from casework_supervision.domain.team import Team
from casework_supervision.entrypoints import approvals as approval_routes
from casework_supervision.entrypoints.directory import router as directory_router
from casework_supervision.entrypoints.http import router
from casework_supervision.sessions_wiring import ERROR_STATUS as SESSION_ERRORS
from casework_supervision.sessions_wiring import ROUTERS as SESSION_ROUTERS
from casework_supervision.sessions_wiring import SessionsWiring, wire_sessions
from casework_supervision.settings import ApprovalSettings, SessionsSettings

PORT = 8004

ERROR_STATUS: Mapping[type[Exception], int] = {
    SupervisionError: 409,  # a rule refused the command: the detail says which
    NotInDirectory: 404,
    InvalidDirectoryEntry: 422,
    ApprovalError: 409,  # decided already: an approval never changes
    SelfApprovalNotAllowed: 403,  # four eyes
    NotAnApprover: 403,
    ReasonRequired: 422,
    **SESSION_ERRORS,
}
"""Domain error → HTTP status; the most specific class in an error's ancestry wins."""


class Wired(NamedTuple):
    """What `build` wires; the runtime first (`casework rebuild` takes `build(...)[0]`)."""

    runtime: ServiceRuntime
    supervision: Supervision
    directory: Directory
    approvals: Approvals
    sessions: SessionsWiring


def build(
    settings: Settings,
    clock: Clock | None = None,
    *,
    approval_settings: ApprovalSettings | None = None,
    staff: StaffDirectory | None = None,
    sessions_settings: SessionsSettings | None = None,
) -> Wired:
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
        caseload_policies=Repository(runtime.store, CaseloadPolicyRecord, runtime.registry),
    )
    # one copy of the case facts: written by the approvals policy, read by sessions too;
    # the approval queue: kept by approvals, read by the site view too
    case_facts = CaseFactsStore(runtime.database)
    queue = ApprovalQueue(runtime.database)
    approvals = _wire_approvals(
        runtime,
        known_sites,
        approval_settings or ApprovalSettings(),
        staff or known_staff,
        case_facts,
        queue,
    )
    sessions = wire_sessions(runtime, known_staff, case_facts, queue, sessions_settings)
    return Wired(runtime, supervision, directory, approvals, sessions)


def _wire_approvals(
    runtime: ServiceRuntime,
    sites: KnownSites,
    own: ApprovalSettings,
    staff: StaffDirectory,
    case_facts: CaseFactsStore,
    queue: ApprovalQueue,
) -> Approvals:
    """Approvals: the aggregate, the case facts and the policies, the queue, the deadline.
    Who decides comes from the directory's local copy (`staff`: `KnownStaff`, or a fake)."""
    approvals = Approvals(
        approvals=Repository(runtime.store, Approval, runtime.registry),
        staff=staff,
        queue=queue,
        sites=sites,
        clock=runtime.clock,
    )
    requesting = WhenCaseChangedRequestApprovals(case_facts, approvals, own.due_policy())
    runtime.embedded[case_facts.name] = (case_facts, requesting)
    runtime.consume(
        requesting,
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
    runtime, supervision, directory, approvals, sessions = build(
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
        routers=[router, directory_router, approval_routes.router, *SESSION_ROUTERS],
        error_status=ERROR_STATUS,
    )
    app.state.supervision = supervision
    app.state.directory = directory
    app.state.approvals = approvals
    sessions.install(app)
    return app
