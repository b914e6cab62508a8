"""The append-only audit trail of access to client data (DESIGN §8).

Every request to a service's API — not the operational endpoints — leaves one record: who
(subject and roles), the action (method and route), the resource (the path with its ids),
the case when the path names one, the outcome (the status code), the time and the request id.
Records are only ever inserted; nothing in the platform updates or deletes them.

The middleware records when the response status is known and before the response is sent:
a refused request (401, 403, 404) is recorded as faithfully as an allowed one, and a client
never sees an answer whose record is not yet written. If the record cannot be written, the
response fails (500): access to client data is not served unaudited.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.auth import Principal
from casework.clock import Clock, SystemClock
from casework.eventstore import Document

log = logging.getLogger(__name__)

UNAUDITED_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/asyncapi",
        "/asyncapi.json",
    }
)


class AuditTrail:
    """Writes and reads a service's audit records."""

    def __init__(self, collection: AsyncCollection[Document], clock: Clock | None = None) -> None:
        self.records = collection
        self._clock = clock or SystemClock()

    async def ensure_indexes(self) -> None:
        await self.records.create_index([("case_id", ASCENDING), ("time", DESCENDING)])
        await self.records.create_index([("sub", ASCENDING), ("time", DESCENDING)])

    async def record(
        self,
        *,
        principal: Principal | None,
        action: str,
        resource: str,
        outcome: int,
        case_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """Append one record."""
        await self.records.insert_one(
            {
                "_id": str(uuid.uuid4()),
                "time": self._clock.now(),
                "sub": principal.sub if principal else None,
                "roles": sorted(principal.roles) if principal else [],
                "action": action,
                "resource": resource,
                "case_id": case_id,
                "outcome": outcome,
                "request_id": request_id,
            }
        )

    async def for_case(self, case_id: str, limit: int = 200) -> list[Document]:
        """The newest records about one case."""
        cursor = self.records.find({"case_id": case_id}).sort("time", DESCENDING).limit(limit)
        return [dict(d) async for d in cursor]


class AuditMiddleware:
    """Records every API request once its response status is known."""

    def __init__(self, app: ASGIApp, trail: AuditTrail) -> None:
        self.app = app
        self.trail = trail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        recorded = False

        async def send_after_recording(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start":
                # the request-id middleware has put the id on the response by now
                headers = dict(message.get("headers") or [])
                request_id = headers.get(b"x-request-id", b"").decode() or None
                await self._record(scope, message["status"], request_id)
                recorded = True
            await send(message)

        try:
            await self.app(scope, receive, send_after_recording)
        finally:
            if not recorded:  # the app failed before answering
                await self._record(scope, 500, None)

    async def _record(self, scope: Scope, status: int, request_id: str | None) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        principal = state.get("principal")
        route = scope.get("route")
        path_params: dict[str, Any] = scope.get("path_params") or {}
        try:
            await self.trail.record(
                principal=principal if isinstance(principal, Principal) else None,
                action=f"{scope['method']} {getattr(route, 'path', scope['path'])}",
                resource=scope["path"],
                case_id=path_params.get("case_id"),
                outcome=status,
                request_id=request_id,
            )
        except Exception:
            # The response has gone; losing the record must at least be loud.
            log.exception(
                "could not write the audit record of %s %s", scope["method"], scope["path"]
            )
