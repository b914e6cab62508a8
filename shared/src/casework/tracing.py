"""OpenTelemetry tracing: one trace per command across services (DESIGN §9).

HTTP → event store → relay → Kafka headers → consumers → read models. `configure_tracing`
builds the process's tracer provider; `instrument_fastapi` and `instrument_pymongo` attach it
to the app and the MongoDB driver; `inject_trace_headers` and `extract_trace_context` carry the
W3C trace context through Kafka message headers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from casework.settings import Settings

_log = logging.getLogger(__name__)

# Probes and scrapes arrive every few seconds and would drown the traces that matter.
_UNTRACED_URLS = "/healthz$,/readyz$,/metrics$"


def _exporter(settings: Settings) -> SpanExporter:
    if settings.otel_exporter == "console":
        return ConsoleSpanExporter(service_name=settings.service)
    endpoint = settings.otel_endpoint
    # Accept a collector's base URL ("http://collector:4318") as well as the traces URL.
    if endpoint and urlsplit(endpoint).path in {"", "/"}:
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    # With no endpoint, the exporter reads OTEL_EXPORTER_OTLP_* or uses localhost:4318.
    return OTLPSpanExporter(endpoint=endpoint)


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """The process's tracer provider, set as the global one; `None` when tracing is off.

    OpenTelemetry allows the global provider to be set once per process. When one is already
    set (a second app in the same process, as in tests), it is returned unchanged and the new
    exporter settings are ignored.
    """
    if settings.otel_exporter == "none":
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        _log.debug("tracer provider already configured; reusing it for %s", settings.service)
        return current
    resource = Resource.create(
        {
            "service.name": settings.service,
            "service.namespace": "casework",
            "deployment.environment.name": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    trace.set_tracer_provider(provider)
    return provider


def instrument_fastapi(app: FastAPI, provider: TracerProvider | None) -> None:
    """Trace every request to `app` (not probes or scrapes); a no-op without a provider.

    Idempotent per app. Incoming `traceparent` headers continue the caller's trace.
    """
    if provider is None or getattr(app, "_is_instrumented_by_opentelemetry", False):
        return
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=_UNTRACED_URLS)


def instrument_pymongo(provider: TracerProvider | None) -> None:
    """Trace MongoDB commands (names only, never the statements: they hold client data).

    Idempotent; a no-op without a provider. PyMongo listeners are process-wide: call it
    before creating clients.
    """
    instrumentor = PymongoInstrumentor()
    if provider is None or instrumentor.is_instrumented_by_opentelemetry:
        return
    instrumentor.instrument(tracer_provider=provider, capture_statement=False)


def inject_trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers (W3C `traceparent`, `tracestate`).

    Empty when there is no active span, so a message never carries an invalid parent.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


def extract_trace_context(headers: Mapping[str, bytes | str]) -> Context:
    """The trace context carried in message headers, to start a consumer's span under.

    Header names are matched case-insensitively; undecodable values are ignored.
    """
    carrier: dict[str, str] = {}
    for key, value in headers.items():
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:
                continue
        carrier[key.lower()] = value
    return propagate.extract(carrier)
