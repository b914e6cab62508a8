"""Structured logs (DESIGN §9): one JSON object per line on stderr, carrying trace ids.

Each line has `time`, `level`, `logger`, `message`, `service`, the current OpenTelemetry
`trace_id`/`span_id` and HTTP `request_id` when there are any, and the `extra=` fields of the
call. With `log_json` off, the same goes out as readable text for a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Final

from opentelemetry import trace

from casework.settings import Settings

_request_id: ContextVar[str | None] = ContextVar("casework_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES: Final = frozenset(
    {
        "args",
        "asctime",
        "created",
        "exc_info",
        "exc_text",
        "filename",
        "funcName",
        "levelname",
        "levelno",
        "lineno",
        "message",
        "module",
        "msecs",
        "msg",
        "name",
        "pathname",
        "process",
        "processName",
        "relativeCreated",
        "stack_info",
        "taskName",
        "thread",
        "threadName",
        "color_message",  # uvicorn's coloured copy of the message
    }
)
_UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")


def bind_request_id(request_id: str | None) -> Token[str | None]:
    """Make `request_id` appear on log lines of the current context; reset with the token."""
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    """Undo the matching `bind_request_id`."""
    _request_id.reset(token)


def current_request_id() -> str | None:
    """The id of the HTTP request being handled in this context, if any."""
    return _request_id.get()


def _context_fields() -> dict[str, str]:
    fields: dict[str, str] = {}
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields["trace_id"] = trace.format_trace_id(span_context.trace_id)
        fields["span_id"] = trace.format_span_id(span_context.span_id)
    if (request_id := _request_id.get()) is not None:
        fields["request_id"] = request_id
    return fields


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self._service,
            **_context_fields(),
        }
        # Fields passed with `extra=` never overwrite the ones above.
        for key, value in _extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable one-line text with the same fields, for a developer's terminal."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, with context and extra fields appended as key=value."""
        line = super().format(record)
        fields = {**_context_fields(), **_extra_fields(record)}
        if fields:
            suffix = " ".join(f"{key}={value}" for key, value in fields.items())
            first, sep, rest = line.partition("\n")  # keep tracebacks after the fields
            line = f"{first} [{suffix}]{sep}{rest}"
        return line


class _CaseworkHandler(logging.StreamHandler[Any]):
    """Marks the handler `configure_logging` installed, so a second call replaces it."""


def configure_logging(settings: Settings) -> None:
    """Send every log record (uvicorn's included) to stderr, as JSON or text.

    Idempotent: calling it again replaces the previous configuration instead of doubling
    output. Handlers others installed on the root logger (pytest's, for one) are kept.
    Run uvicorn with `log_config=None` so that it does not install its own handlers over these.
    """
    handler = _CaseworkHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter(settings.service) if settings.log_json else TextFormatter(settings.service)
    )
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CaseworkHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level)

    # uvicorn installs its own handlers and stops propagation; route its loggers through ours.
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
