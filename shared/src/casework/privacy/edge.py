"""Opening the tokens of an answer at the HTTP edge, after the route authorised the caller.

`OpenTokensMiddleware` sits inside the audit middleware: a route returns its answer with
tokens in it (read models and aggregates hold only tokens); the middleware holds back a
successful JSON answer until it is complete, opens its tokens (`casework.privacy.sealing`),
reports the subjects shown to the request's audit record (`casework.audit.subjects_shown`),
and only then sends it. A refused request (4xx) never reaches a route's answer, so nothing is
opened for it; an answer without tokens passes as it is, byte for byte (one search).
"""

from __future__ import annotations

import json
import re
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.audit import subjects_shown
from casework.privacy.sealing import Opener
from casework.privacy.tokens import PREFIX, TOKEN

_MARKER: Final = PREFIX.encode()
_TOKEN_BYTES: Final = re.compile(TOKEN.pattern.encode())


class OpenTokensMiddleware:
    """Opens the tokens of every successful JSON answer (see module)."""

    def __init__(self, app: ASGIApp, opener: Opener) -> None:
        self.app = app
        self.opener = opener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_opened(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = MutableHeaders(scope=message).get("content-type", "")
                if message["status"] < 400 and content_type.startswith("application/json"):
                    start = message  # held back until the body is complete
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            if _MARKER in body and _TOKEN_BYTES.search(body):  # else sent as it is
                opened, subjects = await self.opener.open(json.loads(body))
                body = json.dumps(
                    opened, ensure_ascii=False, allow_nan=False, separators=(",", ":")
                ).encode()
                subjects_shown(subjects)
                MutableHeaders(scope=start)["content-length"] = str(len(body))
            held, start = start, None
            await send(held)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, send_opened)
