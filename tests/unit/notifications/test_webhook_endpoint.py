"""The webhook endpoint's rules (`domain.webhook_endpoint`), given-when-then: a URL that can
be called safely, the secret answered once, rotation with two signatures for the grace
only, disable and enable, the history."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from casework.events import DomainEvent

from casework_notifications.adapters.webhooks import signature_header, verify
from casework_notifications.domain.errors import (
    EndpointNotRegistered,
    InvalidEndpoint,
    WebhookEndpointAlreadyRegistered,
)
from casework_notifications.domain.webhook_endpoint import (
    DisableEndpoint,
    EnableEndpoint,
    RegisterEndpoint,
    RotateSecret,
    WebhookEndpoint,
    WebhookEndpointDisabled,
    WebhookEndpointEnabled,
    WebhookEndpointRegistered,
    WebhookSecretRotated,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()


def register(**change: object) -> RegisterEndpoint:
    values: dict[str, object] = {
        "endpoint_id": "ep_1",
        "url": "https://hooks.example.org/casework",
        "site": "north",
        "triggers": ("crisis",),
        "description": None,
        "secret": OLD,
        "by": "rex",
        "at": T0,
    }
    return RegisterEndpoint(**{**values, **change})  # type: ignore[arg-type]


def given(*events: DomainEvent) -> WebhookEndpoint:
    return WebhookEndpoint.rehydrate("ep_1", events)


REGISTERED = WebhookEndpointRegistered(
    endpoint_id="ep_1",
    url="https://hooks.example.org/casework",
    site="north",
    triggers=("crisis",),
    description=None,
    secret=OLD,
    registered_by="rex",
    registered_at=T0,
)


def test_registering_records_the_endpoint_and_its_secret() -> None:
    endpoint = WebhookEndpoint("ep_1")
    endpoint.handle(register(triggers=("crisis", "crisis")))
    (event,) = endpoint.pending_events
    assert isinstance(event, WebhookEndpointRegistered)
    assert event.triggers == ("crisis",)  # de-duplicated
    assert endpoint.secrets_at(T0) == (OLD,)
    view = endpoint.view(T0)
    assert OLD not in repr(view)  # what anyone sees has no secret
    assert [c.change for c in view.history] == ["registered"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.org/x", "http or https"),
        ("https:///no-host", "no host"),
        ("https://user:pw@hooks.example.org/x", "credentials"),
        ("https://hooks.example.org/x#frag", "fragment"),
        ("https://hooks.example.org:99999/x", "not a URL"),
        ("not a url at all", "http or https"),
    ],
)
def test_a_url_that_cannot_be_called_safely_is_refused_naming_the_field(url: str, why: str) -> None:
    endpoint = WebhookEndpoint("ep_1")
    with pytest.raises(InvalidEndpoint, match=why) as refused:
        endpoint.handle(register(url=url))
    assert refused.value.field == "body.url"
    assert endpoint.pending_events == []


def test_an_endpoint_is_registered_once() -> None:
    with pytest.raises(WebhookEndpointAlreadyRegistered):
        given(REGISTERED).handle(register())


def test_nothing_is_done_to_an_endpoint_never_registered() -> None:
    for cmd in (
        RotateSecret("ep_1", NEW, timedelta(hours=1), "rex", T0),
        DisableEndpoint("ep_1", "x", "rex", T0),
        EnableEndpoint("ep_1", "rex", T0),
    ):
        with pytest.raises(EndpointNotRegistered):
            WebhookEndpoint("ep_1").handle(cmd)


def test_rotating_signs_with_both_secrets_for_the_grace_then_the_new_one_only() -> None:
    endpoint = given(REGISTERED)
    endpoint.handle(RotateSecret("ep_1", NEW, timedelta(hours=24), "rex", T0))
    (event,) = endpoint.pending_events
    assert isinstance(event, WebhookSecretRotated)
    during = T0 + timedelta(hours=23)
    assert endpoint.secrets_at(during) == (NEW, OLD)  # the new one first
    assert endpoint.view(during).rotating_until == T0 + timedelta(hours=24)
    header = signature_header(endpoint.secrets_at(during), "msg_1", 1, "{}")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": header}
    assert verify(OLD, headers, "{}")
    assert verify(NEW, headers, "{}")
    assert endpoint.secrets_at(T0 + timedelta(hours=24)) == (NEW,)
    assert endpoint.view(T0 + timedelta(hours=24)).rotating_until is None


def test_a_rotation_during_a_rotation_keeps_two_secrets_the_newest_two() -> None:
    third = "whsec_" + base64.b64encode(b"t" * 32).decode()
    rotated = WebhookSecretRotated(
        endpoint_id="ep_1",
        secret=NEW,
        previous_valid_until=T0 + timedelta(hours=24),
        rotated_by="rex",
        rotated_at=T0,
    )
    endpoint = given(REGISTERED, rotated)
    endpoint.handle(RotateSecret("ep_1", third, timedelta(hours=1), "rex", T0))
    assert endpoint.secrets_at(T0) == (third, NEW)


def test_a_rotation_with_no_grace_drops_the_old_secret_at_once() -> None:
    endpoint = given(REGISTERED)
    endpoint.handle(RotateSecret("ep_1", NEW, timedelta(0), "rex", T0))
    assert endpoint.secrets_at(T0) == (NEW,)


@pytest.mark.parametrize("grace", [timedelta(hours=-1), timedelta(hours=73)])
def test_a_grace_beyond_three_days_or_negative_is_refused(grace: timedelta) -> None:
    endpoint = given(REGISTERED)
    with pytest.raises(InvalidEndpoint) as refused:
        endpoint.handle(RotateSecret("ep_1", NEW, grace, "rex", T0))
    assert refused.value.field == "body.grace_hours"
    assert endpoint.pending_events == []


def test_disable_and_enable_are_recorded_once_each() -> None:
    endpoint = given(REGISTERED)
    endpoint.handle(DisableEndpoint("ep_1", "receiver moved", "rex", T0))
    assert endpoint.disabled
    endpoint.handle(DisableEndpoint("ep_1", "again", "rex", T0))  # no change
    endpoint.handle(EnableEndpoint("ep_1", "rex", T0 + timedelta(minutes=1)))
    endpoint.handle(EnableEndpoint("ep_1", "rex", T0 + timedelta(minutes=2)))  # no change
    assert [type(e) for e in endpoint.pending_events] == [
        WebhookEndpointDisabled,
        WebhookEndpointEnabled,
    ]
    assert not endpoint.disabled
    history = endpoint.view(T0).history
    assert [(c.change, c.reason) for c in history] == [
        ("registered", None),
        ("disabled", "receiver moved"),
        ("enabled", None),
    ]
