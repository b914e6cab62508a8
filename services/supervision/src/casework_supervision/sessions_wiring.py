"""Wiring of supervision sessions, cadences, action items, concerns and the boards into the
supervision service (called by `bootstrap`, kept apart so that the directory, approvals and
sessions work merge into one service without touching each other's wiring)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from casework.directory import CaseloadPolicy
from casework.eventstore import Repository
from casework.projections import ReadModel
from casework.runtime import ServiceRuntime

from casework_supervision.adapters.approval_queue import ApprovalQueue
from casework_supervision.adapters.board import BoardQueries
from casework_supervision.adapters.case_facts import CaseFactsStore
from casework_supervision.adapters.contact_facts import ContactObligations
from casework_supervision.adapters.session_read_models import (
    ActionItems,
    CadenceView,
    Concerns,
    SupervisionSessions,
)
from casework_supervision.application.session_policies import (
    WhenCadenceChangedKeepDeadlines,
    WhenCaseChangedTrackReviewCadence,
    WhenStaffOrSessionChangedTrackCadences,
    deadline_handlers,
)
from casework_supervision.application.sessions import Sessions, StaffDirectory
from casework_supervision.domain.action_item import ActionItem
from casework_supervision.domain.cadence import CaseReviewCadence, SupervisionCadence
from casework_supervision.domain.caseload_policy import AGENCY, CaseloadPolicyRecord
from casework_supervision.domain.concern import Concern
from casework_supervision.domain.errors import InvalidSessionRequest, SessionError
from casework_supervision.domain.session import SupervisionSession
from casework_supervision.entrypoints import board as board_routes
from casework_supervision.entrypoints import sessions as session_routes
from casework_supervision.settings import SessionsSettings

ROUTERS: tuple[APIRouter, ...] = (session_routes.router, board_routes.router)
ERROR_STATUS: Mapping[type[Exception], int] = {SessionError: 409, InvalidSessionRequest: 422}


@dataclass
class SessionsWiring:
    sessions: Sessions
    board: BoardQueries
    session_list: SupervisionSessions
    action_items: ActionItems
    concerns: Concerns
    cadence: CadenceView

    def install(self, app: FastAPI) -> None:
        """Put what the routes read on the app's state."""
        app.state.sessions = self.sessions
        app.state.board = self.board
        app.state.session_list = self.session_list
        app.state.action_items = self.action_items
        app.state.concerns = self.concerns


def wire_sessions(
    runtime: ServiceRuntime,
    staff: StaffDirectory,
    caseload: CaseFactsStore,
    approval_queue: ApprovalQueue,
    settings: SessionsSettings | None = None,
) -> SessionsWiring:
    """The sessions application, its projections, policies and deadline handlers, registered
    on `runtime` (not started). `staff` is the directory's local copy (`KnownStaff`);
    `caseload` the service's one copy of the case facts, which the approvals policy writes
    and sessions only read; `approval_queue` the approvals' read model (registered by the
    approvals' wiring), which the agenda, the board and the site view read."""
    own = settings or SessionsSettings()
    policy = own.policy()
    db = runtime.database
    obligations = ContactObligations(db)
    session_list = SupervisionSessions(db)
    action_items = ActionItems(db)
    cadence = CadenceView(db)
    concerns = Concerns(db)
    sessions = Sessions(
        sessions=Repository(runtime.store, SupervisionSession, runtime.registry),
        actions=Repository(runtime.store, ActionItem, runtime.registry),
        concerns=Repository(runtime.store, Concern, runtime.registry),
        supervision_cadences=Repository(runtime.store, SupervisionCadence, runtime.registry),
        review_cadences=Repository(runtime.store, CaseReviewCadence, runtime.registry),
        staff=staff,
        caseload=caseload,
        obligations=obligations,
        cadence_view=cadence,
        approvals=approval_queue,
        action_items=action_items,
        policy=policy,
        clock=runtime.clock,
        review_window=own.review_window,
    )
    runtime.consume(
        obligations,
        session_list,
        action_items,
        cadence,
        concerns,
        WhenCaseChangedTrackReviewCadence(sessions),
        WhenStaffOrSessionChangedTrackCadences(sessions, policy),
        WhenCadenceChangedKeepDeadlines(
            runtime.deadlines, ReadModel(db["session_deadline_plans"]), policy
        ),
    )
    for kind, handler in deadline_handlers(sessions).items():
        runtime.scheduler.on(kind, handler)
    policies = Repository(runtime.store, CaseloadPolicyRecord, runtime.registry)

    async def caseload_policy() -> CaseloadPolicy:
        record = await policies.find(AGENCY)
        return (record or policies.new(AGENCY)).policy()

    board = BoardQueries(
        caseload_policy=caseload_policy,
        staff=staff,
        caseload=caseload,
        obligations=obligations,
        cadence=cadence,
        approvals=approval_queue,
        action_items=action_items,
        sessions=session_list,
        concerns=concerns,
        clock=runtime.clock,
        review_window=own.review_window,
        ratio_target=(own.ratio_target_min, own.ratio_target_max),
    )
    return SessionsWiring(sessions, board, session_list, action_items, concerns, cadence)
