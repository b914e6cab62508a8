"""Key-encryption keys (KEKs): what wraps every data key of the key store.

A provider holds one *current* KEK (new wrappings use it) and may know older ones (a
wrapping made before a rotation still unwraps until every data key is re-wrapped). Each
KEK has an id derived from the key itself (`local-<12 hex digits of its SHA-256>`), stored
beside every wrapping, so that a wrong KEK is told apart from a damaged wrapping.

`LocalKeyFileProvider` reads a key file (`CASEWORK_KEK_FILE`): one base64 32-byte key per
line, the first line current, later lines older KEKs kept for a rotation in progress. It is
for development, tests and single-host installations. A KMS or Vault provider is the
extension point: implement `KekProvider` (`current_id`, `wrap`, `unwrap`) by calling the KMS's
encrypt/decrypt (AWS KMS `Encrypt`/`Decrypt` with the key id as encryption context, Vault
transit `encrypt`/`decrypt`), so that the KEK never leaves the KMS; nothing else changes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32


class KekError(RuntimeError):
    """The key-encryption key is missing, unreadable or not the one the key store was made
    with: no personal data can be sealed or opened, so the service refuses to start."""


class KekProvider(Protocol):
    """Wraps and unwraps data keys with a key-encryption key."""

    def current_id(self) -> str:
        """The id of the KEK new wrappings use (raises `KekError` when there is none)."""
        ...

    def wrap(self, key: bytes, *, context: str) -> tuple[str, bytes]:
        """`key` encrypted with the current KEK, bound to `context`: (kek id, wrapped)."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, *, context: str) -> bytes:
        """The key a `wrap` with this KEK and context produced (`KekError` if it cannot)."""
        ...


def kek_id_of(key: bytes) -> str:
    """A KEK's id: derived from the key, so no two different KEKs share one."""
    return "local-" + hashlib.sha256(b"casework-kek-id" + key).hexdigest()[:12]


def new_kek_line() -> str:
    """A fresh random KEK, as one line of a key file."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def create_key_file(path: Path) -> bool:
    """Create a key file with one fresh KEK, readable by its owner only, unless it exists.

    For development and tests (`make up`, the test stack): production keeps its KEK in a KMS
    or a secret store and never generates one on start. True when a file was created."""
    path = path.expanduser()
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(new_kek_line() + "\n")
    return True


class LocalKeyFileProvider:
    """KEKs from a local key file (see module). The file is re-read when a wrapping names a
    KEK it does not know, so a rotation done by another process is picked up."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self._keys: dict[str, bytes] = {}
        self._current: str | None = None

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KekError(
                f"the key-encryption key file {self.path} (CASEWORK_KEK_FILE) does not exist. "
                "Without it no personal data can be sealed or read: restore it from its backup "
                "(a new key cannot read what the old one wrapped). For a new development "
                "installation, `casework keys init-kek` creates one."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KekError(
                f"the key-encryption key file {self.path} cannot be read ({type(exc).__name__})"
            ) from None
        keys: dict[str, bytes] = {}
        current: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                key = base64.b64decode(line.strip(), validate=True)
            except ValueError:
                key = b""
            if len(key) != KEY_BYTES:
                raise KekError(
                    f"line {number} of the key-encryption key file {self.path} is not a "
                    "base64 32-byte key"
                )
            kek_id = kek_id_of(key)
            keys[kek_id] = key
            current = current or kek_id
        if current is None:
            raise KekError(f"the key-encryption key file {self.path} holds no key")
        self._keys, self._current = keys, current

    def current_id(self) -> str:
        if self._current is None:
            self._load()
        assert self._current is not None
        return self._current

    def known_ids(self) -> list[str]:
        """Every KEK the file holds, the current first."""
        self.current_id()
        return list(self._keys)

    def wrap(self, key: bytes, *, context: str) -> tuple[str, bytes]:
        kek_id = self.current_id()
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._keys[kek_id]).encrypt(nonce, key, context.encode())
        return kek_id, nonce + sealed

    def unwrap(self, kek_id: str, wrapped: bytes, *, context: str) -> bytes:
        if kek_id not in self._keys:
            self._load()  # a rotation elsewhere may have added it
        kek = self._keys.get(kek_id)
        if kek is None:
            raise KekError(
                f"the key store holds keys wrapped by KEK {kek_id}, which the key file "
                f"{self.path} does not hold (it has {', '.join(self._keys)}): wrong or "
                "outdated CASEWORK_KEK_FILE"
            )
        try:
            return AESGCM(kek).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context.encode()
            )
        except InvalidTag:
            raise KekError(f"a wrapping made with KEK {kek_id} does not open: damaged") from None
