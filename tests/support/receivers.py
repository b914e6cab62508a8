"""Real servers the notifications tests deliver to, on loopback ports of the run's range
(`CASEWORK_E2E_BASE_PORT` + 100...): an SMTP server (aiosmtpd) that keeps what it
accepted, and an HTTP webhook receiver that verifies Standard Webhooks signatures and
answers with the status the test sets."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from casework_notifications.adapters.webhooks import verify


def port(offset: int) -> int:
    return int(os.environ.get("CASEWORK_E2E_BASE_PORT", "18001")) + offset


@dataclass
class SmtpSink:
    """An SMTP server on loopback; `start`/`stop` may be called again (down, then up)."""

    port: int
    messages: list[Message] = field(default_factory=list)
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]


@dataclass
class Delivery:
    headers: dict[str, str]
    body: str
    verified: bool


@dataclass
class WebhookReceiver:
    """A minimal HTTP/1.1 server: every POST is kept with whether its signature verifies
    under `secret`; it answers `status`."""

    port: int
    secret: str
    status: int = 204
    location: str | None = None
    """Sent as `location` (with a 3xx `status`, a redirect)."""
    deliveries: list[Delivery] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = (await reader.readexactly(int(headers.get("content-length", "0")))).decode()
            try:
                ok = verify(self.secret, headers, body)
            except (KeyError, ValueError):
                ok = False
            self.deliveries.append(Delivery(headers, body, ok))
            location = f"location: {self.location}\r\n" if self.location else ""
            writer.write(
                f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\n{location}"
                "connection: close\r\n\r\n".encode()
            )
            await writer.drain()
        finally:
            writer.close()


SMTP_OFFSET = 110
WEBHOOK_OFFSET = 210
E2E_SECRET = "whsec_" + "Y2FzZXdvcmstZTJlLXdlYmhvb2stc2VjcmV0"  # base64 of a test key


FAST_SITE = "alerts"
"""The e2e site whose crises escalate after 1 minute (the routing's site override), so an
end-to-end test can see an escalation happen and an acknowledgement stop one."""

FAST_CRISIS_ROUTING = {
    "policies": {
        "crisis_in_a_minute": {
            "name": "crisis_in_a_minute",
            "levels": [
                {"targets": ["assigned_worker", "on_call"], "delay_minutes": 0},
                {"targets": ["backup", "supervisor"], "delay_minutes": 1},
            ],
        }
    },
    "sites": {
        FAST_SITE: {
            "crisis": {
                "urgency": "critical",
                "channels": ["inbox", "email", "webhook"],
                "policy": "crisis_in_a_minute",
            }
        }
    },
}


def notifications_env(workdir: Path, base_port: int) -> dict[str, str]:
    """The notifications service's settings for a test stack: e-mail to an SMTP server and
    webhooks to a receiver on loopback ports the tests start when they need them; the
    documented routing, but crises at `FAST_SITE` escalate after 1 minute."""
    endpoints = workdir / "webhooks.json"
    url = f"http://127.0.0.1:{base_port + WEBHOOK_OFFSET}/hooks"
    endpoints.write_text(json.dumps([{"endpoint_id": "e2e", "url": url, "secrets": [E2E_SECRET]}]))
    routing = workdir / "routing.json"
    routing.write_text(json.dumps(FAST_CRISIS_ROUTING))
    return {
        "CASEWORK_NOTIFICATIONS_ROUTING_FILE": str(routing),
        "CASEWORK_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "CASEWORK_NOTIFICATIONS_SMTP_PORT": str(base_port + SMTP_OFFSET),
        "CASEWORK_NOTIFICATIONS_SMTP_TIMEOUT_S": "2",
        "CASEWORK_NOTIFICATIONS_WEBHOOKS_FILE": str(endpoints),
        "CASEWORK_NOTIFICATIONS_WEBHOOK_ALLOW": '["127.0.0.1/32"]',
        "CASEWORK_NOTIFICATIONS_WEBHOOK_TIMEOUT_S": "2",
        "CASEWORK_NOTIFICATIONS_SSE_RESYNC_S": "2",
    }
