"""The HTTP edge every service shares: one app factory (DESIGN §8, §9).

`create_http_app` gives each service the same operational endpoints (`/healthz`, `/readyz`,
`/metrics`), the same error shape (RFC 9457 problem details), request ids, request metrics
and bearer authentication, so that the services differ only in their routers.

Error bodies are `application/problem+json`::

    {"type": "about:blank", "title": "Case already closed", "status": 409,
     "detail": "case c-1 was closed on 2025-03-01", "code": "CaseAlreadyClosed"}

Invalid input adds `errors`, one entry per field. A field is named by its dotted location,
starting with where it was sent: `body.client.date_of_birth`, `query.limit`,
`path.case_id`, `header.if-match`; list items by index (`body.goals.0.title`).

Every problem has the same shape: `code` (a machine-readable word) and `errors` (a list,
empty when no one field is at fault), each error with `field`, `code` and `message`.

Input that could break a service never reaches it (`InputGuardMiddleware`, one place for
every service): control characters in path and query parameters and in JSON strings, lone
surrogates, integers beyond 64 bits, absurd nesting, bodies above the limit of their route
class, bodies that are not UTF-8 JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails
from pymongo.errors import ConnectionFailure
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.auth import Authenticator, TokenVerifier
from casework.logs import bind_request_id, current_request_id, reset_request_id
from casework.metrics import Metrics
from casework.settings import Settings

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "FieldProblem",
    "Problem",
    "ReadinessCheck",
    "create_http_app",
    "current_request_id",
    "problem_response",
    "title_from_class_name",
]

_log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
REQUEST_ID_HEADER: Final = "X-Request-ID"
DEFAULT_READINESS_TIMEOUT_S: Final = 1.0

ReadinessCheck = Callable[[], Awaitable[bool]]

# A caller's request id is echoed into logs and headers: accept only plain tokens.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
# Label for requests no route matched, so scanners cannot blow up the metric's cardinality.
_UNMATCHED_ROUTE: Final = "unmatched"
_OPERATIONS_TAG: Final = "operations"


class FieldProblem(BaseModel):
    """What is wrong with one field of a request (`type` repeats `code`, for older clients)."""

    field: str
    code: str
    message: str
    type: str = ""

    def model_post_init(self, context: Any, /) -> None:
        if not self.type:
            self.type = self.code


class Problem(BaseModel):
    """An RFC 9457 problem details body, as every error response carries."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    errors: list[FieldProblem]


class Health(BaseModel):
    """The process is running."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Every readiness check passed."""

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


def title_from_class_name(name: str) -> str:
    """An exception class name as a sentence: `CaseAlreadyClosed` -> "Case already closed"."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", name)
    if not words:
        return name
    # Acronyms keep their capitals ("HTTP"); other words after the first are lower-cased.
    rest = [word if len(word) > 1 and word.isupper() else word.lower() for word in words[1:]]
    return " ".join([words[0], *rest])


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    code: str | None = None,
    errors: Sequence[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """An `application/problem+json` response; `title` defaults to the status phrase."""
    phrase = _status_phrase(status)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    body["code"] = code or phrase.replace(" ", "").replace("-", "")
    body["errors"] = [error.model_dump() for error in errors]
    body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field_problems(errors: Sequence[ErrorDetails] | Sequence[Any]) -> list[FieldProblem]:
    problems = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            location = location[:1]  # the rest is a character offset, not a field
        problems.append(
            FieldProblem(
                field=".".join(location),
                code=str(error.get("type", "")),
                message=str(error.get("msg", "")),
            )
        )
    return problems


def _invalid_input(problems: list[FieldProblem]) -> JSONResponse:
    # The rejected values are never echoed back: they may be client data.
    fields = ", ".join(dict.fromkeys(p.field for p in problems))
    return problem_response(
        422,
        f"{len(problems)} problem(s) with the request: {fields}",
        title="Invalid request",
        code="InvalidRequest",
        errors=problems,
    )


async def _request_validation_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _invalid_input(_field_problems(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    extensions: dict[str, Any] = {}
    if isinstance(exc.detail, str):
        detail = exc.detail
    else:
        detail = _status_phrase(exc.status_code)
        extensions["context"] = exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _documented_methods(request)):
        # The router names only the first route matching the path; the OpenAPI document
        # knows every method the path has.
        headers["Allow"] = ", ".join(allowed)
    return problem_response(exc.status_code, detail, headers=headers or None, **extensions)


def _documented_methods(request: Request) -> list[str]:
    app = request.app
    if not isinstance(app, FastAPI):
        return []
    for template, item in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            return sorted(method.upper() for method in item)
    return []


def _domain_error_handler(
    error_status: Mapping[type[Exception], int],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def domain_error(request: Request, exc: Exception) -> Response:
        # The most specific mapped class in the exception's ancestry decides the status.
        status = next(
            (error_status[cls] for cls in type(exc).__mro__ if cls in error_status),
            500,
        )
        if isinstance(exc, PydanticValidationError):
            # Raised while turning a payload into a command: report it like bad input,
            # without str(exc), which quotes the rejected values.
            problems = _field_problems(exc.errors(include_input=False, include_url=False))
            response = _invalid_input(problems)
            response.status_code = status
            return response
        if status >= 500:
            _log.error("%s mapped to %d", type(exc).__name__, status, exc_info=exc)
        # A domain error about one field of the request (a class attribute `field`, such
        # as "body.site") is reported like any other invalid field.
        field = getattr(exc, "field", None)
        errors = (
            [FieldProblem(field=field, code=type(exc).__name__, message=str(exc))]
            if isinstance(field, str)
            else []
        )
        return problem_response(
            status,
            str(exc) or None,
            title=title_from_class_name(type(exc).__name__),
            code=type(exc).__name__,
            errors=errors,
        )

    return domain_error


DATABASE_RETRY_AFTER_S: Final = 5
DATABASE_UNAVAILABLE_STATE: Final = "database_unavailable"
"""Set on a request's state when its answer is the database-outage 503 (`casework.audit`
then writes no record of it: the record would wait on the same unreachable database)."""


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """A database outage (PyMongo `ConnectionFailure`: no server selectable, connection lost,
    network timeout, not primary) is 503 with `Retry-After`, not 500: the request may succeed
    once the database is back, and nothing was changed unless its events were stored."""
    _log.warning("database unavailable (%s): answered 503", type(exc).__name__)
    request.scope.setdefault("state", {})[DATABASE_UNAVAILABLE_STATE] = True
    return problem_response(
        503,
        "The database is unavailable; nothing was changed unless the answer said so. "
        "Try again shortly.",
        title="Database unavailable",
        code="DatabaseUnavailable",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


class RequestIdMiddleware:
    """Gives each request an id (the caller's `X-Request-ID` if sane), echoed in the response.

    The id is on `request.state.request_id`, on log lines, and in `current_request_id()`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        token = bind_request_id(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            reset_request_id(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            return candidate if _SAFE_REQUEST_ID.fullmatch(candidate) else None
    return None


class MetricsMiddleware:
    """Counts requests and times them, labelled by route template rather than raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app fails before responding
        started = time.perf_counter()

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            # The router writes the matched route into the scope on its way in.
            route = _route_template(scope)
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_latency.labels(method, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else _UNMATCHED_ROUTE


class UnhandledErrorMiddleware:
    """Turns an exception nothing else handled into a 500 problem that reveals nothing.

    The error is logged (with trace and request ids) and recorded on the current span.
    Handled here rather than by Starlette's server-error handler, which runs outside the
    other middleware and re-raises into the server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception as exc:
            _log.exception("unhandled error in %s %s", scope["method"], _route_template(scope))
            span = trace.get_current_span()
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            if response_started:
                raise  # too late to replace the response: let the server drop the connection
            request_id = current_request_id()
            response = problem_response(
                500,
                "An unexpected error occurred. Quote the request id when reporting it.",
                request_id=request_id,
            )
            await response(scope, receive, send)


# --- input that cannot break a service -----------------------------------------------------

BodyClass = Literal["command", "text"]
"""Route classes by body size: `command` (the default) or `text` (long free text: notes,
assessments, plans, referrals). Their limits are settings (`http_max_body_bytes`,
`http_max_text_body_bytes`); a larger body is refused with 413 before it is read."""

BODY_CLASS_KEY: Final = "x-casework-body-class"
MAX_JSON_DEPTH: Final = 32
"""Deeper JSON than this is refused (400): no request of the platform nests half as deep."""
_MAX_REPORTED_PROBLEMS: Final = 20
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# C0 controls. Free text in a body may hold tab, line feed and carriage return; path and
# query parameters none at all. Lone surrogates cannot be stored (UTF-8, BSON) either.
_BAD_IN_PARAMETER = re.compile(r"[\x00-\x1f\ud800-\udfff]")
_BAD_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SEALED_PREFIX: Final = "enc:v1:"


def text_body() -> dict[str, Any]:
    """`openapi_extra` of a route whose body may hold long free text (the `text` class)."""
    return {BODY_CLASS_KEY: "text"}


def body_limit(settings: Settings, body_class: str) -> int:
    """The most bytes a request body of this route class may have."""
    if body_class == "text":
        return settings.http_max_text_body_bytes
    return settings.http_max_body_bytes


def has_forbidden_characters(value: str, *, free_text: bool = False) -> bool:
    """Whether `value` holds a character the platform never accepts in this position."""
    pattern = _BAD_IN_TEXT if free_text else _BAD_IN_PARAMETER
    return pattern.search(value) is not None


def without_forbidden_characters(value: str) -> str:
    """`value` with control characters and lone surrogates replaced by U+FFFD (for records)."""
    return _BAD_IN_PARAMETER.sub("\ufffd", value)


def _character_problem(field: str, value: str) -> FieldProblem:
    if _SURROGATE.search(value):
        return FieldProblem(
            field=field,
            code="invalid_unicode",
            message="holds a lone surrogate, which is not a character",
        )
    return FieldProblem(
        field=field,
        code="control_character",
        message="holds a control character (U+0000-U+001F); only tab, line feed and carriage "
        "return are allowed, and only in free text of a body",
    )


class _Rejected(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _reject_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _malformed(detail: str, code: str, field: str = "body") -> _Rejected:
    return _Rejected(
        problem_response(
            400,
            detail,
            title="Malformed request",
            code=code,
            errors=[FieldProblem(field=field, code=code, message=detail)],
        )
    )


def check_json_body(raw: bytes) -> list[FieldProblem]:
    """Parse a JSON body as the platform accepts it; raise `_Rejected` (400) if it is not
    UTF-8 JSON of sane depth, and return the problems (422) with its values."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("the body is not valid UTF-8", "invalid_utf8") from None
    try:
        document = json.loads(text, parse_constant=_reject_json_constant, parse_float=_finite_float)
    except RecursionError:
        raise _malformed(
            f"the body nests deeper than {MAX_JSON_DEPTH} levels", "too_deep"
        ) from None
    except ValueError:
        raise _malformed("the body is not valid JSON", "json_invalid") from None
    problems: list[FieldProblem] = []
    # Iterative, so that depth is checked before Python's recursion limit is reached.
    stack: list[tuple[Any, str, int]] = [(document, "body", 0)]
    while stack and len(problems) < _MAX_REPORTED_PROBLEMS:
        value, field, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _malformed(f"the body nests deeper than {MAX_JSON_DEPTH} levels", "too_deep")
        if isinstance(value, str):
            if has_forbidden_characters(value, free_text=True):
                problems.append(_character_problem(field, value))
            elif _SEALED_PREFIX in value:
                # a sealed value (casework.privacy) is never input: stored as a copy, it
                # would be opened in the answers of whoever reads this record
                problems.append(
                    FieldProblem(
                        field=field,
                        code="sealed_value",
                        message="holds an encrypted token (enc:v1:...), which is never input",
                    )
                )
        elif isinstance(value, bool) or value is None or isinstance(value, float):
            continue
        elif isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                problems.append(
                    FieldProblem(
                        field=field,
                        code="out_of_range",
                        message="an integer beyond 64 bits cannot be stored",
                    )
                )
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                if has_forbidden_characters(key):
                    problems.append(_character_problem(field, key))
                    continue
                stack.append((item, f"{field}.{key}", depth + 1))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                stack.append((value[index], f"{field}.{index}", depth + 1))
    return problems


def _check_query(scope: Scope) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if has_forbidden_characters(name):
            problems.append(_character_problem("query", name))
        elif has_forbidden_characters(value):
            problems.append(_character_problem(f"query.{name}", value))
    return problems[:_MAX_REPORTED_PROBLEMS]


def _content_type_problem(headers: Mapping[bytes, bytes]) -> str | None:
    raw = headers.get(b"content-type")
    if raw is None:
        return "send the body as application/json; charset=utf-8 (no Content-Type was given)"
    media_type, _, params = raw.decode("latin-1").partition(";")
    if media_type.strip().lower() != "application/json":
        return "the body must be application/json"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return "the body must be encoded as UTF-8"
    return None


class InputGuardMiddleware:
    """Refuses, before routing, input that could break a service or its database.

    Invariant: a request reaches the router only if its query parameters are free of control
    characters (U+0000-U+001F) and lone surrogates (else 422 naming `query.<name>`), and, when
    it carries a body (POST, PUT, PATCH, DELETE), the body is at most the largest route
    class's limit (else 413, before more is read), is `application/json` in UTF-8 (else 415),
    parses (else 400), nests at most `MAX_JSON_DEPTH` levels (else 400), and every string in
    it is free of control characters other than tab, line feed and carriage return and of
    lone surrogates, and every integer fits 64 bits (else 422 naming the field). Path
    parameters, which only the router can name, and the limit of the route's own class are
    checked by `guard_route` once the route is known. The rejected values are never echoed.

    A refused request carrying a valid token has its principal put on the request state, so
    that its audit record says who sent it; refusing bad input needs no token.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings, authenticator: Authenticator) -> None:
        self.app = app
        self._limit = max(settings.http_max_body_bytes, settings.http_max_text_body_bytes)
        self._authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if problems := _check_query(scope):
                raise _Rejected(_invalid_input(problems))
            if scope["method"] in _BODY_METHODS:
                receive = await self._checked_body(scope, receive)
        except _Rejected as rejected:
            await _identify_caller(Request(scope), self._authenticator)
            await rejected.response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _checked_body(self, scope: Scope, receive: Receive) -> Receive:
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self._limit:
            raise _Rejected(_too_large(self._limit))
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise _Rejected(_too_large(self._limit))
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        scope.setdefault("state", {})[_BODY_SIZE_STATE] = len(body)
        if body:
            if (problem := _content_type_problem(headers)) is not None:
                raise _Rejected(
                    problem_response(
                        415,
                        problem,
                        title="Unsupported media type",
                        code="UnsupportedMediaType",
                        errors=[
                            FieldProblem(
                                field="header.content-type",
                                code="unsupported_media_type",
                                message=problem,
                            )
                        ],
                    )
                )
            if problems := check_json_body(body):
                raise _Rejected(_invalid_input(problems))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


async def _identify_caller(request: Request, authenticator: Authenticator) -> None:
    """Put the caller's principal on the request state for the audit record of a refusal."""
    if "authorization" not in request.headers:
        return
    try:
        await authenticator(request)  # puts the principal on the request state
    except Exception:
        return  # an unusable token: the record says nobody


_BODY_SIZE_STATE: Final = "body_bytes"


def _too_large(limit: int) -> JSONResponse:
    return problem_response(
        413,
        f"the body is larger than {limit} bytes, the limit for this route",
        title="Request body too large",
        code="BodyTooLarge",
        errors=[FieldProblem(field="body", code="too_large", message=f"at most {limit} bytes")],
    )


class _RouteGuardFailed(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _route_guard_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _RouteGuardFailed)
    return exc.response


async def guard_route(request: Request) -> None:
    """App-wide dependency, run once the route is known and before its own dependencies:
    path parameters free of control characters (422 naming `path.<name>`), and the body
    within the limit of the route's class (413)."""
    problems = [
        _character_problem(f"path.{name}", value)
        for name, value in request.path_params.items()
        if isinstance(value, str) and has_forbidden_characters(value)
    ]
    if problems:
        await _identify_caller(request, request.app.state.authenticator)
        raise _RouteGuardFailed(_invalid_input(problems))
    size = getattr(request.state, _BODY_SIZE_STATE, 0)
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    settings: Settings = request.app.state.settings
    limit = body_limit(settings, extra.get(BODY_CLASS_KEY, "command"))
    if size > limit:
        await _identify_caller(request, request.app.state.authenticator)
        raise _RouteGuardFailed(_too_large(limit))


async def _run_check(name: str, check: ReadinessCheck, timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            ok = await check()
    except TimeoutError:
        _log.warning("readiness check %s timed out after %.1fs", name, timeout_s)
        return "timeout"
    except Exception:
        _log.warning("readiness check %s raised", name, exc_info=True)
        return "error"
    return "ok" if ok else "failed"


def _operations_router(
    metrics: Metrics, readiness: Mapping[str, ReadinessCheck] | None, timeout_s: float
) -> APIRouter:
    router = APIRouter(tags=[_OPERATIONS_TAG])

    @router.get("/healthz", summary="Liveness: the process is running")
    async def healthz() -> Health:
        return Health()

    if readiness is None:
        _add_metrics_route(router, metrics)
        return router  # the caller serves its own /readyz (casework.service)

    @router.get(
        "/readyz",
        summary="Readiness: the service's dependencies answer",
        responses={503: {"model": Problem, "description": "A check failed; `checks` says which"}},
    )
    async def readyz() -> Response:
        assert readiness is not None
        names = list(readiness)
        results = await asyncio.gather(
            *(_run_check(name, readiness[name], timeout_s) for name in names)
        )
        checks = dict(zip(names, results, strict=True))
        if all(result == "ok" for result in results):
            return JSONResponse(Readiness(checks=checks).model_dump())
        failed = ", ".join(
            f"{name} ({result})" for name, result in checks.items() if result != "ok"
        )
        return problem_response(503, f"not ready: {failed}", title="Not ready", checks=checks)

    _add_metrics_route(router, metrics)
    return router


def _add_metrics_route(router: APIRouter, metrics: Metrics) -> None:
    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}},
    )
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


def _document_problems(app: FastAPI, settings: Settings) -> None:
    """Make the OpenAPI schema say what the app really answers.

    Invariant: every status the edge itself can send is documented on the operations that
    can get it, as `application/problem+json` with the `Problem` schema — 400 (malformed
    body), 404 (no such resource, on operations with path parameters), 413 and 415 (bodies),
    422 (invalid input: any operation, since the query string of any request is checked),
    401/403 (operations needing a token), 503 (audit trail or database unavailable, on every
    audited operation) — and a route's own error responses are re-declared with that media
    type. `tests/e2e/test_schemathesis.py` holds the services to it.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem_schema.pop("$defs", {}))
        components["Problem"] = problem_schema
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)

        def problem(description: str) -> dict[str, Any]:
            ref = {"$ref": "#/components/schemas/Problem"}
            return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": ref}}}

        for path, path_item in schema.get("paths", {}).items():
            for method, operation in path_item.items():
                responses: dict[str, Any] = operation.setdefault("responses", {})
                for status, response in list(responses.items()):
                    if status[:1] in ("4", "5"):
                        responses[status] = problem(response.get("description", ""))
                _document_edge_statuses(path, method, operation, responses, problem, settings)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_edge_statuses(
    path: str,
    method: str,
    operation: dict[str, Any],
    responses: dict[str, Any],
    problem: Callable[[str], dict[str, Any]],
    settings: Settings,
) -> None:
    operational = _OPERATIONS_TAG in operation.get("tags", [])
    parameters = operation.get("parameters", [])
    for parameter in parameters:
        # A parameter is sent or left out; it is never JSON null, whatever the Python type.
        param_schema = parameter.get("schema", {})
        variants = param_schema.get("anyOf")
        if isinstance(variants, list):
            kept = [v for v in variants if v.get("type") != "null"]
            if len(kept) == 1:
                param_schema.pop("anyOf")
                param_schema.update(kept[0])
    responses["422"] = problem(
        "Invalid request: `errors` names each field (`body.…`, `path.…`, `query.…`, "
        "`header.…`); control characters are refused in every parameter and body string"
    )
    if "requestBody" in operation or any(p.get("in") == "header" for p in parameters):
        responses.setdefault(
            "400", problem("Malformed request: the body is not UTF-8 JSON, or nests too deep")
        )
    if method.upper() in _BODY_METHODS:
        body_class = operation.get(BODY_CLASS_KEY, "command")
        limit = body_limit(settings, body_class)
        responses.setdefault(
            "413", problem(f"The body is larger than {limit} bytes (route class `{body_class}`)")
        )
        responses.setdefault("415", problem("The body is not `application/json` encoded as UTF-8"))
        responses.setdefault(
            "400", problem("Malformed request: the body is not UTF-8 JSON, or nests too deep")
        )
    if "{" in path:
        responses.setdefault("404", problem("No such resource, or not one you may reach"))
    if method.upper() in _BODY_METHODS and not operational:
        # Any command can lose a race to a concurrent writer (`ConcurrencyConflict`).
        responses.setdefault(
            "409", problem("Refused by a rule, or another change won a race: reload, retry")
        )
    if any(p.get("in") == "header" and p.get("name", "").lower() == "if-match" for p in parameters):
        responses.setdefault(
            "412", problem("`If-Match` names a version other than the current one: reload")
        )
    if operation.get("security"):
        responses.setdefault("401", problem("Missing, invalid or expired token"))
        responses.setdefault("403", problem("The caller lacks the roles required"))
    if not operational:
        responses.setdefault(
            "503",
            problem(
                "The audit trail or the database is unavailable: nothing was answered; "
                "retry after `Retry-After` seconds"
            ),
        )


def create_http_app(
    *,
    settings: Settings,
    title: str,
    description: str,
    version: str,
    routers: Sequence[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None,
    readiness: Mapping[str, ReadinessCheck] | None,
    metrics: Metrics,
    verifier: TokenVerifier,
    error_status: Mapping[type[Exception], int] = {},
    readiness_timeout_s: float = DEFAULT_READINESS_TIMEOUT_S,
) -> FastAPI:
    """A service's FastAPI app with the platform's edge around its `routers`.

    - `/healthz`, `/readyz` (each of `readiness` under `readiness_timeout_s`; None: the
      caller adds its own, as `casework.service` does) and `/metrics`, open to all (tag
      "operations").
    - Errors as problem details; an exception whose class or a base class is a key of
      `error_status` gets that status, its message as `detail`, its class name as `code`.
    - `X-Request-ID` in and out, request metrics by route template, and the bearer scheme in
      OpenAPI for the Swagger UI's Authorize button.
    - `app.state.settings`, `app.state.metrics` and `app.state.authenticator` (which
      `casework.auth.require_roles` uses).
    """
    app = FastAPI(
        dependencies=[Depends(guard_route)],
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.authenticator = Authenticator(verifier)

    app.include_router(_operations_router(metrics, readiness, readiness_timeout_s))
    for router in routers:
        app.include_router(router)

    app.add_exception_handler(RequestValidationError, _request_validation_failed)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(_RouteGuardFailed, _route_guard_failed)
    domain_error = _domain_error_handler(dict(error_status))
    for exc_type in error_status:
        app.add_exception_handler(exc_type, domain_error)
    app.add_exception_handler(ConnectionFailure, _database_unavailable)

    # Added innermost first: request id → metrics → unhandled errors → input guard → routes.
    app.add_middleware(
        InputGuardMiddleware, settings=settings, authenticator=app.state.authenticator
    )
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)

    _document_problems(app, settings)
    return app
