"""A webhook endpoint registered over the API: where the agency's signed notifications go,
with its history (registered, secret rotated, disabled, enabled).

Rules (each has a test in `tests/unit/notifications/test_webhook_endpoint.py`):

- **A URL that can be called safely**: `http(s)`, a host, no credentials in it, no fragment.
  (Where it resolves — never an internal address unless allow-listed — is checked by the
  application against the delivery allow-list before anything is stored, and again before
  every request.)
- **Scope**: one site, or the whole agency (`site` None); `triggers` empty means all.
- **The secret is answered once**: at registration and at each rotation the new `whsec_`
  secret is in the answer; nothing else shows it (`view` has none).
- **Rotation signs twice**: the new secret signs first, the one it replaced second, until
  the rotation's grace ends; a rotation during a rotation drops the older secret (at most
  two signatures, as the Standard Webhooks specification has it). The new secret is issued
  in the same event that demotes the old one, so no moment has neither.
- **Disabled sends nothing**: a disabled endpoint is not given deliveries, and one already
  scheduled is skipped; enabling again is explicit. Disabling what is disabled, or enabling
  what is enabled, changes nothing.

Each command triggers at most one event, so one insert stores it (`adapters.webhook_
endpoints`). The events are this service's own, never published: they carry the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar
from urllib.parse import urlsplit

from casework.aggregate import Aggregate
from casework.events import DomainEvent

from casework_notifications.domain.errors import (
    EndpointNotRegistered,
    InvalidEndpoint,
    WebhookEndpointAlreadyRegistered,
)

SECRET_PREFIX = "whsec_"
MAX_GRACE = timedelta(hours=72)


class EndpointEvent(DomainEvent):
    """An endpoint's own event (kept in `webhook_endpoint_events`, never on Kafka)."""

    service: ClassVar[str] = "notifications"
    endpoint_id: str


class WebhookEndpointRegistered(EndpointEvent):
    url: str
    site: str | None
    triggers: tuple[str, ...]
    description: str | None
    secret: str
    registered_by: str
    registered_at: datetime


class WebhookSecretRotated(EndpointEvent):
    secret: str
    previous_valid_until: datetime
    rotated_by: str
    rotated_at: datetime


class WebhookEndpointDisabled(EndpointEvent):
    reason: str
    disabled_by: str
    disabled_at: datetime


class WebhookEndpointEnabled(EndpointEvent):
    enabled_by: str
    enabled_at: datetime


EVENTS: dict[str, type[EndpointEvent]] = {
    e.__name__: e
    for e in (
        WebhookEndpointRegistered,
        WebhookSecretRotated,
        WebhookEndpointDisabled,
        WebhookEndpointEnabled,
    )
}


@dataclass(frozen=True)
class RegisterEndpoint:
    endpoint_id: str
    url: str
    site: str | None
    triggers: tuple[str, ...]
    description: str | None
    secret: str
    by: str
    at: datetime


@dataclass(frozen=True)
class RotateSecret:
    endpoint_id: str
    secret: str
    grace: timedelta
    by: str
    at: datetime


@dataclass(frozen=True)
class DisableEndpoint:
    endpoint_id: str
    reason: str
    by: str
    at: datetime


@dataclass(frozen=True)
class EnableEndpoint:
    endpoint_id: str
    by: str
    at: datetime


EndpointCommand = RegisterEndpoint | RotateSecret | DisableEndpoint | EnableEndpoint


def check_url(url: str) -> None:
    """The URL's form (where it resolves is the allow-list's business)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidEndpoint("not a URL") from None
    if parts.scheme not in ("https", "http"):
        raise InvalidEndpoint("must be an http or https URL")
    if not parts.hostname:
        raise InvalidEndpoint("names no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpoint("must not carry credentials")
    if parts.fragment:
        raise InvalidEndpoint("must not have a fragment")
    if port == 0:
        raise InvalidEndpoint("port 0 cannot be called")


@dataclass(frozen=True)
class Change:
    """One line of an endpoint's history (no secrets)."""

    change: str
    by: str
    at: datetime
    reason: str | None = None


@dataclass
class EndpointView:
    """What anyone may see of an endpoint: everything but its secrets."""

    endpoint_id: str
    url: str
    site: str | None
    triggers: tuple[str, ...]
    description: str | None
    disabled: bool
    disabled_reason: str | None
    rotating_until: datetime | None
    registered_by: str
    registered_at: datetime
    history: list[Change] = field(default_factory=list)


class WebhookEndpoint(Aggregate):
    stream_type = "webhook-endpoint"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.registered: WebhookEndpointRegistered | None = None
        self.secret: str | None = None
        self.previous: str | None = None
        self.previous_valid_until: datetime | None = None
        self.disabled_reason: str | None = None
        self.history: list[Change] = []

    @property
    def disabled(self) -> bool:
        return self.disabled_reason is not None

    def secrets_at(self, now: datetime) -> tuple[str, ...]:
        """Who signs now: the newest secret, then the one it replaced while in its grace."""
        assert self.secret is not None
        if self.previous and self.previous_valid_until and now < self.previous_valid_until:
            return (self.secret, self.previous)
        return (self.secret,)

    def view(self, now: datetime) -> EndpointView:
        reg = self._registered()
        rotating = (
            self.previous_valid_until
            if self.previous_valid_until is not None and now < self.previous_valid_until
            else None
        )
        return EndpointView(
            endpoint_id=self.id,
            url=reg.url,
            site=reg.site,
            triggers=reg.triggers,
            description=reg.description,
            disabled=self.disabled,
            disabled_reason=self.disabled_reason,
            rotating_until=rotating,
            registered_by=reg.registered_by,
            registered_at=reg.registered_at,
            history=list(self.history),
        )

    # -- commands --------------------------------------------------------------------------

    def handle(self, cmd: EndpointCommand) -> None:
        match cmd:
            case RegisterEndpoint():
                self._register(cmd)
            case RotateSecret():
                self._rotate(cmd)
            case DisableEndpoint():
                self._registered()
                if not self.disabled:
                    self._trigger(
                        WebhookEndpointDisabled(
                            endpoint_id=self.id,
                            reason=cmd.reason,
                            disabled_by=cmd.by,
                            disabled_at=cmd.at,
                        )
                    )
            case EnableEndpoint():
                self._registered()
                if self.disabled:
                    self._trigger(
                        WebhookEndpointEnabled(
                            endpoint_id=self.id, enabled_by=cmd.by, enabled_at=cmd.at
                        )
                    )

    def _register(self, cmd: RegisterEndpoint) -> None:
        if self.registered is not None:
            raise WebhookEndpointAlreadyRegistered(self.id)
        check_url(cmd.url)
        _check_secret(cmd.secret)
        self._trigger(
            WebhookEndpointRegistered(
                endpoint_id=self.id,
                url=cmd.url,
                site=cmd.site,
                triggers=tuple(dict.fromkeys(cmd.triggers)),
                description=cmd.description,
                secret=cmd.secret,
                registered_by=cmd.by,
                registered_at=cmd.at,
            )
        )

    def _rotate(self, cmd: RotateSecret) -> None:
        self._registered()
        _check_secret(cmd.secret)
        if not timedelta(0) <= cmd.grace <= MAX_GRACE:
            raise InvalidEndpoint("the grace of a rotation is 0 to 72 hours", "body.grace_hours")
        if cmd.secret == self.secret:
            raise InvalidEndpoint("the new secret is the current one", "body.secret")
        self._trigger(
            WebhookSecretRotated(
                endpoint_id=self.id,
                secret=cmd.secret,
                previous_valid_until=cmd.at + cmd.grace,
                rotated_by=cmd.by,
                rotated_at=cmd.at,
            )
        )

    def _registered(self) -> WebhookEndpointRegistered:
        if self.registered is None:
            raise EndpointNotRegistered(self.id)
        return self.registered

    # -- state -----------------------------------------------------------------------------

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case WebhookEndpointRegistered():
                self.registered = event
                self.secret = event.secret
                self.history.append(Change("registered", event.registered_by, event.registered_at))
            case WebhookSecretRotated():
                self.previous, self.secret = self.secret, event.secret
                self.previous_valid_until = event.previous_valid_until
                self.history.append(Change("secret_rotated", event.rotated_by, event.rotated_at))
            case WebhookEndpointDisabled():
                self.disabled_reason = event.reason
                self.history.append(
                    Change("disabled", event.disabled_by, event.disabled_at, event.reason)
                )
            case WebhookEndpointEnabled():
                self.disabled_reason = None
                self.history.append(Change("enabled", event.enabled_by, event.enabled_at))


def _check_secret(secret: str) -> None:
    if not secret.startswith(SECRET_PREFIX) or len(secret) < len(SECRET_PREFIX) + 24:
        raise InvalidEndpoint("a secret is whsec_ and at least 24 base64 characters", "secret")
