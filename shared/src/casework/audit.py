"""The append-only audit trail of access to client data (DESIGN §8).

Every request to a service's API — not the operational endpoints — leaves one record: who
(subject and roles), the action (method and route), the resource (the path with its ids),
the query string, the case when the path names one, the subject of the request and the ids
of the clients, cases and referrals a read showed (`note`), the outcome (the status code),
the time and the request id. Records are only ever inserted; nothing in the platform updates
or deletes them.

Invariant (fail closed): a response leaves the service only after its record is written.
The middleware records when the response status is known and before a byte of the response
is sent: a refused request (401, 403, 404, 422) is recorded as faithfully as an allowed one.
If the record cannot be written, the response is replaced by a 503 problem document with
`Retry-After`, and the original answer — client data included — is never sent. A command
whose events were stored before its record failed stays stored (the record is written after
the route ran, so that it can name what was shown); the client sees 503, re-reads and finds
the change, as after any lost response.

Values a request could smuggle into the trail are cleaned first: control characters and
lone surrogates in the path and query string become U+FFFD (the input guard refuses such a
request with 422, and its record is still written, without the bad value).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.auth import Principal
from casework.clock import Clock, SystemClock
from casework.eventstore import Document
from casework.http import has_forbidden_characters, problem_response, without_forbidden_characters

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


_NOTE_STATE: Final = "audit_note"
_MAX_TEXT: Final = 2000
_MAX_IDS: Final = 1000
# Path parameters that name what a request is about.
_SUBJECT_PARAMS: Final = ("case_id", "referral_id", "client_id", "worker_id", "site")


def note(
    request: Request,
    *,
    referral_id: str | None = None,
    client_id: str | None = None,
    case_id: str | None = None,
    case_ids: Iterable[str] = (),
    client_ids: Iterable[str] = (),
    referral_ids: Iterable[str] = (),
) -> None:
    """Add to this request's audit record what it was about and which records it showed.

    Routes call it with what only they know: the referral a new referral got, the client a
    referral is about, the cases and clients a list showed. Called again, it adds.
    """
    state = request.scope.setdefault("state", {})
    current: dict[str, Any] = state.setdefault(_NOTE_STATE, {})
    for key, value in (
        ("referral_id", referral_id),
        ("client_id", client_id),
        ("case_id", case_id),
    ):
        if value is not None:
            current[key] = value
    for key, values in (
        ("case_ids", case_ids),
        ("client_ids", client_ids),
        ("referral_ids", referral_ids),
    ):
        ids = list(dict.fromkeys(v for v in values if v))
        if ids:
            merged = list(dict.fromkeys([*current.get(key, []), *ids]))
            current[key] = merged[:_MAX_IDS]


_SHOWN: ContextVar[list[str] | None] = ContextVar("casework_subjects_shown", default=None)


def subjects_shown(ids: Iterable[str]) -> None:
    """Add the data subjects (`client:<id>`, `person:<id>`) whose data this request's answer
    shows to its audit record (`subjects_shown`); the HTTP edge calls it as it opens tokens."""
    shown = _SHOWN.get()
    if shown is None:
        shown = []
        _SHOWN.set(shown)
    shown.extend(i for i in dict.fromkeys(ids) if i not in shown)


def sanitised_query(raw: bytes) -> str:
    """The query string as recorded: decoded, control characters replaced, length capped."""
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    cleaned = [
        (without_forbidden_characters(name), without_forbidden_characters(value))
        for name, value in pairs
    ]
    return urlencode(cleaned)[:_MAX_TEXT]


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
        query: str = "",
        subject: dict[str, Any] | None = None,
    ) -> None:
        """Append one record. `subject` holds what the request was about and what it showed
        (`referral_id`, `client_id`, `case_ids`, `client_ids`, `referral_ids`, ...)."""
        await self.records.insert_one(
            {
                "_id": str(uuid.uuid4()),
                "time": self._clock.now(),
                "sub": principal.sub if principal else None,
                "roles": sorted(principal.roles) if principal else [],
                "action": action,
                "resource": resource,
                "query": query,
                "case_id": case_id,
                **(subject or {}),
                "outcome": outcome,
                "request_id": request_id,
            }
        )

    async def for_case(self, case_id: str, limit: int = 200) -> list[Document]:
        """The newest records about one case."""
        cursor = self.records.find({"case_id": case_id}).sort("time", DESCENDING).limit(limit)
        return [dict(d) async for d in cursor]


class AuditUnavailable(Exception):
    """The audit record of a request could not be written (the response becomes 503)."""


class AuditMiddleware:
    """Records every API request before its response is sent; fails closed (see module)."""

    def __init__(self, app: ASGIApp, trail: AuditTrail) -> None:
        self.app = app
        self.trail = trail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http" or scope["path"] in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        recorded = False
        withheld = False  # the record failed: the app's answer is dropped, a 503 sent instead

        async def send_after_recording(message: Message) -> None:
            nonlocal recorded, withheld
            if withheld:
                return
            if message["type"] == "http.response.start":
                # the request-id middleware has put the id on the response by now
                headers = dict(message.get("headers") or [])
                request_id = headers.get(b"x-request-id", b"").decode() or None
                recorded = True
                try:
                    await self._record(scope, message["status"], request_id)
                except Exception:
                    withheld = True
                    await self._unavailable(scope, receive, send, request_id)
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_after_recording)
        finally:
            if not recorded:  # the app failed before answering
                # A failure is already logged; the server answers 500 without a body.
                with contextlib.suppress(AuditUnavailable):
                    await self._record(scope, 500, None)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, request_id: str | None
    ) -> None:
        headers = {"Retry-After": "1"}
        if request_id:
            headers["X-Request-ID"] = request_id
        response = problem_response(
            503,
            "the audit trail could not record this request, so it is not answered; try again",
            title="Audit trail unavailable",
            code="AuditUnavailable",
            headers=headers,
        )
        await response(scope, receive, send)

    async def _record(self, scope: Scope, status: int, request_id: str | None) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        principal = state.get("principal")
        route = scope.get("route")
        path_params: dict[str, Any] = scope.get("path_params") or {}
        subject: dict[str, Any] = {
            name: value
            for name in _SUBJECT_PARAMS
            if isinstance(value := path_params.get(name), str)
            and not has_forbidden_characters(value)
        }
        subject.update(state.get(_NOTE_STATE) or {})
        if shown := _SHOWN.get():
            subject["subjects_shown"] = shown[:_MAX_IDS]
            _SHOWN.set(None)
        case_id = subject.pop("case_id", None)
        template = getattr(route, "path", None)
        try:
            await self.trail.record(
                principal=principal if isinstance(principal, Principal) else None,
                action=f"{scope['method']} {template or _clean(scope['path'])}",
                resource=_clean(scope["path"]),
                query=sanitised_query(scope.get("query_string", b"")),
                case_id=case_id,
                subject=subject,
                outcome=status,
                request_id=request_id,
            )
        except Exception as exc:
            # Loud, and the caller turns it into a 503: nothing is served unaudited.
            log.exception(
                "could not write the audit record of %s %s", scope["method"], template or "?"
            )
            raise AuditUnavailable from exc


def _clean(text: str) -> str:
    return without_forbidden_characters(text)[:_MAX_TEXT]
