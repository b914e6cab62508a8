"""Why an alert refuses a command, in the words of casework.

The HTTP status of each is decided once, in `bootstrap` (409 unless said otherwise there).
Messages name ids and states, never anything about the client.
"""

from __future__ import annotations


class AlertError(Exception):
    """A rule of the alert refused a command."""


class AlertAlreadyAcknowledged(AlertError):
    def __init__(self, alert_id: str, by: str) -> None:
        super().__init__(f"alert {alert_id} is already acknowledged by {by}")
        self.by = by


class AlertAlreadyClosed(AlertError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(f"alert {alert_id} is closed: nothing is left to acknowledge")


class InvalidRouting(ValueError):
    """A routing or escalation configuration that cannot work (refused at start)."""


class WebhookEndpointError(Exception):
    """A rule of a webhook endpoint refused a command (409 unless said otherwise)."""


class WebhookEndpointAlreadyRegistered(WebhookEndpointError):
    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"webhook endpoint {endpoint_id} is already registered")


class EndpointConfiguredByFile(WebhookEndpointError):
    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"webhook endpoint {endpoint_id} is configured by file: change it there")


class EndpointNotRegistered(LookupError):
    """No such endpoint (404)."""

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"no webhook endpoint {endpoint_id}")


class InvalidEndpoint(ValueError):
    """A webhook endpoint's field cannot be accepted (422, naming the field)."""

    def __init__(self, message: str, field: str = "body.url") -> None:
        super().__init__(message)
        self.field = field
