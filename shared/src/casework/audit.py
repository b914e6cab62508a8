"""The access audit: one FHIR AuditEvent per API request, handed durably to an append-only
topic before the request is answered (DESIGN §8, issue 8).

**Invariant: every answered request has exactly one durable audit record.** The middleware
builds the record when the response status is known and before a byte of the response is
sent, and inserts it into the service's `audit_outbox` collection (one insert, `_id` = the
record id). Only after that insert succeeded does the response leave; if it fails, the answer
is replaced by a 503 problem document with `Retry-After`, and the original answer — client
data included — is never sent (fail closed). A refused request (401, 403, 404, 422) is
recorded as faithfully as an allowed one. `AuditRelay` then publishes the outbox to the
`casework.audit.records` topic (key = record id, `acks=all`, idempotent producer) and deletes
what Kafka acknowledged; `casework.auditstore` consumes the topic into the audit store (its own
database, insert-only, idempotent by record id), which the services never write. A record is
therefore published at least once and stored exactly once; the outbox is the only place a
service could touch it, and only until the relay has handed it on (normally well under a
second). A command whose events were stored before its record failed stays stored (the record
is written after the route ran, so that it names what was shown); the client sees 503,
re-reads and finds the change, as after any lost response. The one answer sent without a
record is the 503 for an unreachable database (`casework.http`): it shows nothing, and its
record would go to that same database — waiting out a second server selection only to fail,
which doubled the time an outage took to answer.

What a record holds (the FHIR R5 AuditEvent shape; `casework.audit.audit_event`): the
action (`type`/`subtype` and `action` C/R/U/D/E), `recorded`, `outcome`, the agent (`who` =
the token's `sub`, roles, sites), the purpose of use, the `source` (the service) and the
`entity` list: the resource (the path with its ids, the route's declared query parameters),
what the request was about (`note`) and **every data subject whose data was shown**
(`subjects_shown`: `client:<id>`, `person:<uuid>`; for a list read every subject in the
list). Only ids: never names, free text, or values of undeclared query parameters.

**Purpose of use.** A request may say why it reads (`X-Purpose-Of-Use`, one of `PURPOSES`,
by our word or the HL7 v3 code); without it the caller's role gives the default
(`ROLE_PURPOSES`). An unknown value is refused with 422 naming `header.X-Purpose-Of-Use`
(and recorded). A break-glass access (`break_glass`) is recorded with HL7 `BTG`.

Values a request could smuggle into the trail are cleaned first: control characters and
lone surrogates in the path and query string become U+FFFD (the input guard refuses such a
request with 422, and its record is still written, without the bad value).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from aiokafka import AIOKafkaProducer
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.auth import Principal
from casework.clock import Clock, SystemClock
from casework.eventstore import Document
from casework.health import FailureKind, failure_kind
from casework.http import (
    DATABASE_UNAVAILABLE_STATE,
    FieldProblem,
    _incoming_request_id,
    has_forbidden_characters,
    problem_response,
    without_forbidden_characters,
)
from casework.relay import RelayLease

log = logging.getLogger(__name__)

AUDIT_TOPIC: Final = "casework.audit.records"
"""The append-only topic every service publishes its audit records to (namespace prefix
before it); created with the services' other topics, retention as the event topics'."""

OUTBOX_COLLECTION: Final = "audit_outbox"

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

PURPOSE_HEADER: Final = "X-Purpose-Of-Use"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


@dataclass(frozen=True)
class Purpose:
    """Why data is read: our word, the HL7 v3 ActReason (PurposeOfUse) code, its display."""

    word: str
    code: str
    display: str


PURPOSES: Final[Mapping[str, Purpose]] = {
    p.word: p
    for p in (
        Purpose("direct-care", "TREAT", "treatment"),
        Purpose("supervision", "HOPERAT", "healthcare operations"),
        Purpose("audit", "HCOMPL", "health compliance"),
        Purpose("integration", "COC", "coordination of care"),
        Purpose("operations", "HSYSADMIN", "health system administration"),
    )
}
"""The purposes a request may state (`X-Purpose-Of-Use: <word or code>`)."""

BREAK_GLASS: Final = Purpose("break-glass", "BTG", "break the glass")
"""Set only by a route that allowed an emergency access (`break_glass`), never by a header."""

ROLE_PURPOSES: Final[tuple[tuple[str, str], ...]] = (
    ("caseworker", "direct-care"),
    ("crisis_worker", "direct-care"),
    ("intake_worker", "direct-care"),
    ("supervisor", "supervision"),
    ("site_manager", "supervision"),
    ("regional_admin", "supervision"),
    ("dpo", "audit"),
    ("integration", "integration"),
    ("ops", "operations"),
)
"""The default purpose by role when a request states none; the first role the caller holds
in this order wins (a caseworker who also supervises reads for direct care by default)."""

_BY_NAME: Final[Mapping[str, Purpose]] = {
    **{p.word: p for p in PURPOSES.values()},
    **{p.code.lower(): p for p in PURPOSES.values()},
}


class UnknownPurpose(ValueError):
    """An `X-Purpose-Of-Use` that names no known purpose."""


def purpose_named(value: str) -> Purpose:
    """The purpose a header value names (our word or the HL7 code, any case)."""
    found = _BY_NAME.get(value.strip().lower())
    if found is None:
        raise UnknownPurpose(value)
    return found


def default_purpose(principal: Principal | None) -> Purpose | None:
    """The purpose of a request that states none, by the caller's roles (`ROLE_PURPOSES`)."""
    if principal is None:
        return None
    for role, word in ROLE_PURPOSES:
        if role in principal.roles:
            return PURPOSES[word]
    return None


_NOTE_STATE: Final = "audit_note"
_PURPOSE_STATE: Final = "audit_purpose"
_BREAK_GLASS_STATE: Final = "audit_break_glass"
_MAX_TEXT: Final = 2000
_MAX_IDS: Final = 1000
_MAX_SUBJECTS: Final = 5000
# Path parameters that name what a request is about.
_SUBJECT_PARAMS: Final = ("case_id", "referral_id", "client_id", "worker_id", "site")

_shown: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "casework_audit_subjects_shown", default=None
)


def subjects_shown(ids: Iterable[str]) -> None:
    """Report data subjects (`client:<id>`, `person:<uuid>`) whose data this request shows.

    Context-local: the audit middleware gives each request its own collector (a list the
    request's context and every context copied from it share), and the request's record
    names every subject reported, once each. Outside a request it does nothing. The
    privacy layer calls it for every token it opens; routes may call it too.
    """
    collector = _shown.get()
    if collector is None:
        return
    for subject in ids:
        if isinstance(subject, str) and subject and not has_forbidden_characters(subject):
            collector.append(subject[:200])


def client_subject(client_id: str) -> str:
    """The data-subject id of a client (`client:<id>`)."""
    return f"client:{client_id}"


def break_glass(request: Request, *, review_event_id: str | None = None) -> None:
    """Mark this request as an emergency access allowed by break-glass: its record gets the
    HL7 `BTG` purpose and names the event that raised the review (never the reason)."""
    state = request.scope.setdefault("state", {})
    state[_BREAK_GLASS_STATE] = {"review_event_id": review_event_id}


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
    referral is about, the cases and clients a list showed. Called again, it adds. (Which
    data subjects were *shown* is `subjects_shown`.)
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


def recorded_query(raw: bytes, declared: Iterable[str] = ()) -> str:
    """The query string as recorded: values only of the route's declared parameters (ids,
    limits, sites), the names alone of any other (a value there could be anything); control
    characters replaced, length capped."""
    keep = set(declared)
    pairs = []
    for name, value in _query_pairs(raw):
        clean_name = without_forbidden_characters(name)
        pairs.append((clean_name, without_forbidden_characters(value) if name in keep else ""))
    return "&".join(f"{n}={v}" if v else n for n, v in pairs)[:_MAX_TEXT]


def sanitised_query(raw: bytes) -> str:
    """The query string with every value kept (control characters replaced, length capped)."""
    return "&".join(
        f"{without_forbidden_characters(n)}={without_forbidden_characters(v)}"
        for n, v in _query_pairs(raw)
    )[:_MAX_TEXT]


def _query_pairs(raw: bytes) -> list[tuple[str, str]]:
    return parse_qsl(raw.decode("latin-1"), keep_blank_values=True)


# --- the record ---------------------------------------------------------------------------

_DICOM: Final = "http://dicom.nema.org/resources/ontology/DCM"
_RESTFUL: Final = "http://hl7.org/fhir/restful-interaction"
_OUTCOME: Final = "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
_OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
_SUBJECT_SYSTEM: Final = "urn:casework:data-subject"
_STAFF_SYSTEM: Final = "urn:casework:staff"
EXT_REQUEST_ID: Final = "urn:casework:audit:request-id"
EXT_BREAK_GLASS_REVIEW: Final = "urn:casework:audit:break-glass-review"


def action_code(method: str, template: str | None) -> tuple[str, str]:
    """The AuditEvent `action` (C/R/U/D/E) and the FHIR restful interaction of a request.

    A POST to a collection (`/referrals`) creates; a POST to something under an id
    (`/cases/{case_id}/assignment`) executes an operation."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        listing = template is None or not template.rstrip("/").endswith("}")
        return "R", "search-type" if listing else "read"
    if method in ("PUT", "PATCH"):
        return "U", "update"
    if method == "DELETE":
        return "D", "delete"
    if method == "POST" and template is not None and "{" not in template:
        return "C", "create"
    return "E", "operation"


def outcome_code(status: int) -> str:
    """0 success, 4 minor failure (refused: 4xx), 8 serious failure (5xx)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def audit_event(
    *,
    record_id: str,
    recorded: datetime,
    service: str,
    principal: Principal | None,
    method: str,
    template: str | None,
    resource: str,
    query: str,
    status: int,
    request_id: str | None,
    purpose: Purpose | None,
    about: Mapping[str, Any],
    subjects: Iterable[str],
    break_glass_review: str | None = None,
) -> dict[str, Any]:
    """One AuditEvent (FHIR R5 shape; R4's `type`/`subtype` names for the action kept, as the
    platform's documents use them). Only ids: no names, no free text."""
    action, interaction = action_code(method, template)
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": resource},
            "role": {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            "description": f"{method.upper()} {template or resource}",
            **({"query": base64.b64encode(query.encode()).decode()} if query else {}),
        }
    ]
    for kind, value in about.items():
        for one in value if isinstance(value, list) else [value]:
            entities.append(
                {
                    "what": {"identifier": {"system": f"urn:casework:{kind}", "value": one}},
                    "role": {"system": _OBJECT_ROLE, "code": "20", "display": "Job"},
                }
            )
    shown = list(dict.fromkeys(subjects))[:_MAX_SUBJECTS]
    for subject in shown:
        entities.append(
            {
                "what": {"identifier": {"system": _SUBJECT_SYSTEM, "value": subject}},
                "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": _DICOM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"identifier": {"system": _STAFF_SYSTEM, "value": principal.sub}}
        if principal
        else {"display": "unauthenticated"},
        "requestor": True,
        "role": [{"text": role} for role in sorted(principal.roles)] if principal else [],
        "site": sorted(principal.sites) if principal else [],
    }
    if principal and principal.team:
        agent["team"] = principal.team
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": record_id,
        "type": {"system": _DICOM, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": _RESTFUL, "code": interaction}],
        "action": action,
        "recorded": recorded.isoformat(),
        "outcome": {
            "code": {"system": _OUTCOME, "code": outcome_code(status)},
            "detail": [{"text": f"HTTP {status}"}],
        },
        "purposeOfUse": [
            {"coding": [{"system": ACT_REASON, "code": purpose.code, "display": purpose.display}]}
        ]
        if purpose
        else [],
        "agent": [agent],
        "source": {"observer": {"display": f"casework/{service}"}, "type": [{"code": "4"}]},
        "entity": entities,
        "extension": [
            ext
            for ext in (
                {"url": EXT_REQUEST_ID, "valueString": request_id} if request_id else None,
                {"url": EXT_BREAK_GLASS_REVIEW, "valueString": break_glass_review}
                if break_glass_review
                else None,
            )
            if ext is not None
        ],
    }
    return event


def subjects_of(event: Mapping[str, Any]) -> list[str]:
    """The data subjects an AuditEvent says were shown."""
    return [
        e["what"]["identifier"]["value"]
        for e in event.get("entity", [])
        if e.get("what", {}).get("identifier", {}).get("system") == _SUBJECT_SYSTEM
    ]


def purpose_code(event: Mapping[str, Any]) -> str | None:
    """The HL7 purpose-of-use code of an AuditEvent."""
    for concept in event.get("purposeOfUse", []):
        for coding in concept.get("coding", []):
            return str(coding["code"])
    return None


class AuditTrail:
    """Hands a service's audit records to its outbox (`audit_outbox`), whence `AuditRelay`
    publishes them. Insert only; the relay deletes what Kafka acknowledged."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        clock: Clock | None = None,
        *,
        service: str = "unknown",
    ) -> None:
        self.records = collection
        self.service = service
        self._clock = clock or SystemClock()
        self._listeners: list[asyncio.Event] = []

    def on_record(self, wake: asyncio.Event) -> None:
        """Set `wake` after every record written (the relay's low-latency path)."""
        self._listeners.append(wake)

    async def ensure_indexes(self) -> None:
        """Nothing beyond `_id`: the relay reads the outbox whole (it holds the backlog)."""

    async def record(
        self,
        *,
        principal: Principal | None,
        method: str,
        template: str | None,
        resource: str,
        outcome: int,
        request_id: str | None = None,
        query: str = "",
        purpose: Purpose | None = None,
        about: Mapping[str, Any] | None = None,
        subjects: Iterable[str] = (),
        break_glass_review: str | None = None,
    ) -> str:
        """Write one record durably (one insert); returns its id."""
        record_id = str(uuid.uuid4())
        now = self._clock.now()
        event = audit_event(
            record_id=record_id,
            recorded=now,
            service=self.service,
            principal=principal,
            method=method,
            template=template,
            resource=resource,
            query=query,
            status=outcome,
            request_id=request_id,
            purpose=purpose,
            about=about or {},
            subjects=subjects,
            break_glass_review=break_glass_review,
        )
        await self.records.insert_one({"_id": record_id, "event": event, "written_at": now})
        for wake in self._listeners:
            wake.set()
        return record_id


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
        collector: list[str] = []
        token = _shown.set(collector)
        try:
            if (refusal := _purpose_refusal(scope)) is not None:
                await self._refuse(scope, receive, send, refusal, collector)
                return
            await self._answer(scope, receive, send, collector)
        finally:
            _shown.reset(token)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, collector: list[str]
    ) -> None:
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
                if message["status"] == 503 and _state(scope).get(DATABASE_UNAVAILABLE_STATE):
                    await send(message)  # shows nothing; its record would wait on the same
                    return  # unreachable database for another server selection (see module)
                try:
                    await self._record(scope, message["status"], request_id, collector)
                except AuditUnavailable:
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
                    await self._record(scope, 500, None, collector)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        problem: FieldProblem,
        collector: list[str],
    ) -> None:
        await _identify(scope)
        # Refused before the request-id middleware runs: the same id it would have given.
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        try:
            await self._record(scope, 422, request_id, collector)
        except AuditUnavailable:
            await self._unavailable(scope, receive, send, request_id)
            return
        response = problem_response(
            422,
            f"1 problem(s) with the request: {problem.field}",
            title="Invalid request",
            code="InvalidRequest",
            errors=[problem],
            headers={"X-Request-ID": request_id},
        )
        await response(scope, receive, send)

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

    async def _record(
        self, scope: Scope, status: int, request_id: str | None, collector: list[str]
    ) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        if not isinstance(state.get("principal"), Principal):
            await _identify(scope)  # a route that did not authenticate: who sent it anyway
            state = scope.get("state") or {}
        principal = state.get("principal")
        principal = principal if isinstance(principal, Principal) else None
        route = scope.get("route")
        path_params: dict[str, Any] = scope.get("path_params") or {}
        about: dict[str, Any] = {
            name: value
            for name in _SUBJECT_PARAMS
            if isinstance(value := path_params.get(name), str)
            and not has_forbidden_characters(value)
        }
        about.update(state.get(_NOTE_STATE) or {})
        template = getattr(route, "path", None)
        glass = state.get(_BREAK_GLASS_STATE)
        stated = state.get(_PURPOSE_STATE)
        purpose = (
            BREAK_GLASS
            if glass is not None
            else stated
            if isinstance(stated, Purpose)
            else default_purpose(principal)
        )
        try:
            await self.trail.record(
                principal=principal,
                method=scope["method"],
                template=template,
                resource=_clean(scope["path"]),
                query=recorded_query(scope.get("query_string", b""), _declared_query(route)),
                outcome=status,
                request_id=request_id,
                purpose=purpose,
                about=about,
                subjects=collector,
                break_glass_review=glass.get("review_event_id") if glass else None,
            )
        except Exception as exc:
            # Loud, and the caller turns it into a 503: nothing is served unaudited.
            log.exception(
                "could not write the audit record of %s %s", scope["method"], template or "?"
            )
            raise AuditUnavailable from exc


def _state(scope: Scope) -> dict[str, Any]:
    state = scope.get("state")
    return state if isinstance(state, dict) else {}


def _purpose_refusal(scope: Scope) -> FieldProblem | None:
    """Read `X-Purpose-Of-Use` onto the request state; a problem if it names no purpose."""
    values = [
        v for k, v in scope.get("headers", []) if k.lower() == PURPOSE_HEADER.lower().encode()
    ]
    if not values:
        return None
    field = f"header.{PURPOSE_HEADER}"
    known = ", ".join(f"{p.word} ({p.code})" for p in PURPOSES.values())
    if len(values) > 1:
        return FieldProblem(field=field, code="repeated", message="state one purpose of use")
    try:
        purpose = purpose_named(values[0].decode("latin-1"))
    except UnknownPurpose:
        # The value is not echoed: it could be anything.
        return FieldProblem(
            field=field, code="unknown_purpose", message=f"not a purpose of use; one of: {known}"
        )
    scope.setdefault("state", {})[_PURPOSE_STATE] = purpose
    return None


async def _identify(scope: Scope) -> None:
    """Put the caller's principal on the state for the record of a refusal (if the token is
    good); the refusal happens before any route authenticates."""
    if not any(k.lower() == b"authorization" for k, _ in scope.get("headers", [])):
        return
    app = scope.get("app")
    authenticator = getattr(getattr(app, "state", None), "authenticator", None)
    if authenticator is None:
        return
    with contextlib.suppress(Exception):
        await authenticator(Request(scope))


def _declared_query(route: Any) -> list[str]:
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return []
    names: list[str] = []
    stack = [dependant]
    while stack:
        current = stack.pop()
        names.extend(p.alias for p in current.query_params)
        stack.extend(current.dependencies)
    return names


def _clean(text: str) -> str:
    return without_forbidden_characters(text)[:_MAX_TEXT]


# --- the relay ----------------------------------------------------------------------------


class AuditRelay:
    """Publishes a service's audit outbox to the audit topic, then deletes what Kafka
    acknowledged.

    Invariant: a record leaves the outbox only after the broker acknowledged it (acks=all,
    idempotent producer), so every record written is published at least once; a crash
    between the acknowledgement and the delete publishes it again, and the audit store
    ignores the duplicate by its id. Several replicas may relay the same outbox (a lease
    keeps them from doing it at once; correctness does not depend on it). Woken after each
    record; polls as a fallback. Never reads anything but the stored records.

    One read per round: a round that moved fewer than `batch` records does not read again at
    once, it waits for a wake. A record written after the round's read sets the wake (the
    round clears it *before* reading, and a writer sets it *after* its insert), so it is
    never left waiting for a poll. Idle polling backs off: the wait doubles after every
    round that found nothing, from `poll_interval` (1 s) up to `idle_poll_max` (8 s), and is
    `poll_interval` again after a wake or a round that found records. *Bound:* a record no
    relay of this process was woken for (written by another replica while this one holds the
    lease, or left by a crash) is published within `idle_poll_max` of being stored; one
    written by this process, at once.
    """

    def __init__(
        self,
        outbox: AsyncCollection[Document],
        producer: AIOKafkaProducer,
        topic: str,
        *,
        lease: RelayLease | None = None,
        poll_interval: float = 1.0,
        idle_poll_max: float = 8.0,
        batch: int = 500,
    ) -> None:
        self._outbox = outbox
        self._producer = producer
        self._topic = topic
        self._lease = lease
        self._poll_interval = poll_interval
        self._idle_poll_max = max(idle_poll_max, poll_interval)
        self._batch = batch
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self.healthy = True
        self.last_error_kind: FailureKind | None = None
        self.published = 0

    async def start(self) -> None:
        """Start the producer and the relay loop."""
        await self._producer.start()
        self._started = True
        self._task = asyncio.create_task(self._run(), name="audit-relay")

    async def stop(self) -> None:
        """Stop the loop, then the producer (what is left in the outbox waits for a relay)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._started:
            await self._producer.stop()

    async def backlog(self) -> int:
        """Records written and not yet acknowledged by Kafka."""
        return await self._outbox.count_documents({})

    async def _run(self) -> None:
        backoff = 0.2
        interval = self._poll_interval
        while True:
            try:
                moved = await self.publish_once()
                self.healthy = True
                self.last_error_kind = None
                backoff = 0.2
            except Exception as exc:
                self.healthy = False
                self.last_error_kind = failure_kind(exc)
                log.warning("audit relay round failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if moved >= self._batch:
                continue  # a full batch: more may be waiting
            # fewer: anything written since the read has set the wake (class docstring)
            interval = self._poll_interval if moved else min(interval * 2, self._idle_poll_max)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), interval)
            if self.wake.is_set():
                interval = self._poll_interval
            self.wake.clear()

    async def publish_once(self) -> int:
        """One round: publish up to `batch` records of the outbox, delete them once
        acknowledged; the number published."""
        if self._lease is not None and not await self._lease.acquire():
            return 0
        self.wake.clear()
        documents = await self._outbox.find({}).limit(self._batch).to_list(None)
        if not documents:
            return 0
        sends = [
            await self._producer.send(
                self._topic,
                key=str(doc["_id"]).encode(),
                value=json.dumps(doc["event"], separators=(",", ":")).encode(),
                headers=[("content-type", b"application/fhir+json")],
            )
            for doc in documents
        ]
        await asyncio.gather(*sends)
        await self._outbox.delete_many({"_id": {"$in": [doc["_id"] for doc in documents]}})
        self.published += len(documents)
        return len(documents)
