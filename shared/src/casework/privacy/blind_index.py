"""Blind indexes: lookups by personal values without keeping the values.

A lookup that needs a personal value (duplicate-client matching by name and birth date, or
by phone) files and searches a **term**: `<kind>:<HMAC-SHA256 of the normalised value>`,
keyed by the key store's blind-index key (`KeyService.blind_index_key`, wrapped by the KEK
like the data keys). Equal values give equal terms; a term reveals nothing of the value to
someone without the key, and nothing is stored that a stolen database could be searched with
by guessing, short of the key.

Documents, in a collection of the service that owns the lookup (inserts and deletes only):

- `{_id: "<term>|<owner>", term, owner, subject}` — `owner` (a client id) filed under a term.
  The unique `_id` makes filing idempotent and lets concurrent filings under one term all
  stay (the one concurrency primitive, DESIGN §7); a lookup is one equality on the indexed
  `term` (pushed down on PostgreSQL-backed FerretDB and MongoDB).
- `{_id: "staged:<ref>", terms, subject}` — terms computed from a command's input (a referral
  as received) and kept until the owner they belong to is known (the client registered at
  acceptance): nothing else needs the plaintext again.

Invariant: every document carries the data subject it was computed from, and `forget(subject)`
deletes those of the subject and of every subject linked to it — an erasure leaves no term
that could still find the person. Terms are written only by the service's write side, from
its commands' input; they are not derived from the event stream, so a rebuild of a read model
never brings an erased person's terms back.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from casework.privacy.keys import KeyService

Document = dict[str, Any]


class BlindIndex:
    """Terms filed per owner, staged per reference, forgotten per subject (see module)."""

    def __init__(self, collection: AsyncCollection[Document], keys: KeyService) -> None:
        self.collection = collection
        self.keys = keys

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("term", ASCENDING)])
        await self.collection.create_index([("subject", ASCENDING)])

    async def term(self, kind: str, normalised: str) -> str:
        """The term of a normalised value of a kind (`name`, `phone`, ...)."""
        key = await self.keys.blind_index_key()
        digest = hmac.new(key, f"{kind}\x00{normalised}".encode(), hashlib.sha256).digest()
        return f"{kind}:" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    async def stage(self, ref: str, terms: list[str], *, subject: str) -> None:
        """Keep `terms` under a reference until their owner is known. Insert-only: terms
        staged first stay (a repeated command computes the same ones)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one(
                {"_id": f"staged:{ref}", "terms": terms, "subject": subject}
            )

    async def staged(self, ref: str) -> list[str]:
        """The terms staged under a reference (none when forgotten or never staged)."""
        doc = await self.collection.find_one({"_id": f"staged:{ref}"})
        return list(doc["terms"]) if doc else []

    async def file(self, terms: list[str], *, owner: str, subject: str) -> None:
        """File `owner` under each term (idempotent; concurrent filings all stay).

        Never for an erased subject, however the filing and the erasure interleave (a
        redelivered acceptance re-files its terms): the entries are inserted first, then the
        subject's erasure tombstone is read, as `KeyService.ensure` does. An erasure writes
        its tombstone before it calls `forget`, so either `forget` comes after these inserts
        and deletes them, or this reads the tombstone and deletes them itself."""
        for term in terms:
            with contextlib.suppress(DuplicateKeyError):  # filed by an earlier attempt
                await self.collection.insert_one(
                    {"_id": f"{term}|{owner}", "term": term, "owner": owner, "subject": subject}
                )
        if terms and await self.keys.is_destroyed(subject):
            for term in terms:
                await self.collection.delete_one({"_id": f"{term}|{owner}"})

    async def lookup(self, term: str) -> list[str]:
        """The owners filed under a term, in filing order of their `_id`."""
        cursor = self.collection.find({"term": term}, {"owner": 1}).sort("_id", ASCENDING)
        return [doc["owner"] async for doc in cursor]

    async def forget(self, subject: str) -> int:
        """Delete every term and staged entry of the subject and of the subjects linked to
        it (`KeyService.link`); returns how many documents went."""
        deleted = 0
        for each in await self.keys.linked_subjects(subject):
            deleted += (await self.collection.delete_many({"subject": each})).deleted_count
        return deleted
