"""The key store: one data key per (data subject, record class), wrapped by a KEK.

One key store serves the platform, in its own database (`CASEWORK_KEYS_MONGO_DB`, default
`casework_keys`), reached only through `KeyService`. Its collections:

- `data_keys` — `{_id: <key id>, subject, record_class, version, kek_id, wrapped,
  created_at}`; a destroyed key is the same document without `wrapped` (replaced whole,
  with `destroyed_at`, `reason`, `erasure_id`): its key material is gone for ever.
- `erased` — a tombstone per erased subject, `{_id: <subject>, erasure_id, reason, at}`.
- `links` — `{_id: "<subject>><owner>", subject, owner}`: erasing the owner erases the subject.
- `kek_check` — a canary wrapped by the KEK, read at start: a lost or wrong KEK is found
  before any request, and the service refuses to start (`KekError`).
- `blind_index_keys` — the keyed-hash key of the blind indexes (`casework.privacy.blind_index`).
- `destruction_mark` — one document whose random `token` every `destroy` replaces after it
  destroyed the keys: other processes ask it, not each key, whether their cache still holds.
- `grants`, `key_audit` — integrations' grants, and an insert-only record of every grant,
  revocation, rotation and destruction (no personal data: subjects and key ids only).

Invariants:
- **A destroyed key's data is never readable again.** Destruction replaces the key document
  by one without key material; no copy of a data key is stored anywhere else (wrapped keys
  only in `data_keys`, unwrapped ones only in process memory, see the cache below).
- **An erased subject gets no new key.** `destroy` inserts the tombstone *before* it destroys
  the keys; `ensure` inserts a new key *then* reads the tombstone, and destroys its own key
  if one is there. Whatever the interleaving, either `destroy` lists the new key, or `ensure`
  sees the tombstone (one document store, read-your-writes). `link` is ordered the same way
  against the owner's tombstone.
- **Key creation is one insert with a unique `_id`** (`<subject>/<class>/v<N>`): two
  processes creating the first key of a subject race on the insert, the loser reads the
  winner's key. A crash after the insert and before the event's append leaves an unused
  key (harmless); a crash before it leaves nothing. Nothing is sealed with a key that is not
  stored first.
- **Erasure reaches answers within the cache TTL.** Unwrapped keys are cached in the process
  for up to `cache_max_s` (10 min), but a cached key is used only while a check of the
  destruction mark *begun* within the last `keys_cache_ttl_s` (default 5 s) found the token
  it was cached under. The mark is read before a key's document (so a destroy that the key
  read did not see bumps the mark after that read), and `destroy` replaces the mark after
  the keys, before it returns. So the process that destroys evicts at once, and any other
  process may open a destroyed subject's values for at most the TTL after `destroy`
  returned (tested in tests/integration/test_privacy_keys.py). A `destroy` that died before
  its mark is finished by running it again (idempotent), which replaces the mark; until
  then the key's cached copies live at most `cache_max_s`. A destroyed or missing key is
  remembered as such, so `[erased]` never turns back.

Cost on the append path: a cached key costs nothing but one read of the mark per TTL per
process, whatever the number of keys in use (before: two reads by exact `_id` per key per
TTL — the key and the subject's tombstone — which a key still pays when first used, and
after any destruction anywhere); a subject's first value of a class, a read, an insert and a
read (`bench/encryption.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from casework.clock import Clock, SystemClock
from casework.privacy.kek import KEY_BYTES, KekError, KekProvider
from casework.privacy.tokens import KeyId, check_record_class, check_subject

Document = dict[str, Any]
log = logging.getLogger(__name__)

DEFAULT_CACHE_TTL_S: Final = 5.0
DEFAULT_CACHE_MAX_S: Final = 600.0
_MARK_ID: Final = "mark"
RECORD_CLASSES: Final = ("identity", "clinical", "notes")
"""The record classes the contracts use (a class is any lower-case word; these are known)."""
_CANARY_ID: Final = "kek"
_CANARY_CONTEXT: Final = "casework-kek-canary"
BLIND_INDEX_KEY_ID: Final = "blind-index/v1"


class SubjectErased(Exception):
    """The data subject was erased: nothing new is sealed for them."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"data subject {subject} was erased; no new personal data is kept")
        self.subject = subject


@dataclass
class _Cached:
    key: bytes | None  # None: destroyed (kept for ever) or missing
    until: datetime | None  # None: for ever
    mark: str | None = None  # the destruction mark known before the key was read


class KeyService:
    """Creates, reads, links and destroys data keys (see module for the invariants)."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        kek: KekProvider,
        *,
        clock: Clock | None = None,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        cache_max_s: float = DEFAULT_CACHE_MAX_S,
    ) -> None:
        self.database = database
        self.data_keys = database["data_keys"]
        self.erased = database["erased"]
        self.links = database["links"]
        self.kek_check = database["kek_check"]
        self.grants = database["grants"]
        self.key_audit = database["key_audit"]
        self.blind_keys = database["blind_index_keys"]
        self.marks = database["destruction_mark"]
        self.kek = kek
        self._clock = clock or SystemClock()
        self.cache_ttl = timedelta(seconds=cache_ttl_s)
        self.cache_max = timedelta(seconds=max(cache_max_s, cache_ttl_s))
        self._mark: str | None = None  # the token the last check of the mark found
        self._mark_checked: datetime | None = None  # when that check began
        self._checking = asyncio.Lock()
        self._keys: dict[str, _Cached] = {}
        self._current: dict[tuple[str, str], str] = {}
        """(subject, class) → the key id last sealed with (checked live through `_keys`)."""

    # --- start ---------------------------------------------------------------------------

    async def verify(self) -> str:
        """Check the KEK against the key store's canary (creating it in a new store) and make
        the indexes. `KekError` with a clear message when the KEK is lost or wrong: a service
        calls it at start and refuses to start on it. Returns the current KEK id."""
        kek_id = self.kek.current_id()  # KekError when the file is missing or unreadable
        canary = await self.kek_check.find_one({"_id": _CANARY_ID})
        if canary is None:
            wrapped_id, wrapped = self.kek.wrap(secrets.token_bytes(16), context=_CANARY_CONTEXT)
            try:
                await self.kek_check.insert_one(
                    {"_id": _CANARY_ID, "kek_id": wrapped_id, "wrapped": wrapped}
                )
            except DuplicateKeyError:
                return await self.verify()  # another process made it first: check theirs
        else:
            try:
                self.kek.unwrap(canary["kek_id"], canary["wrapped"], context=_CANARY_CONTEXT)
            except KekError as exc:
                raise KekError(
                    f"wrong key-encryption key: the key store {self.database.name} was made "
                    f"with KEK {canary['kek_id']}, and CASEWORK_KEK_FILE holds {kek_id}. "
                    f"Refusing to start: nothing sealed could be read. ({exc}) Restore the "
                    "KEK file from its backup; only for a development installation whose "
                    f"data may be lost, dropping the database {self.database.name} starts "
                    "afresh (every value sealed before then reads [erased])."
                ) from None
        await self.data_keys.create_index(
            [("subject", ASCENDING), ("record_class", ASCENDING), ("version", DESCENDING)]
        )
        await self.links.create_index([("owner", ASCENDING)])
        return kek_id

    # --- the spec's API ------------------------------------------------------------------

    async def ensure(self, subject: str, record_class: str) -> str:
        """The id of the subject's current data key of this class, created when there is none
        (or when the last one was destroyed on its own, by retention). `SubjectErased` when the
        subject was erased."""
        key_id, _ = await self.current_key(subject, record_class)
        return key_id

    async def destroy(
        self, subject: str, *, record_class: str | None = None, reason: str, erasure_id: str
    ) -> list[str]:
        """Destroy the subject's data keys — of one class, or all (then the subject is erased
        for good: no new key) — and those of every subject linked to it, transitively.

        Idempotent: a repeated call destroys what is left and returns the same list, every
        key id of those subjects (and class) that is destroyed now. No personal data in it."""
        check_subject(subject)
        if record_class is not None:
            check_record_class(record_class)
        subjects = await self.linked_subjects(subject)
        at = self._clock.now()
        if record_class is None:
            for each in subjects:
                # the tombstone first: an `ensure` racing with us either is listed below or
                # sees it (module docstring)
                with contextlib.suppress(DuplicateKeyError):
                    await self.erased.insert_one(
                        {"_id": each, "erasure_id": erasure_id, "reason": reason, "at": at}
                    )
        destroyed: list[str] = []
        for each in subjects:
            query: Document = {"subject": each}
            if record_class is not None:
                query["record_class"] = record_class
            async for doc in self.data_keys.find(query, {"wrapped": 0}):
                destroyed.append(doc["_id"])
                await self._destroy_key(doc, reason=reason, erasure_id=erasure_id, at=at)
        # after the keys, before returning: other processes' caches drop them within the TTL
        await self._replace_mark()
        for each in subjects:
            for key in list(self._current):
                if key[0] == each and (record_class is None or key[1] == record_class):
                    del self._current[key]
        await self._audit(
            "destroy",
            subjects=subjects,
            key_ids=sorted(destroyed),
            reason=reason,
            erasure_id=erasure_id,
            record_class=record_class,
        )
        return sorted(destroyed)

    async def link(self, subject: str, *, owner: str) -> None:
        """Make `subject` part of `owner`: erasing the owner erases the subject too (a person
        minted at referral, confirmed to be an existing client). Idempotent. Linking to an
        owner already erased erases the subject at once."""
        check_subject(subject)
        check_subject(owner)
        if subject == owner:
            return
        with contextlib.suppress(DuplicateKeyError):
            await self.links.insert_one(
                {
                    "_id": f"{subject}>{owner}",
                    "subject": subject,
                    "owner": owner,
                    "at": self._clock.now(),
                }
            )
        # after the insert, as `ensure` does: an erasure of the owner that listed the links
        # before our insert has left its tombstone for us to see
        tombstone = await self.erased.find_one({"_id": owner})
        if tombstone is not None:
            await self.destroy(
                subject,
                reason="linked to an erased subject",
                erasure_id=str(tombstone.get("erasure_id", "")),
            )

    async def is_destroyed(self, subject: str, record_class: str | None = None) -> bool:
        """Whether the subject was erased, or (with a class) has no live key of that class
        and had one."""
        if await self.erased.find_one({"_id": subject}, {"_id": 1}) is not None:
            return True
        if record_class is None:
            return False
        latest = await self._latest(subject, record_class)
        return latest is not None and "wrapped" not in latest

    async def rotate_kek(self) -> int:
        """Re-wrap every live data key (and the canary and blind-index keys) with the
        provider's current KEK; returns how many were re-wrapped. Idempotent and resumable:
        a document already under the current KEK is skipped, so a crash mid-way is finished by
        running it again. The old KEK must stay in the provider until it returns."""
        current = self.kek.current_id()
        count = 0
        for collection in (self.data_keys, self.blind_keys, self.kek_check):
            async for doc in collection.find({"kek_id": {"$exists": True}}):
                if doc["kek_id"] == current or "wrapped" not in doc:
                    continue
                context = (
                    _CANARY_CONTEXT if collection is self.kek_check else _wrap_context(doc["_id"])
                )
                key = self.kek.unwrap(doc["kek_id"], doc["wrapped"], context=context)
                kek_id, wrapped = self.kek.wrap(key, context=context)
                # replace only the version we read: a concurrent destroy wins
                result = await collection.replace_one(
                    {"_id": doc["_id"], "kek_id": doc["kek_id"]},
                    {**doc, "kek_id": kek_id, "wrapped": wrapped},
                )
                count += result.modified_count
        await self._audit("rotate-kek", kek_id=current, rewrapped=count)
        return count

    # --- what sealing and opening use -----------------------------------------------------

    async def current_key(self, subject: str, record_class: str) -> tuple[str, bytes]:
        """The current data key of (subject, class), created if needed: (key id, key).

        Reads by exact `_id` only: the version used last (v1 at first) is current while it
        lives — a newer version is made only after the last one was destroyed."""
        check_subject(subject)
        check_record_class(record_class)
        key_id = self._current.get((subject, record_class)) or str(KeyId(subject, record_class, 1))
        while True:
            state, key = await self._key_state(key_id)
            if state == "live":
                assert key is not None
                self._current[(subject, record_class)] = key_id
                return key_id, key
            if state == "erased":
                raise SubjectErased(subject)
            if state == "destroyed":  # by retention, on its own: the latest, or a new version
                latest = await self._latest(subject, record_class)
                assert latest is not None
                if "wrapped" in latest:
                    key_id = latest["_id"]
                    continue
                key_id = str(KeyId(subject, record_class, latest["version"] + 1))
            created = await self._create(key_id)
            if created is not None:
                self._current[(subject, record_class)] = key_id
                return key_id, created
            # another process created this version first: read theirs

    async def _create(self, key_id: str) -> bytes | None:
        """Insert a new data key (None when the `_id` is taken). Checks the subject's tombstone
        *after* the insert and destroys its own key if there is one (module docstring)."""
        parsed = KeyId.parse(key_id)
        now = self._clock.now()
        mark = await self._current_mark(now)  # before the insert (`_key_state`)
        key = secrets.token_bytes(KEY_BYTES)
        kek_id, wrapped = self.kek.wrap(key, context=_wrap_context(key_id))
        doc = {
            "_id": key_id,
            "subject": parsed.subject,
            "record_class": parsed.record_class,
            "version": parsed.version,
            "kek_id": kek_id,
            "wrapped": wrapped,
            "created_at": now,
        }
        try:
            await self.data_keys.insert_one(doc)
        except DuplicateKeyError:
            return None
        if await self.erased.find_one({"_id": parsed.subject}, {"_id": 1}) is not None:
            # erased while we created it: the erasure may not have listed our key
            await self._destroy_key(doc, reason="created during erasure", erasure_id="", at=now)
            await self._replace_mark()
            raise SubjectErased(parsed.subject)
        self._keys[key_id] = _Cached(key, now + self.cache_max, mark)
        return key

    async def data_key(self, key_id: str) -> bytes | None:
        """The data key with this id, or None when it is destroyed or unknown (the value then
        reads as `[erased]`). Cached while the destruction mark holds (module docstring); a
        destroyed key is remembered for ever."""
        return (await self._key_state(key_id))[1]

    async def _key_state(self, key_id: str) -> tuple[str, bytes | None]:
        """`live` (and the key), `destroyed`, `erased` (the subject's tombstone is there,
        whatever its keys' documents say yet) or `unknown`; by exact `_id`, cached."""
        now = self._clock.now()
        cached = self._keys.get(key_id)
        if cached is not None and cached.key is None:
            return "destroyed", None  # remembered for ever
        # the mark is read before the key's document: see the module docstring
        mark = await self._current_mark(now)
        live = cached is not None and cached.until is not None and cached.until > now
        if live and cached is not None and cached.mark == mark:
            return "live", cached.key
        doc = await self.data_keys.find_one({"_id": key_id})
        if doc is None:
            # unknown: not remembered, a key is stored before anything is sealed with it
            self._keys.pop(key_id, None)
            return "unknown", None
        if await self.erased.find_one({"_id": doc["subject"]}, {"_id": 1}) is not None:
            self._keys[key_id] = _Cached(None, None)
            return "erased", None
        if "wrapped" not in doc:
            self._keys[key_id] = _Cached(None, None)
            return "destroyed", None
        key = self._unwrap(doc)
        self._keys[key_id] = _Cached(key, now + self.cache_max, mark)
        return "live", key

    async def _current_mark(self, now: datetime) -> str:
        """The destruction mark as found by a check begun within the TTL before `now` (one
        read per TTL per process, shared by concurrent callers)."""
        if self._fresh(now):
            assert self._mark is not None
            return self._mark
        async with self._checking:
            if not self._fresh(now):
                began = self._clock.now()
                doc = await self.marks.find_one({"_id": _MARK_ID})
                self._mark = str(doc["token"]) if doc is not None else ""
                self._mark_checked = began
            assert self._mark is not None
            return self._mark

    def _fresh(self, now: datetime) -> bool:
        return self._mark_checked is not None and self._mark_checked > now - self.cache_ttl

    async def _replace_mark(self) -> None:
        """A fresh token in the destruction mark: every other process's check that begins
        after this returns sees a token its cached keys were not read under."""
        doc = {"_id": _MARK_ID, "token": uuid.uuid4().hex, "at": self._clock.now()}
        for attempt in range(3):
            try:
                await self.marks.replace_one({"_id": _MARK_ID}, doc, upsert=True)
                return
            except DuplicateKeyError:  # two first upserts raced (FerretDB): now it exists
                if attempt == 2:
                    raise

    async def data_keys_for(self, key_ids: list[str]) -> dict[str, bytes | None]:
        """`data_key` of several ids, fetched concurrently."""
        unique = list(dict.fromkeys(key_ids))
        found = await asyncio.gather(*(self.data_key(k) for k in unique))
        return dict(zip(unique, found, strict=True))

    async def linked_subjects(self, subject: str) -> list[str]:
        """The subject and every subject linked to it, transitively (links may form chains)."""
        found = [subject]
        index = 0
        while index < len(found):
            async for link in self.links.find({"owner": found[index]}, {"subject": 1}):
                if link["subject"] not in found:
                    found.append(link["subject"])
            index += 1
        return found

    async def blind_index_key(self) -> bytes:
        """The platform's keyed-hash key for blind indexes, created once (unique insert)."""
        cached = self._keys.get(BLIND_INDEX_KEY_ID)
        if cached is not None and cached.key is not None:
            return cached.key
        while True:
            doc = await self.blind_keys.find_one({"_id": BLIND_INDEX_KEY_ID})
            if doc is not None:
                key = self.kek.unwrap(
                    doc["kek_id"], doc["wrapped"], context=_wrap_context(BLIND_INDEX_KEY_ID)
                )
                self._keys[BLIND_INDEX_KEY_ID] = _Cached(key, None)
                return key
            key = secrets.token_bytes(KEY_BYTES)
            kek_id, wrapped = self.kek.wrap(key, context=_wrap_context(BLIND_INDEX_KEY_ID))
            try:
                await self.blind_keys.insert_one(
                    {"_id": BLIND_INDEX_KEY_ID, "kek_id": kek_id, "wrapped": wrapped}
                )
            except DuplicateKeyError:
                continue

    def now(self) -> datetime:
        """The key service's clock (for its users' caches)."""
        return self._clock.now()

    def forget_cached(self) -> None:
        """Drop every cached key (tests; after a rotation nothing needs it)."""
        self._keys.clear()
        self._current.clear()

    # --- grants to integrations ----------------------------------------------------------

    async def grant(
        self, integration: str, *, record_class: str, granted_by: str, reason: str
    ) -> None:
        """Let an integration open values of one record class (all subjects). Audited."""
        check_record_class(record_class)
        await self.grants.replace_one(
            {"_id": f"{integration}|{record_class}"},
            {
                "_id": f"{integration}|{record_class}",
                "integration": integration,
                "record_class": record_class,
                "granted_by": granted_by,
                "reason": reason,
                "at": self._clock.now(),
            },
            upsert=True,
        )
        await self._audit(
            "grant",
            integration=integration,
            record_class=record_class,
            by=granted_by,
            reason=reason,
        )

    async def revoke(self, integration: str, *, record_class: str, revoked_by: str) -> bool:
        """Withdraw a grant (effective within the cache TTL in a running integration)."""
        result = await self.grants.delete_one({"_id": f"{integration}|{record_class}"})
        await self._audit(
            "revoke", integration=integration, record_class=record_class, by=revoked_by
        )
        return result.deleted_count > 0

    async def granted_classes(self, integration: str) -> set[str]:
        """The record classes an integration may open."""
        return {
            doc["record_class"]
            async for doc in self.grants.find({"integration": integration}, {"record_class": 1})
        }

    async def status(self) -> dict[str, Any]:
        """Counts for operators (no subjects, no key material)."""
        return {
            "kek_id": self.kek.current_id(),
            "data_keys": await self.data_keys.count_documents({"wrapped": {"$exists": True}}),
            "destroyed_keys": await self.data_keys.count_documents({"wrapped": {"$exists": False}}),
            "erased_subjects": await self.erased.count_documents({}),
            "links": await self.links.count_documents({}),
            "grants": [
                {k: doc[k] for k in ("integration", "record_class", "granted_by", "at")}
                async for doc in self.grants.find({})
            ],
        }

    # --- helpers -------------------------------------------------------------------------

    async def _latest(self, subject: str, record_class: str) -> Document | None:
        cursor = (
            self.data_keys.find({"subject": subject, "record_class": record_class})
            .sort("version", DESCENDING)
            .limit(1)
        )
        async for doc in cursor:
            return doc
        return None

    def _unwrap(self, doc: Document) -> bytes:
        return self.kek.unwrap(doc["kek_id"], doc["wrapped"], context=_wrap_context(doc["_id"]))

    async def _destroy_key(
        self, doc: Document, *, reason: str, erasure_id: str, at: datetime
    ) -> None:
        if "destroyed_at" not in doc:
            await self.data_keys.replace_one(
                {"_id": doc["_id"]},
                {
                    "_id": doc["_id"],
                    "subject": doc["subject"],
                    "record_class": doc["record_class"],
                    "version": doc["version"],
                    "created_at": doc.get("created_at"),
                    "destroyed_at": at,
                    "reason": reason,
                    "erasure_id": erasure_id,
                },
            )
        self._keys[doc["_id"]] = _Cached(None, None)

    async def _audit(self, action: str, **fields: Any) -> None:
        await self.key_audit.insert_one(
            {"_id": uuid.uuid4().hex, "action": action, "at": self._clock.now(), **fields}
        )


def _wrap_context(key_id: str) -> str:
    return f"casework-data-key:{key_id}"
