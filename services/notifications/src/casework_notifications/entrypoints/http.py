"""The notifications service's edge: the personal inbox (and its live stream), acknowledging
("I take responsibility"), "in contact with the client", reading; one alert; a site's
crisis board.

Thin: roles here, reach in the application (`Alerts`), answers from the read models.
Answers name cases by id only; every route that shows cases notes them for the audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from casework import audit
from casework.access import NotVisible, require_site
from casework.auth import Principal, require_roles
from casework.eventstore import Document
from casework.http import Problem
from casework.requests import Context

from casework_notifications.adapters.live import LiveHub
from casework_notifications.adapters.read_models import AlertBoard, Inbox
from casework_notifications.application.delivery import Deliveries
from casework_notifications.application.handlers import Alerts
from casework_notifications.domain.access import BOARD_READERS, INBOX_ROLES
from casework_notifications.domain.alert import Alert
from casework_notifications.domain.escalation import alert_of
from casework_notifications.settings import NotificationsSettings

router = APIRouter(tags=["notifications"])

Reader = Annotated[Principal, Depends(require_roles(*sorted(INBOX_ROLES)))]
BoardReader = Annotated[Principal, Depends(require_roles(*sorted(BOARD_READERS)))]
NotificationId = Annotated[
    str, Path(min_length=1, max_length=300, description="The notification id")
]
AlertId = Annotated[str, Path(min_length=1, max_length=200, description="The alert id")]
Site = Annotated[str, Path(min_length=1, max_length=64, description="The site code")]

RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such notification, or not one you may see"},
    409: {
        "model": Problem,
        "description": "Already acknowledged by someone else (`detail` says who), or closed",
    },
}


def _alerts(request: Request) -> Alerts:
    alerts: Alerts = request.app.state.alerts
    return alerts


def _inbox(request: Request) -> Inbox:
    inbox: Inbox = request.app.state.inbox
    return inbox


def _board(request: Request) -> AlertBoard:
    board: AlertBoard = request.app.state.board
    return board


AlertsApp = Annotated[Alerts, Depends(_alerts)]
InboxModel = Annotated[Inbox, Depends(_inbox)]
BoardModel = Annotated[AlertBoard, Depends(_board)]


class AlertOut(BaseModel):
    """An alert group's current episode as its recipients see it."""

    alert_id: str
    episode: int
    trigger: str
    case_id: str | None
    site: str
    urgency: str
    status: str = Field(description="open, acknowledged or closed")
    opened_at: datetime
    count: int = Field(description="How many times it fired in this episode")
    step: int = Field(description="The escalation step reached (0: the first level)")
    recipients: list[str]
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    in_contact: list[str]
    closed_at: datetime | None
    link: str


class InboxEntry(BaseModel):
    notification_id: str
    alert_id: str
    trigger: str
    urgency: str
    case_id: str | None
    site: str
    step: int
    sent_at: datetime
    read_at: datetime | None
    alert_status: str | None = Field(description="open, acknowledged or closed")
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    link: str


class InboxOut(BaseModel):
    entries: list[InboxEntry]
    unread: int = Field(description="Among the entries returned")
    unacknowledged: int = Field(description="Entries of open, unacknowledged alerts")


def _link(request: Request, case_id: str | None, alert_id: str) -> str:
    own: NotificationsSettings = request.app.state.notifications_settings
    base = own.public_url.rstrip("/")
    return f"{base}/alerts/{alert_id}"


def _alert_out(request: Request, alert: Alert) -> AlertOut:
    ep = alert.current
    assert ep is not None
    audit.note(request, case_id=ep.case_id)
    status = "closed" if not ep.open else "acknowledged" if ep.acknowledged_by else "open"
    return AlertOut(
        alert_id=alert.id,
        episode=ep.number,
        trigger=ep.trigger.value,
        case_id=ep.case_id,
        site=ep.site,
        urgency=ep.urgency.value,
        status=status,
        opened_at=ep.opened_at,
        count=ep.count,
        step=ep.step,
        recipients=sorted(ep.recipients),
        acknowledged_by=ep.acknowledged_by,
        acknowledged_at=ep.acknowledged_at,
        in_contact=[by for by, _ in ep.in_contact],
        closed_at=ep.closed_at,
        link=_link(request, ep.case_id, alert.id),
    )


async def inbox_of(
    request: Request, inbox: Inbox, board: AlertBoard, recipient: str, limit: int
) -> InboxOut:
    docs = await inbox.of(recipient, limit)
    alerts = await board.get_many(list({str(d["alert_id"]) for d in docs}))
    entries = [_entry(request, d, alerts.get(str(d["alert_id"]))) for d in docs]
    audit.note(request, case_ids=[e.case_id for e in entries if e.case_id])
    return InboxOut(
        entries=entries,
        unread=sum(1 for e in entries if e.read_at is None),
        unacknowledged=sum(1 for e in entries if e.alert_status == "open"),
    )


def _entry(request: Request, doc: Document, alert: Document | None) -> InboxEntry:
    current = alert is not None and alert.get("episode") == doc.get("episode")
    status = alert.get("status") if alert is not None and current else "closed"
    return InboxEntry(
        notification_id=str(doc["_id"]),
        alert_id=str(doc["alert_id"]),
        trigger=str(doc["trigger"]),
        urgency=str(doc["urgency"]),
        case_id=doc.get("case_id"),
        site=str(doc["site"]),
        step=int(doc["step"]),
        sent_at=doc["sent_at"],
        read_at=doc.get("read_at"),
        alert_status=status if alert is not None else None,
        acknowledged_by=alert.get("acknowledged_by") if alert and current else None,
        acknowledged_at=alert.get("acknowledged_at") if alert and current else None,
        link=_link(request, doc.get("case_id"), str(doc["alert_id"])),
    )


@router.get(
    "/inbox",
    summary="Your inbox",
    description=(
        "Your newest notifications (up to `limit`), each with its alert's status: open, "
        "acknowledged (by whom, when) or closed; unread and unacknowledged counts."
    ),
)
async def get_inbox(
    principal: Reader,
    inbox: InboxModel,
    board: BoardModel,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> InboxOut:
    return await inbox_of(request, inbox, board, principal.sub, limit)


@router.get(
    "/inbox/stream",
    summary="Your inbox, live (server-sent events)",
    description=(
        "`text/event-stream`: first your newest notifications, then each new one "
        "(`event: notification`) and each change of an alert you were notified of "
        "(`event: alert`) as it happens; a comment line every 15 s keeps the connection "
        "open. Entries are identified by `notification_id`: a client de-duplicates."
    ),
    response_class=StreamingResponse,
)
async def stream_inbox(
    principal: Reader, inbox: InboxModel, board: BoardModel, request: Request
) -> StreamingResponse:
    hub: LiveHub = request.app.state.hub
    own: NotificationsSettings = request.app.state.notifications_settings
    audit.note(request)
    return StreamingResponse(
        _events(request, hub, inbox, board, principal.sub, own.sse_resync_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _sse(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=_json_default)}\n\n".encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def _events(
    request: Request, hub: LiveHub, inbox: Inbox, board: AlertBoard, sub: str, resync_s: float
) -> AsyncIterator[bytes]:
    sent: set[str] = set()
    loop = asyncio.get_running_loop()
    async with hub.subscribe(sub) as queue:

        async def resync() -> AsyncIterator[bytes]:
            for doc in reversed(await inbox.of(sub, 50)):
                nid = str(doc["_id"])
                if nid not in sent:
                    sent.add(nid)
                    entry = {k: v for k, v in doc.items() if k != "_id"}
                    yield _sse("notification", {"notification_id": nid, **entry})

        async for chunk in resync():
            yield chunk
        next_resync = loop.time() + resync_s
        last_beat = loop.time()
        while not await request.is_disconnected():
            timeout = max(0.0, min(next_resync, last_beat + 15) - loop.time())
            message: dict[str, Any] | None = None
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(queue.get(), timeout)
            if message is not None:
                if message["kind"] == "notification":
                    nid = str(message["entry"]["notification_id"])
                    if nid in sent:
                        continue
                    sent.add(nid)
                    yield _sse("notification", message["entry"])
                else:
                    yield _sse("alert", message["alert"])
                continue
            now = loop.time()
            if now >= next_resync:
                async for chunk in resync():
                    yield chunk
                next_resync = now + resync_s
            if now >= last_beat + 15:
                last_beat = now
                yield b": keep-alive\n\n"


@router.post(
    "/notifications/{notification_id}/acknowledge",
    summary="Acknowledge: I take responsibility",
    description=(
        "Stops the alert's escalation for everyone, and every recipient sees who took it. "
        "Again by you: no change. 409 `AlertAlreadyAcknowledged` when someone else did "
        "(`detail` names them); 409 `AlertAlreadyClosed` once it is over."
    ),
    responses=RESPONSES,
)
async def acknowledge(
    notification_id: NotificationId,
    principal: Reader,
    alerts: AlertsApp,
    ctx: Context,
    request: Request,
) -> AlertOut:
    return _alert_out(request, await alerts.acknowledge(notification_id, principal, ctx))


@router.post(
    "/notifications/{notification_id}/in-contact",
    summary="Record: in contact with the client",
    description=(
        "You are in contact with the client about this alert; acknowledges it too when "
        "nobody has yet."
    ),
    responses=RESPONSES,
)
async def in_contact(
    notification_id: NotificationId,
    principal: Reader,
    alerts: AlertsApp,
    ctx: Context,
    request: Request,
) -> AlertOut:
    return _alert_out(request, await alerts.in_contact(notification_id, principal, ctx))


@router.post(
    "/notifications/{notification_id}/read",
    summary="Mark one of your notifications read",
    responses=RESPONSES,
)
async def mark_read(
    notification_id: NotificationId,
    principal: Reader,
    alerts: AlertsApp,
    ctx: Context,
    request: Request,
) -> AlertOut:
    return _alert_out(request, await alerts.read(notification_id, principal, ctx))


@router.get(
    "/alerts/{alert_id}",
    summary="One alert: its current episode",
    description="For its recipients, and the site's crisis workers, supervisors, managers.",
    responses=RESPONSES,
)
async def get_alert(
    alert_id: AlertId, principal: Reader, alerts: AlertsApp, request: Request
) -> AlertOut:
    return _alert_out(request, await alerts.visible(alert_id, principal))


@router.get(
    "/sites/{site}/crisis-board",
    summary="A site's open alerts: crises first",
    description=(
        "Open and acknowledged alerts of the site: when opened, the channels its recipients "
        "are notified on, the escalation steps reached and whom each notified, who "
        "acknowledged and how long it took, who is in contact (each delivery's outcome: "
        "`GET /notifications/{id}/deliveries`). "
        "Roles: crisis_worker, supervisor, site_manager (their sites), regional_admin."
    ),
    responses={403: {"model": Problem, "description": "Not a site you work at"}},
)
async def crisis_board(
    site: Site, principal: BoardReader, board: BoardModel, request: Request
) -> list[dict[str, Any]]:
    require_site(principal, site)
    docs = await board.open_of_site(site)
    docs.sort(key=lambda d: (d.get("trigger") != "crisis", d.get("opened_at")))
    audit.note(request, case_ids=[str(d["case_id"]) for d in docs if d.get("case_id")])
    return [{"alert_id": d.pop("_id"), **d} for d in docs]


@router.get(
    "/crisis-board",
    summary="Open alerts across the region: crises first",
    description=(
        "The site board's entries for every site you work at, each with its site: every "
        "site for a regional admin, your sites for a site manager, supervisor or crisis "
        "worker. Roles: crisis_worker, supervisor, site_manager, regional_admin."
    ),
    responses={403: {"model": Problem, "description": "Not a role that reads the board"}},
)
async def regional_crisis_board(
    principal: BoardReader, board: BoardModel, request: Request
) -> list[dict[str, Any]]:
    if principal.has_role("regional_admin"):
        docs = await board.open_everywhere()
    else:
        docs = [d for site in sorted(principal.sites) for d in await board.open_of_site(site)]
    docs.sort(key=lambda d: (d.get("trigger") != "crisis", d.get("opened_at"), d.get("site")))
    audit.note(request, case_ids=[str(d["case_id"]) for d in docs if d.get("case_id")])
    return [{"alert_id": d.pop("_id"), **d} for d in docs]


def _deliveries(request: Request) -> Deliveries:
    deliveries: Deliveries = request.app.state.deliveries
    return deliveries


DeliveriesApp = Annotated[Deliveries, Depends(_deliveries)]
Operator = Annotated[Principal, Depends(require_roles("ops", "regional_admin"))]
Admin = Annotated[Principal, Depends(require_roles("regional_admin"))]
EndpointId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get(
    "/notifications/{notification_id}/deliveries",
    summary="Every delivery attempt of one notification",
    description="Channel, target, attempt, outcome, HTTP status or error class, time.",
    responses=RESPONSES,
)
async def notification_deliveries(
    notification_id: NotificationId,
    principal: Reader,
    alerts: AlertsApp,
    deliveries: DeliveriesApp,
) -> list[dict[str, Any]]:
    await alerts.visible(alert_of(notification_id), principal)
    return [{"attempt_id": d.pop("_id"), **d} for d in await deliveries.log.of(notification_id)]


@router.get(
    "/delivery-health",
    summary="Delivery health per channel",
    description=(
        "Per channel: attempts by outcome, success rate, retries pending; disabled webhook "
        "endpoints and why. Roles: ops, regional_admin."
    ),
)
async def delivery_health(principal: Operator, deliveries: DeliveriesApp) -> dict[str, Any]:
    return await deliveries.log.health()


@router.post(
    "/webhooks/{endpoint_id}/deliveries/{notification_id}/replay",
    status_code=202,
    summary="Send one webhook delivery again",
    description="Schedules the delivery at once, with the same `webhook-id`. Role: regional_admin.",
    responses={404: {"model": Problem, "description": "No such endpoint or delivery"}},
)
async def replay_webhook(
    endpoint_id: EndpointId,
    notification_id: NotificationId,
    principal: Admin,
    deliveries: DeliveriesApp,
) -> dict[str, str]:
    key = await deliveries.replay(endpoint_id, notification_id)
    if key is None:
        raise NotVisible(f"no delivery of {notification_id} to {endpoint_id}")
    return {"scheduled": key}
