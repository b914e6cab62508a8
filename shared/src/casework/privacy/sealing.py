"""Sealing personal fields at append, and opening tokens in an authorised answer.

`Sealer.seal(event)` is what the event store stores instead of `event.model_dump()`: every
field the contract marks `personal` (nested ones and list items included) becomes a token
sealed with its subject's current data key of its record class. A value that is already
sealed (a copy of tokens, as a case's `client_name` copied from the referral) is kept as it
is: it stays readable exactly as long as the key it was first sealed with. So the event store,
every topic and dead-letter topic, and every read model (projections copy tokens) hold only
ciphertext. An event with a personal value but no subject id is refused (`MissingSubject`):
nothing personal is ever stored in plaintext for want of a key.

`Opener.open(document)` replaces every token in a JSON document (also tokens inside a longer
string) by its value, and a token whose key is destroyed or unknown by `REPLACEMENT`; it
never raises for a missing key, so an erased subject's answer is `[erased]`, not an error. It
returns the subjects whose values it opened, for the audit record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from casework.events import DomainEvent, PersonalField, data_subject
from casework.privacy.keys import KeyService
from casework.privacy.tokens import (
    PREFIX,
    REPLACEMENT,
    TOKEN,
    KeyId,
    TokenDoesNotOpen,
    holds_token,
    is_sealed,
    key_ids_in,
    open_sealed,
    seal,
)

log = logging.getLogger(__name__)

MAX_NESTING: Final = 3
"""A value sealed again after it was copied (tokens in a new sealed value) opens in turns."""


class MissingSubject(ValueError):
    """An event has a personal value but not the id of the subject it belongs to."""

    def __init__(self, event_type: str, field: PersonalField) -> None:
        super().__init__(
            f"{event_type}: the personal field {field.dotted} has a value but the event has no "
            f"{field.subject_field}; it cannot be sealed, so it is not stored"
        )


def _locations(data: Any, path: tuple[str, ...]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every place `path` reaches in JSON data (`*`: each list item)."""
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(data, list):
            for index, item in enumerate(data):
                yield from _locations_in(data, index, item, rest)
        return
    if isinstance(data, dict) and head in data:
        yield from _locations_in(data, head, data[head], rest)


def _locations_in(
    container: Any, key: Any, value: Any, rest: tuple[str, ...]
) -> Iterator[tuple[Any, Any]]:
    if not rest:
        yield container, key
    elif value is not None:
        yield from _locations(value, rest)


class Sealer:
    """Turns an event into its stored form, its personal fields sealed (see module)."""

    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    async def seal(self, event: DomainEvent) -> dict[str, Any]:
        """The event's JSON data with every personal value sealed."""
        data = event.model_dump(mode="json")
        for field in type(event).personal_fields():
            for container, key in list(_locations(data, field.path)):
                value = container[key]
                if value is None or is_sealed(value):
                    continue
                subject_value = data.get(field.subject_field)
                if not isinstance(subject_value, str) or not subject_value:
                    raise MissingSubject(event.type_name(), field)
                subject = data_subject(field.subject_field, subject_value)
                key_id, data_key = await self.keys.current_key(subject, field.record_class)
                container[key] = seal(value, key_id=key_id, key=data_key)
        return data


class Opener:
    """Opens the tokens of a JSON document with the key store's keys (see module)."""

    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    async def open(self, document: Any) -> tuple[Any, list[str]]:
        """The document with its tokens opened, and the subjects whose values were shown.
        Tokens this opener may not open (`may_open`) stay as they are."""
        shown: dict[str, None] = {}
        for _ in range(MAX_NESTING):
            key_ids = [k for k in dict.fromkeys(_key_ids(document)) if await self.may_open(k)]
            if not key_ids:
                break
            keys = await self.keys.data_keys_for(key_ids)
            document = _open(document, keys, shown)
        return document, list(shown)

    async def may_open(self, key_id: str) -> bool:
        """Whether this opener opens tokens of this key (the services' edge: all of them)."""
        return True

    async def open_value(self, value: Any) -> Any:
        """One value opened (for the few places a route needs a plaintext to answer)."""
        opened, _ = await self.open(value)
        return opened


class GrantedOpener(Opener):
    """What an integration reads the stream with: it opens only the record classes an
    explicit grant gives it (`casework keys grant`, recorded in the key store's audit);
    every other value stays ciphertext. A revocation takes effect within the key cache TTL."""

    def __init__(self, keys: KeyService, integration: str) -> None:
        super().__init__(keys)
        self.integration = integration
        self._classes: set[str] = set()
        self._until: datetime | None = None

    async def may_open(self, key_id: str) -> bool:
        now = self.keys.now()
        if self._until is None or self._until <= now:
            self._classes = await self.keys.granted_classes(self.integration)
            self._until = now + self.keys.cache_ttl
        return KeyId.parse(key_id).record_class in self._classes


def _key_ids(document: Any) -> Iterator[str]:
    if isinstance(document, str):
        yield from key_ids_in(document)
    elif isinstance(document, dict):
        for value in document.values():
            yield from _key_ids(value)
    elif isinstance(document, list | tuple):
        for value in document:
            yield from _key_ids(value)


def _open(document: Any, keys: dict[str, bytes | None], shown: dict[str, None]) -> Any:
    if isinstance(document, str):
        return _open_string(document, keys, shown) if PREFIX in document else document
    if isinstance(document, dict):
        return {k: _open(v, keys, shown) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [_open(v, keys, shown) for v in document]
    return document


def _open_token(
    key_id: str, sealed: str, keys: dict[str, bytes | None], shown: dict[str, None]
) -> Any:
    if key_id not in keys:
        return f"{PREFIX}{key_id}:{sealed}"  # not this opener's to open: stays sealed
    key = keys[key_id]
    if key is None:
        return REPLACEMENT
    try:
        value = open_sealed(key_id, sealed, key)
    except TokenDoesNotOpen:
        # tampered with, or relabelled with another key id: shown as gone, said loudly
        log.error("a token of key %s does not open with its key", key_id)
        return REPLACEMENT
    shown[KeyId.parse(key_id).subject] = None
    return value


def _open_string(text: str, keys: dict[str, bytes | None], shown: dict[str, None]) -> Any:
    whole = TOKEN.fullmatch(text)
    if whole is not None:
        return _open_token(whole.group("key_id"), whole.group("sealed"), keys, shown)
    if not holds_token(text):
        return text

    def replace(match: Any) -> str:
        value = _open_token(match.group("key_id"), match.group("sealed"), keys, shown)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return TOKEN.sub(replace, text)
