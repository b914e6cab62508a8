"""The composition root of the contacts service."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import NamedTuple

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.deadlines import DeadlineScheduler
from casework.directory import KnownStaff, SupervisionReach
from casework.eventstore import Repository
from casework.projections import ReadModel
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_contacts.adapters.case_facts import CaseFactsStore
from casework_contacts.adapters.queries import ContactQueries
from casework_contacts.adapters.read_models import (
    ContactHistory,
    ObligationsView,
    OpenObligations,
)
from casework_contacts.application.handlers import Contacts
from casework_contacts.application.policies import (
    WhenCaseChangedReplanObligations,
    WhenContactLoggedCountIt,
    WhenObligationChangedKeepDeadlines,
    deadline_handlers,
)
from casework_contacts.domain.contact import Contact
from casework_contacts.domain.errors import ContactError, InvalidContact
from casework_contacts.domain.obligations import CaseObligations
from casework_contacts.entrypoints import http, queries
from casework_contacts.settings import ContactsSettings

PORT = 8003

ERROR_STATUS: Mapping[type[Exception], int] = {
    ContactError: 409,  # a rule of the record refused the command: the detail says what to do
    InvalidContact: 422,
}
"""Domain error → HTTP status; the most specific class in an error's ancestry wins."""


class Wired(NamedTuple):
    """What `build` wires; the runtime first, as every service's `build` returns it (the
    `casework rebuild` command and the tests take `build(...)[0]`)."""

    runtime: ServiceRuntime
    contacts: Contacts
    queries: ContactQueries


def build(
    settings: Settings,
    clock: Clock | None = None,
    contacts_settings: ContactsSettings | None = None,
) -> Wired:
    """The runtime, the application and the queries, wired but not started."""
    own = contacts_settings or ContactsSettings()
    runtime = ServiceRuntime.build(
        settings, registry(), clock=clock, broker_middlewares=telemetry_middlewares(settings)
    )
    runtime.scheduler = DeadlineScheduler(
        runtime.deadlines,
        clock=runtime.clock,
        metrics=runtime.metrics,
        tick=own.deadline_tick_s,
        claim_ttl=timedelta(seconds=own.deadline_claim_ttl_s),
    )
    policy = own.policy()
    facts = CaseFactsStore(runtime.database)
    contacts = Contacts(
        contacts=Repository(runtime.store, Contact, runtime.registry),
        obligations=Repository(runtime.store, CaseObligations, runtime.registry),
        cases=facts,
        policy=policy,
        clock=runtime.clock,
        lone_worker_grace=own.lone_worker_grace,
    )
    known_staff = KnownStaff(runtime.database)
    history = ContactHistory(runtime.database)
    obligations_view = ObligationsView(runtime.database)
    open_obligations = OpenObligations(runtime.database)
    runtime.consume(
        WhenCaseChangedReplanObligations(facts, contacts),
        WhenContactLoggedCountIt(contacts),
        WhenObligationChangedKeepDeadlines(
            runtime.deadlines,
            ReadModel(runtime.database["deadline_plans"]),
            due_soon_lead=own.due_soon_lead,
        ),
        history,
        obligations_view,
        open_obligations,
        known_staff,
    )
    for kind, handler in deadline_handlers(contacts).items():
        runtime.scheduler.on(kind, handler)
    read = ContactQueries(facts, history, obligations_view, open_obligations, policy, runtime.clock)
    return Wired(runtime, contacts, read)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The contacts service's app (uvicorn factory)."""
    wired = build(settings or Settings.for_service("contacts", PORT), clock)
    app = service_app(
        wired.runtime,
        title="Casework contacts",
        description=(
            "Contacts and home visits, scheduled and logged (made, or attempted with the "
            "reason), missed, cancelled and corrected; the lone worker's check-in and "
            "check-out; the contact policy by risk, its obligations and their deadlines; "
            "workers' and teams' agendas, a case's contact history and compliance."
        ),
        routers=[http.router, queries.router],
        error_status=ERROR_STATUS,
    )
    app.state.contacts = wired.contacts
    # a supervisor reaches the cases of whom they supervise per the directory, too
    known_staff = next(h for h in wired.runtime.handlers if isinstance(h, KnownStaff))
    app.state.principal_reach = SupervisionReach(known_staff, wired.runtime.clock)
    app.state.contact_queries = wired.queries
    return app
