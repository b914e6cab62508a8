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
