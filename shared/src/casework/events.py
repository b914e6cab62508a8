"""The base of every public event contract and the registry that maps wire types to models.

An event's wire type is `casework.<service>.<EventName>.v<N>` (DESIGN §3). Contracts live in
`casework.contracts.<service>`; changes to a `.vN` model may only add optional fields, and a
breaking change is a new class with `schema_version = N + 1` published alongside the old one.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

PERSONAL_MARK: Final = "x-casework-personal"
"""JSON Schema key of a personal field: `{"subject": <field>, "record_class": <class>}`."""

Sealed = Annotated[
    str,
    StringConstraints(pattern=r"^enc:v1:"),
    Field(
        json_schema_extra={
            "description": "A sealed value: `enc:v1:<key id>:<base64url(nonce, ciphertext, "
            "tag)>` (casework.privacy.tokens); opened only in authorised answers"
        }
    ),
]
"""How a personal field travels once sealed at append (a token, or tokens and separators).
Contracts type a personal field `T | Sealed`, so aggregates and projections read the stored
form (tokens) as well as a fresh, unsealed value."""

SUBJECT_PREFIXES: Final = {"client_id": "client:"}
"""A subject field named here holds a bare id, and the data subject is the prefix plus it
(`client_id` "c-17" → `client:c-17`); any other subject field holds a whole subject id
(`person:<uuid>`)."""


def personal(
    description: str, *, subject: str, record_class: str = "identity", **kwargs: Any
) -> Any:
    """A field holding personal data of the data subject whose id is in the event's field
    `subject`, sealed at append with that subject's key of `record_class` (`identity` for
    names, birth dates, phone, address; `clinical` for concerns, screening answers,
    assessments, risk reasons, crisis text; `notes` for free-text notes). A field of a nested
    model names the subject field of the event that holds it."""
    extra: JsonDict = {PERSONAL_MARK: {"subject": subject, "record_class": record_class}}
    return Field(description=description, json_schema_extra=extra, **kwargs)


def data_subject(subject_field: str, value: str) -> str:
    """The data-subject id a subject field's value names (see `SUBJECT_PREFIXES`)."""
    return SUBJECT_PREFIXES.get(subject_field, "") + value


@dataclass(frozen=True)
class PersonalField:
    """Where a personal value sits in an event's JSON data (`*` stands for every item of a
    list), the event field holding its subject's id, and its record class."""

    path: tuple[str, ...]
    subject_field: str
    record_class: str

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def personal_fields_of(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[PersonalField]:
    """Every personal field of a model, nested models and lists of them included."""
    found: list[PersonalField] = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        mark = extra.get(PERSONAL_MARK) if isinstance(extra, dict) else None
        if isinstance(mark, dict):
            found.append(
                PersonalField((*prefix, name), str(mark["subject"]), str(mark["record_class"]))
            )
            continue
        for nested, in_list in _nested_models(info.annotation):
            found += personal_fields_of(nested, (*prefix, name, *(("*",) if in_list else ())))
    return found


def _nested_models(annotation: Any, in_list: bool = False) -> list[tuple[type[BaseModel], bool]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, in_list)]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _nested_models(args[0], in_list)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in args for m in _nested_models(arg, in_list)]
    if origin in (tuple, list, frozenset, set):
        return [m for arg in args if arg is not Ellipsis for m in _nested_models(arg, True)]
    return []


class DomainEvent(BaseModel):
    """Something that happened to an aggregate, in the past tense."""

    # Unknown fields are ignored, so an older consumer reads a newer producer's events.
    model_config = ConfigDict(frozen=True, extra="ignore")

    service: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    _personal_fields: ClassVar[list[PersonalField] | None] = None

    @classmethod
    def type_name(cls) -> str:
        """The CloudEvents `type` of this event, e.g. `casework.cases.CaseOpened.v1`."""
        return f"casework.{cls.service}.{cls.__name__}.v{cls.schema_version}"

    @classmethod
    def personal_fields(cls) -> list[PersonalField]:
        """The personal fields of this contract (`personal`), nested ones included."""
        cached = cls.__dict__.get("_personal_fields")
        if cached is None:
            cached = personal_fields_of(cls)
            cls._personal_fields = cached
        return list(cached)


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
