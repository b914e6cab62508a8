"""Webhook endpoints: those of the configuration file, and those registered over the API
(`domain.webhook_endpoint`), as one list the deliveries read.

Handlers are short: load the endpoint, call one domain method, save. Two checks need I/O and
happen here, before anything is stored: the URL must resolve to addresses the delivery
allow-list accepts (never an internal address unless listed), and the id must not be one
the file uses. New secrets are drawn here (32 random bytes, `whsec_` + base64) and
answered once by the route.

**Invariant:** the deliveries see the file's endpoints plus every registered endpoint that
is not disabled, with the secrets that sign at that moment — read from the database on each
use, so every replica sees a change as soon as it is stored.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from casework.auth import Principal
from casework.clock import Clock
from casework.eventstore import Document, retrying_lost_races

from casework_notifications.adapters.webhook_endpoints import EndpointStore
from casework_notifications.adapters.webhooks import AllowList, Endpoint, TargetRefused
from casework_notifications.application.delivery import DeliveryLog
from casework_notifications.application.ports import Sites
from casework_notifications.domain.errors import (
    EndpointConfiguredByFile,
    EndpointNotRegistered,
    InvalidEndpoint,
)
from casework_notifications.domain.webhook_endpoint import (
    SECRET_PREFIX,
    DisableEndpoint,
    EnableEndpoint,
    EndpointCommand,
    EndpointView,
    RegisterEndpoint,
    RotateSecret,
    WebhookEndpoint,
    check_url,
)

RESOLVE_TIMEOUT_S = 5.0
"""How long registration waits for the host to resolve (the request is answered, 422)."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Issued:
    """An endpoint and the secret just issued for it (answered once)."""

    view: EndpointView
    secret: str


class WebhookEndpoints:
    def __init__(
        self,
        store: EndpointStore,
        configured: Sequence[Endpoint],
        allow: AllowList,
        log_: DeliveryLog,
        clock: Clock,
        sites: Sites,
    ) -> None:
        self.store = store
        self.sites = sites
        self.configured = {e.endpoint_id: e for e in configured}
        self.allow = allow
        self.log = log_
        self.clock = clock

    # -- what the deliveries read ------------------------------------------------------------

    async def active(self) -> list[Endpoint]:
        """The endpoints deliveries go to now: the file's, and the registered not disabled."""
        now = self.clock.now()
        registered = [self._endpoint(e, now) for e in await self.store.all() if not e.disabled]
        return [*self.configured.values(), *registered]

    async def get(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint if a delivery may go to it now (None: unknown, or disabled)."""
        if endpoint_id in self.configured:
            return self.configured[endpoint_id]
        found = await self.store.find(endpoint_id)
        if found is None or found.disabled:
            return None
        return self._endpoint(found, self.clock.now())

    async def known(self, endpoint_id: str) -> bool:
        return endpoint_id in self.configured or await self.store.find(endpoint_id) is not None

    # -- the operators' commands -------------------------------------------------------------

    async def register(
        self,
        url: str,
        site: str | None,
        triggers: Sequence[str],
        description: str | None,
        principal: Principal,
    ) -> Issued:
        check_url(url)
        if site is not None and not await self.sites.exists(site):
            raise InvalidEndpoint(
                f"no site {site!r} is registered in the organisation directory", "body.site"
            )
        await self._check_target(url)
        endpoint_id = _new_id()
        while endpoint_id in self.configured:
            endpoint_id = _new_id()
        secret = new_secret()
        endpoint = WebhookEndpoint(endpoint_id)
        endpoint.handle(
            RegisterEndpoint(
                endpoint_id,
                url,
                site,
                tuple(triggers),
                description,
                secret,
                principal.sub,
                self.clock.now(),
            )
        )
        await self.store.save(endpoint)
        return Issued(endpoint.view(self.clock.now()), secret)

    async def rotate(self, endpoint_id: str, grace: timedelta, principal: Principal) -> Issued:
        secret = new_secret()
        endpoint = await self._run(
            endpoint_id, RotateSecret(endpoint_id, secret, grace, principal.sub, self.clock.now())
        )
        return Issued(endpoint.view(self.clock.now()), secret)

    async def disable(self, endpoint_id: str, reason: str, principal: Principal) -> EndpointView:
        cmd = DisableEndpoint(endpoint_id, reason, principal.sub, self.clock.now())
        return (await self._run(endpoint_id, cmd)).view(self.clock.now())

    async def enable(self, endpoint_id: str, principal: Principal) -> bool:
        """Enable again what an operator disabled, or what its receiver's answers disabled
        (410, failing for days); whether it was disabled."""
        was_disabled = False
        if endpoint_id not in self.configured:
            before = await self._load(endpoint_id)
            was_disabled = before.disabled
            await self._run(
                endpoint_id, EnableEndpoint(endpoint_id, principal.sub, self.clock.now())
            )
        return await self.log.enable(endpoint_id) or was_disabled

    # -- reads -------------------------------------------------------------------------------

    async def disabled_by_answers(self, endpoint_id: str) -> Document | None:
        """The delivery log's disable (410, or failing for days), which `enable` lifts too."""
        return await self.log.disabled_by_answers(endpoint_id)

    async def registered(self) -> list[EndpointView]:
        now = self.clock.now()
        return [e.view(now) for e in await self.store.all()]

    async def view(self, endpoint_id: str) -> EndpointView | Endpoint:
        if endpoint_id in self.configured:
            return self.configured[endpoint_id]
        return (await self._load(endpoint_id)).view(self.clock.now())

    # -- helpers -----------------------------------------------------------------------------

    async def _check_target(self, url: str) -> None:
        try:
            await asyncio.wait_for(self.allow.check(url), RESOLVE_TIMEOUT_S)
        except TargetRefused as exc:
            raise InvalidEndpoint(f"refused: {exc}") from None
        except (OSError, TimeoutError):  # the name does not resolve (socket.gaierror), or late
            raise InvalidEndpoint("the host does not resolve") from None

    async def _load(self, endpoint_id: str) -> WebhookEndpoint:
        if endpoint_id in self.configured:
            raise EndpointConfiguredByFile(endpoint_id)
        found = await self.store.find(endpoint_id)
        if found is None:
            raise EndpointNotRegistered(endpoint_id)
        return found

    async def _run(self, endpoint_id: str, cmd: EndpointCommand) -> WebhookEndpoint:
        """Load, decide, save; a lost race reloads and decides again on the winner's state."""

        async def attempt() -> WebhookEndpoint:
            endpoint = await self._load(endpoint_id)
            endpoint.handle(cmd)
            await self.store.save(endpoint)
            return endpoint

        return await retrying_lost_races(attempt)

    @staticmethod
    def _endpoint(endpoint: WebhookEndpoint, now: datetime) -> Endpoint:
        view = endpoint.view(now)
        return Endpoint(
            endpoint_id=endpoint.id,
            url=view.url,
            secrets=endpoint.secrets_at(now),
            triggers=view.triggers,
            site=view.site,
        )


def _new_id() -> str:
    return "ep_" + secrets.token_hex(10)
