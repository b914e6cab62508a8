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
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Any, Final, Literal

from fastapi import APIRouter, FastAPI, Request, Response
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
    """What is wrong with one field of a request."""

    field: str
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details body, as every error response carries."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str | None = None
    errors: list[FieldProblem] | None = None


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
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _status_phrase(status),
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if code is not None:
        body["code"] = code
    if errors:
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
                message=str(error.get("msg", "")),
                type=str(error.get("type", "")),
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
    return problem_response(exc.status_code, detail, headers=exc.headers, **extensions)


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
            [FieldProblem(field=field, message=str(exc), type=type(exc).__name__)]
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


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """A database outage (PyMongo `ConnectionFailure`: no server selectable, connection lost,
    network timeout, not primary) is 503 with `Retry-After`, not 500: the request may succeed
    once the database is back, and nothing was changed unless its events were stored."""
    _log.warning("database unavailable (%s): answered 503", type(exc).__name__)
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


def _document_problems(app: FastAPI) -> None:
    """Make the OpenAPI schema describe the error bodies the app really sends."""
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

        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = problem("Invalid request: `errors` lists each field")
                if operation.get("security"):
                    responses.setdefault("401", problem("Missing, invalid or expired token"))
                    responses.setdefault("403", problem("The caller lacks the roles required"))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


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
    domain_error = _domain_error_handler(dict(error_status))
    for exc_type in error_status:
        app.add_exception_handler(exc_type, domain_error)
    app.add_exception_handler(ConnectionFailure, _database_unavailable)

    # Added innermost first: request id → metrics → unhandled errors → routes.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)

    _document_problems(app)
    return app
