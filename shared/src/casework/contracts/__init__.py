"""Public event contracts of every service (DESIGN §3).

These models are the wire format integrations rely on: JSON Schema and AsyncAPI are
generated from them (`casework contracts`). Add optional fields freely; anything else is a
new `.v<N+1>` class published alongside the old one.
"""

from __future__ import annotations

from casework.contracts import cases, contacts, intake, notifications, supervision
from casework.events import DomainEvent, EventRegistry

MODULES = (intake, cases, contacts, supervision, notifications)


def all_events() -> list[type[DomainEvent]]:
    """Every contract class of every service."""
    found: list[type[DomainEvent]] = []
    for module in MODULES:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, DomainEvent)
                and value.service
                and value.__module__ == module.__name__
                and not value.__name__.endswith("Event")
            ):
                found.append(value)
    return found


def registry() -> EventRegistry:
    """A registry of every public contract."""
    return EventRegistry(all_events())
