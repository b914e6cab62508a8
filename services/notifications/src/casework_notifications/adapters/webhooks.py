"""Webhooks per the Standard Webhooks specification (https://www.standardwebhooks.com/).

Each request carries `webhook-id` (the message id, the same on every retry, so a receiver
de-duplicates), `webhook-timestamp` (seconds since the epoch, of this attempt) and
`webhook-signature`: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` under the
endpoint's secret (`whsec_<base64 key>`); while a secret is being rotated the endpoint lists
two, and both signatures are sent, space-separated. Payloads are thin: ids and a link.

Targets are checked before every request: every address the host resolves to must be a
public (global) address, or listed in the allow-list (hosts or CIDR networks); loopback,
private, link-local (cloud metadata) and other internal addresses are refused otherwise.
Redirects are not followed. **The request goes to the address that was checked**: the name is
resolved once per request, and the connection is made to that address (the `Host` header and
TLS's SNI and certificate check keep the name), so a name whose DNS answer changes between the
check and the connection (DNS rebinding) cannot point a request at an internal address. Hosts
the allow-list names are trusted by name and connected to as usual.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, Field

SECRET_PREFIX = "whsec_"


class Endpoint(BaseModel):
    """A receiver of the agency's webhooks."""

    endpoint_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    url: str
    secrets: tuple[str, ...] = Field(min_length=1, max_length=2)
    """`whsec_...`; two while rotating (the newest first)."""
    triggers: tuple[str, ...] = ()
    """Which triggers it receives; empty: all."""
    site: str | None = None
    """The one site whose notifications it receives; None: the whole agency's."""


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The `v1,` signature of one message under one secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    to_sign = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Iterable[str], msg_id: str, timestamp: int, body: str) -> str:
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def verify(secret: str, headers: dict[str, str], body: str) -> bool:
    """Whether one of the `v1` signatures in the headers is this secret's (constant time)."""
    msg_id = headers["webhook-id"]
    timestamp = int(headers["webhook-timestamp"])
    expected = sign(secret, msg_id, timestamp, body)
    return any(
        hmac.compare_digest(candidate, expected)
        for candidate in headers["webhook-signature"].split(" ")
    )


class TargetRefused(Exception):
    """The endpoint's address is not allowed (internal, or not in the allow-list)."""


Resolver = Callable[[str, int], Awaitable[list[str]]]
"""A host's addresses (the system's resolver; tests give their own)."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Target:
    """Where a request to an endpoint goes: `url` with the checked address in place of the
    name (or the URL as given), and the name for the `Host` header and TLS, when pinned."""

    url: str
    host: str | None = None
    sni_hostname: str | None = None


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    resolve: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def of(cls, entries: Sequence[str], resolve: Resolver = system_resolver) -> AllowList:
        hosts: set[str] = set()
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower())
        return cls(frozenset(hosts), tuple(networks), resolve)

    async def check(self, url: str) -> None:
        await self.target(url)

    async def target(self, url: str) -> Target:
        """The checked target of `url` (see the module docstring), or `TargetRefused`."""
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise TargetRefused("not an http(s) URL")
        host = parts.hostname.lower()
        if host in self.hosts:
            return Target(url)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self._check_address(host, literal)
            return Target(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await self.resolve(host, port)
        if not addresses:
            raise TargetRefused(f"{host} does not resolve")
        for address in addresses:
            self._check_address(host, ipaddress.ip_address(address))
        pinned = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
        at = f":{parts.port}" if parts.port else ""
        return Target(
            urlunsplit(parts._replace(netloc=pinned + at)),
            host=host + at,
            sni_hostname=host if parts.scheme == "https" else None,
        )

    def _check_address(
        self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> None:
        if any(address in n for n in self.networks):
            return
        if not address.is_global:
            raise TargetRefused(f"{host} resolves to an internal address")


@dataclass(frozen=True)
class Response:
    status: int


class WebhookSender:
    def __init__(self, allow: AllowList, timeout_s: float) -> None:
        self.allow = allow
        self.timeout_s = timeout_s

    async def send(
        self, endpoint: Endpoint, msg_id: str, timestamp: int, payload: dict[str, Any]
    ) -> Response:
        target = await self.allow.target(endpoint.url)
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(endpoint.secrets, msg_id, timestamp, body),
        }
        if target.host is not None:
            headers["host"] = target.host
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            response = await client.post(
                target.url, content=body, headers=headers, extensions=extensions
            )
        return Response(response.status_code)
