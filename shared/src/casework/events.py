"""The base of every public event contract and the registry that maps wire types to models.

An event's wire type is `casework.<service>.<EventName>.v<N>` (DESIGN §3). Contracts live in
`casework.contracts.<service>`; changes to a `.vN` model may only add optional fields, and a
breaking change is a new class with `schema_version = N + 1` published alongside the old one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

SENSITIVE_MARK = "x-casework-sensitive"


def sensitive(description: str, **kwargs: Any) -> Any:
    """A field holding clinical free text or screening answers.

    Marked in the JSON Schema so that it can be encrypted per client and crypto-shredded.
    """
    return Field(description=description, json_schema_extra={SENSITIVE_MARK: True}, **kwargs)


class DomainEvent(BaseModel):
    """Something that happened to an aggregate, in the past tense."""

    # Unknown fields are ignored, so an older consumer reads a newer producer's events.
    model_config = ConfigDict(frozen=True, extra="ignore")

    service: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        """The CloudEvents `type` of this event, e.g. `casework.cases.CaseOpened.v1`."""
        return f"casework.{cls.service}.{cls.__name__}.v{cls.schema_version}"

    @classmethod
    def sensitive_fields(cls) -> list[str]:
        """Names of the fields marked sensitive."""
        return [
            name
            for name, field in cls.model_fields.items()
            if isinstance(field.json_schema_extra, dict)
            and field.json_schema_extra.get(SENSITIVE_MARK)
        ]


class UnknownEventType(LookupError):
    """A message carries an event type that no registered contract describes."""


class EventRegistry:
    """Maps wire type names to contract models."""

    def __init__(self, events: Iterable[type[DomainEvent]] = ()) -> None:
        self._by_type: dict[str, type[DomainEvent]] = {}
        for event in events:
            self.register(event)

    def register(self, event: type[DomainEvent]) -> None:
        """Add a contract; a second, different class for the same type name is a bug."""
        name = event.type_name()
        known = self._by_type.get(name)
        if known is not None and known is not event:
            raise ValueError(f"two contracts claim the event type {name}")
        self._by_type[name] = event

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._by_type

    def model(self, type_name: str) -> type[DomainEvent]:
        """The contract for a wire type name."""
        try:
            return self._by_type[type_name]
        except KeyError:
            raise UnknownEventType(type_name) from None

    def parse(self, type_name: str, data: dict[str, Any]) -> DomainEvent:
        """Validate wire data into its contract model."""
        return self.model(type_name).model_validate(data)

    def types(self) -> list[type[DomainEvent]]:
        """Every registered contract, sorted by type name."""
        return [self._by_type[k] for k in sorted(self._by_type)]
