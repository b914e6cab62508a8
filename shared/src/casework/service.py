"""Assembling and serving one service: the platform parts every bootstrap shares.

A service's `bootstrap.create_app` builds its `ServiceRuntime`, its application object and
its routers, and hands them to `service_app`, which adds logging, tracing, authentication,
the operational endpoints and the error mapping, and starts and stops the runtime with the
app. `serve` runs such an app under uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

from casework.access import AccessDenied, NotVisible
from casework.aggregate import VersionMismatch
from casework.asyncapi import SERVICES, asyncapi_document, asyncapi_html
from casework.audit import AuditMiddleware
from casework.auth import build_verifier
from casework.eventstore import AggregateNotFound, ConcurrencyConflict
from casework.health import Readiness, status_code
from casework.http import create_http_app
from casework.logs import configure_logging
from casework.privacy import SubjectErased
from casework.privacy.edge import OpenTokensMiddleware
from casework.rebuild import run_offline
from casework.runtime import ServiceRuntime
from casework.settings import Settings
from casework.tracing import configure_tracing, instrument_fastapi, instrument_pymongo

PLATFORM_ERRORS: Mapping[type[Exception], int] = {
    AggregateNotFound: 404,
    NotVisible: 404,
    AccessDenied: 403,
    ConcurrencyConflict: 409,
    VersionMismatch: 412,
    SubjectErased: 410,  # the person was erased: nothing new is kept about them
}


def telemetry_middlewares(settings: Settings) -> list[Any]:
    """FastStream middlewares for the broker: trace context through Kafka headers."""
    provider = configure_tracing(settings)
    return [KafkaTelemetryMiddleware(tracer_provider=provider)]


def service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    error_status: Mapping[type[Exception], int] | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    """The FastAPI app of a service whose parts `runtime` holds."""
    settings = runtime.settings
    configure_logging(settings)
    provider = configure_tracing(settings)
    instrument_pymongo(provider)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.running():
            yield

    app = create_http_app(
        settings=settings,
        title=title,
        description=description,
        version=version,
        routers=routers,
        lifespan=lifespan,
        readiness=None,  # served below, from every part's own state
        metrics=runtime.metrics,
        verifier=build_verifier(settings),
        error_status={**PLATFORM_ERRORS, **(error_status or {})},
    )
    app.include_router(readiness_router(runtime.readiness()))
    app.include_router(_asyncapi_router(settings.service))
    # inside the audit middleware: the subjects an answer shows are known when it records
    app.add_middleware(OpenTokensMiddleware, opener=runtime.opener)
    app.add_middleware(AuditMiddleware, trail=runtime.audit)
    instrument_fastapi(app, provider)
    app.state.runtime = runtime
    return app


def readiness_router(readiness: Readiness) -> APIRouter:
    """`/readyz`: 200 while the replica can serve (`ok` or `degraded`), 503 when it cannot
    (`down`); the body names each part's state and why (`casework.health`). Open to all, as
    `/healthz` is: it carries no client data."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/readyz",
        summary="Readiness: can this replica serve, and what is behind",
        responses={
            200: {"description": "Serving: `status` is `ok`, or `degraded` with `reasons`"},
            503: {"description": "Cannot serve (`status` `down`); `reasons` says why"},
        },
    )
    async def readyz() -> JSONResponse:
        report = await readiness.report()
        return JSONResponse(report, status_code=status_code(report))

    return router


def _asyncapi_router(service: str) -> APIRouter:
    """`/asyncapi.json` and `/asyncapi`: the events this service publishes (no token needed:
    it is the public contract, with no client data)."""
    router = APIRouter(tags=["operations"])
    known = service if service in SERVICES else None

    @router.get("/asyncapi.json", summary="AsyncAPI 3.0 document of this service's events")
    async def asyncapi_json() -> dict[str, Any]:
        return asyncapi_document(known)

    @router.get(
        "/asyncapi",
        summary="The events this service publishes, as a page",
        response_class=HTMLResponse,
        responses={200: {"description": "An HTML page", "content": {"text/html": {}}}},
    )
    async def asyncapi_page() -> HTMLResponse:
        return HTMLResponse(asyncapi_html(asyncapi_document(known)))

    return router


def service_main(
    name: str,
    port: int,
    app_factory: str,
    runtime_of: Callable[[Settings], ServiceRuntime],
    argv: Sequence[str] | None = None,
) -> int:
    """The command line of a service (`python -m casework_<name> ...`):

    - `serve` (the default): run the HTTP API, the relay and the consumers;
    - `projections`, `parked`, `rebuild NAME`, `replay-dead-letters NAME`,
      `discard-dead-letters NAME`: the operator commands, also found as `casework rebuild`,
      `casework dead-letters`, `casework parked` (`casework.rebuild.run_offline`; the
      service must be stopped).
    """
    parser = argparse.ArgumentParser(prog=f"python -m casework_{name}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    commands.add_parser("projections", help="list the read models and policies")
    commands.add_parser("parked", help="list the streams parked behind a dead letter")
    for command, help in (
        ("rebuild", "rebuild a read model from its topics"),
        ("replay-dead-letters", "apply dead letters again, then release their streams"),
        ("discard-dead-letters", "drop dead letters, then release their streams"),
    ):
        sub = commands.add_parser(command, help=help)
        sub.add_argument("projection", help="its name, as `projections` lists it")
        if command != "rebuild":
            sub.add_argument("--stream", action="append", dest="streams", help="only this")
    args = parser.parse_args(argv)
    settings = Settings.for_service(name, port)
    if args.command in (None, "serve"):
        serve(app_factory, settings)
        return 0
    configure_logging(settings)
    command = {"replay-dead-letters": "replay", "discard-dead-letters": "discard"}.get(
        args.command, args.command
    )
    return asyncio.run(
        offline(
            runtime_of,
            settings,
            command,
            getattr(args, "projection", None),
            streams=getattr(args, "streams", None),
        )
    )


async def offline(
    runtime_of: Callable[[Settings], ServiceRuntime],
    settings: Settings,
    command: str,
    name: str | None,
    *,
    streams: list[str] | None = None,
) -> int:
    """Build the service's runtime (not started) and run one operator command on it."""
    # Kafka clients must be made inside the event loop that runs them.
    runtime = runtime_of(settings)
    try:
        return await run_offline(
            runtime,
            command,
            name,
            streams=streams,
            progress=lambda line: print(line, file=sys.stderr),
        )
    finally:
        await runtime.stop()  # closes the clients it made, started or not


def serve(app_factory: str, settings: Settings) -> None:
    """Run `module:function` (an app factory) under uvicorn on the settings' host and port."""
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # logging is configured by the app, as JSON lines
        access_log=False,
        timeout_keep_alive=settings.http_keep_alive_s,
    )
