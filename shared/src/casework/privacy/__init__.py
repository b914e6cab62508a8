"""Personal data encrypted per data subject, and erased by destroying keys (crypto-shredding).

- `tokens` — the sealed form of one value (`enc:v1:<key id>:<...>`, AES-256-GCM).
- `kek` — key-encryption keys behind a small provider protocol (a local key file; KMS or
  Vault as an extension point).
- `keys` — `KeyService`: the platform's one key store (data keys per subject and record
  class, links between subjects, destruction, KEK rotation, integrations' grants).
- `sealing` — contracts' personal fields sealed at append; tokens opened in answers.
- `blind_index` — keyed hashes for lookups that need personal values (duplicate matching).
- `edge` — the HTTP middleware that opens the tokens of an authorised answer.

The invariants are stated in each module and in docs/architecture.md ("Personal data:
encryption per data subject").
"""

from casework.privacy.kek import KekError, KekProvider, LocalKeyFileProvider, create_key_file
from casework.privacy.keys import RECORD_CLASSES, KeyService, SubjectErased
from casework.privacy.tokens import REPLACEMENT, KeyId, holds_token, is_sealed

__all__ = [
    "RECORD_CLASSES",
    "REPLACEMENT",
    "KekError",
    "KekProvider",
    "KeyId",
    "KeyService",
    "LocalKeyFileProvider",
    "SubjectErased",
    "create_key_file",
    "holds_token",
    "is_sealed",
]
