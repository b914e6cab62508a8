"""The HTTP edge: operational endpoints, problem details, request ids, metrics, logs, traces."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, Field

from casework.auth import build_verifier
from casework.http import ReadinessCheck, create_http_app, title_from_class_name
from casework.logs import JsonFormatter, configure_logging
from casework.metrics import Metrics
from casework.settings import Settings
from casework.tracing import (
    configure_tracing,
    extract_trace_context,
    inject_trace_headers,
    instrument_fastapi,
)

# --- a small service to test the edge with -----------------------------------------------


class CaseError(Exception):
    """Base of the test service's domain errors."""


class CaseAlreadyClosed(CaseError):
    pass


class CaseNotFound(CaseError):
    pass


class PlanNotApproved(Exception):
    pass


class NewClient(BaseModel):
    name: str
    date_of_birth: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")


class NewReferral(BaseModel):
    client: NewClient
    reason: str


class Goal(BaseModel):
    title: str = Field(min_length=1)


def _router() -> APIRouter:
    router = APIRouter(prefix="/cases")

    @router.get("/{case_id}")
    async def get_case(case_id: str, detail: int = 0) -> dict[str, str]:
        match case_id:
            case "closed":
                raise CaseAlreadyClosed(f"case {case_id} was closed on 2025-03-01")
            case "gone":
                raise CaseNotFound(f"no case {case_id}")
            case "unplanned":
                raise PlanNotApproved("the plan awaits a supervisor's approval")
            case "hidden":
                raise HTTPException(404, f"no case {case_id}", headers={"X-Hint": "archive"})
            case "broken":
                raise RuntimeError("mongo password is hunter2")
            case "goal":
                Goal.model_validate({"title": ""})  # a payload turned into a value object
        return {"id": case_id}

    @router.post("", status_code=201)
    async def refer(referral: NewReferral) -> dict[str, str]:
        return {"client": referral.client.name}

    return router


def _ok() -> ReadinessCheck:
    async def check() -> bool:
        return True

    return check


def _settings(tmp_path: Path) -> Settings:
    return Settings.for_service(
        "cases", 8002, environment="test", jwt_dev_key_path=tmp_path / "dev.pem"
    )


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CASEWORK_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics("cases")


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_app(key_dir: Path, metrics: Metrics) -> AppFactory:
    def make(readiness: Mapping[str, ReadinessCheck] | None = None, **options: Any) -> FastAPI:
        settings = _settings(key_dir)
        return create_http_app(
            settings=settings,
            title="Cases",
            description="Cases service",
            version="1.2.3",
            routers=[_router()],
            lifespan=None,
            readiness={"mongo": _ok()} if readiness is None else readiness,
            metrics=metrics,
            verifier=build_verifier(settings),
            error_status={CaseError: 404, CaseAlreadyClosed: 409, ValueError: 422},
            **options,
        )

    return make


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cases")


@pytest.fixture
async def client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(make_app()) as client:
        yield client


# --- operational endpoints ---------------------------------------------------------------


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_check_passes(make_app: AppFactory) -> None:
    app = make_app(readiness={"mongo": _ok(), "kafka": _ok()})

    async with _client(app) as client:
        response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"mongo": "ok", "kafka": "ok"}}


async def test_readyz_is_503_naming_each_failed_check(make_app: AppFactory) -> None:
    async def down() -> bool:
        return False

    async def raising() -> bool:
        raise ConnectionError("broker at 10.0.0.7 refused")

    async def slow() -> bool:
        await asyncio.sleep(5)
        return True

    app = make_app(
        readiness={"mongo": _ok(), "kafka": down, "consumers": raising, "deadlines": slow},
        readiness_timeout_s=0.05,
    )

    async with _client(app) as client:
        response = await client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert body["checks"] == {
        "mongo": "ok",
        "kafka": "failed",
        "consumers": "error",
        "deadlines": "timeout",
    }
    assert body["detail"] == "not ready: kafka (failed), consumers (error), deadlines (timeout)"
    assert "10.0.0.7" not in response.text  # probes are open to all: no internals


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/cases/c-1")
    await client.get("/cases/c-2")
    await client.get("/no/such/path")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = response.text.splitlines()
    assert (
        'casework_http_requests_total{method="GET",route="/cases/{case_id}",status="200"} 2.0'
        in (lines)
    )
    assert 'casework_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in lines
    assert any(
        line.startswith(
            'casework_http_request_duration_seconds_count{method="GET",route="/cases/{case_id}"}'
        )
        for line in lines
    )
    assert "c-1" not in response.text


async def test_metrics_count_unhandled_errors_as_500(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    await client.get("/cases/broken")

    labels = {"method": "GET", "route": "/cases/{case_id}", "status": "500"}
    assert metrics.registry.get_sample_value("casework_http_requests_total", labels) == 1


async def test_operational_endpoints_need_no_token_and_are_tagged(make_app: AppFactory) -> None:
    schema = make_app().openapi()

    for path in ("/healthz", "/readyz", "/metrics"):
        operation = schema["paths"][path]["get"]
        assert operation["tags"] == ["operations"]
        assert "security" not in operation


def test_app_state_carries_settings_metrics_and_authenticator(
    make_app: AppFactory, metrics: Metrics
) -> None:
    app = make_app()

    assert app.state.settings.service == "cases"
    assert app.state.metrics is metrics
    assert app.state.authenticator.verifier is not None
    assert app.title == "Cases"
    assert app.version == "1.2.3"


# --- problem details ---------------------------------------------------------------------


async def test_invalid_body_gives_one_error_per_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/cases",
        json={"client": {"name": "Jo Client", "date_of_birth": "31/12/1990"}},
    )

    body = response.json()
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert body["type"] == "about:blank"
    assert body["title"] == "Invalid request"
    assert body["status"] == 422
    assert {(e["field"], e["type"]) for e in body["errors"]} == {
        ("body.client.date_of_birth", "string_pattern_mismatch"),
        ("body.reason", "missing"),
    }
    assert all(e["message"] for e in body["errors"])
    assert "31/12/1990" not in response.text  # rejected values are not echoed


async def test_invalid_query_parameter_is_named_by_location(client: httpx.AsyncClient) -> None:
    response = await client.get("/cases/c-1", params={"detail": "lots"})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["query.detail"]


async def test_malformed_json_is_a_body_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/cases", content=b'{"client": ', headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "json_invalid"
    assert response.json()["errors"] == [
        {
            "field": "body",
            "code": "json_invalid",
            "message": "the body is not valid JSON",
            "type": "json_invalid",
        }
    ]


async def test_a_domain_error_gets_its_mapped_status_title_and_code(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/cases/closed")

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Case already closed",
        "status": 409,
        "detail": "case closed was closed on 2025-03-01",
        "code": "CaseAlreadyClosed",
        "errors": [],
    }


async def test_a_domain_error_is_mapped_through_its_base_class(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/cases/gone")

    assert response.status_code == 404
    assert response.json()["code"] == "CaseNotFound"
    assert response.json()["title"] == "Case not found"


async def test_a_pydantic_error_mapped_to_422_is_reported_field_by_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/cases/goal")

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "title",
            "code": "string_too_short",
            "message": "String should have at least 1 character",
            "type": "string_too_short",
        }
    ]


async def test_an_unmapped_exception_is_a_500_that_leaks_nothing(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="casework.http"):
        response = await client.get("/cases/unplanned", headers={"X-Request-ID": "req-42"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["X-Request-ID"] == "req-42"
    assert response.json()["request_id"] == "req-42"
    assert "supervisor" not in response.text
    assert "PlanNotApproved" not in response.text
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], PlanNotApproved)


async def test_http_exceptions_pass_through_as_problems(client: httpx.AsyncClient) -> None:
    response = await client.get("/cases/hidden")

    assert response.status_code == 404
    assert response.headers["X-Hint"] == "archive"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no case hidden",
        "code": "NotFound",
        "errors": [],
    }


async def test_a_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Method Not Allowed"


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("CaseAlreadyClosed", "Case already closed"),
        ("PlanNotApproved", "Plan not approved"),
        ("HTTPTimeoutReached", "HTTP timeout reached"),
        ("Step2Missing", "Step 2 missing"),
        ("Conflict", "Conflict"),
    ],
)
def test_class_names_become_titles(name: str, title: str) -> None:
    assert title_from_class_name(name) == title


def test_openapi_documents_problem_bodies(make_app: AppFactory) -> None:
    schema = make_app().openapi()

    invalid = schema["paths"]["/cases"]["post"]["responses"]["422"]
    assert invalid["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "errors" in schema["components"]["schemas"]["Problem"]["properties"]


# --- request ids -------------------------------------------------------------------------


async def test_a_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    assert len(first.headers["X-Request-ID"]) == 32
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_a_safe_request_id_is_echoed_and_an_unsafe_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "gw-7f3a:01"})
    replaced = await client.get("/healthz", headers={"X-Request-ID": "x\ninjected=1"})

    assert echoed.headers["X-Request-ID"] == "gw-7f3a:01"
    assert "injected" not in replaced.headers["X-Request-ID"]


# --- logs --------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    uvicorn = logging.getLogger("uvicorn.access")
    uvicorn_state = (list(uvicorn.handlers), uvicorn.propagate, uvicorn.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    uvicorn.handlers[:], uvicorn.propagate, uvicorn.level = uvicorn_state


def _record(message: str, **extra: Any) -> logging.LogRecord:
    return logging.getLogger("casework.test").makeRecord(
        "casework.test", logging.WARNING, __file__, 1, message, (), None, extra=extra
    )


def test_json_log_lines_carry_trace_ids_and_extra_fields() -> None:
    provider = TracerProvider()
    formatter = JsonFormatter("cases")

    with provider.get_tracer("test").start_as_current_span("command") as span:
        line = formatter.format(_record("case opened", case_id="c-1", service="spoofed"))

    entry = json.loads(line)
    context = span.get_span_context()
    assert entry["message"] == "case opened"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "casework.test"
    assert entry["service"] == "cases"  # extra fields never overwrite the standard ones
    assert entry["case_id"] == "c-1"
    assert entry["trace_id"] == trace.format_trace_id(context.trace_id)
    assert entry["span_id"] == trace.format_span_id(context.span_id)
    assert entry["time"].endswith("+00:00")


def test_json_log_lines_without_a_span_have_no_trace_ids() -> None:
    entry = json.loads(JsonFormatter("cases").format(_record("idle")))

    assert "trace_id" not in entry


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_is_idempotent_and_routes_uvicorn(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    configure_logging(settings)
    configure_logging(settings.model_copy(update={"log_json": False, "log_level": "DEBUG"}))

    root = logging.getLogger()
    ours = [h for h in root.handlers if type(h).__name__ == "_CaseworkHandler"]
    assert len(ours) == 1
    assert type(ours[0].formatter).__name__ == "TextFormatter"
    assert root.level == logging.DEBUG
    assert logging.getLogger("uvicorn.access").propagate is True
    assert logging.getLogger("uvicorn.access").handlers == []


# --- traces ------------------------------------------------------------------------------


def test_trace_context_travels_through_message_headers() -> None:
    provider = TracerProvider()

    with provider.get_tracer("test").start_as_current_span("publish") as span:
        headers = inject_trace_headers()

    assert [name for name, _ in headers] == ["traceparent"]
    context = extract_trace_context(dict(headers))
    extracted = trace.get_current_span(context).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.span_id == span.get_span_context().span_id
    assert extracted.is_remote


def test_extracting_accepts_text_headers_in_any_case() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    context = extract_trace_context({"TraceParent": parent})

    assert trace.get_current_span(context).get_span_context().trace_id == int(
        "0af7651916cd43dd8448eb211c80319c", 16
    )


def test_no_trace_headers_without_a_span() -> None:
    assert inject_trace_headers() == []


def test_tracing_off_means_no_provider(tmp_path: Path) -> None:
    assert configure_tracing(_settings(tmp_path)) is None


@pytest.mark.usefixtures("restore_logging")
async def test_an_instrumented_app_continues_the_callers_trace_into_its_logs(
    make_app: AppFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    configure_logging(_settings(tmp_path))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = make_app()
    instrument_fastapi(app, provider)
    instrument_fastapi(app, provider)  # idempotent: one server span per request below
    trace_id = "0af7651916cd43dd8448eb211c80319c"

    async with _client(app) as client:
        await client.get("/healthz")  # probes are not traced
        response = await client.get(
            "/cases/broken",
            headers={
                "traceparent": f"00-{trace_id}-b7ad6b7169203331-01",
                "X-Request-ID": "req-9",
            },
        )

    assert response.status_code == 500
    server_spans = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert [s.name for s in server_spans] == ["GET /cases/{case_id}"]
    assert trace.format_trace_id(server_spans[0].context.trace_id) == trace_id
    assert server_spans[0].status.status_code == trace.StatusCode.ERROR
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    [error] = [e for e in entries if e["logger"] == "casework.http"]
    assert error["level"] == "ERROR"
    assert error["trace_id"] == trace_id
    assert error["request_id"] == "req-9"
    assert error["service"] == "cases"
    assert "RuntimeError" in error["exception"]
