"""The sealed form of one personal value: a token, itself a JSON string.

    enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>

`<key id>` is `<subject>/<record class>/v<N>` (e.g. `client:c-17/identity/v1`), the
cipher AES-256-GCM with a fresh 12-byte nonce per value, the plaintext the value's JSON
encoding (so dates, lists and nested objects come back as they went in), and the associated
data binds the key id — the subject, the record class and the key version — so a token
relabelled with another subject's or class's key id does not open.

Tokens may appear anywhere in a JSON document, also inside a longer string (a read model
that shows "<given name> <family name>" holds two tokens and a space); `TOKEN` finds them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX: Final = "enc:v1:"
REPLACEMENT: Final = "[erased]"
"""What a value whose key is destroyed (or missing) reads as."""

SUBJECT_PATTERN: Final = r"(?:client|person|staff):[A-Za-z0-9._-]{1,128}"
RECORD_CLASS_PATTERN: Final = r"[a-z][a-z_]{0,31}"
KEY_ID_PATTERN: Final = rf"{SUBJECT_PATTERN}/{RECORD_CLASS_PATTERN}/v[0-9]{{1,6}}"
TOKEN: Final = re.compile(rf"enc:v1:(?P<key_id>{KEY_ID_PATTERN}):(?P<sealed>[A-Za-z0-9_-]{{38,}})")
"""A token, wherever it stands in a string (the ciphertext holds at least nonce and tag)."""
_SUBJECT = re.compile(SUBJECT_PATTERN)
_RECORD_CLASS = re.compile(RECORD_CLASS_PATTERN)
_SEPARATORS = re.compile(r"[\s,;|/()-]*")
NONCE_BYTES: Final = 12


class InvalidSubject(ValueError):
    """A data-subject id is not `client:<id>`, `person:<id>` or `staff:<id>` (a member of
    staff: notes on their own practice) — letters, digits, `._-`."""


def check_subject(subject: str) -> str:
    """`subject` if it is a well-formed data-subject id, else `InvalidSubject`."""
    if not _SUBJECT.fullmatch(subject):
        raise InvalidSubject(f"not a data-subject id: {subject!r}")
    return subject


def check_record_class(record_class: str) -> str:
    """`record_class` if well-formed (lower-case word), else ValueError."""
    if not _RECORD_CLASS.fullmatch(record_class):
        raise ValueError(f"not a record class: {record_class!r}")
    return record_class


@dataclass(frozen=True)
class KeyId:
    """`<subject>/<record class>/v<N>`, parsed."""

    subject: str
    record_class: str
    version: int

    def __str__(self) -> str:
        return f"{self.subject}/{self.record_class}/v{self.version}"

    @classmethod
    def parse(cls, text: str) -> KeyId:
        subject, record_class, version = text.rsplit("/", 2)
        return cls(check_subject(subject), check_record_class(record_class), int(version[1:]))


def _associated_data(key_id: str) -> bytes:
    return f"casework:{PREFIX}{key_id}".encode()


def seal(value: Any, *, key_id: str, key: bytes) -> str:
    """A token holding `value` (anything JSON can encode), sealed with the data key."""
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, _associated_data(key_id))
    encoded = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
    return f"{PREFIX}{key_id}:{encoded}"


class TokenDoesNotOpen(ValueError):
    """The token was not sealed with this key id and key (tampered, or relabelled)."""


def open_sealed(key_id: str, sealed: str, key: bytes) -> Any:
    """The value inside a token's sealed part (`TokenDoesNotOpen` if it does not open)."""
    raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    try:
        plaintext = AESGCM(key).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(key_id)
        )
    except InvalidTag:
        raise TokenDoesNotOpen(key_id) from None
    return json.loads(plaintext)


def holds_token(text: str) -> bool:
    """Whether a string holds a token anywhere."""
    return PREFIX in text and TOKEN.search(text) is not None


def is_sealed(value: Any) -> bool:
    """Whether a value is already sealed: a string made of tokens and separators only (a copy
    of sealed values, like "<token> <token>"). Anything with other text in it is not."""
    if not isinstance(value, str) or not holds_token(value):
        return False
    return _SEPARATORS.fullmatch(TOKEN.sub("", value)) is not None


def key_ids_in(text: str) -> list[str]:
    """The key ids of the tokens in a string, in order."""
    return [m.group("key_id") for m in TOKEN.finditer(text)] if PREFIX in text else []
