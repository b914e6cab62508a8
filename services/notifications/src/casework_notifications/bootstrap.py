"""The composition root of the notifications service."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import NamedTuple

from fastapi import FastAPI

from casework.clock import Clock
from casework.contracts import registry
from casework.contracts.notifications import NotificationSent
from casework.deadlines import DeadlineScheduler
from casework.directory import KnownCases, KnownRota, KnownSites, KnownStaff
from casework.envelope import Envelope
from casework.events import DomainEvent
from casework.eventstore import Repository
from casework.projections import EventHandler
from casework.runtime import ServiceRuntime
from casework.service import service_app, telemetry_middlewares
from casework.settings import Settings

from casework_notifications.adapters.case_facts import CaseFactsStore
from casework_notifications.adapters.email import SmtpMailer
from casework_notifications.adapters.live import LiveHub
from casework_notifications.adapters.on_call_watch import OnCallWatch
from casework_notifications.adapters.read_models import AlertBoard, Inbox
from casework_notifications.adapters.webhook_endpoints import EndpointStore
from casework_notifications.adapters.webhooks import AllowList, Endpoint, WebhookSender
from casework_notifications.application.delivery import (
    DIGEST,
    EMAIL,
    WEBHOOK,
    Deliveries,
    DeliveryLog,
    WhenNotificationSentDeliver,
)
from casework_notifications.application.handlers import ESCALATION, SHIFT_START, Alerts
from casework_notifications.application.policies import (
    WhenCaseChangedRaiseAlerts,
    WhenOnCallShiftBringIn,
    WhenReferralScreenedRaiseAlerts,
    WhenSupervisionWorkWaitsRaiseAlerts,
    WhenWorkOverdueRaiseAlerts,
)
from casework_notifications.application.ports import Rota, StaffDirectory
from casework_notifications.application.recipients import RecipientResolver
from casework_notifications.application.timing import CrisisTiming
from casework_notifications.application.webhook_endpoints import WebhookEndpoints
from casework_notifications.domain.alert import Alert
from casework_notifications.domain.errors import (
    AlertError,
    EndpointNotRegistered,
    InvalidEndpoint,
    WebhookEndpointError,
)
from casework_notifications.domain.quiet_hours import QuietHours
from casework_notifications.entrypoints import http, webhook_endpoints
from casework_notifications.settings import NotificationsSettings

PORT = 8005

ERROR_STATUS: Mapping[type[Exception], int] = {
    AlertError: 409,
    WebhookEndpointError: 409,
    EndpointNotRegistered: 404,
    InvalidEndpoint: 422,
}


class Wired(NamedTuple):
    """What `build` wires; the runtime first, as every service's `build` returns it."""

    runtime: ServiceRuntime
    alerts: Alerts
    inbox: Inbox
    board: AlertBoard
    hub: LiveHub
    deliveries: Deliveries
    settings: NotificationsSettings
    endpoints: WebhookEndpoints


def build(
    settings: Settings,
    clock: Clock | None = None,
    own: NotificationsSettings | None = None,
    *,
    staff: StaffDirectory | None = None,
    rota: Rota | None = None,
) -> Wired:
    """The runtime and the application, wired but not started. `staff` and `rota` replace
    the directory projections (unit and integration tests pass fakes)."""
    own = own or NotificationsSettings()
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
    # the directory's local copies, kept in this service's own database; tests may replace
    # the readers (the projections are consumed all the same)
    known_staff, known_rota = KnownStaff(runtime.database), KnownRota(runtime.database)
    known_sites = KnownSites(runtime.database)
    consumed: list[EventHandler] = [
        known_sites,
        KnownCases(runtime.database),
        known_staff,
        known_rota,
    ]
    staff = staff or known_staff
    rota = rota or known_rota
    hub = LiveHub()
    facts = CaseFactsStore(runtime.database)
    watch = OnCallWatch(runtime.database)
    heard = KnownRota(runtime.database, "on_call_heard")  # the shift policy's own copy
    runtime.on_start(watch.ensure_indexes)
    alerts = Alerts(
        alerts=Repository(runtime.store, Alert, runtime.registry),
        routing=own.routing(),
        recipients=RecipientResolver(staff, rota),
        deadlines=runtime.deadlines,
        clock=runtime.clock,
        watch=watch,
        heard=heard,
        timing=CrisisTiming(runtime.metrics.registry),
    )
    inbox = Inbox(runtime.database, hub=hub)

    apply_entry = inbox.handle  # the method as built (tests replace the consumer's, not this)

    async def inline_inbox(envelope: Envelope, event: DomainEvent) -> bool:
        with alerts.timing.inline():
            return await apply_entry(envelope, event)

    # a notification's entry is readable (and pushed live) when the alert is saved, a Kafka
    # round trip before the inbox's consumer gets it (it then finds it stored)
    runtime.store.apply_inline(inline_inbox, NotificationSent)
    board = AlertBoard(runtime.database, hub=hub)
    allow = AllowList.of(own.webhook_allow)
    delivery_log = DeliveryLog(runtime.database)
    endpoint_store = EndpointStore(runtime.database, runtime.keys.kek)
    runtime.on_start(endpoint_store.ensure_indexes)
    endpoints = WebhookEndpoints(
        endpoint_store, _endpoints(own), allow, delivery_log, runtime.clock, known_sites
    )
    deliveries = Deliveries(
        deadlines=runtime.deadlines,
        staff=staff,
        sites=known_sites,
        log_=delivery_log,
        clock=runtime.clock,
        public_url=own.public_url,
        mailer=(
            SmtpMailer(own.smtp_host, own.smtp_port, own.smtp_from, own.smtp_timeout_s)
            if own.smtp_host
            else None
        ),
        webhooks=WebhookSender(allow, own.webhook_timeout_s),
        endpoints=endpoints,
        routing=alerts.routing,
        inbox=inbox,
        cases=facts,
        alerts=board,
        quiet=QuietHours(own.quiet_hours_start, own.quiet_hours_end),
        default_timezone=own.default_timezone,
        digest_hour=own.digest_hour,
        registry=runtime.metrics.registry,
    )
    runtime.consume(
        *consumed,
        WhenCaseChangedRaiseAlerts(facts, alerts),
        WhenWorkOverdueRaiseAlerts(facts, alerts),
        WhenReferralScreenedRaiseAlerts(alerts),
        WhenSupervisionWorkWaitsRaiseAlerts(facts, staff, alerts),
        WhenOnCallShiftBringIn(alerts, heard, runtime.clock),
        WhenNotificationSentDeliver(deliveries),
        inbox,
        board,
    )
    runtime.scheduler.on(ESCALATION, alerts.on_escalation_due)
    runtime.scheduler.on(SHIFT_START, alerts.on_shift_start)
    runtime.scheduler.on(EMAIL, deliveries.on_email_due)
    runtime.scheduler.on(WEBHOOK, deliveries.on_webhook_due)
    runtime.scheduler.on(DIGEST, deliveries.on_digest_due)
    return Wired(runtime, alerts, inbox, board, hub, deliveries, own, endpoints)


def _endpoints(own: NotificationsSettings) -> list[Endpoint]:
    """The webhook endpoints of `webhooks_file` (a JSON list); a bad file stops the start.
    Those registered over the API are added to them (`WebhookEndpoints`)."""
    if own.webhooks_file is None:
        return []
    return [Endpoint.model_validate(e) for e in json.loads(own.webhooks_file.read_text())]


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The notifications service's app (uvicorn factory)."""
    wired = build(settings or Settings.for_service("notifications", PORT), clock)
    return app_of(wired)


def app_of(wired: Wired) -> FastAPI:
    app = service_app(
        wired.runtime,
        title="Casework notifications",
        description=(
            "Crisis alerts routed to the assigned worker and the on-call crisis worker, "
            "escalated on durable deadlines until someone acknowledges; overdue work and "
            "approval notices; the personal inbox and its live stream; e-mail and signed "
            "webhooks."
        ),
        routers=[http.router, webhook_endpoints.router],
        error_status=ERROR_STATUS,
    )
    app.state.alerts = wired.alerts
    app.state.inbox = wired.inbox
    app.state.board = wired.board
    app.state.hub = wired.hub
    app.state.deliveries = wired.deliveries
    app.state.notifications_settings = wired.settings
    app.state.webhook_endpoints = wired.endpoints
    return app
